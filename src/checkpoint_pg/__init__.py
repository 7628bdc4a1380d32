"""checkpoint_pg: a LangGraph checkpointer for Postgres and SQLite that stores every value once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from checkpoint_pg.errors import (
    AsyncMisuseError,
    CheckpointPgError,
    DatabaseBusyError,
    ConfigError,
    IntegrityError,
    MissingDriverError,
    NotFoundError,
    SaverClosedError,
    SchemaVersionError,
    SerializationError,
    ThreadBusyError,
    ValueTooLargeError,
)
from checkpoint_pg.core.lease import Lease
from checkpoint_pg.core.vacuum import VacuumReport
from checkpoint_pg.sqlite import AsyncSqliteSaver, SqliteSaver

if TYPE_CHECKING:
    from checkpoint_pg.postgres import AsyncPostgresSaver, PostgresSaver

__all__ = [
    "PostgresSaver",
    "AsyncPostgresSaver",
    "SqliteSaver",
    "AsyncSqliteSaver",
    "Lease",
    "VacuumReport",
    "CheckpointPgError",
    "ConfigError",
    "SchemaVersionError",
    "SerializationError",
    "ValueTooLargeError",
    "IntegrityError",
    "ThreadBusyError",
    "MissingDriverError",
    "AsyncMisuseError",
    "DatabaseBusyError",
    "NotFoundError",
    "SaverClosedError",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The Postgres savers import psycopg: only when asked for, so SQLite users
    # need no driver and a missing one is reported with the extra to install.
    if name in ("PostgresSaver", "AsyncPostgresSaver"):
        from checkpoint_pg import postgres

        return getattr(postgres, name)
    raise AttributeError(f"module 'checkpoint_pg' has no attribute {name!r}")
