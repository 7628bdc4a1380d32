"""put, put_writes and leases: the writing operations, as I/O-free generators."""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from functools import partial
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
)

from checkpoint_pg.core import lease as leases
from checkpoint_pg.core.chunks import CHUNK, chunk_runs, stored_position
from checkpoint_pg.core.codec import (
    EncodedValue,
    StoredObject,
    chunkable,
    inlinable,
    split_refs,
)
from checkpoint_pg.core.config import (
    check_put,
    check_text,
    checkpoint_config,
    compact_json,
    metadata_json,
    target_of,
)
from checkpoint_pg.core.values import (
    Head,
    ListState,
    ValueRow,
    plan_channel_value,
    unique_objects,
)
from checkpoint_pg.core.context import Batch, Ctx, Op
from checkpoint_pg.core.codec import _BaseMessage  # one import guard, in codec.py
from checkpoint_pg.errors import (
    ConfigError,
    IntegrityError,
    SerializationError,
    ThreadBusyError,
)
from checkpoint_pg.schema import KIND

__all__ = ["break_lease", "put", "put_writes", "release_lease", "renew_lease", "take_lease"]


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


def _busy(thread_id: str) -> ThreadBusyError:
    return ThreadBusyError(
        f"thread {thread_id!r} is being run by another writer: a newer checkpoint than this "
        "run's parent was stored meanwhile (single_writer=True). Wait for the other run, "
        "then continue from the thread's latest state",
        thread_id=thread_id,
    )


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
    idless = partial(_idless_hash, ctx.codec)
    fixups = [f for item, h in listed for f in ctx.written.claim(item, h, t, idless)]
    yield from _repoint(ctx, fixups, unfinished)
    return checkpoint_config(t, ns, cid)


def _idless_hash(codec: Any, message: Any) -> bytes:
    """The hash of ``message`` before add_messages gave it its id (see `WrittenMessages`)."""
    return codec.hash_of(message.model_copy(update={"id": None}))  # type: ignore[no-any-return]


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
            if entry is not None:
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
