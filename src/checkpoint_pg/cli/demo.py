"""``checkpoint-pg demo``: run the demo agent of `checkpoint_pg.demo` on a thread."""

from __future__ import annotations

import argparse
import shlex

from checkpoint_pg.cli.shared import (
    DEFAULT_URL,
    AddCommand,
    UsageError,
    _current,
    _db_options,
    _display_url,
    _print_json,
    _url,
    open_saver,
)
from checkpoint_pg.errors import CheckpointPgError, SchemaVersionError
from checkpoint_pg.schema import store_options


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        from checkpoint_pg.demo import run_demo
    except ImportError as exc:
        # demo.py ships with the package, but the agent it runs needs langgraph itself,
        # which neither the package nor its postgres/cli extras install
        raise CheckpointPgError(
            f"the demo runs a LangGraph agent and langgraph is not importable ({exc}): "
            "install it with `pip install 'langgraph>=1.2,<2'`"
        ) from None
    from checkpoint_pg import migrate
    from checkpoint_pg.inspect import Inspector

    current, head = _current(args), migrate.head()
    if current not in (None, head):
        # a database that already holds data is migrated when its owner says so, not by a demo
        raise SchemaVersionError(
            f"{_display_url(args)} is at schema revision {current}, not {head}; the demo sets up "
            "only a new database or one at head",
            current=current,
            expected=head,
            upgrade_url=_display_url(args) if migrate.known(current) else None,
        )
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
        # the options naming this database (its prefix and schema too), quoted for the shell
        where = (
            store_options(args.prefix, args.schema) if _url(args) == DEFAULT_URL else f" {_db_options(args)}"
        )
        print(f"\nnow try: checkpoint-pg history {shlex.quote(args.thread)}{where}")
    return 0


# -- command line --------------------------------------------------------------------


def add_parsers(add: AddCommand, common: argparse.ArgumentParser) -> None:
    """Add demo."""
    p = add("demo", "run the demo agent (with an approval interrupt) on a thread", cmd_demo)
    p.add_argument("--thread", default="demo", help="thread id (default: demo)")
    p.add_argument("--reject", action="store_true", help="reject the refund instead of approving it")
    p.add_argument("--replace", action="store_true", help="delete the thread first if it exists")
