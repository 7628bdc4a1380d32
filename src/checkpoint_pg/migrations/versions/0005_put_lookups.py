"""Postgres functions: a put no longer reads every value of its thread.

The put function's completeness check (every channel version the checkpoint
carries over is still stored) joined the required versions with the values
table; the plan the function caches scanned all values of the thread for
each put, so a put cost grew with the thread. It now looks each version up by
primary key. get_tuple cuts refs into hashes inline instead of calling the
PL/pgSQL ``split_refs`` helper, which this revision drops.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

from checkpoint_pg.migrations import current_tables
from checkpoint_pg.migrations.frozen import FUNCTIONS_0003, FUNCTIONS_0005, render

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return  # SQLite has no functions: its statements live in the code
    t = current_tables()
    for ddl in FUNCTIONS_0005:  # as written (frozen.py), not the current code's
        op.execute(render(ddl, t))
    op.execute(render("DROP FUNCTION IF EXISTS tplschema.tplprefix_split_refs(bytea)", t))


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for ddl in FUNCTIONS_0003:  # CREATE OR REPLACE, split_refs first
        op.execute(render(ddl, current_tables()))
