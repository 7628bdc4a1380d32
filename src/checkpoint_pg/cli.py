"""The ``checkpoint-pg`` command: inspect threads, prune, migrate and import, on Postgres or SQLite.

A thin layer over `checkpoint_pg.inspect`. The database comes from ``--url``
or ``$CHECKPOINT_PG_URL`` (default: the demo's ``./checkpoint_pg_demo.db``).
Read commands never write: SQLite files are opened read-only and Postgres
sessions are read-only. Destructive commands ask first (``--yes`` skips the
question, ``--dry-run`` only says what would happen).

Exit status: 0 success, 1 an error (or ``migrate current`` not at head), 2 a
usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shlex
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from checkpoint_pg.errors import CheckpointPgError, ConfigError, NotFoundError
from checkpoint_pg.schema import DEFAULT_PREFIX, build_tables

__all__ = ["main", "build_parser", "DEFAULT_URL", "ENV_URL"]

ENV_URL = "CHECKPOINT_PG_URL"
DEFAULT_URL = "./checkpoint_pg_demo.db"
PG_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")


class UsageError(ConfigError):
    """A command line that cannot be carried out as written (exit status 2)."""


# -- connecting ----------------------------------------------------------------------


def _url(args: argparse.Namespace) -> str:
    return args.url or os.environ.get(ENV_URL) or DEFAULT_URL


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


def _saver_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {"prefix": args.prefix}
    if args.schema:
        opts["schema"] = args.schema
    return opts


@contextlib.contextmanager
def open_saver(args: argparse.Namespace, *, write: bool, create: bool = True) -> Iterator[Any]:
    """A sync saver on the database of ``args``; read-only unless ``write``.

    A missing SQLite file is created only for ``write`` and ``create``.
    """
    url = _url(args)
    opts = _saver_options(args)
    if _is_pg(url):
        from checkpoint_pg.postgres import PostgresSaver, conninfo_of, read_only_options

        if write:
            with PostgresSaver.from_conn_string(url, **opts) as saver:
                yield saver
            return
        import psycopg

        conninfo = conninfo_of(url)
        kw: dict[str, Any] = {"autocommit": True, "prepare_threshold": None}
        try:
            conn = psycopg.connect(conninfo, options=read_only_options(conninfo), **kw)
        except psycopg.OperationalError as exc:
            if "options" not in str(exc):  # e.g. PgBouncer refuses the startup parameter
                raise
            conn = psycopg.connect(conninfo, **kw)  # reads still run in READ ONLY transactions
        with conn:
            yield PostgresSaver(conn, **opts)
        return
    if opts.get("schema"):
        raise UsageError("--schema is for Postgres; SQLite has no schemas (use --prefix)")
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


# -- output --------------------------------------------------------------------------


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def _print_json(data: Any) -> None:
    from checkpoint_pg.inspect.render import to_jsonable

    text = json.dumps(_finite(to_jsonable(data)), indent=2, ensure_ascii=False, allow_nan=False)
    sys.stdout.write(text + "\n")


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


def _text(s: str) -> Any:
    from rich.text import Text

    return Text(s)


# -- commands: reading ----------------------------------------------------------------


def _parse_filter(items: Sequence[str] | None) -> dict[str, Any] | None:
    if not items:
        return None
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"invalid --filter {item!r}: use KEY=VALUE (VALUE may be JSON)")
        key, raw = item.split("=", 1)
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def cmd_threads(args: argparse.Namespace) -> int:
    with _inspector(args) as ins:
        try:
            page = ins.threads(
                _parse_filter(args.filter),
                limit=args.limit,
                offset=args.offset,
                cursor=args.cursor,
                sizes=not args.no_sizes,
            )
        except (ValueError, TypeError) as exc:
            if isinstance(exc, CheckpointPgError):
                raise
            raise _bad_metadata(args, exc) from None
        if any(not isinstance(t.metadata, dict) for t in page):  # a JSON string or number parses
            raise _bad_metadata(args, TypeError("not a JSON object"))
    if args.json:
        _print_json(page.to_dict())
        return 0
    from rich.table import Table

    con = _console()
    table = Table(title=f"threads (newest first) in {_display_url(args)}", title_justify="left")
    table.add_column("thread", overflow="fold", min_width=8)
    table.add_column("updated (UTC)", no_wrap=True)
    table.add_column("checkpoints", justify="right", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True, min_width=9)
    table.add_column("metadata", overflow="fold", min_width=12, ratio=1)
    for t in page:
        md = " ".join(
            f"{k}={json.dumps(v, ensure_ascii=False, default=str) if not isinstance(v, str) else v}"
            for k, v in t.metadata.items()
            if v not in ({}, [], None)
        )
        table.add_row(
            _text(t.thread_id),
            _minute(t.updated_at),
            "-" if t.checkpoints is None else str(t.checkpoints),
            _human_bytes(t.bytes),
            _text(md[:200]),
        )
    con.print(table)
    if not page.threads:
        con.print("no threads")
    if page.next_cursor:
        con.print(_text(f"more: checkpoint-pg threads --cursor {page.next_cursor}"))
    return 0


def _bad_metadata(args: argparse.Namespace, exc: Exception) -> CheckpointPgError:
    """The error naming the thread whose stored metadata is not a JSON object (the
    inspector's parse error does not say which)."""
    import sqlalchemy as sa

    t = build_tables(args.prefix, args.schema or None).threads
    with _sa_connection(args, write=False) as conn:
        for thread_id, raw in conn.execute(sa.select(t.c.thread_id, sa.cast(t.c.metadata, sa.Text))):
            try:
                ok = raw is None or isinstance(json.loads(raw), dict)
            except ValueError:
                ok = False
            if not ok:
                return CheckpointPgError(
                    f"thread {thread_id!r} has metadata that is not a JSON object in {t.fullname} "
                    f"({_one_line(exc)}: {raw[:60]!r}): it was not written by checkpoint_pg; set it to "
                    "valid JSON or NULL, or delete the thread"
                )
    return CheckpointPgError(f"a row of {t.fullname} could not be read ({_one_line(exc)})")


def _db_options(args: argparse.Namespace) -> str:
    """``--url URL [--prefix P] [--schema S]`` naming this database, password masked, for commands
    the messages tell the user to run."""
    opts = f"--url {shlex.quote(_display_url(args))}"
    if args.prefix != DEFAULT_PREFIX:
        opts += f" --prefix {shlex.quote(args.prefix)}"
    if args.schema:
        opts += f" --schema {shlex.quote(args.schema)}"
    return opts


# The savers' advice to Python users (call setup(), a URL they cannot know from a
# connection object); from the command line the fix is our own command.
_SETUP_ADVICE = re.compile(
    r"call saver\.setup\(\)(?: once)?,? or run `checkpoint-pg migrate upgrade --url [^`]*`"
)


def _cli_message(args: argparse.Namespace, exc: BaseException) -> str:
    """An error as one line, its fix said as the command to run on this database."""
    fix = f"run `checkpoint-pg migrate upgrade {_db_options(args)}`"
    return _SETUP_ADVICE.sub(lambda _: fix, _one_line(exc))


def _display_url(args: argparse.Namespace) -> str:
    url = _url(args)
    if _is_pg(url):
        from checkpoint_pg.postgres import mask

        return mask(url)
    return url


def cmd_history(args: argparse.Namespace) -> int:
    with _inspector(args) as ins:
        entries = ins.history(args.thread, checkpoint_ns=_ns(ins, args.thread, args.ns), limit=args.limit)
        labels = _ns_labels(ins.namespaces(args.thread)) if any(e.checkpoint_ns for e in entries) else {}
    if args.json:
        _print_json([e.to_dict() for e in entries])
        return 0
    from rich.table import Table

    con = _console()
    width = max(con.width - 40, 30)
    table = Table(title=f"history of thread {args.thread!r}, oldest first", title_justify="left")
    if labels:  # subgraphs: the prefix --ns takes
        table.add_column("namespace", no_wrap=True)
    table.add_column("step", justify="right", no_wrap=True)
    table.add_column("checkpoint", no_wrap=True)
    table.add_column("source", no_wrap=True)
    table.add_column("node", no_wrap=True)
    table.add_column("wrote")
    for e in entries:
        label = str(e.step) if e.step is not None else "?"
        rows: list[tuple[str, list[str]]] = []
        for node, update in e.updates.items():
            rows.append((node, _update_lines(update, width)))
        for ch, v in e.input.items():
            rows.append(("(input)", [f"{ch}: {line}" for line in _value_lines(v, width)]))
        for node, vals in e.interrupts.items():
            rows.append(
                (
                    node,
                    [
                        f"interrupt: {line}"
                        for v in vals
                        for line in _value_lines(getattr(v, "value", v), width)
                    ],
                )
            )
        for node, err in e.errors.items():
            rows.append(
                (
                    node,
                    [
                        f"error: {type(err).__name__}: {err}"[:width]
                        if isinstance(err, BaseException)
                        else f"error: {err}"
                    ],
                )
            )
        for node, val in e.resumes.items():
            rows.append((node, [f"resumed with: {line}" for line in _value_lines(val, width)]))
        for node, update in e.pending.items():
            rows.append((node, [f"(pending) {line}" for line in _update_lines(update, width)]))
        if e.next:
            rows.append(("next", [", ".join(e.next)]))
        if not rows:
            rows.append(("", [""]))
        for i, (node, lines) in enumerate(rows):
            table.add_row(
                *([labels.get(e.checkpoint_ns, "") if i == 0 else ""] if labels else []),
                label if i == 0 else "",
                _short(e.checkpoint_id) if i == 0 else "",
                (e.source or "") if i == 0 else "",
                _text(node),
                _text("\n".join(lines)),
                end_section=i == len(rows) - 1,
            )
    con.print(table)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _inspector(args) as ins:
        view = ins.show(args.thread, args.checkpoint, checkpoint_ns=_ns(ins, args.thread, args.ns))
    if args.json:
        _print_json(view.to_dict())
        return 0
    from rich.table import Table

    con = _console()
    width = max(con.width - 24, 30)
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    for k, v in (
        ("thread", view.thread_id),
        ("namespace", view.checkpoint_ns or "(root)"),
        ("checkpoint", view.checkpoint_id),
        ("parent", view.parent_checkpoint_id or "-"),
        ("step", str(view.step)),
        ("source", str(view.source)),
        ("run id", view.run_id or "-"),
        ("created", view.created_at or "-"),
        ("next", ", ".join(view.next) or "-"),
    ):
        head.add_row(k, _text(str(v)))
    con.print(head)
    table = Table(title="values", title_justify="left")
    table.add_column("channel", no_wrap=True)
    table.add_column("value")
    for ch, v in view.values.items():
        table.add_row(_text(ch), _text("\n".join(_value_lines(v, width))))
    con.print(table)
    for node, vals in view.interrupts.items():
        for v in vals:
            con.print(_text(f"interrupt from {node}: {_value_lines(getattr(v, 'value', v), width)[0]}"))
    if view.pending_writes:
        pw = Table(title="pending writes", title_justify="left")
        pw.add_column("node", no_wrap=True)
        pw.add_column("channel", no_wrap=True)
        pw.add_column("value")
        for node, ch, v in view.pending_writes:
            if ch.startswith(("branch:", "join:")):
                continue
            pw.add_row(_text(node), _text(ch), _text("\n".join(_value_lines(v, width))))
        con.print(pw)
    return 0


def _resolve_ref(ins: Any, ref: str, ns: str) -> Any:
    """The config of ``THREAD``, ``THREAD@CHECKPOINT_ID``, ``THREAD@-N`` or ``THREAD@latest``.

    Thread ids may contain '@' (e-mail addresses): when the text after the last
    '@' is no checkpoint of the thread before it, the whole ref is the thread id.
    """
    thread, _, cp = ref.rpartition("@")
    if not thread or not cp:
        return ins.resolve(ref, None, _ns(ins, ref, ns))
    try:
        return ins.resolve(thread, cp, _ns(ins, thread, ns))
    except (NotFoundError, ConfigError) as split_error:  # no such, or an ambiguous, checkpoint
        try:
            return ins.resolve(ref, None, _ns(ins, ref, ns))
        except NotFoundError:
            raise split_error from None


def _ns(ins: Any, thread: str, ns: str | None) -> str | None:
    """--ns as given, or the thread's only namespace it is a prefix of."""
    return ins.resolve_ns(thread, ns) if ns else ns


def _ns_labels(namespaces: Sequence[str]) -> dict[str, str]:
    """The shortest prefix of each namespace that no other starts with (at least name:xxxxxx),
    so what history prints is what --ns takes."""
    labels = {}
    for ns in namespaces:
        n = ns.find(":") + 7 if ":" in ns else len(ns)
        while n < len(ns) and any(o != ns and o.startswith(ns[:n]) for o in namespaces):
            n += 1
        labels[ns] = ns[:n]
    return labels


def cmd_diff(args: argparse.Namespace) -> int:
    from checkpoint_pg.inspect.render import cut_pair

    with _inspector(args) as ins:
        a, b = _resolve_ref(ins, args.a, args.ns), _resolve_ref(ins, args.b, args.ns)
        d = ins.diff(a, b, internal=args.internal)
    if args.json:
        _print_json(d.to_dict())
        return 0
    from rich.table import Table

    con = _console()
    width = max(con.width - 30, 30)
    a, b = d.a["configurable"], d.b["configurable"]
    table = Table(
        title=f"{a['thread_id']}@{_short(a['checkpoint_id'])} -> {b['thread_id']}@{_short(b['checkpoint_id'])}",
        title_justify="left",
    )
    table.add_column("channel", no_wrap=True)
    table.add_column("change", no_wrap=True)
    table.add_column("details")
    for c in d.channels:
        if c.status == "same" and not args.all:
            continue
        lines: list[str] = []
        if c.added is not None or c.removed is not None:
            lines += [f"+ {line}" for v in c.added or [] for line in _value_lines(v, width)]
            lines += [f"- {line}" for v in c.removed or [] for line in _value_lines(v, width)]
            for old, new in c.changed or []:
                was, now = cut_pair(old, new, width)
                lines += [f"~ {was}", f"  -> {now}"]
        elif c.status == "changed":
            was, now = cut_pair(c.before, c.after, width)
            lines = [f"- {was}", f"+ {now}"]
        elif c.status == "added":
            lines = [f"+ {_value_lines(c.after, width)[0]}"]
        elif c.status == "removed":
            lines = [f"- {_value_lines(c.before, width)[0]}"]
        table.add_row(_text(c.channel), c.status, _text("\n".join(lines)))
    con.print(table)
    if not d.changed:
        con.print("no differences")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    if args.top < 0:
        raise UsageError(f"--top must be 0 (all threads) or more, got {args.top}")
    with _inspector(args) as ins:
        st = ins.stats(args.thread or None)
    if args.json:
        _print_json(st.to_dict())
        return 0
    from rich.table import Table

    con = _console()
    table = Table(title=f"storage of {_display_url(args)}", title_justify="left", show_footer=True)
    cols = ("checkpoints", "writes", "channel_values", "objects", "references", "bytes")
    table.add_column("thread", footer="total", no_wrap=True)
    tot = st.total
    for col in cols:
        val = getattr(tot, col)
        table.add_column(
            col.replace("_", " "), justify="right", footer=_human_bytes(val) if col == "bytes" else str(val)
        )
    shown = st.threads[: args.top] if args.top else st.threads
    for s in shown:
        table.add_row(
            _text(s.thread_id or ""),
            *[_human_bytes(getattr(s, c)) if c == "bytes" else str(getattr(s, c)) for c in cols],
        )
    con.print(table)
    if tot.objects:
        con.print(
            f"{tot.references} references to {tot.objects} stored objects (x{tot.references / tot.objects:.1f})"
        )
    if args.top and len(st.threads) > args.top:
        con.print(f"({len(st.threads) - args.top} smaller threads not shown; --top 0 shows all)")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    with _inspector(args) as ins:
        runs = ins.runs(args.thread, checkpoint_ns=_ns(ins, args.thread, args.ns))
    if args.run_id is not None:
        runs = [r for r in runs if r.run_id == args.run_id]
        if not runs:
            raise NotFoundError(
                f"no run {args.run_id!r} in thread {args.thread!r}: see its runs with "
                f"`checkpoint-pg replay {args.thread} --runs`"
            )
    if args.json:
        if args.runs:
            _print_json(
                [
                    {
                        "run_id": r.run_id,
                        "first_checkpoint_id": r.first_checkpoint_id,
                        "complete": r.complete,
                        "chunks": r.chunks,
                    }
                    for r in runs
                ]
            )
        else:
            _print_json([c for r in runs for c in r.chunks])
        return 0
    con = _console()
    width = max(con.width - 6, 30)
    for i, r in enumerate(runs):
        if args.runs:
            note = (
                ""
                if r.complete
                else "  (incomplete: a node interrupted several times; only its last interrupt is stored)"
            )
            con.print(
                _text(f"run {i + 1}  run_id={r.run_id or '-'}  from {_short(r.first_checkpoint_id)}{note}"),
                style="bold",
            )
        for chunk in r.chunks:
            cached = isinstance(chunk.get("__metadata__"), dict) and chunk["__metadata__"].get("cached")
            for node, update in chunk.items():
                if node == "__metadata__":
                    continue
                if node == "__interrupt__":
                    vals = update or ()
                    text = (
                        "; ".join(_value_lines(getattr(v, "value", v), width)[0] for v in vals)
                        or "(before/after a node)"
                    )
                    con.print(_text(f"__interrupt__: {text}"))
                    continue
                lines = _update_lines(update, width)
                con.print(_text(f"{node}{' (cached)' if cached else ''}:"))
                for line in lines:
                    con.print(_text(f"  {line}"))
    return 0


# -- commands: writing ------------------------------------------------------------------


def _confirm(args: argparse.Namespace, question: str) -> bool:
    if args.yes:
        return True
    if not sys.stdin or not sys.stdin.isatty():
        raise UsageError(f"{question}: stdin is not a terminal to confirm; pass --yes to proceed")
    answer = input(f"{question} [y/N] ").strip().lower()
    return answer in ("y", "yes")


def _warn_leased(ins: Any, thread_ids: Sequence[str]) -> None:
    """Say on stderr which of the threads about to be deleted a running run holds (saver.lease)."""
    for t in thread_ids:
        lease = ins.lease(t)
        if lease is not None:
            print(
                f"checkpoint-pg: warning: thread {t!r} is leased by a running run ({lease.seconds_left:.0f} "
                "more seconds): deleting it makes that run fail at its next write",
                file=sys.stderr,
            )


def cmd_delete(args: argparse.Namespace) -> int:
    with _inspector(args) as ins:
        keys = ins.checkpoint_keys(args.thread)
        st = ins.stats([args.thread]).total
        if keys:
            _warn_leased(ins, [args.thread])
    if not keys:
        raise NotFoundError(f"thread {args.thread!r} has no checkpoints: nothing to delete")
    what = f"delete thread {args.thread!r}: {len(keys)} checkpoints, {st.writes} writes, {_human_bytes(st.bytes)}"
    if args.dry_run:
        return _report(
            args,
            {
                "dry_run": True,
                "thread_id": args.thread,
                "checkpoints": len(keys),
                "writes": st.writes,
                "bytes": st.bytes,
            },
            f"would {what}",
        )
    if not _confirm(args, what.capitalize() + "?"):
        print("cancelled", file=sys.stderr)
        return 1
    with open_saver(args, write=True) as saver:
        saver.delete_thread(args.thread)
    return _report(
        args,
        {"deleted": args.thread, "checkpoints": len(keys)},
        f"deleted thread {args.thread!r} ({len(keys)} checkpoints)",
    )


def cmd_copy(args: argparse.Namespace) -> int:
    with _inspector(args) as ins:
        keys = ins.checkpoint_keys(args.src)
        dst = ins.checkpoint_keys(args.dst)
    if not keys:
        raise NotFoundError(f"thread {args.src!r} has no checkpoints: nothing to copy")
    if dst:
        raise UsageError(
            f"target thread {args.dst!r} already has {len(dst)} checkpoints: delete it first "
            f"(checkpoint-pg delete {args.dst}) or copy to a new thread id"
        )
    what = f"copy thread {args.src!r} ({len(keys)} checkpoints) to {args.dst!r}"
    if args.dry_run:
        return _report(
            args,
            {"dry_run": True, "source": args.src, "target": args.dst, "checkpoints": len(keys)},
            f"would {what}",
        )
    if not _confirm(args, what.capitalize() + "?"):
        print("cancelled", file=sys.stderr)
        return 1
    with open_saver(args, write=True) as saver:
        saver.copy_thread(args.src, args.dst)
    return _report(
        args,
        {"copied": args.src, "target": args.dst, "checkpoints": len(keys)},
        f"copied {args.src!r} to {args.dst!r} ({len(keys)} checkpoints)",
    )


def cmd_unlock(args: argparse.Namespace) -> int:
    with _inspector(args) as ins:
        lease = ins.lease(args.thread)
    if lease is None:
        return _report(
            args,
            {"thread_id": args.thread, "lease": None},
            f"thread {args.thread!r} has no live lease: nothing to do",
        )
    what = (
        f"break the lease on thread {args.thread!r} (held by a run for "
        f"{lease.seconds_left:.0f} more seconds; that run is refused at its next write)"
    )
    if args.dry_run:
        return _report(
            args,
            {"dry_run": True, "thread_id": args.thread, "seconds_left": lease.seconds_left},
            f"would {what}",
        )
    if not _confirm(args, what[0].upper() + what[1:] + "?"):
        print("cancelled", file=sys.stderr)
        return 1
    with open_saver(args, write=True) as saver:
        broken = saver.break_lease(args.thread)
    return _report(
        args,
        {"thread_id": args.thread, "broken": broken},
        f"broke the lease on thread {args.thread!r}"
        if broken
        else f"the lease on thread {args.thread!r} had lapsed meanwhile",
    )


def cmd_prune(args: argparse.Namespace) -> int:
    import datetime as dt

    from checkpoint_pg.inspect.maintenance import (
        keep_last,
        parse_duration,
        plan_keep_last,
    )

    if args.keep_last is None and args.older_than is None:
        raise UsageError("prune needs --keep-last N and/or --older-than DURATION (e.g. 30d)")
    result: dict[str, Any] = {"dry_run": bool(args.dry_run)}
    messages: list[str] = []
    with _inspector(args) as ins:
        stale: list[str] = []
        cutoff = None
        if args.older_than is not None:
            cutoff = dt.datetime.now(dt.timezone.utc) - parse_duration(args.older_than)
            stale = ins.thread_ids_updated_before(cutoff)
            if args.thread:
                stale = [t for t in stale if t in set(args.thread)]
            result["delete_threads"] = stale
            _warn_leased(ins, stale)
            messages.append(f"delete {len(stale)} threads not updated since {_when(cutoff)}")
        plans = []
        if args.keep_last is not None:
            targets = args.thread or ins.all_thread_ids()
            targets = [t for t in targets if t not in set(stale)]
            plans = [p for p in plan_keep_last(ins, targets, args.keep_last) if p.delete_at_most > 0]
            result["keep_last"] = args.keep_last
            result["trim_threads"] = [p.__dict__ for p in plans]
            n = sum(p.delete_at_most for p in plans)
            messages.append(
                f"keep the last {args.keep_last} checkpoints of {len(plans)} threads, deleting up to {n}"
            )
    summary = "; ".join(messages)
    if args.dry_run:
        return _report(args, result, f"would {summary}")
    if not stale and not plans:
        return _report(args, result, "nothing to prune")
    if not _confirm(args, summary[0].upper() + summary[1:] + "?"):
        print("cancelled", file=sys.stderr)
        return 1
    with open_saver(args, write=True) as saver:
        for i in range(0, len(stale), 100):
            # a thread written since the plan was drawn up is kept: checked again
            # under the thread's lock as it is deleted
            saver.prune(stale[i : i + 100], strategy="delete", updated_before=cutoff)
        if plans:
            keep_last(saver, [p.thread_id for p in plans], args.keep_last)
    if stale:
        with _inspector(args) as ins:
            kept = [t for t in stale if ins.checkpoint_keys(t)]
        if kept:
            result["kept_threads"] = kept
            summary += f"; kept {len(kept)} of them, written since the plan"
    return _report(args, result, f"done: {summary}")


def _report(args: argparse.Namespace, data: dict[str, Any], text: str) -> int:
    if args.json:
        _print_json(data)
    else:
        print(text)
    return 0


# -- migrate -------------------------------------------------------------------------------


@contextlib.contextmanager
def _sa_connection(args: argparse.Namespace, *, write: bool, create: bool = True) -> Iterator[Any]:
    import sqlalchemy as sa
    from sqlalchemy.pool import StaticPool

    url = _url(args)
    if _is_pg(url):
        from checkpoint_pg.postgres import conninfo_of, read_only_options

        kw: dict[str, Any] = (
            {} if write else {"connect_args": {"options": read_only_options(conninfo_of(url))}}
        )
        engine = sa.create_engine(conninfo_of(url, sqlalchemy=True), poolclass=sa.pool.NullPool, **kw)
    else:
        from checkpoint_pg.sqlite import connect_sqlite

        path = _sqlite_path(url, must_exist=not (write and create))
        raw = connect_sqlite(path, read_only=not write)
        engine = sa.create_engine("sqlite://", creator=lambda: raw, poolclass=StaticPool)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def cmd_migrate(args: argparse.Namespace) -> int:
    from checkpoint_pg import migrate

    tables = build_tables(args.prefix, args.schema or None)
    action = args.action
    if action == "history":
        head = migrate.head()
        revs = [
            {"revision": r, "down_revision": d, "message": (m or "").strip(), "head": r == head}
            for r, d, m in migrate.history()
        ]
        if args.json:
            _print_json(revs)
        else:
            for r in revs:
                print(
                    f"{r['down_revision'] or '<base>'} -> {r['revision']}{' (head)' if r['head'] else ''}, {r['message']}"
                )
        return 0
    if action == "sql":
        start, end = _revision_index(args.start), _revision_index(args.end)
        if start is not None and end is not None and start >= end:
            raise UsageError(
                f"--from {args.start} is not below --to {args.end}: the upgrade between them is empty "
                "(migrate sql prints upgrades only; see the order with `checkpoint-pg migrate history`)"
            )
        dialect = args.dialect or ("postgresql" if _is_pg(_url(args)) else "sqlite")
        sql = migrate.offline_sql(tables, dialect, start=args.start, end=args.end)
        if args.json:
            _print_json({"dialect": dialect, "sql": sql})
        else:
            sys.stdout.write(sql)
        return 0
    if action == "current":
        with _sa_connection(args, write=False) as conn:
            cur = migrate.current(conn, tables)
        head = migrate.head()
        at_head = cur == head
        if args.json:
            _print_json({"current": cur, "head": head, "at_head": at_head})
        else:
            if at_head:
                state = "at head"
            elif cur is None:
                state = "no checkpoint_pg tables: run `checkpoint-pg migrate upgrade`"
            elif not migrate.known(cur):
                state = (
                    f"migrated by a newer release: upgrade the checkpoint-pg package, this one "
                    f"cannot migrate from {cur}"
                )
            else:
                state = "behind head: run `checkpoint-pg migrate upgrade`"
            print(f"current: {cur or '<none>'}  head: {head}  ({state})")
        return 0 if at_head else 1
    if action == "upgrade":
        target = args.revision or "head"
        if args.dry_run:
            return _upgrade_plan(args, _current(args), target)
        with _sa_connection(args, write=True) as conn:
            before = migrate.current(conn, tables)
            migrate.upgrade(conn, tables, target)
            after = migrate.current(conn, tables)
        text = (
            f"already at {after}, at or past {target}: nothing to do"
            if after == before
            else f"upgraded {before or '<none>'} -> {after}"
        )
        return _report(args, {"from": before, "to": after}, text)
    if action == "downgrade":
        what = f"downgrade {_display_url(args)} to {args.revision}" + (
            " (drops every checkpoint_pg table and all their data)" if args.revision == "base" else ""
        )
        if args.dry_run:
            return _report(args, {"dry_run": True, "downgrade_to": args.revision}, f"would {what}")
        if not _confirm(args, what[0].upper() + what[1:] + "?"):
            print("cancelled", file=sys.stderr)
            return 1
        with _sa_connection(args, write=True, create=False) as conn:
            before = migrate.current(conn, tables)
            migrate.downgrade(conn, tables, args.revision)
            after = migrate.current(conn, tables)
        return _report(
            args, {"from": before, "to": after}, f"downgraded {before or '<none>'} -> {after or '<base>'}"
        )
    raise UsageError(f"unknown migrate action {action!r}")  # pragma: no cover - argparse checks


def _revision_index(revision: str | None) -> int | None:
    """Where a revision stands from base (-1) to head; None when it names none of ours (or
    several: alembic then says what is wrong)."""
    from checkpoint_pg import migrate

    order = [r for r, _, _ in migrate.history()]
    if revision in (None, "base"):
        return -1
    if revision == "head":
        return len(order) - 1
    found = [i for i, r in enumerate(order) if r.startswith(revision)]
    return found[0] if len(found) == 1 else None


def _upgrade_plan(args: argparse.Namespace, before: str | None, target: str) -> int:
    """What ``migrate upgrade --dry-run`` reports: the step from the database's revision."""
    from checkpoint_pg import migrate

    if before is not None and not migrate.known(before):
        raise CheckpointPgError(
            f"the database is at revision {before}, which this release does not know: it was migrated "
            "by a newer release; upgrade the checkpoint-pg package instead of migrating"
        )
    to = _revision_index(target)
    if to is None:
        raise UsageError(f"unknown revision {target!r}: see them with `checkpoint-pg migrate history`")
    order = [r for r, _, _ in migrate.history()]
    if before is not None and order.index(before) >= to:
        where = f"{before} (head)" if target == "head" else f"{before}, at or past {target}"
        return _report(
            args, {"dry_run": True, "from": before, "to": before}, f"already at {where}: nothing to do"
        )
    end = order[to]
    sql = f"checkpoint-pg migrate sql{f' --from {before}' if before else ''} --to {end} {_db_options(args)}"
    return _report(
        args,
        {"dry_run": True, "from": before, "to": end},
        f"would upgrade {_display_url(args)} {before or '<none>'} -> {end}; see the SQL with `{sql}`",
    )


# -- import and demo --------------------------------------------------------------------------


def cmd_import(args: argparse.Namespace) -> int:
    from checkpoint_pg.inspect import Inspector
    from checkpoint_pg.inspect.importer import import_langgraph, open_incumbent

    with contextlib.ExitStack() as stack:
        source = stack.enter_context(open_incumbent(args.source))
        source.threads(args.thread or None)  # a wrong --thread fails before the target is created
        saver = None
        if not args.dry_run:
            saver = stack.enter_context(open_saver(args, write=True, create=args.setup))
            if args.setup:
                saver.setup()
        elif _has_tables(args):
            saver = stack.enter_context(open_saver(args, write=False))
        ins = Inspector(saver) if saver is not None else None

        def existing(t: str) -> set[tuple[str, str]]:
            # a dry run on a target not created yet: it holds nothing
            return set(ins.checkpoint_keys(t)) if ins is not None else set()

        progress_cb, finish = _progress(args)
        try:
            report = import_langgraph(
                source,
                saver,
                existing,
                thread_ids=args.thread or None,
                dry_run=args.dry_run,
                progress=progress_cb,
            )
        finally:
            finish()
    verb = "would import" if args.dry_run else "imported"
    return _report(
        args,
        {"dry_run": bool(args.dry_run), **report.to_dict()},
        f"{verb} {report.imported} checkpoints ({report.writes} writes) of {report.threads} threads; "
        f"{report.skipped} already present",
    )


def _has_tables(args: argparse.Namespace) -> bool:
    """Whether the database of ``args`` exists and has our tables (never creates either)."""
    return _current(args) is not None


def _current(args: argparse.Namespace) -> str | None:
    """The revision of the database of ``args``; None without our tables or without the
    SQLite file (never creates either)."""
    from checkpoint_pg import migrate

    url = _url(args)
    if not _is_pg(url) and not Path(_sqlite_path(url)).is_file():
        return None
    with _sa_connection(args, write=False) as conn:
        return migrate.current(conn, build_tables(args.prefix, args.schema or None))


def _progress(args: argparse.Namespace) -> tuple[Callable[[int, int, str], None] | None, Callable[[], None]]:
    if args.json or args.no_progress:
        return None, lambda: None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    prog = Progress(
        TextColumn("importing {task.fields[thread]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    prog.start()
    task = prog.add_task("import", total=None, thread="")

    def cb(done: int, total: int, thread: str) -> None:
        prog.update(task, completed=done, total=total, thread=thread[:30])

    return cb, prog.stop


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        from checkpoint_pg.demo import run_demo
    except ImportError as exc:  # pragma: no cover - demo.py ships with the package
        raise CheckpointPgError(f"the demo is not available in this installation: {exc}") from None
    from checkpoint_pg.inspect import Inspector

    with open_saver(args, write=True) as saver:
        saver.setup()
        if Inspector(saver).checkpoint_keys(args.thread):
            if not args.replace:
                raise UsageError(
                    f"thread {args.thread!r} already exists in {_display_url(args)}: pass --thread NAME "
                    "for a new one, or --replace to run it again from scratch"
                )
            saver.delete_thread(args.thread)
        lines: list[str] = []
        final = run_demo(
            saver, thread_id=args.thread, approve=not args.reject, out=lines.append if args.json else print
        )
    if args.json:
        _print_json({"thread_id": args.thread, "output": lines, "final": final})
    else:
        url = "" if _url(args) == DEFAULT_URL else f" --url {_display_url(args)}"
        print(f"\nnow try: checkpoint-pg history {args.thread}{url}")
    return 0


# -- parser ----------------------------------------------------------------------------------


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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``checkpoint-pg`` (exposed for documentation and tests)."""
    common = _common()
    parser = argparse.ArgumentParser(
        prog="checkpoint-pg",
        description="Inspect, prune, migrate and import checkpoint_pg databases (Postgres or SQLite).",
        parents=[common],
        epilog="Read commands (threads, history, show, diff, stats, replay, migrate current) never write.",
    )
    # No parser.set_defaults for the database options: it would change the default
    # of the argument objects every subcommand shares (parents=[common]), and a
    # subcommand would then overwrite `checkpoint-pg --url B CMD`'s B with it.
    # main() fills in what no level of the command line gave.
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(
        name: str, help: str, func: Callable[[argparse.Namespace], int], description: str | None = None
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=description or help, parents=[common])
        p.set_defaults(func=func)
        return p

    p = add(
        "threads",
        "list threads, newest first",
        cmd_threads,
        "List threads newest first with their checkpoint count, size and metadata (reads the threads table).",
    )
    p.add_argument(
        "--filter",
        action="append",
        metavar="KEY=VALUE",
        help="metadata filter, repeatable; VALUE may be JSON",
    )
    p.add_argument("--limit", type=int, default=50, help="threads per page (default 50)")
    p.add_argument("--offset", type=int, default=0, help="skip this many threads")
    p.add_argument("--cursor", help="the cursor printed after the previous page")
    p.add_argument("--no-sizes", action="store_true", help="skip counting checkpoints and bytes (fastest)")

    p = add(
        "history",
        "what each node wrote, superstep by superstep",
        cmd_history,
        "One entry per superstep, oldest first: what each node wrote, interrupts, errors, resumes; "
        "subgraph namespaces included.",
    )
    p.add_argument("thread", metavar="THREAD")
    p.add_argument(
        "--ns",
        default=None,
        help="only this checkpoint namespace ('' for the root graph), or a unique prefix of it (child:1f0a)",
    )
    p.add_argument("--limit", type=int, default=None, help="only the newest N entries")

    p = add("show", "one checkpoint: values, next nodes, pending writes", cmd_show)
    p.add_argument("thread", metavar="THREAD")
    p.add_argument(
        "checkpoint",
        metavar="CHECKPOINT",
        nargs="?",
        help="checkpoint id, or -N for N steps before the latest (default: latest)",
    )
    _ns_option(p)

    p = add(
        "diff",
        "compare two checkpoints channel by channel",
        cmd_diff,
        "Compare two checkpoints channel by channel; lists show added/removed elements (messages by id). "
        "A and B are THREAD (its latest checkpoint), THREAD@CHECKPOINT_ID, THREAD@-N (N steps before "
        "the latest) or THREAD@latest. A thread id may contain '@' (alice@example.com): the text after "
        "the last '@' is read as a checkpoint only if the thread before it has that checkpoint, else "
        "the whole of A is the thread id; alice@example.com@latest is never ambiguous.",
    )
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    _ns_option(p)
    p.add_argument("--all", action="store_true", help="also list unchanged channels")
    p.add_argument(
        "--internal", action="store_true", help="include LangGraph's control channels (branch:...)"
    )

    p = add(
        "stats",
        "rows and bytes per thread and in total",
        cmd_stats,
        "Checkpoints, writes, channel values, stored objects, references and bytes, per thread and in total.",
    )
    p.add_argument("--thread", action="append", metavar="THREAD", help="only these threads (repeatable)")
    p.add_argument("--top", type=int, default=20, help="show the N largest threads (0: all; default 20)")

    p = add(
        "replay",
        "the stream_mode='updates' chunks of a thread's runs",
        cmd_replay,
        "Print, from storage, the chunks graph.stream(..., stream_mode='updates') produced.",
    )
    p.add_argument("thread", metavar="THREAD")
    p.add_argument("--run-id", default=None, help="only the run with this metadata run_id")
    p.add_argument("--runs", action="store_true", help="group the chunks by run")
    _ns_option(p)

    p = add(
        "prune",
        "delete old checkpoints or stale threads",
        cmd_prune,
        "--keep-last N keeps the latest N checkpoints of every namespace of each thread (and what they "
        "need); --older-than 30d deletes threads not updated for that long (units s m h d w).",
    )
    p.add_argument("--keep-last", type=int, metavar="N")
    p.add_argument("--older-than", metavar="DURATION")
    p.add_argument("--thread", action="append", metavar="THREAD", help="only these threads (repeatable)")
    _destructive(p)

    p = add("delete", "delete a thread and everything it stores", cmd_delete)
    p.add_argument("thread", metavar="THREAD")
    _destructive(p)

    p = add(
        "unlock",
        "break the lease a run holds on a thread",
        cmd_unlock,
        "A run holds its thread with saver.lease(...); a crashed run's lease lapses after its ttl. "
        "unlock clears it now, and the run that held it is refused at its next write.",
    )
    p.add_argument("thread", metavar="THREAD")
    _destructive(p)

    p = add("copy", "copy a thread to a new thread id", cmd_copy)
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")
    _destructive(p)

    p = add(
        "migrate",
        "schema migrations (alembic)",
        cmd_migrate,
        "upgrade [REV] | downgrade REV | current (exit 1 unless at head) | history | sql (offline SQL for review)",
    )
    msub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    m = msub.add_parser("upgrade", help="upgrade to head (or REV)", parents=[common])
    m.add_argument("revision", nargs="?", metavar="REV")
    m.add_argument("--dry-run", action="store_true", help="only say what would be done")
    m = msub.add_parser("downgrade", help="downgrade to REV ('base' drops every table)", parents=[common])
    m.add_argument("revision", metavar="REV")
    _destructive(m)
    msub.add_parser("current", help="the database's revision; exit 1 unless at head", parents=[common])
    msub.add_parser("history", help="the revisions this package knows", parents=[common])
    m = msub.add_parser(
        "sql", help="print the upgrade SQL for a DBA to review (no database needed)", parents=[common]
    )
    m.add_argument("--dialect", choices=["postgresql", "sqlite"], help="default: from --url")
    m.add_argument("--from", dest="start", metavar="REV", help="start revision (default: empty database)")
    m.add_argument("--to", dest="end", default="head", metavar="REV", help="end revision (default: head)")

    p = add(
        "import-langgraph",
        "copy a langgraph-checkpoint-postgres/-sqlite database into ours",
        cmd_import,
        "Copy every thread written by langgraph-checkpoint-postgres (postgresql://...) or "
        "langgraph-checkpoint-sqlite (a file) into our tables, deduplicating values. Idempotent and "
        "resumable: checkpoints already present are skipped.",
    )
    p.add_argument("--from", dest="source", required=True, metavar="URL", help="the incumbent database")
    p.add_argument("--thread", action="append", metavar="THREAD", help="only these threads (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="only count what would be imported")
    p.add_argument(
        "--no-setup", dest="setup", action="store_false", help="do not create/upgrade our tables first"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = add("demo", "run the demo agent (with an approval interrupt) on a thread", cmd_demo)
    p.add_argument("--thread", default="demo", help="thread id (default: demo)")
    p.add_argument("--reject", action="store_true", help="reject the refund instead of approving it")
    p.add_argument("--replace", action="store_true", help="delete the thread first if it exists")
    return parser


def _exit_code(exc: BaseException) -> int:
    return 2 if isinstance(exc, (UsageError, ConfigError)) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``checkpoint-pg``; returns the exit status (errors are printed as one line)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name, default in _COMMON_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("checkpoint-pg: interrupted", file=sys.stderr)
        return 130
    except CheckpointPgError as exc:
        print(f"checkpoint-pg: error: {_cli_message(args, exc)}", file=sys.stderr)
        return _exit_code(exc)
    except sqlite3.Error as exc:
        print(f"checkpoint-pg: error: SQLite: {_one_line(exc)} ({_display_url(args)})", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - driver errors: one line, not a traceback
        mod = type(exc).__module__.split(".")[0]
        if mod in ("psycopg", "psycopg_pool", "sqlalchemy", "alembic"):
            print(f"checkpoint-pg: error: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
            return 1
        raise


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
