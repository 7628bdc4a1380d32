"""Adversarial review of session 17's changes (tests/test_s17_review.py): an async
saver's sync calls waiting on its loop (shells/aio.py `_sync`), and statements
prepared as the connection says (postgres.py)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from test_async_review import _in_a_thread


def _new_config() -> dict[str, Any]:
    return {"configurable": {"thread_id": f"s17-{uuid.uuid4().hex[:10]}", "checkpoint_ns": ""}}


@contextlib.contextmanager
def _loop_in_a_thread() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in a thread of its own for the block."""
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(5)
        loop.close()


# -- an async saver's sync call, waiting on the saver's loop ---------------------------


def test_a_sync_call_whose_coroutine_raises_a_timeout_error_raises_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DatabaseBusyError is a TimeoutError, as is concurrent.futures' "not done yet" since
    Python 3.11: the waiting thread took the call's own error for its 0.25 s poll and
    asked the finished future again, for ever, at full speed. The sync twin of an
    AsyncSqliteSaver on a file another connection holds locked raises DatabaseBusyError."""
    import checkpoint_pg.sqlite as sqlite_mod
    from checkpoint_pg import AsyncSqliteSaver, DatabaseBusyError

    monkeypatch.setattr(sqlite_mod, "BUSY_TIMEOUT_MS", 300)
    path = tmp_path / "busy.db"
    with _loop_in_a_thread() as loop:

        async def create() -> Any:
            saver = AsyncSqliteSaver(str(path))
            await saver.asetup()
            return saver

        saver = asyncio.run_coroutine_threadsafe(create(), loop).result(10)
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            other.execute("BEGIN EXCLUSIVE")
            config = _new_config()
            finished, got = _in_a_thread(
                lambda: saver.put(config, empty_checkpoint(), {"source": "input", "step": -1}, {})
            )
            assert finished, "the sync call spun for ever on its own TimeoutError"
            assert isinstance(got, DatabaseBusyError), got
            other.execute("COMMIT")
            assert saver.get_tuple(config) is None
        finally:
            other.close()
            asyncio.run_coroutine_threadsafe(saver.aclose(), loop).result(10)


def test_a_sync_call_survives_its_loop_pausing_briefly_between_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loop driven by ``run_until_complete`` step after step, with sync work between the
    steps (0.15 s here), is briefly not running: a sync call waiting on it (a put waiting
    1.5 s for the file's lock) took a 0.25 s check falling in such a pause for a loop that
    stopped, cancelled the call and raised AsyncMisuseError. A loop that runs again
    within the next check is still running the call: it completes."""
    import checkpoint_pg.sqlite as sqlite_mod
    from checkpoint_pg import AsyncSqliteSaver

    monkeypatch.setattr(sqlite_mod, "BUSY_TIMEOUT_MS", 5000)
    path = tmp_path / "paused.db"
    loop = asyncio.new_event_loop()

    async def create() -> Any:
        saver = AsyncSqliteSaver(str(path))
        await saver.asetup()
        return saver

    saver = loop.run_until_complete(create())
    done = threading.Event()
    first_step = threading.Event()

    def drive() -> None:
        # the first step long enough for the call below to be handed over while it runs
        loop.call_soon(first_step.set)
        loop.run_until_complete(asyncio.sleep(0.3))
        while not done.is_set():
            time.sleep(0.15)  # the application's sync work between two steps
            loop.run_until_complete(asyncio.sleep(0.05))

    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")
    unlock = threading.Timer(1.5, other.execute, ("COMMIT",))
    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    try:
        assert first_step.wait(5)
        config = _new_config()
        unlock.start()
        finished, got = _in_a_thread(
            lambda: saver.put(config, empty_checkpoint(), {"source": "input", "step": -1}, {})
        )
        assert finished, "the sync call hung"
        assert isinstance(got, dict), got
        assert got["configurable"]["thread_id"] == config["configurable"]["thread_id"]
    finally:
        done.set()
        driver.join(5)
        unlock.cancel()
        if unlock.is_alive():
            unlock.join(5)
        other.close()
        loop.run_until_complete(saver.aclose())
        loop.close()
