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

from checkpoint_pg.migrations import install_functions
from checkpoint_pg.migrations.frozen import FUNCTIONS_0006, FUNCTIONS_0009

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    install_functions(FUNCTIONS_0009)  # as written, not the current code's


def downgrade() -> None:
    install_functions(FUNCTIONS_0006)
