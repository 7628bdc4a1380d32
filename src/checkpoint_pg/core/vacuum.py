"""Giving the space of deleted rows back: VACUUM, I/O-free like the rest of the core.

Deleting threads, pruning and repointing leave free pages behind. A SQLite file
keeps its size until it is rebuilt (issue reports of 135 GB files), and Postgres
reuses the space of dead rows only once a VACUUM has marked it free.
"""

from __future__ import annotations

from dataclasses import dataclass

from checkpoint_pg.core.ops import Batch, Ctx, Op

__all__ = ["VacuumReport", "vacuum"]


@dataclass(frozen=True)
class VacuumReport:
    """What `vacuum` did: the bytes before and after, and whether tables were rewritten.

    SQLite counts the whole file (every table in it is rebuilt); Postgres counts the
    saver's tables with their indexes, TOAST and free-space maps.
    """

    bytes_before: int
    bytes_after: int
    full: bool

    @property
    def freed(self) -> int:
        return self.bytes_before - self.bytes_after


def vacuum(ctx: Ctx, full: bool) -> Op:
    """Vacuum the saver's tables; ``full`` rewrites them on Postgres (SQLite always does)."""
    (before,) = yield Batch([ctx.sql.stored_bytes()])
    for stmt in ctx.sql.vacuum(full):
        # each alone: VACUUM runs outside any transaction
        yield Batch([stmt], fetch=False)
    (after,) = yield Batch([ctx.sql.stored_bytes()])
    return VacuumReport(int(before[0][0]), int(after[0][0]), full or ctx.sql.name == "sqlite")
