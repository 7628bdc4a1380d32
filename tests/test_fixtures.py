"""Tests of the test infrastructure itself (tests/fixtures/, tests/conftest.py).

If these fail, every other failure in the run is suspect.
"""

from __future__ import annotations

import time

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from fixtures.postgres import (
    DB_NAME_PREFIX,
    ENV_VAR,
    docker_engine_problem,
    no_postgres_message,
    temporary_database,
    with_dbname,
)

USER_RELATIONS = """
    SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%'
"""


def _database_exists(admin_dsn: str, dbname: str) -> bool:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone()
    return row is not None


# -- Postgres provisioning ---------------------------------------------------


def test_pg_url_is_a_separate_database_of_this_run(pg_admin_dsn, pg_url):
    dbname = conninfo_to_dict(pg_url)["dbname"]
    assert dbname.startswith(DB_NAME_PREFIX)
    assert dbname != conninfo_to_dict(pg_admin_dsn).get("dbname")
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == dbname


def test_temporary_database_is_empty_and_dropped_afterwards(pg_admin_dsn):
    with temporary_database(pg_admin_dsn) as url:
        dbname = conninfo_to_dict(url)["dbname"]
        assert _database_exists(pg_admin_dsn, dbname)
        with psycopg.connect(url) as conn:
            assert conn.execute(USER_RELATIONS).fetchone()[0] == 0
        # A session left open, like a pool leaked by a failed test: the drop
        # must force it out rather than fail the teardown.
        leaked = psycopg.connect(url, autocommit=True)
    try:
        assert not _database_exists(pg_admin_dsn, dbname)
        with pytest.raises(psycopg.OperationalError):
            leaked.execute("SELECT 1")
    finally:
        leaked.close()


def test_fresh_pg_url_is_empty_and_distinct(pg_url, fresh_pg_url):
    assert conninfo_to_dict(fresh_pg_url)["dbname"] != conninfo_to_dict(pg_url)["dbname"]
    with psycopg.connect(fresh_pg_url) as conn:
        assert conn.execute(USER_RELATIONS).fetchone()[0] == 0


def test_with_dbname_keeps_every_other_parameter():
    for dsn in (
        "postgresql://us%40er:p%3Aw%2Fd@db.example:6543/orig?sslmode=disable",
        "host=/var/run/postgresql port=5433 user=postgres dbname=orig",
        "host=::1 user=postgres dbname=orig application_name=cpg",
    ):
        url = with_dbname(dsn, "other_db")
        assert url.startswith("postgresql://")
        expected = conninfo_to_dict(dsn)
        expected["dbname"] = "other_db"
        assert conninfo_to_dict(url) == expected


def test_missing_postgres_message_says_how_to_provide_one():
    msg = no_postgres_message("FileNotFoundError: no such socket")
    assert ENV_VAR in msg
    assert f"export {ENV_VAR}=postgresql://postgres@127.0.0.1:5432/postgres" in msg
    assert "docker compose up -d postgres" in msg
    assert "no such socket" in msg  # the actual reason is shown


def test_docker_probe_reports_an_unreachable_engine_quickly(monkeypatch, tmp_path):
    # A real probe against a socket path that does not exist.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    started = time.monotonic()
    problem = docker_engine_problem(timeout=2)
    assert problem  # a non-empty reason, not None
    assert time.monotonic() - started < 10


# -- PgBouncer ---------------------------------------------------------------


def test_pgbouncer_forwards_queries_to_the_test_database(pg_url, pgbouncer_url):
    dbname = conninfo_to_dict(pg_url)["dbname"]
    with psycopg.connect(pgbouncer_url, prepare_threshold=None) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == dbname
        # Parameters travel fine without server-side prepared statements.
        assert conn.execute("SELECT %s::int + 1", [41]).fetchone()[0] == 42


def test_pgbouncer_pools_by_transaction(pgbouncer_url):
    # The admin console speaks only the simple query protocol: ClientCursor.
    console = with_dbname(pgbouncer_url, "pgbouncer")
    with psycopg.connect(console, autocommit=True, cursor_factory=psycopg.ClientCursor) as admin:
        cfg = {row[0]: row[1] for row in admin.execute("SHOW CONFIG").fetchall()}
    assert cfg["pool_mode"] == "transaction"

    # Behavioural check: in transaction mode a client gives its server
    # connection back at COMMIT, so a second, still-connected client's next
    # transaction runs on that same backend. In session mode each client
    # would own its backend and the pids would differ.
    kw = {"prepare_threshold": None, "autocommit": True}
    with psycopg.connect(pgbouncer_url, **kw) as a, psycopg.connect(pgbouncer_url, **kw) as b:
        pid_a = a.execute("SELECT pg_backend_pid()").fetchone()[0]
        pid_b = b.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert pid_a == pid_b


def test_pgbouncer_reaches_other_databases_by_name(fresh_pg_url, pgbouncer_url):
    fresh_db = conninfo_to_dict(fresh_pg_url)["dbname"]
    with psycopg.connect(with_dbname(pgbouncer_url, fresh_db), prepare_threshold=None) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == fresh_db


# -- Backend-parametrized savers ----------------------------------------------


def test_saver_fixture_is_set_up(saver, saver_target, request):
    assert saver_target.backend in request.node.callspec.id
    assert saver.get_tuple({"configurable": {"thread_id": "never-written"}}) is None
    if saver_target.backend == "postgres":
        # The per-test prefix is what isolates tests sharing pg_url.
        prefix = saver_target.options["prefix"]
        with psycopg.connect(saver_target.conn_string) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE starts_with(tablename, %s)", [prefix]
            ).fetchone()[0]
        assert tables > 0, f"setup() created no table named {prefix}*"


async def test_async_saver_fixture_is_set_up(async_saver):
    config = {"configurable": {"thread_id": "never-written"}}
    assert await async_saver.aget_tuple(config) is None


def test_make_saver_reopens_the_same_storage(make_saver):
    # make_saver calls within one test share the test's storage, so data
    # written by one saver is visible to the next (e.g. with another serde).
    from langgraph.checkpoint.base import empty_checkpoint

    config = {"configurable": {"thread_id": "reopen", "checkpoint_ns": ""}}
    checkpoint = empty_checkpoint()
    with make_saver() as first:
        first.put(config, checkpoint, {"source": "input", "step": -1}, {})
    with make_saver() as second:
        found = second.get_tuple(config)
    assert found is not None
    assert found.checkpoint["id"] == checkpoint["id"]
