"""What storage does not name, worked out from a graph's checkpoints: the nodes a
checkpoint would run next, the ids LangGraph gives tasks, and the node each
``update_state`` edit was applied as. Pure functions (no I/O) over
`checkpoint_pg.inspect.model` records.
"""

from __future__ import annotations

import binascii
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from checkpoint_pg.inspect.model import (
    DIGITS,
    EDIT,
    INTERRUPT,
    NS_SEP,
    PULL,
    PUSH,
    SNAPSHOT_BUMPS,
    START,
    TASKS,
    CheckpointRecord,
    TaskRecord,
)

__all__ = ["pending_nodes", "trigger_map", "task_id", "edit_task_id", "annotate"]


# -- what is pending -----------------------------------------------------------------


def _version_key(v: Any) -> tuple[float, str]:
    if isinstance(v, (int, float)):
        return (float(v), "")
    s = str(v)
    head = s.split(".", 1)[0]
    return (float(head), s) if head.isdigit() else (0.0, s)


def _is_node(name: str) -> bool:
    # versions_seen also holds LangGraph's own entries (__interrupt__, __input__, ...)
    return name == START or not (name.startswith("__") and name.endswith("__"))


def trigger_map(checkpoints: Iterable[CheckpointRecord]) -> dict[str, set[str]]:
    """{channel: nodes it triggers}, learned from the ``versions_seen`` of a graph's checkpoints."""
    out: dict[str, set[str]] = defaultdict(set)
    for cp in checkpoints:
        for node, seen in (cp.doc.get("versions_seen") or {}).items():
            if _is_node(node) and isinstance(seen, Mapping):
                for ch in seen:
                    out[ch].add(node)
    return out


def _triggered(ch: str, triggers: Mapping[str, set[str]]) -> set[str]:
    nodes = set(triggers.get(ch, ()))
    if ch.startswith("branch:to:"):
        nodes.add(ch[len("branch:to:") :])
    elif ch.startswith("join:"):
        nodes.add(ch.rsplit(":", 1)[1])
    elif ch == START and not nodes:
        nodes.add(START)  # a StateGraph's; a functional-API thread learns its entrypoint
    return nodes


def _available(ch: str, values: Mapping[str, Any]) -> bool:
    """Whether a channel holds a value a node can read (a join: every edge has arrived)."""
    if ch not in values:
        return False
    if not ch.startswith("join:"):
        return True
    value = values[ch]
    # NamedBarrierValue stores the set of arrived nodes; ...AfterFinish (seen, finished)
    if isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[1], bool):
        value, finished = value
        if not finished:
            return False
    arrived = {str(v) for v in value or ()}
    starts = ch[len("join:") :].rsplit(":", 1)[0]
    if not any("+" in a for a in arrived):
        return arrived == set(starts.split("+"))
    return len("+".join(arrived)) == len(starts) and all(a in starts for a in arrived)


def pending_nodes(
    doc: Mapping[str, Any],
    channel_values: Mapping[str, Any] | None,
    triggers: Mapping[str, set[str]] | None = None,
) -> list[str]:
    """Nodes a checkpoint would run next, as LangGraph's ``get_state(config).next``.

    Queued ``Send``s first, then (sorted) every node one of whose trigger
    channels (``branch:to:<node>``, a complete ``join:...:<node>``, ``__start__``,
    or one learned in ``triggers``, see `trigger_map`) holds a value newer
    than the node has seen. Tasks that already wrote are included, as LangGraph's
    history does.
    """
    versions = doc.get("channel_versions") or {}
    if not versions:
        return []
    seen = doc.get("versions_seen") or {}
    values = channel_values or {}
    out = [s.node for s in values.get(TASKS) or () if isinstance(getattr(s, "node", None), str)]
    pulled: set[str] = set()
    for ch, ver in versions.items():
        if not _available(ch, values):
            continue
        for node in _triggered(ch, triggers or {}):
            before = (seen.get(node) or {}).get(ch)
            if before is None or _version_key(ver) > _version_key(before):
                pulled.add(node)
    return out + sorted(pulled)


# -- naming what storage does not name -----------------------------------------------


def task_id(checkpoint_id: str, version: int, *parts: str) -> str:
    """The id LangGraph gives a task (``langgraph.pregel._algo`` ``_xxhash_str``/``_uuid5_str``)."""
    ns = binascii.unhexlify(checkpoint_id.replace("-", ""))
    data = b"".join(p.encode() for p in parts)
    if version > 1:
        from xxhash import xxh3_128_hexdigest  # noqa: PLC0415 - a LangGraph dependency

        h = xxh3_128_hexdigest(ns + data)
    else:
        import hashlib  # noqa: PLC0415

        h = hashlib.sha1(ns + data, usedforsecurity=False).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def edit_task_id(checkpoint_id: str, kind: str) -> str | None:
    """The task id update_state stores an edit of ``checkpoint_id`` under when no task's fits.

    ``kind``: ``__interrupt__`` (the first update of a call), ``__input__`` (as_node="__input__").
    """
    try:
        return str(uuid.uuid5(uuid.UUID(checkpoint_id), kind))
    except ValueError:
        return None


def _task_id_of(cp: CheckpointRecord, parent_ns: str, node: str, *parts: str) -> str | None:
    """The id of a task for ``node`` prepared from ``cp`` (None when ``cp`` cannot say).

    ``parent_ns``: the checkpoint_ns of the config the task is prepared with.
    """
    try:
        version = int(cp.doc.get("v", 1))
        ns = f"{parent_ns}{NS_SEP}{node}" if parent_ns else node
        step = str((cp.step if cp.step is not None else -1) + 1)
        return task_id(cp.checkpoint_id, version, ns, step, node, *parts)
    except (ValueError, TypeError, ImportError):
        return None


def _name_calls(cp: CheckpointRecord, nodes: Sequence[str]) -> None:
    """Name functional-API ``@task`` calls after their function: their path names the caller only.

    A call's id hashes its function's name under its caller's namespace
    (``<caller>:<caller's id>``), so each name in ``nodes`` (the thread's
    ``versions_seen``) is tried.
    """
    by_path = {t.path: t for t in cp.ran}
    task_ns: dict[str, str] = {}  # path -> the namespace a task runs its calls under

    def ns_of(t: TaskRecord) -> str:
        if t.path not in task_ns:
            base = cp.ns
            if t.call:
                caller = by_path.get(_call_parts(t.path)[0])
                base = ns_of(caller) if caller is not None else ""
            task_ns[t.path] = f"{base}{NS_SEP if base else ''}{t.name}:{t.task_id}"
        return task_ns[t.path]

    # callers before their calls: shallower paths first
    for t in sorted((t for t in cp.ran if t.call), key=lambda t: t.path.count("~")):
        caller_path, idx = _call_parts(t.path)
        caller = by_path.get(caller_path)
        if caller is None or idx is None:
            continue
        parent_ns = ns_of(caller)
        # a call made by a call is in no versions_seen: it keeps "<caller>/call[<i>]"
        t.name = next(
            (n for n in nodes if _task_id_of(cp, parent_ns, n, PUSH, caller_path, idx) == t.task_id),
            f"{caller.name}/call[{idx}]",
        )


def _call_parts(path: str) -> tuple[str, str | None]:
    """(caller's path, index of the call) of a ``@task`` call's path."""
    # ~__pregel_push, <caller's path>, <i>, <1: a call in progress>
    head, *tail = path[len(f"~{PUSH}, ") :].rsplit(", ", 2)
    if len(tail) == 2 and DIGITS.match(tail[0]):
        return head, str(int(tail[0]))
    return head, None


def _infer_as_node(versions_seen: Mapping[str, Any]) -> str | None:
    """The node update_state applies an update as when none is given (``Pregel._infer_as_node``)."""
    if SNAPSHOT_BUMPS in versions_seen:
        return None  # seen versions are not what the nodes read: do not guess
    last = sorted(
        (_version_key(v), n)
        for n, seen in versions_seen.items()
        if _is_node(n) and isinstance(seen, Mapping)
        for v in seen.values()
    )
    if len(last) == 1 or (last and last[-1][0] != last[-2][0]):
        return last[-1][1]
    return None


def _control(writes: Iterable[tuple[str, Any]]) -> set[str]:
    return {c for c, _ in writes if c.startswith(("branch:", "join:"))}


def _name_edits(
    cp: CheckpointRecord,
    child: CheckpointRecord | None,
    triggers: Mapping[str, set[str]],
    control: Mapping[str, list[set[str]]],
) -> None:
    """Name update_state's edits on ``cp`` after the node each was applied as.

    Exactly when LangGraph reused the id of a task ``cp`` would run (``as_node``
    was next); when the node shows up in ``versions_seen`` for the first time;
    else, for a single update, the node LangGraph infers when ``as_node`` is
    omitted, unless the edges it wrote contradict that node's. Else "(update)".
    """
    edits = [t for t in cp.edits if t.name == EDIT]
    if not edits:
        return
    known = {t.task_id: t.name for t in cp.ran}
    for node in cp.next:
        if node in known.values():
            continue
        learned = {ch for ch, ns in triggers.items() if node in ns}
        joins = (ch for ch in cp.doc.get("channel_versions") or {} if ch.startswith("join:"))
        learned |= {ch for ch in joins if node in _triggered(ch, {})}
        # a node that never ran has learned nothing: a StateGraph node's edge channel
        for trig in (learned, {*learned, f"branch:to:{node}"}):
            tid = _task_id_of(cp, cp.ns, node, PULL, *sorted(trig))
            if tid is not None:
                known.setdefault(tid, node)
    for t in edits:
        t.name = known.get(t.task_id, EDIT)
    todo = [t for t in edits if t.name == EDIT]
    if len(todo) != 1:
        return
    (t,) = todo
    before = cp.doc.get("versions_seen") or {}
    named = {e.name for e in edits}
    new = [
        n
        for n in ((child.doc.get("versions_seen") or {}) if child is not None else {})
        if _is_node(n) and n not in before and n not in named
    ]
    if len(new) == 1:
        t.name = new[0]
        return
    if len(edits) == 1 and t.task_id == edit_task_id(cp.checkpoint_id, INTERRUPT):
        guess = _infer_as_node(before)
        seen = control.get(guess or "", [])
        mine = _control(t.writes)
        if guess and (not seen or (set.intersection(*seen) <= mine <= set.union(*seen))):
            t.name = guess


def annotate(checkpoints: Sequence[CheckpointRecord]) -> None:
    """Fill in what needs a graph's other checkpoints: ``next``, ``edit_child`` and task names.

    ``checkpoints``: one namespace's (or several, grouped here), oldest first.
    """
    by_ns: dict[str, list[CheckpointRecord]] = defaultdict(list)
    for cp in checkpoints:
        by_ns[cp.ns].append(cp)
    for cps in by_ns.values():
        triggers = trigger_map(cps)
        nodes = sorted({n for c in cps for n in (c.doc.get("versions_seen") or {}) if _is_node(n)})
        children: dict[str, CheckpointRecord] = {}
        control: dict[str, list[set[str]]] = defaultdict(list)
        for cp in cps:
            cp.next = pending_nodes(cp.doc, cp.channel_values, triggers)
            if cp.parent_id is not None and cp.source != "loop":
                children.setdefault(cp.parent_id, cp)
            _name_calls(cp, nodes)
            for t in cp.ran:
                if t.done and not t.call:
                    control[t.name].append(_control(t.writes))
        for cp in cps:
            child = children.get(cp.checkpoint_id)
            if cp.edits and child is not None:
                cp.edit_child = child.checkpoint_id
            _name_edits(cp, child, triggers, control)
