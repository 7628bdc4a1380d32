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


def test_a_reimport_reads_one_checkpoint_pruned_here_to_date_its_thread(
    make_saver: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A thread pruned here and imported again with new steps is dated from its first
    checkpoint, pruned here: the import reads that one from the source, not every
    checkpoint pruned here (each read decodes a whole checkpoint with its values)."""
    import datetime as dt

    from checkpoint_pg.inspect import Inspector
    from checkpoint_pg.inspect.importer import import_langgraph, open_incumbent
    from test_imp_review import build_chain, incumbent

    with incumbent("sqlite", tmp_path, request) as (src, url), make_saver() as ours:
        cfg = {"configurable": {"thread_id": "long"}}
        chain = build_chain(src)
        for _ in range(6):
            chain.invoke({"log": []}, cfg)
        first_ts = list(src.list(cfg))[-1].checkpoint["ts"]
        ins = Inspector(ours)

        def run() -> tuple[Any, list[tuple[str, str]]]:
            with open_incumbent(url) as source:
                read: list[tuple[str, str]] = []
                fetch = source.fetch

                def counted(t: str, ns: str, cid: str) -> Any:
                    read.append((ns, cid))
                    return fetch(t, ns, cid)

                source.fetch = counted  # type: ignore[method-assign]
                report = import_langgraph(
                    source, ours, lambda t: set(ins.checkpoint_keys(t)),
                    existing_writes=ins.write_channels,
                )
                return report, read

        first, _ = run()
        ours.prune(["long"], keep_last=1)
        chain.invoke({"log": []}, cfg)  # a new step on the source
        report, read = run()
        assert report.pruned_here == first.imported - 1 and report.imported > 0, report
        # each checkpoint not pruned here once (imported or held), and the first pruned
        assert len(read) == report.imported + report.skipped + 1, (report, len(read))
        info = {t.thread_id: t for t in ins.threads(sizes=False).threads}
        assert info["long"].created_at == dt.datetime.fromisoformat(first_ts)


def test_an_import_counts_the_checkpoints_a_source_adds_while_it_runs(
    make_saver: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Progress never passes its total: checkpoints the app adds to a thread the import
    has not reached yet are counted in the total when the import reaches it."""
    from checkpoint_pg.inspect import Inspector
    from checkpoint_pg.inspect.importer import import_langgraph, open_incumbent
    from test_imp_review import build_chain, incumbent

    with incumbent("sqlite", tmp_path, request) as (src, url), make_saver() as ours:
        chain = build_chain(src)
        for t in ("a", "b"):
            chain.invoke({"log": []}, {"configurable": {"thread_id": t}})
        seen: list[tuple[int, int]] = []

        def progress(done: int, total: int, t: str) -> None:
            if not seen:  # the app goes on with the thread the import reads second
                chain.invoke({"log": []}, {"configurable": {"thread_id": "b"}})
            seen.append((done, total))

        ins = Inspector(ours)
        with open_incumbent(url) as source:
            report = import_langgraph(
                source, ours, lambda t: set(ins.checkpoint_keys(t)), progress=progress
            )
        held = sum(1 for _ in src.list(None))
        assert report.imported == held and report.checkpoints == held, report
        assert all(done <= total for done, total in seen), seen
        assert seen[-1] == (held, held)
