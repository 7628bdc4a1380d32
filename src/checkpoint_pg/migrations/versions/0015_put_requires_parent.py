"""A put whose DeltaChannel replays from its parent requires that parent.

A checkpoint whose `DeltaChannel` holds no value of its own is read by replaying
its ancestors' writes. A run without a lease that went on after another process
deleted or pruned its thread stored such a checkpoint on ancestors that were
gone: it read back with the channel cut short. The put function takes a new
argument, ``p_need_parent``: the saver sets it when it stored the parent itself
(core/ops.py `LastPuts`), and the function then refuses the put, in the same
transaction that holds the thread row's lock, when the parent is not stored.
The tables do not change; SQLite checks in its put's transaction and needs
nothing here.

The put function's signature changes. The old one stays: processes of an older
release that are already running call it and go on as before (without the new
check) until they are replaced, while a release before this revision that starts
refuses the database with its "migrated by a newer release" error. A later
revision drops it. Downgrading drops the new one and restores revision 0013's
functions.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

from checkpoint_pg.migrations import current_tables, install_functions
from checkpoint_pg.migrations.frozen import DROP_PUT_0015, FUNCTIONS_0013, render

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    install_functions()


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        tables = current_tables()
        for ddl in DROP_PUT_0015:
            op.execute(render(ddl, tables))
    install_functions(FUNCTIONS_0013)
