"""``checkpoint-pg transfer`` / ``checkpoint_pg.inspect.transfer``: threads of one
checkpoint_pg database copied into another (a SQLite file's into Postgres, and back).

Real graphs run on a source saver of ours; after the transfer every checkpoint reads
back from the target equal to the source's, the target stores each value once as the
source does, a paused thread resumes on the target, and a second transfer brings only
what the source ran since. The source is only read.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, RemoveMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command
from test_import import assert_same_checkpoints, run_copy, write_threads
from typing_extensions import TypedDict

from graphs import (
    build_delta_graph,
    build_map_reduce,
    build_nested_subgraphs,
    build_subgraph_graph,
    build_tool_agent,
    thread_summary,
    weather_question,
)

SOURCES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextlib.contextmanager
def own_source(kind: str, tmp_path: Path, request: pytest.FixtureRequest, **options: Any) -> Iterator[tuple[Any, list[str]]]:
    """(a set-up saver of ours, the CLI options naming its database) for a SQLite file, or
    Postgres tables under a prefix of their own; the same database each time in a test."""
    from checkpoint_pg import PostgresSaver, SqliteSaver

    if kind == "sqlite":
        path = str(tmp_path / "source.db")
        with SqliteSaver.from_conn_string(path, **options) as saver:
            saver.setup()
            yield saver, ["--from", path]
        return
    url = request.getfixturevalue("pg_url")
    prefix = request.node.__dict__.setdefault("_source_prefix", f"s{secrets.token_hex(4)}_")
    with PostgresSaver.from_conn_string(url, prefix=prefix, **options) as saver:
        saver.setup()
        yield saver, ["--from", url, "--from-prefix", prefix]


def _transfer(capsys: pytest.CaptureFixture[str], source: list[str], target: Any, *extra: str) -> tuple[int, Any, str]:
    return run_copy(capsys, ["transfer", *source], target, *extra)


def _digest(path: Path) -> dict[str, str]:
    """The database file and its WAL: not the shared-memory index, which readers write,
    nor an empty WAL a read-only open leaves (SQLite needs the file to read a WAL database)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.parent.glob(path.name + "*"))
        if not p.name.endswith("-shm") and p.stat().st_size
    }


@pytest.mark.parametrize("source_kind", SOURCES)
def test_transfer_reads_back_equal_stores_each_value_once_and_resumes(
    capsys: pytest.CaptureFixture[str],
    source_kind: str,
    saver_target: Any,
    make_saver: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """Every checkpoint (interrupt and resume, a paused subgraph, Sends, a tool agent)
    reads back equal, pending writes included; the target holds as many objects as the
    source (each value once); a second transfer adds nothing; the source file is not
    changed; the paused thread resumes on the target as it does on the source."""
    from checkpoint_pg.inspect import Inspector

    with own_source(source_kind, tmp_path, request) as (src, src_opts):
        threads = write_threads(src)
        ids = [c["configurable"]["thread_id"] for c in threads.values()]
        total = len(list(src.list(None)))
    # the source saver closed: nothing but the transfer touches the file from here
    before = _digest(tmp_path / "source.db") if source_kind == "sqlite" else None
    code, report, err = _transfer(capsys, src_opts, saver_target, "--json", "--no-progress")
    assert code == 0, err
    assert report["imported"] == report["checkpoints"] == total and report["skipped"] == 0
    assert sorted(report["thread_ids"]) == sorted(ids)
    if before is not None:
        assert _digest(tmp_path / "source.db") == before
    code, report, err = _transfer(capsys, src_opts, saver_target, "--json", "--no-progress")
    assert code == 0, err
    assert report["imported"] == report["writes"] == 0 and report["skipped"] == total, report
    with own_source(source_kind, tmp_path, request) as (src, _):
        with make_saver() as target:
            assert assert_same_checkpoints(src, target) == total
            got, want = Inspector(target).stats(ids).total, Inspector(src).stats(ids).total
            assert (got.checkpoints, got.objects, got.references) == (
                want.checkpoints, want.objects, want.references,
            )
            resumed = build_subgraph_graph(target).invoke(Command(resume="milk"), threads["sub"])
            assert resumed == build_subgraph_graph(src).invoke(Command(resume="milk"), threads["sub"])
            assert resumed["answer"] == "researched tea / hint: milk"


@pytest.mark.parametrize("source_kind", SOURCES)
def test_a_second_transfer_brings_only_what_the_source_ran_since(
    capsys: pytest.CaptureFixture[str],
    source_kind: str,
    saver_target: Any,
    make_saver: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """An app moved in two goes: the first transfer, then the app goes on on the source
    (a second turn), then the second transfer copies the new turn's checkpoints only,
    and --dry-run counts them first without writing."""
    from checkpoint_pg.inspect import Inspector

    with own_source(source_kind, tmp_path, request) as (src, src_opts):
        agent = build_tool_agent(src)
        cfg = {"configurable": {"thread_id": f"moving-{uuid.uuid4().hex[:6]}"}}
        agent.invoke(weather_question("Paris"), cfg)
        first = len(list(src.list(cfg)))
        code, report, err = _transfer(capsys, src_opts, saver_target, "--json", "--no-progress")
        assert code == 0 and report["imported"] == first, err
        agent.invoke(weather_question("Rome"), cfg)
        total = len(list(src.list(cfg)))
        code, report, err = _transfer(capsys, src_opts, saver_target, "--json", "--dry-run")
        assert code == 0 and report["dry_run"] and report["imported"] == total - first, err
        with make_saver() as target:
            assert Inspector(target).stats().total.checkpoints == first  # the dry run wrote nothing
        code, out, err = _transfer(capsys, src_opts, saver_target)
        assert code == 0 and "importing" in err  # the progress bar, on stderr
        assert f"imported {total - first} checkpoints" in out and f"{first} already present" in out
        with make_saver() as target:
            assert assert_same_checkpoints(src, target) == total
            state = build_tool_agent(target).get_state(cfg)
            assert state.values == build_tool_agent(src).get_state(cfg).values


@pytest.mark.parametrize("source_kind", SOURCES)
def test_transfer_of_an_encrypted_database_keeps_it_encrypted(
    source_kind: str,
    saver_target: Any,
    make_saver: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """With the app's EncryptedSerializer and hash_key on both savers (the Python API), the
    target reads back equal, and a saver without the key cannot read what it stored."""
    pytest.importorskip("Crypto")
    from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

    from checkpoint_pg.errors import CheckpointPgError
    from checkpoint_pg.inspect.transfer import transfer

    key, hash_key = secrets.token_bytes(16), secrets.token_bytes(32)
    opts = {"serde": EncryptedSerializer.from_pycryptodome_aes(key=key), "hash_key": hash_key}
    with own_source(source_kind, tmp_path, request, **opts) as (src, _):
        agent = build_tool_agent(src)
        cfg = {"configurable": {"thread_id": f"secret-{uuid.uuid4().hex[:6]}"}}
        agent.invoke(weather_question("Oslo"), cfg)
        total = len(list(src.list(cfg)))
        with make_saver(**opts) as target:
            report = transfer(src, target)
            assert report.imported == total
            assert assert_same_checkpoints(src, target) == total
        with make_saver() as keyless, pytest.raises(CheckpointPgError):
            keyless.get_tuple(cfg)


def test_transfer_refuses_what_it_cannot_read_from(saver_target: Any, make_saver: Any) -> None:
    """The Python API takes our sync savers only, and a target unless it is a dry run."""
    from checkpoint_pg.errors import ConfigError
    from checkpoint_pg.inspect.transfer import transfer

    with make_saver() as target:
        with pytest.raises(ConfigError, match="import_langgraph"):
            transfer(InMemorySaver(), target)
        with pytest.raises(ConfigError, match="sync checkpoint_pg saver"):
            transfer(target, InMemorySaver())
        with pytest.raises(ConfigError, match="dry_run"):
            transfer(target, None)


def test_transfer_command_says_what_is_wrong_with_the_source(
    capsys: pytest.CaptureFixture[str],
    saver_target: Any,
    make_saver: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """Each mistake about --from is said of the source, with what to do, and the
    target is left without anything written."""
    from langgraph.checkpoint.sqlite import SqliteSaver as IncumbentSqlite

    from checkpoint_pg import SqliteSaver
    from checkpoint_pg.inspect import Inspector

    missing = str(tmp_path / "nowhere.db")
    code, out, err = _transfer(capsys, ["--from", missing], saver_target)
    assert code == 1 and f"the source (--from {missing}): no SQLite file" in err, err
    assert "--url" not in err  # the advice is about --from

    incumbent = str(tmp_path / "incumbent.db")
    with IncumbentSqlite.from_conn_string(incumbent) as inc:
        build_tool_agent(inc).invoke(weather_question("Lima"), {"configurable": {"thread_id": "lima"}})
    code, out, err = _transfer(capsys, ["--from", incumbent], saver_target)
    assert code == 1 and "checkpoint-pg import-langgraph --from" in err and incumbent in err, err

    ours = str(tmp_path / "ours.db")
    with SqliteSaver.from_conn_string(ours) as src:
        src.setup()
        build_tool_agent(src).invoke(weather_question("Kyiv"), {"configurable": {"thread_id": "kyiv"}})
    code, out, err = _transfer(capsys, ["--from", ours, "--from-prefix", "other_"], saver_target)
    assert code == 1 and "has no checkpoint_pg tables (prefix 'other_')" in err, err
    code, out, err = _transfer(capsys, ["--from", ours, "--thread", "kiev"], saver_target)
    assert code == 1 and "'kiev'" in err and "'kyiv'" in err, err  # the close id named

    with make_saver() as target:
        assert Inspector(target).stats().total.checkpoints == 0


def test_transfer_from_a_source_at_an_older_revision_names_the_source_to_migrate(
    capsys: pytest.CaptureFixture[str], saver_target: Any, tmp_path: Path
) -> None:
    """The source is never migrated by a transfer: the message says how, on the source."""
    from checkpoint_pg.cli import main

    old = str(tmp_path / "old.db")
    assert main(["--url", old, "migrate", "upgrade", "0014"]) == 0
    code, out, err = _transfer(capsys, ["--from", old], saver_target)
    assert code == 1, err
    assert f"checkpoint-pg migrate upgrade --url {old}" in err and "changes the source" in err, err
    assert saver_target.conn_string not in err  # not the target's command


@pytest.mark.parametrize("source_kind", SOURCES)
def test_a_second_transfer_after_the_source_pruned_what_the_first_copied(
    capsys: pytest.CaptureFixture[str],
    source_kind: str,
    saver_target: Any,
    make_saver: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """The app runs on on the source after a first transfer and the source is pruned to
    the new turn's checkpoints (a nightly `prune --keep-last`): none of those the target
    holds is in the source any more, but the oldest kept one's parent is, so it is the
    same history going on, not another one: the second transfer copies the new turn,
    and the target reads back as the source for what the source kept, with the old
    turn still there below it."""
    from checkpoint_pg.inspect import Inspector
    from graphs import snapshot_summary

    with own_source(source_kind, tmp_path, request) as (src, src_opts):
        agent = build_tool_agent(src)
        cfg = {"configurable": {"thread_id": f"pruned-{uuid.uuid4().hex[:6]}"}}
        agent.invoke(weather_question("Paris"), cfg)
        first = len(list(src.list(cfg)))
        code, report, err = _transfer(capsys, src_opts, saver_target, "--json", "--no-progress")
        assert code == 0 and report["imported"] == first, err
        agent.invoke(weather_question("Rome"), cfg)
        new = len(list(src.list(cfg))) - first
        src.prune([cfg["configurable"]["thread_id"]], keep_last=new)
        assert len(list(src.list(cfg))) == new
        time.sleep(1)  # the copy's time, told from the source's last step
        code, report, err = _transfer(capsys, src_opts, saver_target, "--json", "--no-progress")
        assert code == 0, err
        assert report["imported"] == new and report["other_histories"] == report["diverged"] == [], report
        with make_saver() as target:
            assert assert_same_checkpoints(src, target) == new
            # dated by its steps, not by the copy (prune --older-than, the listing's order)
            (mine,), (theirs,) = Inspector(target).threads().threads, Inspector(src).threads().threads
            assert abs((mine.updated_at - theirs.updated_at).total_seconds()) < 0.5, (mine, theirs)
            assert len(list(target.list(cfg))) == first + new
            want = [snapshot_summary(s) for s in build_tool_agent(src).get_state_history(cfg)]
            got = [snapshot_summary(s) for s in build_tool_agent(target).get_state_history(cfg)]
            assert got[:new] == want
            assert build_tool_agent(target).get_state(cfg).values == agent.get_state(cfg).values


def _no_target(saver_target: Any) -> bool:
    """Whether the target database holds no tables of this test's (nor, for SQLite, a file)."""
    if saver_target.backend == "sqlite":
        return not Path(saver_target.conn_string).exists()
    import psycopg

    with psycopg.connect(saver_target.conn_string) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE %s", (saver_target.options["prefix"] + "%",)
        ).fetchone()
    return found == (0,)


def test_transfer_command_of_an_encrypted_database_with_a_hash_key(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    saver_target: Any,
    make_saver: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """The command with LANGGRAPH_AES_KEY and CHECKPOINT_PG_HASH_KEY copies a database the app
    wrote with an EncryptedSerializer and hash_key= and reads back equal with them; without
    either, the source cannot be read: said of the source (--from) with the variable to set,
    before the target is created."""
    pytest.importorskip("Crypto")
    from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

    from checkpoint_pg.errors import CheckpointPgError

    aes, hash_key = secrets.token_hex(8), secrets.token_bytes(32)
    monkeypatch.setenv("LANGGRAPH_AES_KEY", aes)
    opts = {"serde": EncryptedSerializer.from_pycryptodome_aes(), "hash_key": hash_key}
    monkeypatch.delenv("LANGGRAPH_AES_KEY")
    with own_source("sqlite", tmp_path, request, **opts) as (src, src_opts):
        cfg = {"configurable": {"thread_id": f"secret-{uuid.uuid4().hex[:6]}"}}
        build_tool_agent(src).invoke(weather_question("Oslo"), cfg)
        total = len(list(src.list(cfg)))
        shown = f"the source (--from {src_opts[1]})"
        for env, needed in (
            ({"CHECKPOINT_PG_HASH_KEY": hash_key.hex()}, "LANGGRAPH_AES_KEY"),
            ({"LANGGRAPH_AES_KEY": aes}, "CHECKPOINT_PG_HASH_KEY"),
        ):
            with monkeypatch.context() as m:
                for name, value in env.items():
                    m.setenv(name, value)
                code, out, err = _transfer(capsys, src_opts, saver_target, "--no-progress")
            assert code == 1 and shown in err and needed in err, err
            assert _no_target(saver_target), err
        monkeypatch.setenv("LANGGRAPH_AES_KEY", aes)
        monkeypatch.setenv("CHECKPOINT_PG_HASH_KEY", hash_key.hex())
        code, report, err = _transfer(capsys, src_opts, saver_target, "--json", "--no-progress")
        assert code == 0 and report["imported"] == total, err
        with make_saver(**opts) as target:
            assert assert_same_checkpoints(src, target) == total
            want = [s.values for s in build_tool_agent(src).get_state_history(cfg)]
            assert [s.values for s in build_tool_agent(target).get_state_history(cfg)] == want
        with make_saver() as keyless, pytest.raises(CheckpointPgError):
            keyless.get_tuple(cfg)


def test_transfer_command_says_of_the_source_a_later_thread_it_cannot_read(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    saver_target: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """A source whose first thread reads without LANGGRAPH_AES_KEY (written before the app
    took up encryption) and a later one does not: the transfer stops there, and says so
    of the source (--from), not as if of the target's saver."""
    pytest.importorskip("Crypto")
    from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

    with own_source("sqlite", tmp_path, request) as (src, src_opts):
        build_tool_agent(src).invoke(weather_question("Oslo"), {"configurable": {"thread_id": "a-plain"}})
    with monkeypatch.context() as m:
        m.setenv("LANGGRAPH_AES_KEY", secrets.token_hex(8))
        serde = EncryptedSerializer.from_pycryptodome_aes()
        with own_source("sqlite", tmp_path, request, serde=serde) as (src, src_opts):
            build_tool_agent(src).invoke(weather_question("Rome"), {"configurable": {"thread_id": "b-secret"}})
    code, out, err = _transfer(capsys, src_opts, saver_target, "--no-progress")
    assert code == 1 and f"the source (--from {src_opts[1]})" in err and "LANGGRAPH_AES_KEY" in err, err


def test_transfer_command_names_its_target(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """Without --url nor $CHECKPOINT_PG_URL the other commands use the demo file: a transfer
    into ./checkpoint_pg_demo.db (created for it) said 'imported N checkpoints' as if they
    had gone where the app will look. It is a usage error, as --from naming the very
    tables --url names (a copy onto itself, which only counted them as present)."""
    from checkpoint_pg.cli import main

    with own_source("sqlite", tmp_path, request) as (src, src_opts):
        build_tool_agent(src).invoke(weather_question("Lima"), {"configurable": {"thread_id": "lima"}})
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHECKPOINT_PG_URL", raising=False)
    capsys.readouterr()
    assert main(["transfer", *src_opts, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--url" in err and "CHECKPOINT_PG_URL" in err, err
    assert not list(tmp_path.glob("checkpoint_pg_demo.db*"))
    for same in (src_opts[1], f"./{Path(src_opts[1]).name}", f"sqlite:///{src_opts[1]}"):
        assert main(["transfer", *src_opts, "--url", same, "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert "the same tables" in err, err
    # another prefix of the same file is another database
    assert main(["transfer", *src_opts, "--url", src_opts[1], "--prefix", "copy_", "--no-progress"]) == 0


class _Chat(TypedDict, total=False):
    messages: Annotated[list[Any], add_messages]


def _build_chat(saver: Any) -> Any:
    """``speak`` answers with a message without id (add_messages gives it one in the state,
    the write keeps none); ``trim`` removes the first message (RemoveMessage); ``fail``,
    beside ``speak`` in the first step, raises while the input says so (its error and
    speak's message stay pending)."""

    def speak(state: _Chat) -> _Chat:
        return {"messages": [AIMessage(f"reply {len(state['messages'])}")]}

    def fail(state: _Chat) -> _Chat:
        if state["messages"][-1].content == "fail":
            raise RuntimeError("boom")
        return {}

    def trim(state: _Chat) -> _Chat:
        return {"messages": [RemoveMessage(id=state["messages"][0].id)]}

    b = StateGraph(_Chat)
    for name, node in (("speak", speak), ("fail", fail), ("trim", trim)):
        b.add_node(name, node)
    b.add_edge(START, "speak")
    b.add_edge(START, "fail")
    b.add_edge(["speak", "fail"], "trim")
    b.add_edge("trim", END)
    return b.compile(checkpointer=saver)


def _many_shapes(src: Any) -> list[tuple[Any, dict[str, Any]]]:
    """(graph builder, thread config) of threads of every shape a copy must keep: a
    DeltaChannel pruned (its kept checkpoints replay ancestors the prune kept), a
    subgraph paused, Sends pending, a fork by time travel (two branches), messages
    without ids in writes and RemoveMessage, a failed step's pending writes, nested
    subgraphs paused in a second run."""
    def cfg(tag: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": f"{tag}-{uuid.uuid4().hex[:6]}"}}

    out: list[tuple[Any, dict[str, Any]]] = []
    delta = cfg("delta")
    build_delta_graph(src).invoke({"n": 0, "target": 5, "items": []}, delta)
    build_delta_graph(src).invoke({"n": 0, "target": 3}, delta)
    src.prune([delta["configurable"]["thread_id"]], keep_last=2)
    out.append((build_delta_graph, delta))
    sub = cfg("sub")
    build_subgraph_graph(src).invoke({"topic": " Tea "}, sub)
    out.append((build_subgraph_graph, sub))
    fan = cfg("fan")
    build_map_reduce(src, interrupt_before_work=True).invoke({"items": ["a", "bb", "ccc"]}, fan)
    out.append((lambda s: build_map_reduce(s, interrupt_before_work=True), fan))
    fork = cfg("fork")
    agent = build_tool_agent(src)
    agent.invoke(weather_question("Paris"), fork)
    old = list(agent.get_state_history(fork))[-2]
    agent.invoke(None, agent.update_state(old.config, {"messages": [HumanMessage("forked", id="fork-1")]}))
    out.append((build_tool_agent, fork))
    chat = cfg("chat")
    _build_chat(src).invoke({"messages": [HumanMessage("hi")]}, chat)
    _build_chat(src).invoke({"messages": [HumanMessage("again")]}, chat)
    with pytest.raises(RuntimeError):
        _build_chat(src).invoke({"messages": [HumanMessage("fail")]}, chat)
    out.append((_build_chat, chat))
    nest = cfg("nest")  # a subgraph compiled with checkpointer=True: its history spans runs
    build_nested_subgraphs(src).invoke({"log": ["go"]}, nest)
    build_nested_subgraphs(src).invoke(Command(resume="salt"), nest)
    build_nested_subgraphs(src).invoke({"log": ["again"]}, nest)
    out.append((build_nested_subgraphs, nest))
    return out


@pytest.mark.parametrize("source_kind", SOURCES)
def test_an_interrupted_transfer_of_threads_of_every_shape_finishes_equal(
    capsys: pytest.CaptureFixture[str],
    source_kind: str,
    saver_target: Any,
    make_saver: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """A dry run first; a transfer stopped midway (its progress callback raising), then the command run
    again: it copies the rest only, and every checkpoint reads back equal, as does each
    thread through its graph (state with subgraphs, history, pending writes)."""
    from checkpoint_pg.inspect.transfer import transfer

    class Stop(Exception):
        pass

    def stop_at(k: int) -> Any:
        def progress(done: int, total: int, thread_id: str) -> None:
            if done == k:
                raise Stop
        return progress

    with own_source(source_kind, tmp_path, request) as (src, src_opts):
        threads = _many_shapes(src)
        total = len(list(src.list(None)))
        # a dry run on a target without tables counts all, and creates nothing
        code, report, err = _transfer(capsys, src_opts, saver_target, "--json", "--dry-run")
        assert code == 0 and report["imported"] == total and _no_target(saver_target), err
        with make_saver() as target, pytest.raises(Stop):
            transfer(src, target, progress=stop_at(total // 2))
        code, report, err = _transfer(capsys, src_opts, saver_target, "--json", "--no-progress")
        assert code == 0, err
        assert report["imported"] == total - total // 2 and report["pruned_here"] == 0, report
        assert report["diverged"] == [], report  # what the first run copied is not the target's own
        with make_saver() as target:
            assert assert_same_checkpoints(src, target) == total
            for build, cfg in threads:
                want = thread_summary(build(src), cfg, subgraphs=True)
                assert thread_summary(build(target), cfg, subgraphs=True) == want, cfg


def test_transfer_from_a_source_of_a_newer_release_says_to_upgrade_the_package_only(
    capsys: pytest.CaptureFixture[str], saver_target: Any, tmp_path: Path
) -> None:
    """A source migrated by a newer checkpoint_pg: the advice is to upgrade the package,
    which changes no table; the message does not say it changes the source's."""
    import sqlite3

    from checkpoint_pg import SqliteSaver

    newer = str(tmp_path / "newer.db")
    with SqliteSaver.from_conn_string(newer) as s:
        s.setup()
    with contextlib.closing(sqlite3.connect(newer)) as conn, conn:
        conn.execute("UPDATE cpg_alembic_version SET version_num = '9999_future'")
    code, out, err = _transfer(capsys, ["--from", newer], saver_target)
    assert code == 1 and f"the source (--from {newer})" in err and "upgrade the checkpoint-pg package" in err, err
    assert "changes the source" not in err, err
    assert _no_target(saver_target)


def test_transfer_into_a_thread_holding_another_history(
    capsys: pytest.CaptureFixture[str],
    saver_target: Any,
    make_saver: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """The target's app already ran a thread id the source holds: refused before anything
    is written (the other threads neither), exit 1 with --json too; with
    --skip-other-histories the others are copied, that one left as it is and named."""
    with own_source("sqlite", tmp_path, request) as (src, src_opts):
        for tid, city in (("shared", "Paris"), ("only-source", "Oslo")):
            build_tool_agent(src).invoke(weather_question(city), {"configurable": {"thread_id": tid}})
        shared = {"configurable": {"thread_id": "shared"}}
        with make_saver() as target:
            build_tool_agent(target).invoke(weather_question("Rome"), shared)
            before = [(t.config, t.checkpoint) for t in target.list(None)]
        for extra in ((), ("--json",)):
            code, out, err = _transfer(capsys, src_opts, saver_target, "--no-progress", *extra)
            assert code == 1 and "'shared'" in err and "another history" in err and not out, err
            with make_saver() as target:
                assert [(t.config, t.checkpoint) for t in target.list(None)] == before
        code, report, err = _transfer(
            capsys, src_opts, saver_target, "--no-progress", "--json", "--skip-other-histories"
        )
        assert code == 0 and report["other_histories"] == ["shared"], err
        assert report["thread_ids"] == ["only-source"] and report["imported"] == report["checkpoints"]
        with make_saver() as target:
            assert [(t.config, t.checkpoint) for t in target.list(shared)] == before
            only = {"configurable": {"thread_id": "only-source"}}
            assert build_tool_agent(target).get_state(only).values == build_tool_agent(src).get_state(only).values


def test_transfer_command_says_of_the_source_a_driver_error_reading_it_midway(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    saver_target: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """The source's file locked (an app still writing it, without WAL) while the copy reads
    it, after the first checks: the error names the source, not the target's --url as
    main() would, nor says 'nothing was changed' (what is copied stays: run it again)."""
    import sqlite3

    from checkpoint_pg import SqliteSaver

    with own_source("sqlite", tmp_path, request) as (src, src_opts):
        build_tool_agent(src).invoke(weather_question("Oslo"), {"configurable": {"thread_id": "oslo"}})
    reads = []
    real = SqliteSaver.get_tuple

    def locked_at_the_third(self: Any, config: Any) -> Any:
        reads.append(config)
        if len(reads) == 3:
            raise sqlite3.OperationalError("database is locked")
        return real(self, config)

    monkeypatch.setattr(SqliteSaver, "get_tuple", locked_at_the_third)
    code, out, err = _transfer(capsys, src_opts, saver_target, "--no-progress")
    assert code == 1 and f"the source (--from {src_opts[1]})" in err and "database is locked" in err, err
    assert saver_target.conn_string not in err and "nothing was changed" not in err, err


def test_a_transfer_onto_a_thread_both_databases_ran_on_since_says_so(
    capsys: pytest.CaptureFixture[str],
    saver_target: Any,
    make_saver: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """After a first transfer the moved app ran a turn on the target, and the old one, not
    stopped, a turn on the source. A second transfer adds the source's turn beside the
    target's: the thread has two branches, and its latest state is now the source's, the
    newer. Nothing is lost, but the command said only 'imported N': it names the thread
    (--dry-run first too), and both turns stay readable."""
    with own_source("sqlite", tmp_path, request) as (src, src_opts):
        cfg = {"configurable": {"thread_id": f"split-{uuid.uuid4().hex[:6]}"}}
        t = cfg["configurable"]["thread_id"]
        build_tool_agent(src).invoke(weather_question("Paris"), cfg)
        code, report, err = _transfer(capsys, src_opts, saver_target, "--json", "--no-progress")
        assert code == 0 and report["diverged"] == [], err
        with make_saver() as target:
            build_tool_agent(target).invoke(weather_question("Rome"), cfg)
            ours = build_tool_agent(target).get_state(cfg)
        build_tool_agent(src).invoke(weather_question("Oslo"), cfg)
        code, report, err = _transfer(capsys, src_opts, saver_target, "--json", "--dry-run")
        assert code == 0 and report["diverged"] == [t], report
        code, out, err = _transfer(capsys, src_opts, saver_target, "--no-progress")
        assert code == 0 and f"ran on both here and in the source since an earlier copy ({t!r})" in out, out
        with make_saver() as target:
            assert assert_same_checkpoints(src, target) == len(list(src.list(cfg)))
            assert build_tool_agent(target).get_state(ours.config).values == ours.values
            assert build_tool_agent(target).get_state(cfg).values == build_tool_agent(src).get_state(cfg).values
