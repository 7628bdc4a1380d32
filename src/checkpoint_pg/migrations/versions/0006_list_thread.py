"""Postgres function list_thread: a page of one thread's history in one round trip.

``list(config)`` for one thread (``get_state_history``) read a page in a
transaction of four or five statements: the checkpoints, their values and
writes, the delta chains, then the objects. The list_thread function returns
all of it from one call, sending each object once per listing. The other
functions are unchanged.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

from checkpoint_pg.migrations import current_tables
from checkpoint_pg.migrations.frozen import FUNCTIONS_0005, FUNCTIONS_0006, render

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_DROP_LIST_THREAD = (
    "DROP FUNCTION IF EXISTS tplschema.tplprefix_list_thread"
    "(text, text, text, text, text, jsonb, int, bytea)"
)


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return  # SQLite has no functions: its statements live in the code
    t = current_tables()
    for ddl in FUNCTIONS_0006:  # as written (frozen.py), not the current code's
        op.execute(render(ddl, t))


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    t = current_tables()
    op.execute(render(_DROP_LIST_THREAD, t))
    for ddl in FUNCTIONS_0005:
        op.execute(render(ddl, t))
