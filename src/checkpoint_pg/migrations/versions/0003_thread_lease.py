"""Thread leases: a run can hold a thread against other writers (saver.lease).

Adds ``lease_owner`` / ``lease_until`` to the threads table. Postgres: the put
and put_writes functions take the caller's lease token and check the lease
under the thread's row lock, so their signatures change: the functions of 0002
are dropped and 0003's installed (frozen as they were written, see
migrations/frozen.py); a downgrade restores 0002's.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from checkpoint_pg.migrations import current_tables
from checkpoint_pg.migrations.frozen import (
    DROP_0002,
    DROP_0003,
    FUNCTIONS_0002,
    FUNCTIONS_0003,
    render,
)

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    t = current_tables()
    table = f"{t.prefix}threads"
    op.add_column(table, sa.Column("lease_owner", sa.Text, nullable=True), schema=t.schema)
    op.add_column(table, sa.Column("lease_until", sa.Float, nullable=True), schema=t.schema)
    if op.get_context().dialect.name == "postgresql":
        for ddl in DROP_0002 + FUNCTIONS_0003:
            op.execute(render(ddl, t))


def downgrade() -> None:
    t = current_tables()
    table = f"{t.prefix}threads"
    if op.get_context().dialect.name == "postgresql":
        for ddl in DROP_0003 + FUNCTIONS_0002:
            op.execute(render(ddl, t))
        op.drop_column(table, "lease_until", schema=t.schema)
        op.drop_column(table, "lease_owner", schema=t.schema)
    else:
        # SQLite >= 3.35 drops a column in place; alembic's batch mode would
        # rebuild the table without its WITHOUT ROWID option.
        quote = op.get_context().dialect.identifier_preparer.quote
        for column in ("lease_until", "lease_owner"):
            op.execute(f"ALTER TABLE {quote(table)} DROP COLUMN {column}")
