"""An index for listing checkpoints across threads, newest first.

``list(None, filter=..., limit=N)`` orders by (checkpoint id, namespace,
thread): with an index in that order the query walks the newest checkpoints
and stops after N matches instead of filtering and sorting the whole table.

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
    op.create_index(
        f"{t.prefix}checkpoints_recent_idx",
        f"{t.prefix}checkpoints",
        ["checkpoint_id", "checkpoint_ns", "thread_id"],
        schema=t.schema,
    )


def downgrade() -> None:
    t = current_tables()
    op.drop_index(
        f"{t.prefix}checkpoints_recent_idx", table_name=f"{t.prefix}checkpoints", schema=t.schema
    )
