"""The saver's operations as I/O-free generators.

Each operation yields `Batch`es of statements and receives their rows back;
`checkpoint_pg.shells` drives the same generator on a sync or an async
connection, inside one transaction. So put, list, prune... are written once.
"""

from __future__ import annotations

import json
import math
import threading
import time
import weakref
from collections import OrderedDict, defaultdict
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    PendingWrite,
    writes_sort_key,
)

from checkpoint_pg.core import lease as leases
from checkpoint_pg.core.chunks import CHUNK, CHUNK_TYPE, chunk_runs, expand_refs, stored_position
from checkpoint_pg.core.codec import (
    EncodedValue,
    StoredObject,
    ValueCodec,
    assemble_dict,
    chunkable,
    inlinable,
    known_by_identity,
    split_refs,
)
from checkpoint_pg.core.config import (
    before_id_of,
    check_filter,
    check_put,
    check_text,
    checkpoint_config,
    compact_json,
    loads_json,
    metadata_json,
    target_of,
)
from checkpoint_pg.core.values import (
    MISSING,
    Head,
    ListCache,
    ListState,
    ValueRow,
    is_sortable_version,
    plan_channel_value,
    resolve_hashes,
    stands_in,
    unique_objects,
)
from checkpoint_pg.core.codec import _BaseMessage  # one import guard, in codec.py
from checkpoint_pg.errors import (
    ConfigError,
    IntegrityError,
    SerializationError,
    ThreadBusyError,
)
from checkpoint_pg.schema import KIND
from checkpoint_pg.sql import Stmt

__all__ = ["Batch", "Ctx", "Op", "ops"]


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


def _replays_ancestors(
    metadata: Mapping[str, Any], versions: Mapping[str, Any], values: Mapping[str, Any]
) -> bool:
    """Whether a checkpoint being put has a `DeltaChannel` its reads rebuild from its
    ancestors: one counted since its last snapshot, with a version and no value here."""
    counted = metadata.get("counters_since_delta_snapshot")
    return bool(counted) and any(ch in versions and ch not in values for ch in counted)


def _keeps_history(ns: str) -> bool:
    """Whether ``ns`` is the namespace of a subgraph compiled with ``checkpointer=True``
    (its last part is the node's name, with no task id): its history goes on across
    the runs of the thread, and a run replaying or forking the parent graph starts it
    afresh, with no parent, though it holds checkpoints. Single-writer mode lets that
    first put through (LangGraph loses the error of a refused one inside an interrupted
    subgraph: the run went on, its checkpoint missing); its next steps are guarded."""
    return bool(ns) and ":" not in ns.rsplit("|", 1)[-1]


def parent_gone(t: str, ns: str, parent: str) -> IntegrityError:
    return IntegrityError(
        f"checkpoint {parent!r} of thread {t!r}"
        + (f" (namespace {ns!r})" if ns else "")
        + " is no longer stored, and the checkpoint being put replays its DeltaChannel "
        "values from it: the thread was deleted or pruned while the run was writing; "
        "nothing was saved. Load the thread's current state and run again"
    )


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


def _busy(thread_id: str) -> ThreadBusyError:
    return ThreadBusyError(
        f"thread {thread_id!r} is being run by another writer: a newer checkpoint than this "
        "run's parent was stored meanwhile (single_writer=True). Wait for the other run, "
        "then continue from the thread's latest state",
        thread_id=thread_id,
    )


class WrittenMessages:
    """Messages saved by put_writes, by object identity, until a put stores them.

    LangGraph saves a task's writes on a background thread while its loop
    gives the same message objects their ids (`add_messages`) in place, so a
    write can be serialized before its message got the id the checkpoint's
    list then holds: two objects for one message. The write is then repointed
    at the list's object and the stale one deleted, by whichever of the two
    calls finishes second: a put that finds the write already stored, or else
    the put_writes itself once its write is in (a put may commit first, on
    another pooled connection).

    One message object may be in several writes before a put stores it (a
    subgraph's input write holds the parent's messages, a node returns the
    list it was given, or writes one message to two channels): each write is
    an entry of its own, and the put repoints every one of them. Only writes of
    the put's own thread: an object shared by two threads is stored in each.
    """

    PENDING, STORED, CLAIMED = range(3)

    def __init__(self, size: int = 10_000) -> None:
        # id(obj) -> its entries, each [obj, hash written, write key, position,
        # state, hash the list holds]; an entry keeps obj alive, so its id is not reused
        self._data: OrderedDict[int, list[list[Any]]] = OrderedDict()
        # id(obj) -> [weak reference to obj, its entries...] of the messages of writes
        # read back from storage (`stored_as`): held weakly, so a read nobody resumes
        # from (get_state polling an interrupted thread) does not keep its copies alive
        self._reads: dict[int, list[Any]] = {}
        self._size = size
        self._lock = threading.Lock()

    def _add(self, entry: list[Any]) -> None:
        obj, key, pos = entry[0], entry[2], entry[3]
        entries = self._data.get(id(obj))
        if entries is None or entries[0][0] is not obj:
            self._data[id(obj)] = [entry]
        else:
            for i, old in enumerate(entries):
                if old[2] == key and old[3] == pos:
                    # the same write again (put_writes retried): a put's claim still holds
                    if old[4] == self.CLAIMED and entry[4] == self.PENDING:
                        entry[4], entry[5] = self.CLAIMED, old[5]
                    entries[i] = entry
                    break
            else:
                entries.append(entry)
            self._data.move_to_end(id(obj))
        while len(self._data) > self._size:
            self._data.popitem(last=False)

    def _drop(self, entry: list[Any]) -> None:
        entries = self._data.get(id(entry[0]))
        if entries is None:
            return
        for i, e in enumerate(entries):
            if e is entry:
                del entries[i]
                break
        if not entries:
            del self._data[id(entry[0])]

    def reserve(self, obj: Any, key: tuple[str, str, str, str, int], pos: int) -> list[Any]:
        """put_writes is about to serialize ``obj`` and store it under ``key``: its
        entry, to pass to `serialized` and `stored`.

        Registered first: a put that stores the message between its serializing
        and its registering would otherwise find nothing to claim.
        """
        entry = [obj, None, key, pos, self.PENDING, None]
        with self._lock:
            self._add(entry)
        return entry

    def serialized(self, entry: list[Any], h: bytes) -> None:
        """put_writes serialized ``entry``'s message as ``h``."""
        with self._lock:
            entry[1] = h
            if entry[4] == self.CLAIMED and entry[5] == h:
                self._drop(entry)  # a put stored it as it was written
                entry[4] = None

    def release(self, entry: list[Any]) -> None:
        """put_writes stored ``entry``'s message inside a value stored whole (a list
        pickled whole, see `ValueCodec.composes`): no hash of its own to repoint."""
        with self._lock:
            self._drop(entry)
            entry[4] = None

    def stored(self, entry: list[Any]) -> tuple[Any, ...] | None:
        """put_writes stored ``entry``'s write: the repoint to do now, if a put asked for one."""
        with self._lock:
            if entry[4] == self.CLAIMED:
                self._drop(entry)
                entry[4] = None
                return _fixup(entry)
            if entry[4] == self.PENDING:
                entry[4] = self.STORED
            return None

    def stored_as(self, obj: Any, key: tuple[str, str, str, str, int], pos: int, h: bytes) -> None:
        """A write read back from storage holds ``obj`` (no id yet) as ``h`` under ``key``:
        resuming, LangGraph applies the write again and gives ``obj`` its id in place, so
        the put storing it repoints the write (as for a write made in this process)."""
        oid = id(obj)
        entry = [None, h, key, pos, self.STORED, None]
        with self._lock:
            reads = self._reads.get(oid)
            if reads is None or reads[0]() is not obj:
                reads = self._reads[oid] = [weakref.ref(obj, lambda ref: self._forget(oid, ref))]
            for i in range(1, len(reads)):
                if reads[i][2] == key and reads[i][3] == pos:
                    reads[i] = entry  # the same write read again
                    break
            else:
                reads.append(entry)

    def _forget(self, oid: int, ref: Any) -> None:
        # a message read back died unclaimed; no lock: a collection may run while it is held
        reads = self._reads.get(oid)
        if reads is not None and reads[0] is ref:
            self._reads.pop(oid, None)

    def claim(self, obj: Any, h: bytes, thread_id: str) -> list[tuple[Any, ...]]:
        """A put of ``thread_id`` stored ``obj`` as ``h``: the repoints to do now, of
        the writes that are in (the others' put_writes repoint once they are)."""
        out: list[tuple[Any, ...]] = []
        # Only a message given its id since it was written is the write's message at
        # another hash: one still without an id was edited in place (a node, a review
        # through get_state) after its write, which must keep what the node wrote.
        # (A put may store the message before the put_writes registers it: LangGraph
        # saves both on background threads, so the entry can wait for a later put.)
        ided = getattr(obj, "id", None) is not None
        with self._lock:
            reads = self._reads.get(id(obj))
            if reads is not None and reads[0]() is obj:
                for entry in reads[1:]:
                    if entry[2][0] == thread_id:
                        reads.remove(entry)
                        if entry[1] != h and ided:
                            entry[5] = h
                            out.append(_fixup(entry))
                if len(reads) == 1:
                    del self._reads[id(obj)]
            entries = self._data.get(id(obj))
            if entries is None or entries[0][0] is not obj:
                return out
            for entry in list(entries):
                if entry[2][0] != thread_id:
                    continue
                if entry[1] == h or not ided:  # (None while put_writes is serializing it)
                    self._drop(entry)
                    entry[4] = None
                    continue
                entry[5] = h
                if entry[4] == self.STORED:
                    self._drop(entry)
                    entry[4] = None
                    out.append(_fixup(entry))
                else:
                    entry[4] = self.CLAIMED  # the put_writes repoints once its write is in
        return out


def _fixup(entry: list[Any]) -> tuple[Any, ...]:
    """Arguments of `repoint_write` for a WrittenMessages entry."""
    _, old, (t, ns, cid, task, idx), pos, _, new = entry
    return (t, ns, cid, task, idx, pos, old, new)


@dataclass
class Memo:
    """Objects (raw, and decoded on first use) and resolved lists of one read.

    Shared across the pages of a listing, so each stored object is fetched and
    decoded once per listing, however many checkpoints hold it.
    """

    raw: dict[tuple[str, bytes], tuple[str, bytes]] = field(default_factory=dict)
    objects: dict[tuple[str, bytes], Any] = field(default_factory=dict)
    # elements a run in this process already holds (ListCache): used as they are
    known: dict[bytes, Any] = field(default_factory=dict)
    lists: dict[tuple[str, str, str], dict[str, tuple[bytes, ...]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    # per thread, hash -> data of the chunks among ``raw`` (see core/chunks.py)
    chunks: dict[str, dict[bytes, bytes]] = field(default_factory=lambda: defaultdict(dict))

    def add(self, t: str, h: bytes, typ: str, data: bytes) -> None:
        """A stored object read (or remembered) for thread ``t``."""
        self.raw[(t, h)] = (typ, data)
        if typ == CHUNK_TYPE:
            self.chunks[t][h] = data


# -- writing ------------------------------------------------------------------------


def put(
    ctx: Ctx,
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: ChannelVersions,
    unfinished: list[tuple[Any, ...]] | None = None,
) -> Op:
    """Store a checkpoint. ``unfinished``: the call's own list, shared by its attempts,
    of repoints an attempt claimed (see `WrittenMessages`) and may not have committed."""
    target = target_of(config)
    t, ns, parent = target.thread_id, target.ns, target.checkpoint_id
    check_put(checkpoint, metadata, new_versions)
    cid = checkpoint["id"]
    if not isinstance(cid, str) or not cid:
        raise ConfigError(f"checkpoint id must be a non-empty str, got {cid!r}")
    check_text(cid, "checkpoint id")
    values = checkpoint.get("channel_values") or {}
    versions = checkpoint.get("channel_versions") or {}
    rows: list[ValueRow] = []
    objs = []
    scalars: list[tuple[ValueRow, list[StoredObject]]] = []
    states: list[tuple[tuple[str, str, str], ListState]] = []
    required: dict[tuple[str, str], None] = {}
    # small scalars kept in the checkpoint's row, every one it holds (see `inlinable`)
    inline: dict[str, Any] = {}
    inlines = ctx.codec.inlines
    for ch in versions:
        check_text(ch, "channel name")
        if inlines and ch in values and inlinable(values[ch]):
            inline[ch] = values[ch]
    for ch, ver in new_versions.items():
        check_text(ch, "channel name")
        if ch not in values or ch in inline:
            # An empty channel has a version but no row: reading finds nothing
            # and leaves it out, as LangGraph expects of an empty channel.
            continue
        row, row_objs, needs, state = plan_channel_value(
            (t, ns, ch), ver, values[ch], ctx.codec, ctx.cache
        )
        if state is not None:
            states.append(((t, ns, ch), state))
        rows.append(row)
        objs.extend(row_objs)
        if row.kind == KIND.SCALAR:
            scalars.append((row, row_objs))
        if needs is not None:
            required[(ch, needs)] = None
    listed = _listed_messages(values, rows) if _BaseMessage is not None else []
    for ch, ver in versions.items():
        if ch not in new_versions and ch in values and ch not in inline:
            if not inlines and not ctx.codec.encrypted and inlinable(values[ch]):
                # A saver that inlines (the default one) may have kept it in the earlier
                # checkpoint's row only, without a value row to require: a saver given a
                # hash_key or a serde of its own, continuing the thread, stores the row
                # (a no-op when it is there) instead of refusing the put as BaseGone.
                row, row_objs, _, _ = plan_channel_value(
                    (t, ns, ch), ver, values[ch], ctx.codec, ctx.cache
                )
                rows.append(row)
                objs.extend(row_objs)
                continue
            # a value carried over from an earlier checkpoint must still be stored
            required[(ch, str(ver))] = None
    # the id is the row's key and the values live in their own rows, but the small
    # scalars, which the row keeps as its channel_values
    doc_fields = {k: v for k, v in checkpoint.items() if k not in ("channel_values", "id")}
    if inline:
        doc_fields["channel_values"] = inline
    try:
        doc = compact_json(doc_fields)
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"checkpoint {cid!r} has fields that are not JSON: {exc}"
        ) from None
    md, md_json = metadata_json(config, metadata)
    run_id = md.get("run_id")
    # Single-writer mode guards the steps of a run; forks and update_state
    # (sources "fork", "update"), and the first put of a run that named its
    # starting checkpoint, branch from an older checkpoint on purpose.
    guard = (
        ctx.single_writer
        and md.get("source") in ("loop", "input")
        and not (parent is not None and ctx.named.take((t, ns, parent), cid))
        and not (parent is None and _keeps_history(ns))
    )
    lease = leases.held(ctx.lease_key, t, ctx.leases)
    thread_md = md_json if ns == "" else None  # the thread row shows its root's metadata
    need_parent = ctx.last_puts.is_last(t, ns, parent) and _replays_ancestors(md, versions, values)
    stmts = ctx.sql.put_checkpoint(
        t,
        ns,
        thread_md,
        unique_objects(objs),
        rows,
        cid,
        parent,
        None if run_id is None else str(run_id),
        doc,
        md_json,
        list(required),
        guard,
        lease,
        need_parent,
    )
    if not ctx.sql.single_statement:
        # SQLite: the checks run first in the same BEGIN IMMEDIATE transaction
        # (Postgres runs them inside the put function)
        lease_row, *found = yield Batch(
            ctx.sql.put_checks(t, ns, cid, parent, guard, thread_md, need_parent)
        )
        _check_lease(t, lease_row, lease)
        if guard and found.pop(0):
            raise _busy(t)
        if need_parent and not found.pop(0):
            raise parent_gone(t, ns, parent)  # type: ignore[arg-type]
    yield Batch(stmts, fetch=False)
    ctx.last_puts.stored(t, ns, cid)
    for key, state in states:
        ctx.cache.set(key, state)
    ctx.cache.remember_scalars(t, ns, scalars)
    if not ctx.sql.single_statement:
        # a version given here without a value has no row (see `_head`)
        ctx.cache.remember_empty(
            t, ns, [(ch, ver) for ch, ver in new_versions.items() if ch not in values and type(ver) is str]
        )
        head = _head(ctx, t, ns, cid, parent, doc, versions, values, inline, new_versions)
        ctx.cache.set_head(t, ns, head)
        ctx.touches.wrote(t)
    # after the list's objects are stored: a write still pending repoints itself
    fixups = [f for item, h in listed for f in ctx.written.claim(item, h, t)]
    yield from _repoint(ctx, fixups, unfinished)
    return checkpoint_config(t, ns, cid)


def _head(
    ctx: Ctx,
    t: str,
    ns: str,
    cid: str,
    parent: str | None,
    doc: str,
    versions: Mapping[str, Any],
    values: Mapping[str, Any],
    inline: Mapping[str, Any],
    new_versions: Mapping[str, Any],
) -> Head | None:
    """The `Head` of a checkpoint just put, when the cache holds every value it has
    outside its row (else None: a read of it reads the values).

    A channel with a version but no value is not always empty to a read: a read takes
    the value row of that version if there is one. LangGraph's DeltaChannel puts its
    `_DeltaSnapshot` at a snapshot step only, and the checkpoints after it keep the
    version without the value; the incumbent savers, InMemorySaver and a full read
    then return the snapshot for them too. So such a channel is left out only where
    no row is known to be there: its version is given here, or a put or read of this
    process found none (`ListCache.remember_empty`); else the cache must hold the
    row's value, or the read reads it."""
    edits = ctx.codec.edits
    cached = []
    for ch, ver in versions.items():
        if ch in inline:
            continue  # in the row
        if ch not in values:
            if ch in new_versions or (type(ver) is str and ctx.cache.held_empty(t, ns, ch, ver)):
                continue  # empty: no value row, a read leaves it out
        if type(ver) is not str or ctx.cache.held_value(t, ns, ch, ver, edits) is None:
            return None
        cached.append(ch)
    return Head(cid, parent, doc, frozenset(cached))


def _repoint(
    ctx: Ctx, fixups: list[tuple[Any, ...]], unfinished: list[tuple[Any, ...]] | None
) -> Generator[Batch, list[Any], None]:
    """Repoint writes. A claim is taken from `WrittenMessages` once: if the batch is
    lost with its connection (on Postgres it commits apart from the put or put_writes
    before it), the call's retry finds nothing left to claim. So the call keeps its
    repoints in ``unfinished`` until they committed, and a retry sends them again
    (each is idempotent: it matches only a write still holding the old hash)."""
    if unfinished is not None:
        fixups = [*unfinished, *(f for f in fixups if f not in unfinished)]
        unfinished[:] = fixups
    if fixups:
        yield Batch(ctx.sql.repoint_writes(fixups), fetch=False)
    if unfinished is not None:
        unfinished.clear()


def _listed_messages(values: Mapping[str, Any], rows: Sequence[ValueRow]) -> list[tuple[Any, bytes]]:
    """(message, hash) of the messages a put stores in its new list or scalar rows."""
    out = []
    for row in rows:
        value = values[row.channel]
        if type(value) is not list and not isinstance(value, _BaseMessage):
            continue
        if type(value) is list and row.kind not in (KIND.LIST, KIND.DELTA):
            continue  # a list stored whole (see `ValueCodec.composes`): one hash for all
        hashes = split_refs(row.refs)
        items = value if type(value) is list else [value]
        if row.kind == KIND.DELTA:
            items = items[len(items) - len(hashes) :] if hashes else []
        out.extend((item, h) for item, h in zip(items, hashes) if isinstance(item, _BaseMessage))
    return out


def put_writes(
    ctx: Ctx,
    config: RunnableConfig,
    writes: Sequence[tuple[str, Any]],
    task_id: str,
    task_path: str,
    unfinished: list[tuple[Any, ...]] | None = None,
) -> Op:
    """Store a task's writes as given (no ids assigned: LangGraph's `add_messages`
    does that on another thread); ``writes`` as `config.check_writes` gives them (the
    shell checks them once, so that a retry sends the same list). A write serialized before its message got its
    id is repointed at the object the put stores (see `WrittenMessages`)."""
    target = target_of(config, need_checkpoint_id=True)
    assert target.checkpoint_id is not None
    check_text(task_id, "task_id")
    check_text(task_path or "", "task_path")
    for channel, _ in writes:
        check_text(channel, "write channel")
    if not writes:
        return None
    # One call may carry a special channel twice (a node that interrupts twice
    # resumes with two __resume__ writes): the last one replaces, as in memory.
    by_idx: dict[int, tuple[int, str, int, bytes, list[Any]]] = {}
    # Messages get_tuple may reuse once these writes are stored (ListCache.remember_writes):
    # they round-trip exactly, as other values (an exception, say) may not. Not one
    # without an id yet: add_messages gives it one in place, after it was hashed.
    w_hashes: list[bytes] = []
    w_items: list[Any] = []
    registered: list[Any] = []
    edits = ctx.codec.edits  # before hashing them (see ListCache.known)
    for idx, (channel, value) in enumerate(writes):
        key = WRITES_IDX_MAP.get(channel, idx)
        messages: list[tuple[int, Any, list[Any] | None, bool]] = []
        # chunks (core/chunks.py) only before the first message a put may repoint:
        # a repoint rewrites one hash of the write's refs, never a shared chunk.
        # Decided before serializing, as the messages are registered before it.
        unchunked = None
        leading = 0
        if _BaseMessage is not None:
            items = value if type(value) is list else [value]
            wkey = (target.thread_id, target.ns, target.checkpoint_id, task_id, key)
            idless = [
                pos for pos, item in enumerate(items) if isinstance(item, _BaseMessage) and item.id is None
            ]
            if idless and type(value) is list and chunkable(value):
                unchunked = idless[0] - idless[0] % CHUNK
                leading = unchunked // CHUNK
            for pos, item in enumerate(items):
                if not isinstance(item, _BaseMessage):
                    continue
                if item.id is not None:
                    # hashed with its id: a put stores it as written, nothing to repoint
                    # (a node returning the list it was given would otherwise register
                    # every message of the thread again at every step)
                    messages.append((pos, item, None, True))
                    continue
                # registered before it is serialized: a put storing it in between
                # (its id given meanwhile) finds it (see WrittenMessages); at its
                # place in the stored refs, after the chunks before it
                entry = ctx.written.reserve(item, wkey, stored_position(pos, leading))
                messages.append((pos, item, entry, False))
        enc: EncodedValue = ctx.codec.encode(value)  # one hash per list element
        if type(value) is list and enc.kind != KIND.LIST:
            # stored whole (see `ValueCodec.composes`): its messages have no hash of their own
            for _, _, entry, _ in messages:
                if entry is not None:
                    ctx.written.release(entry)
            messages, unchunked = [], None
        runs = ((0, unchunked),) if unchunked is not None else enc.runs
        stored, chunks, first = chunk_runs(enc.hashes, runs, ctx.codec)
        assert first == leading or unchunked is None, (first, leading)
        for pos, item, entry, had_id in messages:
            h = enc.hashes[pos]
            if entry is not None and item.id is not None and ctx.codec.dump(item).hash == h:
                # its id came before it was serialized: the write holds the message as
                # the list does, and a later hash of it is an edit, never its id
                ctx.written.release(entry)
            elif entry is not None:
                ctx.written.serialized(entry, h)
                registered.append(entry)
            if had_id:  # an id given later came after the hash
                w_hashes.append(h)
                w_items.append(item)
        by_idx[key] = (key, channel, enc.kind, stored, unique_objects([*enc.objects, *chunks]))
    rows = list(by_idx.values())
    lease = leases.held(ctx.lease_key, target.thread_id, ctx.leases)
    if ctx.sql.single_statement:
        # Postgres: its put_writes function checks the lease and touches the thread
        stmts = ctx.sql.insert_writes(
            target.thread_id, target.ns, target.checkpoint_id, task_id, task_path or "", rows, lease
        )
        yield Batch(stmts, fetch=False)
    else:
        # SQLite: each write goes in only if the lease allows it. Fewer than sent are
        # there already (a retry) or refused: the lease, read in the same BEGIN
        # IMMEDIATE transaction, tells which, and a refusal rolls the call back.
        touch = ctx.touches.due(target.thread_id)
        stmts = ctx.sql.insert_writes(
            target.thread_id,
            target.ns,
            target.checkpoint_id,
            task_id,
            task_path or "",
            rows,
            lease,
            touch=touch,
        )
        done = yield Batch(stmts)
        if sum(n for st, n in zip(stmts, done) if st.counted) < len(rows):
            (checked,) = yield Batch([ctx.sql.write_checks(target.thread_id)])
            _check_lease(target.thread_id, checked, lease)
            # Allowed now, which the INSERTs may not have been: each read the lease
            # at its own julianday('now'), and another run's lease that lapsed in
            # between refused them there and allows them here. Sent again (the
            # rows a retry finds there are kept, or set to the same values): no
            # lease can come back to life inside this BEGIN IMMEDIATE transaction.
            yield Batch([st for st in stmts if st.counted], fetch=False)
        if touch:
            ctx.touches.wrote(target.thread_id)
    # a put that stored a message of these writes under its later id meanwhile
    fixups = [f for entry in registered if (f := ctx.written.stored(entry)) is not None]
    yield from _repoint(ctx, fixups, unfinished)
    # the other values of the writes: their stored bytes, decoded afresh when read
    as_items = set(w_hashes)
    ctx.cache.remember_writes(
        target.thread_id,
        target.ns,
        target.checkpoint_id,
        w_hashes,
        w_items,
        [o for r in rows for o in r[4] if o.hash not in as_items],
        edits,
    )
    return None


def _check_lease(t: str, rows: Sequence[Any], lease: leases.Lease | None) -> None:
    owner, left = rows[0] if rows else (None, None)
    error = leases.verdict(t, owner, left, None if lease is None else lease.token)
    if error is not None:
        raise error


# -- leases -------------------------------------------------------------------------


def take_lease(ctx: Ctx, lease: leases.Lease) -> Op:
    """Hold ``lease.thread_id`` for ``lease.ttl`` seconds, or raise ThreadBusyError."""
    *_, rows = yield Batch(ctx.sql.lease.take(lease))
    owner, left = rows[0]
    if owner != lease.token:
        raise leases.held_error(lease.thread_id, left or 0.0)
    return None


def renew_lease(ctx: Ctx, lease: leases.Lease) -> Op:
    """Extend a held lease by its ttl from now, or raise if it is gone."""
    *_, rows = yield Batch(ctx.sql.lease.extend(lease))
    if not rows or rows[0][0] != lease.token:
        raise leases.lost_error(lease.thread_id)
    return None


def release_lease(ctx: Ctx, lease: leases.Lease) -> Op:
    yield Batch(ctx.sql.lease.give_back(lease), fetch=False)
    return None


def break_lease(ctx: Ctx, thread_id: str) -> Op:
    """Clear whatever lease ``thread_id`` has; True if there was a live one."""
    from checkpoint_pg.core.config import normalize_thread_id

    t = normalize_thread_id(thread_id)
    *_, rows, _ = yield Batch(ctx.sql.lease.break_lease(t))
    return bool(rows) and rows[0][0] is not None and (rows[0][1] or 0) > 0




# -- reading ------------------------------------------------------------------------


@dataclass
class _Loaded:
    """Rows read for a set of checkpoints of one (thread, ns)."""

    values: dict[str, dict[str, tuple[int, str | None, bytes]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    roots: dict[tuple[str, str], str | None] = field(default_factory=dict)
    writes: dict[str, list[tuple[str, int, str, str, int, bytes]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # (checkpoint id, task id, idx) -> how many chunks lead a write's stored refs
    chunked_writes: dict[tuple[str, str, int], int] = field(default_factory=dict)


def _obj(ctx: Ctx, memo: Memo, t: str, h: bytes) -> Any:
    # known elements first: after a put, most of a list is (and no KeyError is raised)
    value = memo.known.get(h, MISSING)
    if value is not MISSING:
        return value
    key = (t, h)
    value = memo.objects.get(key, MISSING)
    if value is not MISSING:
        return value
    try:
        typ, data = memo.raw[key]
    except KeyError:
        raise IntegrityError(
            f"thread {t!r}: stored object {h.hex()} is missing; the thread was changed "
            "while it was read or its rows were deleted by hand"
        ) from None
    value = memo.objects[key] = ctx.codec.load_small(h, typ, data)
    return value


def _decode(ctx: Ctx, memo: Memo, t: str, kind: int, hashes: Sequence[bytes]) -> Any:
    if kind == KIND.DICT and hashes:
        shape = _obj(ctx, memo, t, hashes[0])
        return assemble_dict(shape, [_obj(ctx, memo, t, h) for h in hashes[1:]], f"thread {t!r}")
    if kind != KIND.SCALAR and kind != KIND.LIST:
        raise IntegrityError(f"thread {t!r}: a stored value has kind {kind!r}; its row was changed by hand")
    if kind == KIND.SCALAR:
        try:
            (h,) = hashes
        except ValueError:
            raise IntegrityError(
                f"thread {t!r}: a stored value's refs do not name exactly one object; "
                "its row was changed by hand"
            ) from None
        return _obj(ctx, memo, t, h)
    return [_obj(ctx, memo, t, h) for h in hashes]


def _fetch_objects(ctx: Ctx, memo: Memo, t: str, rows: Iterable[tuple[bytes, str, bytes]]) -> None:
    for h, typ, data in rows:
        _read_object(ctx, memo, t, bytes(h), typ, bytes(data))


def _read_object(ctx: Ctx, memo: Memo, t: str, h: bytes, typ: str, data: bytes) -> None:
    """An object read from the database: a chunk is checked against its hash here (its
    hashes are used as read); other objects when decoded (`ValueCodec.load`)."""
    if typ == CHUNK_TYPE:
        ctx.codec.check(h, typ, data)
    memo.add(t, h, typ, data)


def _build(
    ctx: Ctx,
    memo: Memo,
    t: str,
    ns: str,
    cid: str,
    parent: str | None,
    doc: dict[str, Any],
    md: dict[str, Any],
    loaded: _Loaded,
    remember: bool,
) -> CheckpointTuple:
    channel_values: dict[str, Any] = {}
    inline = _inline_values(ctx, t, cid, doc)
    empty: list[tuple[str, str]] = []
    for ch, ver in doc.get("channel_versions", {}).items():
        if ch in inline:
            channel_values[ch] = inline[ch]
            continue
        sver = str(ver)
        rows = loaded.values.get(ch)
        row = rows.get(sver) if rows else None
        if row is None or row[0] == KIND.EMPTY:
            if remember and type(ver) is str:
                empty.append((ch, ver))  # the next put's `_head` may leave it out
            continue
        if row[0] == KIND.SCALAR or row[0] == KIND.DICT:
            channel_values[ch] = _decode(ctx, memo, t, row[0], split_refs(row[2]))
            continue
        lists = memo.lists[(t, ns, ch)]
        hashes = resolve_hashes(rows, sver, lists, f"thread {t!r} channel {ch!r}")
        if remember and is_sortable_version(ver):
            st = ctx.cache.get((t, ns, ch))
            if (
                st is not None
                and st.version == sver
                and st.hashes == hashes
                and st.exact
                and st.edits == ctx.codec.edits
            ):
                # the very list a put (or read) of this version left, made since the
                # last edit in place (ListState.edits): the next put recognizes its
                # elements by identity
                channel_values[ch] = list(st.items)
                continue
        channel_values[ch] = _decode(ctx, memo, t, KIND.LIST, hashes)
        if remember and is_sortable_version(ver):
            root, depth = sver, 0
            while rows[root][0] == KIND.DELTA:
                root = rows[root][1]  # type: ignore[assignment]
                depth += 1
            items = tuple(channel_values[ch])
            exact = all(stands_in(v) for v in items)
            state = ListState(
                sver,
                hashes,
                items,
                root,
                depth,
                exact,
                ctx.codec.edits,
                all(known_by_identity(v) for v in items),
            )
            ctx.cache.set((t, ns, ch), state)
    pending: list[tuple[tuple[str, str, int], PendingWrite]] = []
    for task_id, idx, channel, path, kind, refs in loaded.writes.get(cid, ()):
        hashes = split_refs(refs)
        value = _decode(ctx, memo, t, kind, hashes)
        if remember and _BaseMessage is not None:
            # a step cut short (a parallel task failed, an interrupt, a cancelled run)
            # resumes from these writes: a message stored before it had an id gets one
            # now, and the put that stores it must find its write to repoint
            items = value if kind == KIND.LIST else [value]
            # its place in the stored refs, after the chunks before it (see put_writes)
            leading = loaded.chunked_writes.get((cid, task_id, idx), 0)
            for pos, (item, h) in enumerate(zip(items, hashes)):
                if isinstance(item, _BaseMessage) and item.id is None:
                    at = stored_position(pos, leading)
                    if at is not None:
                        ctx.written.stored_as(item, (t, ns, cid, task_id, idx), at, h)
        pending.append((writes_sort_key(path, task_id, idx), (task_id, channel, value)))
    if empty and not ctx.sql.single_statement:
        ctx.cache.remember_empty(t, ns, empty)
    return _tuple(t, ns, cid, parent, doc, channel_values, md, pending)


def _tuple(
    t: str,
    ns: str,
    cid: str,
    parent: str | None,
    doc: dict[str, Any],
    channel_values: dict[str, Any],
    md: dict[str, Any],
    pending: list[tuple[tuple[str, str, int], PendingWrite]],
) -> CheckpointTuple:
    """The tuple of a checkpoint read: its writes in LangGraph's order."""
    pending.sort(key=lambda p: p[0])
    checkpoint: Checkpoint = {**doc, "id": cid, "channel_values": channel_values}  # type: ignore[typeddict-item]
    return CheckpointTuple(
        config=checkpoint_config(t, ns, cid),
        checkpoint=checkpoint,
        metadata=md,  # type: ignore[arg-type]
        parent_config=checkpoint_config(t, ns, parent) if parent else None,
        pending_writes=[p[1] for p in pending],
    )


def _inline_values(ctx: Ctx, t: str, cid: str, doc: dict[str, Any]) -> dict[str, Any]:
    """The small scalars a checkpoint's row holds (see `put`). An encrypted saver refuses
    them, as it refuses an object stored in the clear: a saver without encryption wrote
    them (a value planted in the row looks the same)."""
    inline = doc.get("channel_values")
    if not inline:
        return {}
    if ctx.codec.encrypted:
        raise IntegrityError(
            f"checkpoint {cid!r} of thread {t!r} is not encrypted: a saver without encryption "
            "wrote it, and an encrypted saver refuses it (a row planted in the clear looks "
            "the same). A thread written before encryption was turned on reads with a saver "
            "without serde= (the CLI: without LANGGRAPH_AES_KEY)"
        )
    return inline


def _load_rows(
    ctx: Ctx, memo: Memo, cps: Sequence[tuple[str, str, str, str | None, dict[str, Any]]]
) -> Generator[Batch, list[Any], dict[tuple[str, str], _Loaded]]:
    """Read values (with their delta chains), writes and objects of some checkpoints."""
    groups: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for t, ns, cid, _, doc in cps:
        groups[(t, ns)].append((cid, doc))
    value_keys = sorted(
        {
            (t, ns, ch, str(v))
            for (t, ns), members in groups.items()
            for _, doc in members
            for ch, v in doc.get("channel_versions", {}).items()
            if ch not in (doc.get("channel_values") or ())
        }
    )
    write_keys = [(t, ns, cid) for (t, ns), members in groups.items() for cid, _ in members]
    # One statement per kind of row for every group on Postgres (a page across
    # threads costs the same round trips as a page of one thread).
    value_stmts = ctx.sql.select_values(value_keys) if value_keys else []
    write_stmts = ctx.sql.select_writes(write_keys)
    res = yield Batch([*value_stmts, *write_stmts])
    loaded = {key: _Loaded() for key in groups}
    for rows in res[: len(value_stmts)]:
        _add_values(loaded, rows)
    for rows in res[len(value_stmts) :]:
        for t, ns, cid, task_id, idx, channel, path, kind, refs in rows:
            loaded[(t, ns)].writes[cid].append((task_id, idx, channel, path, kind, bytes(refs)))
    yield from _complete_rows(ctx, memo, loaded)
    return loaded


def _complete_rows(
    ctx: Ctx, memo: Memo, loaded: dict[tuple[str, str], _Loaded]
) -> Generator[Batch, list[Any], None]:
    """Read the delta chains not read yet, then the objects not known yet.

    A chain is read by version range from its root, as each delta row names it.
    A row may name a later root than its chain has (one written while a retried
    put left this process's cache claiming a full list its first attempt had
    stored as a delta): the walk then goes on from the base it is missing,
    until every chain is whole or a base is gone (then `resolve_hashes` says so).
    """
    while ranges := [
        (t, ns, *r) for (t, ns), ld in loaded.items() for r in _missing_chain_ranges(ld)
    ]:
        before = sum(len(rows) for ld in loaded.values() for rows in ld.values.values())
        for rows in (yield Batch(ctx.sql.select_value_ranges(ranges))):
            _add_values(loaded, rows)
        if sum(len(rows) for ld in loaded.values() for rows in ld.values.values()) == before:
            break  # a base is missing from storage
    yield from _fetch_missing(ctx, memo, loaded)
    if _expand_chunks(memo, loaded):
        yield from _fetch_missing(ctx, memo, loaded)


def _fetch_missing(
    ctx: Ctx, memo: Memo, loaded: Mapping[tuple[str, str], _Loaded]
) -> Generator[Batch, list[Any], None]:
    """Read the objects the rows of ``loaded`` name that are neither known nor read yet."""
    need: set[tuple[str, bytes]] = set()
    known, raw = memo.known, memo.raw
    for (t, _), ld in loaded.items():
        blobs = [r[2] for rows in ld.values.values() for r in rows.values()]
        blobs.extend(w[5] for ws in ld.writes.values() for w in ws)
        for refs in blobs:
            for h in split_refs(refs):
                if h not in known and (t, h) not in raw:
                    need.add((t, h))
    missing = sorted(need)
    if missing:
        for rows in (yield Batch(ctx.sql.select_objects(missing))):
            for t, h, typ, data in rows:
                _fetch_objects(ctx, memo, t, [(h, typ, data)])


def _expand_chunks(memo: Memo, loaded: Mapping[tuple[str, str], _Loaded]) -> bool:
    """Put the rows that name chunks back together, from the chunks read (core/chunks.py):
    True if any did, whose elements may then still have to be read."""
    found = False
    for (t, _), ld in loaded.items():
        chunks = memo.chunks.get(t)
        if not chunks:
            continue
        where = f"thread {t!r}"
        for rows in ld.values.values():
            for ver, (kind, base, refs) in rows.items():
                full, _ = expand_refs(refs, chunks, where)
                if full is not refs:
                    rows[ver] = (kind, base, full)
                    found = True
        for cid, ws in ld.writes.items():
            for i, (task_id, idx, channel, path, kind, refs) in enumerate(ws):
                full, leading = expand_refs(refs, chunks, where)
                if full is not refs:
                    ws[i] = (task_id, idx, channel, path, kind, full)
                    ld.chunked_writes[(cid, task_id, idx)] = leading
                    found = True
    return found


def _add_values(loaded: Mapping[tuple[str, str], _Loaded], rows: Iterable[Sequence[Any]]) -> None:
    for t, ns, channel, version, kind, base, root, refs in rows:
        ld = loaded[(t, ns)]
        ld.values[channel][version] = (kind, base, bytes(refs))
        ld.roots[(channel, version)] = root


def _missing_chain_ranges(ld: _Loaded) -> list[tuple[str, str, str]]:
    """Per channel, the version range holding the delta chains not read yet."""
    out = []
    for ch, rows in ld.values.items():
        lo = hi = None
        for ver, (kind, base, _) in rows.items():
            if kind == KIND.DELTA and base is not None and base not in rows:
                root = min(ld.roots.get((ch, ver)) or base, base)
                lo = root if lo is None or root < lo else lo
                hi = ver if hi is None or ver > hi else hi
        if lo is not None and hi is not None:
            out.append((ch, lo, hi))
    return out


def _loads_md(raw: Any) -> dict[str, Any]:
    """A checkpoint's metadata (or document), as the driver returned it."""
    try:
        # decoded by the driver (jsonb) it is taken as is: dict() would read a JSON list of
        # pairs as an object
        if isinstance(raw, (str, bytes)):
            out = loads_json(raw)
        else:
            out = dict(raw) if isinstance(raw, Mapping) else raw
    except (TypeError, ValueError) as exc:
        raise _edited(f"is not JSON ({exc})") from None
    if type(out) is not dict:
        raise _edited(f"is a JSON {type(out).__name__}, not an object")
    return out


def _parse_doc(raw: Any) -> dict[str, Any]:
    """A checkpoint document, as the driver returned it; its maps checked (the rest of
    the reader takes them for maps)."""
    doc = _loads_md(raw)
    for key in ("channel_versions", "versions_seen", "channel_values"):
        if not isinstance(doc.get(key, {}), dict):
            raise _edited(f"has a {key} that is not a JSON object")
    if not all(isinstance(v, dict) for v in doc.get("versions_seen", {}).values()):
        raise _edited("has a versions_seen entry that is not a JSON object")
    return doc


def _edited(what: str) -> IntegrityError:
    return IntegrityError(f"a stored checkpoint document or metadata {what}; its row was changed by hand")


def get_tuple(ctx: Ctx, config: RunnableConfig) -> Op:
    target = target_of(config)
    t, ns, cid = target
    if not ctx.sql.single_statement:
        # SQLite: the checkpoint this process put last there, read back (the step
        # after its put, the next run of the thread), needs its row and writes
        # only, when the row is still the one put (see `Head`). ~30% of a step's
        # SQL and Python went to reading values the process holds.
        head = ctx.cache.head(t, ns)
        if head is not None and (cid is None or cid == head.checkpoint_id):
            # one statement: the fallback below reads everything again
            (rows,) = yield Batch([ctx.sql.get_head_stmt(t, ns, cid)], alone=True)
            if not rows:
                return None
            tup = _from_head(ctx, head, t, ns, cid, rows)
            if tup is not None:
                return tup
            # another row (a put elsewhere) or values the cache no longer holds
    # A run continuing a thread in this process reuses the elements it already
    # holds instead of fetching and decoding them again (see ListState).
    items, small = ctx.cache.known(t, ns, ctx.codec.edits)
    memo = Memo(known=items)
    for h, o in small.items():
        memo.add(t, h, o.type, o.data)
    chunks = _known_chunks(ctx, memo, t, ns)
    # Postgres: one statement reads it all, leaving out the objects known here.
    # SQLite: one statement reads the checkpoint, its values with their delta
    # chains and its writes, and, when nothing is known here, the objects it can
    # name whole; the others come after (if any).
    known = [*items, *small, *chunks]
    (rows,) = yield Batch([ctx.sql.get_tuple_stmt(t, ns, cid, known)])
    head, ld, objects = _split_tagged(rows)
    if head is None:
        return None
    found, parent, raw_doc, raw_md = head
    if cid is not None and ctx.single_writer:
        ctx.named.add((t, ns, found))
    doc = _parse_doc(raw_doc)
    _fetch_objects(ctx, memo, t, objects)
    if not ctx.sql.single_statement:
        if all(type(v) is str for v in doc.get("channel_versions", {}).values()):
            yield from _complete_rows(ctx, memo, {(t, ns): ld})
        else:
            # the statement matches versions stored as JSON strings only
            loaded = yield from _load_rows(ctx, memo, [(t, ns, found, parent, doc)])
            ld = loaded[(t, ns)]
    elif _missing_chain_ranges(ld):
        # a chain whose rows name a later root than it has (see _complete_rows)
        yield from _complete_rows(ctx, memo, {(t, ns): ld})
    elif _expand_chunks(memo, {(t, ns): ld}):
        yield from _fetch_missing(ctx, memo, {(t, ns): ld})
    return _build(ctx, memo, t, ns, found, parent, doc, _loads_md(raw_md), ld, True)


def _from_head(
    ctx: Ctx, head: Head, t: str, ns: str, cid: str | None, rows: Sequence[Sequence[Any]]
) -> CheckpointTuple | None:
    """A checkpoint tuple from its row and writes (`get_head_stmt`) and the values the
    cache holds, as `_build` makes it from a full read; None when the row is not
    ``head``'s or the cache cannot give every value and write."""
    found = next((r for r in rows if r[0] == 0), None)
    if found is None:
        return None
    _, fid, parent, raw_doc, raw_md = found[:5]
    # the same document: the same versions, whose values the cache holds (the values
    # of a version never change); the metadata is read as the row has it now
    if (fid, parent, raw_doc) != (head.checkpoint_id, head.parent, head.doc):
        return None
    edits = ctx.codec.edits
    doc = _parse_doc(raw_doc)
    inline = _inline_values(ctx, t, fid, doc)
    channel_values: dict[str, Any] = {}
    for ch, ver in doc.get("channel_versions", {}).items():
        if ch in inline:
            channel_values[ch] = inline[ch]
        elif ch in head.cached:
            held = ctx.cache.held_value(t, ns, ch, ver, edits)
            if held is None:
                return None
            if type(held) is tuple:
                channel_values[ch] = list(held)
            else:  # decoded afresh: the caller may change what it gets
                channel_values[ch] = ctx.codec.load_small(held.hash, held.type, held.data)
    pending: list[tuple[tuple[str, str, int], PendingWrite]] = []
    writes = [r[1:] for r in rows if r[0] == 1]
    if writes:
        known, raw = ctx.cache.held_writes(t, ns, fid, edits)
        memo = Memo(known=known)
        for h, o in raw.items():
            if o.type != CHUNK_TYPE:
                memo.add(t, h, o.type, o.data)
        for task_id, idx, channel, path, kind, refs in writes:
            hashes = split_refs(refs)
            if not all(h in known or (t, h) in memo.raw for h in hashes):
                return None  # a write of another process, a chunk, a large object
            value = _decode(ctx, memo, t, kind, hashes)
            if _BaseMessage is not None:
                # one without an id gets one on resume: `_build` registers it
                items = value if kind == KIND.LIST else [value]
                if any(isinstance(i, _BaseMessage) and i.id is None for i in items):
                    return None
            pending.append((writes_sort_key(path, task_id, idx), (task_id, channel, value)))
    if cid is not None and ctx.single_writer:
        ctx.named.add((t, ns, fid))
    return _tuple(t, ns, fid, parent, doc, channel_values, _loads_md(raw_md), pending)


def _known_chunks(ctx: Ctx, memo: Memo, t: str, ns: str | None) -> list[bytes]:
    """The chunks (core/chunks.py) of the lists this process holds for (thread, ns),
    made from their hashes into ``memo``: a read need not fetch them. Their hashes.

    Only a chunk whose elements ``memo`` holds too (messages and scalars the process
    has, small objects it remembers): a chunk left out of the read is left out with
    its elements, which would then take one more round trip (a list of dicts or
    tuples, whose elements a read decodes afresh). The others are read with the
    elements they hold, in the same statement."""
    out = []
    known, raw = memo.known, memo.raw
    for hashes in ctx.cache.list_hashes(t, ns):
        if len(hashes) >= CHUNK:
            for i in range(len(hashes) // CHUNK):
                part = hashes[i * CHUNK : (i + 1) * CHUNK]
                if not all(h in known or (t, h) in raw for h in part):
                    continue
                for obj in chunk_runs(part, ((0, CHUNK),), ctx.codec)[1]:
                    memo.add(t, obj.hash, obj.type, obj.data)
                    out.append(obj.hash)
    return out


def _split_tagged(
    rows: Sequence[Sequence[Any]],
) -> tuple[tuple[str, str | None, Any, Any] | None, _Loaded, list[tuple[bytes, str, bytes]]]:
    """Rows of a get_tuple statement: (checkpoint row or None, its values and writes, objects).

    Tags: 0 checkpoint, 1 channel value (with its root version where the
    statement gives it), 2 write, 3 object.
    """
    ld = _Loaded()
    head = None
    objects = []
    for tag, a, b, c, d, n, k, r, h in rows:
        if tag == 0:
            head = (a, b, c, d)
        elif tag == 1:
            ld.values[a][b] = (k, c, bytes(r))
            ld.roots[(a, b)] = d
        elif tag == 2:
            ld.writes["*"].append((a, n, b, c, k, bytes(r)))
        else:
            objects.append((h, a, r))
    if head is not None:
        ld.writes = {head[0]: ld.writes.get("*", [])}  # type: ignore[assignment]
    return head, ld, objects


LIST_PAGE = 100


def list_page(
    ctx: Ctx,
    memo: Memo,
    config: RunnableConfig | None,
    *,
    filter: dict[str, Any] | None,
    before: RunnableConfig | None,
    limit: int | None,
    after: tuple[str, str, str] | None,
) -> Op:
    """One page of `list()`: newest first, keyset-paginated by ``after``."""
    thread_id = ns = cid = None
    if config is not None:
        target = target_of(config)
        thread_id, cid = target.thread_id, target.checkpoint_id
        ns = (config.get("configurable") or {}).get("checkpoint_ns")
    before_id = before_id_of(before)
    filter = check_filter(filter)
    page = LIST_PAGE if limit is None else min(limit, LIST_PAGE)
    if thread_id is not None and cid is None:
        return (
            yield from _list_thread_page(ctx, memo, thread_id, ns, before_id, filter, page, after)
        )
    *_, cps = yield Batch(
        ctx.sql.select_checkpoints(
            thread_id=thread_id,
            ns=ns,
            checkpoint_id=cid,
            before=before_id,
            filter=filter,
            limit=page,
            after=after,
        )
    )
    if not cps:
        return [], None
    parsed = [(t, n, c, p, _parse_doc(doc)) for t, n, c, p, doc, _ in cps]
    loaded = yield from _load_rows(ctx, memo, parsed)
    out = [
        _build(ctx, memo, t, n, c, p, doc, _loads_md(raw[5]), loaded[(t, n)], False)
        for (t, n, c, p, doc), raw in zip(parsed, cps)
    ]
    last = cps[-1]
    nxt = (last[2], last[1], last[0]) if len(cps) == page else None
    return out, nxt


def list_in_one_statement(ctx: Ctx, config: RunnableConfig | None) -> bool:
    """Whether each page of ``list(config)`` is one statement (so needs no transaction)."""
    if not isinstance(config, Mapping) or not ctx.sql.single_statement:
        return False  # a config that is not a dict: the page's own checks say so
    conf = config.get("configurable") or {}
    return isinstance(conf, Mapping) and conf.get("thread_id") is not None and conf.get("checkpoint_id") is None


def _list_thread_page(
    ctx: Ctx,
    memo: Memo,
    t: str,
    ns: str | None,
    before: str | None,
    filter: dict[str, Any] | None,
    page: int,
    after: tuple[str, str, str] | None,
) -> Op:
    """A page of one thread: its checkpoints, values, writes and the objects this
    listing has not had yet, from one statement (Postgres: the list_thread
    function; SQLite: objects of lists come from a second one)."""
    if after is None:
        # the elements a run in this process holds, as get_tuple uses them
        items, small = ctx.cache.known(t, ns, ctx.codec.edits)
        memo.known.update(items)
        for h, o in small.items():
            memo.add(t, h, o.type, o.data)
        _known_chunks(ctx, memo, t, ns)
    known = [*memo.known, *(h for (owner, h) in memo.raw if owner == t)]
    stmt = ctx.sql.list_thread_stmt(
        t,
        ns,
        before,
        (after[0], after[1]) if after is not None else None,
        filter,
        page,
        known,
    )
    (rows,) = yield Batch([stmt])
    heads = []
    loaded: dict[tuple[str, str], _Loaded] = defaultdict(_Loaded)
    for tag, row_ns, a, b, c, d, e, n, k, r, h in rows:
        if tag == 0:
            heads.append((a, row_ns, b, c, d))
            loaded[(t, row_ns)]  # noqa: B018 - every namespace listed gets its entry
        elif tag == 1:
            ld = loaded[(t, row_ns)]
            ld.values[a][b] = (k, c, bytes(r))
            ld.roots[(a, b)] = d
        elif tag == 2:
            loaded[(t, row_ns)].writes[a].append((b, n, c, d, k, bytes(r)))
        else:
            _read_object(ctx, memo, t, bytes(h), a, bytes(r))
    if not heads:
        return [], None
    heads.sort(reverse=True)  # newest first: by id, then namespace, as the page was cut
    parsed = [(t, hns, hid, parent, _parse_doc(doc)) for hid, hns, parent, doc, _ in heads]
    if all(type(v) is str for *_, doc in parsed for v in doc.get("channel_versions", {}).values()):
        yield from _complete_rows(ctx, memo, loaded)
    else:
        # the function matches versions stored as JSON strings only
        loaded = yield from _load_rows(ctx, memo, parsed)
    out = [
        _build(ctx, memo, t, hns, hid, parent, doc, _loads_md(head[4]), loaded[(t, hns)], False)
        for (_, hns, hid, parent, doc), head in zip(parsed, heads)
    ]
    last = heads[-1]
    return out, ((last[0], last[1], t) if len(heads) == page else None)


def get_delta_channel_history(ctx: Ctx, config: RunnableConfig, channels: Sequence[str]) -> Op:
    """Writes of ``channels`` along the parent chain, back to the nearest stored value."""
    # one str is refused: "messages" was read as channels "m", "e", "s"...
    channels = [check_text(ch, "channel") for ch in _ids(channels, "channels")]
    if not channels:
        return {}
    target = target_of(config)
    t, ns, cid = target
    (cps,) = yield Batch([ctx.sql.select_thread_checkpoints(t)])
    by_id = {c[1]: (c[2], _parse_doc(c[3])) for c in cps if c[0] == ns}
    if cid is None:
        cid = max(by_id, default=None)
    chain: list[str] = []
    cur = by_id[cid][0] if cid in by_id else None
    while cur is not None and cur in by_id and len(chain) <= len(by_id):
        chain.append(cur)
        cur = by_id[cur][0]
    if not chain:
        return {ch: {"writes": []} for ch in channels}
    memo = Memo()
    loaded = yield from _load_rows(ctx, memo, [(t, ns, c, by_id[c][0], by_id[c][1]) for c in chain])
    ld = loaded[(t, ns)]
    result: dict[str, DeltaChannelHistory] = {}
    for ch in channels:
        collected: list[PendingWrite] = []
        entry: DeltaChannelHistory = {"writes": collected}
        for c in chain:  # nearest ancestor first
            ws = sorted(
                (w for w in ld.writes.get(c, ()) if w[2] == ch),
                key=lambda w: writes_sort_key(w[3], w[0], w[1]),
            )
            for task_id, idx, channel, _, kind, refs in reversed(ws):
                collected.append((task_id, channel, _decode(ctx, memo, t, kind, split_refs(refs))))
            inline = _inline_values(ctx, t, c, by_id[c][1])
            if ch in inline:
                entry["seed"] = inline[ch]
                break
            ver = by_id[c][1].get("channel_versions", {}).get(ch)
            rows = ld.values.get(ch)
            row = rows.get(str(ver)) if rows and ver is not None else None
            if row is not None and row[0] != KIND.EMPTY:
                if row[0] == KIND.SCALAR or row[0] == KIND.DICT:
                    entry["seed"] = _decode(ctx, memo, t, row[0], split_refs(row[2]))
                else:
                    hashes = resolve_hashes(
                        rows, str(ver), memo.lists[(t, ns, ch)], f"thread {t!r}"
                    )
                    entry["seed"] = _decode(ctx, memo, t, KIND.LIST, hashes)
                break
        collected.reverse()
        result[ch] = entry
    return result


# -- deleting and copying -----------------------------------------------------------


def delete_thread(ctx: Ctx, thread_id: str) -> Op:
    from checkpoint_pg.core.config import normalize_thread_id

    t = normalize_thread_id(thread_id)
    ctx.cache.forget_thread(t)
    yield Batch([ctx.sql.lock_thread(t), *ctx.sql.delete_thread(t)], fetch=False)
    ctx.cache.forget_thread(t)


def copy_thread(ctx: Ctx, source: str, target: str) -> Op:
    from checkpoint_pg.core.config import normalize_thread_id

    s, d = normalize_thread_id(source), normalize_thread_id(target)
    if s == d:
        raise ConfigError(f"cannot copy thread {s!r} onto itself")
    *_, exists, lease_row = yield Batch(
        [*ctx.sql.claim_thread(d), ctx.sql.thread_exists(d), ctx.sql.lease.check(d)]
    )
    if exists:
        # Done already (the saver's retry of a copy whose commit it did not
        # see, or the caller's): the target holds exactly the source's
        # checkpoints and pending writes.
        src, dst, src_writes, dst_writes = yield Batch(
            [
                ctx.sql.select_thread_checkpoints(s),
                ctx.sql.select_thread_checkpoints(d),
                ctx.sql.select_thread_writes(s),
                ctx.sql.select_thread_writes(d),
            ]
        )
        same_writes = {(*w[:5], bytes(w[5])) for w in src_writes} == {
            (*w[:5], bytes(w[5])) for w in dst_writes
        }
        if same_writes and _checkpoint_set(src) == _checkpoint_set(dst):
            return None
        raise ConfigError(
            f"target thread {d!r} already has checkpoints; delete it first "
            "(delete_thread) or copy to a new thread id"
        )
    # a run may hold the (still empty) target: copying is writing to it
    _check_lease(d, lease_row, leases.held(ctx.lease_key, d, ctx.leases))
    yield Batch([ctx.sql.lock_thread(s), *ctx.sql.copy_thread(s, d), *ctx.sql.drop_claim(d)], fetch=False)


def date_thread(ctx: Ctx, thread_id: str, created: Any, updated: Any) -> Op:
    """Set when a thread was created and last written (aware datetimes): an imported
    thread's, from its checkpoints, rather than the import's."""
    yield Batch([ctx.sql.lock_thread(thread_id), ctx.sql.date_thread(thread_id, created, updated)], fetch=False)
    return None


def _checkpoint_set(rows: Iterable[Sequence[Any]]) -> set[tuple[Any, ...]]:
    """(ns, id, parent, document, metadata) of select_thread_checkpoints' rows, comparable."""
    return {
        (ns, cid, parent, json.dumps(_parse_doc(doc), sort_keys=True), json.dumps(_loads_md(md), sort_keys=True))
        for ns, cid, parent, doc, md in rows
    }


def _ids(value: Any, what: str) -> list[Any]:
    """A sequence of ids as a list; one str is refused, not read as its characters."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigError(f"{what} must be a list of ids, got {value!r}; pass [{value!r}] for one")
    return list(value)


def delete_for_runs(ctx: Ctx, run_ids: Sequence[str]) -> Op:
    # checked as every id is: a NUL or a lone surrogate reached the driver (Postgres:
    # "text fields cannot contain NUL", UnicodeEncodeError)
    run_ids = [check_text(str(r), "run id") for r in _ids(run_ids, "run_ids")]
    if not run_ids:
        return None
    (threads,) = yield Batch([ctx.sql.select_threads_of_runs(run_ids)])
    for (t,) in threads:
        ctx.cache.forget_thread(t)
        if not (yield from _locked(ctx, t)):
            continue
        docs, vals, _, _ = yield from _thread_rows(ctx, t)
        runs = set(run_ids)
        dead = {
            k for k, (_, _, md) in docs.items()
            if md.get("run_id") is not None and str(md["run_id"]) in runs
        }
        # A checkpoint that stays keeps the ancestors its DeltaChannels replay from,
        # as prune(keep_latest) does: deleting them (and their writes) would make it
        # read back an empty or shortened channel, silently.
        needed: set[tuple[str, str]] = set()
        walked: dict[tuple[str, str], set[str]] = {}
        for ns, cid in set(docs) - dead:
            _keep_delta_ancestors(ns, cid, docs, vals, needed, walked)
        if dead - needed:
            yield Batch(ctx.sql.delete_checkpoints(t, sorted(dead - needed)), fetch=False)
        yield from _collect_garbage(ctx, t, keep=None)
        # the newest checkpoint may have gone: the thread's listing metadata with it
        yield Batch(ctx.sql.refresh_thread_row(t), fetch=False)
    return None


def _locked(ctx: Ctx, t: str) -> Generator[Batch, list[Any], bool]:
    """Take the thread's row lock for a garbage collection; False when it has no row.

    A thread without its row has no checkpoint (a put upserts the row first, in the
    same transaction as the rest), so there is nothing to collect. A first put of the
    thread may be committing meanwhile (after delete_thread, say): with no row to lock
    it does not wait for us, and reads of the thread in several statements could see
    its objects without its checkpoint and delete them. Leave it alone."""
    (row,) = yield Batch([ctx.sql.lock_thread(t)])
    return bool(row)


def prune(
    ctx: Ctx,
    thread_ids: Sequence[str],
    strategy: str,
    keep_last: int = 1,
    updated_before: datetime | None = None,
) -> Op:
    """``keep_latest``: keep the ``keep_last`` newest checkpoints per namespace
    (and what they need to be read); ``delete``: delete the threads. With
    ``updated_before``, a thread written since then is left alone: checked under
    the thread's lock, so a run writing it while the list was drawn up keeps it."""
    from checkpoint_pg.core.config import normalize_thread_id

    if strategy not in ("keep_latest", "delete"):
        raise ConfigError(f"unknown prune strategy {strategy!r}: use 'keep_latest' or 'delete'")
    if not isinstance(keep_last, int) or isinstance(keep_last, bool) or keep_last < 1:
        raise ConfigError(f"keep_last must be an int >= 1, got {keep_last!r}")
    thread_ids = _ids(thread_ids, "thread_ids")
    if updated_before is not None and (
        not isinstance(updated_before, datetime) or updated_before.tzinfo is None
    ):
        raise ConfigError(
            f"updated_before must be a timezone-aware datetime, got {updated_before!r}; "
            "e.g. datetime.now(timezone.utc) - timedelta(days=30)"
        )
    for raw in thread_ids:
        t = normalize_thread_id(raw)
        ctx.cache.forget_thread(t)
        if updated_before is not None:
            _, stale = yield Batch([ctx.sql.lock_thread(t), ctx.sql.thread_is_stale(t, updated_before)])
            if not stale:
                continue
        if strategy == "delete":
            yield Batch([ctx.sql.lock_thread(t), *ctx.sql.delete_thread(t)], fetch=False)
        elif (yield from _locked(ctx, t)):
            yield from _collect_garbage(ctx, t, keep=keep_last)
            ctx.cache.forget_thread(t)
    return None


def _thread_rows(ctx: Ctx, t: str) -> Generator[Batch, list[Any], tuple[Any, ...]]:
    """Every checkpoint (parsed), value, write reference and object hash of a thread."""
    cps, values, write_refs, hashes = yield Batch(
        [
            ctx.sql.select_thread_checkpoints(t),
            ctx.sql.select_thread_values(t),
            ctx.sql.select_thread_write_refs(t),
            ctx.sql.select_thread_objects(t),
        ]
    )
    vals: dict[tuple[str, str, str], tuple[int, str | None, bytes]] = {
        (ns, ch, ver): (kind, base, bytes(refs)) for ns, ch, ver, kind, base, refs in values
    }
    docs = {(c[0], c[1]): (c[2], _parse_doc(c[3]), _loads_md(c[4])) for c in cps}
    return docs, vals, write_refs, hashes


def _keep_latest(
    docs: Mapping[tuple[str, str], tuple[str | None, dict[str, Any], dict[str, Any]]],
    vals: Mapping[tuple[str, str, str], tuple[int, str | None, bytes]],
    write_refs: Sequence[Sequence[Any]],
    keep: int,
) -> tuple[set[tuple[str, str]], list[tuple[str, str]]]:
    """(checkpoints kept, checkpoints and unstored write keys to delete) when keeping
    the latest ``keep`` per namespace, with what those need (I/O-free)."""
    live_cps: set[tuple[str, str]] = set()
    by_ns: dict[str, list[str]] = defaultdict(list)
    for ns, cid in docs:
        by_ns[ns].append(cid)
    walked: dict[tuple[str, str], set[str]] = {}
    for ns, ids in by_ns.items():
        for cid in sorted(ids, reverse=True)[:keep]:
            live_cps.add((ns, cid))
            _keep_delta_ancestors(ns, cid, docs, vals, live_cps, walked)
    calls = _finished_calls(docs, by_ns, live_cps)
    live_cps -= {(ns, cid) for ns in calls for cid in by_ns[ns]}
    dead = [k for k in docs if k not in live_cps]
    # Writes of a checkpoint that is not stored (a late put_writes after another
    # process pruned it, in-flight writes a copy took along) and older than every
    # checkpoint kept in its namespace: had it been stored it would go now, and
    # its writes keep objects alive. Newer ones may await their put (async
    # durability), and stay. A finished call's namespace goes whole.
    oldest = {ns: min(cid for n, cid in live_cps if n == ns) for ns in by_ns if ns not in calls}
    dead += sorted(
        {
            (ns, cid)
            for ns, cid, _ in write_refs
            if (ns, cid) not in docs
            and (ns in calls or (ns in oldest and cid < oldest[ns]))
        }
    )
    return live_cps, dead


def plan_keep_latest(ctx: Ctx, thread_id: str, keep: int) -> Op:
    """(checkpoints, of them the ones prune(keep_latest=keep) would delete now): reads only."""
    docs, vals, write_refs, _ = yield from _thread_rows(ctx, thread_id)
    _, dead = _keep_latest(docs, vals, write_refs, keep)
    return len(docs), sum(1 for k in dead if k in docs)


def _collect_garbage(ctx: Ctx, t: str, keep: int | None) -> Generator[Batch, list[Any], None]:
    """Delete what no remaining checkpoint needs; with ``keep``, keep only the latest N per ns.

    Kept checkpoints keep the ancestors their `DeltaChannel`s replay from: the
    walk goes back until each delta channel has a stored value, and an ancestor
    kept adds the channels it replays itself (it is listed and read as well).
    """
    docs, vals, write_refs, hashes = yield from _thread_rows(ctx, t)
    live_cps = set(docs)
    if keep is not None:
        live_cps, dead = _keep_latest(docs, vals, write_refs, keep)
        if dead:
            yield Batch(ctx.sql.delete_checkpoints(t, dead), fetch=False)
            if write_refs:
                # writes of the dead checkpoints are gone: read what is left
                (write_refs,) = yield Batch([ctx.sql.select_thread_write_refs(t)])
    live_vals: set[tuple[str, str, str]] = set()
    for ns, cid in live_cps:
        for ch, ver in docs[(ns, cid)][1].get("channel_versions", {}).items():
            key: tuple[str, str, str] | None = (ns, ch, str(ver))
            while key is not None and key in vals and key not in live_vals:
                live_vals.add(key)
                kind, base, _ = vals[key]
                key = (ns, ch, base) if kind == KIND.DELTA and base is not None else None
    dead_vals = [k for k in vals if k not in live_vals]
    live_hashes: set[bytes] = set()
    for k in live_vals:
        live_hashes.update(split_refs(vals[k][2]))
    for _, _, refs in write_refs:
        live_hashes.update(split_refs(bytes(refs)))
    # a chunk a live row names keeps the elements it holds (core/chunks.py)
    chunks = {bytes(h): bytes(data) for h, data in hashes if data is not None}
    for h in [h for h in live_hashes if h in chunks]:
        live_hashes.update(split_refs(chunks[h]))
    dead_hashes = [bytes(h) for (h, _) in hashes if bytes(h) not in live_hashes]
    stmts = [*ctx.sql.delete_values(t, dead_vals), *ctx.sql.delete_objects(t, dead_hashes)]
    if stmts:
        yield Batch(stmts, fetch=False)


def _finished_calls(
    docs: Mapping[tuple[str, str], tuple[str | None, dict[str, Any], dict[str, Any]]],
    by_ns: Mapping[str, Sequence[str]],
    live: set[tuple[str, str]],
) -> set[str]:
    """Namespaces of subgraph calls whose root checkpoint goes (keep_latest).

    Each call of a subgraph checkpoints under a namespace of its own (its task id
    after a ":"), started from a root checkpoint (``metadata["parents"][""]``).
    Kept N per namespace, every call the thread ever made would stay: a call goes
    with the root checkpoint it started from, as in langgraph-checkpoint-postgres.
    A root checkpoint not stored goes too when it is older than every root
    checkpoint kept (pruned before, or never stored: ``durability="exit"``); a
    newer one may be awaiting its put (``durability="async"``), and keeps its call.
    A ``checkpointer=True`` subgraph's namespace (no ":") outlives its calls: kept.
    """
    kept_roots = [cid for ns, cid in live if ns == ""]
    if not kept_roots:
        return set()
    oldest_root = min(kept_roots)
    out = set()
    for ns, ids in by_ns.items():
        if ":" not in ns:
            continue
        parents = docs[(ns, max(ids))][2].get("parents")
        root = parents.get("") if isinstance(parents, dict) else None
        if not isinstance(root, str):
            continue
        if ("", root) in live:
            continue
        if ("", root) in docs or root < oldest_root:
            out.add(ns)
    return out


def _keep_delta_ancestors(
    ns: str,
    cid: str,
    docs: Mapping[tuple[str, str], tuple[str | None, dict[str, Any], dict[str, Any]]],
    vals: Mapping[tuple[str, str, str], tuple[int, str | None, bytes]],
    live: set[tuple[str, str]],
    walked: dict[tuple[str, str], set[str]],
) -> None:
    """Add to ``live`` the ancestors the `DeltaChannel`s of checkpoint ``cid`` replay
    from, and those that these replay from in turn. ``walked``, shared by the calls of
    one operation: per checkpoint, the channels already walked back from it."""
    parent, doc, md = docs[(ns, cid)]
    pending = _replayed(ns, doc, md, vals)
    node = cid
    seen = 0
    while pending and parent is not None and (ns, parent) in docs and seen <= len(docs):
        # A walk from a checkpoint goes as far as any with fewer channels pending:
        # one done from here already keeps all this one would. (Without this, each
        # remaining checkpoint's walk could go to the root: quadratic in the thread.)
        done = walked.setdefault((ns, node), set())
        if pending <= done:
            break
        done |= pending
        live.add((ns, parent))
        seen += 1
        node = parent
        parent, doc, md = docs[(ns, parent)]
        versions = doc.get("channel_versions", {})
        # an ancestor without a version of the channel holds its first writes,
        # if any: none older than it are replayed
        pending = {ch for ch in pending if ch in versions and not _has_value(vals, ns, ch, doc)}
        # The ancestor stays, so it is listed and read too: what it replays itself
        # must stay as well. A channel that snapshots more often than another may
        # have its seed above this ancestor for the checkpoint kept, and below it
        # for the ancestor, which would read back with that channel cut short.
        pending |= _replayed(ns, doc, md, vals)


def _replayed(
    ns: str,
    doc: dict[str, Any],
    md: dict[str, Any],
    vals: Mapping[tuple[str, str, str], tuple[int, str | None, bytes]],
) -> set[str]:
    """The `DeltaChannel`s a checkpoint's read rebuilds from its ancestors: those
    counted since their last snapshot that it stores no value of."""
    versions = doc.get("channel_versions", {})
    # A channel without a version was never written on this branch (LangGraph
    # counts its supersteps all the same, and never snapshots it): there is
    # nothing to replay, and walking to the root for it would keep every
    # checkpoint of the thread.
    return {
        ch
        for ch in (md.get("counters_since_delta_snapshot") or {})
        if ch in versions and not _has_value(vals, ns, ch, doc)
    }


def _has_value(
    vals: Mapping[tuple[str, str, str], tuple[int, Any, Any]], ns: str, ch: str, doc: dict[str, Any]
) -> bool:
    """Whether the checkpoint ``doc`` stores a value of ``ch``: in its row, or a value row."""
    if ch in (doc.get("channel_values") or ()):
        return True
    ver = doc.get("channel_versions", {}).get(ch)
    row = vals.get((ns, ch, str(ver))) if ver is not None else None
    return row is not None and row[0] != KIND.EMPTY


class ops:  # noqa: N801 - a namespace, read as ops.put(...)
    put = staticmethod(put)
    put_writes = staticmethod(put_writes)
    get_tuple = staticmethod(get_tuple)
    list_page = staticmethod(list_page)
    get_delta_channel_history = staticmethod(get_delta_channel_history)
    delete_thread = staticmethod(delete_thread)
    copy_thread = staticmethod(copy_thread)
    delete_for_runs = staticmethod(delete_for_runs)
    prune = staticmethod(prune)
