"""Adversarial review of session 17's changes (tests/test_s17_review.py): an async
saver's sync calls waiting on its loop (shells/aio.py `_sync`), and statements
prepared when the saver is given prepare=True (postgres.py)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
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


# -- statements prepared as the connection says ----------------------------------------


def test_a_statement_name_another_client_reused_behind_a_pooler_says_what_to_do(
    pgbouncer_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A pool given with prepare_threshold=0 through PgBouncer 1.18 in transaction mode:
    another client's DEALLOCATE ALL (psycopg sends one on a rollback) cleared the shared
    server session, and a third client prepared its own ``_pg3_1`` there. The saver's
    get_tuple, prepared as ``_pg3_1`` on its side, binds its 4 parameters to that 2-parameter
    statement: the server's ProtocolViolation (SQLSTATE 08P01) was taken for a lost
    connection (logged so, run again, then raised bare). It is the ConfigError saying to
    open the connection with prepare_threshold=None, and nothing is run again."""
    import psycopg
    from psycopg_pool import ConnectionPool

    from checkpoint_pg import ConfigError, PostgresSaver

    def deallocate_all() -> None:
        # the server sessions PgBouncer shares outlive this test: none of its statements
        # (or an earlier test's) is left there
        with psycopg.connect(pgbouncer_url, autocommit=True, prepare_threshold=None) as other:
            other.execute("DEALLOCATE ALL")

    pfx = f"s{uuid.uuid4().hex[:8]}_"
    with PostgresSaver.from_conn_string(pgbouncer_url, prefix=pfx) as setup:
        setup.setup()
    config = _new_config()
    kwargs = {"autocommit": True, "prepare_threshold": 0}
    deallocate_all()
    try:
        with ConnectionPool(pgbouncer_url, min_size=1, max_size=1, kwargs=kwargs) as pool:
            saver = PostgresSaver(pool, prefix=pfx, prepare=True)
            assert saver.get_tuple(config) is None  # prepares _pg3_0 (schema check), _pg3_1
            deallocate_all()
            with psycopg.connect(pgbouncer_url, autocommit=True, prepare_threshold=0) as third:
                third.execute("SELECT %s::int", [1])  # its _pg3_0
                third.execute("SELECT %s::int + %s::int", [1, 2])  # its _pg3_1
            caplog.set_level("INFO", logger="checkpoint_pg")
            with pytest.raises(ConfigError, match=r"prepare_threshold=None") as err:
                saver.get_tuple(config)
            assert "_pg3_1" in str(err.value) and "PgBouncer before 1.21" in str(err.value)
            assert not [r for r in caplog.records if "was lost" in r.getMessage()]
    finally:
        deallocate_all()


def _prepared_here(conn: Any) -> tuple[set[str], set[str]]:
    """(the statements psycopg believes prepared on ``conn``, those its session holds)."""
    ours = {name.decode() for name in conn._prepared._names.values()}
    return ours, {r[0] for r in conn.execute("SELECT name FROM pg_prepared_statements", prepare=False)}


def test_a_preparing_connection_inside_the_callers_transaction_keeps_its_statements_right(
    pg_url: str,
) -> None:
    """A connection given with prepare_threshold=0, not autocommit, in the caller's own
    transaction: calls join it as savepoints; one failing in the server rolls back its
    savepoint (psycopg then forgets its statements and deallocates them), the caller's
    rollback too. Every statement psycopg would run by name is held by the session, and
    the calls go on working."""
    import psycopg
    from test_connections import check_graph_run, run_graph

    from graphs import build_tool_agent

    from checkpoint_pg import ConfigError, PostgresSaver

    pfx = f"s{uuid.uuid4().hex[:8]}_"
    with PostgresSaver.from_conn_string(pg_url, prefix=pfx) as setup:
        setup.setup()
    with psycopg.connect(pg_url, autocommit=False, prepare_threshold=0) as conn:
        saver = PostgresSaver(conn, prefix=pfx, prepare=True)
        conn.execute("SELECT 1")  # the caller's transaction
        kept = run_graph(saver)
        ours, held = _prepared_here(conn)
        assert ours and ours <= held
        # an index key too long: refused by the server inside the call's savepoint
        too_long = {"configurable": {"thread_id": secrets.token_hex(10_000), "checkpoint_ns": ""}}
        with pytest.raises(ConfigError, match="too long for Postgres to index"):
            saver.put(too_long, empty_checkpoint(), {"source": "input", "step": -1}, {})
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        ours, held = _prepared_here(conn)
        assert ours <= held
        undone = run_graph(saver)
        conn.rollback()
        ours, held = _prepared_here(conn)
        assert ours <= held
        assert saver.get_tuple(undone) is None and saver.get_tuple(kept) is None
        kept = run_graph(saver)
        conn.commit()
        ours, held = _prepared_here(conn)
        assert ours and ours <= held
    with PostgresSaver.from_conn_string(pg_url, prefix=pfx) as fresh:
        check_graph_run(build_tool_agent(fresh).get_state(kept).values)


async def test_an_async_read_cancelled_mid_statement_on_a_preparing_pool_leaves_it_right(
    pg_url: str,
) -> None:
    """Reads cut off by a timeout while the server waits on a lock, on a pool preparing each
    statement at its first run (cancelled during that run) and at a later one: the pool's
    connection holds every statement psycopg would run by name, and the next calls work."""
    import psycopg
    from faultkit import await_until, blocked_on
    from test_connections import arun_graph

    from checkpoint_pg import AsyncPostgresSaver

    pfx = f"s{uuid.uuid4().hex[:8]}_"
    async with AsyncPostgresSaver.from_conn_string(pg_url, prefix=pfx, pool_size=1, prepare=True) as saver:
        await saver.asetup()
        config = _new_config()
        for _run in ("first", "later"):
            with psycopg.connect(pg_url) as locker:
                locker.execute(f"LOCK TABLE {pfx}checkpoints IN ACCESS EXCLUSIVE MODE")
                for read in (lambda: saver.aget_tuple(config), lambda: saver.alist(config).__anext__()):
                    # cancelled once its statement waits on the lock, not after a fixed
                    # pause a slow client could spend before sending it
                    task = asyncio.ensure_future(read())
                    await await_until(
                        lambda: blocked_on(pg_url, locker.info.backend_pid),
                        "the read never waited on the table's lock",
                    )
                    task.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await task
                locker.rollback()
            async with saver._pool.connection() as conn:  # type: ignore[union-attr]
                ours = {name.decode() for name in conn._prepared._names.values()}
                cur = await conn.execute("SELECT name FROM pg_prepared_statements", prepare=False)
                assert ours <= {r[0] for r in await cur.fetchall()}
            config = await arun_graph(saver)


def test_a_migration_replacing_the_functions_under_a_preparing_pool(pg_url: str) -> None:
    """Another process takes the tables down to an older revision and back up to head
    (replacing put, put_writes, get_tuple...) while a pool preparing every statement holds
    them prepared: the calls refused meanwhile say to upgrade, and once it is done the
    prepared statements run the new functions."""
    import sqlalchemy as sa
    from test_connections import run_graph

    from checkpoint_pg import PostgresSaver, SchemaVersionError, migrate
    from checkpoint_pg.schema import build_tables

    pfx = f"s{uuid.uuid4().hex[:8]}_"
    tables = build_tables(pfx)
    engine = sa.create_engine(
        pg_url.replace("postgresql://", "postgresql+psycopg://", 1), poolclass=sa.pool.NullPool
    )
    try:
        with PostgresSaver.from_conn_string(pg_url, prefix=pfx, pool_size=1, prepare=True) as saver:
            saver.setup()
            run_graph(saver)
            with engine.connect() as conn:
                migrate.downgrade(conn, tables, "0010")
            with pytest.raises(SchemaVersionError, match="setup"):
                run_graph(saver)
            with PostgresSaver.from_conn_string(pg_url, prefix=pfx) as other:
                other.setup()
            run_graph(saver)
            run_graph(saver)
    finally:
        with engine.connect() as conn:
            migrate.downgrade(conn, tables, "base")
        engine.dispose()


def test_an_engine_whose_connections_prepare_runs_graphs_and_vacuums(pg_url: str) -> None:
    """PostgresSaver(engine) on connections preparing every statement: calls (each in a
    transaction, SQLAlchemy's connections not being autocommit) and vacuum (run in
    autocommit on the borrowed connection, prepared too from its second run) work, again
    on the same connection."""
    import sqlalchemy as sa
    from test_connections import run_graph

    from checkpoint_pg import PostgresSaver, migrate
    from checkpoint_pg.schema import build_tables

    pfx = f"s{uuid.uuid4().hex[:8]}_"
    engine = sa.create_engine(
        pg_url.replace("postgresql://", "postgresql+psycopg://", 1),
        connect_args={"prepare_threshold": 0},
        pool_size=1,
        max_overflow=0,
    )
    try:
        saver = PostgresSaver(engine, prefix=pfx, prepare=True)
        saver.setup()
        for full in (False, True, False):
            run_graph(saver)
            saver.vacuum(full=full)
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert {n.decode() for n in raw._prepared._names.values()}  # it did prepare
    finally:
        with engine.connect() as conn:
            migrate.downgrade(conn, build_tables(pfx), "base")
        engine.dispose()


# -- the retry's log --------------------------------------------------------------------


def _deadlock(pg_url: str) -> BaseException:
    """A real DeadlockDetected from the server: two sessions taking two locks crosswise."""
    import psycopg

    with psycopg.connect(pg_url) as a, psycopg.connect(pg_url) as b:
        a.execute("SELECT pg_advisory_xact_lock(917001)")
        b.execute("SELECT pg_advisory_xact_lock(917002)")
        raised: list[BaseException] = []

        def a_waits() -> None:
            try:
                a.execute("SELECT pg_advisory_xact_lock(917002)")
            except psycopg.errors.DeadlockDetected as exc:
                raised.append(exc)
            a.rollback()

        waiter = threading.Thread(target=a_waits)
        waiter.start()
        time.sleep(0.2)
        try:
            b.execute("SELECT pg_advisory_xact_lock(917001)")
        except psycopg.errors.DeadlockDetected as exc:
            raised.append(exc)
        b.rollback()
        waiter.join(10)
    (exc,) = raised
    return exc


def test_a_deadlock_run_again_is_logged_as_a_deadlock_not_a_lost_connection(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The Postgres savers run a call the server aborted to break a deadlock again, as
    they do one whose connection was lost (postgres.py raises ConnectionLost for both):
    the warning said the connection was lost and the call ran on a fresh one, sending an
    operator after the network. It says the server broke a deadlock."""
    from checkpoint_pg.core.values import ListCache
    from checkpoint_pg.shells.base import Retry
    from checkpoint_pg.shells.errors import ConnectionLost

    deadlock = _deadlock(pg_url)
    try:
        raise ConnectionLost(str(deadlock)) from deadlock  # as postgres.py does
    except ConnectionLost as exc:
        lost = exc
    caplog.set_level("WARNING", logger="checkpoint_pg")
    assert Retry(ListCache(), write=True, thread="t").after(lost) is Retry.RECONNECT
    (record,) = caplog.records
    assert "deadlock" in record.getMessage() and "thread 't'" in record.getMessage()
    assert "was lost" not in record.getMessage() and "fresh connection" not in record.getMessage()


def test_a_preparing_pool_whose_connections_the_server_terminated_runs_on(pg_url: str) -> None:
    """The server terminates the sessions of a pool preparing every statement (a managed
    database closing idle connections): the call finding its connection dead runs again
    on a new one, which prepares its statements anew, twice over."""
    import psycopg
    from test_connections import run_graph

    from checkpoint_pg import PostgresSaver

    pfx = f"s{uuid.uuid4().hex[:8]}_"
    app = f"s17-{uuid.uuid4().hex[:8]}"
    url = f"{pg_url}{'&' if '?' in pg_url else '?'}application_name={app}"
    with PostgresSaver.from_conn_string(url, prefix=pfx, pool_size=2, prepare=True) as saver:
        saver.setup()
        run_graph(saver)
        for _round in range(2):
            with psycopg.connect(pg_url, autocommit=True) as admin:
                killed = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = %s",
                    [app],
                ).fetchone()[0]
            assert killed >= 1
            run_graph(saver)
