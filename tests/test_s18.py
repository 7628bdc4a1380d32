"""Session 18: what earlier reviews found and left open (a SqliteSaver on an async saver's
connection before its first call, ...)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

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
