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

from checkpoint_pg.migrations import install_functions
from checkpoint_pg.migrations.frozen import FUNCTIONS_0005, FUNCTIONS_0006

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_DROP_LIST_THREAD = (
    "DROP FUNCTION IF EXISTS tplschema.tplprefix_list_thread"
    "(text, text, text, text, text, jsonb, int, bytea)"
)


def upgrade() -> None:
    install_functions(FUNCTIONS_0006)  # as written (frozen.py), not the current code's


def downgrade() -> None:
    install_functions([_DROP_LIST_THREAD, *FUNCTIONS_0005])
