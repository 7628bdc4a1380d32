"""Indexes for listing checkpoints across threads with a metadata filter.

Postgres: a GIN index (jsonb_path_ops) on checkpoints.metadata, which answers
``list(None, filter=...)``'s containment test. SQLite: an index in list order
(checkpoint id, namespace, thread), so a filtered listing walks the newest
checkpoints first and stops at its limit.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

from checkpoint_pg.migrations import current_tables

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    t = current_tables()
    table = f"{t.prefix}checkpoints"
    if op.get_context().dialect.name == "postgresql":
        op.create_index(
            f"{t.prefix}checkpoints_metadata_idx",
            table,
            ["metadata"],
            schema=t.schema,
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        )
    else:
        op.create_index(
            f"{t.prefix}checkpoints_recent_idx",
            table,
            ["checkpoint_id", "checkpoint_ns", "thread_id"],
            schema=t.schema,
        )


def downgrade() -> None:
    t = current_tables()
    table = f"{t.prefix}checkpoints"
    suffix = "metadata_idx" if op.get_context().dialect.name == "postgresql" else "recent_idx"
    op.drop_index(f"{t.prefix}checkpoints_{suffix}", table_name=table, schema=t.schema)
