"""Session 17 review (b): AsyncSqliteSaver(path) making its file ready lazily, the import
reading one checkpoint at a time and leaving out what was pruned here, vacuum's refusal,
and the CLI's broken pipe."""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint


def _new_config(t: str = "t") -> dict[str, Any]:
    return {"configurable": {"thread_id": t, "checkpoint_ns": ""}}


def _wal_threads() -> set[threading.Thread]:
    return {th for th in threading.enumerate() if th.name == "checkpoint-pg-wal" and th.is_alive()}


def _wait_until_gone(threads: set[threading.Thread]) -> None:
    for th in threads:
        th.join(5)
    assert not any(th.is_alive() for th in threads)


async def test_async_sqlite_saver_closed_before_its_first_call_leaves_nothing_running(tmp_path: Path) -> None:
    """Closed before any call made its file ready: no WAL thread was started, and later
    calls say the saver is closed."""
    from checkpoint_pg import AsyncSqliteSaver, SaverClosedError

    before = _wal_threads()
    saver = AsyncSqliteSaver(str(tmp_path / "a.db"))
    await saver.aclose()
    assert not _wal_threads() - before
    for call in (lambda: saver.aget_tuple(_new_config()), saver.asetup):
        with pytest.raises(SaverClosedError):
            await call()
    assert not _wal_threads() - before


async def test_async_sqlite_saver_first_calls_at_once_start_one_wal_thread(tmp_path: Path) -> None:
    """Many first calls at once make the file ready once: one WAL thread, stopped by aclose."""
    from checkpoint_pg import AsyncSqliteSaver

    before = _wal_threads()
    saver = AsyncSqliteSaver(str(tmp_path / "a.db"))
    try:
        await asyncio.gather(saver.asetup(), *(saver.aget_tuple(_new_config(f"t{i}")) for i in range(20)))
        started = _wal_threads() - before
        assert len(started) == 1
    finally:
        await saver.aclose()
    _wait_until_gone(started)


async def test_async_sqlite_saver_sync_setup_from_another_thread_makes_the_file_ready(tmp_path: Path) -> None:
    """The sync methods, called from another thread before any async call, make the file ready too."""
    from checkpoint_pg import AsyncSqliteSaver

    path = tmp_path / "a.db"
    saver = AsyncSqliteSaver(str(path))
    try:
        await asyncio.to_thread(saver.setup)
        cfg = await asyncio.to_thread(
            saver.put, _new_config(), empty_checkpoint(), {"source": "input", "step": -1}, {}
        )
        assert await asyncio.to_thread(saver.get_tuple, cfg) is not None
        assert saver.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert saver._wal is not None
    finally:
        await saver.aclose()


def test_async_sqlite_saver_collected_without_aclose_stops_its_wal_thread(tmp_path: Path) -> None:
    """A saver dropped without aclose after its first call: its WAL thread ends once it is collected."""
    from checkpoint_pg import AsyncSqliteSaver

    before = _wal_threads()

    async def go() -> None:
        saver = AsyncSqliteSaver(str(tmp_path / "a.db"))
        await saver.asetup()

    asyncio.run(go())
    started = _wal_threads() - before
    assert len(started) == 1
    # the saver is in reference cycles (its runner names it): collected until it is gone,
    # since the executor's worker thread may still hold the call it ran (its work item
    # names the saver) until it is scheduled again, which on a loaded machine is after a
    # first collection
    deadline = time.monotonic() + 10
    while any(th.is_alive() for th in started) and time.monotonic() < deadline:
        gc.collect()
        for th in started:
            th.join(0.1)
    _wait_until_gone(started)


@pytest.mark.parametrize("journal", ["wal", "delete"])
async def test_async_sqlite_saver_in_a_directory_it_may_not_write_says_so_at_each_call(journal: str) -> None:
    """A writable file in a directory this process may not write (root runs it as nobody): the
    constructor opens the connection only, and each call raises the ConfigError naming the
    directory that the constructor raised before; no WAL thread starts."""
    from checkpoint_pg import AsyncSqliteSaver, ConfigError, SqliteSaver

    folder = Path(tempfile.mkdtemp(prefix="cpg_ro_"))
    path = folder / "app.db"
    try:
        with SqliteSaver.from_conn_string(str(path)) as saver:
            saver.setup()
            saver.conn.execute(f"PRAGMA journal_mode = {journal}")
        path.chmod(0o666)
        folder.chmod(0o555)
        root = os.geteuid() == 0
        if root:
            os.seteuid(65534)
        try:
            saver = AsyncSqliteSaver(str(path))
            try:
                for _ in range(2):
                    with pytest.raises(ConfigError, match="may not write the directory"):
                        await saver.aget_tuple(_new_config())
                assert saver._wal is None
            finally:
                await saver.aclose()
        finally:
            if root:
                os.seteuid(0)
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


async def test_async_sqlite_saver_on_a_relative_path_checkpoints_its_own_file_after_a_chdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``AsyncSqliteSaver("app.db")`` starts its WAL checkpoint thread at its first call (session
    17), which opened "app.db" again by name: after the process changed directory meanwhile, an
    empty app.db appeared there and the thread checkpointed it, not the saver's file. It
    checkpoints the file the saver's connection opened."""
    from checkpoint_pg import AsyncSqliteSaver

    first, then = tmp_path / "first", tmp_path / "then"
    first.mkdir()
    then.mkdir()
    monkeypatch.chdir(first)
    saver = AsyncSqliteSaver("app.db")
    monkeypatch.chdir(then)
    try:
        await saver.asetup()
        await saver.aput(_new_config(), empty_checkpoint(), {"source": "input", "step": -1}, {})
        assert saver._wal is not None
        for _ in range(600):  # the thread has connected once it checkpointed (IDLE: 1 s)
            if saver._wal.checkpoints:
                break
            await asyncio.sleep(0.05)
        assert saver._wal.checkpoints
        assert list(then.iterdir()) == []
        assert (first / "app.db").is_file()
    finally:
        await saver.aclose()


# --------------------------------------------------------------------------
# import-langgraph: one checkpoint at a time, pruned here left out (these pass: checks of
# the session's change against what the README promises, kept as regression tests)
# --------------------------------------------------------------------------


@pytest.fixture
def incumbent_file(tmp_path: Path) -> Iterator[tuple[Any, str]]:
    """(a langgraph-checkpoint-sqlite saver, its file) for the source of an import."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = str(tmp_path / "incumbent.db")
    with SqliteSaver.from_conn_string(path) as src:
        yield src, path


def _run_import(url: str, ours: Any, **kw: Any) -> Any:
    """import_langgraph as the CLI calls it (a dry run gets no saver to write to)."""
    from checkpoint_pg.inspect import Inspector
    from checkpoint_pg.inspect.importer import import_langgraph, open_incumbent

    ins = Inspector(ours)
    with open_incumbent(url) as source:
        return import_langgraph(
            source,
            None if kw.get("dry_run") else ours,
            lambda t: set(ins.checkpoint_keys(t)),
            existing_writes=ins.write_channels,
            **kw,
        )


def _keys(saver: Any, t: str) -> set[tuple[str, str]]:
    from checkpoint_pg.inspect import Inspector

    return set(Inspector(saver).checkpoint_keys(t))


def _src_keys(src: Any, t: str) -> set[tuple[str, str]]:
    rows = src.conn.execute("SELECT checkpoint_ns, checkpoint_id FROM checkpoints WHERE thread_id = ?", (t,))
    return {(r[0], r[1]) for r in rows}


def _same(src: Any, ours: Any, t: str) -> None:
    """Each checkpoint of the source our tables hold reads back equal, writes included."""
    for tup in src.list({"configurable": {"thread_id": t}}):
        got = ours.get_tuple(tup.config)
        if got is not None:
            assert got.checkpoint == tup.checkpoint, tup.config
            assert sorted((a, b, repr(c)) for a, b, c in got.pending_writes or []) == sorted(
                (a, b, repr(c)) for a, b, c in tup.pending_writes or []
            )


def _subgraph_thread(src: Any, cfg: Any) -> Any:
    """A turn through a subgraph call that interrupted and was resumed; the graph, for more."""
    from langgraph.types import Command

    from graphs import build_subgraph_graph

    g = build_subgraph_graph(src)
    g.invoke({"topic": "Tea"}, cfg)
    g.invoke(Command(resume="milk"), cfg)
    return g


def test_import_of_a_subgraph_thread_pruned_here_brings_only_what_is_new(
    incumbent_file: tuple[Any, str], make_saver: Any
) -> None:
    """Subgraph namespaces, pruned here: they stay out, a dry run counts as the run does,
    and the new steps (in the subgraph too) come and resume as on the source."""
    from langgraph.types import Command

    from graphs import build_subgraph_graph

    src, url = incumbent_file
    cfg = {"configurable": {"thread_id": "sub"}}
    with make_saver() as ours:
        g = _subgraph_thread(src, cfg)
        g.invoke({"topic": "Coffee"}, cfg)  # paused in the subgraph again
        first = _src_keys(src, "sub")
        assert _run_import(url, ours).imported == len(first)
        ours.prune(["sub"], keep_last=1)
        kept = _keys(ours, "sub")
        assert kept < first
        again = _run_import(url, ours)
        assert again.imported == 0 and again.pruned_here == len(first - kept), again
        g.invoke(Command(resume="sugar"), cfg)
        new = _src_keys(src, "sub") - first
        dry = _run_import(url, ours, dry_run=True)
        assert dry.imported == len(new) and dry.pruned_here == len(first - kept), dry
        assert _keys(ours, "sub") == kept
        report = _run_import(url, ours)
        assert report.imported == len(new) and report.pruned_here == len(first - kept), report
        assert _keys(ours, "sub") == kept | new
        _same(src, ours, "sub")
        assert build_subgraph_graph(ours).get_state(cfg).values == g.get_state(cfg).values


def test_import_while_the_source_deletes_and_adds_checkpoints(
    incumbent_file: tuple[Any, str], make_saver: Any
) -> None:
    """Read one at a time, a checkpoint the source deleted meanwhile is left out (its child
    stored whole), one it added comes with the next import, and the thread reads back equal."""
    from graphs import build_tool_agent, weather_question

    src, url = incumbent_file
    cfg = {"configurable": {"thread_id": "busy"}}
    with make_saver() as ours:
        agent = build_tool_agent(src)
        agent.invoke(weather_question("Paris"), cfg)
        agent.invoke(weather_question("Rome"), cfg)
        order = sorted(_src_keys(src, "busy"), key=lambda k: k[1])
        victim = order[4][1]

        def progress(done: int, _total: int, _t: str) -> None:
            if done == 2:  # the app goes on, and something deletes a checkpoint not read yet
                src.conn.execute("DELETE FROM checkpoints WHERE checkpoint_id = ?", (victim,))
                src.conn.execute("DELETE FROM writes WHERE checkpoint_id = ?", (victim,))
                src.conn.commit()
                agent.invoke(weather_question("Oslo"), cfg)

        report = _run_import(url, ours, progress=progress)
        assert report.imported == len(order) - 1 and report.pruned_here == 0, report
        now = _src_keys(src, "busy")
        again = _run_import(url, ours)
        assert again.imported == len(now) - (len(order) - 1) and again.pruned_here == 0, again
        assert _keys(ours, "busy") == now
        _same(src, ours, "busy")
        assert build_tool_agent(ours).get_state(cfg).values == agent.get_state(cfg).values


class _Stop(Exception):
    pass


def test_an_import_interrupted_anywhere_is_not_taken_for_pruned(
    incumbent_file: tuple[Any, str], make_saver: Any
) -> None:
    """A thread with subgraph calls and a fork from an early checkpoint, its import cut after
    each of its checkpoints in turn: the next one finds nothing pruned and brings the rest."""
    from langgraph.types import Command

    src, url = incumbent_file
    cfg = {"configurable": {"thread_id": "cut"}}
    with make_saver() as ours:
        g = _subgraph_thread(src, cfg)
        early = [t.config for t in src.list(cfg)][-2]
        g.invoke({"topic": "Coffee"}, early)  # a fork
        g.invoke(Command(resume="sugar"), cfg)
        total = len(_src_keys(src, "cut"))
        for k in range(1, total):
            ours.delete_thread("cut")

            def progress(done: int, _total: int, _t: str, k: int = k) -> None:
                if done == k:
                    raise _Stop

            with pytest.raises(_Stop):
                _run_import(url, ours, progress=progress)
            held = len(_keys(ours, "cut"))
            report = _run_import(url, ours)
            assert report.pruned_here == 0 and report.imported == total - held, (k, report)
            assert _keys(ours, "cut") == _src_keys(src, "cut")
            _same(src, ours, "cut")


# --------------------------------------------------------------------------
# vacuum: refused to a role Postgres would skip, run by every role it would not
# --------------------------------------------------------------------------


def test_vacuum_is_run_by_the_roles_postgres_lets_vacuum_in_a_schema_and_prefix_of_their_own(
    fresh_pg_url: str,
) -> None:
    """The tables in schema ``AppSch`` with prefix ``Ab_`` (quoted names), owned by one role:
    that role, a member of it, the database's owner and a superuser vacuum them (plain and
    FULL); a member that does not inherit the owner's rights, and any other role with the
    DML grants only, are refused, as Postgres would skip each table for them with a warning."""
    import secrets

    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict

    from checkpoint_pg import CheckpointPgError, PostgresSaver
    from fixtures.postgres import _params_to_url

    tag = secrets.token_hex(3)
    roles = {k: f"cpg_{k}_{tag}" for k in ("owner", "member", "dbowner", "noinherit", "other")}
    ident = {k: sql.Identifier(v) for k, v in roles.items()}
    params = conninfo_to_dict(fresh_pg_url)
    db = sql.Identifier(params["dbname"])
    options = {"schema": "AppSch", "prefix": "Ab_"}

    def url(role: str) -> str:
        return _params_to_url({**params, "user": roles[role], "password": None})

    with psycopg.connect(fresh_pg_url, autocommit=True) as conn:
        admin = conn.execute("SELECT current_user").fetchone()[0]
        for k in roles:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident[k]))
        conn.execute(sql.SQL("ALTER ROLE {} NOINHERIT").format(ident["noinherit"]))
        conn.execute(sql.SQL("GRANT {} TO {}, {}").format(ident["owner"], ident["member"], ident["noinherit"]))
        conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(db, ident["dbowner"]))
        conn.execute(sql.SQL('CREATE SCHEMA "AppSch" AUTHORIZATION {}').format(ident["owner"]))
    try:
        with PostgresSaver.from_conn_string(url("owner"), **options) as saver:
            saver.setup()
        with psycopg.connect(fresh_pg_url, autocommit=True) as conn:
            others = sql.SQL(", ").join(ident[k] for k in ("dbowner", "noinherit", "other"))
            conn.execute(sql.SQL('GRANT USAGE ON SCHEMA "AppSch" TO {}').format(others))
            conn.execute(sql.SQL('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "AppSch" TO {}').format(others))
        for who, may in [("owner", True), ("member", True), ("dbowner", True), ("noinherit", False), ("other", False)]:
            with PostgresSaver.from_conn_string(url(who), **options) as saver:
                for full in (False, True):
                    if may:
                        assert saver.vacuum(full=full).full == full, who
                    else:
                        with pytest.raises(CheckpointPgError, match=r"may not vacuum .*\(Ab_threads, Ab_checkpoints"):
                            saver.vacuum(full=full)
        with PostgresSaver.from_conn_string(fresh_pg_url, **options) as saver:  # a superuser
            assert saver.vacuum(full=True).full
    finally:
        with psycopg.connect(fresh_pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(db, sql.Identifier(admin)))
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY(%s)", [list(roles.values())]
            )
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.SQL(", ").join(ident.values())))
            for k in roles:
                conn.execute(sql.SQL("DROP ROLE {}").format(ident[k]))
