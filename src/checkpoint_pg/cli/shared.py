"""What every ``checkpoint-pg`` command shares: opening the database (savers, inspectors,
SQLAlchemy connections), output (the rich console, JSON, sizes, times, values as lines), asking
before a change, error messages, and the options every command takes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from checkpoint_pg.errors import ConfigError, NotFoundError, SchemaVersionError
from checkpoint_pg.schema import DEFAULT_PREFIX, PG_SCHEMES, build_tables, other_prefixes, store_options

ENV_URL = "CHECKPOINT_PG_URL"
ENV_HASH_KEY = "CHECKPOINT_PG_HASH_KEY"  # hex of the hash_key= the app gives its saver
DEFAULT_URL = "./checkpoint_pg_demo.db"


class UsageError(ConfigError):
    """A command line that cannot be carried out as written (exit status 2)."""


# -- connecting ----------------------------------------------------------------------


def _url(args: argparse.Namespace) -> str:
    if args.url is not None and not args.url.strip():
        # `--url "$DB"` with DB unset: falling back to $CHECKPOINT_PG_URL or the demo file
        # would run the command (a delete, a prune) on a database nobody named
        raise UsageError(
            f"--url is empty: pass postgresql://... or a SQLite file path, or leave --url out "
            f"to use ${ENV_URL} (else {DEFAULT_URL})"
        )
    return args.url or os.environ.get(ENV_URL) or DEFAULT_URL


def _no_empty_options(args: argparse.Namespace) -> None:
    """Refuse ``--prefix ""`` and ``--schema ""`` (a script's ``--prefix "$P"`` with P unset):
    taken as not given, the command (a delete, a prune) would act on the default prefix's
    tables or on the default schema's, which nobody named. ``--url ""``: see `_url`."""
    for option in ("prefix", "schema"):
        value = getattr(args, option, None)
        if value is not None and not value.strip():
            raise UsageError(
                f"--{option} is empty: pass the tables' {option}, or leave --{option} out for the "
                + ("default (cpg_)" if option == "prefix" else "connection's search_path")
            )


def _is_pg(url: str) -> bool:
    return url.startswith(PG_SCHEMES)


def _sqlite_path(url: str, *, must_exist: bool = False) -> str:
    from checkpoint_pg.sqlite import path_of

    path = path_of(url)
    if must_exist and path != ":memory:" and not Path(path).is_file():
        hint = " (run `checkpoint-pg demo` to create it)" if url == DEFAULT_URL else ""
        raise NotFoundError(
            f"no SQLite database at {path!r}{hint}: pass --url PATH or postgresql://..., or set ${ENV_URL}"
        )
    return path


def _no_schema_on_sqlite(args: argparse.Namespace) -> None:
    if args.schema:
        raise UsageError("--schema is for Postgres; SQLite has no schemas (use --prefix)")


def _saver_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {"prefix": args.prefix}
    if args.schema:
        opts["schema"] = args.schema
    if os.environ.get("LANGGRAPH_AES_KEY"):
        # a database an app wrote with EncryptedSerializer.from_pycryptodome_aes(),
        # which takes its key from the same variable
        from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

        try:
            opts["serde"] = EncryptedSerializer.from_pycryptodome_aes()
        except ImportError:
            raise ConfigError(
                "LANGGRAPH_AES_KEY is set: reading an encrypted database needs pycryptodome "
                "(pip install pycryptodome), or unset the variable"
            ) from None
        except Exception as exc:  # noqa: BLE001 - the key's own complaint, e.g. its length
            raise ConfigError(f"LANGGRAPH_AES_KEY is set but unusable: {exc}") from None
    raw_key = os.environ.get(ENV_HASH_KEY)
    if raw_key:
        # the app's hash_key=: every object read is checked against its keyed hash,
        # which the CLI cannot compute without it
        try:
            opts["hash_key"] = bytes.fromhex(raw_key)
        except ValueError:
            raise ConfigError(
                f"{ENV_HASH_KEY} must be the app's hash_key in hex (hash_key.hex()), got "
                f"{raw_key[:8]!r}...: set it to the key's hex digits, or unset it"
            ) from None
    return opts


@contextlib.contextmanager
def open_saver(args: argparse.Namespace, *, write: bool, create: bool = True) -> Iterator[Any]:
    """A sync saver on the database of ``args``; read-only unless ``write``.

    A missing SQLite file is created only for ``write`` and ``create``.
    """
    url = _url(args)
    opts = _saver_options(args)
    if _is_pg(url):
        import psycopg

        from checkpoint_pg.postgres import PostgresSaver, conninfo_of, connect_read_only

        if write:
            # one connection first, so that a wrong URL (no such database, role, server)
            # fails now with the server's own error (and main()'s advice), not after the
            # pool's 30 s of retrying, as "pool initialization incomplete"
            psycopg.connect(conninfo_of(url)).close()
            with PostgresSaver.from_conn_string(url, **opts) as saver:
                yield saver
            return
        conn = connect_read_only(conninfo_of(url), autocommit=True, prepare_threshold=None)
        with conn:
            yield PostgresSaver(conn, **opts)
        return
    _no_schema_on_sqlite(args)
    from checkpoint_pg.sqlite import SqliteSaver, connect_sqlite

    path = _sqlite_path(url, must_exist=not (write and create))
    if write:
        with SqliteSaver.from_conn_string(path, **opts) as saver:
            yield saver
        return
    conn = connect_sqlite(path, read_only=True)
    try:
        yield SqliteSaver(conn, **opts)
    finally:
        conn.close()


@contextlib.contextmanager
def _inspector(args: argparse.Namespace) -> Iterator[Any]:
    from checkpoint_pg.inspect import Inspector

    with open_saver(args, write=False) as saver:
        yield Inspector(saver)


def _require_threads(ins: Any, thread_ids: Sequence[str]) -> None:
    """Refuse thread ids that name no stored thread (a typo must not look like "nothing to do")."""
    unknown = [t for t in thread_ids if not ins.checkpoint_keys(t)]
    if unknown:
        from checkpoint_pg.errors import NotFoundError

        listed = ", ".join(repr(t) for t in unknown[:10])
        if len(unknown) > 10:
            listed += f" and {len(unknown) - 10} more"
        raise NotFoundError(f"no thread {listed} in this database: see `checkpoint-pg threads`")


@contextlib.contextmanager
def _sa_connection(args: argparse.Namespace, *, write: bool, create: bool = True) -> Iterator[Any]:
    import sqlalchemy as sa
    from sqlalchemy.pool import StaticPool

    url = _url(args)
    if _is_pg(url):
        from checkpoint_pg.postgres import conninfo_of, connect_read_only

        kw: dict[str, Any] = (
            # the same fallback as open_saver's: PgBouncer refuses the options parameter
            {} if write else {"creator": lambda: connect_read_only(conninfo_of(url))}
        )
        engine = sa.create_engine(conninfo_of(url, sqlalchemy=True), poolclass=sa.pool.NullPool, **kw)
    else:
        from checkpoint_pg.sqlite import connect_sqlite

        _no_schema_on_sqlite(args)
        path = _sqlite_path(url, must_exist=not (write and create))
        raw = connect_sqlite(path, read_only=not write)
        engine = sa.create_engine("sqlite://", creator=lambda: raw, poolclass=StaticPool)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def _current(args: argparse.Namespace) -> str | None:
    """The revision of the database of ``args``; None without our tables or without the
    SQLite file (never creates either)."""
    from checkpoint_pg import migrate

    url = _url(args)
    if not _is_pg(url) and not Path(_sqlite_path(url)).is_file():
        return None
    with _sa_connection(args, write=False) as conn:
        return migrate.current(conn, build_tables(args.prefix, args.schema or None))


# -- output --------------------------------------------------------------------------


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def _print_json(data: Any) -> None:
    from checkpoint_pg.inspect.render import to_jsonable

    # \u escapes where stdout cannot show a character: the escapes the backslashreplace of
    # `printable_output` would write instead ("\xfc") are not JSON
    ascii_only = not _is_utf(sys.stdout)
    text = json.dumps(_finite(to_jsonable(data)), indent=2, ensure_ascii=ascii_only, allow_nan=False)
    sys.stdout.write(text + "\n")


def _is_utf(stream: Any) -> bool:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    return encoding.lower().replace("_", "").replace("-", "").startswith("utf")


def printable_output() -> None:
    """Let stdout and stderr write what their encoding cannot show (PYTHONIOENCODING=ascii, a
    Latin-1 locale, a legacy Windows console) as escapes, instead of raising UnicodeEncodeError
    half way through a table or an error message: a thread id or a message's text may hold
    any character. Streams that are UTF-8, or that already chose how to handle errors, are
    left as they are."""
    for stream in (sys.stdout, sys.stderr):
        if stream is None or _is_utf(stream) or getattr(stream, "errors", None) != "strict":
            continue
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: print them as the strings JavaScript names them."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _when(value: Any) -> str:
    if value is None:
        return "-"
    text = value.isoformat(sep=" ", timespec="seconds") if hasattr(value, "isoformat") else str(value)
    return text.replace("+00:00", "Z")


def _minute(value: Any) -> str:
    if value is None or not hasattr(value, "astimezone"):
        return _when(value)
    import datetime as dt

    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def _short(cid: str | None) -> str:
    return "-" if not cid else cid[-12:]


def _value_lines(value: Any, width: int) -> list[str]:
    """A value as lines: one per message for message lists, else one line."""
    from checkpoint_pg.inspect.render import is_message, message_line, value_line

    if isinstance(value, list) and value and all(is_message(v) for v in value):
        return [message_line(v, width) for v in value]
    return [value_line(value, width)]


def _update_lines(update: Any, width: int) -> list[str]:
    """What one node wrote: ``channel: value`` lines, messages one per line."""
    if isinstance(update, dict):
        lines = []
        for ch, v in update.items():
            vl = _value_lines(v, max(width - len(ch) - 2, 20))
            if len(vl) == 1:
                lines.append(f"{ch}: {vl[0]}")
            else:
                lines.append(f"{ch}:")
                lines.extend(f"  {line}" for line in vl)
        return lines or ["(nothing)"]
    if isinstance(update, list):
        return [line for u in update for line in _update_lines(u, width)]
    if update is None:
        return ["(nothing)"]
    return _value_lines(update, width)


# Control characters shown as escapes: stored text (a thread id, a message an LLM or a
# user wrote, metadata) reached the terminal as is, where ESC sequences clear the screen,
# recolor the rest of the output, or name links and the window title. Tab and newline
# stay (values are shown line by line).
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c not in (0x09, 0x0A)}


def _visible(s: str) -> str:
    """``s`` with its control characters as ``\\x..`` escapes (see `_CONTROLS`)."""
    return s.translate(_CONTROLS)


def _text(s: str) -> Any:
    """Stored text for rich: never read as markup ("[/x]" raised MarkupError), its
    control characters shown as escapes."""
    from rich.text import Text

    return Text(_visible(s))


def _report(args: argparse.Namespace, data: dict[str, Any], text: str) -> int:
    if args.json:
        _print_json(data)
    else:
        print(_visible(_shorten(text)))
    return 0


def _sentence(text: str) -> str:
    """``text`` with its first letter capitalized, and nothing else changed (ids keep their case)."""
    return text[:1].upper() + text[1:]


_LONG_WORD = re.compile(r"\S{201,}")


def _shorten(text: str) -> str:
    """A message with every run of over 200 non-space characters (a pasted value, an
    id gone wrong) cut to its first 80 and a count: one line stays one line."""
    return _LONG_WORD.sub(lambda m: f"{m.group(0)[:80]}...({len(m.group(0))} characters)", text)


def _counted(n: int, noun: str) -> str:
    """"1 thread", "2 threads"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# -- asking --------------------------------------------------------------------------


def _confirm(args: argparse.Namespace, question: str) -> bool:
    """Ask on the terminal; the question goes to stderr, so stdout (--json) stays the result's."""
    if args.yes:
        return True
    question = _shorten(_sentence(question))
    if not sys.stdin or not sys.stdin.isatty():
        raise UsageError(f"{question} Not asked: stdin is not a terminal; pass --yes to proceed")
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    line = sys.stdin.readline()
    if not line:  # end of input (Ctrl-D): no
        print(file=sys.stderr)
        return False
    return line.strip().lower() in ("y", "yes")


# -- error messages ------------------------------------------------------------------


def _db_options(args: argparse.Namespace) -> str:
    """``--url URL [--prefix P] [--schema S]`` naming this database, password masked, for commands
    the messages tell the user to run."""
    return f"--url {shlex.quote(_display_url(args))}{store_options(args.prefix, args.schema)}"


# The savers' advice to Python users (call setup(), a URL they cannot know from a
# connection object); from the command line the fix is our own command.
def _cli_message(args: argparse.Namespace, exc: BaseException) -> str:
    """An error as one line; a schema that migrating fixes, with the command for this database."""
    if isinstance(exc, SchemaVersionError) and exc.upgrade_url is not None:
        if exc.current is None and _holds_langgraph_tables(_url(args)):
            # pointed at the database of the saver being replaced: the threads are there
            return (
                f"{exc.problem}; this database holds langgraph-checkpoint's tables: copy its "
                "threads into checkpoint_pg's (created first) with `checkpoint-pg import-langgraph "
                f"--from {shlex.quote(_display_url(args))} {_db_options(args)}`, or create empty "
                f"ones with `checkpoint-pg migrate upgrade {_db_options(args)}`"
            )
        others = _other_prefixes(args) if exc.current is None else []
        if others:
            # a wrong --prefix: migrating as advised would create an empty second set
            found = ", ".join(shlex.quote(p) for p in others)
            return (
                f"{exc.problem}; this database holds checkpoint_pg tables with the prefix "
                f"{found}: pass --prefix {shlex.quote(others[0])}, or create tables with this "
                f"prefix with `checkpoint-pg migrate upgrade {_db_options(args)}`"
            )
        return f"{exc.problem}: run `checkpoint-pg migrate upgrade {_db_options(args)}`"
    return _on_this_database(args, _one_line(exc))


def _other_prefixes(args: argparse.Namespace) -> list[str]:
    """The prefixes of the checkpoint_pg tables this database holds (in --schema), besides
    --prefix: each with its version table, objects and channel values (an app's own
    ``alembic_version`` beside the incumbent's ``checkpoints`` is not one). Read-only."""
    import sqlalchemy as sa

    try:
        with _sa_connection(args, write=False) as conn:
            names = set(sa.inspect(conn).get_table_names(schema=args.schema or None))
    except Exception:  # a probe for advice: never the error the user sees
        return []
    return other_prefixes(names, args.prefix)


_ADVISED = re.compile(r"`(checkpoint-pg [^`]*)`")


def _on_this_database(args: argparse.Namespace, message: str) -> str:
    """``message`` with this database's options in each command it advises that names none:
    the inspector's and the savers' messages (`checkpoint-pg history THREAD`) do not know
    the URL, and run as printed such a command reads the default database instead. Not
    when this command named none either (the same default), nor in `migrate history`,
    which reads no database."""
    if args.url is None and args.prefix == DEFAULT_PREFIX and not args.schema:
        return message

    def named(m: re.Match[str]) -> str:
        command = m.group(1)
        if "--url" in command or command.startswith("checkpoint-pg migrate history"):
            return m.group(0)
        return f"`{command} {_db_options(args)}`"

    return _ADVISED.sub(named, message)


def _holds_langgraph_tables(url: str) -> bool:
    """Whether ``url`` holds a langgraph-checkpoint-postgres or -sqlite database (read-only)."""
    from checkpoint_pg.inspect.importer import open_incumbent

    try:
        with open_incumbent(url):
            return True
    except Exception:  # a probe for advice: never the error the user sees
        return False


def _display_url(args: argparse.Namespace) -> str:
    url = _url(args)
    if _is_pg(url):
        from checkpoint_pg.postgres import mask

        return mask(url)
    return url


def _one_line(exc: BaseException) -> str:
    # control characters as escapes: a message may quote a stored thread id for the shell
    # (shlex keeps its ESC bytes), which would reach the terminal as is
    return _visible(_shorten(" ".join(str(exc).split()))) or type(exc).__name__


# -- options -------------------------------------------------------------------------


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("database")
    g.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help=f"postgresql://... or a SQLite file (default: ${ENV_URL}, else {DEFAULT_URL})",
    )
    g.add_argument("--prefix", default=argparse.SUPPRESS, help=f"table prefix (default {DEFAULT_PREFIX})")
    g.add_argument("--schema", default=argparse.SUPPRESS, help="Postgres schema of the tables")
    g.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help='print JSON for scripts instead of tables (NaN and infinite floats as the strings "NaN", '
        '"Infinity", "-Infinity")',
    )
    return p


def _destructive(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="only say what would be done; change nothing")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")


def _ns_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ns", default="", help="checkpoint namespace, or a unique prefix of it (default: the root graph)"
    )


_COMMON_DEFAULTS = {"url": None, "prefix": DEFAULT_PREFIX, "schema": None, "json": False}


# What build_parser passes each command module's add_parsers: add(name, help, func,
# description=None) adds the subcommand `name`, which runs `func` and takes the database options.
AddCommand = Callable[..., argparse.ArgumentParser]
