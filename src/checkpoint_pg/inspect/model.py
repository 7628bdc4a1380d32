"""What a thread looks like once read: checkpoints, the tasks that ran from each, and their writes.

Pure functions over decoded data (no I/O): naming tasks after the nodes that ran
them, building ``stream_mode="updates"`` chunks from their writes the way
``langgraph.pregel._io.map_output_updates`` does, and cutting a thread into runs.

How LangGraph stores a superstep: the tasks that run from checkpoint C save
their writes under C's id (``put_writes``), then the next checkpoint (C's child)
is put. So the writes stored on C are what produced its child. A task's
``task_path`` names it: ``~__pregel_pull, <node>`` for a node triggered by an
edge, ``~__pregel_push, <i>`` for the i-th ``Send`` in C's ``__pregel_tasks``
channel, ``~__pregel_push, <caller's path>, <i>, ...`` for a functional-API
``@task`` call. ``update_state`` stores its writes on the checkpoint it updates
(C, not the ``update`` checkpoint it creates) as ``~__interrupt__, <i>`` (the
i-th update of the call), or with no path for ``as_node="__input__"``; no path
names the node they were applied as, so `annotate` works it out.
"""

from __future__ import annotations

import binascii
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "NULL_TASK_ID",
    "TaskRecord",
    "CheckpointRecord",
    "ThreadRecord",
    "Run",
    "task_name",
    "output_keys",
    "task_update",
    "split_runs",
    "pending_nodes",
    "annotate",
]

NULL_TASK_ID = "00000000-0000-0000-0000-000000000000"
INTERRUPT = "__interrupt__"
ERROR = "__error__"
RESUME = "__resume__"
RETURN = "__return__"
TASKS = "__pregel_tasks"
START = "__start__"
END = "__end__"
PULL = "__pregel_pull"
PUSH = "__pregel_push"
INPUT = "__input__"
SNAPSHOT_BUMPS = "__snapshot_bumps__"
NS_SEP = "|"
EDIT = "(update)"
_MISSING = object()
_DIGITS = re.compile(r"^\d+$")


@dataclass
class TaskRecord:
    """One task that ran from a checkpoint, with its writes (values decoded)."""

    task_id: str
    path: str
    name: str
    # regular writes (idx >= 0) in idx order
    writes: list[tuple[str, Any]] = field(default_factory=list)
    interrupts: list[Any] = field(default_factory=list)
    error: Any = None
    resumes: list[Any] = field(default_factory=list)
    # writes of update_state (stored on the checkpoint it updated), not of a task that ran
    edit: bool = False

    @property
    def call(self) -> bool:
        """A functional-API ``@task`` call: it runs inside its caller's task."""
        return self.path.startswith(f"~{PUSH}, ~")

    @property
    def hidden(self) -> bool:
        """The graph's ``__start__`` task: LangGraph never streams it."""
        return self.name == START

    @property
    def done(self) -> bool:
        return bool(self.writes)


@dataclass
class CheckpointRecord:
    """A stored checkpoint with the tasks that ran from it."""

    ns: str
    checkpoint_id: str
    parent_id: str | None
    run_id: str | None
    doc: dict[str, Any]
    metadata: dict[str, Any]
    tasks: list[TaskRecord] = field(default_factory=list)
    # writes made by no task: graph input via Command, resume values, update_state
    null_writes: list[tuple[str, Any]] = field(default_factory=list)
    channel_values: dict[str, Any] | None = None
    # set by `annotate`: the nodes LangGraph would run next, and the child
    # checkpoint update_state made from this one (where its edits apply)
    next: list[str] = field(default_factory=list)
    edit_child: str | None = None

    @property
    def ran(self) -> list[TaskRecord]:
        """Tasks that ran from this checkpoint (not update_state edits)."""
        return [t for t in self.tasks if not t.edit]

    @property
    def edits(self) -> list[TaskRecord]:
        return [t for t in self.tasks if t.edit]

    @property
    def step(self) -> int | None:
        return self.metadata.get("step")

    @property
    def source(self) -> str | None:
        return self.metadata.get("source")


@dataclass
class ThreadRecord:
    """Every checkpoint of one thread (one or all namespaces), oldest first."""

    thread_id: str
    checkpoints: list[CheckpointRecord]

    def namespaces(self) -> list[str]:
        return sorted({c.ns for c in self.checkpoints})

    def of_ns(self, ns: str) -> list[CheckpointRecord]:
        return [c for c in self.checkpoints if c.ns == ns]


@dataclass
class Run:
    """The ``updates`` chunks of one ``stream()`` / ``invoke()`` call, as replayed from storage.

    ``run_id`` is the metadata ``run_id`` of the checkpoints the run created, when
    the caller passed one (LangGraph Platform does). ``complete`` is False when
    LangGraph's storage lost part of what the run streamed: a node that called
    ``interrupt()`` several times keeps only its latest interrupt.
    """

    run_id: str | None
    checkpoint_ns: str
    first_checkpoint_id: str
    chunks: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = True


# -- naming --------------------------------------------------------------------------


def task_name(path: str, sends: Sequence[Any] | None = None) -> str:
    """The node a task ran, from its stored ``task_path`` (and the checkpoint's ``Send``s)."""
    if not path:
        return "(input)"
    body = path[1:] if path.startswith("~") else path
    if body.startswith(PULL + ", "):
        return body[len(PULL) + 2 :]
    if body.startswith(PUSH + ", "):
        parts = [p.strip() for p in body.split(",")]
        if len(parts) >= 2 and _DIGITS.match(parts[1]):
            idx = int(parts[1])
            if sends is not None and 0 <= idx < len(sends):
                node = getattr(sends[idx], "node", None)
                if isinstance(node, str):
                    return node
            return f"send[{idx}]"
        # a functional-API @task call: the stored path names the caller, not the task
        caller = parts[2] if len(parts) > 2 and parts[1] == "~" + PULL else "?"
        return f"{caller}/call[{int(parts[-2]) if _DIGITS.match(parts[-2]) else '?'}]"
    if body.startswith(INTERRUPT + ", "):
        return EDIT
    return body


def output_keys(channels: Iterable[str]) -> str | list[str]:
    """The channels a graph streams as updates, guessed from the channels it stored.

    StateGraph: every state key (not ``branch:``/``join:`` control channels, not
    ``__``-prefixed internals), or ``__root__`` for a single-value state.
    Functional API (``@entrypoint``): ``__end__``.
    """
    chans = set(channels)
    if "__root__" in chans:
        return "__root__"
    state = sorted(c for c in chans if not c.startswith(("branch:", "join:", "__")))
    if not state and END in chans:
        return END
    return state


def task_update(writes: Sequence[tuple[str, Any]], keys: str | Sequence[str]) -> Any:
    """A task's value in an ``updates`` chunk (``map_output_updates`` for one task)."""
    rtn = next((v for c, v in writes if c == RETURN), _MISSING)
    if rtn is not _MISSING:
        values: list[Any] = [rtn]
    elif isinstance(keys, str):
        values = [v for c, v in writes if c == keys]
    else:
        keyset = set(keys)
        outs = [(c, v) for c, v in writes if c in keyset]
        if not outs:
            values = []
        elif any(n > 1 for n in Counter(c for c, _ in outs).values()):
            values = [{c: v} for c, v in outs]
        else:
            values = [dict(outs)]
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def group_updates(tasks: Iterable[TaskRecord], keys: str | Sequence[str]) -> dict[str, Any]:
    """{node: update} for tasks that completed; several tasks of one node give a list."""
    grouped: dict[str, list[Any]] = defaultdict(list)
    for t in tasks:
        if t.done:
            grouped[t.name].append(task_update(t.writes, keys))
    return {k: v[0] if len(v) == 1 else v for k, v in grouped.items()}


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
    if len(tail) == 2 and _DIGITS.match(tail[0]):
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


# -- runs ------------------------------------------------------------------------------


def _interrupt_chunk(task: TaskRecord) -> dict[str, Any]:
    values: list[Any] = []
    for v in task.interrupts:
        if isinstance(v, Sequence) and not isinstance(v, (str, bytes)):
            values.extend(v)
        else:
            values.append(v)
    return {INTERRUPT: tuple(values)}


def _resumed_at(cp: CheckpointRecord, child: CheckpointRecord | None) -> bool:
    """A later call resumed the graph at ``cp`` (LangGraph notes it in the child's versions_seen)."""
    if child is None:
        return False
    mine = (cp.doc.get("versions_seen") or {}).get(INTERRUPT)
    theirs = (child.doc.get("versions_seen") or {}).get(INTERRUPT)
    return theirs is not None and theirs != mine


def _events(task: TaskRecord) -> tuple[list[tuple[int, str]], bool]:
    """(run index at the checkpoint, "done" | "interrupt" | "lost"), and whether all is known."""
    if task.interrupts:
        k = len(task.resumes)
        n_int = max(k, 1) if task.done else k + 1
        events = [(r, "lost") for r in range(n_int - 1)] + [(n_int - 1, "interrupt")]
        if task.done:
            events.append((n_int, "done"))
        return events, n_int == 1
    if task.error is not None:
        return ([(1, "done")] if task.done else []), True
    return ([(0, "done")] if task.done else []), True


def split_runs(checkpoints: Sequence[CheckpointRecord], keys: str | Sequence[str]) -> list[Run]:
    """Cut one namespace's checkpoints (oldest first) into runs and rebuild their chunks.

    A run starts with new input (an ``input`` checkpoint), after ``update_state``
    or a fork, and at each resume of an interrupted or failed checkpoint. Within a
    checkpoint, chunks come in task-path order (live, parallel tasks stream in the
    order they finish), functional-API ``@task`` calls before the task that made
    them. ``update_state`` streams nothing. Call `annotate` on the checkpoints first.
    """
    runs: list[Run] = []
    children: dict[str, CheckpointRecord] = {}
    for cp in checkpoints:
        if cp.parent_id is not None and cp.source == "loop":
            children.setdefault(cp.parent_id, cp)
    # made by update_state, not by a run: as_node="__input__" makes an "input" one
    edited = {cp.edit_child for cp in checkpoints if cp.edit_child}
    current: Run | None = None

    def start(cp: CheckpointRecord, run_id: str | None) -> Run:
        run = Run(run_id, cp.ns, cp.checkpoint_id)
        runs.append(run)
        return run

    for cp in checkpoints:
        child = children.get(cp.checkpoint_id)
        # a call finishes before its caller: deeper paths first
        tasks = sorted(cp.ran, key=lambda t: (-t.path.count("~"), t.path, t.task_id))
        by_edit = cp.source in ("update", "fork") or cp.checkpoint_id in edited
        if by_edit and child is None and not tasks:
            continue  # nothing ran from this edit (yet): no run
        timeline: dict[int, list[tuple[TaskRecord, str]]] = defaultdict(list)
        for t in tasks:
            for r, what in _events(t)[0]:
                timeline[r].append((t, what))
        stopped = False  # the run stopped before running this checkpoint's tasks
        if not any(t.interrupts or t.error is not None for t in tasks):
            if not by_edit and _resumed_at(cp, child):
                stopped = True
            elif child is None and not tasks:
                # the run stopped before nodes it was about to run (interrupt_before),
                # whether or not update_state or new input followed
                stopped = bool(cp.next)
        if stopped:
            timeline = defaultdict(list, {r + 1: v for r, v in timeline.items()})
        n_runs = max([0, *timeline]) + 1 if timeline or stopped else 1
        for r in range(n_runs):
            if r == 0:
                if current is None or cp.source != "loop":
                    current = start(cp, cp.run_id)
            else:
                run_id = child.run_id if (child is not None and r == n_runs - 1) else None
                current = start(cp, run_id)
            if r == 0 and stopped:
                current.chunks.append({INTERRUPT: ()})
                continue
            # tasks that finished in an earlier run are streamed again, marked cached
            # (not @task calls: their caller gets their saved result back silently)
            for t in tasks:
                done_at = next((rr for rr, what in _events(t)[0] if what == "done"), None)
                if done_at is not None and stopped:
                    done_at += 1
                if not t.hidden and not t.call and done_at is not None and done_at < r:
                    current.chunks.append(
                        {t.name: task_update(t.writes, keys), "__metadata__": {"cached": True}}
                    )
            # a @task call's interrupt is its caller's too (the same Interrupt, by
            # id): LangGraph streams it once
            streamed: set[str] = set()
            for t, what in timeline.get(r, []):
                if t.hidden:
                    continue
                if what == "done":
                    current.chunks.append({t.name: task_update(t.writes, keys)})
                elif what == "interrupt":
                    chunk = _interrupt_chunk(t)
                    ids = {getattr(i, "id", None) for i in chunk[INTERRUPT]}
                    if ids and None not in ids and ids <= streamed:
                        continue
                    streamed.update(i for i in ids if i is not None)
                    current.chunks.append(chunk)
                else:
                    current.complete = False
    return runs
