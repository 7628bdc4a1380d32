"""``checkpoint-pg import-langgraph``: copy a database of langgraph-checkpoint-postgres or
-sqlite into ours, with a progress bar.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from checkpoint_pg.cli.shared import AddCommand, _counted, _current, _report, _saver_options, open_saver

if TYPE_CHECKING:
    from checkpoint_pg.inspect.importer import ImportReport


def cmd_import(args: argparse.Namespace) -> int:
    from checkpoint_pg.inspect import Inspector
    from checkpoint_pg.inspect.importer import import_langgraph, open_incumbent

    with contextlib.ExitStack() as stack:
        # LANGGRAPH_AES_KEY: the app's EncryptedSerializer, for the source as for the target
        source = stack.enter_context(open_incumbent(args.source, _saver_options(args).get("serde")))
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

        def existing_writes(t: str) -> set[tuple[str, str, str, str]]:
            return ins.write_channels(t) if ins is not None else set()

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
    verb = "would import" if args.dry_run else "imported"
    return _report(
        args,
        {"dry_run": bool(args.dry_run), **report.to_dict()},
        f"{verb} {_counted(report.imported, 'checkpoint')} ({_counted(report.writes, 'write')}) "
        f"of {_counted(report.threads, 'thread')}; "
        f"{report.skipped} already present"
        + (f", {report.completed} of them given the writes made since" if report.completed else "")
        + _pruned_note(report)
        + _other_histories_note(report),
    )


def _other_histories_note(report: ImportReport) -> str:
    """The threads left as they are (--skip-other-histories): ours hold another history."""
    threads = report.other_histories
    if not threads:
        return ""
    names = ", ".join(repr(t) for t in threads[:3]) + (f" and {len(threads) - 3} more" if len(threads) > 3 else "")
    return (
        f"; {_counted(len(threads), 'thread')} left untouched, holding another history here "
        f"({names}): none of their checkpoints is in the source"
    )


def _pruned_note(report: ImportReport) -> str:
    """The checkpoints left out as pruned here since an earlier import, and how to get them back."""
    if not report.pruned_here:
        return ""
    threads = report.pruned_threads
    names = ", ".join(repr(t) for t in threads[:3]) + (f" and {len(threads) - 3} more" if len(threads) > 3 else "")
    return (
        f"; {_counted(report.pruned_here, 'checkpoint')} pruned here since an earlier import not brought "
        f"back ({'thread' if len(threads) == 1 else 'threads'} {names}): to get them back, delete the "
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
    """Add import-langgraph."""
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
