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
import io
import os
import re
import shlex
import sqlite3
import sys
from collections.abc import Callable, Sequence

from checkpoint_pg.cli import demo, importing, maintain, migrate, read
from checkpoint_pg.cli.shared import (  # noqa: F401 - also the names importable from here before the split
    _COMMON_DEFAULTS,
    DEFAULT_URL,
    ENV_URL,
    PG_SCHEMES,
    UsageError,
    _cli_message,
    _common,
    _db_options,
    _display_url,
    _no_empty_options,
    _one_line,
    _short,
    open_saver,
    printable_output,
)
from checkpoint_pg.errors import CheckpointPgError, ConfigError

__all__ = ["main", "build_parser", "DEFAULT_URL", "ENV_URL"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``checkpoint-pg`` (exposed for documentation and tests)."""
    common = _common()
    parser = argparse.ArgumentParser(
        prog="checkpoint-pg",
        description="Inspect, prune, migrate and import checkpoint_pg databases (Postgres or SQLite).",
        parents=[common],
        epilog="Read commands (threads, history, show, diff, stats, replay, migrate current) never write.",
    )
    from checkpoint_pg import __version__

    parser.add_argument("--version", action="version", version=f"checkpoint-pg {__version__}")
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

    for commands in (read, maintain, migrate, importing, demo):  # in the order --help lists them
        commands.add_parsers(add, common)
    return parser


def _exit_code(exc: BaseException) -> int:
    return 2 if isinstance(exc, (UsageError, ConfigError)) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``checkpoint-pg``; returns the exit status (errors are printed as one line)."""
    printable_output()
    parser = build_parser()
    args = parser.parse_args(argv)
    for name, default in _COMMON_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    try:
        _no_empty_options(args)
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a reader gone early (`| head`) is met here, not at exit
        return status
    except BrokenPipeError:
        # the reader of our output went away: stop without a traceback, status 1 (the
        # output was cut short), and point stdout at /dev/null so that Python's own
        # flush at exit has nothing left to fail on
        _discard_stdout()
        return 1
    except KeyboardInterrupt:
        print("checkpoint-pg: interrupted", file=sys.stderr)
        return 130
    except CheckpointPgError as exc:
        print(f"checkpoint-pg: error: {_cli_message(args, exc)}", file=sys.stderr)
        return _exit_code(exc)
    except sqlite3.Error as exc:
        print(_sqlite_error(exc, args), file=sys.stderr)
        return _sqlite_status(exc)
    except Exception as exc:  # noqa: BLE001 - driver errors: one line, not a traceback
        mod = type(exc).__module__.split(".")[0]
        if mod in ("psycopg", "psycopg_pool", "sqlalchemy", "alembic"):
            # SQLAlchemy's text repeats the whole statement ([SQL: ...]): the driver's error says it
            cause = getattr(exc, "orig", None) or exc
            if isinstance(cause, sqlite3.Error):  # the migrate commands' SQLAlchemy connection
                print(_sqlite_error(cause, args), file=sys.stderr)
                return _sqlite_status(cause)
            print(
                f"checkpoint-pg: error: {type(cause).__name__}: {_one_line(cause)}{_pg_hint(cause, args)}",
                file=sys.stderr,
            )
            return 1
        raise


def _discard_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):  # not a real file (captured)
        pass


def _pg_hint(exc: BaseException, args: argparse.Namespace) -> str:
    """What to do about a Postgres connection error the server's text leaves open."""
    missing = re.search(r'database "((?:[^"]|"")+)" does not exist', str(exc))
    if missing:
        name = missing.group(1).replace('""', '"')
        return (
            f": create it first (createdb {shlex.quote(name)}, or CREATE DATABASE "
            f'"{name.replace(chr(34), chr(34) * 2)}" in psql), then '
            # with this database's options: bare, it would upgrade the default database
            f"`checkpoint-pg migrate upgrade {_db_options(args)}`, or fix the database name in the URL"
        )
    return ""


def _sqlite_error(exc: sqlite3.Error, args: argparse.Namespace) -> str:
    where = f"({_display_url(args)}){_sqlite_hint(exc)}"
    return f"checkpoint-pg: error: SQLite: {_one_line(exc)} {where}"


def _is_not_sqlite(exc: sqlite3.Error) -> bool:
    return "file is not a database" in str(exc)


def _sqlite_status(exc: sqlite3.Error) -> int:
    # --url naming a file that is not SQLite is the command line's mistake: 2, as the
    # commands that open the file to write (vacuum, migrate upgrade) say it (ConfigError)
    return 2 if _is_not_sqlite(exc) else 1


def _sqlite_hint(exc: sqlite3.Error) -> str:
    text = str(exc)
    if _is_not_sqlite(exc):
        return ": pass --url a SQLite file checkpoint_pg wrote, or postgresql://...; nothing was changed"
    if text.startswith("database is locked"):  # the busy timeout ran out
        from checkpoint_pg.sqlite import BUSY_TIMEOUT_MS

        return (
            ": another connection held a write transaction on the file for the whole busy "
            f"timeout ({BUSY_TIMEOUT_MS / 1000:g} s); nothing was changed: try again once it is done"
        )
    if "unable to open database file" in text or "readonly database" in text:
        return (
            ": check that the file exists and that you may read it (and, for a command that "
            "writes, write it and its directory)"
        )
    return ""
