"""The exceptions of checkpoint_pg: every one derives from `CheckpointPgError`."""

from __future__ import annotations

__all__ = [
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


class CheckpointPgError(Exception):
    """Root of every error raised by checkpoint_pg."""

    __module__ = "checkpoint_pg"


class ConfigError(CheckpointPgError, ValueError):
    """A config, URL or option is malformed (missing thread_id, unknown scheme...)."""

    __module__ = "checkpoint_pg"


class SchemaVersionError(CheckpointPgError):
    """The database is not at the schema revision this version of the package needs."""

    __module__ = "checkpoint_pg"

    def __init__(
        self, message: str, *, current: str | None, expected: str, upgrade_url: str | None = None
    ) -> None:
        """``upgrade_url``: migrating the database fixes it; the message then ends
        with how (``saver.setup()``, ``await saver.asetup()`` on an async saver, or the
        ``checkpoint-pg migrate upgrade`` command)."""
        self.problem = message
        self.upgrade_url = upgrade_url
        if upgrade_url is not None:
            message += (
                ": call saver.setup() (async: await saver.asetup()) or run "
                f"`checkpoint-pg migrate upgrade --url {upgrade_url}`"
            )
        super().__init__(message)
        self.current = current
        self.expected = expected


class SerializationError(CheckpointPgError, TypeError):
    """A value could not be serialized or deserialized."""

    __module__ = "checkpoint_pg"


class ValueTooLargeError(CheckpointPgError, ValueError):
    """A serialized value exceeds the saver's `max_value_bytes`."""

    __module__ = "checkpoint_pg"

    def __init__(self, message: str, *, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class IntegrityError(CheckpointPgError):
    """A write was refused because what it builds on is gone (e.g. the thread was deleted), or
    a stored row was refused on reading: changed by hand, or not what its hash names."""

    __module__ = "checkpoint_pg"


class ThreadBusyError(CheckpointPgError):
    """Another run holds this thread: its lease (`saver.lease`), or, with
    ``single_writer=True``, a newer checkpoint than this run's parent; or this run's own
    lease is gone (lapsed and taken, broken, or the thread deleted). Nothing was written."""

    __module__ = "checkpoint_pg"

    def __init__(self, message: str, *, thread_id: str) -> None:
        super().__init__(message)
        self.thread_id = thread_id


class MissingDriverError(CheckpointPgError, ImportError):
    """A database driver is not installed; the message names the extra to install."""

    __module__ = "checkpoint_pg"


class AsyncMisuseError(CheckpointPgError, RuntimeError):
    """A sync method of an async saver was called on the saver's own event loop (or once
    that loop stopped), an async saver was created outside a running event loop, or an
    AsyncPostgresSaver was awaited on another event loop than its own."""

    __module__ = "checkpoint_pg"


class DatabaseBusyError(CheckpointPgError, TimeoutError):
    """SQLite: another connection held the file's write lock for the whole busy timeout."""

    __module__ = "checkpoint_pg"


class NotFoundError(CheckpointPgError, LookupError):
    """A thread or checkpoint asked for by an inspection call does not exist."""

    __module__ = "checkpoint_pg"


class SaverClosedError(CheckpointPgError, RuntimeError):
    """The saver was used after it was closed: its ``from_conn_string`` block ended, its
    ``close()`` / ``aclose()`` ran, or the connection or pool it was given was closed."""

    __module__ = "checkpoint_pg"
