"""The SQL of each backend, one module per backend, built from `checkpoint_pg.schema`.

Values are always bound parameters; only table names (validated identifiers,
quoted by SQLAlchemy's preparer) are formatted into the text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Stmt"]


@dataclass(frozen=True, slots=True)
class Stmt:
    """One statement to run: ``many`` runs it once per params mapping. ``counted``
    (SQLite): its result is the number of rows it changed, not None."""

    sql: str
    params: Any = field(default_factory=dict)
    many: bool = False
    counted: bool = False
