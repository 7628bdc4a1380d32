"""Planning channel-value rows (list deltas) and rebuilding values from them."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from checkpoint_pg.core.codec import EncodedValue, StoredObject, split_refs
from checkpoint_pg.errors import IntegrityError
from checkpoint_pg.schema import KIND

__all__ = [
    "ValueRow",
    "ListState",
    "ListCache",
    "plan_channel_value",
    "chain_limit",
    "resolve_hashes",
    "unique_objects",
]


@dataclass(frozen=True, slots=True)
class ValueRow:
    """One row of the channel_values table (or of writes: channel in place of version)."""

    channel: str
    version: str
    kind: int
    base_version: str | None
    root_version: str | None
    refs: bytes


@dataclass(frozen=True, slots=True)
class ListState:
    """What a stored list version holds, remembered to write the next version as a delta."""

    version: str
    hashes: tuple[bytes, ...]
    root_version: str
    chain_len: int


def chain_limit(length: int) -> int:
    """How many deltas may follow a full list before the next version is stored whole.

    Grows with the list so that full copies stay a small, bounded fraction of the
    stored bytes, and is capped so a read never walks more than 256 versions.
    """
    return max(16, min(256, length // 4))


class ListCache:
    """The last known list state per (thread, ns, channel), bounded LRU, thread-safe.

    Filled by put (what was just written) and by reads (what a run loads before
    it continues a thread), so a new version is written as a delta against a
    version we know is stored. A miss only costs a full copy, never correctness.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._data: OrderedDict[tuple[str, str, str], ListState] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> ListState | None:
        with self._lock:
            st = self._data.get(key)
            if st is not None:
                self._data.move_to_end(key)
            return st

    def set(self, key: tuple[str, str, str], state: ListState) -> None:
        with self._lock:
            self._data[key] = state
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)

    def forget_thread(self, thread_id: str) -> None:
        with self._lock:
            for key in [k for k in self._data if k[0] == thread_id]:
                del self._data[key]

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


def unique_objects(objs: Any) -> list[StoredObject]:
    seen: set[bytes] = set()
    out: list[StoredObject] = []
    for o in objs:
        if o.hash not in seen:
            seen.add(o.hash)
            out.append(o)
    return out


def plan_channel_value(
    key: tuple[str, str, str],
    version: Any,
    enc: EncodedValue | None,
    cache: ListCache,
) -> tuple[ValueRow, list[StoredObject], str | None]:
    """Plan the row for one new channel version.

    Returns the row, the objects to insert with it, and the version of the same
    channel that must still be stored for the row to be readable (a delta's
    base, or the version whose elements a full list reuses), or None.
    """
    channel = key[2]
    ver = str(version)
    if enc is None:
        return ValueRow(channel, ver, KIND.EMPTY, None, None, b""), [], None
    if enc.kind != KIND.LIST:
        return ValueRow(channel, ver, enc.kind, None, None, enc.refs), list(enc.objects), None
    hashes = enc.hashes
    # Only string versions are remembered: LangGraph's are unique per write, while
    # a hand-written int version may be re-put with other content.
    prev = cache.get(key) if isinstance(version, str) else None
    if prev is not None and prev.version == ver:
        prev = None
    if (
        prev is not None
        and len(hashes) >= len(prev.hashes)
        and hashes[: len(prev.hashes)] == prev.hashes
        and prev.chain_len < chain_limit(len(hashes))
    ):
        n = len(prev.hashes)
        row = ValueRow(channel, ver, KIND.DELTA, prev.version, prev.root_version, b"".join(hashes[n:]))
        objs = unique_objects(enc.objects[n:])
        cache.set(key, ListState(ver, hashes, prev.root_version, prev.chain_len + 1))
        return row, objs, prev.version
    row = ValueRow(channel, ver, KIND.LIST, None, ver, enc.refs)
    if prev is not None:
        known = set(prev.hashes)
        objs = unique_objects(o for o in enc.objects if o.hash not in known)
        anchor = prev.version if len(objs) < len(set(hashes)) else None
    else:
        objs = unique_objects(enc.objects)
        anchor = None
    if isinstance(version, str):
        cache.set(key, ListState(ver, hashes, ver, 0))
    return row, objs, anchor


def resolve_hashes(
    rows: dict[str, tuple[int, str | None, bytes]],
    version: str,
    memo: dict[str, tuple[bytes, ...]],
    where: str,
) -> tuple[bytes, ...]:
    """Element hashes of the list stored at ``version``, following its delta chain.

    ``rows`` maps version -> (kind, base_version, refs) for one (thread, ns, channel);
    ``memo`` caches resolved versions across the checkpoints of one listing.
    """
    stack: list[str] = []
    v: str | None = version
    while v is not None and v not in memo:
        row = rows.get(v)
        if row is None:
            raise IntegrityError(
                f"{where}: list version {v!r} is missing from storage; the thread was "
                "changed while it was read or its rows were deleted by hand"
            )
        stack.append(v)
        v = row[1] if row[0] == KIND.DELTA else None
    base: tuple[bytes, ...] = memo[v] if v is not None else ()
    for ver in reversed(stack):
        kind, _, refs = rows[ver]
        base = (base if kind == KIND.DELTA else ()) + tuple(split_refs(refs))
        memo[ver] = base
    return base
