"""get_tuple reads a long list in one round trip when the process holds nothing of it.

A row holding a long list names chunks of its hashes (revision 0012,
core/chunks.py). A process that ran the thread knows those chunks and their
elements, and get_tuple leaves them out of the read. One that holds nothing
of the thread (a server process reading a thread another one ran, or the
first read after a restart) got the chunks without their elements and read
those in a second round trip. The get_tuple function now sends them in the
same one when it is told nothing is known, with a plan of its own: the calls
of a running thread keep theirs, which do not pay for the extra work (~30 us
on the server). The tables do not change, except on a database brought to 0012
by a release whose 0012 did not yet create the partial index on chunks
(82ab8eb to 1d20d95): this revision creates it there.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from checkpoint_pg.migrations import current_tables, install_functions
from checkpoint_pg.migrations.frozen import FUNCTIONS_0012, FUNCTIONS_0013

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    install_functions(FUNCTIONS_0013)
    # a database that reached 0012 before that revision created the index
    t = current_tables()
    where = sa.text("type = '#refs'")
    op.create_index(
        f"{t.prefix}objects_chunks_idx", f"{t.prefix}objects", ["thread_id"], schema=t.schema,
        postgresql_where=where, sqlite_where=where, if_not_exists=True,
    )


def downgrade() -> None:
    install_functions(FUNCTIONS_0012)
