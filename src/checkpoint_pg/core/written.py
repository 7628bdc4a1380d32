"""Writes of messages without ids, until a put stores the message with its id (`WrittenMessages`)."""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["WrittenMessages"]


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
        # state, hash the list holds, hash of obj without its id when the list's put
        # stored it]; an entry keeps obj alive, so its id is not reused
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
                        entry[4], entry[5], entry[6] = self.CLAIMED, old[5], old[6]
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
        entry = [obj, None, key, pos, self.PENDING, None, None]
        with self._lock:
            self._add(entry)
        return entry

    def serialized(self, entry: list[Any], h: bytes) -> None:
        """put_writes serialized ``entry``'s message as ``h``."""
        with self._lock:
            entry[1] = h
            # a put stored it as it was written, or edited since (its id apart): the
            # write keeps what it holds
            if entry[4] == self.CLAIMED and (entry[5] == h or entry[6] != h):
                self._drop(entry)
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
        entry = [None, h, key, pos, self.STORED, None, None]
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

    def claim(
        self, obj: Any, h: bytes, thread_id: str, idless: Callable[[Any], bytes]
    ) -> list[tuple[Any, ...]]:
        """A put of ``thread_id`` stored ``obj`` as ``h``: the repoints to do now, of
        the writes that are in (the others' put_writes repoint once they are).
        ``idless(obj)``: the hash of ``obj`` serialized without its id."""
        out: list[tuple[Any, ...]] = []
        # Only a message given its id since it was written, and nothing else, is the
        # write's message at another hash: one still without an id, or one whose other
        # fields changed too, was edited in place (a node, a review through get_state)
        # after its write, which must keep what the node wrote. (A put may store the
        # message before the put_writes registers it: LangGraph saves both on
        # background threads, so the entry can wait for a later put, and meanwhile a
        # review may edit the message and post it to add_messages, which gives it its id.)
        ided = getattr(obj, "id", None) is not None
        bare: list[bytes] = []

        def idless_hash() -> bytes:  # computed once, where a write needs it
            if not bare:
                bare.append(idless(obj))
            return bare[0]

        if ided and (id(obj) in self._data or id(obj) in self._reads):
            idless_hash()  # (serialized outside the lock where it can be: a look, unlocked)

        with self._lock:
            reads = self._reads.get(id(obj))
            if reads is not None and reads[0]() is obj:
                for entry in reads[1:]:
                    if entry[2][0] == thread_id:
                        reads.remove(entry)
                        if entry[1] != h and ided and entry[1] == idless_hash():
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
                # (entry[1] is None while put_writes is serializing it: `serialized` checks)
                if entry[1] == h or not ided or (entry[1] is not None and entry[1] != idless_hash()):
                    self._drop(entry)
                    entry[4] = None
                    continue
                # (entry[6] for `serialized`: of this call's put_writes, or of its retry's)
                entry[5], entry[6] = h, idless_hash()
                if entry[4] == self.STORED:
                    self._drop(entry)
                    entry[4] = None
                    out.append(_fixup(entry))
                else:
                    entry[4] = self.CLAIMED  # the put_writes repoints once its write is in
        return out


def _fixup(entry: list[Any]) -> tuple[Any, ...]:
    """Arguments of `repoint_write` for a WrittenMessages entry."""
    t, ns, cid, task, idx = entry[2]
    return (t, ns, cid, task, idx, entry[3], entry[1], entry[5])
