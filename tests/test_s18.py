"""Session 18: what earlier reviews found and left open (a SqliteSaver on an async saver's
connection before its first call, ...)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint


def _new_config() -> dict[str, Any]:
    return {"configurable": {"thread_id": f"s18-{uuid.uuid4().hex[:10]}", "checkpoint_ns": ""}}


async def test_a_sqlite_saver_on_an_async_savers_connection_makes_the_file_ready_first(
    tmp_path: Path,
) -> None:
    """AsyncSqliteSaver(path) switches its file to WAL before its first call; a SqliteSaver
    given its connection, called first, does it too instead of writing in rollback-journal
    mode until the async saver's first call."""
    from checkpoint_pg import AsyncSqliteSaver, SqliteSaver

    saver = AsyncSqliteSaver(str(tmp_path / "a.db"))
    try:
        assert saver.conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        sync = SqliteSaver(saver.conn)
        await asyncio.to_thread(sync.setup)
        assert saver.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        cfg = await asyncio.to_thread(
            sync.put, _new_config(), empty_checkpoint(), {"source": "input", "step": -1}, {}
        )
        assert saver._wal is not None  # the async saver's WAL thread, started once
        assert (await saver.aget_tuple(cfg)) is not None
        assert (tmp_path / "a.db-wal").exists()
    finally:
        await saver.aclose()


def test_a_prepared_statement_whose_result_type_changed_says_to_reconnect(pg_url: str) -> None:
    """Postgres refuses, for the connection's life, a prepared statement whose result type
    a migration changed since ("cached plan must not change result type"): the error says
    what happened and what to do, instead of the driver's bare FeatureNotSupported."""
    import psycopg

    from checkpoint_pg.errors import ConfigError
    from checkpoint_pg.shells.errors import translate

    table = f"s18_plan_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True, prepare_threshold=0) as conn:
        try:
            conn.execute(f"CREATE TABLE {table} (x integer)")
            conn.execute(f"SELECT * FROM {table}")  # prepared at its first run
            # by another connection: psycopg forgets what it prepared after its own ALTER
            with psycopg.connect(pg_url, autocommit=True) as other:
                other.execute(f"ALTER TABLE {table} ALTER COLUMN x TYPE bigint")
            with pytest.raises(psycopg.errors.FeatureNotSupported) as raised:
                conn.execute(f"SELECT * FROM {table}")
        finally:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    ours = translate(raised.value, "postgresql://u@h/db")
    assert isinstance(ours, ConfigError)
    assert "cached plan must not change result type" in str(ours)
    assert "migration ran while it was open" in str(ours) and "prepare=True" in str(ours)
