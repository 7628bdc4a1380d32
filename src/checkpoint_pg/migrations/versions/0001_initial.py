"""Initial schema: threads, checkpoints, channel values, writes, objects.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from checkpoint_pg.migrations import current_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    t = current_tables()
    p, s = t.prefix, t.schema
    op.create_table(
        f"{p}threads",
        sa.Column("thread_id", sa.Text, primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("metadata", _JSON, nullable=True),
        schema=s,
        sqlite_with_rowid=False,
    )
    op.create_table(
        f"{p}checkpoints",
        sa.Column("thread_id", sa.Text, primary_key=True),
        sa.Column("checkpoint_ns", sa.Text, primary_key=True),
        sa.Column("checkpoint_id", sa.Text, primary_key=True),
        sa.Column("parent_checkpoint_id", sa.Text, nullable=True),
        sa.Column("run_id", sa.Text, nullable=True),
        sa.Column("checkpoint", sa.Text, nullable=False),
        sa.Column("metadata", _JSON, nullable=False),
        sa.Column("complete", sa.Boolean(create_constraint=False), nullable=False),
        sa.CheckConstraint("complete", name=f"{p}checkpoints_complete"),
        schema=s,
        sqlite_with_rowid=False,
    )
    op.create_index(f"{p}checkpoints_run_id_idx", f"{p}checkpoints", ["run_id"], schema=s)
    op.create_table(
        f"{p}channel_values",
        sa.Column("thread_id", sa.Text, primary_key=True),
        sa.Column("checkpoint_ns", sa.Text, primary_key=True),
        sa.Column("channel", sa.Text, primary_key=True),
        sa.Column("version", sa.Text, primary_key=True),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("base_version", sa.Text, nullable=True),
        sa.Column("root_version", sa.Text, nullable=True),
        sa.Column("refs", sa.LargeBinary, nullable=False),
        schema=s,
        sqlite_with_rowid=False,
    )
    op.create_table(
        f"{p}writes",
        sa.Column("thread_id", sa.Text, primary_key=True),
        sa.Column("checkpoint_ns", sa.Text, primary_key=True),
        sa.Column("checkpoint_id", sa.Text, primary_key=True),
        sa.Column("task_id", sa.Text, primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("task_path", sa.Text, nullable=False),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("refs", sa.LargeBinary, nullable=False),
        schema=s,
        sqlite_with_rowid=False,
    )
    op.create_table(
        f"{p}objects",
        sa.Column("thread_id", sa.Text, primary_key=True),
        sa.Column("hash", sa.LargeBinary, primary_key=True),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        schema=s,
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    t = current_tables()
    p, s = t.prefix, t.schema
    for name in ("objects", "writes", "channel_values", "checkpoints", "threads"):
        op.drop_table(f"{p}{name}", schema=s)
