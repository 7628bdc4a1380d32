"""get_tuple reads a long list in one round trip when the process holds nothing of it.

A row holding a long list names chunks of its hashes (revision 0012,
core/chunks.py). A process that ran the thread knows those chunks and their
elements, and get_tuple leaves them out of the read. One that holds nothing
of the thread (a server process reading a thread another one ran, or the
first read after a restart) got the chunks without their elements and read
those in a second round trip. The get_tuple function now sends them in the
same one when it is told nothing is known, with a plan of its own: the calls
of a running thread keep theirs, which do not pay for the extra work (~30 us
on the server). The tables do not change.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26
"""

from __future__ import annotations

from checkpoint_pg.migrations import install_functions
from checkpoint_pg.migrations.frozen import FUNCTIONS_0012

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    install_functions()


def downgrade() -> None:
    install_functions(FUNCTIONS_0012)
