"""What a thread looks like once read: checkpoints, the tasks that ran from each, and their writes.

Pure functions over decoded data (no I/O): naming tasks after the nodes that ran
them, building ``stream_mode="updates"`` chunks from their writes the way
``langgraph.pregel._io.map_output_updates`` does, and cutting a thread into runs.

How LangGraph stores a superstep: the tasks that run from checkpoint C save
their writes under C's id (``put_writes``), then the next checkpoint (C's child)
is put. So the writes stored on C are what produced its child. A task's
``task_path`` names it: ``~__pregel_pull, <node>`` for a node triggered by an
edge, ``~__pregel_push, <i>, ...`` for the i-th ``Send`` in C's
``__pregel_tasks`` channel.
"""

from __future__ import annotations

import re
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


def pending_nodes(doc: Mapping[str, Any], channel_values: Mapping[str, Any] | None) -> list[str]:
    """Nodes a checkpoint would run next: edges taken but not yet consumed, and queued ``Send``s.

    Follows LangGraph's ``branch:to:<node>`` trigger channels; nodes waiting on a
    join of several edges are not reported.
    """
    versions = doc.get("channel_versions") or {}
    seen = doc.get("versions_seen") or {}
    values = channel_values or {}
    out: list[str] = []
    for ch, ver in versions.items():
        # a consumed trigger gets a new version but no value
        if not ch.startswith("branch:to:") or ch not in values:
            continue
        node = ch[len("branch:to:") :]
        before = (seen.get(node) or {}).get(ch)
        if before is None or _version_key(ver) > _version_key(before):
            out.append(node)
    for send in (channel_values or {}).get(TASKS) or ():
        node = getattr(send, "node", None)
        if isinstance(node, str):
            out.append(node)
    return out


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
    order they finish).
    """
    runs: list[Run] = []
    children: dict[str, CheckpointRecord] = {}
    for cp in checkpoints:
        if cp.parent_id is not None and cp.source == "loop":
            children.setdefault(cp.parent_id, cp)
    current: Run | None = None

    def start(cp: CheckpointRecord, run_id: str | None) -> Run:
        run = Run(run_id, cp.ns, cp.checkpoint_id)
        runs.append(run)
        return run

    for i, cp in enumerate(checkpoints):
        child = children.get(cp.checkpoint_id)
        tasks = sorted(cp.tasks, key=lambda t: (t.path, t.task_id))
        timeline: dict[int, list[tuple[TaskRecord, str]]] = defaultdict(list)
        for t in tasks:
            for r, what in _events(t)[0]:
                timeline[r].append((t, what))
        stopped = False  # the run stopped before running this checkpoint's tasks
        if not any(t.interrupts or t.error is not None for t in tasks):
            if cp.source not in ("update", "fork") and _resumed_at(cp, child):
                stopped = True
            elif child is None and not tasks and i == len(checkpoints) - 1:
                stopped = cp.source != "update" and bool(pending_nodes(cp.doc, cp.channel_values))
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
            for t in tasks:
                done_at = next((rr for rr, what in _events(t)[0] if what == "done"), None)
                if done_at is not None and stopped:
                    done_at += 1
                if not t.hidden and done_at is not None and done_at < r:
                    current.chunks.append(
                        {t.name: task_update(t.writes, keys), "__metadata__": {"cached": True}}
                    )
            for t, what in timeline.get(r, []):
                if t.hidden:
                    continue
                if what == "done":
                    current.chunks.append({t.name: task_update(t.writes, keys)})
                elif what == "interrupt":
                    current.chunks.append(_interrupt_chunk(t))
                else:
                    current.complete = False
    return runs
