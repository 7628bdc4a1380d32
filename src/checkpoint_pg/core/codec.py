"""Serialize, hash and (optionally) encrypt values: one stored object per distinct value."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import hashlib
import math
import os
import threading
import uuid
import weakref
import zlib
from dataclasses import dataclass
from operator import is_
from collections.abc import Callable, Iterable
from typing import Any

import ormsgpack

from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from checkpoint_pg.core.config import check_text
from checkpoint_pg.core.zdict import CURRENT as _ZTAG
from checkpoint_pg.core.zdict import DICTIONARIES
from checkpoint_pg.errors import ConfigError, IntegrityError, SerializationError, ValueTooLargeError
from checkpoint_pg.schema import CHUNK_TYPE, KIND

__all__ = [
    "StoredObject",
    "EncodedValue",
    "ValueCodec",
    "HASH_SIZE",
    "inflate",
    "assemble_dict",
    "stands_in",
    "chunkable",
    "inlinable",
]

HASH_SIZE = 16
# Objects at least this large are stored zlib-compressed against a preset
# dictionary (type prefixed "zd1:", see core/zdict.py) when that saves a tenth,
# unless the serializer encrypts: compressing before encrypting leaks lengths.
# Below this size a message is mostly its skeleton, which the dictionary holds.
COMPRESS_MIN = 128
_ZPREFIX = _ZTAG + ":"
_ZDICT = DICTIONARIES[_ZTAG]
# One compressor primed with the dictionary, copied for each object: creating and
# priming one per object was most of its cost (zeroing its tables, hashing the
# dictionary). A 4 KB window (the dictionary fits whole) and memLevel 5 make the
# copy small: ~85k instructions an object against ~200k with a fresh (15, 8) one,
# for +0.4% bytes on the benchmark's messages. Any window up to 32 KB decompresses
# with `decompressobj(15, ...)`, so objects stored before read back the same.
_ZPRIMED = zlib.compressobj(1, zlib.DEFLATED, 12, 5, zlib.Z_DEFAULT_STRATEGY, _ZDICT)

# Immutable values whose objects `ValueCodec.dump` remembers: counters, flags,
# statuses and the None of trigger channels come back at every step.
_MEMO_TYPES = frozenset({int, str, bool, type(None)})
_MEMO_MAX_LEN = 256  # longer strings, and objects, are not remembered
_MEMO_SIZE = 4096

# messages whose objects `ValueCodec.dump` remembers (a 200-turn thread holds 800)
_MESSAGES_SIZE = 10_000

try:
    from langchain_core.messages import BaseMessage as _BaseMessage
except ImportError:  # pragma: no cover - langchain_core comes with langgraph
    _BaseMessage = None  # type: ignore[assignment,misc]

try:
    from langgraph.types import Overwrite as _Overwrite
except ImportError:  # pragma: no cover - a saver used without langgraph itself
    _Overwrite = None  # type: ignore[assignment,misc]

# Elements that decode to an object of their own type: any element with the same
# hash (in another channel, another checkpoint) is equal to it and of its type, so
# the live object may stand in for decoding it. Not so for containers: a tuple and
# a list, or a dict and an OrderedDict, serialize to the same bytes.
_EXACT_TYPES = frozenset({str, int, float, bool, type(None), bytes})


def stands_in(item: Any) -> bool:
    """Whether a live ``item`` may be returned for any stored element with its hash."""
    return type(item) in _EXACT_TYPES or (_BaseMessage is not None and isinstance(item, _BaseMessage))


def known_by_identity(item: Any) -> bool:
    """Whether a list element stored before may be recognized by identity at the next put,
    without being serialized again: an immutable scalar, or a message with an id, whose
    edits in place written back the memo counts (`ValueCodec.edits`). Not a dict, a list
    or another object, nor a message without an id, which the memo does not keep: a node
    that edits one in place and writes its list back changed what is stored under its
    hash, and only serializing it again tells."""
    if type(item) in _EXACT_TYPES:
        return True
    return _BaseMessage is not None and isinstance(item, _BaseMessage) and item.id is not None


def chunkable(items: Any) -> bool:
    """Whether a list's hashes may be stored in chunks (core/chunks.py): its elements
    stand in for their stored objects, so a run holding the list reads neither the
    chunks nor their elements. The elements of others (dicts, tuples) are read anew
    at every read, and chunks would take those reads one more round trip."""
    return all(stands_in(v) for v in items)


# Small scalar channel values (a counter, a status, the None of a trigger channel)
# are kept in the checkpoint's own row, as JSON, instead of a value row and an
# object each (revision 0014): they change at most steps, and two rows per value
# were half the rows of a short step. Only what JSON gives back exactly, as the
# default serializer's msgpack would: a str of at most this many characters, an int
# msgpack can hold, a finite float, a bool or None.
INLINE_MAX_STR = 64
_INT_MIN, _INT_END = -(1 << 63), 1 << 64


def inlinable(value: Any) -> bool:
    """Whether a channel value may live in its checkpoint's row (see `ValueCodec.inlines`)."""
    t = type(value)
    if value is None or t is bool:
        return True
    if t is int:
        return _INT_MIN <= value < _INT_END
    if t is float:
        return math.isfinite(value)
    if t is str and len(value) <= INLINE_MAX_STR and "\x00" not in value:
        if value.isascii():
            return True
        try:
            value.encode()  # a lone surrogate: not text Postgres or SQLite take back as is
        except UnicodeEncodeError:
            return False
        return True
    return False


# "no value" where None is a value (an empty channel, a cache miss)
MISSING: Any = object()

# A dict whose list values hold at least this many elements in all (lists of
# messages or other objects, see `_shared`) is stored key by key (KIND.DICT): a
# subgraph's input, {"messages": [the whole history]}, is stored at every call,
# and as one object it grew storage with the square of the thread. Below this a
# dict is one object, as it costs fewer rows.
DICT_MIN_ELEMENTS = 8
# Serializer types whose objects read back inside a dict as they do alone: what the
# default serializer's msgpack makes of a dict is its parts' msgpack one after the
# other (None and bytes, typed apart when alone, are nil and bin inside). A part of
# any other type (a pickle, a bytearray, another serializer's) keeps the dict whole.
_AS_IN_A_DICT = frozenset({"msgpack", "null", "bytes"})


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One row of the objects table."""

    hash: bytes
    type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class EncodedValue:
    """A value as rows: its kind, the hashes it refers to, and the objects behind them.

    ``runs``: (start, stop) in ``hashes`` of each list it holds (see core/chunks.py).
    """

    kind: int
    hashes: tuple[bytes, ...]
    objects: tuple[StoredObject, ...]
    runs: tuple[tuple[int, int], ...] = ()

    @property
    def refs(self) -> bytes:
        return b"".join(self.hashes)


def split_refs(refs: bytes) -> list[bytes]:
    """Cut a refs column into its 16-byte hashes."""
    if len(refs) == HASH_SIZE and type(refs) is bytes:
        return [refs]  # a scalar value or write: most refs columns
    return [refs[i : i + HASH_SIZE] for i in range(0, len(refs), HASH_SIZE)]


# field values of a message that cannot change in place
_ATOMIC = frozenset({str, int, float, bool, type(None), bytes})
# The serializer's msgpack stores dataclasses, datetimes, enums and UUIDs as typed
# extensions, where ormsgpack alone writes their plain form (an enum member as its value,
# a UUID or a datetime as its string): passed through to `_fingerprint_default`, which
# keeps their type, so that one replaced in place by its plain form is told apart.
_FINGERPRINT = (
    ormsgpack.OPT_NON_STR_KEYS
    | ormsgpack.OPT_SERIALIZE_PYDANTIC
    | ormsgpack.OPT_PASSTHROUGH_DATACLASS
    | ormsgpack.OPT_PASSTHROUGH_DATETIME
    | ormsgpack.OPT_PASSTHROUGH_ENUM
    | ormsgpack.OPT_PASSTHROUGH_UUID
)
_TYPED_VALUES = (datetime.date, datetime.time, datetime.timedelta, uuid.UUID, enum.Enum)


def _fingerprint_default(obj: Any) -> Any:
    t = type(obj)
    name = f"{t.__module__}.{t.__qualname__}"
    if isinstance(obj, _TYPED_VALUES):
        return [name, repr(obj)]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [name, [getattr(obj, f.name) for f in dataclasses.fields(obj)]]
    raise TypeError(f"cannot fingerprint {name}")


def _fingerprint(fields: tuple[Any, ...]) -> bytes:
    """The contents of a message's fields that can change in place (a dict, a list):
    msgpack of them, to tell an edit in place from the object as it was serialized.
    Raises for a value msgpack cannot take."""
    return ormsgpack.packb(
        [v for v in fields if type(v) not in _ATOMIC], default=_fingerprint_default, option=_FINGERPRINT
    )


def _forget_on_collect(
    seen: dict[int, tuple[Any, ...]], dropped: dict[int, tuple[Any, ...]]
) -> Callable[[weakref.KeyedRef], None]:
    """The callback of the memo's weak references (`weakref.KeyedRef`, keyed by the
    message's id): drops the entries of a message collected, since its id may name
    another object next. One function for every entry: a closure per message (a
    function and three cells, ~2,000 bytes a thread of a few messages) kept the
    cyclic garbage collector busy, whose full passes walk every object the memo
    keeps alive."""

    def gone(ref: weakref.KeyedRef) -> None:
        # no lock: a collection may run it in a thread holding another lock (a pool's)
        # while the thread holding this one waits for that; single dict operations
        # need none
        key = ref.key
        for memo in (seen, dropped):
            if memo.get(key, (None,))[0] is ref:
                memo.pop(key, None)

    return gone


class ValueCodec:
    """Turns channel values and writes into content-addressed objects and back.

    A plain ``list`` is stored element by element so that a list which grows
    by appending (the messages list) shares every element with its previous
    versions and with the writes that produced them. Other values are one
    object each. Objects are keyed by a 16-byte BLAKE2b hash of the plaintext
    serialization; with an `EncryptedSerializer` the hash is keyed, so the
    stored hashes reveal nothing about the plaintext to whoever lacks the key
    (equal values still hash alike, in every thread), and the bytes stored are
    encrypted exactly as `EncryptedSerializer.dumps_typed` would.
    """

    def __init__(
        self,
        serde: SerializerProtocol,
        *,
        hash_key: bytes | None = None,
        max_value_bytes: int | None = None,
    ) -> None:
        self.serde = serde
        if hash_key is not None:
            _check_hash_key(hash_key)
        if isinstance(serde, EncryptedSerializer):
            self._plain = serde.serde
            self._cipher = serde.cipher
            self._key = bytes(hash_key) if hash_key is not None else _key_from_env()
        else:
            self._plain = serde
            self._cipher = None
            self._key = bytes(hash_key) if hash_key is not None else b""
        if max_value_bytes is not None and (
            type(max_value_bytes) is not int or max_value_bytes < 1
        ):
            raise ConfigError(
                f"max_value_bytes must be a positive int (bytes) or None, got {max_value_bytes!r}"
            )
        self.max_value_bytes = max_value_bytes
        self._inline = self._cipher is None and not self._key and type(serde) is JsonPlusSerializer
        # LangGraph's serializer pickles a list whole when an element needs pickle_fallback
        # (see `composes`); without it, its elements are msgpack, None or bytes
        self._pickles = isinstance(self._plain, JsonPlusSerializer) and bool(
            getattr(self._plain, "pickle_fallback", True)
        )
        # (type, value) -> its object, for small immutable values. Not with a
        # cipher: each encryption of a value is to get its own nonce.
        self._memo: dict[tuple[type, Any], StoredObject] | None = (
            {} if self._cipher is None else None
        )
        self._loaded: dict[tuple[bytes, str, bytes], Any] = {}  # see load_small
        # id(message) -> (a weak reference to it, its object, its fields' values, a
        # fingerprint of their contents): see `_dump_message`
        self._messages: dict[
            int, tuple[weakref.ref[Any], StoredObject, tuple[Any, ...], bytes | None]
        ] = {}
        # id(message) -> (its weak reference, its last hash) of the live messages
        # `_messages` dropped when full: an edit of one is still counted (`edits`)
        self._dropped: dict[int, tuple[weakref.ref[Any], bytes]] = {}
        # `_remember`'s changes to the two above (reentrant: a collection inside may run anything)
        self._memo_lock = threading.RLock()
        self._gone = _forget_on_collect(self._messages, self._dropped)
        # how many remembered messages were found edited in place: a list cached with
        # an older count may hold one of them (see ListState.edits)
        self.edits = 0

    @property
    def encrypted(self) -> bool:
        return self._cipher is not None

    @property
    def inlines(self) -> bool:
        """Whether small scalar values go in the checkpoint's row (`inlinable`): with
        the default serializer only, whose msgpack they read back as from JSON, and
        never when encrypting (the row is not encrypted) or keying hashes."""
        return self._inline

    def dump(self, value: Any) -> StoredObject:
        """Serialize one value into an object (hash of the plaintext, stored bytes).

        A message that has its id is serialized once per object: LangGraph hands
        the same message objects to every row that holds them (the messages list,
        a subgraph's input, a node returning the history), and state is immutable
        once checkpointed. Serializing, hashing and compressing the history again
        for each of them made a subgraph's steps slower than the incumbents'.
        """
        t = type(value)
        if _BaseMessage is not None and isinstance(value, _BaseMessage) and value.id is not None:
            return self._dump_message(value)
        if self._memo is None or t not in _MEMO_TYPES or (t is str and len(value) > _MEMO_MAX_LEN):
            return self._dump(value)
        key = (t, value)  # the type keeps True, 1 apart
        obj = self._memo.get(key)
        if obj is None:
            obj = self._dump(value)
            if len(obj.data) <= _MEMO_MAX_LEN:
                if len(self._memo) >= _MEMO_SIZE:
                    self._memo.clear()
                self._memo[key] = obj
        return obj

    def _dump_message(self, value: Any) -> StoredObject:
        # The object's fields as they were serialized: one given a new value since
        # (its content, its id, its name...) is serialized again, and so is one whose
        # dict or list was changed in place (additional_kwargs, tool_calls, a content
        # list, response_metadata), or an extra field (BaseMessage allows them; they
        # live outside __dict__): the memo keeps the fields and a fingerprint of their
        # contents. The memo is the saver's, not a thread's: an app that reuses a
        # prompt object and updates it between runs must not store the old text in
        # the next thread.
        fields = getattr(value, "__dict__", None)
        if fields is None:
            return self._dump(value)
        now = (*fields.values(), getattr(value, "__pydantic_extra__", None))
        key = id(value)
        entry = self._messages.get(key)
        try:
            fingerprint: bytes | None = _fingerprint(now)
        except (TypeError, ValueError):
            # contents msgpack cannot take (a set in additional_kwargs): serialized at
            # every dump, and remembered without a fingerprint, so that an edit in
            # place is still told by its hash and counted (a list holding it trusts
            # its identity until `edits` changes)
            fingerprint = None
        alive = entry is not None and entry[0]() is value
        if alive:
            same = len(now) == len(entry[2]) and all(map(is_, now, entry[2]))
            if fingerprint is not None and entry[3] is not None:
                if same and fingerprint == entry[3]:
                    return entry[1]
                changed = True
            else:
                changed = not same  # else its hash tells, once serialized
            if changed:
                # counted before serializing: a put another thread plans meanwhile
                # (the step's put beside its writes) then checks its lists by hash
                self.edits += 1
            obj = self._dump(value)
            if not changed and obj.hash != entry[1].hash:
                self.edits += 1
        else:
            obj = self._dump(value)
            # one the memo dropped when full, which a cached list may still hold
            dropped = self._dropped.pop(key, None)
            if dropped is not None and dropped[0]() is value and obj.hash != dropped[1]:
                self.edits += 1
        self._remember(value, obj, now, fingerprint)
        return obj

    def _remember(
        self, value: Any, obj: StoredObject, now: tuple[Any, ...], fingerprint: bytes | None
    ) -> None:
        key = id(value)
        seen, dropped, lock = self._messages, self._dropped, self._memo_lock
        # Under the lock: the threads of a pool share the codec, and one emptying the
        # full memo while another added to it raised "dictionary changed size during
        # iteration" (8 threads storing 100,000 checkpoints). The copy is taken whole
        # (in C, nothing else runs meanwhile) before any of it is read, so a `gone`
        # running meanwhile, in this thread or another, cannot change what is read.
        with lock:
            if len(seen) >= _MESSAGES_SIZE:
                # each message's last hash is kept while it lives: a list cached before
                # may hold it, and an edit written back must still be counted
                full = seen.copy()
                seen.clear()
                dropped.update((k, (e[0], e[1].hash)) for k, e in full.items())
            seen[key] = (weakref.KeyedRef(value, self._gone, key), obj, now, fingerprint)

    def _remember_loaded(self, value: Any, obj: StoredObject) -> None:
        """A message read back as ``obj``: remembered as if dumped, so that a write of it
        edited in place since (get_state, then update_state) is told apart and counted
        (`edits`: the next put then checks its list by hash), and one not edited is not
        serialized again."""
        fields = getattr(value, "__dict__", None)
        if fields is None or value.id is None:
            return
        now = (*fields.values(), getattr(value, "__pydantic_extra__", None))
        try:
            fingerprint: bytes | None = _fingerprint(now)
        except (TypeError, ValueError):
            fingerprint = None  # an edit is then told by its hash (see _dump_message)
        self._remember(value, obj, now, fingerprint)

    def hash_of(self, value: Any) -> bytes:
        """The hash `dump` gives ``value``, without compressing or encrypting it."""
        return self.digest(*self._plaintext(value))

    def _plaintext(self, value: Any) -> tuple[str, bytes]:
        """(type, bytes) of ``value`` as the serializer makes them, checked."""
        try:
            typ, data = self._plain.dumps_typed(value)
        except Exception as exc:
            raise SerializationError(
                f"cannot serialize a value of type {type(value).__name__}: {exc}"
            ) from exc
        if type(data) is not bytes:
            # JsonPlusSerializer gives a bytearray back as itself: the caller's object,
            # which it may change later, and unhashable (load_small keys on the bytes)
            data = _serialized_bytes(typ, data, value)
        if type(typ) is not str or not typ.isascii() or "\x00" in typ:
            _check_serialized_type(typ, value)
        return typ, data

    def _dump(self, value: Any) -> StoredObject:
        typ, data = self._plaintext(value)
        if self.max_value_bytes is not None and len(data) > self.max_value_bytes:
            raise ValueTooLargeError(
                f"a value of type {type(value).__name__} serializes to {len(data)} bytes, "
                f"over the limit of {self.max_value_bytes} (max_value_bytes); "
                "store large payloads elsewhere and keep a reference in the state",
                size=len(data),
                limit=self.max_value_bytes,
            )
        h = self.digest(typ, data)
        if self._cipher is not None:
            cname, data = self._cipher.encrypt(data)
            typ = f"{typ}+{cname}"
        elif len(data) >= COMPRESS_MIN or _reserved(typ):
            z = _ZPRIMED.copy()
            packed = z.compress(data) + z.flush()
            # A serializer's own type that reads as one of ours ("zd1:x", "z:x", the
            # chunks' "#refs") is always wrapped, so that reading it unwraps ours only:
            # stored as it was, it was taken for a compressed object or a chunk, and
            # the value could never be read back.
            if len(packed) < len(data) * 0.9 or _reserved(typ):
                typ, data = _ZPREFIX + typ, packed
        return StoredObject(h, typ, data)

    def digest(self, typ: str, data: bytes) -> bytes:
        """The hash of an object of type ``typ`` and plaintext ``data`` (keyed when encrypting)."""
        return object_hash(typ, data, self._key)

    def dump_element(self, value: Any) -> StoredObject:
        """`dump` for an element of a list stored element by element: as the serializer
        stores it inside the whole list, which InMemorySaver reads back. A bytearray is
        msgpack bin there, read back as bytes (alone it would come back a bytearray)."""
        return self.dump(bytes(value) if type(value) is bytearray else value)

    def encode(self, value: Any) -> EncodedValue:
        """Encode a channel value or a write: lists element-wise, a dict holding
        lists key by key (see `DICT_MIN_ELEMENTS`), anything else whole."""
        if type(value) is list:
            objs = tuple(self.dump_element(v) for v in value)
            if self.composes(objs):
                runs = ((0, len(objs)),) if chunkable(value) else ()
                return EncodedValue(KIND.LIST, tuple(o.hash for o in objs), objs, runs)
            return self.encode_whole(value)
        if type(value) is dict and _stored_by_key(value):
            shape: list[list[Any]] = []
            parts: list[StoredObject] = []
            runs: list[tuple[int, int]] = []
            for key, v in value.items():
                if _shared(v):
                    shape.append([key, len(v)])
                    start = len(parts) + 1  # after the shape
                    parts.extend(self.dump_element(x) for x in v)
                    if chunkable(v):
                        runs.append((start, len(parts) + 1))
                else:
                    shape.append([key, -1])
                    parts.append(self.dump(v))
            if all(self._plain_type(o.type) in _AS_IN_A_DICT for o in parts):
                objs = (self.dump(shape), *parts)
                return EncodedValue(KIND.DICT, tuple(o.hash for o in objs), objs, tuple(runs))
            # A part the serializer gives back otherwise than inside the whole dict
            # (pickled by pickle_fallback, a bytearray, a serializer of its own):
            # the dict is one object, read back as InMemorySaver reads it.
        self._check_overwritten(value)
        return self.encode_whole(value)

    def _check_overwritten(self, value: Any) -> None:
        """An Overwrite is stored whole, so its messages never met the memo: one
        edited in place since it was stored (get_state, edit, update_state with the
        list in an Overwrite) would not be counted (`edits`), and the list it then
        holds would be taken for the objects stored before, keeping their old text."""
        written = _overwritten(value)
        if _BaseMessage is None or written is None:
            return
        for item in written if type(written) in (list, tuple) else (written,):
            # (a message without an id needs nothing here: the memo keeps none, and a list
            # holding one is checked by hash at every put, `known_by_identity`)
            if isinstance(item, _BaseMessage) and item.id is not None:
                self._dump_message(item)  # counts an edit; unchanged, a memo hit

    def encode_whole(self, value: Any) -> EncodedValue:
        """A value as one object (KIND.SCALAR)."""
        obj = self.dump(value)
        return EncodedValue(KIND.SCALAR, (obj.hash,), (obj,))

    def composes(self, elements: Iterable[StoredObject]) -> bool:
        """Whether a list whose elements are these objects reads back, element by
        element, as the serializer reads the whole list back. Not so when LangGraph's
        serializer pickled an element (pickle_fallback): the whole list is then pickled,
        and keeps the tuples, bytearrays and dict subclasses of its other elements,
        which msgpack alone makes lists, bytes and dicts. A serializer of its own is
        taken to serialize a list as its elements."""
        if not self._pickles:
            return True
        return all(self._plain_type(o.type) in _AS_IN_A_DICT for o in elements)

    def _plain_type(self, typ: str) -> str:
        """The serializer's type of a stored object's type (no compression, no cipher)."""
        if typ.startswith(_ZPREFIX):
            return typ[len(_ZPREFIX) :]
        if self._cipher is not None:
            return typ.rpartition("+")[0]
        return typ

    def load_small(self, h: bytes, typ: str, data: bytes) -> Any:
        """`load`, remembering small immutable results by the row they came from."""
        if len(data) > _MEMO_MAX_LEN:
            return self.load(typ, data, h)
        key = (h, typ, data)
        value = self._loaded.get(key, MISSING)
        if value is MISSING:
            value = self.load(typ, data, h)
            if type(value) in _MEMO_TYPES:
                if len(self._loaded) >= _MEMO_SIZE:
                    self._loaded.clear()
                self._loaded[key] = value
        return value

    def load(self, typ: str, data: bytes, h: bytes | None = None) -> Any:
        """Deserialize a stored object; with its hash ``h``, first check that the row
        holds what the hash names (`check`)."""
        stored_typ, stored = typ, data
        try:
            # an encrypted object is never compressed (see `_dump`): its type is the
            # serializer's, which may itself start with "z" and hold a ":"
            if typ[:1] == "z" and ":" in typ and (self._cipher is None or "+" not in typ):
                typ, data = inflate(typ, data, self.max_value_bytes)
            if h is None or (self._cipher is None and "+" in typ):
                # an encrypted object read without the key: the serializer's error
                return self.serde.loads_typed((typ, data))
            plain_typ, plain = typ, data
            if self._cipher is not None and "+" in typ:
                # the cipher's name is the last part: the serializer's type may hold a "+"
                plain_typ, _, cname = typ.rpartition("+")
                try:
                    plain = self._cipher.decrypt(cname, data)
                except Exception as exc:
                    raise SerializationError(
                        f"cannot decrypt stored object {h.hex()} of type {typ!r}: {exc}; "
                        "the saver's encryption key is not the one it was written with, or "
                        "its row was changed by hand: open the saver with the key it was "
                        "written with (the CLI: the same LANGGRAPH_AES_KEY)"
                    ) from exc
        except SerializationError:
            raise
        except Exception as exc:
            raise self._unreadable(typ, exc) from exc
        if self._cipher is not None and "+" not in typ:
            self._refuse_unencrypted(h, typ, plain)
        self.check(h, plain_typ, plain)
        try:
            value = self._plain.loads_typed((plain_typ, plain))
        except Exception as exc:
            raise self._unreadable(typ, exc) from exc
        if _BaseMessage is not None and isinstance(value, _BaseMessage):
            self._remember_loaded(value, StoredObject(h, stored_typ, stored))
        return value

    def check(self, h: bytes, typ: str, plain: bytes) -> None:
        """IntegrityError unless ``h`` is the hash of an object of type ``typ`` holding
        ``plain``: a row changed by hand (ciphertexts swapped between objects, a row
        planted unencrypted in an encrypted saver's table) is refused, not read."""
        if self.digest(typ, plain) != h:
            if self._cipher is None and self._key and object_hash(typ, plain) == h:
                # a plain saver given a hash_key: an object rebuilt by a migration,
                # which cannot know the key (0012's downgrade stores dicts whole)
                return
            keyed = (
                # an encrypted saver without hash_key= derives one from LANGGRAPH_AES_KEY: the
                # CLI reading an app's hash_key= rows ends here unless given that key
                ", or the saver's hash_key is not the one it was written with (the CLI: set "
                "CHECKPOINT_PG_HASH_KEY to the hex of the app's hash_key)"
                if self._key
                # a saver given a hash_key wrote it: the CLI takes the key from the env
                else ", or it was written by a saver given a hash_key: pass the same "
                "hash_key (the CLI: set CHECKPOINT_PG_HASH_KEY to its hex)"
            )
            raise IntegrityError(
                f"stored object {h.hex()} does not hold what its hash names: its row was "
                f"changed by hand{keyed}"
            )

    def _refuse_unencrypted(self, h: bytes, typ: str, plain: bytes) -> None:
        """An encrypted saver reading an object stored in the clear under its unkeyed
        hash: what a saver without encryption writes, so most likely a thread from
        before encryption was turned on (a planted row looks the same: refused)."""
        if self.digest(typ, plain) != h and object_hash(typ, plain) == h:
            raise IntegrityError(
                f"stored object {h.hex()} is not encrypted: a saver without encryption "
                "wrote it, and an encrypted saver refuses it (a row planted in the clear "
                "looks the same). A thread written before encryption was turned on reads "
                "with a saver without serde= (the CLI: without LANGGRAPH_AES_KEY)"
            )

    def _unreadable(self, typ: str, exc: Exception) -> SerializationError:
        hint = ""
        if self._cipher is None and "+" in typ:
            # "msgpack+aes": written by an EncryptedSerializer
            hint = (
                "; it was stored encrypted: open the saver with the same serde= "
                "(EncryptedSerializer), or for the CLI set LANGGRAPH_AES_KEY"
            )
        return SerializationError(f"cannot deserialize a stored object of type {typ!r}: {exc}{hint}")


def _reserved(typ: str) -> bool:
    """Whether a serializer's type reads as a type of ours when stored as is: a
    compressed object's ("z:", "zd1:") or a chunk's."""
    if typ[:1] == "z":
        tag, colon, _ = typ.partition(":")
        return bool(colon) and (tag == "z" or tag in DICTIONARIES)
    return typ == CHUNK_TYPE


def _serialized_bytes(typ: Any, data: Any, value: Any) -> bytes:
    """The bytes a serializer's ``dumps_typed`` gave, as bytes (a bytearray, a
    memoryview, a bytes subclass), or a SerializationError naming the serializer's mistake."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise SerializationError(
        f"the serializer gave ({typ!r:.60}, a {type(data).__name__}) for a value of type "
        f"{type(value).__name__}: dumps_typed must return (type name, bytes); "
        "nothing was stored"
    )


def _check_serialized_type(typ: Any, value: Any) -> None:
    """A serializer's type name is stored as text: a str without NUL characters that
    UTF-8 encodes (`check_text`), else a SerializationError (not the driver's error,
    not a row that cannot be read back)."""
    try:
        check_text(typ, "the serializer's type name")
    except ConfigError as exc:
        raise SerializationError(
            f"{exc} (for a value of type {type(value).__name__}): dumps_typed must return "
            "(type name, bytes) with a str type name; nothing was stored"
        ) from None


def _overwritten(value: Any) -> Any:
    """What a write replacing a channel's value writes, in each form LangGraph's
    channels take (its `Overwrite`, the sentinel-keyed dict, the dict JSON makes of
    the dataclass), or None for any other value."""
    if _Overwrite is not None and type(value) is _Overwrite:
        return value.value
    if type(value) is dict:
        if len(value) == 1 and "__overwrite__" in value:
            return value["__overwrite__"]
        if len(value) == 2 and value.get("type") == "__overwrite__" and "value" in value:
            return value["value"]
    return None


def _stored_by_key(value: dict[Any, Any]) -> bool:
    # str keys only: every serializer gives them back as they were
    n = 0
    for key, v in value.items():
        if type(key) is not str:
            return False
        if _shared(v):
            n += len(v)
    return n >= DICT_MIN_ELEMENTS


# Elements not worth an object of their own: a row each would cost more than they
# hold, and they are not what other lists share (an embedding's 1,536 floats).
_SCALARS = frozenset({int, float, bool, type(None)})
_SHORT = 64


def _shared(v: Any) -> bool:
    """Whether a list inside a dict is stored element by element: its elements are
    messages, containers or other objects, or strings and bytes of 64 or more."""
    if type(v) is not list or not v:
        return False
    for x in v:
        t = type(x)
        if t in _SCALARS or ((t is str or t is bytes) and len(x) < _SHORT):
            return False
    return True


def assemble_dict(shape: Any, values: list[Any], where: str) -> dict[str, Any]:
    """The dict a KIND.DICT row stands for: ``shape`` decoded from its first object,
    ``values`` the decoded objects of the rest of its refs, in order."""
    out: dict[str, Any] = {}
    pos = 0
    try:
        for key, n in shape:
            if type(key) is not str or type(n) is not int or n < -1:
                raise ValueError
            if n < 0:
                out[key] = values[pos]
                pos += 1
            else:
                out[key] = values[pos : pos + n]
                pos += n
    except (TypeError, ValueError, IndexError):
        pos = -1
    if pos != len(values):
        raise IntegrityError(
            f"{where}: a stored dict's shape does not match the objects its row names; "
            "its rows were changed by hand"
        )
    return out


def object_hash(typ: str, data: bytes, key: bytes = b"") -> bytes:
    """The hash an object of type ``typ`` and plaintext ``data`` is stored under
    (`ValueCodec.digest`; unkeyed, what a saver without a hash_key and a migration use)."""
    return hashlib.blake2b(typ.encode() + b"\0" + data, digest_size=HASH_SIZE, key=key).digest()


def inflate(typ: str, data: bytes, limit: int | None = None) -> tuple[str, bytes]:
    """A stored object's type and bytes as the serializer wrote them: "z:" is
    plain zlib (releases before 0008), "zd1:" zlib against dictionary zd1.

    ``limit`` (the saver's max_value_bytes): refuse an object that inflates to
    more, without inflating it further (a row written to be a zip bomb)."""
    tag, _, inner = typ.partition(":")
    if tag == "z":
        z = zlib.decompressobj()
    else:
        zdict = DICTIONARIES.get(tag)
        if zdict is None:
            return typ, data  # a serializer's own type that happens to contain ":"
        z = zlib.decompressobj(15, zdict)
    out = z.decompress(data, limit + 1 if limit else 0)
    if limit and len(out) > limit:
        raise ValueTooLargeError(
            f"a stored object of {len(data)} bytes inflates to over {limit} bytes "
            "(max_value_bytes): written before the limit was lowered, or planted; raise "
            "max_value_bytes to read it if it is yours",
            size=len(out),
            limit=limit,
        )
    if not z.eof:
        raise zlib.error("truncated compressed object")
    return inner, out


HASH_KEY_MIN = 16
HASH_KEY_MAX = 64  # BLAKE2b's limit


def _check_hash_key(hash_key: Any) -> None:
    """A hash key is 16-64 bytes: an empty one (b"") would leave the hash unkeyed, so
    that with an `EncryptedSerializer` anyone could confirm a guess of a stored value."""
    if not isinstance(hash_key, (bytes, bytearray)):
        raise ConfigError(
            f"hash_key must be bytes ({HASH_KEY_MIN}-{HASH_KEY_MAX} secret bytes), got "
            f"{type(hash_key).__name__}; pass e.g. os.urandom(32) kept with your encryption key "
            "(a str: encode it first)"
        )
    if not HASH_KEY_MIN <= len(hash_key) <= HASH_KEY_MAX:
        raise ConfigError(
            f"hash_key is {len(hash_key)} bytes long: pass {HASH_KEY_MIN}-{HASH_KEY_MAX} "
            "secret bytes (e.g. os.urandom(32), kept with your encryption key)"
        )


def _key_from_env() -> bytes:
    raw = os.environ.get("LANGGRAPH_AES_KEY")
    if not raw:
        raise ConfigError(
            "an EncryptedSerializer needs a secret hash key so that stored hashes do not "
            "reveal the plaintext: pass hash_key=<16-64 secret bytes> to the saver "
            "(keep it with your encryption key), or set LANGGRAPH_AES_KEY"
        )
    # Derived, not the AES key itself: the hash key must not double as the cipher key.
    return hashlib.blake2b(raw.encode(), digest_size=32, person=b"cpg-hash-key").digest()
