"""``checkpoint-pg import-langgraph``: copy a database of langgraph-checkpoint-postgres or
-sqlite into ours; ``checkpoint-pg transfer``: another checkpoint_pg database's threads
(a SQLite file's into Postgres, say). Both with a progress bar.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from checkpoint_pg.cli.shared import (
    DEFAULT_URL,
    ENV_URL,
    AddCommand,
    _cli_message,
    _counted,
    _current,
    _display_url,
    _holds_langgraph_tables,
    _is_pg,
    _one_line,
    _report,
    _saver_options,
    _sqlite_path,
    _url,
    UsageError,
    open_saver,
)
from checkpoint_pg.errors import CheckpointPgError, NotFoundError, SchemaVersionError
from checkpoint_pg.schema import DEFAULT_PREFIX

if TYPE_CHECKING:
    from checkpoint_pg.inspect.importer import ImportReport


def cmd_import(args: argparse.Namespace) -> int:
    from checkpoint_pg.inspect.importer import import_langgraph, open_incumbent, target_reads

    with contextlib.ExitStack() as stack:
        # LANGGRAPH_AES_KEY: the app's EncryptedSerializer, for the source as for the target
        source = stack.enter_context(open_incumbent(args.source, _saver_options(args).get("serde")))
        source.threads(args.thread or None)  # a wrong --thread fails before the target is created
        saver = _open_target(args, stack)
        existing, existing_writes = target_reads(saver)
        progress_cb, finish = _progress(args)
        try:
            report = import_langgraph(
                source,
                saver,
                existing,
                thread_ids=args.thread or None,
                dry_run=args.dry_run,
                progress=progress_cb,
                existing_writes=existing_writes,
                skip_other_histories=args.skip_other_histories,
            )
        finally:
            finish()
    return _import_report(args, report)


def cmd_transfer(args: argparse.Namespace) -> int:
    from checkpoint_pg.inspect.transfer import source_of, transfer

    # the source's options, as the other commands take the target's: read only, never migrated
    src_args = argparse.Namespace(
        **{**vars(args), "url": args.source, "prefix": args.from_prefix, "schema": args.from_schema}
    )
    if args.from_schema and not _is_pg(args.source):
        raise UsageError("--from-schema is for a Postgres source; SQLite has no schemas (use --from-prefix)")
    if args.url is None and not os.environ.get(ENV_URL):
        # the other commands' default, the demo file, is not where an app moving looks
        raise UsageError(
            f"transfer needs its target: pass --url postgresql://... (or a SQLite file), or set "
            f"${ENV_URL}; it does not copy into the demo file {DEFAULT_URL}"
        )
    if _same_tables(src_args, args):
        raise UsageError(
            "--from and --url name the same tables (same database, prefix and schema): pass "
            "--url the database to copy into, or --prefix/--schema for other tables there"
        )
    with contextlib.ExitStack() as stack:
        with _on_source(src_args):
            if not _is_pg(args.source):
                path = _sqlite_path(args.source)
                if path == ":memory:" or not Path(path).is_file():
                    raise NotFoundError(
                        f"no SQLite file at {path!r}: pass --from the file checkpoint_pg wrote, "
                        "or postgresql://..."
                    )
            source = stack.enter_context(open_saver(src_args, write=False))
            # the schema check, a wrong --thread, and a key (LANGGRAPH_AES_KEY,
            # CHECKPOINT_PG_HASH_KEY) the source was not written with fail before the
            # target is created: one checkpoint is read
            threads = source_of(source).threads(args.thread or None)
            if threads:
                source.get_tuple({"configurable": {"thread_id": threads[0][0]}})
        saver = _open_target(args, stack)
        progress_cb, finish = _progress(args)
        try:
            report = transfer(
                source,
                saver,
                thread_ids=args.thread or None,
                dry_run=args.dry_run,
                progress=progress_cb,
                skip_other_histories=args.skip_other_histories,
            )
        except Exception as exc:
            if not getattr(exc, "from_source", False):
                raise
            # reading the source midway: a checkpoint the keys given cannot read, the file
            # locked, the connection lost
            with _on_source(src_args):
                raise
        finally:
            finish()
    return _import_report(args, report)


def _same_tables(a: argparse.Namespace, b: argparse.Namespace) -> bool:
    """Whether two commands' options name the same tables (a SQLite file by its real path,
    a Postgres URL as written)."""
    if (a.prefix, a.schema or None) != (b.prefix, b.schema or None):
        return False
    ua, ub = _url(a), _url(b)
    if _is_pg(ua) or _is_pg(ub):
        return ua == ub
    pa, pb = _sqlite_path(ua), _sqlite_path(ub)
    return ":memory:" not in (pa, pb) and os.path.realpath(pa) == os.path.realpath(pb)


@contextlib.contextmanager
def _on_source(src_args: argparse.Namespace) -> Iterator[None]:
    """Errors opening or reading the source said of the source (--from), not of the target
    (--url) main() would name, with the commands they advise run on the source."""
    shown = f"the source (--from {shlex.quote(_display_url(src_args))})"
    try:
        yield
    except SchemaVersionError as exc:
        if exc.current is None:
            if _holds_langgraph_tables(src_args.url):
                text = (
                    f"{shown} holds langgraph-checkpoint's tables, not checkpoint_pg's: copy its "
                    f"threads with `checkpoint-pg import-langgraph --from {shlex.quote(_display_url(src_args))}`"
                )
            else:
                where = f"prefix {src_args.prefix!r}" + (
                    f", schema {src_args.schema!r}" if src_args.schema else ""
                )
                text = f"{shown} has no checkpoint_pg tables ({where}): check --from, --from-prefix and --from-schema"
        else:
            text = f"{shown}: {_cli_message(src_args, exc)}"
            if exc.upgrade_url is not None:  # a migration fixes it, not a newer package
                text += " (this changes the source's tables)"
        exc.args, exc.upgrade_url = (text,), None  # main() prints it as it is
        raise
    except CheckpointPgError as exc:
        text = _cli_message(src_args, exc)
        # (the import's own messages about the source say so already)
        exc.args = (text if text.startswith("the source") else f"{shown}: {text}",)
        raise
    except Exception as exc:  # noqa: BLE001 - a driver's: said of the source, as one line
        if type(exc).__module__.split(".")[0] not in ("psycopg", "psycopg_pool", "sqlite3"):
            raise
        raise CheckpointPgError(f"cannot read {shown}: {type(exc).__name__}: {_one_line(exc)}") from None


def _open_target(args: argparse.Namespace, stack: contextlib.ExitStack) -> Any:
    """The saver to import into (created and migrated unless --no-setup); for a dry run,
    one that only reads, or None where the target has no tables yet (it holds nothing)."""
    if not args.dry_run:
        saver = stack.enter_context(open_saver(args, write=True, create=args.setup))
        if args.setup:
            saver.setup()
        return saver
    if _has_tables(args):
        return stack.enter_context(open_saver(args, write=False))
    return None


def _import_report(args: argparse.Namespace, report: ImportReport) -> int:
    verb = "would import" if args.dry_run else "imported"
    return _report(
        args,
        {"dry_run": bool(args.dry_run), **report.to_dict()},
        f"{verb} {_counted(report.imported, 'checkpoint')} ({_counted(report.writes, 'write')}) "
        f"of {_counted(report.threads, 'thread')}; "
        f"{report.skipped} already present"
        + (f", {report.completed} of them given the writes made since" if report.completed else "")
        + _pruned_note(report)
        + _other_histories_note(report)
        + _diverged_note(report, bool(args.dry_run)),
    )


def _diverged_note(report: ImportReport, dry_run: bool) -> str:
    """The threads that ran on both here and in the source: the source's steps are another
    branch, and the newer of the two is the thread's current state."""
    threads = report.diverged
    if not threads:
        return ""
    return (
        f"; {_counted(len(threads), 'thread')} ran on both here and in the source since an earlier copy "
        f"({_named(threads)}): the source's new steps {'would be' if dry_run else 'are'} another branch "
        "beside those made here, and the newer is the thread's current state "
        "(checkpoint-pg history THREAD shows both)"
    )


def _named(threads: list[str]) -> str:
    return ", ".join(repr(t) for t in threads[:3]) + (f" and {len(threads) - 3} more" if len(threads) > 3 else "")


def _other_histories_note(report: ImportReport) -> str:
    """The threads left as they are (--skip-other-histories): ours hold another history."""
    threads = report.other_histories
    if not threads:
        return ""
    return (
        f"; {_counted(len(threads), 'thread')} left untouched, holding another history here "
        f"({_named(threads)}): none of their checkpoints is in the source"
    )


def _pruned_note(report: ImportReport) -> str:
    """The checkpoints left out as pruned here since an earlier import, and how to get them back."""
    if not report.pruned_here:
        return ""
    threads = report.pruned_threads
    return (
        f"; {_counted(report.pruned_here, 'checkpoint')} pruned here since an earlier import not brought "
        f"back ({'thread' if len(threads) == 1 else 'threads'} {_named(threads)}): to get them back, delete the "
        "thread here (checkpoint-pg delete THREAD) and import it again"
    )


def _has_tables(args: argparse.Namespace) -> bool:
    """Whether the database of ``args`` exists and has our tables (never creates either)."""
    return _current(args) is not None


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


# -- command line --------------------------------------------------------------------


def add_parsers(add: AddCommand, common: argparse.ArgumentParser) -> None:
    """Add import-langgraph and transfer."""
    p = add(
        "import-langgraph",
        "copy a langgraph-checkpoint-postgres/-sqlite database into ours",
        cmd_import,
        "Copy every thread written by langgraph-checkpoint-postgres (postgresql://...) or "
        "langgraph-checkpoint-sqlite (a file) into our tables, deduplicating values. Idempotent and "
        "resumable: checkpoints already present are skipped, and those pruned here since are not "
        "brought back.",
    )
    p.add_argument("--from", dest="source", required=True, metavar="URL", help="the incumbent database")
    _import_options(p)
    p = add(
        "transfer",
        "copy threads of another checkpoint_pg database into this one",
        cmd_transfer,
        "Copy the threads of another checkpoint_pg database (--from: a SQLite file, or "
        "postgresql://...) into this one (--url): moving an app from SQLite to Postgres, say. "
        "The source is only read. Idempotent and resumable as import-langgraph: checkpoints "
        "already here are skipped, those pruned here since are not brought back. "
        "LANGGRAPH_AES_KEY and CHECKPOINT_PG_HASH_KEY serve both databases.",
    )
    p.add_argument("--from", dest="source", required=True, metavar="URL", help="the checkpoint_pg database to copy")
    p.add_argument(
        "--from-prefix", default=DEFAULT_PREFIX, metavar="PREFIX",
        help=f"the source's table prefix (default {DEFAULT_PREFIX})",
    )
    p.add_argument("--from-schema", metavar="SCHEMA", help="the source's Postgres schema")
    _import_options(p)


def _import_options(p: argparse.ArgumentParser) -> None:
    """The options import-langgraph and transfer share."""
    p.add_argument("--thread", action="append", metavar="THREAD", help="only these threads (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="only count what would be imported")
    p.add_argument(
        "--no-setup", dest="setup", action="store_false", help="do not create/upgrade our tables first"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--skip-other-histories",
        action="store_true",
        help="leave alone the threads ours hold with another history (none of their checkpoints "
        "is in the source: another app's, or one run on here and pruned since) and import the "
        "others; without it such a thread stops the import before anything is written",
    )
