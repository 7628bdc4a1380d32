"""Planning channel-value rows (list deltas) and rebuilding values from them."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from checkpoint_pg.core.chunks import chunk_runs
from checkpoint_pg.core.codec import (
    MISSING,
    StoredObject,
    ValueCodec,
    chunkable,
    known_by_identity,
    split_refs,
    stands_in,
)
from checkpoint_pg.errors import IntegrityError
from checkpoint_pg.schema import KIND

__all__ = [
    "MISSING",
    "is_sortable_version",
    "ValueRow",
    "ListState",
    "ListCache",
    "Head",
    "plan_channel_value",
    "chain_limit",
    "resolve_hashes",
    "unique_objects",
    "stands_in",
]


@dataclass(frozen=True, slots=True)
class ValueRow:
    """One row of the channel_values table (or of writes: channel in place of version)."""

    channel: str
    version: str
    kind: int
    base_version: str | None
    root_version: str | None
    refs: bytes  # one hash per element
    # the refs to store when they name chunks (core/chunks.py), else None
    chunked: bytes | None = None

    @property
    def stored_refs(self) -> bytes:
        return self.refs if self.chunked is None else self.chunked


class ListState(NamedTuple):
    """A stored list version, remembered to write the next version as a delta.

    ``items`` are the Python objects the list held: LangGraph's reducers build
    each new messages list from the same message objects, so the elements
    already stored are recognized by identity and never serialized again.
    (A named tuple: a step makes several, and a frozen dataclass took 2.8 us each.)
    """

    version: str
    hashes: tuple[bytes, ...]
    items: tuple[Any, ...]
    root_version: str
    chain_len: int
    # every item decodes to an object of its own type (messages, scalars): a read
    # may return ``items`` as they are (see `stands_in`)
    exact: bool = False
    # the codec's count of messages edited in place when this state was made: a node
    # that edits a message of the list in place and writes it back raises the count
    # (its write serializes it again), and the next put then checks elements by hash
    edits: int = 0
    # every item may be recognized by identity at the next put (`known_by_identity`):
    # else the next put serializes the list again and compares hashes, since an item
    # edited in place (a dict of a list of dicts) is still the very object stored
    by_identity: bool = False


class Head(NamedTuple):
    """A checkpoint this process put: its id, parent and document as its row stores
    them, and the channels whose values the cache holds at the versions the document
    names (a list state, or a small scalar's stored object). A read whose row still
    holds this document takes the values from the cache (see `ops.get_tuple`)."""

    checkpoint_id: str
    parent: str | None
    doc: str
    cached: frozenset[str]


def chain_limit(length: int) -> int:
    """How many deltas may follow a full list before the next version is stored whole.

    Grows with the list so that full copies stay a small, bounded fraction of the
    stored bytes, and is capped so a read never walks more than 256 versions.
    """
    return max(16, min(256, length // 4))


# Cache keys besides channels (whose names cannot hold NUL): a thread's pending
# writes (decoded), their other objects (stored bytes), per channel its
# scalar value's stored object ("\0s" + channel), and the version at which it is
# known to be stored without a value ("\0e" + channel).
_WRITES = "\0writes"
_WRITE_OBJECTS = "\0write objects"
_SCALAR = "\0s"
# per channel, the version at which it is known to have no value row ("\0e" + channel)
_EMPTY = "\0e"
_MAX_WRITES = 1_000
# Objects kept as stored bytes are at most this large: a scalar channel or a
# write is mostly small, and the cache's bound counts entries, not bytes.
_SMALL_OBJECT = 1024
# Heads kept, by thread (LRU): each holds names and texts only, the values stay in
# the cache's own bounded entries.
_MAX_HEAD_THREADS = 10_000
# List elements (messages, mostly) the cache keeps alive by default: the threads a
# process is running, not every thread it ran. Each cached message is ~2 KB and ~8
# objects the cyclic garbage collector walks at each full pass: with 200,000 (the
# bound before) a process that had run 10,000 short threads held 70,000 messages,
# 210 MB against the incumbent's 58, and paused 555 ms in a full collection;
# with 20,000, 129 MB and 212 ms (the saver's `cache_items=` sets it).
DEFAULT_CACHE_ITEMS = 20_000

class ListCache:
    """The last known list state per (thread, ns, channel): LRU, bounded, thread-safe.

    Filled by put (what was just written) and by reads (what a run loads before
    it continues a thread). A miss only costs a full copy, never correctness.
    Bounded by the number of elements it references, since it keeps them alive.
    """

    def __init__(self, max_items: int = DEFAULT_CACHE_ITEMS) -> None:
        self._max_items = max_items
        self._items = 0
        self._data: OrderedDict[tuple[str, str, str], ListState] = OrderedDict()
        # thread id -> its keys in _data: reads and forget_thread look at one
        # thread's entries, not at the whole cache
        self._threads: dict[str, dict[tuple[str, str, str], None]] = {}
        self._lock = threading.Lock()
        # thread id -> ns -> the checkpoint put last there (see `Head`)
        self._heads: OrderedDict[str, dict[str, Head]] = OrderedDict()

    def get(self, key: tuple[str, str, str]) -> ListState | None:
        with self._lock:
            st = self._data.get(key)
            if st is not None:
                self._data.move_to_end(key)
            return st

    def set(self, key: tuple[str, str, str], state: ListState) -> None:
        with self._lock:
            self._set(key, state)

    def _set(self, key: tuple[str, str, str], state: ListState) -> None:
        old = self._data.pop(key, None)
        if old is not None:
            self._items -= len(old.items)
        self._data[key] = state
        self._threads.setdefault(key[0], {})[key] = None
        self._items += len(state.items)
        while self._items > self._max_items and len(self._data) > 1:
            dropped_key, dropped = self._data.popitem(last=False)
            self._items -= len(dropped.items)
            self._unindex(dropped_key)

    def _unindex(self, key: tuple[str, str, str]) -> None:
        keys = self._threads.get(key[0])
        if keys is not None:
            keys.pop(key, None)
            if not keys:
                del self._threads[key[0]]

    def known(
        self, thread_id: str, ns: str | None, edits: int
    ) -> tuple[dict[bytes, Any], dict[bytes, StoredObject]]:
        """For (thread, ns), or every namespace of the thread when ``ns`` is None:
        hash -> element object of every cached list state (and remembered write)
        that may stand in for any element with its hash (messages and scalars, not
        containers), and hash -> stored object of the remembered small objects.

        Not the elements of states made before the codec's count of ``edits``: one
        may be a message edited in place and written back since, whose old hash it
        no longer holds (another list holding it, the version stored before)."""
        with self._lock:
            keys = self._threads.get(thread_id, ())
            states = [(k[2], self._data[k]) for k in keys if ns is None or k[1] == ns]
        known: dict[bytes, Any] = {}
        raw: dict[bytes, StoredObject] = {}
        for channel, st in states:
            if channel == _WRITE_OBJECTS or channel.startswith(_SCALAR):
                raw.update(zip(st.hashes, st.items))
            elif st.edits != edits:
                continue
            elif st.exact:  # all of them stand in: no need to ask each (a long list)
                known.update(zip(st.hashes, st.items))
            else:
                known.update((h, v) for h, v in zip(st.hashes, st.items) if stands_in(v))
        return known, raw

    def list_hashes(self, thread_id: str, ns: str | None) -> list[tuple[bytes, ...]]:
        """The element hashes of the lists cached for (thread, ns), or every namespace of
        the thread when ``ns`` is None: whose chunks (core/chunks.py) a read knows."""
        with self._lock:
            keys = self._threads.get(thread_id, ())
            return [
                self._data[k].hashes
                for k in keys
                if (ns is None or k[1] == ns) and not k[2].startswith("\0")
            ]

    def remember_scalars(
        self, thread_id: str, ns: str, values: Iterable[tuple[ValueRow, Sequence[StoredObject]]]
    ) -> None:
        """Keep the stored object of each scalar channel value just put, so the
        get_tuple that follows need not fetch it again: what a hash stands for
        never changes. A read of the checkpoint put last (`Head`) takes the value by
        version: a version put again with another value (its row, INSERT OR IGNORE,
        keeps the first one, unless that put was rolled back) is forgotten instead."""
        with self._lock:
            for row, objs in values:
                key = (thread_id, ns, _SCALAR + row.channel)
                old = self._data.get(key)
                if old is not None and old.version == row.version and (
                    len(objs) != 1 or old.hashes != (objs[0].hash,)
                ):
                    self._items -= len(self._data.pop(key).items)
                    self._unindex(key)
                elif len(objs) == 1 and len(objs[0].data) <= _SMALL_OBJECT:
                    self._set(key, ListState(row.version, (objs[0].hash,), (objs[0],), "", 0))
                elif key in self._data:
                    self._items -= len(self._data.pop(key).items)
                    self._unindex(key)

    def remember_writes(
        self,
        thread_id: str,
        ns: str,
        checkpoint_id: str,
        hashes: Sequence[bytes],
        items: Sequence[Any],
        objs: Iterable[StoredObject] = (),
        edits: int = 0,
    ) -> None:
        """Keep the values of the pending writes just stored for a checkpoint, so the
        get_tuple that follows (LangGraph's next step, a resume) neither fetches nor
        decodes them again: ``items`` decoded (hash by hash), the small ones of
        ``objs`` as stored. One entry per (thread, ns): the newest checkpoint's writes.
        ``edits``: the codec's count before ``items`` were hashed (see `known`)."""
        small = [o for o in objs if len(o.data) <= _SMALL_OBJECT]
        with self._lock:
            for tag, hs, vs in (
                (_WRITES, tuple(hashes), tuple(items)),
                (_WRITE_OBJECTS, tuple(o.hash for o in small), tuple(small)),
            ):
                key = (thread_id, ns, tag)
                old = self._data.get(key)
                if not hs:
                    continue
                n = edits
                if old is not None and old.version == checkpoint_id and len(old.items) < _MAX_WRITES:
                    hs, vs, n = old.hashes + hs, old.items + vs, min(n, old.edits)
                self._set(key, ListState(checkpoint_id, hs, vs, checkpoint_id, 0, edits=n))

    def remember_empty(self, thread_id: str, ns: str, channels: Iterable[tuple[str, str]]) -> None:
        """(channel, version) of channels known to have no value row at that version:
        a put gave them the version without a value, or a read found no row for it."""
        with self._lock:
            for channel, version in channels:
                # one item counted, as a scalar's entry: the cache's bound holds for these too
                self._set((thread_id, ns, _EMPTY + channel), ListState(version, (), (None,), "", 0))

    def held_empty(self, thread_id: str, ns: str, channel: str, version: str) -> bool:
        """Whether ``channel`` is known to have no value row at ``version`` (`remember_empty`)."""
        with self._lock:
            st = self._data.get((thread_id, ns, _EMPTY + channel))
            return st is not None and st.version == version

    def set_head(self, thread_id: str, ns: str, head: Head | None) -> None:
        """Remember the checkpoint just put in (thread, ns), or forget the last one."""
        with self._lock:
            heads = self._heads.get(thread_id)
            if head is None:
                if heads is not None:
                    heads.pop(ns, None)
                return
            if heads is None:
                heads = self._heads[thread_id] = {}
                while len(self._heads) > _MAX_HEAD_THREADS:
                    self._heads.popitem(last=False)
            else:
                self._heads.move_to_end(thread_id)
            heads[ns] = head

    def head(self, thread_id: str, ns: str) -> Head | None:
        with self._lock:
            heads = self._heads.get(thread_id)
            return None if heads is None else heads.get(ns)

    def held_value(self, thread_id: str, ns: str, channel: str, version: str, edits: int) -> Any:
        """A channel's value at ``version`` as the cache holds it: a tuple of the list's
        elements (a state whose elements all stand in, made since the codec's last
        count of ``edits``), the small scalar's `StoredObject`, or None."""
        with self._lock:
            st = self._data.get((thread_id, ns, channel))
            if st is not None and st.version == version and st.exact and st.edits == edits:
                return st.items
            st = self._data.get((thread_id, ns, _SCALAR + channel))
            if st is not None and st.version == version:
                return st.items[0]
        return None

    def held_writes(
        self, thread_id: str, ns: str, checkpoint_id: str, edits: int
    ) -> tuple[dict[bytes, Any], dict[bytes, StoredObject]]:
        """The remembered writes of a checkpoint (`remember_writes`), as `known` gives
        them: hash -> element that stands in, hash -> small stored object."""
        with self._lock:
            items = self._data.get((thread_id, ns, _WRITES))
            objs = self._data.get((thread_id, ns, _WRITE_OBJECTS))
        known: dict[bytes, Any] = {}
        if items is not None and items.version == checkpoint_id and items.edits == edits:
            known = {h: v for h, v in zip(items.hashes, items.items) if stands_in(v)}
        raw: dict[bytes, StoredObject] = {}
        if objs is not None and objs.version == checkpoint_id:
            raw = dict(zip(objs.hashes, objs.items))
        return known, raw

    def forget_thread(self, thread_id: str) -> None:
        with self._lock:
            for key in self._threads.pop(thread_id, ()):
                self._items -= len(self._data.pop(key).items)
            self._heads.pop(thread_id, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._threads.clear()
            self._heads.clear()
            self._items = 0


def unique_objects(objs: Any) -> list[StoredObject]:
    """Objects without duplicates, in hash order: concurrent inserts of the same
    objects then take their index locks in one order and cannot deadlock."""
    unique = {o.hash: o for o in objs}
    return [unique[h] for h in sorted(unique)]


# Version strings that sort as the counters they lead with, which reading a delta
# chain by version range needs: ours (see SaverBase.get_next_version: a counter 10
# digits wide, then a random part: 12 hex digits, 8 before session 17), and LangGraph's
# default (32 digits, then a random float), which the incumbent savers store and an
# import keeps. Ours sort after it.
_SORTABLE_VERSION = re.compile(r"^(?:\d{10}\.(?:[0-9a-f]{12}|[0-9a-f]{8})|\d{32}\.\S+)$")


def is_sortable_version(version: Any) -> bool:
    return isinstance(version, str) and _SORTABLE_VERSION.match(version) is not None


def _shared_prefix(items: list[Any], prev: ListState) -> int:
    """How many leading elements of ``items`` are the very objects ``prev`` stored."""
    n = len(prev.items)
    if len(items) < n:
        return 0
    for a, b in zip(items, prev.items):
        if a is not b:
            return 0
    return n


def plan_channel_value(
    key: tuple[str, str, str],
    version: Any,
    value: Any,
    codec: ValueCodec,
    cache: ListCache,
) -> tuple[ValueRow, list[StoredObject], str | None, ListState | None]:
    """Plan the row for one new channel version (``value`` is MISSING for an empty channel).

    Returns the row, the objects to insert with it, the version of the same
    channel that must still be stored for the row to be readable (a delta's
    base, or the version whose elements a full list reuses) or None, and the
    list state to cache once the row is stored, or None. Only then: another put
    planned meanwhile (two runs of one thread, a pool) must not build on a
    version that is not stored yet, and may never be.
    """
    channel = key[2]
    ver = str(version)
    edits = codec.edits  # before serializing: an edit found meanwhile is checked next time
    if value is MISSING:
        return ValueRow(channel, ver, KIND.EMPTY, None, None, b""), [], None, None
    if type(value) is not list:
        enc = codec.encode(value)
        stored, chunks, _ = chunk_runs(enc.hashes, enc.runs, codec)
        row = ValueRow(channel, ver, enc.kind, None, None, enc.refs, stored if chunks else None)
        return row, [*enc.objects, *chunks], None, None
    prev = cache.get(key) if is_sortable_version(version) else None
    # The version put again (a retry, a checkpoint put twice): its row is stored,
    # as the cache describes it, unless the first put failed. A full row is sent
    # (ignored if the row is there), and the cache keeps describing the stored one.
    again = prev is not None and prev.version == ver
    if prev is not None and prev.version >= ver:
        # A fork from an older checkpoint: a delta must grow from a version that
        # sorts before it, since a chain is read by version range.
        prev = None
    # a message of the list edited in place since, and written (a node returning it,
    # update_state with a message get_state handed out): the elements by hash then
    trusted = prev is not None and prev.edits == codec.edits and prev.by_identity
    shared = _shared_prefix(value, prev) if trusted else 0
    fresh = 0  # where the elements that are not prev's very objects start
    new_objs = [codec.dump_element(v) for v in value[shared:]]
    if not codec.composes(new_objs):
        # stored whole, as the serializer stores it (an element pickled: see `composes`)
        enc = codec.encode_whole(value)
        return ValueRow(channel, ver, enc.kind, None, None, enc.refs), list(enc.objects), None, None
    hashes = (prev.hashes[:shared] if prev is not None else ()) + tuple(o.hash for o in new_objs)
    if prev is None or shared == 0:
        # not a pure append of the objects we know: compare hashes to reuse what we can
        hashes = tuple(o.hash for o in new_objs)
        if prev is not None and prev.hashes and hashes[: len(prev.hashes)] == prev.hashes:
            # an append all the same, of elements equal to the stored ones but other
            # objects (a list read afresh, as an import does, or copied)
            shared = len(prev.hashes)
            new_objs = new_objs[shared:]
    else:
        fresh = shared
    items = tuple(value)
    if prev is not None and shared and prev.chain_len < chain_limit(len(hashes)):
        row = ValueRow(channel, ver, KIND.DELTA, prev.version, prev.root_version, b"".join(hashes[shared:]))
        # elements equal to prev's by hash only may be of another type (a bytearray
        # for bytes): the list's own objects decide whether it may stand in
        exact = prev.exact and all(stands_in(v) for v in value[fresh:])
        state = ListState(
            ver,
            hashes,
            items,
            prev.root_version,
            prev.chain_len + 1,
            exact,
            edits=edits,
            # (the elements before ``fresh`` are prev's, recognized as trusted ones)
            by_identity=all(known_by_identity(v) for v in value[fresh:]),
        )
        return row, unique_objects(new_objs), prev.version, state
    runs = ((0, len(hashes)),) if chunkable(value) else ()
    stored, chunks, _ = chunk_runs(hashes, runs, codec)
    row = ValueRow(channel, ver, KIND.LIST, None, ver, b"".join(hashes), stored if chunks else None)
    anchor = None
    objs = unique_objects([*new_objs, *chunks])
    if prev is not None:
        known = set(prev.hashes)
        if shared or any(h in known for h in hashes):
            # elements we do not send again are stored with the version they came from
            anchor = prev.version
            objs = [o for o in objs if o.hash not in known]
    state = None
    if is_sortable_version(version) and not again:
        state = ListState(
            ver,
            hashes,
            items,
            ver,
            0,
            all(stands_in(v) for v in items),
            edits=edits,
            by_identity=all(known_by_identity(v) for v in items),
        )
    return row, objs, anchor, state


def resolve_hashes(
    rows: dict[str, tuple[int, str | None, bytes]],
    version: str,
    memo: dict[str, tuple[bytes, ...]],
    where: str,
) -> tuple[bytes, ...]:
    """Element hashes of the list stored at ``version``, following its delta chain.

    ``rows`` maps version -> (kind, base_version, refs) for one (thread, ns, channel);
    ``memo`` caches resolved versions across the checkpoints of one listing, the
    last `MEMO_VERSIONS` of them: a listing walks each chain once, newest first, and
    keeping every version's whole list made its memory grow with the square of the
    thread (416 MB for a 10,000-step thread).
    """
    stack: list[str] = []
    seen: set[str] = set()
    v: str | None = version
    while v is not None and v not in memo:
        row = rows.get(v)
        if row is None:
            raise IntegrityError(
                f"{where}: list version {v!r} is missing from storage; the thread was "
                "changed while it was read or its rows were deleted by hand"
            )
        if row[0] != KIND.LIST and row[0] != KIND.DELTA:
            raise IntegrityError(
                f"{where}: list version {v!r} has kind {row[0]!r}; its row was changed by hand"
            )
        if v in seen or (row[0] == KIND.DELTA and row[1] is None):
            # rows edited by hand: a chain that loops would grow `stack` forever
            raise IntegrityError(
                f"{where}: the delta chain of list version {v!r} "
                f"{'loops' if v in seen else 'has no base version'}; its rows were changed by hand"
            )
        seen.add(v)
        stack.append(v)
        v = row[1] if row[0] == KIND.DELTA else None
    base: tuple[bytes, ...] = memo[v] if v is not None else ()
    for ver in reversed(stack):
        kind, _, refs = rows[ver]
        base = (base if kind == KIND.DELTA else ()) + tuple(split_refs(refs))
        memo[ver] = base
        if len(memo) > MEMO_VERSIONS:
            del memo[next(iter(memo))]  # the earliest resolved
    return base


# enough for a delta chain and its neighbours (chains are bounded, see `chain_limit`)
MEMO_VERSIONS = 64
