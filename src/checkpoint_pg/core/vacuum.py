"""Giving the space of deleted rows back: VACUUM, I/O-free like the rest of the core.

Deleting threads, pruning and repointing leave free pages behind. A SQLite file
keeps its size until it is rebuilt (issue reports of 135 GB files), and Postgres
reuses the space of dead rows only once a VACUUM has marked it free.
"""

from __future__ import annotations

from dataclasses import dataclass

from checkpoint_pg.core.ops import Batch, Ctx, Op
from checkpoint_pg.errors import CheckpointPgError

__all__ = ["VacuumReport", "vacuum"]


@dataclass(frozen=True)
class VacuumReport:
    """What `vacuum` did: the bytes before and after, and whether tables were rewritten.

    SQLite counts the whole database (every table in it is rebuilt); Postgres counts
    the saver's tables with their indexes, TOAST and free-space maps (which a plain
    VACUUM may create: ``freed`` can then be negative).

    ``wal_pending`` (SQLite): the rebuilt database could not be copied from the WAL
    into the file, because another connection was reading: the file on disk shrinks
    at the next WAL checkpoint once those readers finish (another `vacuum` does it).
    """

    bytes_before: int
    bytes_after: int
    full: bool
    wal_pending: bool = False

    @property
    def freed(self) -> int:
        return self.bytes_before - self.bytes_after


def vacuum(ctx: Ctx, full: bool) -> Op:
    """Vacuum the saver's tables; ``full`` rewrites them on Postgres (SQLite always does)."""
    sqlite = ctx.sql.name == "sqlite"
    if not sqlite:
        (refused,) = yield Batch([ctx.sql.vacuum_refused()])
        if refused:
            names = ", ".join(row[0] for row in refused)
            raise CheckpointPgError(
                f"this database role may not vacuum checkpoint_pg's tables ({names}): Postgres "
                "lets only a table's owner, the database's owner or a superuser vacuum it (from "
                "17 also a role granted MAINTAIN on it), and skips the others with a mere "
                "warning; nothing was vacuumed. Vacuum as the role that owns the tables (the "
                "one that ran the migrations), or grant this role MAINTAIN on them (Postgres 17+)"
            )
    (before,) = yield Batch([ctx.sql.stored_bytes()])
    last = None
    for stmt in ctx.sql.vacuum(full):
        # each alone: VACUUM runs outside any transaction
        (last,) = yield Batch([stmt])
    (after,) = yield Batch([ctx.sql.stored_bytes()])
    # SQLite's last statement is the WAL checkpoint: (busy, log frames, checkpointed)
    pending = sqlite and bool(last and last[0][0])
    return VacuumReport(int(before[0][0]), int(after[0][0]), full or sqlite, pending)
