"""list_thread matches a metadata filter as InMemorySaver does.

A filter matched by jsonb containment: ``{"user": None}`` did not match a
checkpoint without a ``user`` key, and ``{"tags": ["a"]}`` matched tags
``["a", "b"]``. InMemorySaver (and so LangGraph's own tests) match
``metadata.get(key) == value`` for every key. The list_thread function now
does too; listing across threads, which runs no function, changed with the
code. The other functions are unchanged.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

from checkpoint_pg.migrations import current_tables
from checkpoint_pg.migrations.frozen import FUNCTIONS_0006, render

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return  # SQLite has no functions: its statements live in the code
    from checkpoint_pg.sql.postgres import PostgresSQL

    sql = PostgresSQL(current_tables())
    for ddl in sql.fn.ddl(sql):
        op.execute(ddl)


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    t = current_tables()
    for ddl in FUNCTIONS_0006:
        op.execute(render(ddl, t))
