"""Postgres: server-side functions for get_tuple, put and put_writes.

Their plans are cached per server session, so the hot path is not planned on
every call although statements are never prepared (PgBouncer-safe). SQLite:
nothing to do. See checkpoint_pg/sql/functions.py.

The statements are the ones this revision installed when it was written
(checkpoint_pg/migrations/frozen.py); later revisions that change a function
install their own version.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

from checkpoint_pg.migrations import current_tables
from checkpoint_pg.migrations.frozen import DROP_0002, FUNCTIONS_0002, render

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    tables = current_tables()
    for ddl in FUNCTIONS_0002:
        op.execute(render(ddl, tables))


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    tables = current_tables()
    for ddl in DROP_0002:
        op.execute(render(ddl, tables))
