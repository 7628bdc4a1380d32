"""What a thread looks like once read: checkpoints, the tasks that ran from each, and their writes.

The records, and pure functions over decoded data (no I/O): naming a task after
its stored path, and building ``stream_mode="updates"`` chunks from its writes
the way ``langgraph.pregel._io.map_output_updates`` does. What storage does not
name (what runs next, the node an edit was applied as) is worked out in
`checkpoint_pg.inspect.naming`; cutting a thread into runs in
`checkpoint_pg.inspect.runs`.

How LangGraph stores a superstep: the tasks that run from checkpoint C save
their writes under C's id (``put_writes``), then the next checkpoint (C's child)
is put. So the writes stored on C are what produced its child. A task's
``task_path`` names it: ``~__pregel_pull, <node>`` for a node triggered by an
edge, ``~__pregel_push, <i>`` for the i-th ``Send`` in C's ``__pregel_tasks``
channel, ``~__pregel_push, <caller's path>, <i>, ...`` for a functional-API
``@task`` call. ``update_state`` stores its writes on the checkpoint it updates
(C, not the ``update`` checkpoint it creates) as ``~__interrupt__, <i>`` (the
i-th update of the call), or with no path for ``as_node="__input__"``; no path
names the node they were applied as, so `naming.annotate` works it out.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
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
    "group_updates",
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
DIGITS = re.compile(r"^\d+$")


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
    ``interrupt()`` several times keeps only its latest interrupt. (Parallel
    interrupts resumed by separate calls are stored exactly as if resumed by one:
    replay then gives one resuming run, marked complete.)
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
        if len(parts) >= 2 and DIGITS.match(parts[1]):
            idx = int(parts[1])
            if sends is not None and 0 <= idx < len(sends):
                node = getattr(sends[idx], "node", None)
                if isinstance(node, str):
                    return node
            return f"send[{idx}]"
        # a functional-API @task call: the stored path names the caller, not the task
        caller = parts[2] if len(parts) > 2 and parts[1] == "~" + PULL else "?"
        return f"{caller}/call[{int(parts[-2]) if DIGITS.match(parts[-2]) else '?'}]"
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
