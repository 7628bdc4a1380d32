"""Session 18's review of upgrades and lifecycle operations: the defects it found.

- a SqliteSaver made on a sqlite3 connection whose (implicit) transaction was open
  committed the caller's pending statements, switching the connection to
  ``isolation_level=None``: now refused, committing nothing;
- ``setup()`` on the caller's connection while the caller's own transaction is open:
  on SQLite the migration committed the caller's pending statements with it (its
  rollback then undid nothing); on Postgres the driver's ProgrammingError about
  autocommit came out bare. Both now refuse with a `ConfigError` saying what to do,
  and leave the caller's transaction as it was.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path

import pytest


def test_sqlite_setup_inside_the_callers_transaction_is_refused_and_commits_nothing(tmp_path: Path) -> None:
    from checkpoint_pg import ConfigError, SqliteSaver

    conn = sqlite3.connect(str(tmp_path / "theirs.db"), check_same_thread=False)
    try:
        conn.execute("CREATE TABLE orders (id INTEGER)")
        conn.commit()
        saver = SqliteSaver(conn)
        conn.execute("BEGIN")  # the caller's transaction, open
        conn.execute("INSERT INTO orders VALUES (1)")
        with pytest.raises(ConfigError, match=r"transaction.*open.*commit or roll back.*setup\(\)"):
            saver.setup()
        assert conn.in_transaction  # still the caller's, uncommitted
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (0,)
        assert conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name LIKE 'cpg_%'"
        ).fetchone() == (0,)
        saver.setup()  # outside a transaction it migrates, as before
        cfg = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
        assert saver.get_tuple(cfg) is None
    finally:
        conn.close()


def test_postgres_setup_inside_the_callers_transaction_is_refused_with_our_error(pg_url: str) -> None:
    import psycopg

    from checkpoint_pg import ConfigError, PostgresSaver

    prefix = f"s18tx{uuid.uuid4().hex[:6]}_"
    with psycopg.connect(pg_url) as conn:  # not autocommit
        conn.execute(f"CREATE TEMP TABLE {prefix}orders (id int)")
        conn.execute(f"INSERT INTO {prefix}orders VALUES (1)")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        saver = PostgresSaver(conn, prefix=prefix)
        with pytest.raises(ConfigError, match=r"transaction.*open.*commit or roll back.*setup\(\)"):
            saver.setup()
        # the caller's transaction is untouched: its statements go on, its rollback works
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        assert conn.execute(f"SELECT count(*) FROM {prefix}orders").fetchone() == (1,)
        conn.rollback()
        saver.setup()
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert saver.get_tuple({"configurable": {"thread_id": "t", "checkpoint_ns": ""}}) is None


def test_a_sqlite_saver_made_on_a_connection_in_the_callers_transaction_commits_nothing(tmp_path: Path) -> None:
    from checkpoint_pg import AsyncSqliteSaver, ConfigError, SqliteSaver

    conn = sqlite3.connect(str(tmp_path / "theirs.db"), check_same_thread=False)
    try:
        conn.execute("CREATE TABLE orders (id INTEGER)")
        conn.commit()
        conn.execute("INSERT INTO orders VALUES (1)")  # sqlite3 opened a transaction for it
        async def make_async() -> None:
            AsyncSqliteSaver(conn)

        for make in (lambda: SqliteSaver(conn), lambda: asyncio.run(make_async())):
            with pytest.raises(ConfigError, match=r"transaction of yours open.*commit or roll back"):
                make()
            assert conn.in_transaction and conn.isolation_level == ""
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (0,)
        saver = SqliteSaver(conn)  # once it is ended, as before
        saver.setup()
        assert saver.get_tuple({"configurable": {"thread_id": "t", "checkpoint_ns": ""}}) is None
    finally:
        conn.close()


def test_async_sqlite_asetup_inside_the_callers_transaction_is_refused(tmp_path: Path) -> None:
    from checkpoint_pg import AsyncSqliteSaver, ConfigError

    conn = sqlite3.connect(str(tmp_path / "theirs.db"), check_same_thread=False)
    conn.execute("CREATE TABLE orders (id INTEGER)")
    conn.commit()

    async def main() -> None:
        saver = AsyncSqliteSaver(conn)
        conn.execute("BEGIN")
        conn.execute("INSERT INTO orders VALUES (1)")
        with pytest.raises(ConfigError, match=r"AsyncSqliteSaver\.asetup\(\).*commit or roll back"):
            await saver.asetup()
        assert conn.in_transaction
        conn.rollback()
        await saver.asetup()
        assert await saver.aget_tuple({"configurable": {"thread_id": "t", "checkpoint_ns": ""}}) is None

    try:
        asyncio.run(main())
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (0,)
    finally:
        conn.close()
