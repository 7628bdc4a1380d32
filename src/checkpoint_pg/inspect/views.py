"""What `Inspector` returns: threads, history entries, checkpoint views, diffs, stats.

Plain dataclasses; ``to_dict()`` gives each as JSON-ready data (what the
``checkpoint-pg`` command prints with ``--json``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig

from checkpoint_pg.inspect.render import to_jsonable

__all__ = [
    "LeaseInfo",
    "ThreadInfo",
    "ThreadPage",
    "HistoryEntry",
    "CheckpointView",
    "ChannelDiff",
    "Diff",
    "ThreadStats",
    "Stats",
]


class _Fields:
    """``to_dict()``: every field, as JSON-ready data."""

    def to_dict(self) -> dict[str, Any]:
        return {k: to_jsonable(v) for k, v in self.__dict__.items()}


@dataclass
class LeaseInfo(_Fields):
    """A live lease on a thread: a run holds it (`saver.lease`) for ``seconds_left`` more."""

    thread_id: str
    seconds_left: float


@dataclass
class ThreadInfo(_Fields):
    """One row of `Inspector.threads`: a thread and how much it stores."""

    thread_id: str
    created_at: dt.datetime | None
    updated_at: dt.datetime | None
    metadata: dict[str, Any]
    checkpoints: int | None
    bytes: int | None


@dataclass
class ThreadPage:
    """A page of threads, newest first; pass ``next_cursor`` back for the next page."""

    threads: list[ThreadInfo]
    next_cursor: str | None

    def __iter__(self) -> Iterator[ThreadInfo]:
        return iter(self.threads)

    def __len__(self) -> int:
        return len(self.threads)

    def to_dict(self) -> dict[str, Any]:
        return {"threads": [t.to_dict() for t in self.threads], "next_cursor": self.next_cursor}


@dataclass
class HistoryEntry(_Fields):
    """One superstep: the checkpoint it produced and what each node wrote to produce it.

    ``updates`` are keyed by node name, valued as ``stream_mode="updates"`` shows
    them (the writes stored on the parent checkpoint by the tasks that made this
    one; on an ``update`` checkpoint, the ``update_state`` edit, under the node it
    was applied as, or "(update)" when storage cannot tell). ``interrupts``,
    ``errors`` and ``resumes`` are those of the tasks that ran *from* this
    checkpoint; ``pending`` holds writes already made from this checkpoint while
    its successor does not exist yet (a step cut short by an interrupt or an
    error), and ``next`` the nodes it would run (LangGraph's ``get_state(config).next``
    for this checkpoint, sorted; on every entry, as in ``get_state_history``).
    Each stored write appears in exactly one entry.
    """

    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    step: int | None
    source: str | None
    run_id: str | None
    created_at: str | None
    metadata: dict[str, Any]
    updates: dict[str, Any] = field(default_factory=dict)
    input: dict[str, Any] = field(default_factory=dict)
    interrupts: dict[str, list[Any]] = field(default_factory=dict)
    errors: dict[str, Any] = field(default_factory=dict)
    resumes: dict[str, Any] = field(default_factory=dict)
    pending: dict[str, Any] = field(default_factory=dict)
    next: list[str] = field(default_factory=list)


@dataclass
class CheckpointView(_Fields):
    """One checkpoint as a person reads it: its state values, what runs next, and what waits
    (interrupts, errors, pending writes)."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    step: int | None
    source: str | None
    run_id: str | None
    created_at: str | None
    metadata: dict[str, Any]
    values: dict[str, Any]
    next: list[str]
    interrupts: dict[str, list[Any]]
    pending_writes: list[tuple[str, str, Any]]
    # the error each node that failed from this checkpoint stored (LangGraph's task.error)
    errors: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChannelDiff(_Fields):
    """How one channel differs between two checkpoints.

    ``status``: "added", "removed", "changed" or "same". For lists, ``added`` and
    ``removed`` hold the elements that appear on one side only (messages matched
    by id, so ``changed`` lists the messages whose content differs under one id).
    """

    channel: str
    status: str
    before: Any = None
    after: Any = None
    added: list[Any] | None = None
    removed: list[Any] | None = None
    changed: list[tuple[Any, Any]] | None = None


@dataclass
class Diff:
    """`Inspector.diff` result: every channel present on either side."""

    a: RunnableConfig
    b: RunnableConfig
    channels: list[ChannelDiff]

    @property
    def changed(self) -> list[ChannelDiff]:
        return [c for c in self.channels if c.status != "same"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a["configurable"],
            "b": self.b["configurable"],
            "channels": [c.to_dict() for c in self.channels],
        }


@dataclass
class ThreadStats:
    """Rows and bytes one thread (or all, for the total) stores.

    ``references`` counts the object references held by channel values and
    writes, one per element of a list whether or not its hashes are stored in
    shared chunks; with ``objects`` stored once each, ``references / objects``
    is the deduplication factor. Chunks are not objects: their bytes are in
    ``ref_bytes``.
    """

    thread_id: str | None
    checkpoints: int = 0
    writes: int = 0
    channel_values: int = 0
    objects: int = 0
    references: int = 0
    checkpoint_bytes: int = 0
    ref_bytes: int = 0
    object_bytes: int = 0

    @property
    def bytes(self) -> int:
        return self.checkpoint_bytes + self.ref_bytes + self.object_bytes

    def add(self, other: ThreadStats) -> None:
        for k in (
            "checkpoints",
            "writes",
            "channel_values",
            "objects",
            "references",
            "checkpoint_bytes",
            "ref_bytes",
            "object_bytes",
        ):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "bytes": self.bytes}


@dataclass
class Stats:
    """`Inspector.stats` result: per thread (largest first) and the total."""

    threads: list[ThreadStats]
    total: ThreadStats

    def to_dict(self) -> dict[str, Any]:
        return {"threads": [t.to_dict() for t in self.threads], "total": self.total.to_dict()}
