"""Long lists of hashes stored once, in chunks shared by every row that holds them.

A list of n elements is n hashes in the row that stores it. Rows holding the
same long list again would store those hashes again: a subgraph's input and
its messages under a namespace of its own at every call, a node returning the
whole history, the periodic full copy of a delta chain. That is 16 bytes per
message per row, and it grows with the square of the thread. Instead, each
run of `CHUNK` hashes from the start of a list is one object of its thread
(type `CHUNK_TYPE`, its data the hashes), and a row names the chunk. Chunks
start at element 0 of every list, so lists that share a prefix share its
chunks, and a thread stores each chunk once. Only lists whose elements stand
in for their objects (messages, scalars: `codec.chunkable`) are chunked: a run
holding them reads neither chunk nor element again.

Rows are cut when written (`chunk_runs`) and put back together when read
(`expand_refs`), before anything else looks at them: a row's refs as the rest
of the code sees them are always one hash per element.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from checkpoint_pg.core.codec import HASH_SIZE, StoredObject, ValueCodec
from checkpoint_pg.errors import IntegrityError
from checkpoint_pg.schema import CHUNK_TYPE as SCHEMA_CHUNK_TYPE

__all__ = ["CHUNK", "CHUNK_TYPE", "chunk_runs", "expand_refs", "stored_position"]

CHUNK = 64
# Not a serializer's type (theirs are names like "msgpack", "null", "bytes"):
# an element object is never taken for a chunk. The schema indexes it.
CHUNK_TYPE = SCHEMA_CHUNK_TYPE
_CHUNK_BYTES = CHUNK * HASH_SIZE


def chunk_runs(
    hashes: Sequence[bytes],
    runs: Iterable[tuple[int, int]],
    codec: ValueCodec,
) -> tuple[bytes, list[StoredObject], int]:
    """A row's refs with the whole chunks of each run replaced by their chunk's hash.

    ``runs`` are (start, stop) of the lists in ``hashes``, in order: from each
    start, the chunks that end at or before its stop. Returns the refs to
    store, the chunk objects they name, and how many chunks the first run has.
    """
    out: list[bytes] = []
    objs: list[StoredObject] = []
    first = 0
    pos = 0
    for n_run, (start, stop) in enumerate(runs):
        n = (stop - start) // CHUNK
        if n <= 0:
            continue
        out.extend(hashes[pos:start])
        for i in range(n):
            # plain hashes, never encrypted: the refs columns hold them as they are
            data = b"".join(hashes[start + i * CHUNK : start + (i + 1) * CHUNK])
            obj = StoredObject(codec.digest(CHUNK_TYPE, data), CHUNK_TYPE, data)
            objs.append(obj)
            out.append(obj.hash)
        pos = start + n * CHUNK
        if n_run == 0:
            first = n
    if not objs:
        return b"".join(hashes), [], 0
    out.extend(hashes[pos:])
    return b"".join(out), objs, first


def stored_position(pos: int, leading: int) -> int | None:
    """Where element ``pos`` of a list is in the stored refs of a row that leads with
    ``leading`` chunks (what a repoint rewrites), or None when a chunk holds it."""
    if pos < leading * CHUNK:
        return None
    return pos - leading * (CHUNK - 1)


def expand_refs(refs: bytes, chunks: Mapping[bytes, bytes], where: str) -> tuple[bytes, int]:
    """``refs`` with every chunk it names replaced by the hashes it holds, and how
    many leading refs were chunks (their elements come first in the list)."""
    if not chunks:
        return refs, 0
    parts: list[bytes] = []
    leading = 0
    found = False
    for i in range(0, len(refs), HASH_SIZE):
        h = refs[i : i + HASH_SIZE]
        data = chunks.get(h)
        if data is None:
            parts.append(h)
            continue
        if len(data) != _CHUNK_BYTES:
            raise IntegrityError(
                f"{where}: chunk {h.hex()} holds {len(data)} bytes, not {_CHUNK_BYTES}; "
                "its row was changed by hand"
            )
        if i == leading * HASH_SIZE:
            leading += 1
        parts.append(data)
        found = True
    return (b"".join(parts), leading) if found else (refs, 0)
