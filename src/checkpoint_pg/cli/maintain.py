"""The commands that change threads: prune, delete, unlock and copy. Each asks first
(``--yes`` skips the question) and ``--dry-run`` only says what it would do. And
vacuum, which gives the space they free back and changes no thread.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from typing import Any

from checkpoint_pg.cli.shared import (
    AddCommand,
    UsageError,
    _confirm,
    _counted,
    _db_options,
    _destructive,
    _human_bytes,
    _inspector,
    _require_threads,
    _report,
    _when,
    open_saver,
)
from checkpoint_pg.errors import NotFoundError


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
    what = f"delete thread {args.thread!r}: {_counted(len(keys), 'checkpoint')}, {_counted(st.writes, 'write')}, {_human_bytes(st.bytes)}"
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
    if not _confirm(args, what + "?"):
        print("cancelled", file=sys.stderr)
        return 1
    with open_saver(args, write=True) as saver:
        saver.delete_thread(args.thread)
    return _report(
        args,
        {"deleted": args.thread, "checkpoints": len(keys)},
        f"deleted thread {args.thread!r} ({_counted(len(keys), 'checkpoint')})",
    )


def cmd_copy(args: argparse.Namespace) -> int:
    with _inspector(args) as ins:
        keys = ins.checkpoint_keys(args.src)
        dst = ins.checkpoint_keys(args.dst)
    if not keys:
        raise NotFoundError(f"thread {args.src!r} has no checkpoints: nothing to copy")
    if dst:
        raise UsageError(
            f"target thread {args.dst!r} already has {_counted(len(dst), 'checkpoint')}: delete it first "
            f"(`checkpoint-pg delete {shlex.quote(args.dst)} {_db_options(args)}`) or copy to a new thread id"
        )
    what = f"copy thread {args.src!r} ({_counted(len(keys), 'checkpoint')}) to {args.dst!r}"
    if args.dry_run:
        return _report(
            args,
            {"dry_run": True, "source": args.src, "target": args.dst, "checkpoints": len(keys)},
            f"would {what}",
        )
    if not _confirm(args, what + "?"):
        print("cancelled", file=sys.stderr)
        return 1
    with open_saver(args, write=True) as saver:
        saver.copy_thread(args.src, args.dst)
    return _report(
        args,
        {"copied": args.src, "target": args.dst, "checkpoints": len(keys)},
        f"copied {args.src!r} to {args.dst!r} ({_counted(len(keys), 'checkpoint')})",
    )


def cmd_unlock(args: argparse.Namespace) -> int:
    with _inspector(args) as ins:
        lease = ins.lease(args.thread)
        if lease is None:
            _require_threads(ins, [args.thread])
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
    if not _confirm(args, what + "?"):
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
    # a thread named twice is pruned once: counted once
    args.thread = list(dict.fromkeys(args.thread)) if args.thread else args.thread
    with _inspector(args) as ins:
        _require_threads(ins, args.thread or [])
        stale: list[str] = []
        cutoff = None
        if args.older_than is not None:
            cutoff = dt.datetime.now(dt.timezone.utc) - parse_duration(args.older_than)
            stale = ins.thread_ids_updated_before(cutoff)
            if args.thread:
                stale = [t for t in stale if t in set(args.thread)]
            result["delete_threads"] = stale
            _warn_leased(ins, stale)
            messages.append(f"delete {_counted(len(stale), 'thread')} not updated since {_when(cutoff)}")
        plans = []
        if args.keep_last is not None:
            targets = args.thread or ins.all_thread_ids()
            targets = [t for t in targets if t not in set(stale)]
            plans = [p for p in plan_keep_last(ins, targets, args.keep_last) if p.delete_at_most > 0]
            result["keep_last"] = args.keep_last
            result["trim_threads"] = [p.__dict__ for p in plans]
            n = sum(p.delete_at_most for p in plans)
            kept = _counted(args.keep_last, "checkpoint")
            messages.append(
                f"keep the last {kept} of {_counted(len(plans), 'thread')}, "
                f"deleting {_counted(n, 'checkpoint')}"
            )
    summary = "; ".join(messages)
    if args.dry_run:
        return _report(args, result, f"would {summary}")
    if not stale and not plans:
        return _report(args, result, "nothing to prune")
    if not _confirm(args, summary + "?"):
        print("cancelled", file=sys.stderr)
        return 1
    done = 0
    try:
        with open_saver(args, write=True) as saver:
            for i in range(0, len(stale), 100):
                # a thread written since the plan was drawn up is kept: checked again
                # under the thread's lock as it is deleted
                saver.prune(stale[i : i + 100], strategy="delete", updated_before=cutoff)
                done = min(i + 100, len(stale))
            if plans:
                keep_last(saver, [p.thread_id for p in plans], args.keep_last)
    except KeyboardInterrupt:
        # each batch is its own transaction: say how far it got, so nobody guesses
        parts = [f"{done} of {len(stale)} stale threads deleted (or kept, written since)"] if stale else []
        if plans:
            parts.append(
                "trimming to --keep-last was under way"
                if done == len(stale)
                else "no thread trimmed to --keep-last yet"
            )
        print(
            f"checkpoint-pg: interrupted: {'; '.join(parts)}. What was done stays done and the "
            "rest is untouched: run the same command again to finish",
            file=sys.stderr,
        )
        return 130
    if stale:
        with _inspector(args) as ins:
            kept = [t for t in stale if ins.checkpoint_keys(t)]
        if kept:
            result["kept_threads"] = kept
            summary += f"; kept {len(kept)} of them, written since the plan"
    return _report(args, result, f"done: {summary}")


def cmd_vacuum(args: argparse.Namespace) -> int:
    with open_saver(args, write=True, create=False) as saver:
        report = saver.vacuum(full=args.full)
    data = {**report.__dict__, "freed": report.freed}
    how = "rewrote the tables" if report.full else "marked free space for reuse"
    text = (
        f"vacuumed ({how}): {_human_bytes(report.bytes_before)} -> {_human_bytes(report.bytes_after)}"
    )
    if report.wal_pending:
        text += (
            "\nthe file on disk shrinks once the connections reading it finish: another "
            "connection held a read open, so the WAL could not be copied back and cut "
            "(run vacuum again then)"
        )
    elif report.freed < 0 and not report.full:
        text += (
            "\n(Postgres counted the free-space and visibility maps VACUUM made; the space "
            "of deleted rows is reused for new ones: --full gives it back to the system)"
        )
    return _report(args, data, text)


# -- command line --------------------------------------------------------------------


def add_parsers(add: AddCommand, common: argparse.ArgumentParser) -> None:
    """Add prune, delete, unlock, copy and vacuum, in the order --help lists them."""
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
        "vacuum",
        "give the space deleted threads and pruned checkpoints left back",
        cmd_vacuum,
        "SQLite: rebuilds the file without its free pages, so it shrinks (it needs as much free "
        "disk as the file for a moment, and waits for other connections' writes). Postgres: "
        "VACUUM (ANALYZE) of the saver's tables, marking the space of deleted rows free for new "
        "ones; --full rewrites them to shrink them, locking each table against all use while "
        "it does. Changes no thread.",
    )
    p.add_argument("--full", action="store_true", help="Postgres: VACUUM FULL (locks each table while it runs)")
