"""get_tuple, list and the DeltaChannel history: the reading operations, as I/O-free generators."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    Checkpoint,
    CheckpointTuple,
    DeltaChannelHistory,
    PendingWrite,
    writes_sort_key,
)

from checkpoint_pg.core.chunks import CHUNK, CHUNK_TYPE, chunk_runs, expand_refs, stored_position
from checkpoint_pg.core.codec import (
    assemble_dict,
    known_by_identity,
    split_refs,
)
from checkpoint_pg.core.config import (
    before_id_of,
    check_filter,
    check_text,
    checkpoint_config,
    loads_json,
    target_of,
)
from checkpoint_pg.core.values import (
    MISSING,
    Head,
    ListState,
    is_sortable_version,
    resolve_hashes,
    stands_in,
)
from checkpoint_pg.core.context import Batch, Ctx, Op, _ids
from checkpoint_pg.core.codec import _BaseMessage  # one import guard, in codec.py
from checkpoint_pg.errors import (
    IntegrityError,
)
from checkpoint_pg.schema import KIND

__all__ = ["LIST_PAGE", "Memo", "get_delta_channel_history", "get_tuple", "list_in_one_statement", "list_page"]


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
