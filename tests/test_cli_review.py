"""Review probes of the ``checkpoint-pg`` command: the commands its messages advise, run as
written, act on the database and tables the message was about.

Tests call ``checkpoint_pg.cli.main(argv)`` in-process, as tests/test_cli.py does.
"""

from __future__ import annotations

import re
import secrets
import shlex
from pathlib import Path

import pytest
from clikit import READ_COMMANDS, cli, stored_revision





@pytest.fixture
def own_db(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database of this test's own (the default prefix's tables must stay absent)."""
    if backend == "postgres":
        return request.getfixturevalue("fresh_pg_url")
    return str(tmp_path / "own.db")


@pytest.mark.parametrize("start", ["none", "behind"])
def test_migrate_current_advises_the_upgrade_of_these_tables(
    capsys: pytest.CaptureFixture[str],
    backend: str,
    own_db: str,
    start: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``migrate current`` on tables of their own prefix (and Postgres schema) that are behind
    head, or not there yet, names the upgrade with this database's options: run as written,
    it brings these tables to head, and creates no store of the default prefix.

    Before the fix it advised a bare `checkpoint-pg migrate upgrade`, which migrates
    $CHECKPOINT_PG_URL or ./checkpoint_pg_demo.db with the default prefix instead."""
    from checkpoint_pg import migrate

    # where a command without --url would go: this test's folder, not the caller's
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHECKPOINT_PG_URL", raising=False)
    options = ["--url", own_db, "--prefix", "app_"] + (["--schema", "agents"] if backend == "postgres" else [])
    schema = "agents" if backend == "postgres" else None
    if backend == "sqlite":
        Path(own_db).touch()  # an empty file: read commands do not create one
    if start == "behind":
        older = [rev for rev, _, _ in migrate.history()][-2]
        assert cli(capsys, "migrate", "upgrade", older, *options)[0] == 0
    code, out, _ = cli(capsys, "migrate", "current", *options)
    assert code == 1, out
    (command,) = re.findall(r"`(checkpoint-pg migrate upgrade[^`]*)`", out)
    argv = shlex.split(command)[1:]
    assert cli(capsys, *argv)[0] == 0
    assert stored_revision(own_db, "app_", schema) == migrate.head()
    assert stored_revision(own_db) is None  # no default store was made
    assert cli(capsys, "migrate", "current", *options)[0] == 0


def test_a_missing_postgres_database_advises_the_upgrade_of_these_tables(
    capsys: pytest.CaptureFixture[str], pg_admin_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A URL naming a database not created yet: the error says to create it and then to run the
    upgrade with this URL and prefix; created and upgraded as advised, the command then works.
    (It advised a bare `checkpoint-pg migrate upgrade`, which upgrades the default database.)"""
    import psycopg

    from checkpoint_pg import migrate
    from fixtures.postgres import drop_database, with_dbname

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHECKPOINT_PG_URL", raising=False)
    name = f"cpg_test_missing_{secrets.token_hex(4)}"
    url = with_dbname(pg_admin_dsn, name)
    code, _, err = cli(capsys, "threads", "--url", url, "--prefix", "app_")
    assert code == 1 and f"createdb {name}" in err, err
    (command,) = re.findall(r"then `(checkpoint-pg migrate upgrade[^`]*)`", err)
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        assert cli(capsys, *shlex.split(command)[1:])[0] == 0
        assert stored_revision(url, "app_") == migrate.head()
        assert cli(capsys, "threads", "--url", url, "--prefix", "app_")[0] == 0
    finally:
        drop_database(pg_admin_dsn, name)
    assert not (tmp_path / "checkpoint_pg_demo.db").exists()


@pytest.mark.parametrize("option", ["--url", "--prefix", "--schema"])
@pytest.mark.parametrize(
    "argv",
    [
        ["delete", "chain", "--yes"],
        ["prune", "--keep-last", "1", "--yes"],
        ["migrate", "downgrade", "base", "--yes"],
        ["threads"],
        ["migrate", "upgrade"],
    ],
    ids=lambda a: "-".join(a[:2]),
)
def test_an_empty_database_option_is_refused_not_taken_for_the_default(
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    option: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--url ""``, ``--prefix ""`` or ``--schema ""`` (a script's ``--url "$DB"`` with DB
    unset) is a usage error, one line and exit 2, and the default database's default tables
    are left as they were. (Each was taken as not given: `delete chain --yes --url ""`
    deleted the thread from $CHECKPOINT_PG_URL's database, `--prefix ""` from the default
    prefix's tables, `--schema ""` from the search_path's.)"""
    import hashlib

    from checkpoint_pg import SqliteSaver

    from graphs import build_chain

    path = tmp_path / "env.db"
    with SqliteSaver.from_conn_string(str(path)) as saver:
        saver.setup()
        for _ in range(2):
            build_chain(saver).invoke({"log": []}, {"configurable": {"thread_id": "chain"}})
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setenv("CHECKPOINT_PG_URL", str(path))
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, *argv, option, "")
    assert code == 2 and err.count("\n") == 1 and f"{option} is empty" in err and out == "", err
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["env.db"]


@pytest.mark.parametrize("command", ["upgrade", "downgrade"])
def test_a_migrations_dry_run_reports_in_json_the_from_and_to_the_run_reports(
    capsys: pytest.CaptureFixture[str], command: str, tmp_path: Path
) -> None:
    """``migrate upgrade|downgrade --dry-run --json`` gives the ``from`` and ``to`` the migration
    itself then reports, to a revision and to base alike: one shape for scripts. (The
    downgrade's dry run gave only ``downgrade_to``, which it still gives.)"""
    import json

    from checkpoint_pg import migrate

    revisions = [rev for rev, _, _ in migrate.history()]
    db = ["--url", str(tmp_path / "m.db")]
    targets = (revisions[-3], "base") if command == "downgrade" else (revisions[-3], "head")
    for target in targets:
        if command == "downgrade":
            assert cli(capsys, "migrate", "upgrade", *db)[0] == 0  # from head each time
        sure = ["--yes"] if command == "downgrade" else []
        code, out, err = cli(capsys, "migrate", command, target, "--dry-run", "--json", *db)
        assert code == 0, err
        planned = json.loads(out)
        code, out, err = cli(capsys, "migrate", command, target, *sure, "--json", *db)
        assert code == 0, err
        done = json.loads(out)
        assert planned["dry_run"] is True
        assert {k: planned[k] for k in ("from", "to")} == done, (target, planned, done)


def test_output_to_a_stream_that_cannot_show_a_character_is_not_a_traceback(tmp_path: Path) -> None:
    """With stdout and stderr in ASCII (PYTHONIOENCODING=ascii; a Latin-1 locale or a legacy
    Windows console do the same to other characters), a thread id and values outside it print
    as escapes, --json stays JSON that reads back the same id, and an error naming such a
    thread is still one line. (Each raised UnicodeEncodeError with a traceback.)"""
    import json
    import os
    import subprocess
    import sys

    import checkpoint_pg
    from checkpoint_pg import SqliteSaver

    from graphs import build_chain

    path = str(tmp_path / "intl.db")
    thread = "café ✓"
    with SqliteSaver.from_conn_string(path) as saver:
        saver.setup()
        build_chain(saver, names=("größe", "naïve")).invoke({"log": []}, {"configurable": {"thread_id": thread}})
    package_root = str(Path(checkpoint_pg.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "PYTHONPATH": package_root}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "checkpoint_pg.cli", *argv, "--url", path],
            env=env, capture_output=True, text=True, encoding="ascii", errors="strict", timeout=120,
        )

    for argv in (["threads"], ["history", thread]):
        done = run(*argv)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (argv, done.stderr[-2000:])
    done = run("show", thread, "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    shown = json.loads(done.stdout)
    assert shown["thread_id"] == thread and "naïve" in json.dumps(shown, ensure_ascii=False)
    done = run("show", "nöpe ✗")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr


# -- read commands write nothing -------------------------------------------------------------

# every command that only reads, and every dry run, with what it needs
def _write_counters(url: str) -> dict[str, tuple[int, ...]]:
    """Rows inserted, updated (HOT or not) and deleted, per table of the database, as the
    server's statistics count them."""
    import time

    import psycopg

    def read() -> dict[str, tuple[int, ...]]:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            rows = conn.execute(
                "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd FROM pg_stat_user_tables"
            ).fetchall()
        return {name: tuple(counts) for name, *counts in rows}

    # a backend reports its counts when it ends (every connection here has): read until
    # two reads agree
    last = read()
    for _ in range(50):
        time.sleep(0.2)
        now = read()
        if now == last:
            return now
        last = now
    raise AssertionError("the write counters kept changing")


def test_read_commands_and_dry_runs_write_no_row_on_postgres(
    capsys: pytest.CaptureFixture[str], fresh_pg_url: str
) -> None:
    """Run as the database's owner (a role that could write), with a live lease on the thread
    so that ``unlock --dry-run`` has one to not break: no read command and no dry run inserts,
    updates or deletes a row in any table (the server's statistics), and each exits 0."""
    import psycopg

    from checkpoint_pg import PostgresSaver

    from graphs import build_chain

    with PostgresSaver.from_conn_string(fresh_pg_url) as saver:
        saver.setup()
        for _ in range(3):
            build_chain(saver).invoke({"log": []}, {"configurable": {"thread_id": "demo"}})
    # a run's live lease, from a connection that ends before the counting starts (a live
    # one may report its counts at any time)
    with psycopg.connect(fresh_pg_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE cpg_threads SET lease_owner = 'a-run', "
            "lease_until = extract(epoch FROM clock_timestamp()) + 3600 WHERE thread_id = 'demo'"
        )
    before = _write_counters(fresh_pg_url)
    for argv in READ_COMMANDS:
        code, out, err = cli(capsys, *argv, "--url", fresh_pg_url)
        assert code == 0, (argv, err)
        if argv[0] == "unlock":
            assert "would break the lease" in out, out
    assert _write_counters(fresh_pg_url) == before


def test_a_migration_waiting_out_the_busy_timeout_says_what_happened_and_what_to_do(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``migrate upgrade`` on a SQLite file another connection holds a write transaction on,
    for longer than the busy timeout: one line naming the file, that it was locked, that
    nothing changed and to try again, exit 1; the file stays at its revision. (It said only
    "OperationalError: database is locked", SQLAlchemy's wrapping of the driver's error.)"""
    import sqlite3

    import checkpoint_pg.sqlite
    from checkpoint_pg import migrate

    path = str(tmp_path / "busy.db")
    older = [rev for rev, _, _ in migrate.history()][-2]
    assert cli(capsys, "migrate", "upgrade", older, "--url", path)[0] == 0
    monkeypatch.setattr(checkpoint_pg.sqlite, "BUSY_TIMEOUT_MS", 200)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        code, out, err = cli(capsys, "migrate", "upgrade", "--url", path)
    finally:
        holder.close()
    assert code == 1 and err.count("\n") == 1 and out == "", err
    assert "database is locked" in err and path in err and "try again" in err, err
    assert stored_revision(path) == older
