"""Objects compressed against a preset dictionary ("zd1:" types).

From this release on, a stored object of 128 bytes or more is compressed with
zlib against the dictionary ``zd1`` (checkpoint_pg/core/zdict.py), which
halves a small message. The tables do not change. The revision exists so that
a release before it, which cannot read those objects, refuses the database
with its "migrated by a newer release" error instead of failing on a value.

Downgrading rewrites every "zd1:" object as an older release stores it: plain
zlib ("z:") when that saves a tenth, else uncompressed. Objects keep their
hashes, so nothing that refers to them changes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

from __future__ import annotations

import zlib

import sqlalchemy as sa
from alembic import op

from checkpoint_pg.core.codec import inflate
from checkpoint_pg.migrations import current_tables

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_BATCH = 500


def upgrade() -> None:
    pass  # new objects take the new format; stored ones stay readable as they are


def downgrade() -> None:
    objects = current_tables().objects
    conn = op.get_bind()
    key = (objects.c.thread_id, objects.c.hash)
    after: tuple[str, bytes] | None = None
    while True:
        q = sa.select(*key, objects.c.type, objects.c.data).where(objects.c.type.like("zd%:%"))
        if after is not None:
            q = q.where(sa.tuple_(*key) > sa.tuple_(sa.literal(after[0]), sa.literal(after[1])))
        rows = conn.execute(q.order_by(*key).limit(_BATCH)).all()
        if not rows:
            return
        for thread_id, h, typ, data in rows:
            typ, data = inflate(typ, data)
            packed = zlib.compress(data, 1)
            if len(packed) < len(data) * 0.9:
                typ, data = "z:" + typ, packed
            conn.execute(
                objects.update()
                .where(objects.c.thread_id == thread_id, objects.c.hash == h)
                .values(type=typ, data=data)
            )
        after = (rows[-1][0], rows[-1][1])
