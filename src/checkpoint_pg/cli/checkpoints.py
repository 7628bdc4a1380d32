"""The views of a thread's checkpoints: history (what each node wrote), show (one checkpoint),
diff (two checkpoints) and replay (the chunks its runs streamed). They only read.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from typing import Any

from checkpoint_pg.cli.shared import (
    UsageError,
    _console,
    _inspector,
    _print_json,
    _short,
    _text,
    _update_lines,
    _value_lines,
)
from checkpoint_pg.errors import ConfigError, NotFoundError


def cmd_history(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        # the inspector's own message speaks of Python's None
        raise UsageError(f"--limit must be 1 or more (leave it out for every entry), got {args.limit}")
    with _inspector(args) as ins:
        entries = ins.history(args.thread, checkpoint_ns=_ns(ins, args.thread, args.ns), limit=args.limit)
        labels = _ns_labels(ins.namespaces(args.thread)) if any(e.checkpoint_ns for e in entries) else {}
    if args.json:
        _print_json([e.to_dict() for e in entries])
        return 0
    from rich.table import Table

    con = _console()
    width = max(con.width - 40, 30)
    table = Table(title=_text(f"history of thread {args.thread!r}, oldest first"), title_justify="left")
    if labels:  # subgraphs: the prefix --ns takes
        table.add_column("namespace", no_wrap=True)
    table.add_column("step", justify="right", no_wrap=True)
    table.add_column("checkpoint", no_wrap=True)
    table.add_column("source", no_wrap=True)
    table.add_column("node", no_wrap=True)
    table.add_column("wrote")
    followed = {e.parent_checkpoint_id for e in entries if e.source == "loop"}
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
        if e.next and e.checkpoint_id not in followed:  # else the next row shows them run
            rows.append(("next", [", ".join(e.next)]))
        if not rows:
            rows.append(("", [""]))
        for i, (node, lines) in enumerate(rows):
            table.add_row(
                *([_text(labels.get(e.checkpoint_ns, "")) if i == 0 else ""] if labels else []),
                label if i == 0 else "",
                _text(_short(e.checkpoint_id)) if i == 0 else "",
                _text(str(e.source or "")) if i == 0 else "",
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
    for node, err in view.errors.items():
        text = f"{type(err).__name__}: {err}" if isinstance(err, BaseException) else str(err)
        con.print(_text(f"error from {node}: {text}"[: width + 24]))
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
        title=_text(f"{a['thread_id']}@{_short(a['checkpoint_id'])} -> {b['thread_id']}@{_short(b['checkpoint_id'])}"),
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


def cmd_replay(args: argparse.Namespace) -> int:
    with _inspector(args) as ins:
        runs = ins.runs(args.thread, checkpoint_ns=_ns(ins, args.thread, args.ns))
    if args.run_id is not None:
        runs = [r for r in runs if r.run_id == args.run_id]
        if not runs:
            raise NotFoundError(
                f"no run {args.run_id!r} in thread {args.thread!r}: see its runs with "
                f"`checkpoint-pg replay {shlex.quote(args.thread)} --runs`"
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
