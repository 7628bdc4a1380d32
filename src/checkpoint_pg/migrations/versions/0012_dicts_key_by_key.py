"""Dicts holding lists are stored key by key (value kind 4, ``KIND.DICT``), and long
lists of hashes in shared chunks (objects of type ``#refs``).

From this release on, a channel value or a write that is a dict whose lists
hold 8 elements or more is stored as its shape and its values, lists element
by element, instead of one object: a subgraph's input, ``{"messages": [the
whole history]}``, then shares every message with the thread instead of
storing the history again at every call. The tables do not change. The
revision exists so that a release before it, which cannot read such rows,
refuses the database with its "migrated by a newer release" error instead of
failing on a value.

A row holding a long list (64 elements or more) names each run of 64 element
hashes from the list's start by one chunk object, which every row holding
the same list shares (core/chunks.py): rows storing the same history again,
as a subgraph does at every call, no longer store its hashes again.

The Postgres list_thread function sends the elements of the
chunks it reads in the same round trip. A partial index finds a thread's chunks
(a repoint deletes an object only when no chunk holds its hash).

Downgrading first puts every row's hashes back together from its chunks and
deletes the chunks, and restores the functions of 0011. It then rewrites every such row as an older release stores it: one
object holding the whole dict. The dict's msgpack bytes are put together from
its parts without decoding them (a msgpack map is its keys and values one
after the other), so no value is loaded and nothing but the default
serializer's format is needed. Rows whose objects are encrypted cannot be put
together that way: the downgrade then stops, naming how many, and changes
nothing.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence

import ormsgpack
import sqlalchemy as sa
from alembic import op

from checkpoint_pg.core.chunks import CHUNK_TYPE, expand_refs
from checkpoint_pg.core.codec import COMPRESS_MIN, HASH_SIZE, inflate
from checkpoint_pg.core.zdict import CURRENT, DICTIONARIES
from checkpoint_pg.errors import CheckpointPgError, IntegrityError
from checkpoint_pg.migrations import current_tables, install_functions
from checkpoint_pg.migrations.frozen import FUNCTIONS_0011, FUNCTIONS_0012
from checkpoint_pg.schema import Tables

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_DICT, _SCALAR = 4, 1
_BATCH = 200


def _chunks_index() -> tuple[str, str, str | None]:
    t = current_tables()
    return f"{t.prefix}objects_chunks_idx", f"{t.prefix}objects", t.schema


def upgrade() -> None:
    # the list_thread function sends a chunk's elements with it;
    # stored values stay readable as they are
    install_functions(FUNCTIONS_0012)
    name, table, schema = _chunks_index()
    where = sa.text(f"type = '{CHUNK_TYPE}'")
    op.create_index(name, table, ["thread_id"], schema=schema, postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    tables = current_tables()
    conn = op.get_bind()
    values, writes = tables.channel_values, tables.writes
    counted = 0
    for table in (values, writes):
        counted += conn.execute(
            sa.select(sa.func.count())
            .select_from(table.join(tables.objects, _first_ref(table, tables.objects)))
            .where(table.c.kind == _DICT, tables.objects.c.type.like("%+%"))
        ).scalar_one()
    if counted:
        raise CheckpointPgError(
            f"cannot downgrade below revision 0012: {counted} stored dicts are encrypted, "
            "and an older release can only read them whole; the downgrade would have to "
            "decrypt them. Stay at 0012 or newer, or delete those threads first"
        )
    _unchunk(conn, tables)
    install_functions(FUNCTIONS_0011)
    name, table, schema = _chunks_index()
    # IF EXISTS: releases whose 0012 predates the index (82ab8eb to 1d20d95)
    # left databases at 0012 without it
    op.drop_index(name, table_name=table, schema=schema, if_exists=True)
    for table in (values, writes):
        key = [c for c in table.primary_key.columns]
        after: Sequence[object] | None = None
        while True:
            q = sa.select(*key, table.c.refs).where(table.c.kind == _DICT)
            if after is not None:
                q = q.where(sa.tuple_(*key) > sa.tuple_(*(sa.literal(v) for v in after)))
            rows = conn.execute(q.order_by(*key).limit(_BATCH)).all()
            if not rows:
                break
            for row in rows:
                thread_id, refs = row[0], bytes(row[-1])
                h = _store_whole(conn, tables.objects, thread_id, refs)
                conn.execute(
                    table.update()
                    .where(*(c == v for c, v in zip(key, row[:-1])))
                    .values(kind=_SCALAR, refs=h)
                )
            after = tuple(rows[-1][:-1])


def _unchunk(conn: sa.Connection, tables: Tables) -> None:
    """Rows hold their element hashes again, and the chunks are gone."""
    objects = tables.objects
    is_chunk = objects.c.type == CHUNK_TYPE
    threads = conn.execute(sa.select(objects.c.thread_id).where(is_chunk).distinct()).scalars().all()
    for thread_id in threads:
        chunks = {
            bytes(h): bytes(d)
            for h, d in conn.execute(
                sa.select(objects.c.hash, objects.c.data).where(objects.c.thread_id == thread_id, is_chunk)
            )
        }
        for table in (tables.channel_values, tables.writes):
            key = [c for c in table.primary_key.columns]
            rows = conn.execute(
                sa.select(*key, table.c.refs).where(
                    table.c.thread_id == thread_id, sa.func.length(table.c.refs) >= HASH_SIZE
                )
            ).all()
            for row in rows:
                refs = bytes(row[-1])
                full, _ = expand_refs(refs, chunks, f"thread {thread_id!r}")
                if full is not refs:
                    conn.execute(
                        table.update().where(*(c == v for c, v in zip(key, row[:-1]))).values(refs=full)
                    )
        conn.execute(objects.delete().where(objects.c.thread_id == thread_id, is_chunk))


def _first_ref(table: sa.Table, objects: sa.Table) -> sa.ColumnElement[bool]:
    return sa.and_(
        objects.c.thread_id == table.c.thread_id,
        objects.c.hash == sa.func.substr(table.c.refs, 1, HASH_SIZE),
    )


def _store_whole(conn: sa.Connection, objects: sa.Table, thread_id: str, refs: bytes) -> bytes:
    """Store the dict a DICT row's ``refs`` stand for as one object; its hash."""
    hashes = [refs[i : i + HASH_SIZE] for i in range(0, len(refs), HASH_SIZE)]
    found = {
        bytes(h): (typ, bytes(data))
        for h, typ, data in conn.execute(
            sa.select(objects.c.hash, objects.c.type, objects.c.data).where(
                objects.c.thread_id == thread_id, objects.c.hash.in_(set(hashes))
            )
        )
    }

    def msgpack(h: bytes) -> bytes:
        if h not in found:
            raise IntegrityError(
                f"cannot downgrade below revision 0012: thread {thread_id!r} refers to "
                f"object {h.hex()}, which is missing; its rows were changed by hand"
            )
        typ, data = inflate(*found[h])
        if typ == "null":
            return b"\xc0"
        # typed apart alone, msgpack bin inside the dict (a bytearray part: as the first
        # releases of this revision, before 6f15b9e, stored it)
        if typ in ("bytes", "bytearray"):
            return _header(len(data), None, b"\xc5", b"\xc6", b"\xc4") + data
        if typ != "msgpack":
            raise CheckpointPgError(
                f"cannot downgrade below revision 0012: thread {thread_id!r} holds a dict "
                f"with a value serialized as {typ!r}; only the default serializer's "
                "msgpack can be put together whole. Stay at 0012 or newer"
            )
        return data

    shape = ormsgpack.unpackb(msgpack(hashes[0]))
    out = [_header(len(shape), 0x80, b"\xde", b"\xdf")]
    pos = 1
    for key, n in shape:
        out.append(ormsgpack.packb(key))
        if n < 0:
            out.append(msgpack(hashes[pos]))
            pos += 1
        else:
            out.append(_header(n, 0x90, b"\xdc", b"\xdd"))
            out.extend(msgpack(h) for h in hashes[pos : pos + n])
            pos += n
    data = b"".join(out)
    h = hashlib.blake2b(b"msgpack\0" + data, digest_size=HASH_SIZE).digest()
    typ = "msgpack"
    if len(data) >= COMPRESS_MIN:
        z = zlib.compressobj(1, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARIES[CURRENT])
        packed = z.compress(data) + z.flush()
        if len(packed) < len(data) * 0.9:
            typ, data = f"{CURRENT}:msgpack", packed
    exists = conn.execute(
        sa.select(sa.literal(1)).where(objects.c.thread_id == thread_id, objects.c.hash == h)
    ).first()
    if exists is None:
        conn.execute(objects.insert().values(thread_id=thread_id, hash=h, type=typ, data=data))
    return h


def _header(n: int, fix: int | None, b16: bytes, b32: bytes, b8: bytes | None = None) -> bytes:
    """A msgpack map (fix 0x80) or array (fix 0x90) header for ``n`` entries, or a
    bin header (no fix form, ``b8`` below 256) for ``n`` bytes."""
    if fix is not None and n < 16:
        return bytes([fix | n])
    if b8 is not None and n < 1 << 8:
        return b8 + bytes([n])
    if n < 1 << 16:
        return b16 + n.to_bytes(2, "big")
    return b32 + n.to_bytes(4, "big")
