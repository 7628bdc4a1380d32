"""put_writes counts as activity of the thread.

A thread's ``updated_at`` moved with its puts only. A run resuming a thread
paused for long writes the resume value first and puts its checkpoint only
when the node is done; meanwhile ``prune(updated_before=...)`` (and
``checkpoint-pg prune --older-than``) found the thread stale and deleted it,
answer included. The put_writes function now also sets ``updated_at`` when
it is over a second old (a run's steps keep it fresh through their puts, so
most writes change nothing). The other functions are unchanged.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25
"""

from __future__ import annotations

from checkpoint_pg.migrations import install_functions
from checkpoint_pg.migrations.frozen import FUNCTIONS_0009, FUNCTIONS_0010

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # frozen since 0011 changed the functions: this revision keeps installing its own
    install_functions(FUNCTIONS_0010)


def downgrade() -> None:
    install_functions(FUNCTIONS_0009)
