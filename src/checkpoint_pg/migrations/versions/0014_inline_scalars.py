"""Small scalar channel values live in their checkpoint's row.

From this release on, a checkpoint's str values of up to 64 characters, ints msgpack
can hold, finite floats, bools and Nones (a counter, a status, the None of a trigger
channel) are kept in the checkpoint's own row, as the ``channel_values`` of its JSON
document, instead of a value row and an object each: two rows per value were half
the rows of a short step. Only with the default serializer, which reads them back
as JSON gives them, and never when values are encrypted or hashes keyed
(core/codec.py `inlinable`). The tables do not change. The revision exists so that a
release before it, which would read such a checkpoint as if those channels were
empty, refuses the database with its "migrated by a newer release" error instead.

Downgrading stores every such value as an older release does, an object (what the
default serializer writes for it, hashed unkeyed) and a value row, and takes it out
of the document.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-26
"""

from __future__ import annotations

import hashlib
import json

import sqlalchemy as sa
from alembic import op
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from checkpoint_pg.errors import IntegrityError
from checkpoint_pg.migrations import current_tables
from checkpoint_pg.schema import Tables

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_SCALAR = 1
_HASH_SIZE = 16
_BATCH = 200
_COMPACT = json.JSONEncoder(separators=(",", ":")).encode


def upgrade() -> None:
    """Nothing to rewrite: checkpoints stored before keep their value rows."""


def downgrade() -> None:
    tables = current_tables()
    conn = op.get_bind()
    cps = tables.checkpoints
    key = [cps.c.thread_id, cps.c.checkpoint_ns, cps.c.checkpoint_id]
    serde = JsonPlusSerializer()
    after: tuple[str, str, str] | None = None
    while True:
        q = sa.select(*key, cps.c.checkpoint).where(cps.c.checkpoint.like('%"channel_values":%'))
        if after is not None:
            q = q.where(sa.tuple_(*key) > sa.tuple_(*(sa.literal(v) for v in after)))
        rows = conn.execute(q.order_by(*key).limit(_BATCH)).all()
        if not rows:
            break
        for t, ns, cid, raw in rows:
            doc = json.loads(raw)
            inline = doc.pop("channel_values", None) if isinstance(doc, dict) else None
            if inline is None:
                continue  # the text matched elsewhere (a channel named so)
            if not isinstance(inline, dict):
                raise IntegrityError(
                    f"cannot downgrade below revision 0014: checkpoint {cid!r} of thread {t!r} "
                    "has channel_values that are not a JSON object; its row was changed by hand"
                )
            versions = doc.get("channel_versions") or {}
            for ch, value in inline.items():
                if ch in versions:
                    _store(conn, tables, t, ns, ch, str(versions[ch]), serde.dumps_typed(value))
            conn.execute(
                cps.update()
                .where(cps.c.thread_id == t, cps.c.checkpoint_ns == ns, cps.c.checkpoint_id == cid)
                .values(checkpoint=_COMPACT(doc))
            )
        after = tuple(rows[-1][:3])


def _store(
    conn: sa.Connection, tables: Tables, t: str, ns: str, ch: str, ver: str, typed: tuple[str, bytes]
) -> None:
    """The object and the value row an older release stores for a scalar value."""
    objects, values = tables.objects, tables.channel_values
    typ, data = typed
    data = bytes(data)
    h = hashlib.blake2b(typ.encode() + b"\0" + data, digest_size=_HASH_SIZE).digest()
    if conn.execute(
        sa.select(sa.literal(1)).where(objects.c.thread_id == t, objects.c.hash == h)
    ).first() is None:
        conn.execute(objects.insert().values(thread_id=t, hash=h, type=typ, data=data))
    if conn.execute(
        sa.select(sa.literal(1)).where(
            values.c.thread_id == t, values.c.checkpoint_ns == ns,
            values.c.channel == ch, values.c.version == ver,
        )
    ).first() is None:
        conn.execute(
            values.insert().values(
                thread_id=t, checkpoint_ns=ns, channel=ch, version=ver, kind=_SCALAR,
                base_version=None, root_version=None, refs=h,
            )
        )
