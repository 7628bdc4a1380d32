"""What every operation of the core shares: the batches it yields, and the saver's
per-process state it works with (`Ctx`: SQL, codec, caches, leases, bookkeeping)."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


from checkpoint_pg.core.codec import (
    ValueCodec,
)
from checkpoint_pg.core.values import (
    ListCache,
)
from checkpoint_pg.core.written import WrittenMessages
from checkpoint_pg.errors import (
    ConfigError,
)
from checkpoint_pg.sql import Stmt

__all__ = ["SQL", "Batch", "Ctx", "LastPuts", "Op", "StartPoints", "Touches"]


@dataclass(frozen=True, slots=True)
class Batch:
    """Statements sent together (pipelined on Postgres). ``fetch``: the op reads rows.

    ``alone``: the first batch of a read whose one statement is consistent by itself,
    and whose later batches, if any, need no snapshot in common with it: SQLite runs
    it outside a transaction, and begins one only for what comes after.
    """

    stmts: Sequence[Stmt]
    fetch: bool = True
    alone: bool = False


Op = Generator[Batch, list[Any], Any]


class SQL(Protocol):
    """What the core needs from a backend's SQL module (sql/postgres.py, sql/sqlite.py)."""

    name: str
    single_statement: bool

    def __getattr__(self, name: str) -> Any: ...


@dataclass
class Ctx:
    """Everything an operation needs besides the connection."""

    sql: Any
    codec: ValueCodec
    cache: ListCache = field(default_factory=ListCache)
    written: WrittenMessages = field(default_factory=lambda: WrittenMessages())
    single_writer: bool = False
    # whose leases (core/lease.py) this saver's writes present; clones made by
    # with_allowlist keep it, so a lease taken through the saver covers them
    lease_key: int = 0
    # thread id -> the lease a `lease()` block of this saver holds (core/lease.py)
    leases: dict[str, leases.Lease] = field(default_factory=dict)
    # single_writer: the checkpoints runs named to start from (see StartPoints)
    named: StartPoints = field(default_factory=lambda: StartPoints())
    # SQLite: threads whose row this saver's puts wrote lately (see Touches)
    touches: Touches = field(default_factory=lambda: Touches())
    # the checkpoint this saver put last on each (thread, namespace) (see LastPuts)
    last_puts: LastPuts = field(default_factory=lambda: LastPuts())


class Touches:
    """When this saver last wrote each thread's row (its updated_at), by the monotonic
    clock. A write is activity that prune(updated_before=) must see, so a put_writes
    touches the row, unless a put of this saver wrote it less than `FRESH` seconds
    ago: a run's put_writes follow its puts within milliseconds, and the touch (an
    UPDATE, or reading the row to decide) was a statement of every one of them."""

    FRESH = 0.5
    _MAX = 10_000

    def __init__(self) -> None:
        self._at: dict[str, float] = {}

    def wrote(self, thread_id: str) -> None:
        if len(self._at) >= self._MAX:
            self._at.clear()  # forgetting only costs a touch
        self._at[thread_id] = time.monotonic()

    def due(self, thread_id: str) -> bool:
        return time.monotonic() - self._at.get(thread_id, -math.inf) >= self.FRESH


class LastPuts:
    """The checkpoint this saver put last on each (thread, namespace).

    A checkpoint whose `DeltaChannel` holds no value of its own is read by
    replaying its ancestors' writes, which no value row stands for: a put can
    require nothing of them but its parent checkpoint. It requires it when this
    saver stored that parent (a run going on, step after step), so that a put after
    another process deleted or pruned the thread is refused instead of starting a
    thread that replays from nothing. Not when the parent was never stored here:
    ``durability="exit"`` puts only a run's last checkpoint, and its parent is
    one the run never stored. Kept apart from the list cache, which a refused put
    clears before its retry.
    """

    _MAX = 10_000

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], str] = {}

    def stored(self, t: str, ns: str, checkpoint_id: str) -> None:
        if len(self._last) >= self._MAX:
            self._last.clear()  # forgetting only skips a check
        self._last[(t, ns)] = checkpoint_id

    def is_last(self, t: str, ns: str, checkpoint_id: str | None) -> bool:
        return checkpoint_id is not None and self._last.get((t, ns)) == checkpoint_id


class StartPoints:
    """Checkpoints read by id (time travel, a fork, resuming an older interrupt).

    Single-writer mode refuses a step whose parent is no longer the thread's
    newest checkpoint: the sign of another run writing the thread meanwhile.
    A run that named the checkpoint it starts from branches on purpose, and
    LangGraph reads that checkpoint by id before the run's first put. That put
    is let through once; the run's later steps are guarded as any other's.
    """

    def __init__(self, size: int = 1024) -> None:
        self._keys: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        # start -> the checkpoint whose put took it
        self._taken: OrderedDict[tuple[str, str, str], str] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def add(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            self._keys[key] = None
            self._keys.move_to_end(key)
            while len(self._keys) > self._size:
                self._keys.popitem(last=False)

    def take(self, key: tuple[str, str, str], checkpoint_id: str) -> bool:
        """Whether the put of ``checkpoint_id`` from ``key`` is let through: the first
        put from a named start is, and so is that same put again (the saver's retry
        after a lost connection, which may come before the first attempt's failure
        is known); any other put from it is not. Atomic: of puts racing from one
        start, one wins."""
        with self._lock:
            if self._keys.pop(key, 0) is None:
                self._taken[key] = checkpoint_id
                while len(self._taken) > self._size:
                    self._taken.popitem(last=False)
                return True
            return self._taken.get(key) == checkpoint_id


def _ids(value: Any, what: str) -> list[Any]:
    """A sequence of ids as a list; one str is refused, not read as its characters."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigError(f"{what} must be a list of ids, got {value!r}; pass [{value!r}] for one")
    return list(value)
