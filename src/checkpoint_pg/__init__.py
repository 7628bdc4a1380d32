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

if TYPE_CHECKING:
    from checkpoint_pg.core.lease import Lease
    from checkpoint_pg.core.vacuum import VacuumReport
    from checkpoint_pg.postgres import AsyncPostgresSaver, PostgresSaver
    from checkpoint_pg.sqlite import AsyncSqliteSaver, SqliteSaver

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


# Where each saver class lives: imported when first asked for. The Postgres savers
# import psycopg, so SQLite users need no driver and a missing one is reported with
# the extra to install; and the savers import langgraph and SQLAlchemy (~2 s), which
# `checkpoint-pg --help` and the errors alone do not need.
_LAZY = {
    "PostgresSaver": "checkpoint_pg.postgres",
    "AsyncPostgresSaver": "checkpoint_pg.postgres",
    "SqliteSaver": "checkpoint_pg.sqlite",
    "AsyncSqliteSaver": "checkpoint_pg.sqlite",
    "Lease": "checkpoint_pg.core.lease",
    "VacuumReport": "checkpoint_pg.core.vacuum",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'checkpoint_pg' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # found here from now on, without this call
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
