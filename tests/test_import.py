"""``checkpoint-pg import-langgraph``: moving threads from the incumbent savers into ours.

Threads are written by the real ``langgraph-checkpoint-sqlite`` and
``langgraph-checkpoint-postgres`` packages running real graphs; after the
import every checkpoint must read back from our saver equal to what the
incumbent returns (checkpoint, metadata, parent, pending writes), a paused
thread must resume on our saver, and a second or interrupted import must pick
up where the first stopped.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langgraph.types import Command

from graphs import build_map_reduce, build_subgraph_graph, build_tool_agent, weather_question


@contextlib.contextmanager
def incumbent(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Any, str]]:
    """(incumbent saver, its URL) for "sqlite" (a file) or "postgres" (a fresh database)."""
    if kind == "sqlite":
        from langgraph.checkpoint.sqlite import SqliteSaver

        path = str(tmp_path / "incumbent.db")
        with SqliteSaver.from_conn_string(path) as saver:
            yield saver, path
    else:
        from langgraph.checkpoint.postgres import PostgresSaver

        url = request.getfixturevalue("fresh_pg_url")
        with PostgresSaver.from_conn_string(url) as saver:
            saver.setup()
            yield saver, url


def write_threads(saver: Any) -> dict[str, Any]:
    """Real graphs on the incumbent: a finished interrupt/resume thread, a paused subgraph, Sends, two turns."""
    from checkpoint_pg.demo import REQUEST, build_demo_graph

    threads: dict[str, Any] = {}
    demo = build_demo_graph(saver)
    cfg = {"configurable": {"thread_id": f"demo-{uuid.uuid4().hex[:6]}"}}
    demo.invoke({"messages": [HumanMessage(REQUEST, id="human-1")]}, cfg)
    demo.invoke(Command(resume=True), cfg)
    threads["demo"] = cfg
    sub = build_subgraph_graph(saver)
    cfg = {"configurable": {"thread_id": f"sub-{uuid.uuid4().hex[:6]}"}}
    sub.invoke({"topic": " Tea "}, cfg)  # paused inside the subgraph
    threads["sub"] = cfg
    fan = build_map_reduce(saver)
    cfg = {"configurable": {"thread_id": f"fan-{uuid.uuid4().hex[:6]}"}}
    fan.invoke({"items": ["a", "bb", "ccc"]}, cfg)
    threads["fan"] = cfg
    agent = build_tool_agent(saver)
    cfg = {"configurable": {"thread_id": f"agent-{uuid.uuid4().hex[:6]}"}}
    agent.invoke(weather_question("Paris"), cfg)
    agent.invoke(weather_question("Rome"), cfg)
    threads["agent"] = cfg
    return threads


def _pending(tup: Any) -> list[Any]:
    return sorted(((t, c, repr(v)) for t, c, v in tup.pending_writes or []))


def assert_same_checkpoints(source: Any, ours: Any) -> int:
    """Every checkpoint of ``source`` reads back equal from ``ours``; returns how many."""
    n = 0
    for tup in source.list(None):
        got = ours.get_tuple(tup.config)
        assert got is not None, tup.config
        assert got.checkpoint == tup.checkpoint
        assert got.metadata == tup.metadata
        assert got.parent_config == tup.parent_config or (
            got.parent_config["configurable"]["checkpoint_id"]
            == tup.parent_config["configurable"]["checkpoint_id"]
        )
        assert _pending(got) == _pending(tup)
        n += 1
    return n


def run_copy(
    capsys: pytest.CaptureFixture[str], command: list[str], target: Any, *extra: str
) -> tuple[int, Any, str]:
    """Run an import or transfer ``command`` (with its --from options) into ``target``: (exit
    status, JSON report with --json and success, else stdout text, stderr)."""
    from checkpoint_pg.cli import main

    prefix = target.options.get("prefix", "cpg_")
    capsys.readouterr()
    code = main([*command, "--url", target.conn_string, "--prefix", prefix, *extra])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if "--json" in extra and code == 0 else out), err


def _import(capsys: pytest.CaptureFixture[str], src: str, target: Any, *extra: str) -> tuple[int, Any, str]:
    return run_copy(capsys, ["import-langgraph", "--from", src], target, *extra)


@pytest.mark.parametrize("source_kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_import_reads_back_equal_and_is_idempotent(
    capsys: pytest.CaptureFixture[str],
    source_kind: str,
    saver_target: Any,
    make_saver: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """Every imported checkpoint equals the incumbent's; values are deduplicated; a second import adds nothing;
    a thread paused on the incumbent resumes on our saver."""
    with incumbent(source_kind, tmp_path, request) as (src, url):
        threads = write_threads(src)
        total = len(list(src.list(None)))
        code, report, _ = _import(capsys, url, saver_target, "--json", "--no-progress")
        assert code == 0 and report["imported"] == report["checkpoints"] == total and report["skipped"] == 0
        with make_saver() as ours:
            assert assert_same_checkpoints(src, ours) == total
            from checkpoint_pg.inspect import Inspector

            st = Inspector(ours).stats([c["configurable"]["thread_id"] for c in threads.values()]).total
            assert st.checkpoints == total and st.objects < st.references
            # the paused subgraph thread goes on, on our saver
            graph = build_subgraph_graph(ours)
            state = graph.invoke(Command(resume="milk"), threads["sub"])
            assert state["answer"] == "researched tea / hint: milk"
        code, report, _ = _import(capsys, url, saver_target, "--json", "--no-progress")
        assert code == 0 and report["imported"] == 0 and report["skipped"] == total


def test_import_resumes_after_an_interruption(
    capsys: pytest.CaptureFixture[str],
    saver_target: Any,
    make_saver: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """An import stopped midway (here after 5 checkpoints) finishes on the next run, with nothing lost or doubled;
    --dry-run counts without writing and the progress bar goes to stderr."""
    from checkpoint_pg.inspect import Inspector
    from checkpoint_pg.inspect.importer import import_langgraph, open_incumbent

    with incumbent("sqlite", tmp_path, request) as (src, url):
        write_threads(src)
        total = len(list(src.list(None)))

    class Stop(Exception):
        pass

    def stop_after_5(done: int, total: int, thread: str) -> None:
        if done == 5:
            raise Stop

    with make_saver() as ours, open_incumbent(url) as source:
        ins = Inspector(ours)
        with pytest.raises(Stop):
            import_langgraph(source, ours, lambda t: set(ins.checkpoint_keys(t)), progress=stop_after_5)
        assert ins.stats().total.checkpoints == 5

    code, report, _ = _import(capsys, url, saver_target, "--dry-run", "--json")
    assert code == 0 and report["dry_run"] and report["imported"] == total - 5 and report["skipped"] == 5
    code, out, err = _import(capsys, url, saver_target)
    assert code == 0 and "importing" in err  # the progress bar
    assert f"imported {total - 5} checkpoints" in out and "5 already present" in out
    with make_saver() as ours, open_incumbent(url) as source:
        assert assert_same_checkpoints(source.saver, ours) == total
        assert Inspector(ours).stats().total.checkpoints == total


def test_a_second_import_brings_writes_made_since_to_checkpoints_already_imported(
    capsys: pytest.CaptureFixture[str],
    saver_target: Any,
    make_saver: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """A staged migration: imported while paused before a parallel step, the thread
    goes on on the incumbent, whose step fails (steady's write and flaky's error are
    added to the checkpoint already imported, and no new checkpoint comes). The next
    import brings those writes, so on our saver the resume does not run steady again."""
    from collections import Counter

    from graphs import FlakyError, build_flaky_pair

    with incumbent("sqlite", tmp_path, request) as (src, url):
        calls: Counter[str] = Counter()
        fail = [True]
        graph = build_flaky_pair(src, calls, fail)
        cfg = {"configurable": {"thread_id": f"staged-{uuid.uuid4().hex[:6]}"}}
        graph.invoke({"log": []}, cfg, interrupt_before=["steady", "flaky"])
        code, report, _ = _import(capsys, url, saver_target, "--json", "--no-progress")
        assert code == 0 and report["completed"] == 0
        with pytest.raises(FlakyError):
            graph.invoke(None, cfg)
        assert calls == Counter({"steady": 1, "flaky": 1})
        total = len(list(src.list(None)))
        code, report, _ = _import(capsys, url, saver_target, "--json", "--no-progress")
        assert code == 0 and report["imported"] == 0 and report["completed"] == 1, report
        code, report, _ = _import(capsys, url, saver_target, "--json", "--no-progress")
        assert code == 0 and report["completed"] == 0 and report["writes"] == 0  # nothing more to bring
        with make_saver() as ours:
            assert assert_same_checkpoints(src, ours) == total
            fail[0] = False
            out = build_flaky_pair(ours, calls, fail).invoke(None, cfg)
        assert calls == Counter({"steady": 1, "flaky": 2, "join": 1})  # steady not run again
        assert sorted(out["log"][:2]) == ["flaky", "steady"]


def test_import_errors_name_the_source(
    capsys: pytest.CaptureFixture[str], saver_target: Any, tmp_path: Path
) -> None:
    """A missing file or a file without the incumbent's tables: exit 1 with one line naming it."""
    code, _, err = _import(capsys, str(tmp_path / "nope.db"), saver_target)
    assert code == 1 and "nope.db" in err and err.count("\n") == 1
    import sqlite3

    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE x (a)").connection.close()
    code, _, err = _import(capsys, str(other), saver_target)
    assert code == 1 and "no langgraph-checkpoint-sqlite tables" in err


def test_import_from_a_wal_file_in_a_read_only_directory(capsys: pytest.CaptureFixture[str]) -> None:
    """The incumbent's WAL file copied without its -wal/-shm into a directory the importer cannot
    write (a backup on a read-only filesystem) imports all the same, and stays unchanged."""
    import hashlib
    import os
    import shutil
    import tempfile

    from langgraph.checkpoint.sqlite import SqliteSaver

    from checkpoint_pg import SqliteSaver as Ours

    source_dir = Path(tempfile.mkdtemp(prefix="cpg_ro_src_"))  # pytest's tmp root is 0700
    target_dir = Path(tempfile.mkdtemp(prefix="cpg_ro_dst_"))
    source, target = source_dir / "incumbent.db", target_dir / "ours.db"
    try:
        with SqliteSaver.from_conn_string(str(source)) as incumbent:
            incumbent.setup()
            write_threads(incumbent)
            expected = {t.config["configurable"]["checkpoint_id"] for t in incumbent.list(None)}
        for extra in source_dir.glob("incumbent.db-*"):
            extra.unlink()  # a copy has none
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        from checkpoint_pg.cli import main

        # once as ourselves, into a throwaway target: imports every module the command needs
        # (nobody cannot read this Python's installation)
        assert main(["import-langgraph", "--from", str(source), "--url", str(target_dir / "warm.db")]) == 0
        for extra in source_dir.glob("incumbent.db-*"):
            extra.unlink()
        assert hashlib.sha256(source.read_bytes()).hexdigest() == digest
        source.chmod(0o444)
        source_dir.chmod(0o555)
        target_dir.chmod(0o777)
        capsys.readouterr()
        euid = os.geteuid()
        if euid == 0:
            os.seteuid(65534)  # root ignores file modes: read as nobody
        try:
            code = main(["import-langgraph", "--from", str(source), "--url", str(target)])
        finally:
            if euid == 0:
                os.seteuid(0)
        out, err = capsys.readouterr()
        assert code == 0, err
        with Ours.from_conn_string(str(target)) as ours:
            assert {t.config["configurable"]["checkpoint_id"] for t in ours.list(None)} == expected
        assert sorted(p.name for p in source_dir.iterdir()) == ["incumbent.db"]  # no -wal, -shm
        assert hashlib.sha256(source.read_bytes()).hexdigest() == digest
    finally:
        source_dir.chmod(0o755)
        shutil.rmtree(source_dir)
        shutil.rmtree(target_dir)


def test_import_refuses_a_thread_the_target_holds_with_another_history(
    capsys: pytest.CaptureFixture[str],
    saver_target: Any,
    make_saver: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """A thread id our tables already hold with checkpoints the source lacks (an app ran it on our
    saver) is refused, before anything is written: merging would mix two histories in one thread."""
    with incumbent("sqlite", tmp_path, request) as (src, url):
        threads = write_threads(src)
        total = len(list(src.list(None)))
    cfg = threads["agent"]
    with make_saver() as ours:
        build_tool_agent(ours).invoke({"messages": [HumanMessage("another history", id="h-x")]}, cfg)
        before = [t.config for t in ours.list(cfg)]
    code, _, err = _import(capsys, url, saver_target, "--no-progress")
    assert code == 1 and repr(cfg["configurable"]["thread_id"]) in err and "another history" in err
    with make_saver() as ours:
        assert [t.config for t in ours.list(cfg)] == before
        assert len(list(ours.list(None))) == len(before)  # nothing else was imported either
    # the other threads import when the clashing one is left out; a partial earlier import resumes
    others = [a for k, c in threads.items() if k != "agent" for a in ("--thread", c["configurable"]["thread_id"])]
    code, report, _ = _import(capsys, url, saver_target, "--json", "--no-progress", *others)
    assert code == 0 and report["imported"] == report["checkpoints"] < total


def test_import_with_skip_other_histories_leaves_those_threads_alone_and_imports_the_rest(
    capsys: pytest.CaptureFixture[str],
    saver_target: Any,
    make_saver: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """A thread imported, run on here and pruned past what it shared with the source looks
    like another app's thread: without the option the import stops before writing; with
    --skip-other-histories that thread is left as it is, named in the report, and every
    other thread is imported."""
    with incumbent("sqlite", tmp_path, request) as (src, url):
        threads = write_threads(src)
        cfg = threads["agent"]
        others_total = len(list(src.list(None))) - len(list(src.list(cfg)))
    t = cfg["configurable"]["thread_id"]
    code, report, _ = _import(capsys, url, saver_target, "--json", "--no-progress", "--thread", t)
    assert code == 0 and report["imported"] > 0
    with make_saver() as ours:  # run on here, then pruned to what it did here only
        build_tool_agent(ours).invoke({"messages": [HumanMessage("and now?", id="h-here")]}, cfg)
        ours.prune([t], keep_last=2)
        kept = [x.config for x in ours.list(cfg)]
    code, _, err = _import(capsys, url, saver_target, "--no-progress")
    assert code == 1 and "another history" in err and "--skip-other-histories" in err
    code, out, _ = _import(capsys, url, saver_target, "--no-progress", "--skip-other-histories")
    assert code == 0 and f"left untouched, holding another history here ({t!r})" in out, out
    assert f"imported {others_total} checkpoints" in out, out
    code, report, _ = _import(capsys, url, saver_target, "--json", "--no-progress", "--skip-other-histories")
    assert code == 0 and report["other_histories"] == [t] and report["imported"] == 0
    assert report["skipped"] == report["checkpoints"] == others_total
    with make_saver() as ours:
        assert [x.config for x in ours.list(cfg)] == kept
        others = [c for k, c in threads.items() if k != "agent"]
        assert sum(len(list(ours.list(c))) for c in others) == others_total


def test_import_of_an_encrypted_source(
    capsys: pytest.CaptureFixture[str],
    saver_target: Any,
    make_saver: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A source the app wrote with EncryptedSerializer.from_pycryptodome_aes() imports with
    LANGGRAPH_AES_KEY set (as every other command reads such a database); without it, one clear line."""
    pytest.importorskip("Crypto")
    from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

    monkeypatch.setenv("LANGGRAPH_AES_KEY", "0123456789abcdef0123456789abcdef")
    serde = EncryptedSerializer.from_pycryptodome_aes()
    with incumbent("sqlite", tmp_path, request) as (src, url):
        src.serde = serde
        cfg = {"configurable": {"thread_id": "secret"}}
        build_tool_agent(src).invoke(weather_question("Paris"), cfg)
        monkeypatch.delenv("LANGGRAPH_AES_KEY")
        code, _, err = _import(capsys, url, saver_target, "--no-progress")
        assert code == 1 and "EncryptedSerializer" in err and err.count("\n") == 1
        monkeypatch.setenv("LANGGRAPH_AES_KEY", "0123456789abcdef0123456789abcdef")
        code, report, err = _import(capsys, url, saver_target, "--json", "--no-progress")
        assert code == 0, err
        assert report["imported"] == report["checkpoints"] == len(list(src.list(None))) > 0
        with make_saver(serde=serde) as ours:
            assert assert_same_checkpoints(src, ours) == report["checkpoints"]


@pytest.mark.postgres
@pytest.mark.parametrize("version", [8, 10])
def test_import_refuses_an_incumbent_at_another_migration(
    capsys: pytest.CaptureFixture[str],
    saver_target: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    version: int,
) -> None:
    """langgraph-checkpoint-postgres tables at another migration than the installed package reads
    (older: no task_path column; newer: a layout it does not know) are refused in one line naming
    both versions."""
    import psycopg

    with incumbent("postgres", tmp_path, request) as (src, url):
        write_threads(src)
    with psycopg.connect(url, autocommit=True) as conn:
        if version == 8:
            conn.execute("ALTER TABLE checkpoint_writes DROP COLUMN task_path")
            conn.execute("DELETE FROM checkpoint_migrations WHERE v = 9")
        else:
            conn.execute("INSERT INTO checkpoint_migrations VALUES (10)")
    code, _, err = _import(capsys, url, saver_target, "--no-progress")
    assert code == 1 and err.count("\n") == 1, err
    assert f"at migration {version}" in err and "reads migration 9" in err


@pytest.mark.parametrize("source_kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_an_imported_thread_stores_its_messages_as_appends(
    capsys: pytest.CaptureFixture[str],
    source_kind: str,
    saver_target: Any,
    make_saver: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """The incumbent's version strings sort by their counter, as ours do, and an imported
    list whose stored elements lead it (equal, though read afresh: other objects) is an
    append: an imported thread holds as many references as the same thread run on our
    saver, not the whole list again at every checkpoint (x25 at 150 turns before)."""
    from checkpoint_pg.inspect import Inspector

    turns = 20
    with incumbent(source_kind, tmp_path, request) as (src, url):
        agent = build_tool_agent(src)
        for i in range(turns):
            agent.invoke(weather_question(f"City {i}"), {"configurable": {"thread_id": "imp-long"}})
        code, _, _ = _import(capsys, url, saver_target, "--json", "--no-progress")
        assert code == 0
    with make_saver() as ours:
        agent = build_tool_agent(ours)
        for i in range(turns):
            agent.invoke(weather_question(f"City {i}"), {"configurable": {"thread_id": "native-long"}})
        st = {s.thread_id: s for s in Inspector(ours).stats(["imp-long", "native-long"]).threads}
    imported, native = st["imp-long"], st["native-long"]
    assert imported.checkpoints == native.checkpoints
    assert imported.references <= 1.1 * native.references, (imported, native)
    assert imported.ref_bytes <= 1.2 * native.ref_bytes, (imported, native)


@pytest.mark.parametrize("source_kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_import_holds_one_checkpoint_of_a_thread_at_a_time(
    source_kind: str,
    make_saver: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The incumbents store the whole messages list again in every checkpoint: the import
    decoded a thread's checkpoints all at once (the incumbent's list()), a long thread took
    gigabytes and the import of the threads most worth moving ran out of memory. Now it
    reads one at a time: however long the thread, one decoded checkpoint is alive at once
    (counted by weak references to each checkpoint the incumbent returns, by list or get_tuple)."""
    import weakref

    from langgraph.checkpoint.base import CheckpointTuple

    from checkpoint_pg.inspect import Inspector
    from checkpoint_pg.inspect.importer import import_langgraph, open_incumbent

    class Tracked(dict):  # a checkpoint (a dict) that takes weak references
        pass

    refs: list[weakref.ref[Tracked]] = []
    most_alive = [0]

    def track(tup: CheckpointTuple | None) -> CheckpointTuple | None:
        if tup is None:
            return None
        tracked = Tracked(tup.checkpoint)
        refs.append(weakref.ref(tracked))
        most_alive[0] = max(most_alive[0], sum(r() is not None for r in refs))
        return tup._replace(checkpoint=tracked)

    cfg = {"configurable": {"thread_id": "long"}}
    with incumbent(source_kind, tmp_path, request) as (src, url), make_saver() as ours:
        agent = build_tool_agent(src)
        for i in range(8):
            agent.invoke(weather_question(f"City {i}"), cfg)
        total = len(list(src.list(cfg)))
        with open_incumbent(url) as source:
            get_tuple, list_ = source.saver.get_tuple, source.saver.list
            monkeypatch.setattr(source.saver, "get_tuple", lambda config: track(get_tuple(config)))
            monkeypatch.setattr(source.saver, "list", lambda *a, **kw: (track(x) for x in list_(*a, **kw)))
            ins = Inspector(ours)
            report = import_langgraph(
                source, ours, lambda t: set(ins.checkpoint_keys(t)), existing_writes=ins.write_channels
            )
            assert report.imported == total > 20
            assert most_alive[0] == 1, (most_alive, total)
            again = import_langgraph(
                source, ours, lambda t: set(ins.checkpoint_keys(t)), existing_writes=ins.write_channels
            )
            assert again.skipped == total and most_alive[0] == 1
        assert assert_same_checkpoints(src, ours) == total


@pytest.mark.parametrize("source_kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_checkpoints_pruned_here_stay_pruned_when_imported_again(
    capsys: pytest.CaptureFixture[str],
    source_kind: str,
    saver_target: Any,
    make_saver: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """Imported, then pruned here to its newest checkpoint, a thread imported again (to bring
    what the old app, still running, wrote since) got every pruned checkpoint back: the import
    copied whatever our tables lacked. Now they stay out, counted, and the command says how to
    get them back; the new turn and a fork from a checkpoint pruned here come; deleting the
    thread here and importing again brings all."""
    cfg = {"configurable": {"thread_id": "pruned"}}
    with incumbent(source_kind, tmp_path, request) as (src, url):
        agent = build_tool_agent(src)
        agent.invoke(weather_question("Paris"), cfg)
        agent.invoke(weather_question("Rome"), cfg)
        total = len(list(src.list(cfg)))
        code, report, _ = _import(capsys, url, saver_target, "--json", "--no-progress")
        assert code == 0 and report["imported"] == total and report["pruned_here"] == 0
        with make_saver() as ours:
            ours.prune(["pruned"], keep_last=1)
            assert len(list(ours.list(cfg))) == 1
        code, out, _ = _import(capsys, url, saver_target, "--no-progress")
        assert code == 0 and "imported 0 checkpoints" in out and "1 already present" in out, out
        assert f"{total - 1} checkpoints pruned here since an earlier import not brought back" in out, out
        assert "thread 'pruned'" in out and "checkpoint-pg delete THREAD" in out
        # the old app goes on: a new turn, and a fork from a checkpoint pruned here
        agent.invoke(weather_question("Oslo"), cfg)
        old = list(src.list(cfg))[-3].config
        agent.invoke(weather_question("Lima"), old)
        new = len(list(src.list(cfg))) - total
        code, report, _ = _import(capsys, url, saver_target, "--json", "--no-progress")
        assert code == 0 and report["imported"] == new and report["skipped"] == 1, report
        assert report["pruned_here"] == total - 1 and report["pruned_threads"] == ["pruned"]
        with make_saver() as ours:
            assert len(list(ours.list(cfg))) == 1 + new
            for tup in src.list(cfg):
                got = ours.get_tuple(tup.config)
                if got is not None:
                    assert got.checkpoint == tup.checkpoint and _pending(got) == _pending(tup)
            assert build_tool_agent(ours).get_state(cfg).values == agent.get_state(cfg).values
            ours.delete_thread("pruned")
        code, report, _ = _import(capsys, url, saver_target, "--json", "--no-progress")
        assert code == 0 and report["imported"] == total + new and report["pruned_here"] == 0
        with make_saver() as ours:
            assert assert_same_checkpoints(src, ours) == total + new


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_import_without_the_incumbents_package_names_it(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`checkpoint-pg import-langgraph` reads the source with the incumbent's own package, which
    `pip install 'checkpoint-pg[postgres,cli]'` does not bring: without it the command ended in
    a ModuleNotFoundError traceback. It says which package to install, and creates nothing."""
    import sys

    from clikit import cli

    # None in sys.modules: the import raises ImportError, as for a package not installed
    monkeypatch.setitem(sys.modules, f"langgraph.checkpoint.{backend}", None)
    source = "postgresql://nobody@127.0.0.1:1/none" if backend == "postgres" else str(tmp_path / "old.db")
    target = tmp_path / "ours.db"
    code, _, err = cli(capsys, "import-langgraph", "--from", source, "--url", str(target))
    assert code == 1 and "Traceback" not in err, err
    assert f"pip install langgraph-checkpoint-{backend}" in err, err
    assert not target.exists()
