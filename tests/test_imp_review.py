"""Adversarial review of import-langgraph, copy_thread, leases and single_writer.

The incumbent savers (langgraph-checkpoint-sqlite / -postgres) run real graphs
of every kind; after the import every checkpoint reads back from our saver as
the incumbent returns it (the oracle), the graph's history and state are equal,
and the thread continues as it does on the incumbent. Copies of those threads
read back as their source and live on their own. Leases are exercised across
savers (processes), through PgBouncer in transaction mode, and async.
"""

from __future__ import annotations

import operator
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import pytest
from faultkit import wait_for_blocked
from graphs import (
    FlakyError,
    build_chain,
    build_delta_graph,
    build_flaky_pair,
    build_map_reduce,
    build_nested_subgraphs,
    build_panel,
    build_review_graph,
    build_subgraph_graph,
    build_tool_agent,
    normalize,
    snapshot_summary,
    weather_question,
)
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, RemoveMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command
from test_import import incumbent
from typing_extensions import TypedDict


def _tid(name: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": f"{name}-{uuid.uuid4().hex[:6]}"}}


class _MsgState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]


def build_remover(checkpointer: Any) -> Any:
    """``a`` answers, ``b`` removes the thread's first message (a RemoveMessage edit)."""

    def a(state: _MsgState) -> _MsgState:
        n = len(state["messages"])
        return {"messages": [AIMessage(f"a{n}", id=f"a-{n}")]}

    def b(state: _MsgState) -> _MsgState:
        return {"messages": [RemoveMessage(id=state["messages"][0].id)]}

    g = StateGraph(_MsgState)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.add_edge("b", END)
    return g.compile(checkpointer=checkpointer)


# name -> (graph builder, config, what the thread's next invoke is given)
Threads = dict[str, tuple[Callable[[Any], Any], dict[str, Any], Any]]


def write_every_kind(saver: Any) -> Threads:
    """Threads of every kind on ``saver``: paused subgraphs (one and two levels), Sends
    pending, two interrupts in one node (one answered), three parallel interrupts (one
    answered), an error pending, DeltaChannel state (also with durability exit),
    RemoveMessage edits, forks (replay, update_state on an old checkpoint, new input at
    an old checkpoint), durability exit, a tool agent's two turns."""
    th: Threads = {}
    c = _tid("sub")
    build_subgraph_graph(saver).invoke({"topic": " Tea "}, c)
    th["sub"] = (build_subgraph_graph, c, Command(resume="milk"))
    c = _tid("nest")
    build_nested_subgraphs(saver).invoke({"log": []}, c)
    th["nest"] = (build_nested_subgraphs, c, Command(resume="H"))

    def fan(cp: Any) -> Any:
        return build_map_reduce(cp, interrupt_before_work=True)

    c = _tid("fan")
    fan(saver).invoke({"items": ["a", "bb", "ccc"]}, c)
    th["fan"] = (fan, c, None)
    c = _tid("review")
    g = build_review_graph(saver)
    g.invoke({"topic": "tea"}, c)
    g.invoke(Command(resume=True), c)
    th["review"] = (build_review_graph, c, Command(resume="fine"))
    c = _tid("panel")
    g = build_panel(saver)
    g.invoke({"log": []}, c)
    g.invoke(Command(resume={g.get_state(c).interrupts[0].id: "yes"}), c)
    th["panel"] = (build_panel, c, None)

    def steady(cp: Any) -> Any:
        return build_flaky_pair(cp, Counter(), [False])

    c = _tid("flaky")
    with pytest.raises(FlakyError):
        build_flaky_pair(saver, Counter(), [True]).invoke({"log": []}, c)
    th["flaky"] = (steady, c, None)
    c = _tid("delta")
    g = build_delta_graph(saver)
    g.invoke({"target": 4}, c)
    g.invoke({"target": 6}, c)
    th["delta"] = (build_delta_graph, c, {"target": 8})
    c = _tid("dexit")
    g = build_delta_graph(saver)
    g.invoke({"target": 4}, c, durability="exit")
    g.invoke({"target": 6}, c, durability="exit")
    th["dexit"] = (build_delta_graph, c, {"target": 8})
    c = _tid("remove")
    g = build_remover(saver)
    g.invoke({"messages": [HumanMessage("hi", id="h1")]}, c)
    g.invoke({"messages": [HumanMessage("again", id="h2")]}, c)
    th["remove"] = (build_remover, c, {"messages": [HumanMessage("more", id="h3")]})
    c = _tid("fork")
    g = build_chain(saver)
    g.invoke({"log": ["x"]}, c)
    g.invoke({"log": ["y"]}, c)
    hist = list(g.get_state_history(c))
    g.invoke(None, hist[3].config)  # replay from an old checkpoint
    g.update_state(hist[5].config, {"log": ["edited"]})  # a fork by update_state
    g.invoke({"log": ["z"]}, hist[2].config)  # new input at an old checkpoint
    th["fork"] = (build_chain, c, {"log": ["w"]})
    c = _tid("exit")
    g = build_chain(saver)
    g.invoke({"log": ["x"]}, c, durability="exit")
    g.invoke({"log": ["y"]}, c, durability="exit")
    th["exit"] = (build_chain, c, {"log": ["q"]})
    c = _tid("agent")
    g = build_tool_agent(saver)
    g.invoke(weather_question("Paris"), c)
    g.invoke(weather_question("Rome"), c)
    th["agent"] = (build_tool_agent, c, weather_question("Oslo"))
    return th


def _pending(tup: Any) -> list[Any]:
    return sorted((t, c, repr(normalize(v))) for t, c, v in tup.pending_writes or [])


def _tuples(saver: Any, config: dict[str, Any]) -> list[Any]:
    return [
        (
            x.config["configurable"],
            x.checkpoint,
            x.metadata,
            x.parent_config and x.parent_config["configurable"],
            _pending(x),
        )
        for x in saver.list(config)
    ]


def assert_same_threads(oracle: Any, ours: Any, threads: Threads) -> None:
    """``list`` (so every checkpoint, its writes and parent), get_tuple of each, the
    graph's history and its state with subgraphs: equal to the oracle's."""
    for name, (build, c, _) in threads.items():
        expected = _tuples(oracle, c)
        assert _tuples(ours, c) == expected, name
        for conf, checkpoint, metadata, parent, pending in expected:
            got = ours.get_tuple({"configurable": conf})
            assert got is not None and got.checkpoint == checkpoint and got.metadata == metadata, name
            assert _pending(got) == pending, name
        assert_same_graph_state(build, oracle, c, ours, c, name)


def assert_same_graph_state(
    build: Callable[[Any], Any], a: Any, ca: dict[str, Any], b: Any, cb: dict[str, Any], name: str
) -> None:
    ga, gb = build(a), build(b)
    assert [snapshot_summary(s) for s in gb.get_state_history(cb)] == [
        snapshot_summary(s) for s in ga.get_state_history(ca)
    ], name
    assert snapshot_summary(gb.get_state(cb, subgraphs=True)) == snapshot_summary(
        ga.get_state(ca, subgraphs=True)
    ), name


def _run(build: Callable[[Any], Any], saver: Any, given: Any, config: dict[str, Any]) -> Any:
    try:
        out = normalize(build(saver).invoke(given, config))
    except Exception as exc:  # noqa: BLE001
        return repr(exc)
    if isinstance(out, dict) and "__interrupt__" in out:  # parallel tasks': in any order
        out["__interrupt__"] = sorted(out["__interrupt__"], key=repr)
    return out


def _import(source_url: str, ours: Any, **kw: Any) -> Any:
    from checkpoint_pg.inspect import Inspector
    from checkpoint_pg.inspect.importer import import_langgraph, open_incumbent

    ins = Inspector(ours)
    with open_incumbent(source_url, kw.pop("serde", None)) as source:
        return import_langgraph(
            source, ours, lambda t: set(ins.checkpoint_keys(t)), existing_writes=ins.write_channels, **kw
        )


# -- import ---------------------------------------------------------------------------


@pytest.mark.parametrize("source_kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_every_kind_of_thread_imports_equal_continues_and_copies(
    source_kind: str, make_saver: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Every kind of thread, imported: reads back as the incumbent gives it; a second
    import adds nothing; each thread continues on our saver as on the incumbent. A
    copy_thread of each reads back as its source, continues as the source does, and
    lives on once the source is deleted."""
    with incumbent(source_kind, tmp_path, request) as (src, url), make_saver() as ours:
        threads = write_every_kind(src)
        report = _import(url, ours)
        assert report.imported == report.checkpoints == len(list(src.list(None)))
        assert_same_threads(src, ours, threads)
        again = _import(url, ours)
        assert again.imported == 0 and again.completed == 0 and again.writes == 0, again
        # copies, before the threads go on
        copies = {name: {"configurable": {"thread_id": c["configurable"]["thread_id"] + "-copy"}} for name, (_, c, _) in threads.items()}
        for name, (build, c, _) in threads.items():
            ours.copy_thread(c["configurable"]["thread_id"], copies[name]["configurable"]["thread_id"])
            assert_same_graph_state(build, ours, c, ours, copies[name], name)
        # each thread continues as on the incumbent
        results = {}
        for name, (build, c, given) in threads.items():
            results[name] = _run(build, ours, given, c)
            assert results[name] == _run(build, src, given, c), name
            assert_same_graph_state(build, src, c, ours, c, name)
        # each copy continues as its source did (the source unchanged by it), and outlives it
        for name, (build, c, given) in threads.items():
            before = _tuples(ours, c)
            assert _run(build, ours, given, copies[name]) == results[name], name
            assert_same_graph_state(build, ours, c, ours, copies[name], name)
            assert _tuples(ours, c) == before, name
        for name, (_, c, _) in threads.items():
            ours.delete_thread(c["configurable"]["thread_id"])
        for name, (build, c, _) in threads.items():
            assert_same_graph_state(build, src, c, ours, copies[name], name)


def test_a_second_import_brings_an_interrupt_the_source_replaced(
    make_saver: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Imported while paused at a node's first interrupt; on the incumbent the node is
    resumed and interrupts again, replacing its interrupt write on the same checkpoint.
    The next import brings the new interrupt (it kept the first one: get_state asked
    "approve?" again where the incumbent asks "comment?"); the one after brings nothing."""
    with incumbent("sqlite", tmp_path, request) as (src, url), make_saver() as ours:
        c = _tid("review")
        g = build_review_graph(src)
        g.invoke({"topic": "tea"}, c)
        _import(url, ours)
        g.invoke(Command(resume=True), c)
        report = _import(url, ours)
        assert report.completed == 1, report
        threads: Threads = {"review": (build_review_graph, c, Command(resume="fine"))}
        assert [i.value["ask"] for i in build_review_graph(ours).get_state(c).interrupts] == ["comment?"]
        assert_same_threads(src, ours, threads)
        again = _import(url, ours)
        assert again.completed == 0 and again.writes == 0, again
        assert _run(build_review_graph, ours, Command(resume="fine"), c) == _run(
            build_review_graph, src, Command(resume="fine"), c
        )


@pytest.mark.parametrize("source_kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_imports_while_the_incumbent_writes_bring_everything(
    source_kind: str, make_saver: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Imports run again and again while the incumbent runs threads (DeltaChannel loops,
    a tool agent, interrupts answered); one more import after it stopped leaves our
    tables equal to the incumbent's, and the threads continue alike."""
    with incumbent(source_kind, tmp_path, request) as (src, url), make_saver() as ours:
        src.setup()  # the SQLite incumbent makes its tables at its first call
        threads: Threads = {}
        errors: list[BaseException] = []
        stop = threading.Event()

        def app() -> None:
            try:
                for i in range(3):
                    c = _tid(f"live{i}")
                    threads[f"delta{i}"] = (build_delta_graph, c, {"target": 9})
                    build_delta_graph(src).invoke({"target": 5}, c)
                    c = _tid(f"agent{i}")
                    threads[f"agent{i}"] = (build_tool_agent, c, weather_question("Oslo"))
                    for city in ("Paris", "Rome", "Lima"):
                        build_tool_agent(src).invoke(weather_question(city), c)
                    c = _tid(f"review{i}")
                    threads[f"review{i}"] = (build_review_graph, c, Command(resume="ok"))
                    g = build_review_graph(src)
                    g.invoke({"topic": f"t{i}"}, c)
                    g.invoke(Command(resume=True), c)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                stop.set()

        worker = threading.Thread(target=app, daemon=True)
        worker.start()
        rounds = 0
        while not stop.is_set() or rounds == 0:
            _import(url, ours)
            rounds += 1
        worker.join(60)
        assert not errors, errors
        _import(url, ours)
        assert rounds > 1
        assert_same_threads(src, ours, threads)
        for name, (build, c, given) in threads.items():
            assert _run(build, ours, given, c) == _run(build, src, given, c), name


# -- single_writer ----------------------------------------------------------------------


def _replay_everything(saver: Any) -> list[Any]:
    """Nested subgraphs (the middle one compiled with checkpointer=True, whose namespace
    keeps its history across runs), then from each checkpoint of the history: a replay,
    a resume there, and a resume of the thread's newest state."""
    g = build_nested_subgraphs(saver)
    c = {"configurable": {"thread_id": "nested"}}
    out = [normalize(g.invoke({"log": []}, c)), normalize(g.invoke(Command(resume="H"), c))]
    history = list(g.get_state_history(c))
    for snap in history[1:]:
        for given, config in ((None, snap.config), (Command(resume="H"), snap.config), (Command(resume="H"), c)):
            out.append(normalize(g.invoke(given, config)))
    out.append([snapshot_summary(s) for s in g.get_state_history(c)])
    return out


def test_single_writer_replays_of_a_graph_with_a_persistent_subgraph(make_saver: Any) -> None:
    """Replaying the parent graph starts a checkpointer=True subgraph afresh (no parent)
    in a namespace that holds its history. single_writer refused that put as another
    writer's; LangGraph lost the error inside the interrupted subgraph, so the run went
    on without the checkpoint and the next resume read the subgraph's older state.
    Now every run ends as on InMemorySaver."""
    from langgraph.checkpoint.memory import InMemorySaver

    expected = _replay_everything(InMemorySaver())
    with make_saver(single_writer=True) as saver:
        assert _replay_everything(saver) == expected


# -- leases -----------------------------------------------------------------------------


def _leasers_race(savers: list[Any], thread_id: str) -> list[str]:
    """Every saver takes a lease on ``thread_id`` at once (released together); what each got."""
    from checkpoint_pg import ThreadBusyError

    barrier = threading.Barrier(len(savers))
    hold = threading.Event()
    got: list[str] = ["?"] * len(savers)

    def one(i: int) -> None:
        barrier.wait()
        try:
            with savers[i].lease(thread_id, ttl=60):
                got[i] = "won"
                hold.wait(10)
        except ThreadBusyError:
            got[i] = "busy"

    workers = [threading.Thread(target=one, args=(i,)) for i in range(len(savers))]
    for w in workers:
        w.start()
    # the winner holds its lease until every other saver got its answer: released while
    # one was still asking (a loaded machine), that one won it too
    deadline = time.monotonic() + 10
    while "?" in got and time.monotonic() < deadline:
        time.sleep(0.01)
    hold.set()
    for w in workers:
        w.join(20)
    return got


def _lease_story(make: Callable[..., Any]) -> None:
    """Savers (processes) racing for one thread: one wins; the others' runs are refused and
    store nothing; a lease that lapses is taken over and its old holder refused; a thread
    deleted under a lease stops its holder and can be leased anew."""
    from checkpoint_pg import ThreadBusyError

    with make() as a, make() as b, make() as c, make() as d:
        for round_ in range(3):
            got = _leasers_race([a, b, c, d], f"race-{round_}")
            assert sorted(got) == ["busy", "busy", "busy", "won"], got
        config = {"configurable": {"thread_id": "story"}}
        # a's last put renews the lease for 1.5 s, which b's refused run must fall in
        # (0.5 s were not always enough for it on a loaded machine)
        with a.lease(config, ttl=1.5):
            out = build_map_reduce(a).invoke({"items": ["a", "bb"]}, config)
            with pytest.raises(ThreadBusyError):
                build_map_reduce(b).invoke({"items": ["zzz"]}, config)
            before = _tuples(c, config)
            time.sleep(1.7)  # lapsed: b takes the thread over
            with b.lease(config, ttl=60):
                with pytest.raises(ThreadBusyError, match="is gone"):
                    build_map_reduce(a).invoke({"items": ["late"]}, config)
                assert _tuples(c, config) == before
                assert build_map_reduce(b).invoke({"items": ["b"]}, config)["summary"] == "a=1,b=1,bb=2"
                c.delete_thread("story")
                with pytest.raises(ThreadBusyError, match="is gone"):
                    build_map_reduce(b).invoke({"items": ["gone"]}, config)
                assert _tuples(c, config) == []
                with d.lease(config, ttl=60):  # the deleted thread's lease went with it
                    assert build_map_reduce(d).invoke({"items": ["d"]}, config)["summary"] == "d=1"
        assert out["summary"] == "a=1,bb=2"
        assert [s.values.get("summary") for s in build_map_reduce(c).get_state_history(config)][0] == "d=1"


def test_lease_story(make_saver: Any) -> None:
    _lease_story(make_saver)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_lease_story_through_pgbouncer(make_saver: Any, pgbouncer_url: str) -> None:
    """The same through PgBouncer in transaction mode (server sessions shared)."""
    _lease_story(lambda: make_saver(conn_string=pgbouncer_url))


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_alease_through_pgbouncer(make_async_saver: Any, make_saver: Any, pgbouncer_url: str) -> None:
    """AsyncPostgresSaver through PgBouncer: alease holds the thread against a sync saver
    and another async one; parallel tasks and a subgraph write under it; released, the
    thread is free."""
    from checkpoint_pg import ThreadBusyError

    async with make_async_saver(conn_string=pgbouncer_url) as a, make_async_saver(conn_string=pgbouncer_url) as b:
        with make_saver(conn_string=pgbouncer_url) as sync:
            config = {"configurable": {"thread_id": "async-story"}}
            async with a.alease(config, ttl=60):
                out = await build_map_reduce(a).ainvoke({"items": ["a", "bb"]}, config)
                with pytest.raises(ThreadBusyError):
                    async with b.alease(config):
                        pass
                with pytest.raises(ThreadBusyError):
                    await build_map_reduce(b).ainvoke({"items": ["x"]}, config)
                with pytest.raises(ThreadBusyError):
                    build_map_reduce(sync).invoke({"items": ["x"]}, config)
            assert out["summary"] == "a=1,bb=2"
            sub = {"configurable": {"thread_id": "async-sub"}}
            async with b.alease(sub, ttl=60):
                await build_subgraph_graph(b).ainvoke({"topic": "Tea"}, sub)
            with sync.lease(sub, ttl=60):
                assert build_subgraph_graph(sync).invoke(Command(resume="milk"), sub)["answer"] == (
                    "researched tea / hint: milk"
                )


def test_a_crashed_holders_lease_lapses(saver_target: Any, make_saver: Any, tmp_path: Path) -> None:
    """A process that dies holding a lease (no release) keeps the thread for its ttl, no
    longer: refused at once, free after it; break_lease frees one of a long ttl."""
    import os
    import subprocess
    import sys

    from checkpoint_pg import ThreadBusyError

    code = (
        "import os, sys\n"
        "from checkpoint_pg import PostgresSaver, SqliteSaver\n"
        f"cls = {'SqliteSaver' if saver_target.backend == 'sqlite' else 'PostgresSaver'}\n"
        f"cm = cls.from_conn_string({saver_target.conn_string!r}, **{saver_target.options!r})\n"
        "s = cm.__enter__()\n"
        "ttl = float(sys.argv[1])\n"
        "held = s.lease('crashed-' + sys.argv[1], ttl=ttl)\n"
        "held.__enter__()\n"
        "os._exit(3)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent.parent / "src"), os.environ.get("PYTHONPATH", "")])}
    with make_saver() as ours:
        for ttl in ("2", "3600"):
            done = subprocess.run([sys.executable, "-c", code, ttl], env=env, capture_output=True, timeout=60)
            assert done.returncode == 3, done.stderr.decode()
            with pytest.raises(ThreadBusyError):
                with ours.lease(f"crashed-{ttl}"):
                    pass
        time.sleep(2.2)
        with ours.lease("crashed-2"):
            pass
        with pytest.raises(ThreadBusyError):
            with ours.lease("crashed-3600"):
                pass
        assert ours.break_lease("crashed-3600") is True
        with ours.lease("crashed-3600"):
            pass


def test_an_encrypted_incumbent_imports_equal_and_continues(
    make_saver: Any, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every kind of thread written with EncryptedSerializer imports into an encrypted
    saver equal to the incumbent's, and continues alike."""
    pytest.importorskip("Crypto")
    from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

    monkeypatch.setenv("LANGGRAPH_AES_KEY", "0123456789abcdef0123456789abcdef")
    serde = EncryptedSerializer.from_pycryptodome_aes()
    with incumbent("sqlite", tmp_path, request) as (src, url), make_saver(serde=serde) as ours:
        src.serde = serde
        threads = write_every_kind(src)
        report = _import(url, ours, serde=serde)
        assert report.imported == report.checkpoints > 0
        assert_same_threads(src, ours, threads)
        for name, (build, c, given) in threads.items():
            assert _run(build, ours, given, c) == _run(build, src, given, c), name


def test_one_open_source_imported_twice_brings_threads_started_between(
    make_saver: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A script that opens the incumbent once and imports in a loop until the cutover: a
    thread the app started between two imports comes with the second (the source's
    thread list was read once and kept, so it never came)."""
    from checkpoint_pg.inspect import Inspector
    from checkpoint_pg.inspect.importer import import_langgraph, open_incumbent

    with incumbent("sqlite", tmp_path, request) as (src, url), make_saver() as ours:
        first, later = _tid("first"), _tid("later")
        build_chain(src).invoke({"log": []}, first)
        ins = Inspector(ours)
        with open_incumbent(url) as source:
            def once() -> Any:
                return import_langgraph(
                    source, ours, lambda t: set(ins.checkpoint_keys(t)), existing_writes=ins.write_channels
                )

            assert once().imported == 5
            build_chain(src).invoke({"log": []}, later)
            build_chain(src).invoke({"log": []}, first)
            report = once()
        assert report.threads == 2 and report.imported == 10 and report.checkpoints == 15, report
        threads: Threads = {"first": (build_chain, first, None), "later": (build_chain, later, None)}
        assert_same_threads(src, ours, threads)


def test_import_into_a_single_writer_saver(make_saver: Any, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The app's own saver, in single-writer mode, given to import_langgraph: a thread with
    forks (replay, update_state, input at an old checkpoint) imports whole (its fork's steps
    were refused as another writer's, ThreadBusyError), and continues in that mode."""
    with incumbent("sqlite", tmp_path, request) as (src, url), make_saver(single_writer=True) as ours:
        threads = {k: v for k, v in write_every_kind(src).items() if k in ("fork", "nest", "review")}
        report = _import(url, ours, thread_ids=[c["configurable"]["thread_id"] for _, c, _ in threads.values()])
        assert report.imported == report.checkpoints
        assert ours.ctx.single_writer  # the saver given keeps its mode
        assert_same_threads(src, ours, threads)
        for name, (build, c, given) in threads.items():
            assert _run(build, ours, given, c) == _run(build, src, given, c), name


# -- copy_thread ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
@pytest.mark.parametrize("other", ["lease", "run"])
def test_copy_thread_racing_a_lease_or_a_run_on_its_new_target(
    make_saver: Any, saver_target: Any, other: str
) -> None:
    """Postgres: copy_thread onto a new thread id checked the target (no checkpoint, no
    lease) before copying, with no row to lock yet: another run's lease, or its first
    checkpoint, committed in between, and the copy wrote into a thread leased by
    another run, or merged the source's history with that run's. Now the two take
    turns: the copy first (the run, in single-writer mode, is then refused as it read
    the thread before the copy), or the copy refused."""
    import psycopg

    from checkpoint_pg import CheckpointPgError

    with make_saver() as a, make_saver(single_writer=True) as b:
        src, dst = {"configurable": {"thread_id": "copy-src"}}, {"configurable": {"thread_id": "copy-dst"}}
        build_chain(a).invoke({"log": []}, src)
        prefix = saver_target.options["prefix"]
        outcome: dict[str, Any] = {}
        with psycopg.connect(saver_target.conn_string) as blocker:
            # holds the source's row: the copy waits there, its checks of the target done
            blocker.execute(f"SELECT 1 FROM {prefix}threads WHERE thread_id = 'copy-src' FOR UPDATE")

            def copy() -> None:
                try:
                    a.copy_thread("copy-src", "copy-dst")
                    outcome["copy"] = "done"
                except CheckpointPgError as exc:
                    outcome["copy"] = type(exc).__name__

            def run() -> None:
                try:
                    if other == "lease":
                        with b.lease(dst, ttl=60):
                            outcome["seen"] = len(list(b.list(dst)))
                            time.sleep(0.5)
                            outcome["after"] = len(list(b.list(dst)))
                    else:
                        build_chain(b).invoke({"log": ["mine"]}, dst)
                except CheckpointPgError as exc:
                    outcome["run"] = type(exc).__name__

            copier = threading.Thread(target=copy)
            copier.start()
            # the copy is waiting for the source's row (not yet, maybe, after a fixed pause)
            wait_for_blocked(saver_target.conn_string, blocker.info.backend_pid)
            runner = threading.Thread(target=run)
            runner.start()
            time.sleep(0.3)
            blocker.commit()
            copier.join(20)
            runner.join(20)
        if other == "lease":
            assert "run" not in outcome, outcome
            # the thread never changed under the lease: copied before it was taken, or refused
            assert outcome["seen"] == outcome["after"], outcome
            assert outcome["copy"] == ("done" if outcome["seen"] else "ThreadBusyError"), outcome
        else:
            # one history: the run (single_writer) refused or going on from the copy, or the
            # copy refused; before, the copy merged the source's history into the run's
            assert outcome.get("run", "ThreadBusyError") == "ThreadBusyError", outcome
            assert _linear(a, dst), outcome
            assert outcome["copy"] in ("done", "ConfigError"), outcome


def _linear(saver: Any, config: dict[str, Any]) -> bool:
    """Every checkpoint but the first has the one before it as its parent."""
    tuples = list(saver.list(config))
    return all(
        t.parent_config and t.parent_config["configurable"]["checkpoint_id"] == n.config["configurable"]["checkpoint_id"]
        for t, n in zip(tuples, tuples[1:])
    )


def test_copy_of_a_missing_thread_leaves_no_empty_thread(saver: Any) -> None:
    """A copy from a thread that does not exist copies nothing and leaves no row of the
    target behind (the copy now makes the target's row first, to lock it)."""
    from checkpoint_pg.inspect import Inspector

    saver.copy_thread("no-such-thread", "copy-of-nothing")
    assert [t.thread_id for t in Inspector(saver).threads(sizes=False).threads] == []
    assert list(saver.list({"configurable": {"thread_id": "copy-of-nothing"}})) == []


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_import_langgraph_command_through_pgbouncer(
    capsys: pytest.CaptureFixture[str],
    make_saver: Any,
    saver_target: Any,
    pgbouncer_url: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """The command, its target behind PgBouncer in transaction mode: imports, a second
    run brings what the incumbent wrote since, and every thread reads back equal."""
    from checkpoint_pg.cli import main

    args = ["--url", pgbouncer_url, "--prefix", saver_target.options["prefix"], "--json", "--no-progress"]
    with incumbent("sqlite", tmp_path, request) as (src, url):
        c = _tid("review")
        g = build_review_graph(src)
        g.invoke({"topic": "tea"}, c)
        assert main(["import-langgraph", "--from", url, *args]) == 0
        g.invoke(Command(resume=True), c)
        threads: Threads = {"review": (build_review_graph, c, Command(resume="fine"))}
        threads.update(write_every_kind(src))
        capsys.readouterr()
        assert main(["import-langgraph", "--from", url, *args]) == 0, capsys.readouterr().err
        with make_saver(conn_string=pgbouncer_url) as ours:
            assert_same_threads(src, ours, threads)


def _at_once(runs: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Start every run at the same moment, each in a thread: what each returned, or
    "busy" for one that raised ThreadBusyError."""
    from checkpoint_pg import ThreadBusyError

    barrier = threading.Barrier(len(runs))
    got: dict[str, Any] = {}

    def one(name: str) -> None:
        barrier.wait()
        try:
            got[name] = runs[name]()
        except ThreadBusyError:
            got[name] = "busy"

    workers = [threading.Thread(target=one, args=(name,)) for name in runs]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    return got


class _SlowState(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


def build_slow_chain(checkpointer: Any, pause: float = 0.3) -> Any:
    """``a`` -> ``b``; ``a`` takes ``pause`` seconds: two runs started together overlap."""

    def a(state: _SlowState) -> _SlowState:
        time.sleep(pause)
        return {"log": ["a"]}

    def b(state: _SlowState) -> _SlowState:
        return {"log": ["b"]}

    g = StateGraph(_SlowState)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.add_edge("b", END)
    return g.compile(checkpointer=checkpointer)


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_single_writer_concurrent_runs_one_wins(make_saver: Any, durability: str) -> None:
    """Two processes run one thread at once with new input, single_writer=True: exactly one
    run ends, the other raises ThreadBusyError; the thread's history stays one line and
    holds nothing of the loser's input."""
    with make_saver(single_writer=True) as a, make_saver(single_writer=True) as b:
        config = {"configurable": {"thread_id": f"sw-{durability}"}}
        build_slow_chain(a, 0).invoke({"log": ["start"]}, config, durability=durability)
        for round_ in range(3):
            got = _at_once(
                {
                    name: partial(
                        build_slow_chain(saver).invoke, {"log": [f"{name}{round_}"]}, config, durability=durability
                    )
                    for name, saver in (("A", a), ("B", b))
                }
            )
            got = {n: "busy" if v == "busy" else "won" for n, v in got.items()}
            assert sorted(got.values()) == ["busy", "won"], (round_, got)
            loser = "A" if got["A"] == "busy" else "B"
            winner = "B" if loser == "A" else "A"
            log = build_slow_chain(a).get_state(config).values["log"]
            if f"{loser}{round_}" in log:
                # the loser's first put (its input) went in before the winner read the thread
                # (a loaded machine ran one far ahead of the other): the winner built on it and
                # the loser was refused at its next step, as README's single_writer says ("either
                # run's step"); never after the winner's input, which would be a fork merged
                assert log.index(f"{loser}{round_}") < log.index(f"{winner}{round_}"), log
            assert _linear(a, config), round_


def test_imported_threads_time_travel_as_on_the_incumbent(
    make_saver: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """From every checkpoint of an imported thread (replay with no input, and the
    thread's own next input or resume given there), the run ends as the same run on the
    incumbent, and the histories stay equal."""
    with incumbent("sqlite", tmp_path, request) as (src, url), make_saver() as ours:
        threads = {k: v for k, v in write_every_kind(src).items() if k in ("review", "panel", "delta", "sub", "flaky", "remove")}
        _import(url, ours)
        for name, (build, c, given) in threads.items():
            history = list(build(src).get_state_history(c))
            for snap in history:
                at = {"configurable": dict(snap.config["configurable"])}
                for arg in (None, given):
                    assert _run(build, ours, arg, at) == _run(build, src, arg, at), (name, snap.metadata)
            assert_same_graph_state(build, src, c, ours, c, name)


def test_imported_threads_keep_their_age(make_saver: Any, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A thread the incumbent last wrote years ago is, once imported, as old as its
    checkpoints say (created at its first, updated at its last): before, every imported
    thread was created and updated at the import, so `prune --older-than` found none of
    them old and `threads` listed them all as just written. A thread run on since on
    our saver keeps the time of its own last write."""
    import datetime as dt

    from langgraph.checkpoint.base import empty_checkpoint

    from checkpoint_pg.inspect import Inspector

    def put_old(saver: Any, config: dict[str, Any], ts: str, n: int) -> dict[str, Any]:
        cp = empty_checkpoint()
        cp["ts"] = ts
        ver = saver.get_next_version(None, None)
        cp["channel_values"] = {"n": n}
        cp["channel_versions"] = {"n": ver}
        return saver.put(config, cp, {"source": "loop", "step": n, "parents": {}}, {"n": ver})

    with incumbent("sqlite", tmp_path, request) as (src, url), make_saver() as ours:
        old = {"configurable": {"thread_id": "old", "checkpoint_ns": ""}}
        at = put_old(src, old, "2021-03-04T05:06:07.000000+00:00", 0)
        put_old(src, at, "2021-03-05T05:06:07.000000+00:00", 1)
        fresh = {"configurable": {"thread_id": "fresh"}}
        build_chain(src).invoke({"log": []}, fresh)
        _import(url, ours)
        ins = Inspector(ours)
        cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)
        assert ins.thread_ids_updated_before(cutoff) == ["old"]
        info = {t.thread_id: t for t in ins.threads(sizes=False).threads}
        assert info["old"].created_at == dt.datetime(2021, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc)
        assert info["old"].updated_at == dt.datetime(2021, 3, 5, 5, 6, 7, tzinfo=dt.timezone.utc)
        # run on since on our saver: its own write is its age, whatever a later import brings
        build_chain(ours).invoke({"log": []}, {"configurable": {"thread_id": "old"}})
        _import(url, ours)
        assert ins.thread_ids_updated_before(cutoff) == []


class _AskState(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


def build_slow_ask(checkpointer: Any) -> Any:
    """``start`` -> ``ask`` (interrupts; once resumed, takes 0.3 s) -> ``end``."""
    from langgraph.types import interrupt

    def ask(state: _AskState) -> _AskState:
        answer = interrupt("q")
        time.sleep(0.3)
        return {"log": [f"ans={answer}"]}

    g = StateGraph(_AskState)
    g.add_node("start", lambda s: {"log": ["s"]})
    g.add_node("ask", ask)
    g.add_node("end", lambda s: {"log": ["e"]})
    g.add_edge(START, "start")
    g.add_edge("start", "ask")
    g.add_edge("ask", "end")
    g.add_edge("end", END)
    return g.compile(checkpointer=checkpointer)


def _racing_resumes(a: Any, b: Any, leased: bool) -> tuple[dict[str, Any], list[Any]]:
    """Two processes resume one paused thread at once with their own answers; what each
    got, and the resume values stored on the paused checkpoint afterwards."""
    config = {"configurable": {"thread_id": "paused"}}
    build_slow_ask(a).invoke({"log": []}, config)
    paused = build_slow_ask(a).get_state(config).config

    def run(name: str, saver: Any) -> Any:
        if not leased:
            return build_slow_ask(saver).invoke(Command(resume=name), config)["log"]
        with saver.lease(config, ttl=60):
            return build_slow_ask(saver).invoke(Command(resume=name), config)["log"]

    got = _at_once({"A": partial(run, "A", a), "B": partial(run, "B", b)})
    tup = a.get_tuple(paused)
    resumes = sorted({repr(v) for _, ch, v in tup.pending_writes if ch == "__resume__"})
    return got, resumes


def test_racing_resumes_under_leases_store_only_the_winners(make_saver: Any) -> None:
    """Under leases, of two resumes racing, the loser is refused before it writes: the
    paused checkpoint keeps the winner's resume value only."""
    with make_saver() as a, make_saver() as b:
        got, resumes = _racing_resumes(a, b, leased=True)
        assert sorted(map(str, got.values())).count("busy") == 1, got
        winner = next(n for n, v in got.items() if v != "busy")
        assert got[winner] == ["s", f"ans={winner}", "e"]
        assert resumes == sorted({repr(winner), repr([winner])}), resumes


@pytest.mark.xfail(
    strict=True,
    reason="single_writer without a lease cannot tell the runs apart before their first put: "
    "a resume is a special write that replaces (as in LangGraph), so the refused run's resume "
    "value stays on the paused checkpoint, over the winner's. Use a lease.",
)
def test_racing_resumes_in_single_writer_mode_store_only_the_winners(make_saver: Any) -> None:
    with make_saver(single_writer=True) as a, make_saver(single_writer=True) as b:
        for _ in range(3):  # the loser's write lands last in most rounds, not in all
            a.delete_thread("paused")
            got, resumes = _racing_resumes(a, b, leased=False)
            assert sorted(map(str, got.values())).count("busy") == 1, got
            winner = next(n for n, v in got.items() if v != "busy")
            assert resumes == sorted({repr(winner), repr([winner])}), (got, resumes)


def test_a_step_whose_id_sorts_before_its_parents_imports(
    make_saver: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Checkpoint ids are times from the clock of the machine that ran the step: a step
    continued on a machine whose clock is behind gets an id below its parent's. The
    import put checkpoints by id, that step before its parent, and failed (BaseGone:
    "its thread was deleted or pruned"); now each goes after its parent, and the thread
    reads back as the incumbent's."""
    from langgraph.checkpoint.base import empty_checkpoint

    def put(saver: Any, config: dict[str, Any], cid: str, n: int) -> dict[str, Any]:
        cp = empty_checkpoint()
        cp["id"] = cid
        cp["channel_values"] = {"n": n, "notes": ["a long enough note"] * 3}
        cp["channel_versions"] = {"n": f"{n + 1:032}.0.5", "notes": f"{1:032}.0.7"}
        new = {"n": cp["channel_versions"]["n"]}
        if n == 0:
            new["notes"] = cp["channel_versions"]["notes"]
        return saver.put(config, cp, {"source": "loop", "step": n, "parents": {}}, new)

    with incumbent("sqlite", tmp_path, request) as (src, url), make_saver() as ours:
        config = {"configurable": {"thread_id": "skewed", "checkpoint_ns": ""}}
        first = put(src, config, "1f000000-0000-6000-8000-000000000005", 0)
        second = put(src, first, "1f000000-0000-6000-8000-000000000003", 1)
        put(src, second, "1f000000-0000-6000-8000-000000000009", 2)
        report = _import(url, ours)
        assert report.imported == 3
        assert _tuples(ours, config) == _tuples(src, config)
        assert ours.get_tuple(config).checkpoint == src.get_tuple(config).checkpoint


def test_pruned_here_or_interrupted_told_apart_when_ids_sort_before_their_parents(
    make_saver: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A thread whose second step's id sorts below its parent's (5 -> 3 -> 9): pruned here to
    its newest (9), an import again brings neither 5 nor 3 back; an import stopped after its
    first checkpoint (5) holds one with an id above the missing 3, and still resumes whole."""
    from langgraph.checkpoint.base import empty_checkpoint

    from checkpoint_pg.inspect import Inspector
    from checkpoint_pg.inspect.importer import import_langgraph, open_incumbent

    def put(saver: Any, config: dict[str, Any], cid: str, n: int) -> dict[str, Any]:
        cp = empty_checkpoint()
        cp["id"] = cid
        cp["channel_values"] = {"n": n}
        cp["channel_versions"] = {"n": f"{n + 1:032}.0.5"}
        return saver.put(config, cp, {"source": "loop", "step": n, "parents": {}}, cp["channel_versions"])

    class Stop(Exception):
        pass

    def stop_after_first(done: int, total: int, thread: str) -> None:
        if done == 1:
            raise Stop

    with incumbent("sqlite", tmp_path, request) as (src, url), make_saver() as ours:
        config = {"configurable": {"thread_id": "skewed", "checkpoint_ns": ""}}
        first = put(src, config, "1f000000-0000-6000-8000-000000000005", 0)
        second = put(src, first, "1f000000-0000-6000-8000-000000000003", 1)
        put(src, second, "1f000000-0000-6000-8000-000000000009", 2)
        assert _import(url, ours).imported == 3
        ours.prune(["skewed"], keep_last=1)
        report = _import(url, ours)
        assert report.imported == 0 and report.pruned_here == 2, report
        assert [t.config["configurable"]["checkpoint_id"][-1] for t in ours.list(config)] == ["9"]
        ours.delete_thread("skewed")
        ins = Inspector(ours)
        with open_incumbent(url) as source, pytest.raises(Stop):
            import_langgraph(source, ours, lambda t: set(ins.checkpoint_keys(t)), progress=stop_after_first)
        assert [t.config["configurable"]["checkpoint_id"][-1] for t in ours.list(config)] == ["5"]
        report = _import(url, ours)
        assert report.imported == 2 and report.pruned_here == 0, report
        assert _tuples(ours, config) == _tuples(src, config)


@pytest.mark.parametrize("source_kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_every_kind_of_thread_pruned_here_stays_pruned(
    source_kind: str, make_saver: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Every kind of thread (subgraph calls, forks, Sends, DeltaChannel), imported, pruned here
    to its newest checkpoint per namespace (a subgraph call going whole with the root checkpoint
    it started from), imported again: nothing comes back, and each thread continues as on the
    incumbent."""
    from checkpoint_pg.inspect import Inspector

    with incumbent(source_kind, tmp_path, request) as (src, url), make_saver() as ours:
        threads = write_every_kind(src)
        c = _tid("calls")  # a finished subgraph call, then one paused
        g = build_subgraph_graph(src)
        g.invoke({"topic": "Tea"}, c)
        g.invoke(Command(resume="milk"), c)
        g.invoke({"topic": "Coffee"}, c)
        threads["calls"] = (build_subgraph_graph, c, Command(resume="sugar"))
        total = _import(url, ours).imported
        ours.prune([c["configurable"]["thread_id"] for _, c, _ in threads.values()], keep_last=1)
        kept = Inspector(ours).stats().total.checkpoints
        assert kept < total
        report = _import(url, ours)
        assert report.imported == 0 and report.pruned_here == total - kept, report
        assert sorted(report.pruned_threads) == sorted(report.thread_ids)
        assert Inspector(ours).stats().total.checkpoints == kept
        for name, (build, c, given) in threads.items():
            assert _run(build, ours, given, c) == _run(build, src, given, c), name


def test_forks_and_time_travel_under_a_lease_in_single_writer_mode(make_saver: Any) -> None:
    """The lease holder, in single-writer mode, replays, forks by update_state and gives
    new input at an old checkpoint, ending as on InMemorySaver; meanwhile another saver's
    fork of the thread is refused and stores nothing."""
    from langgraph.checkpoint.memory import InMemorySaver

    from checkpoint_pg import ThreadBusyError

    def story(saver: Any, other: Any | None) -> list[Any]:
        g = build_chain(saver)
        c = {"configurable": {"thread_id": "forked"}}
        out = [normalize(g.invoke({"log": ["x"]}, c)), normalize(g.invoke({"log": ["y"]}, c))]
        hist = list(g.get_state_history(c))
        out.append(normalize(g.invoke(None, hist[3].config)))
        g.update_state(hist[5].config, {"log": ["edited"]})
        if other is not None:
            before = _tuples(saver, c)
            with pytest.raises(ThreadBusyError):
                build_chain(other).update_state(hist[4].config, {"log": ["intruder"]})
            with pytest.raises(ThreadBusyError):
                build_chain(other).invoke(None, hist[2].config)
            assert _tuples(saver, c) == before
        out.append(normalize(g.invoke({"log": ["z"]}, hist[2].config)))
        out.append(normalize(g.invoke({"log": ["w"]}, c)))
        out.append([snapshot_summary(s) for s in g.get_state_history(c)])
        return out

    expected = story(InMemorySaver(), None)
    with make_saver(single_writer=True) as saver, make_saver(single_writer=True) as other:
        with saver.lease("forked", ttl=60):
            assert story(saver, other) == expected


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_import_from_an_incumbent_behind_pgbouncer(
    capsys: pytest.CaptureFixture[str],
    make_saver: Any,
    saver_target: Any,
    pgbouncer_url: str,
    fresh_pg_url: str,
) -> None:
    """The incumbent's database reached through PgBouncer in transaction mode (which
    refuses a connection's startup `options`): the command imports it all the same."""
    from langgraph.checkpoint.postgres import PostgresSaver as Incumbent
    from psycopg.conninfo import conninfo_to_dict

    from checkpoint_pg.cli import main
    from fixtures.postgres import with_dbname

    source = with_dbname(pgbouncer_url, conninfo_to_dict(fresh_pg_url)["dbname"])
    with Incumbent.from_conn_string(fresh_pg_url) as src:
        src.setup()
        threads = {k: v for k, v in write_every_kind(src).items() if k in ("review", "sub", "agent")}
        code = main(
            ["import-langgraph", "--from", source, "--url", saver_target.conn_string,
             "--prefix", saver_target.options["prefix"], "--json", "--no-progress"]
        )
        assert code == 0, capsys.readouterr().err
        with make_saver() as ours:
            assert_same_threads(src, ours, threads)


@pytest.mark.xfail(
    strict=True,
    reason="LangGraph drops a background put's error when the run ends in an interrupt "
    "(BackgroundExecutor.__exit__ re-raises only without an exception in flight): under "
    "durability='async', the refused run's subgraph interrupts and returns as if it had won",
)
def test_single_writer_racing_runs_into_an_interrupting_subgraph(make_saver: Any) -> None:
    """Two runs resume a thread paused before a subgraph that interrupts, at once, in
    single-writer mode (LangGraph's default durability): one should be refused."""
    with make_saver(single_writer=True) as a, make_saver(single_writer=True) as b:
        for round_ in range(3):
            config = {"configurable": {"thread_id": f"into-sub-{round_}"}}
            build_subgraph_graph(a).invoke({"topic": "Tea"}, config, interrupt_before=["child"])
            got = _at_once(
                {name: partial(build_subgraph_graph(s).invoke, None, config) for name, s in (("A", a), ("B", b))}
            )
            assert list(got.values()).count("busy") == 1, (round_, got)


async def test_import_into_an_async_saver(
    make_async_saver: Any, make_saver: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """import_langgraph given an async saver (run in a worker thread, as its sync methods
    want): the threads read back equal and keep their age."""
    import asyncio
    import datetime as dt

    from checkpoint_pg.inspect import Inspector
    from checkpoint_pg.inspect.importer import import_langgraph, open_incumbent

    with incumbent("sqlite", tmp_path, request) as (src, url):
        threads = {k: v for k, v in write_every_kind(src).items() if k in ("review", "sub", "fork")}
        async with make_async_saver() as target:
            with make_saver() as reader:
                ins = Inspector(reader)

                def run() -> Any:
                    with open_incumbent(url) as source:
                        return import_langgraph(source, target, lambda t: set(ins.checkpoint_keys(t)))

                report = await asyncio.to_thread(run)
                assert report.imported == report.checkpoints > 0
                assert_same_threads(src, reader, threads)
                ages = {t.thread_id: t.updated_at for t in ins.threads(sizes=False).threads}
                for _, c, _ in threads.values():
                    last = max(dt.datetime.fromisoformat(x.checkpoint["ts"]) for x in src.list(c))
                    assert ages[c["configurable"]["thread_id"]] == last


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_aleases_racing_through_pgbouncer(make_async_saver: Any, pgbouncer_url: str) -> None:
    """Four async savers (processes) take a lease on one new thread at once through
    PgBouncer, five rounds: one holds it, three are refused; released, it is free."""
    import asyncio
    import contextlib

    from checkpoint_pg import ThreadBusyError

    async with contextlib.AsyncExitStack() as stack:
        savers = [await stack.enter_async_context(make_async_saver(conn_string=pgbouncer_url)) for _ in range(4)]
        for round_ in range(5):
            thread = f"arace-{round_}"
            start, hold = asyncio.Event(), asyncio.Event()

            async def take(saver: Any) -> str:
                await start.wait()
                try:
                    async with saver.alease(thread, ttl=60):
                        await hold.wait()
                        return "won"
                except ThreadBusyError:
                    return "busy"

            tasks = [asyncio.create_task(take(s)) for s in savers]
            await asyncio.sleep(0.05)
            start.set()
            while sum(t.done() for t in tasks) < 3:
                await asyncio.sleep(0.01)
            hold.set()
            assert sorted(await asyncio.gather(*tasks)) == ["busy", "busy", "busy", "won"]
            async with savers[round_ % 4].alease(thread, ttl=60):
                pass
