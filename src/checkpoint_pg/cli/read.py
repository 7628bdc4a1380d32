"""The read commands (threads, history, show, diff, stats, replay): their command line, and
``threads`` and ``stats``, the commands about the whole database. The views of a thread's
checkpoints are in `checkpoints`. None of them writes.
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Sequence
from typing import Any

from checkpoint_pg.cli.checkpoints import cmd_diff, cmd_history, cmd_replay, cmd_show
from checkpoint_pg.cli.shared import (
    AddCommand,
    UsageError,
    _console,
    _db_options,
    _display_url,
    _human_bytes,
    _inspector,
    _minute,
    _ns_option,
    _one_line,
    _print_json,
    _require_threads,
    _sa_connection,
    _text,
)
from checkpoint_pg.errors import CheckpointPgError
from checkpoint_pg.schema import build_tables


def _parse_filter(items: Sequence[str] | None) -> dict[str, Any] | None:
    if not items:
        return None
    out: dict[str, Any] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        if not eq or not key:
            raise UsageError(f"invalid --filter {item!r}: use KEY=VALUE (VALUE may be JSON)")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def cmd_threads(args: argparse.Namespace) -> int:
    from checkpoint_pg.inspect.inspector import MAX_PAGE

    # the inspector's own messages name its parameters (limit, offset), not these options
    if not 1 <= args.limit <= MAX_PAGE:
        raise UsageError(f"--limit must be from 1 to {MAX_PAGE} (threads per page), got {args.limit}")
    if args.offset < 0:
        raise UsageError(f"--offset must be 0 or more, got {args.offset}")
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
                raise  # metadata edited into something else: the inspector names the thread
            raise _bad_metadata(args, exc) from None
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
        # one line whatever the terminal width: a command to copy
        con.print(_text(f"more: {_next_page_command(args, page.next_cursor)}"), soft_wrap=True)
    return 0


def _next_page_command(args: argparse.Namespace, cursor: str) -> str:
    """The command printing the next page: this one's database, filters, page size and
    --no-sizes, with the cursor (the cursor says where the page ended, not what was asked)."""
    parts = ["checkpoint-pg", "threads", *(f"--filter={f}" for f in args.filter or [])]
    if args.limit != 50:
        parts.append(f"--limit={args.limit}")
    if args.no_sizes:
        parts.append("--no-sizes")
    parts.append(f"--cursor={cursor}")
    return f"{' '.join(shlex.quote(p) for p in parts)} {_db_options(args)}"


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


_TABLE_TOP = 20  # stats: the largest threads a table shows unless --top says


def cmd_stats(args: argparse.Namespace) -> int:
    if args.top is not None and args.top < 0:
        raise UsageError(f"--top must be 0 (all threads) or more, got {args.top}")
    with _inspector(args) as ins:
        _require_threads(ins, args.thread or [])
        st = ins.stats(args.thread or None)
    if args.json:
        # every thread unless --top was given: the table's default of 20 is for the eye,
        # and a script reading the JSON must not lose threads to it
        out = st.to_dict()
        if args.top and len(st.threads) > args.top:
            out["threads"] = out["threads"][: args.top]
            out["threads_not_shown"] = len(st.threads) - args.top
        _print_json(out)
        return 0
    if args.top is None:
        args.top = _TABLE_TOP
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


# -- command line --------------------------------------------------------------------


def add_parsers(add: AddCommand, common: argparse.ArgumentParser) -> None:
    """Add threads, history, show, diff, stats and replay, in the order --help lists them."""
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
    p.add_argument("--limit", type=int, default=50, help="threads per page, 1 to 1000 (default 50)")
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
    p.add_argument(
        "--top",
        type=int,
        default=None,
        help=f"show the N largest threads (0: all; default {_TABLE_TOP} in the table, all in --json, "
        "whose 'threads_not_shown' counts what --top left out)",
    )

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
