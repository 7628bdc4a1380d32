"""Postgres: server-side functions for get_tuple, put and put_writes.

Their plans are cached per server session, so the hot path is not planned on
every call although statements are never prepared (PgBouncer-safe). SQLite:
nothing to do. See checkpoint_pg/sql/functions.py.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

from checkpoint_pg.migrations import current_tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    from checkpoint_pg.sql.postgres import PostgresSQL

    sql = PostgresSQL(current_tables())
    for ddl in sql.fn.ddl(sql):
        op.execute(ddl)


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    from checkpoint_pg.sql.postgres import PostgresSQL

    for ddl in PostgresSQL(current_tables()).fn.drop():
        op.execute(ddl)
