"""The put function runs its statements on generic plans.

Under the default ``plan_cache_mode`` the server judged the custom plans of
put's statements cheaper than their generic plan, so it planned them anew on
every call: ~0.09 ms of the ~0.2 ms the put statement took on the server
(measured in a rolled-back transaction, 1,800 puts of bench/workload.py). The
function now carries ``SET plan_cache_mode = force_generic_plan``. Its
statements and the other functions are unchanged (get_tuple and put_writes
already ran on generic plans, and the SET clause costs them more than it saves).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26
"""

from __future__ import annotations

from checkpoint_pg.migrations import install_functions
from checkpoint_pg.migrations.frozen import FUNCTIONS_0010, FUNCTIONS_0011

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    install_functions(FUNCTIONS_0011)


def downgrade() -> None:
    install_functions(FUNCTIONS_0010)
