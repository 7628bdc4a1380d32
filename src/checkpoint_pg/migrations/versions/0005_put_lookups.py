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

from checkpoint_pg.migrations import install_functions
from checkpoint_pg.migrations.frozen import FUNCTIONS_0003, FUNCTIONS_0005

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # as written (frozen.py), not the current code's; split_refs is no longer used
    install_functions(
        [*FUNCTIONS_0005, "DROP FUNCTION IF EXISTS tplschema.tplprefix_split_refs(bytea)"]
    )


def downgrade() -> None:
    install_functions(FUNCTIONS_0003)  # CREATE OR REPLACE, split_refs first
