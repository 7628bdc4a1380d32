"""What the savers can be built on, and what each call costs in round trips.

- PostgresSaver on a psycopg Connection (autocommit or not), a psycopg_pool
  ConnectionPool, a SQLAlchemy Engine (postgresql+psycopg);
- AsyncPostgresSaver on an AsyncConnection and an AsyncConnectionPool;
- SqliteSaver on a sqlite3.Connection, a path and a ``sqlite:///`` URL;
- both Postgres savers through a real PgBouncer in transaction mode;
- an async saver's sync methods from another thread, and the clear error when
  they are called on the saver's own event loop;
- round trips per call on Postgres (issue 6): put, put_writes and get_tuple
  each take one.

Each connection kind runs a small real graph (the seed tool agent) and the
result is read back through a *separate* connection, so data left in an
uncommitted transaction would be caught.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faultkit import after_first_yield, wait_until
from graphs import build_tool_agent, weather_question
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import empty_checkpoint


def new_config() -> RunnableConfig:
    return {"configurable": {"thread_id": f"conn-{uuid.uuid4().hex[:10]}"}}


def prefix() -> str:
    return f"c{secrets.token_hex(4)}_"


def check_graph_run(state_values: dict[str, Any]) -> None:
    msgs = state_values["messages"]
    assert [type(m).__name__ for m in msgs] == [
        "HumanMessage", "AIMessage", "ToolMessage", "ToolMessage", "AIMessage",
    ]
    assert msgs[-1].content == "Here is what I found: Paris: 21C and sunny; Paris: 12:00"


def run_graph(saver: Any) -> RunnableConfig:
    """The seed tool agent, one turn; returns the thread's config after checking the state."""
    graph = build_tool_agent(saver)
    config = new_config()
    graph.invoke(weather_question("Paris"), config)
    check_graph_run(graph.get_state(config).values)
    assert len(list(graph.get_state_history(config))) == 5
    return config


async def arun_graph(saver: Any) -> RunnableConfig:
    graph = build_tool_agent(saver)
    config = new_config()
    await graph.ainvoke(weather_question("Paris"), config)
    check_graph_run((await graph.aget_state(config)).values)
    assert len([s async for s in graph.aget_state_history(config)]) == 5
    return config


def pg_checkpoints(url: str, pfx: str, config: RunnableConfig, schema: str | None = None) -> int:
    """Checkpoints of the thread, counted through a connection of the test's own."""
    import psycopg

    table = f'"{schema}"."{pfx}checkpoints"' if schema else f'"{pfx}checkpoints"'
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            f"SELECT count(*) FROM {table} WHERE thread_id = %s",
            [config["configurable"]["thread_id"]],
        ).fetchone()
    return row[0]


def sqlite_checkpoints(path: str, config: RunnableConfig, pfx: str = "cpg_") -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            f"SELECT count(*) FROM {pfx}checkpoints WHERE thread_id = ?",
            [config["configurable"]["thread_id"]],
        ).fetchone()[0]
    finally:
        conn.close()


# --------------------------------------------------------------------------
# PostgresSaver on each kind of connection
# --------------------------------------------------------------------------


@pytest.mark.parametrize("autocommit", [True, False], ids=["autocommit", "transactional"])
def test_postgres_saver_on_a_psycopg_connection(pg_url: str, autocommit: bool) -> None:
    """A psycopg Connection, autocommit or not: the graph runs and every checkpoint is committed.

    On a non-autocommit connection the saver leaves no transaction open.
    """
    import psycopg

    from checkpoint_pg import PostgresSaver

    pfx = prefix()
    with psycopg.connect(pg_url, autocommit=autocommit, prepare_threshold=None) as conn:
        saver = PostgresSaver(conn, prefix=pfx)
        saver.setup()
        config = run_graph(saver)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.autocommit is autocommit  # the saver restored what it found
    assert pg_checkpoints(pg_url, pfx, config) == 5


@pytest.mark.parametrize("through", ["connection", "pool"])
def test_postgres_saver_on_the_incumbents_dict_row_connection(pg_url: str, through: str) -> None:
    """The connection langgraph-checkpoint-postgres asks for (autocommit, dict_row,
    prepare_threshold=0): setup() used to fail inside SQLAlchemy (it read the server
    version from a dict row) and close the caller's connection. It migrates, the graph
    runs, and the connection comes back with the caller's row factory."""
    import psycopg
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

    from checkpoint_pg import PostgresSaver

    pfx = prefix()
    kwargs = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
    if through == "pool":
        with ConnectionPool(pg_url, min_size=1, max_size=1, kwargs=kwargs, open=True) as pool:
            saver = PostgresSaver(pool, prefix=pfx)
            saver.setup()
            config = run_graph(saver)
            with pool.connection() as conn:
                assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
    else:
        with psycopg.connect(pg_url, **kwargs) as conn:
            saver = PostgresSaver(conn, prefix=pfx)
            saver.setup()
            config = run_graph(saver)
            assert not conn.closed and conn.autocommit
            assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
    assert pg_checkpoints(pg_url, pfx, config) == 5


def test_postgres_saver_inside_the_callers_transaction(pg_url: str) -> None:
    """On a connection that is not autocommit and already in the caller's transaction
    (an explicit one, or the one psycopg opened with the caller's last statement),
    every call joins it as a savepoint: reads work (they used to fail setting their
    isolation level inside it), and the caller's rollback takes the saver's writes too."""
    import psycopg

    from checkpoint_pg import PostgresSaver

    pfx = prefix()
    with PostgresSaver.from_conn_string(pg_url, prefix=pfx) as admin:
        admin.setup()
    with psycopg.connect(pg_url) as conn:
        saver = PostgresSaver(conn, prefix=pfx)
        config: RunnableConfig = {"configurable": {"thread_id": "joined", "checkpoint_ns": ""}}
        cp, versions = _checkpoint(saver, None, [HumanMessage("hi", id="h1")])

        def every_call() -> None:
            stored = saver.put(config, cp, {"source": "input", "step": -1}, versions)
            saver.put_writes(stored, [("n", 1)], "task-1")
            assert saver.get_tuple(config).checkpoint["id"] == cp["id"]
            assert [t.checkpoint["id"] for t in saver.list(config)] == [cp["id"]]
            assert [t.checkpoint["id"] for t in saver.list(None, filter={"step": -1})] == [cp["id"]]

        with conn.transaction() as tx:
            every_call()
            raise psycopg.Rollback(tx)
        assert saver.get_tuple(config) is None
        conn.execute("SELECT 1")  # psycopg opens a transaction for the caller
        every_call()
        conn.rollback()
        assert saver.get_tuple(config) is None
        conn.execute("SELECT 1")
        every_call()
        conn.commit()
    with PostgresSaver.from_conn_string(pg_url, prefix=pfx) as reader:
        assert reader.get_tuple(config).pending_writes == [("task-1", "n", 1)]


async def test_async_postgres_saver_inside_the_callers_transaction(pg_url: str) -> None:
    """The same on an AsyncConnection that is not autocommit."""
    import psycopg

    from checkpoint_pg import AsyncPostgresSaver, PostgresSaver

    pfx = prefix()
    with PostgresSaver.from_conn_string(pg_url, prefix=pfx) as admin:
        admin.setup()
    async with await psycopg.AsyncConnection.connect(pg_url) as conn:
        saver = AsyncPostgresSaver(conn, prefix=pfx)
        config: RunnableConfig = {"configurable": {"thread_id": "ajoined", "checkpoint_ns": ""}}
        cp, versions = _checkpoint(saver, None, [HumanMessage("hi", id="h1")])
        async with conn.transaction() as tx:
            stored = await saver.aput(config, cp, {"source": "input", "step": -1}, versions)
            await saver.aput_writes(stored, [("n", 1)], "task-1")
            assert (await saver.aget_tuple(config)).checkpoint["id"] == cp["id"]
            assert [t.checkpoint["id"] async for t in saver.alist(config)] == [cp["id"]]
            raise psycopg.Rollback(tx)
        assert await saver.aget_tuple(config) is None


@pytest.mark.parametrize("autocommit", [True, False], ids=["autocommit", "transactional"])
def test_postgres_saver_on_a_connection_pool(pg_url: str, autocommit: bool) -> None:
    """A psycopg_pool ConnectionPool the caller owns (connections autocommit or not)."""
    from psycopg_pool import ConnectionPool

    from checkpoint_pg import PostgresSaver

    pfx = prefix()
    kwargs = {"autocommit": autocommit, "prepare_threshold": None}
    with ConnectionPool(pg_url, min_size=1, max_size=3, kwargs=kwargs, open=True) as pool:
        saver = PostgresSaver(pool, prefix=pfx)
        saver.setup()
        config = run_graph(saver)
        # the pool is still usable by its owner, and its connections came back idle
        with pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert pool.get_stats()["pool_size"] <= 3
    assert pg_checkpoints(pg_url, pfx, config) == 5


def test_postgres_saver_on_a_sqlalchemy_engine(pg_url: str) -> None:
    """A SQLAlchemy Engine with the psycopg driver; the engine stays usable afterwards."""
    import sqlalchemy as sa

    from checkpoint_pg import PostgresSaver

    pfx = prefix()
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        saver = PostgresSaver(engine, prefix=pfx)
        saver.setup()
        config = run_graph(saver)
        with engine.connect() as sc:
            n = sc.execute(
                sa.text(f'SELECT count(*) FROM "{pfx}checkpoints" WHERE thread_id = :t'),
                {"t": config["configurable"]["thread_id"]},
            ).scalar_one()
        assert n == 5
    finally:
        engine.dispose()
    assert pg_checkpoints(pg_url, pfx, config) == 5


def test_postgres_saver_refuses_other_engines(tmp_path: Path) -> None:
    """An engine that is not postgresql+psycopg is refused with a ConfigError naming the driver."""
    import sqlalchemy as sa

    from checkpoint_pg import ConfigError, PostgresSaver

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with pytest.raises(ConfigError, match="postgresql\\+psycopg"):
            PostgresSaver(engine)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------
# AsyncPostgresSaver
# --------------------------------------------------------------------------


async def test_async_postgres_saver_on_an_async_connection(pg_url: str) -> None:
    """An AsyncConnection (autocommit): ainvoke runs and the checkpoints are committed."""
    import psycopg

    from checkpoint_pg import AsyncPostgresSaver

    pfx = prefix()
    async with await psycopg.AsyncConnection.connect(
        pg_url, autocommit=True, prepare_threshold=None
    ) as conn:
        saver = AsyncPostgresSaver(conn, prefix=pfx)
        await saver.asetup()
        config = await arun_graph(saver)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert pg_checkpoints(pg_url, pfx, config) == 5


async def test_async_postgres_saver_on_an_async_pool(pg_url: str) -> None:
    """An AsyncConnectionPool the caller owns."""
    from psycopg_pool import AsyncConnectionPool

    from checkpoint_pg import AsyncPostgresSaver

    pfx = prefix()
    kwargs = {"autocommit": True, "prepare_threshold": None}
    async with AsyncConnectionPool(pg_url, min_size=1, max_size=3, kwargs=kwargs, open=False) as pool:
        saver = AsyncPostgresSaver(pool, prefix=pfx)
        await saver.asetup()
        config = await arun_graph(saver)
    assert pg_checkpoints(pg_url, pfx, config) == 5


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_setup_migrates_where_the_pools_connections_look(pg_url: str, mode: str) -> None:
    """A pool whose connections carry options (here a search_path to a schema of their
    own): setup() and asetup() create the tables where the saver's connections then
    find them, not in the server's default schema."""
    import psycopg
    from psycopg_pool import AsyncConnectionPool, ConnectionPool

    from checkpoint_pg import AsyncPostgresSaver, PostgresSaver

    pfx, schema = prefix(), f"tenant_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    kwargs = {"autocommit": True, "prepare_threshold": None, "options": f"-c search_path={schema}"}
    if mode == "sync":
        with ConnectionPool(pg_url, min_size=1, max_size=2, kwargs=kwargs, open=True) as pool:
            saver = PostgresSaver(pool, prefix=pfx)
            saver.setup()
            config = run_graph(saver)
    else:  # with an async cursor class too, which the migration's sync connection must not take
        kwargs["cursor_factory"] = psycopg.AsyncCursor
        async with AsyncConnectionPool(pg_url, min_size=1, max_size=2, kwargs=kwargs, open=False) as pool:
            saver = AsyncPostgresSaver(pool, prefix=pfx)
            await saver.asetup()
            config = await arun_graph(saver)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        where = conn.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = %s", (f"{pfx}checkpoints",)
        ).fetchall()
        assert where == [(schema,)]
        n = conn.execute(
            f'SELECT count(*) FROM "{schema}"."{pfx}checkpoints" WHERE thread_id = %s',
            (config["configurable"]["thread_id"],),
        ).fetchone()[0]
        assert n == 5


# --------------------------------------------------------------------------
# SqliteSaver
# --------------------------------------------------------------------------


def test_sqlite_saver_inside_the_callers_transaction(tmp_path: Path) -> None:
    """On a sqlite3 connection in the caller's own transaction (BEGIN ... ), every call
    joins it as a savepoint instead of failing to BEGIN: the caller's rollback takes the
    saver's writes too, and a call that fails half-way (a put refused after inserting
    its objects) undoes only itself."""
    from checkpoint_pg import IntegrityError, SqliteSaver

    path = str(tmp_path / "joined.sqlite")
    with SqliteSaver.from_conn_string(path) as admin:
        admin.setup()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        saver = SqliteSaver(conn)
        config: RunnableConfig = {"configurable": {"thread_id": "joined", "checkpoint_ns": ""}}
        cp, versions = _checkpoint(saver, None, [HumanMessage("hi", id="h1")])

        def every_call() -> RunnableConfig:
            stored = saver.put(config, cp, {"source": "input", "step": -1}, versions)
            saver.put_writes(stored, [("n", 1)], "task-1")
            assert saver.get_tuple(config).checkpoint["id"] == cp["id"]
            assert [t.checkpoint["id"] for t in saver.list(config)] == [cp["id"]]
            assert [t.checkpoint["id"] for t in saver.list(None, filter={"step": -1})] == [cp["id"]]
            return stored

        conn.execute("BEGIN")
        every_call()
        conn.execute("ROLLBACK")
        assert saver.get_tuple(config) is None
        conn.execute("BEGIN")
        stored = every_call()
        objects = conn.execute("SELECT count(*) FROM cpg_objects").fetchone()[0]
        ghost = empty_checkpoint()
        ghost["channel_values"] = {"messages": [HumanMessage("new", id="h2")], "gone": ["x"]}
        ghost["channel_versions"] = {"messages": saver.get_next_version(versions["messages"], None),
                                     "gone": "0000000099.deadbeef"}
        with pytest.raises(IntegrityError):  # carries over a version never stored
            saver.put(stored, ghost, {"source": "loop", "step": 0},
                      {"messages": ghost["channel_versions"]["messages"]})
        assert conn.in_transaction
        assert conn.execute("SELECT count(*) FROM cpg_objects").fetchone()[0] == objects
        conn.execute("COMMIT")
    finally:
        conn.close()
    with SqliteSaver.from_conn_string(path) as reader:
        assert reader.get_tuple(config).pending_writes == [("task-1", "n", 1)]


def test_sqlite_saver_on_a_sqlite3_connection(tmp_path: Path) -> None:
    """A sqlite3.Connection the caller opened (shared across threads, as LangGraph needs)."""
    from checkpoint_pg import SqliteSaver

    path = str(tmp_path / "conn.db")
    conn = sqlite3.connect(path, check_same_thread=False)
    try:
        saver = SqliteSaver(conn)
        saver.setup()
        config = run_graph(saver)
        assert not conn.in_transaction
    finally:
        conn.close()
    assert sqlite_checkpoints(path, config) == 5


def test_a_sqlite_library_without_returning_is_refused_with_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Python linked with SQLite before 3.35 (Ubuntu 20.04 has 3.31) cannot run the
    savers' RETURNING: refused when the saver is made, naming the version found and the
    one needed, on a path (before any file is created) and on the caller's connection
    (the async saver opens its connection the same way).
    From 3.35 the savers run (3.35-3.37 are asked for the JSON functions once)."""
    from checkpoint_pg import ConfigError, SqliteSaver

    path = tmp_path / "old.db"
    conn = sqlite3.connect(str(tmp_path / "theirs.db"), check_same_thread=False)
    try:
        monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
        monkeypatch.setattr(sqlite3, "sqlite_version", "3.31.1")
        for make in (lambda: SqliteSaver(str(path)), lambda: SqliteSaver(conn)):
            with pytest.raises(ConfigError, match=r"SQLite 3\.31\.1, without RETURNING.*3\.35\.0 or later"):
                make()
        assert not path.exists()
        monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 36, 0))
        monkeypatch.setattr(sqlite3, "sqlite_version", "3.36.0")
        saver = SqliteSaver(conn)
        saver.setup()
        run_graph(saver)
    finally:
        conn.close()


async def test_sqlite3_connection_only_its_thread_may_use_says_how_to_open_it(
    tmp_path: Path,
) -> None:
    """sqlite3.connect(path) as is (check_same_thread=True): a graph run on SqliteSaver, which
    LangGraph writes from worker threads, fails with ConfigError naming check_same_thread=False
    (not sqlite3's ProgrammingError), while calls from the opening thread still work;
    AsyncSqliteSaver, whose every statement runs on its worker thread, refuses it when made."""
    from checkpoint_pg import AsyncSqliteSaver, ConfigError, SqliteSaver

    path = str(tmp_path / "same-thread.db")
    with SqliteSaver.from_conn_string(path) as admin:
        admin.setup()
    conn = sqlite3.connect(path)
    try:
        saver = SqliteSaver(conn)
        assert saver.get_tuple({"configurable": {"thread_id": "t"}}) is None  # this thread: fine
        with pytest.raises(ConfigError, match=r"check_same_thread=False"):
            run_graph(saver)
        assert not conn.in_transaction
        with pytest.raises(ConfigError, match=r"check_same_thread=False"):
            AsyncSqliteSaver(conn)
    finally:
        conn.close()


@pytest.mark.parametrize("whose", ["the caller's", "a saver's own"])
def test_savers_sharing_one_sqlite3_connection_take_turns(tmp_path: Path, whose: str) -> None:
    """Two savers on one connection (the caller's, or one saver's `conn` handed to
    another), from two threads, one of them failing over and over (its put builds on a
    version that is not stored, so it rolls back): every put the other returned from
    is stored. (Each took the other's BEGIN for the caller's transaction, joined it,
    and was rolled back with it.)"""
    from langgraph.checkpoint.base.id import uuid6

    from checkpoint_pg import CheckpointPgError, SqliteSaver

    path = str(tmp_path / "shared.db")
    if whose == "the caller's":
        conn = sqlite3.connect(path, check_same_thread=False)
        a = SqliteSaver(conn)
    else:
        owner = SqliteSaver.from_conn_string(path)  # kept: its exit closes the connection
        a = owner.__enter__()
        conn = a.conn
    b = SqliteSaver(conn)
    a.setup()

    def checkpoint(values: dict, versions: dict) -> dict:
        cp = empty_checkpoint()
        cp["id"] = str(uuid6(clock_seq=-2))
        cp["channel_values"], cp["channel_versions"] = values, versions
        return cp

    def failing() -> None:
        for i in range(150):
            version = f"{i + 1:010d}.00000000"
            # a list carried over from a version never stored (a scalar would be in the row)
            cp = checkpoint({"x": i, "old": [1]}, {"x": version, "old": "0000000001.deadbeef"})
            with pytest.raises(CheckpointPgError):
                a.put({"configurable": {"thread_id": "A", "checkpoint_ns": ""}}, cp, {"step": i}, {"x": version})

    returned: list[str] = []

    def good() -> None:
        config = {"configurable": {"thread_id": "B", "checkpoint_ns": ""}}
        for i in range(150):
            version = f"{i + 1:010d}.00000000"
            config = b.put(config, checkpoint({"x": i}, {"x": version}), {"step": i}, {"x": version})
            returned.append(config["configurable"]["checkpoint_id"])

    threads = [threading.Thread(target=failing), threading.Thread(target=good)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if whose == "the caller's":
        conn.close()
    else:
        owner.__exit__(None, None, None)
    with SqliteSaver.from_conn_string(path) as fresh:
        stored = [t.config["configurable"]["checkpoint_id"] for t in fresh.list({"configurable": {"thread_id": "B"}})]
    assert len(returned) == 150 and sorted(stored) == sorted(returned)


@pytest.mark.parametrize("where", ["file::memory:?cache=shared", ":memory:"])
def test_sqlite_saver_in_memory(where: str) -> None:
    """An in-memory database (plain or a shared-cache URI) has no WAL: the saver opens it
    as it is instead of waiting for a journal mode it can never switch to."""
    from checkpoint_pg import SqliteSaver

    with SqliteSaver.from_conn_string(where) as saver:
        saver.setup()
        config = run_graph(saver)
        assert saver.get_tuple(config) is not None


def test_sqlite_file_whose_vfs_cannot_take_wal_opens_in_its_own_mode(tmp_path: Path) -> None:
    """A VFS without shared memory refuses WAL without an error: the saver keeps the
    file's journal mode instead of asking again forever."""
    from checkpoint_pg import SqliteSaver

    with SqliteSaver.from_conn_string(f"file:{tmp_path}/nowal.db?vfs=unix-none") as saver:
        saver.setup()
        config = run_graph(saver)
        assert saver.get_tuple(config) is not None
        assert saver.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal"


def test_sqlite_file_in_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    from checkpoint_pg import ConfigError, SqliteSaver

    missing = tmp_path / "no" / "such" / "dir" / "x.db"
    with pytest.raises(ConfigError, match="no directory"):
        with SqliteSaver.from_conn_string(str(missing)):
            pass
    assert not (tmp_path / "no").exists()


def test_sqlite_path_naming_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    """A directory where the file should be raised sqlite3's bare "unable to open database
    file", outside our exception root."""
    from checkpoint_pg import ConfigError, SqliteSaver

    with pytest.raises(ConfigError, match="is a directory: give the SQLite file's path"):
        with SqliteSaver.from_conn_string(str(tmp_path)):
            pass


@pytest.mark.parametrize("journal", ["wal", "delete"])
@pytest.mark.parametrize(
    "file_mode, dir_mode, cannot",
    [
        (0o444, 0o555, "the SQLite file .* nor its directory"),
        (0o444, 0o777, "the SQLite file"),
        (0o666, 0o555, "the directory .* of the SQLite file"),
    ],
    ids=["ro-file-ro-dir", "ro-file-rw-dir", "rw-file-ro-dir"],
)
def test_sqlite_file_this_process_may_not_write_is_a_clear_error(
    journal: str, file_mode: int, dir_mode: int, cannot: str
) -> None:
    """A saver on a file it may not write, or in a directory it may not write (where SQLite
    keeps the -wal and -shm): ConfigError naming which, when the saver is created, not
    sqlite3's "attempt to write a readonly database" then or at the first write. The read-only
    connection it advises reads the file. Run as nobody when root, who ignores file modes."""
    import os
    import shutil
    import tempfile

    from checkpoint_pg import ConfigError, SqliteSaver
    from checkpoint_pg.sqlite import connect_sqlite

    folder = Path(tempfile.mkdtemp(prefix="cpg_ro_"))  # pytest's tmp root is 0700: nobody could not reach it
    path = folder / "app.db"
    try:
        with SqliteSaver.from_conn_string(str(path)) as saver:
            saver.setup()
            saver.conn.execute(f"PRAGMA journal_mode = {journal}")
        assert sorted(p.name for p in folder.iterdir()) == ["app.db"]
        path.chmod(file_mode)
        folder.chmod(dir_mode)
        root = os.geteuid() == 0
        if root:
            os.seteuid(65534)
        try:
            with pytest.raises(ConfigError, match=f"may not write {cannot}") as info:
                with SqliteSaver.from_conn_string(str(path)):
                    pass
            assert str(path) in str(info.value) and "read_only=True" in str(info.value)
            with contextlib.closing(connect_sqlite(str(path), read_only=True)) as conn:
                assert list(SqliteSaver(conn).list(None)) == []
        finally:
            if root:
                os.seteuid(0)
    finally:
        folder.chmod(0o755)
        path.chmod(0o644)
        shutil.rmtree(folder)


def test_sqlite_wal_shrinks_back_after_a_long_reader(tmp_path: Path) -> None:
    """Another process holding a read snapshot keeps the WAL from being reused, so it
    grows; once it lets go and a checkpoint runs, the saver's next write cuts the file
    back to WAL_SIZE_LIMIT instead of keeping its largest size while any connection
    stays open."""
    import os

    from checkpoint_pg import SqliteSaver
    from checkpoint_pg.sqlite import WAL_SIZE_LIMIT

    path = str(tmp_path / "wal.db")
    with SqliteSaver.from_conn_string(path) as saver:
        saver.setup()

        def put(i: int) -> None:
            cp = empty_checkpoint()
            version = saver.get_next_version(None, None)
            cp["channel_values"] = {"blob": os.urandom(200_000).hex()}
            cp["channel_versions"] = {"blob": version}
            saver.put({"configurable": {"thread_id": f"t{i}", "checkpoint_ns": ""}}, cp, {}, {"blob": version})

        reader = sqlite3.connect(path)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM cpg_checkpoints").fetchone()
        for i in range(40):
            put(i)
        assert os.path.getsize(f"{path}-wal") > 2 * WAL_SIZE_LIMIT
        reader.rollback()
        reader.close()

        def checkpointed() -> bool:
            # the saver's WAL thread may be checkpointing at the same moment: this one then
            # stops short (busy, or not every frame copied) and the next write appends to the
            # WAL instead of starting it over; the state under test is "a checkpoint ran"
            busy, frames, done = saver.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            return busy == 0 and frames == done

        wait_until(checkpointed, "a complete checkpoint of the WAL")
        put(99)
        assert os.path.getsize(f"{path}-wal") <= WAL_SIZE_LIMIT


def _wal_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "checkpoint-pg-wal"]


def _small_puts(saver: Any, n: int, tag: str) -> None:
    for i in range(n):
        cp = empty_checkpoint()
        version = saver.get_next_version(None, None)
        cp["channel_values"] = {"note": f"{tag} {i} " + "x" * 300}
        cp["channel_versions"] = {"note": version}
        saver.put({"configurable": {"thread_id": f"{tag}{i}", "checkpoint_ns": ""}}, cp, {}, {"note": version})


def test_sqlite_wal_is_checkpointed_off_the_writing_thread(tmp_path: Path) -> None:
    """A saver that opened its file copies its WAL back into the file on a thread of
    its own (sqlite_wal.py), so no caller's commit waits for it: the connection's own
    automatic checkpoint is left as a bound, at FALLBACK_PAGES. After many writes the
    thread has checkpointed, the WAL is under that bound, and every write reads back
    from another connection; closing the saver stops the thread."""
    import os
    import time

    from checkpoint_pg import SqliteSaver
    from checkpoint_pg.sqlite_wal import FALLBACK_PAGES

    path = str(tmp_path / "bg.db")
    before = len(_wal_threads())
    with SqliteSaver.from_conn_string(path) as saver:
        saver.setup()
        assert saver.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == FALLBACK_PAGES
        assert len(_wal_threads()) == before + 1
        _small_puts(saver, 1500, "t")
        deadline = time.monotonic() + 30  # ended as soon as it checkpointed
        while saver._wal.checkpoints == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert saver._wal.checkpoints > 0
        page = saver.conn.execute("PRAGMA page_size").fetchone()[0]
        assert os.path.getsize(f"{path}-wal") <= (FALLBACK_PAGES + 64) * (page + 24)
        other = sqlite3.connect(path)
        assert other.execute("SELECT count(*) FROM cpg_checkpoints").fetchone()[0] == 1500
        other.close()
    assert len(_wal_threads()) == before
    with SqliteSaver.from_conn_string(path) as again:
        assert again.get_tuple({"configurable": {"thread_id": "t1499"}}) is not None


def test_sqlite_wal_thread_checkpoints_what_a_pause_in_the_writes_left(tmp_path: Path) -> None:
    """Fewer commits than a batch are checkpointed once the writes pause (IDLE): the WAL
    then holds nothing the file lacks (a PASSIVE checkpoint finds every frame copied)."""
    import time

    from checkpoint_pg import SqliteSaver
    from checkpoint_pg.sqlite_wal import WalCheckpointer

    with SqliteSaver.from_conn_string(str(tmp_path / "idle.db")) as saver:
        saver.setup()
        _small_puts(saver, 3, "i")  # fewer commits than a batch
        deadline = time.monotonic() + 30 * WalCheckpointer.IDLE  # ended as soon as it checkpointed
        while saver._wal.checkpoints == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert saver._wal.checkpoints >= 1
        _busy, log, copied = saver.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert log == copied


def test_sqlite_wal_thread_is_only_for_files_the_saver_opened(tmp_path: Path) -> None:
    """A connection the caller gives keeps SQLite's own checkpoints (and its setting);
    a saver dropped without close() stops its thread when it is collected."""
    import gc
    import time

    from checkpoint_pg import SqliteSaver

    path = str(tmp_path / "given.db")
    conn = sqlite3.connect(path, check_same_thread=False)
    before = len(_wal_threads())
    saver = SqliteSaver(conn)
    saver.setup()
    assert saver._wal is None and len(_wal_threads()) == before
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    conn.close()
    dropped = SqliteSaver(str(tmp_path / "dropped.db"))
    dropped.setup()
    _small_puts(dropped, 3, "d")
    assert len(_wal_threads()) == before + 1
    del dropped
    gc.collect()
    # the thread ends once it wakes up and sees the stop: a deadline, not a bound
    deadline = time.monotonic() + 30
    while len(_wal_threads()) > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(_wal_threads()) == before


async def test_async_sqlite_saver_stops_its_wal_thread_on_close(tmp_path: Path) -> None:
    from checkpoint_pg import AsyncSqliteSaver

    before = len(_wal_threads())
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "a.db")) as saver:
        await saver.asetup()
        assert len(_wal_threads()) == before + 1
    assert len(_wal_threads()) == before


@pytest.mark.parametrize("form", ["path", "url"])
def test_sqlite_saver_from_a_path_or_url(tmp_path: Path, form: str) -> None:
    """``from_conn_string`` takes a plain path and ``sqlite:///path``; the file is in WAL mode."""
    from checkpoint_pg import SqliteSaver

    path = str(tmp_path / f"{form}.db")
    target = path if form == "path" else f"sqlite:///{path}"
    with SqliteSaver.from_conn_string(target) as saver:
        saver.setup()
        config = run_graph(saver)
    assert Path(path).exists()
    assert sqlite_checkpoints(path, config) == 5
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    # the saver's own connection: durable per process crash
    with SqliteSaver.from_conn_string(target) as saver:
        assert saver.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    # the same file opened again through the other spelling reads the same thread
    other = f"sqlite:///{path}" if form == "path" else path
    with SqliteSaver.from_conn_string(other) as saver:
        check_graph_run(build_tool_agent(saver).get_state(config).values)


async def test_async_sqlite_saver_on_a_path(tmp_path: Path) -> None:
    """AsyncSqliteSaver.from_conn_string on a path runs ainvoke."""
    from checkpoint_pg import AsyncSqliteSaver

    path = str(tmp_path / "async.db")
    async with AsyncSqliteSaver.from_conn_string(path) as saver:
        await saver.asetup()
        config = await arun_graph(saver)
    assert sqlite_checkpoints(path, config) == 5


# --------------------------------------------------------------------------
# PgBouncer, transaction mode
# --------------------------------------------------------------------------


def _advisory_locks(pg_url: str) -> list[tuple]:
    import psycopg

    from checkpoint_pg.migrate import ADVISORY_LOCK_KEY

    with psycopg.connect(pg_url, autocommit=True) as conn:
        return conn.execute(
            # this run's database only: another test run on the server may be migrating
            "SELECT pid, granted FROM pg_locks WHERE locktype = 'advisory' AND objid = %s "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [ADVISORY_LOCK_KEY & 0xFFFFFFFF],
        ).fetchall()


def test_postgres_saver_through_pgbouncer(pgbouncer_url: str, pg_url: str) -> None:
    """PostgresSaver through transaction-mode PgBouncer: setup, a graph, and concurrent threads.

    setup() leaves no advisory lock behind on a pooled server connection (which
    would block every later setup() in transaction pooling).
    """
    from checkpoint_pg import PostgresSaver

    pfx = prefix()
    with PostgresSaver.from_conn_string(pgbouncer_url, prefix=pfx, pool_size=4) as saver:
        saver.setup()
        saver.setup()
        assert _advisory_locks(pg_url) == []
        config = run_graph(saver)
        errors: list[BaseException] = []
        configs: list[RunnableConfig] = []

        def worker() -> None:
            try:
                configs.append(run_graph(saver))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        assert len(configs) == 4
    assert pg_checkpoints(pg_url, pfx, config) == 5
    assert all(pg_checkpoints(pg_url, pfx, c) == 5 for c in configs)
    # a second saver (another process would do the same) sets up again through the pooler
    with PostgresSaver.from_conn_string(pgbouncer_url, prefix=pfx) as again:
        again.setup()
        check_graph_run(build_tool_agent(again).get_state(config).values)
    assert _advisory_locks(pg_url) == []


async def test_async_postgres_saver_through_pgbouncer(pgbouncer_url: str, pg_url: str) -> None:
    """AsyncPostgresSaver through transaction-mode PgBouncer, including concurrent runs."""
    from checkpoint_pg import AsyncPostgresSaver

    pfx = prefix()
    async with AsyncPostgresSaver.from_conn_string(pgbouncer_url, prefix=pfx) as saver:
        await saver.asetup()
        await saver.asetup()
        configs = await asyncio.gather(*(arun_graph(saver) for _ in range(4)))
    assert _advisory_locks(pg_url) == []
    assert [pg_checkpoints(pg_url, pfx, c) for c in configs] == [5, 5, 5, 5]


# --------------------------------------------------------------------------
# An async saver's sync methods
# --------------------------------------------------------------------------


async def test_async_saver_sync_methods_work_from_another_thread(async_saver: Any) -> None:
    """get_tuple / list / put_writes / get_next_version of an async saver work from a worker thread."""
    config = await arun_graph(async_saver)
    expected = await async_saver.aget_tuple(config)
    got = await asyncio.to_thread(async_saver.get_tuple, config)
    assert got is not None and expected is not None
    assert got.checkpoint == expected.checkpoint
    assert got.config == expected.config
    listed = await asyncio.to_thread(lambda: list(async_saver.list(config)))
    assert [t.config for t in listed] == [t.config async for t in async_saver.alist(config)]
    assert len(listed) == 5

    # a sync graph run on the async saver, from a thread
    def sync_run() -> RunnableConfig:
        return run_graph(async_saver)

    other = await asyncio.to_thread(sync_run)
    check_graph_run((await build_tool_agent(async_saver).aget_state(other)).values)


@pytest.mark.parametrize(
    ("method", "call"),
    [
        ("get_tuple", lambda s, c: s.get_tuple(c)),
        ("list", lambda s, c: list(s.list(c))),
        ("put_writes", lambda s, c: s.put_writes(c, [("x", 1)], "task")),
        ("delete_thread", lambda s, c: s.delete_thread(c["configurable"]["thread_id"])),
    ],
)
async def test_async_saver_sync_method_on_its_loop_raises(
    async_saver: Any, method: str, call: Any
) -> None:
    """A sync method called on the saver's own event loop raises AsyncMisuseError naming a<method>."""
    from checkpoint_pg import AsyncMisuseError

    config = await arun_graph(async_saver)
    tup = await async_saver.aget_tuple(config)
    with pytest.raises(AsyncMisuseError) as info:
        call(async_saver, tup.config)
    assert f"a{method}" in str(info.value)
    # nothing was done, and the saver still works
    after = await async_saver.aget_tuple(config)
    assert after is not None and after.checkpoint == tup.checkpoint
    assert after.pending_writes == tup.pending_writes


# --------------------------------------------------------------------------
# Round trips per call (issue 6)
# --------------------------------------------------------------------------


class RoundTrips:
    """Counts client/server round trips of psycopg connections, in this thread.

    Instruments the real driver (psycopg's own methods, not the database):
    outside pipeline mode, every ``Connection.wait`` whose generator has to
    wait for the server socket is one exchange (an execute, a BEGIN, a
    COMMIT...); in pipeline mode a ``Pipeline.sync`` or the pipeline's exit is
    one, and the waits inside the pipeline only queue.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import psycopg

        self.count = 0
        self.statements: list[str] = []
        self._quiet = threading.local()
        self._thread = threading.get_ident()
        rt = self

        def mine() -> bool:
            return threading.get_ident() == rt._thread and not getattr(rt._quiet, "n", 0)

        def watched(gen: Any) -> Any:
            # Drives psycopg's generator unchanged; a generator that has to wait
            # for the socket at least once did an exchange with the server (one
            # that returns at once, like COMMIT on an idle connection, did not).
            def exchanged() -> None:
                rt.count += 1

            return after_first_yield(gen, exchanged)

        def wrap_wait(orig: Any) -> Any:
            def wait(self: Any, gen: Any, *args: Any, **kwargs: Any) -> Any:
                if mine() and not self._pipeline:
                    gen = watched(gen)
                return orig(self, gen, *args, **kwargs)

            return wait

        def wrap_await(orig: Any) -> Any:
            async def wait(self: Any, gen: Any, *args: Any, **kwargs: Any) -> Any:
                if mine() and not self._pipeline:
                    gen = watched(gen)
                return await orig(self, gen, *args, **kwargs)

            return wait

        def counted(orig: Any, counts: bool) -> Any:
            def method(self: Any, *args: Any, **kwargs: Any) -> Any:
                if counts and mine():
                    rt.count += 1
                rt._quiet.n = getattr(rt._quiet, "n", 0) + 1
                try:
                    return orig(self, *args, **kwargs)
                finally:
                    rt._quiet.n -= 1

            return method

        def acounted(orig: Any, counts: bool) -> Any:
            async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
                if counts and mine():
                    rt.count += 1
                rt._quiet.n = getattr(rt._quiet, "n", 0) + 1
                try:
                    return await orig(self, *args, **kwargs)
                finally:
                    rt._quiet.n -= 1

            return method

        def wrap_execute(orig: Any) -> Any:
            def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
                if threading.get_ident() == rt._thread:
                    rt.statements.append(str(query)[:80])
                return orig(self, query, *args, **kwargs)

            return execute

        def wrap_aexecute(orig: Any) -> Any:
            async def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
                if threading.get_ident() == rt._thread:
                    rt.statements.append(str(query)[:80])
                return await orig(self, query, *args, **kwargs)

            return execute

        mp = monkeypatch
        mp.setattr(psycopg.Connection, "wait", wrap_wait(psycopg.Connection.wait))
        mp.setattr(psycopg.AsyncConnection, "wait", wrap_await(psycopg.AsyncConnection.wait))
        mp.setattr(psycopg.Pipeline, "sync", counted(psycopg.Pipeline.sync, True))
        mp.setattr(psycopg.Pipeline, "__enter__", counted(psycopg.Pipeline.__enter__, False))
        mp.setattr(psycopg.Pipeline, "__exit__", counted(psycopg.Pipeline.__exit__, True))
        mp.setattr(psycopg.AsyncPipeline, "sync", acounted(psycopg.AsyncPipeline.sync, True))
        mp.setattr(
            psycopg.AsyncPipeline, "__aenter__", acounted(psycopg.AsyncPipeline.__aenter__, False)
        )
        mp.setattr(
            psycopg.AsyncPipeline, "__aexit__", acounted(psycopg.AsyncPipeline.__aexit__, True)
        )
        mp.setattr(psycopg.Cursor, "execute", wrap_execute(psycopg.Cursor.execute))
        mp.setattr(psycopg.AsyncCursor, "execute", wrap_aexecute(psycopg.AsyncCursor.execute))

    @contextlib.contextmanager
    def measure(self) -> Iterator[RoundTrips]:
        self.count = 0
        self.statements = []
        yield self


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    return RoundTrips(monkeypatch)


def _checkpoint(saver: Any, parent: dict[str, Any] | None, messages: list[Any]) -> tuple[Any, dict]:
    cp = empty_checkpoint()
    old = dict(parent or {})
    ver = saver.get_next_version(old.get("messages"), None)
    cp["channel_values"] = {"messages": messages, "step_note": f"n{len(messages)}"}
    cp["channel_versions"] = {"messages": ver, "step_note": ver}
    return cp, {"messages": ver, "step_note": ver}


def test_round_trip_counter_counts_the_driver(pg_url: str, round_trips: RoundTrips) -> None:
    """Self-test of the instrumentation: a statement is 1, BEGIN + statement + COMMIT is 3,
    a COMMIT with no transaction open is 0, a pipeline sync is 1."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        with round_trips.measure() as m:
            conn.execute("SELECT 1")
        assert m.count == 1
        with round_trips.measure() as m, conn.transaction():
            conn.execute("SELECT 1")
        assert m.count == 3
        with round_trips.measure() as m:
            conn.commit()
        assert m.count == 0
        with round_trips.measure() as m, conn.pipeline() as p:
            conn.execute("SELECT 1")
            conn.execute("SELECT 2")
            p.sync()
        assert m.count == 2  # the sync, and the exit's final sync


def test_postgres_saver_round_trips_per_call(pg_url: str, round_trips: RoundTrips) -> None:
    """put, put_writes (regular or special writes) and get_tuple each make one round trip.

    The first call of a saver also checks the schema revision (one more).
    """
    from checkpoint_pg import PostgresSaver

    with PostgresSaver.from_conn_string(pg_url, prefix=prefix()) as saver:
        saver.setup()
        config: RunnableConfig = {"configurable": {"thread_id": "rt", "checkpoint_ns": ""}}
        with round_trips.measure() as m:
            assert saver.get_tuple(config) is None
        assert m.count <= 2, m.statements  # revision check + the read
        msgs: list[Any] = [HumanMessage("hello", id="h1")]
        parent_versions = None
        for i in range(4):
            msgs = msgs + [AIMessage(f"reply {i}", id=f"a{i}")]
            cp, new_versions = _checkpoint(saver, parent_versions, msgs)
            parent_versions = new_versions
            with round_trips.measure() as m:
                config = saver.put(config, cp, {"source": "loop", "step": i}, new_versions)
            assert m.count == 1, (i, m.statements)
            with round_trips.measure() as m:
                saver.put_writes(
                    config,
                    [("messages", [ToolMessage("t", tool_call_id=f"c{i}", id=f"t{i}")]), ("n", i)],
                    f"task-{i}",
                    "~__pregel_pull, tools",
                )
            assert m.count == 1, (i, m.statements)
            with round_trips.measure() as m:
                saver.put_writes(config, [("__interrupt__", {"ask": i})], f"itask-{i}")
            assert m.count == 1, (i, m.statements)
            with round_trips.measure() as m:
                tup = saver.get_tuple(config)
            assert m.count == 1, (i, m.statements)
            assert tup.checkpoint["channel_values"]["messages"] == msgs
            assert len(tup.pending_writes) == 3
            with round_trips.measure() as m:
                latest = saver.get_tuple({"configurable": {"thread_id": "rt", "checkpoint_ns": ""}})
            assert m.count == 1, m.statements
            assert latest.config == config


@pytest.mark.parametrize("kind", ["messages", "dicts", "tuples"])
def test_postgres_get_tuple_of_a_long_list_is_one_round_trip(
    pg_url: str, round_trips: RoundTrips, kind: str
) -> None:
    """After a put of a list of 100 elements (a chunk and 36 hashes, core/chunks.py),
    get_tuple in the same process is still one round trip, whatever the elements:
    the chunk's elements the process holds as live objects (messages) are not read,
    and the others (dicts, tuples: decoded afresh) come with the chunk. A saver that
    holds nothing of the thread reads it in one round trip too, by id or latest."""
    from checkpoint_pg import PostgresSaver

    pfx = prefix()
    with PostgresSaver.from_conn_string(pg_url, prefix=pfx) as saver:
        saver.setup()
        if kind == "messages":
            items: list[Any] = [HumanMessage(f"m{i}", id=f"m{i}") for i in range(100)]
        elif kind == "dicts":
            items = [{"doc": i} for i in range(100)]
        else:
            items = [("user", f"t{i}") for i in range(100)]
        cp = empty_checkpoint()
        ver = saver.get_next_version(None, None)
        cp["channel_values"] = {"items": items}
        cp["channel_versions"] = {"items": ver}
        config: RunnableConfig = {"configurable": {"thread_id": f"long-{kind}", "checkpoint_ns": ""}}
        config = saver.put(config, cp, {"source": "loop", "step": 0}, {"items": ver})
        with round_trips.measure() as m:
            tup = saver.get_tuple(config)
        assert m.count == 1, m.statements
        read = [list(x) if type(x) is tuple else x for x in items]  # msgpack: tuples as lists
        assert tup.checkpoint["channel_values"]["items"] == read
        with round_trips.measure() as m:
            (listed,) = saver.list({"configurable": {"thread_id": f"long-{kind}"}})
        assert m.count == 1, m.statements
        assert listed.checkpoint["channel_values"]["items"] == read
    # a process holding nothing of the thread (another worker, a restart): one too
    for at in (config, {"configurable": {"thread_id": f"long-{kind}", "checkpoint_ns": ""}}):
        with PostgresSaver.from_conn_string(pg_url, prefix=pfx) as cold:
            cold.get_tuple({"configurable": {"thread_id": "other", "checkpoint_ns": ""}})  # revision check
            with round_trips.measure() as m:
                tup = cold.get_tuple(at)
            assert m.count == 1, m.statements
            assert tup.checkpoint["channel_values"]["items"] == read


async def test_async_postgres_saver_round_trips_per_call(pg_url: str, round_trips: RoundTrips) -> None:
    """aput, aput_writes and aget_tuple each make one round trip."""
    from checkpoint_pg import AsyncPostgresSaver

    async with AsyncPostgresSaver.from_conn_string(pg_url, prefix=prefix()) as saver:
        await saver.asetup()
        config: RunnableConfig = {"configurable": {"thread_id": "art", "checkpoint_ns": ""}}
        with round_trips.measure() as m:
            assert await saver.aget_tuple(config) is None
        assert m.count <= 2, m.statements
        msgs: list[Any] = [HumanMessage("hello", id="h1")]
        parent_versions = None
        for i in range(3):
            msgs = msgs + [AIMessage(f"reply {i}", id=f"a{i}")]
            cp, new_versions = _checkpoint(saver, parent_versions, msgs)
            parent_versions = new_versions
            with round_trips.measure() as m:
                config = await saver.aput(config, cp, {"source": "loop", "step": i}, new_versions)
            assert m.count == 1, (i, m.statements)
            with round_trips.measure() as m:
                await saver.aput_writes(config, [("messages", [AIMessage("w", id=f"w{i}")])], f"t{i}")
            assert m.count == 1, (i, m.statements)
            with round_trips.measure() as m:
                tup = await saver.aget_tuple(config)
            assert m.count == 1, (i, m.statements)
            assert tup.checkpoint["channel_values"]["messages"] == msgs


def _fill_listing_thread(saver: Any) -> dict[str, RunnableConfig]:
    """Thread "lt": 130 root checkpoints with a growing message list, 3 in a subgraph."""
    configs: dict[str, RunnableConfig] = {}
    for ns, n in (("", 130), ("child:1", 3)):
        config: RunnableConfig = {"configurable": {"thread_id": "lt", "checkpoint_ns": ns}}
        msgs: list[Any] = [HumanMessage("hello", id=f"h{ns}")]
        versions = None
        for i in range(n):
            msgs = msgs + [AIMessage(f"reply {i}", id=f"a{ns}{i}")]
            cp, versions = _checkpoint(saver, versions, msgs)
            md = {"source": "loop", "step": i, "even": i % 2 == 0}
            config = saver.put(config, cp, md, versions)
            saver.put_writes(config, [("n", i), ("messages", [msgs[-1]])], f"task-{i}")
        configs[ns] = {"configurable": {"thread_id": "lt", "checkpoint_ns": ns}}
    return configs


def _check_thread_listing(saver: Any, listed: Any) -> list[Any]:
    """``listed(config, pages, **kw)`` lists and checks the cost of ``pages`` pages.

    The saver that wrote the thread holds its messages (ListCache) and lists
    them without reading them again; the caller lists the returned root
    history from a second saver, which reads everything."""
    configs = _fill_listing_thread(saver)
    root = listed(configs[""], 2)
    assert [t.metadata["step"] for t in root] == list(range(129, -1, -1))
    for tup in root:
        assert tup == saver.get_tuple(tup.config)
        assert len(tup.checkpoint["channel_values"]["messages"]) == tup.metadata["step"] + 2
    assert listed(configs[""], 2, before=root[10].config) == root[11:]
    assert listed(configs[""], 1, limit=7) == root[:7]
    evens = listed(configs[""], 1, filter={"even": True}, limit=5)
    assert evens == [t for t in root if t.metadata["even"]][:5]
    whole: RunnableConfig = {"configurable": {"thread_id": "lt"}}
    everything = listed(whole, 2)
    assert len(everything) == 133
    keys = [(t.config["configurable"]["checkpoint_id"], t.config["configurable"]["checkpoint_ns"]) for t in everything]
    assert keys == sorted(keys, reverse=True)
    assert [t for t in everything if t.config["configurable"]["checkpoint_ns"] == ""] == root
    cut = everything[40].config["configurable"]["checkpoint_id"]
    older = [t for t in everything if t.config["configurable"]["checkpoint_id"] < cut]
    assert listed(whole, 1, before=everything[40].config) == older
    odd = listed(whole, 1, filter={"even": False}, limit=70)
    assert odd == [t for t in everything if not t.metadata["even"]][:70]
    child = listed(configs["child:1"], 1)
    assert [t.metadata["step"] for t in child] == [2, 1, 0]
    assert child == [t for t in everything if t.config["configurable"]["checkpoint_ns"] == "child:1"]
    return root


def test_postgres_thread_listing_reads_a_page_in_one_round_trip(
    pg_url: str, round_trips: RoundTrips
) -> None:
    """list(config) of one thread reads each page (up to 100 checkpoints) with one
    call of the list_thread function, with or without a namespace, ``before``, a
    filter or a limit. Every listed tuple equals what get_tuple reads for it, on
    both sides of the page cut (where list deltas continue), and the objects a
    listing already has are not sent again."""
    import psycopg

    from checkpoint_pg import PostgresSaver

    with PostgresSaver.from_conn_string(pg_url, prefix=prefix()) as saver:
        saver.setup()

        def listed(config: RunnableConfig, pages: int, **kw: Any) -> list[Any]:
            with round_trips.measure() as m:
                out = list(saver.list(config, **kw))
            assert m.count == pages, (kw, m.statements)
            return out

        root = _check_thread_listing(saver, listed)
        call = (
            f"SELECT o_h FROM {saver.ctx.sql.fn.list_thread}"
            "('lt', '', NULL, NULL, NULL, NULL, 200, %s) WHERE o_tag = 3"
        )
        with PostgresSaver.from_conn_string(pg_url, prefix=saver.tables.prefix) as cold:
            with round_trips.measure() as m:
                again = list(cold.list({"configurable": {"thread_id": "lt", "checkpoint_ns": ""}}))
            assert again == root
            assert m.count == 3, m.statements  # the revision check, then one per page
    with psycopg.connect(pg_url) as conn:
        hashes = [bytes(h) for (h,) in conn.execute(call, (b"",)).fetchall()]
        (chunks,) = conn.execute(
            f"SELECT count(*) FROM {saver.tables.prefix}objects WHERE thread_id = 'lt' AND type = '#refs'"
        ).fetchone()
        # hello, 130 replies (each in a write and in the list: one object), 130 ints
        # written, and the chunks of the lists' hashes (core/chunks.py); the short notes
        # live in the checkpoint rows (revision 0014)
        assert chunks > 0
        assert len(hashes) == len(set(hashes)) == 1 + 2 * 130 + chunks
        assert conn.execute(call, (b"".join(hashes[:100]),)).fetchall() == [(h,) for h in hashes[100:]]


def test_sqlite_thread_listing_reads_a_page_in_two_statements(tmp_path: Path) -> None:
    """On SQLite a page of one thread is one statement for the checkpoints, their
    values and writes, and one for the list elements not read yet, in one read
    transaction; the same listings as on Postgres return the same tuples as get_tuple."""
    from checkpoint_pg import SqliteSaver

    with SqliteSaver.from_conn_string(str(tmp_path / "list.sqlite")) as saver:
        saver.setup()
        seen: list[str] = []

        def listed(config: RunnableConfig, pages: int, **kw: Any) -> list[Any]:
            seen.clear()
            saver.conn.set_trace_callback(seen.append)
            try:
                out = list(saver.list(config, **kw))
            finally:
                saver.conn.set_trace_callback(None)
            reads = [q for q in seen if q not in ("BEGIN", "COMMIT")]
            assert seen.count("BEGIN") == seen.count("COMMIT") == pages, seen
            assert len(reads) <= 2 * pages, [q[:80] for q in reads]
            return out

        root = _check_thread_listing(saver, listed)
    with SqliteSaver.from_conn_string(str(tmp_path / "list.sqlite")) as cold:
        assert list(cold.list({"configurable": {"thread_id": "lt", "checkpoint_ns": ""}})) == root


def test_sqlite_get_tuple_reads_in_one_statement(tmp_path: Path) -> None:
    """SQLite: a get_tuple that follows the run's own put/put_writes is one SELECT
    (scalar values and one-element writes come with it); a saver with nothing
    cached reads the list elements in a second statement, with the same result."""
    from checkpoint_pg import SqliteSaver

    path = str(tmp_path / "stmts.db")
    statements: list[str] = []
    with SqliteSaver.from_conn_string(path) as saver:
        saver.setup()
        config: RunnableConfig = {"configurable": {"thread_id": "st", "checkpoint_ns": ""}}
        msgs: list[Any] = [HumanMessage("hello", id="h1")]
        parent_versions = None
        saver.conn.set_trace_callback(statements.append)
        for i in range(3):
            msgs = msgs + [AIMessage(f"reply {i}", id=f"a{i}")]
            cp, parent_versions = _checkpoint(saver, parent_versions, msgs)
            config = saver.put(config, cp, {"source": "loop", "step": i}, parent_versions)
            saver.put_writes(
                config,
                [("messages", [ToolMessage("t", tool_call_id=f"c{i}", id=f"t{i}")]), ("n", i)],
                f"task-{i}",
            )
            statements.clear()
            tup = saver.get_tuple(config)
            reads = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]
            assert len(reads) == 1, reads
            assert tup.checkpoint["channel_values"] == {"messages": msgs, "step_note": f"n{len(msgs)}"}
            assert [(w[1], w[2]) for w in tup.pending_writes] == [
                ("messages", [ToolMessage("t", tool_call_id=f"c{i}", id=f"t{i}")]),
                ("n", i),
            ]
        saver.conn.set_trace_callback(None)
    with SqliteSaver.from_conn_string(path) as cold:
        cold.conn.set_trace_callback(statements.append)
        statements.clear()
        again = cold.get_tuple(config)
        reads = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]
        assert again is not None and again.checkpoint == tup.checkpoint
        assert again.pending_writes == tup.pending_writes
        assert 1 <= len(reads) <= 3, reads  # revision check, the read, the list elements


def test_sqlite_writes_read_the_lease_with_their_first_statement(tmp_path: Path) -> None:
    """SQLite: a put reads the thread's lease back from its thread-row upsert, and a
    put_writes inserts its writes on the condition that the lease allows them: no
    lease read, and no UPDATE of a row the put wrote just now. A write a second
    later still marks the thread active, as prune(updated_before=) needs."""
    import time

    from checkpoint_pg import SqliteSaver

    statements: list[str] = []
    with SqliteSaver.from_conn_string(str(tmp_path / "w.db")) as saver:
        saver.setup()
        config: RunnableConfig = {"configurable": {"thread_id": "w", "checkpoint_ns": ""}}
        msgs: list[Any] = [HumanMessage("hello", id="h1")]
        cp, versions = _checkpoint(saver, None, msgs)
        assert saver.get_tuple(config) is None  # the schema check is behind us
        saver.conn.set_trace_callback(statements.append)
        config = saver.put(config, cp, {"source": "input", "step": -1}, versions)
        put = [s.split()[0].upper() for s in statements if s not in ("BEGIN IMMEDIATE", "COMMIT")]
        assert "SELECT" not in put and put[0] == "INSERT", statements
        assert "cpg_threads" in statements[1] and "RETURNING" in statements[1], statements
        statements.clear()
        saver.put_writes(config, [("messages", [AIMessage("hi", id="a1")]), ("n", 1)], "task-1")
        writes = [s.split()[0].upper() for s in statements if s not in ("BEGIN IMMEDIATE", "COMMIT")]
        assert writes == ["INSERT"] * len(writes), statements  # objects and writes only
        assert any("lease_owner" in s and "cpg_writes" in s for s in statements), statements
        saver.conn.set_trace_callback(None)
        (before,) = saver.conn.execute("SELECT updated_at FROM cpg_threads").fetchone()
        time.sleep(1.1)
        saver.put_writes(config, [("n", 2)], "task-2")
        (after,) = saver.conn.execute("SELECT updated_at FROM cpg_threads").fetchone()
        assert after > before


def _growing_thread(saver: Any, steps: int) -> Iterator[tuple[int, RunnableConfig, Any, dict]]:
    """Checkpoints of one thread: ``messages`` grows each step, ``static`` is carried over."""
    config: RunnableConfig = {"configurable": {"thread_id": "grow", "checkpoint_ns": ""}}
    msgs: list[Any] = []
    static_ver = saver.get_next_version(None, None)
    ver = None
    for i in range(steps):
        msgs = msgs + [AIMessage(f"m{i}", id=f"m{i}")]
        ver = saver.get_next_version(ver, None)
        cp = empty_checkpoint()
        cp["channel_values"] = {"messages": msgs, "static": "s"}
        cp["channel_versions"] = {"messages": ver, "static": static_ver}
        new_versions = {"messages": ver, **({"static": static_ver} if i == 0 else {})}
        config = yield i, config, cp, new_versions


def test_postgres_put_reads_do_not_grow_with_the_thread(pg_url: str) -> None:
    """A put checks the versions it carries over by primary key: the index entries
    of the values table it reads stay the same at step 5 and at step 150 (the
    function's cached plan once scanned every value of the thread)."""
    import psycopg

    from checkpoint_pg import PostgresSaver

    p = prefix()
    with PostgresSaver.from_conn_string(pg_url, prefix=p) as admin:
        admin.setup()
    reads: dict[int, int] = {}
    with psycopg.connect(pg_url) as conn:  # not autocommit: the test holds the transaction
        saver = PostgresSaver(conn, prefix=p)
        # first call, outside the test's transactions: the saver checks the schema revision
        assert saver.get_tuple({"configurable": {"thread_id": "grow", "checkpoint_ns": ""}}) is None
        # index entries read in this transaction (pg_stat_user_indexes.idx_tup_read)
        counter = "SELECT pg_stat_get_xact_tuples_returned(%s::regclass)"
        gen = _growing_thread(saver, 151)
        step, config, cp, new_versions = next(gen)
        while True:
            with conn.transaction():
                before = conn.execute(counter, (f"{p}channel_values_pkey",)).fetchone()[0]
                config = saver.put(config, cp, {"source": "loop", "step": step}, new_versions)
                reads[step] = conn.execute(counter, (f"{p}channel_values_pkey",)).fetchone()[0] - before
            try:
                step, config, cp, new_versions = gen.send(config)
            except StopIteration:
                break
    with PostgresSaver.from_conn_string(pg_url, prefix=p) as reader:
        assert reader.get_tuple(config).checkpoint["channel_values"]["static"] == "s"
    assert reads[150] <= reads[5] + 2, reads


def test_postgres_thread_page_reads_do_not_grow_with_the_thread(pg_url: str) -> None:
    """A page of 5 read from a thread of 20 checkpoints and from one of 300 reads about
    as many checkpoint and write index entries: list_thread walks the primary key
    from the newest checkpoint (or from ``before``) and stops at the page, whatever
    plan the function has cached by then. (The values a page reads grow with the
    lists it holds, not with the number of checkpoints.)"""
    import psycopg

    from checkpoint_pg import PostgresSaver

    p = prefix()
    with PostgresSaver.from_conn_string(pg_url, prefix=p) as admin:
        admin.setup()
    indexes = (f"{p}checkpoints_pkey", f"{p}writes_pkey")
    counter = "SELECT sum(pg_stat_get_xact_tuples_returned(i::regclass)) FROM unnest(%s::text[]) AS i"
    root: RunnableConfig = {"configurable": {"thread_id": "grow", "checkpoint_ns": ""}}
    reads: dict[int, int] = {}
    with psycopg.connect(pg_url) as conn:  # not autocommit: the test holds the transactions
        saver = PostgresSaver(conn, prefix=p)
        assert saver.get_tuple(root) is None  # the revision check, outside the measures
        configs: list[RunnableConfig] = []
        gen = _growing_thread(saver, 300)
        step, config, cp, new_versions = next(gen)
        while True:
            with conn.transaction():
                config = saver.put(config, cp, {"source": "loop", "step": step}, new_versions)
            configs.append(config)
            if step + 1 in (20, 300):
                for _ in range(8):  # past the calls after which the server may cache a generic plan
                    with conn.transaction():
                        list(saver.list(root, limit=5))
                with conn.transaction():
                    before = conn.execute(counter, (list(indexes),)).fetchone()[0]
                    newest = list(saver.list(root, limit=5))
                    older = list(saver.list(root, before=configs[-10], limit=5))
                    reads[step + 1] = conn.execute(counter, (list(indexes),)).fetchone()[0] - before
                assert [t.metadata["step"] for t in newest] == list(range(step, step - 5, -1))
                assert [t.metadata["step"] for t in older] == list(range(step - 10, step - 15, -1))
            try:
                step, config, cp, new_versions = gen.send(config)
            except StopIteration:
                break
    assert reads[300] <= reads[20] + 2, reads


def test_sqlite_put_work_does_not_grow_with_the_thread(tmp_path: Path) -> None:
    """SQLite: a put at step 150 runs about as many VM instructions as one at step 5
    (the completeness check once scanned every value of the thread)."""
    from checkpoint_pg import SqliteSaver

    ops: dict[int, int] = {}
    with SqliteSaver.from_conn_string(str(tmp_path / "grow.db")) as saver:
        saver.setup()
        count = [0]

        def tick() -> int:
            count[0] += 1
            return 0

        gen = _growing_thread(saver, 151)
        step, config, cp, new_versions = next(gen)
        while True:
            saver.conn.set_progress_handler(tick, 1)
            count[0] = 0
            config = saver.put(config, cp, {"source": "loop", "step": step}, new_versions)
            saver.conn.set_progress_handler(None, 1)
            ops[step] = count[0]
            try:
                step, config, cp, new_versions = gen.send(config)
            except StopIteration:
                break
        assert saver.get_tuple(config).checkpoint["channel_values"]["static"] == "s"
    assert ops[150] <= ops[5] * 1.3, ops


def test_postgres_listing_across_threads_walks_the_index_whatever_the_estimate(pg_url: str) -> None:
    """list(None, filter=..., limit=N) walks recent_idx newest first and stops at N,
    even when the planner would rather sort the table: its guess of a metadata
    filter's selectivity comes from ANALYZE samples. Here random_page_cost makes
    index scans look dear; the saver's statements still walk the index."""
    import psycopg

    from checkpoint_pg import PostgresSaver

    p = prefix()
    with PostgresSaver.from_conn_string(pg_url, prefix=p) as saver:
        saver.setup()
        for i in range(30):
            cfg: RunnableConfig = {"configurable": {"thread_id": f"l{i}", "checkpoint_ns": ""}}
            cp, versions = _checkpoint(saver, None, [HumanMessage(f"m{i}", id=f"m{i}")])
            saver.put(cfg, cp, {"source": "loop", "step": 1, "user": f"u{i % 3}"}, versions)
        stmts = saver.ctx.sql.select_checkpoints(
            thread_id=None, ns=None, checkpoint_id=None, before=None,
            filter={"user": "u1"}, limit=5,
        )
        assert len(list(saver.list(None, filter={"user": "u1"}, limit=5))) == 5
    *setup, query = stmts

    def plan(with_setup: bool) -> str:
        with psycopg.connect(pg_url) as conn, conn.transaction():
            conn.execute("SET LOCAL random_page_cost = 1000000")
            for st in setup if with_setup else []:
                conn.execute(st.sql, st.params)
            rows = conn.execute("EXPLAIN " + query.sql, query.params).fetchall()
            return "\n".join(r[0] for r in rows)

    assert f"Index Scan Backward using {p}checkpoints_recent_idx" in plan(True), plan(True)
    assert "Sort" in plan(False)  # the planner's own choice here: the case guarded against


def test_postgres_get_tuple_of_a_long_list_after_its_put_is_one_round_trip(
    pg_url: str, round_trips: RoundTrips
) -> None:
    """A list of 64 elements or more names chunks of its hashes (core/chunks.py). The
    run that put it holds its elements: its get_tuple is one round trip. A saver with
    nothing cached reads the chunks with their elements: one too (it took two before
    revision 0013), with the same result."""
    from checkpoint_pg import PostgresSaver

    with PostgresSaver.from_conn_string(pg_url, prefix=prefix()) as saver:
        saver.setup()
        config: RunnableConfig = {"configurable": {"thread_id": "long", "checkpoint_ns": ""}}
        msgs: list[Any] = [HumanMessage(f"note {i}", id=f"n{i}") for i in range(150)]
        versions = None
        for i in range(3):
            msgs = msgs + [AIMessage(f"reply {i}", id=f"a{i}")]
            cp, versions = _checkpoint(saver, versions, msgs)
            config = saver.put(config, cp, {"source": "loop", "step": i}, versions)
            with round_trips.measure() as m:
                tup = saver.get_tuple(config)
            assert m.count == 1, (i, m.statements)
            assert tup.checkpoint["channel_values"]["messages"] == msgs
        with PostgresSaver.from_conn_string(pg_url, prefix=saver.tables.prefix) as cold:
            cold.get_tuple({"configurable": {"thread_id": "other", "checkpoint_ns": ""}})  # revision check
            with round_trips.measure() as m:
                tup = cold.get_tuple(config)
            assert m.count == 1, m.statements
            assert tup.checkpoint["channel_values"]["messages"] == msgs


def test_sqlite_get_tuple_of_a_long_list_after_its_put_is_one_statement(tmp_path: Path) -> None:
    """SQLite's get_tuple statement sends the objects of one-hash refs only; the run
    that put a long list makes its chunks from the hashes it holds instead of reading
    them in a second statement."""
    from checkpoint_pg import SqliteSaver

    with SqliteSaver.from_conn_string(str(tmp_path / "long.db")) as saver:
        saver.setup()
        config: RunnableConfig = {"configurable": {"thread_id": "long", "checkpoint_ns": ""}}
        msgs: list[Any] = [HumanMessage(f"note {i}", id=f"n{i}") for i in range(150)]
        versions = None
        seen: list[str] = []
        for i in range(3):
            msgs = msgs + [AIMessage(f"reply {i}", id=f"a{i}")]
            cp, versions = _checkpoint(saver, versions, msgs)
            config = saver.put(config, cp, {"source": "loop", "step": i}, versions)
            seen.clear()
            saver.conn.set_trace_callback(seen.append)
            try:
                tup = saver.get_tuple(config)
            finally:
                saver.conn.set_trace_callback(None)
            assert len([q for q in seen if q not in ("BEGIN", "COMMIT")]) == 1, seen
            assert tup.checkpoint["channel_values"]["messages"] == msgs


def test_async_saver_created_outside_a_loop_says_how_to_create_it(
    backend: str, saver_target: Any, tmp_path: Path
) -> None:
    """An async saver made outside a running event loop raises AsyncMisuseError (a RuntimeError,
    as asyncio's was) naming from_conn_string under ``async with`` and the sync saver, not
    asyncio's bare "no running event loop"; a SQLite file is not opened for it."""
    from checkpoint_pg import AsyncMisuseError

    if backend == "sqlite":
        from checkpoint_pg import AsyncSqliteSaver as cls

        path = tmp_path / "not-made.db"
        make: Any = lambda: cls(str(path))  # noqa: E731
    else:
        from psycopg_pool import AsyncConnectionPool

        from checkpoint_pg import AsyncPostgresSaver as cls

        pool = AsyncConnectionPool(saver_target.conn_string, open=False)
        make = lambda: cls(pool)  # noqa: E731
    with pytest.raises(AsyncMisuseError) as info:
        make()
    assert isinstance(info.value, RuntimeError)
    message = str(info.value)
    assert f"{cls.__name__}.from_conn_string" in message and "running event loop" in message
    assert cls.__name__.removeprefix("Async") in message
    if backend == "sqlite":
        assert not path.exists()


# --------------------------------------------------------------------------
# Prepared statements: as the connection says
# --------------------------------------------------------------------------


def _prepared(conn: Any) -> list[str]:
    return [r[0] for r in conn.execute("SELECT statement FROM pg_prepared_statements", prepare=False)]


def test_postgres_prepares_statements_only_when_given_prepare(pg_url: str) -> None:
    """Statements are never prepared by default, whatever the connection's own
    prepare_threshold (psycopg's default prepares at the sixth run): behind PgBouncer
    before 1.21 in transaction mode a prepared name can stand for another client's
    statement. ``prepare=True`` prepares as the connection says (from_conn_string's pool:
    at the first run)."""
    import psycopg

    from checkpoint_pg import PostgresSaver

    pfx = prefix()
    with PostgresSaver.from_conn_string(pg_url, prefix=pfx, pool_size=1) as saver:
        saver.setup()
        config = run_graph(saver)
        with saver._pool.connection() as conn:  # type: ignore[union-attr]
            assert _prepared(conn) == []
    with PostgresSaver.from_conn_string(pg_url, prefix=pfx, pool_size=1, prepare=True) as saver:
        run_graph(saver)
        check_graph_run(build_tool_agent(saver).get_state(config).values)
        with saver._pool.connection() as conn:  # type: ignore[union-attr]
            names = " ".join(_prepared(conn))
        assert f"{pfx}put(" in names and f"{pfx}put_writes(" in names and f"{pfx}get_tuple(" in names
        # a utility statement on a preparing connection
        saver.vacuum()
    # psycopg's default threshold: nothing prepared without prepare=True, at the sixth run with it
    for given, prepared in ((False, False), (True, True)):
        with psycopg.connect(pg_url, autocommit=True) as conn:
            saver = PostgresSaver(conn, prefix=pfx, prepare=given)
            run_graph(saver)
            run_graph(saver)
            assert any(f"{pfx}put(" in s for s in _prepared(conn)) is prepared
    # prepare=True on a connection that prepares nothing: nothing
    with psycopg.connect(pg_url, autocommit=True, prepare_threshold=None) as conn:
        saver = PostgresSaver(conn, prefix=pfx, prepare=True)
        run_graph(saver)
        run_graph(saver)
        assert _prepared(conn) == []


@pytest.mark.parametrize("bad", [1, "yes", None, 0.0])
def test_a_bad_prepare_option_is_refused_before_connecting(bad: Any) -> None:
    from checkpoint_pg import AsyncPostgresSaver, ConfigError, PostgresSaver

    with pytest.raises(ConfigError, match=r"prepare must be True or False, got " + re.escape(repr(bad))):
        with PostgresSaver.from_conn_string("postgresql://nobody@127.0.0.1:1/none", prepare=bad):
            pass

    async def go() -> None:
        async with AsyncPostgresSaver.from_conn_string(
            "postgresql://nobody@127.0.0.1:1/none", prepare=bad
        ):
            pass

    with pytest.raises(ConfigError, match="prepare must be True or False"):
        asyncio.run(go())


async def test_async_postgres_prepares_with_prepare(pg_url: str) -> None:
    from checkpoint_pg import AsyncPostgresSaver

    pfx = prefix()
    for prepare in (False, True):
        async with AsyncPostgresSaver.from_conn_string(
            pg_url, prefix=pfx, pool_size=1, prepare=prepare
        ) as saver:
            await saver.asetup()
            config = await arun_graph(saver)
            assert await pg_count_async(saver, pfx) == prepare
            check_graph_run((await build_tool_agent(saver).aget_state(config)).values)


async def pg_count_async(saver: Any, pfx: str) -> bool:
    async with saver._pool.connection() as conn:
        cur = await conn.execute("SELECT statement FROM pg_prepared_statements", prepare=False)
        return any(f"{pfx}put(" in r[0] for r in await cur.fetchall())


def test_prepared_statements_behind_a_transaction_pooler_get_an_error_that_says_what_to_do(
    pgbouncer_url: str,
) -> None:
    """Two savers given prepare=True on connections with psycopg's prepare_threshold=0, through PgBouncer 1.18 in
    transaction mode: each names its first prepared statement ``_pg3_0``, on the server
    session they share. The second one's is refused by the server; the saver says why
    and what to open the connection with, instead of psycopg's bare DuplicatePreparedStatement."""
    import psycopg

    from checkpoint_pg import ConfigError, PostgresSaver

    pfx = prefix()
    with PostgresSaver.from_conn_string(pgbouncer_url, prefix=pfx) as setup:
        setup.setup()
    config = new_config()
    with psycopg.connect(pgbouncer_url, autocommit=True, prepare_threshold=0) as first, psycopg.connect(
        pgbouncer_url, autocommit=True, prepare_threshold=0
    ) as second:
        assert PostgresSaver(first, prefix=pfx, prepare=True).get_tuple(config) is None  # its _pg3_0
        with pytest.raises(ConfigError, match=r"prepare_threshold=None") as err:
            # another statement first on the same server session (PgBouncer hands the
            # session used last to the next transaction): its _pg3_0 is taken
            list(PostgresSaver(second, prefix=pfx, prepare=True).list(config))
        assert "_pg3_0" in str(err.value) and "PgBouncer before 1.21" in str(err.value)
        assert "Drop the saver's prepare=True" in str(err.value)


async def test_an_async_sqlite_saver_given_a_path_leaves_the_loop_free_while_the_file_is_locked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``AsyncSqliteSaver(path)`` inside a coroutine, on a new file another connection
    holds locked: switching the file to WAL waits for the lock, and did so in the
    constructor, on the event loop. The loop releases the lock here, so a constructor
    that blocked it would wait its whole busy timeout and fail; it now returns at once
    and the first call waits, off the loop."""
    import checkpoint_pg.sqlite as sqlite_mod
    from checkpoint_pg import AsyncSqliteSaver

    monkeypatch.setattr(sqlite_mod, "BUSY_TIMEOUT_MS", 3000)
    path = tmp_path / "locked.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE theirs (a)")  # a rollback-journal file, not WAL yet
    other.execute("BEGIN EXCLUSIVE")
    asyncio.get_running_loop().call_later(0.3, other.execute, "COMMIT")
    saver = AsyncSqliteSaver(str(path))
    try:
        await saver.asetup()
        config = await saver.aput(
            new_config(), empty_checkpoint(), {"source": "input", "step": -1}, {}
        )
        assert (await saver.aget_tuple(config)) is not None
        assert saver.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert saver._wal is not None  # its WAL checkpoints run on their thread
    finally:
        await saver.aclose()
        other.close()


async def test_an_async_sqlite_saver_whose_file_cannot_be_made_ready_says_so_and_tries_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file stays locked past the busy timeout: each call raises DatabaseBusyError
    (the constructor's error before), none runs on a file not in WAL mode, and once the
    lock is gone the next call makes the file ready and runs."""
    import checkpoint_pg.sqlite as sqlite_mod
    from checkpoint_pg import AsyncSqliteSaver, DatabaseBusyError

    monkeypatch.setattr(sqlite_mod, "BUSY_TIMEOUT_MS", 300)
    path = tmp_path / "held.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE theirs (a)")
    other.execute("BEGIN EXCLUSIVE")
    saver = AsyncSqliteSaver(str(path))
    try:
        for call in (saver.asetup, lambda: saver.aget_tuple(new_config())):
            with pytest.raises(DatabaseBusyError, match="is locked by another connection"):
                await call()
        other.execute("COMMIT")
        await saver.asetup()
        assert await saver.aget_tuple(new_config()) is None
        assert saver.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        await saver.aclose()
        other.close()


def test_a_file_that_is_not_a_sqlite_database_is_refused_with_a_config_error(tmp_path: Path) -> None:
    """A saver pointed at a file that is not a SQLite database (a typo'd path to a log,
    say) raised sqlite3's bare DatabaseError, outside the package's errors. Both savers
    raise ConfigError naming the file (the async one at its first call), and leave the
    file as it was."""
    from checkpoint_pg import AsyncSqliteSaver, ConfigError, SqliteSaver

    path = tmp_path / "notes.txt"
    text = b"these are my notes, not a database\n" * 100
    path.write_bytes(text)
    with pytest.raises(ConfigError, match=r"notes\.txt' is not a SQLite database"):
        SqliteSaver(str(path))

    async def first_call() -> None:
        saver = AsyncSqliteSaver(str(path))
        try:
            await saver.aget_tuple(new_config())
        finally:
            await saver.aclose()

    with pytest.raises(ConfigError, match="is not a SQLite database"):
        asyncio.run(first_call())
    assert path.read_bytes() == text
