"""Review probes of the migrations: data that older releases wrote reads back identically
after ``migrate upgrade`` by today's code, and the commands a saver's error advises run as
written.

The old releases are the package's own source at the last commit of each chosen revision,
taken from this repository's git history (``git archive``) and run in a subprocess with
tests/migration_workload.py, which runs real LangGraph graphs (tool calls, interrupts,
subgraph namespaces, Send packets, errors as pending writes, a DeltaChannel, lists longer
than a chunk, a dict holding lists, small scalars of every kind) and dumps everything the
saver gives back of them. Today's code must give back the same, and the graphs must go on
from there as they do on ``InMemorySaver``.
"""

from __future__ import annotations

import os
import pickle
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from clikit import cli, sa_url, stored_revision

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent





def _advised_upgrade(message: str) -> list[str]:
    """The argv of the ``checkpoint-pg migrate upgrade`` an error message advises, split as a
    shell splits it: a ``&`` or ``;`` outside quotes ends the command there."""
    (command,) = re.findall(r"`checkpoint-pg (migrate upgrade [^`]+)`", message)
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = list(lexer)
    operators = [w for w in words if w and set(w) <= set(lexer.punctuation_chars)]
    assert not operators, f"the shell would not run {command!r} as one command: {operators}"
    return words


# -- the saver's advice ----------------------------------------------------------------------


def test_the_upgrade_a_saver_advises_runs_as_written_for_a_path_a_shell_would_split(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SQLite file whose path has a space and a shell's ``&`` in it, behind head: the saver's
    error names the upgrade with the path quoted, and run as a shell would split it, the
    command upgrades that file's tables.

    Before the fix the path went in bare: the shell cut the command at the space (an
    argparse error) or at ``&`` (a background upgrade of the default database)."""
    from checkpoint_pg import SchemaVersionError, SqliteSaver, migrate

    monkeypatch.chdir(tmp_path)  # where a command that lost its --url would go
    monkeypatch.delenv("CHECKPOINT_PG_URL", raising=False)
    folder = tmp_path / "my agents"
    folder.mkdir()
    path = str(folder / "a&b.db")
    older = [rev for rev, _, _ in migrate.history()][-2]
    assert cli(capsys, "migrate", "upgrade", older, "--url", path, "--prefix", "app_")[0] == 0
    with SqliteSaver.from_conn_string(path, prefix="app_") as saver:
        with pytest.raises(SchemaVersionError) as info:
            saver.get_tuple({"configurable": {"thread_id": "t"}})
    argv = _advised_upgrade(str(info.value))
    assert argv[argv.index("--url") + 1] == path
    assert cli(capsys, *argv)[0] == 0
    assert stored_revision(path, "app_") == migrate.head()
    assert not (tmp_path / "checkpoint_pg_demo.db").exists()


def test_the_upgrade_a_postgres_saver_advises_keeps_the_urls_parameters(
    capsys: pytest.CaptureFixture[str], fresh_pg_url: str
) -> None:
    """A Postgres URL with several query parameters (``?a=1&b=2``): the advised command keeps
    them in one shell word, so that the upgrade runs on that URL with the saver's prefix and
    schema (bare, a shell ran ``... --url URL?a=1`` in the background, without them)."""
    from checkpoint_pg import PostgresSaver, SchemaVersionError, migrate

    url = f"{fresh_pg_url}?application_name=cpg_review&connect_timeout=10"
    older = [rev for rev, _, _ in migrate.history()][-2]
    options = ["--prefix", "app_", "--schema", "agents"]
    assert cli(capsys, "migrate", "upgrade", older, "--url", url, *options)[0] == 0
    with PostgresSaver.from_conn_string(url, prefix="app_", schema="agents") as saver:
        with pytest.raises(SchemaVersionError) as info:
            saver.get_tuple({"configurable": {"thread_id": "t"}})
    argv = _advised_upgrade(str(info.value))
    assert argv[argv.index("--url") + 1] == url and argv[-4:] == options
    assert cli(capsys, *argv)[0] == 0
    assert stored_revision(fresh_pg_url, "app_", "agents") == migrate.head()


# -- data an older release wrote -------------------------------------------------------------

# revision -> which commit of it wrote the data: "last" (the last commit before the next
# revision's, what that release stored when it was replaced) or "first" (the commit that
# added the revision). Two keep the file fast; every commit that changed core/values.py,
# codec.py or chunks.py was run through the same workload once, both backends, and held
# (the first release of 0012, which stored dicts key by key without chunks, among them).
OLD_RELEASES = {
    "0007": "last",  # before 0008: objects plain or "z:" compressed; dicts stored whole
    "0013": "last",  # before 0014: small scalars in value rows and objects; chunks
}


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def _release_commit(revision: str, which: str) -> str:
    """The commit whose package wrote data at ``revision`` (see OLD_RELEASES)."""
    versions = "src/checkpoint_pg/migrations/versions"
    if which == "first":
        return _git("log", "--diff-filter=A", "--format=%H", "--", f"{versions}/{revision}_*.py").splitlines()[-1]
    following = f"{int(revision) + 1:04d}"
    added = _git("log", "--diff-filter=A", "--format=%H", "--", f"{versions}/{following}_*.py").splitlines()[-1]
    return _git("rev-parse", f"{added}^")


@pytest.fixture(scope="module")
def old_sources(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``old_sources(revision)`` -> the ``src`` folder of the release that wrote at it."""
    try:
        _git("rev-parse", "--verify", "HEAD")
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"needs this repository's git history to take older releases from: {exc}")
    made: dict[str, Path] = {}

    def get(revision: str) -> Path:
        if revision not in made:
            commit = _release_commit(revision, OLD_RELEASES[revision])
            out = tmp_path_factory.mktemp(f"release_{revision}")
            archive = subprocess.run(
                ["git", "-C", str(REPO), "archive", commit, "src"], check=True, capture_output=True
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
            made[revision] = out / "src"
        return made[revision]

    return get


def _workload(src: Path, action: str, backend: str, url: str, prefix: str, out: Path) -> Any:
    """Run tests/migration_workload.py with the package at ``src``; what it dumped."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(TESTS)])}
    run = subprocess.run(
        [sys.executable, str(TESTS / "migration_workload.py"), action, backend, url, prefix, str(out)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, f"{action} with {src}:\n{run.stderr[-3000:]}"
    with out.open("rb") as f:
        return pickle.load(f)


@pytest.fixture(scope="module")
def in_memory_goes_on() -> dict[str, Any]:
    """What every workload graph holds after going on, on InMemorySaver."""
    import migration_workload as wl
    from langgraph.checkpoint.memory import InMemorySaver

    saver = InMemorySaver()
    wl.write(saver)
    return wl.go_on(saver)


def _differences(expected: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """The read-back keys whose content differs, with the first differing element of each."""
    out = []
    for key in expected.keys() | got.keys():
        a, b = expected.get(key), got.get(key)
        if a == b:
            continue
        where = ""
        if isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                where = f" (lengths {len(a)} and {len(b)})"
            else:
                i = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
                a, b, where = a[i], b[i], f"[{i}]"
        out.append(f"{key}{where}:\n  expected {str(a)[:600]}\n  got      {str(b)[:600]}")
    return sorted(out)


@pytest.mark.parametrize("revision", list(OLD_RELEASES))
def test_threads_an_older_release_wrote_read_back_identically_after_upgrade(
    capsys: pytest.CaptureFixture[str],
    backend: str,
    revision: str,
    old_sources: Any,
    in_memory_goes_on: dict[str, Any],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """Graphs run by an older release at ``revision`` (a database it set up) read back the same
    after `checkpoint-pg migrate upgrade` by today's code: every get_tuple, list (filtered and
    limited too), get_state (subgraphs included) and get_state_history, pending writes
    included; then each graph goes on from where it stopped as it does on InMemorySaver."""
    import migration_workload as wl

    from checkpoint_pg import migrate

    url, prefix, saver_cls = _store(backend, tmp_path, request, f"o{revision}")
    written = _workload(old_sources(revision), "write", backend, url, prefix, tmp_path / "written.pkl")
    assert stored_revision(url, prefix) == revision

    code, out, err = cli(capsys, "migrate", "upgrade", "--url", url, "--prefix", prefix)
    assert code == 0 and f"{revision} -> {migrate.head()}" in out, err
    with saver_cls.from_conn_string(url, prefix=prefix) as saver:
        assert _differences(written, wl.read(saver)) == []
        assert _differences(in_memory_goes_on, wl.go_on(saver)) == []


def test_a_downgrade_to_an_older_release_is_read_by_it_as_today_s_code_reads(
    capsys: pytest.CaptureFixture[str],
    backend: str,
    old_sources: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """The workload's threads written by today's code, downgraded to 0007 (every downgrade that
    rewrites data on the way: 0014's inline scalars, 0012's dicts and chunks, 0008's
    dictionary-compressed objects), read back by the release at 0007 as today's code read
    them; upgraded again, today's code reads the same and the graphs go on."""
    import migration_workload as wl

    url, prefix, saver_cls = _store(backend, tmp_path, request, "down")
    with saver_cls.from_conn_string(url, prefix=prefix) as saver:
        saver.setup()
        wl.write(saver)
        at_head = wl.read(saver)
    db = ["--url", url, "--prefix", prefix]
    code, _, err = cli(capsys, "migrate", "downgrade", "0007", "--yes", *db)
    assert code == 0, err
    old_read = _workload(old_sources("0007"), "read", backend, url, prefix, tmp_path / "down.pkl")
    assert _differences(at_head, old_read) == []
    assert cli(capsys, "migrate", "upgrade", *db)[0] == 0
    with saver_cls.from_conn_string(url, prefix=prefix) as saver:
        assert _differences(at_head, wl.read(saver)) == []


def _store(backend: str, tmp_path: Path, request: pytest.FixtureRequest, name: str) -> tuple[str, str, Any]:
    """(url, prefix, saver class) of an empty store of this test's own."""
    from checkpoint_pg import PostgresSaver, SqliteSaver

    if backend == "sqlite":
        return str(tmp_path / f"{name}.db"), "cpg_", SqliteSaver
    return request.getfixturevalue("pg_url"), f"{name}_{os.getpid()}_", PostgresSaver


# -- a database at head without its functions -----------------------------------------------


@pytest.mark.parametrize("how", ["cli", "setup"])
def test_a_database_at_head_without_its_functions_is_mended_by_the_advised_upgrade(
    capsys: pytest.CaptureFixture[str], fresh_pg_url: str, how: str
) -> None:
    """The tables and version table at head without the Postgres functions (what restoring a
    ``pg_dump -t 'cpg_*'`` of the tables alone gives): the saver's error advises the upgrade,
    and that upgrade, or setup(), installs the functions again; the thread then reads back as
    before. (The upgrade found the database at head and did nothing: no advice helped.)"""
    import psycopg

    import migration_workload as wl

    from checkpoint_pg import PostgresSaver, SchemaVersionError

    options = {"prefix": "app_", "schema": "agents"}
    with PostgresSaver.from_conn_string(fresh_pg_url, **options) as saver:
        saver.setup()
        wl.write(saver)
        before = wl.read(saver)
        dropped = saver.ctx.sql.fn.drop()
    with psycopg.connect(fresh_pg_url, autocommit=True) as conn:
        for ddl in dropped:
            conn.execute(ddl)
    with PostgresSaver.from_conn_string(fresh_pg_url, **options) as saver:
        with pytest.raises(SchemaVersionError) as info:
            saver.get_tuple(wl._cfg("agent"))
        assert "functions are missing" in str(info.value)
        if how == "cli":
            argv = _advised_upgrade(str(info.value))
            code, out, err = cli(capsys, *argv, "--dry-run")
            assert code == 0 and "would install its missing functions again" in out, (out, err)
            code, out, err = cli(capsys, *argv)
            assert code == 0 and "installed its missing functions again" in out, (out, err)
        else:
            saver.setup()
        assert _differences(before, wl.read(saver)) == []


# -- an upgrade killed half way --------------------------------------------------------------

_KILL_AT = '''
import os, sys
import sqlalchemy as sa
from sqlalchemy import event
from checkpoint_pg import migrate
from checkpoint_pg.schema import build_tables

url, needle = sys.argv[1], sys.argv[2]
engine = sa.create_engine(url, poolclass=sa.pool.NullPool)

@event.listens_for(engine, "before_cursor_execute")
def die(conn, cursor, statement, parameters, context, executemany):
    if needle in statement:
        os._exit(9)  # as a kill: no rollback, no close

with engine.connect() as conn:
    migrate.upgrade(conn, build_tables())
'''


def test_an_upgrade_killed_half_way_leaves_the_revision_it_started_from(
    capsys: pytest.CaptureFixture[str], backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """An upgrade from 0002 killed in the middle of 0003 (after its first ALTER TABLE, before
    its second): the database is at 0002 without a column of 0003, as if nothing had run
    (one transaction), and the next upgrade goes to head, where the graphs run. (Statements
    committed one by one would leave 0003's first column behind at 0002, and the next
    upgrade would fail adding it again.)"""
    import migration_workload as wl

    from checkpoint_pg import migrate

    if backend == "sqlite":
        url = str(tmp_path / "killed.db")
    else:
        url = request.getfixturevalue("fresh_pg_url")
    assert cli(capsys, "migrate", "upgrade", "0002", "--url", url)[0] == 0
    package_root = str(Path(migrate.__file__).resolve().parent.parent)
    killed = subprocess.run(
        [sys.executable, "-c", _KILL_AT, sa_url(url), "ADD COLUMN lease_until"],
        env={**os.environ, "PYTHONPATH": package_root}, capture_output=True, text=True, timeout=120,
    )
    assert killed.returncode == 9, killed.stderr[-2000:]
    assert stored_revision(url) == "0002"
    engine = sa.create_engine(sa_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("cpg_threads")}
    finally:
        engine.dispose()
    assert "lease_owner" not in columns
    assert cli(capsys, "migrate", "upgrade", "--url", url)[0] == 0
    assert stored_revision(url) == migrate.head()
    saver_cls = _store(backend, tmp_path, request, "x")[2]
    with saver_cls.from_conn_string(url) as saver:
        wl.write(saver)
        assert wl.read(saver)["review/latest"] is not None


def test_the_upgrade_advised_for_a_url_with_encoded_options_connects_as_the_saver_does(
    capsys: pytest.CaptureFixture[str], fresh_pg_url: str
) -> None:
    """A saver whose URL sets the search_path through ``options=-c%20search_path%3Dagents``
    (its tables in schema agents without ``schema=``), behind head: the advised command keeps
    the URL as written, so that it connects with that search_path and upgrades those tables.
    (The URL was shown rendered again by SQLAlchemy, %20 as "+", which libpq keeps: the
    server refused the option "+search_path".)"""
    import psycopg

    from checkpoint_pg import PostgresSaver, SchemaVersionError, migrate

    with psycopg.connect(fresh_pg_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA agents")
    url = f"{fresh_pg_url}?options=-c%20search_path%3Dagents"
    older = [rev for rev, _, _ in migrate.history()][-2]
    assert cli(capsys, "migrate", "upgrade", older, "--url", url)[0] == 0
    assert stored_revision(fresh_pg_url, schema="agents") == older
    with PostgresSaver.from_conn_string(url) as saver:
        with pytest.raises(SchemaVersionError) as info:
            saver.get_tuple({"configurable": {"thread_id": "t"}})
    argv = _advised_upgrade(str(info.value))
    assert argv[argv.index("--url") + 1] == url
    code, _, err = cli(capsys, *argv)
    assert code == 0, err
    assert stored_revision(fresh_pg_url, schema="agents") == migrate.head()


def test_the_upgrade_advised_for_a_pool_of_a_keyword_conninfo_names_its_url(
    capsys: pytest.CaptureFixture[str], fresh_pg_url: str
) -> None:
    """A saver on a ConnectionPool made from a keyword conninfo (``host=... dbname=...``), behind
    head: the advised command names a URL of that conninfo, not ``<your database url>``, and
    run as written it upgrades the saver's tables; a password in the conninfo is masked."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
    from psycopg_pool import ConnectionPool

    from checkpoint_pg import PostgresSaver, SchemaVersionError, migrate

    older = [rev for rev, _, _ in migrate.history()][-2]
    assert cli(capsys, "migrate", "upgrade", older, "--url", fresh_pg_url, "--prefix", "app_")[0] == 0
    keywords = make_conninfo(**conninfo_to_dict(fresh_pg_url), application_name="app one")
    with ConnectionPool(keywords, kwargs={"autocommit": True}, min_size=1, open=True) as pool:
        with pytest.raises(SchemaVersionError) as info:
            PostgresSaver(pool, prefix="app_").get_tuple({"configurable": {"thread_id": "t"}})
    assert "<your database url>" not in str(info.value)
    assert cli(capsys, *_advised_upgrade(str(info.value)))[0] == 0
    assert stored_revision(fresh_pg_url, "app_") == migrate.head()
    from checkpoint_pg.postgres import mask, url_of

    shown = mask(url_of(make_conninfo(keywords, password="s3cret")))
    assert "s3cret" not in shown and ":***@" in shown
