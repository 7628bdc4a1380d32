"""Index checkpoints by run id only where they have one.

LangGraph records a run id in a checkpoint's metadata only when the caller's
config carries one (tracing does; a plain ``invoke`` does not), so most
checkpoints have none. The index on ``run_id`` that ``delete_for_runs`` uses
held an entry for each of their NULLs, and every put paid for it. It now
covers only checkpoints with a run id (a lookup by run id implies one).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from checkpoint_pg.migrations import current_tables

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _recreate(partial: bool) -> None:
    t = current_tables()
    name, table = f"{t.prefix}checkpoints_run_id_idx", f"{t.prefix}checkpoints"
    op.drop_index(name, table_name=table, schema=t.schema)
    where = {"postgresql_where": sa.text("run_id IS NOT NULL"),
             "sqlite_where": sa.text("run_id IS NOT NULL")} if partial else {}
    op.create_index(name, table, ["run_id"], schema=t.schema, **where)


def upgrade() -> None:
    _recreate(partial=True)


def downgrade() -> None:
    _recreate(partial=False)
