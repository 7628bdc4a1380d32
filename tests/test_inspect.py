"""The inspection API (`checkpoint_pg.inspect.Inspector`) on real graphs, both backends.

Each test runs real LangGraph graphs (tests/graphs.py, the demo agent) on the
``saver`` fixture and checks what the Inspector reads back: the threads
listing, the per-superstep history, the replayed ``updates`` chunks against
the chunks the live stream produced, diffs, stats and keep-last pruning.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest
from graphs import (
    ChainState,
    FlakyError,
    build_chain,
    build_delta_graph,
    build_flaky_pair,
    build_map_reduce,
    build_review_graph,
    build_subgraph_graph,
    build_tool_agent,
    weather_question,
)
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.types import Command, interrupt


def _thread(prefix: str = "t") -> dict[str, Any]:
    return {"configurable": {"thread_id": f"{prefix}-{uuid.uuid4().hex[:10]}"}}


def _stream_runs(graph: Any, config: dict[str, Any], inputs: list[Any]) -> list[list[dict[str, Any]]]:
    """Stream each input as one run; the chunks each run produced live (up to an error)."""
    runs = []
    for inp in inputs:
        chunks: list[dict[str, Any]] = []
        try:
            for chunk in graph.stream(inp, config, stream_mode="updates"):
                chunks.append(chunk)
        except FlakyError:
            pass
        runs.append(chunks)
    return runs


@pytest.fixture
def inspector(saver: Any) -> Any:
    from checkpoint_pg.inspect import Inspector

    return Inspector(saver)


# -- threads -------------------------------------------------------------------------


def test_threads_newest_first_paginated_filtered_with_counts(saver: Any, inspector: Any) -> None:
    """threads(): newest first, cursor and offset pagination, metadata filter, per-thread counts and bytes."""
    graph = build_chain(saver)
    ids = []
    for i in range(5):
        cfg = _thread("list")
        cfg["metadata"] = {"user": "ann" if i % 2 == 0 else "bob", "n": i}
        graph.invoke({"log": []}, cfg)
        ids.append(cfg["configurable"]["thread_id"])
    newest_first = list(reversed(ids))

    page1 = inspector.threads(limit=2)
    assert [t.thread_id for t in page1] == newest_first[:2]
    assert page1.next_cursor
    page2 = inspector.threads(limit=2, cursor=page1.next_cursor)
    page3 = inspector.threads(limit=2, cursor=page2.next_cursor)
    assert [t.thread_id for t in [*page1, *page2, *page3]] == newest_first
    assert page3.next_cursor is None
    assert [t.thread_id for t in inspector.threads(limit=2, offset=2)] == newest_first[2:4]

    ann = inspector.threads(filter={"user": "ann"})
    assert [t.thread_id for t in ann] == [ids[4], ids[2], ids[0]]
    assert [t.thread_id for t in inspector.threads(filter={"user": "bob", "n": 3})] == [ids[3]]
    assert len(inspector.threads(filter={"user": "nobody"})) == 0

    for info in page1:
        stored = list(saver.list({"configurable": {"thread_id": info.thread_id}}))
        assert info.checkpoints == len(stored) == 5  # input + 3 nodes + final
        assert info.bytes and info.bytes > 0
        assert info.metadata["user"] in ("ann", "bob") and info.metadata["step"] == 3
        assert info.created_at <= info.updated_at
    lean = inspector.threads(limit=1, sizes=False).threads[0]
    assert lean.checkpoints is None and lean.bytes is None


def test_threads_rejects_bad_arguments(inspector: Any) -> None:
    """Bad limits, offsets, filters and cursors raise ConfigError naming the value."""
    from checkpoint_pg.errors import ConfigError

    with pytest.raises(ConfigError, match="limit"):
        inspector.threads(limit=0)
    with pytest.raises(ConfigError, match="offset"):
        inspector.threads(offset=-1)
    with pytest.raises(ConfigError, match="filter"):
        inspector.threads(filter=["x"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="cursor 'garbage'"):
        inspector.threads(cursor="garbage")


# -- history -------------------------------------------------------------------------


def test_history_one_entry_per_superstep_keyed_by_node(saver: Any, inspector: Any) -> None:
    """history(): step, ids, source and per-node updates; the interrupt and the resume on the paused step."""
    from checkpoint_pg.demo import REQUEST, build_demo_graph

    graph = build_demo_graph(saver)
    cfg = _thread("hist")
    graph.invoke({"messages": [HumanMessage(REQUEST, id="human-1")]}, cfg)
    graph.invoke(Command(resume=True), cfg)
    entries = inspector.history(cfg["configurable"]["thread_id"])

    assert [e.step for e in entries] == [-1, 0, 1, 2, 3, 4]
    assert [e.source for e in entries] == ["input"] + ["loop"] * 5
    assert all(e.checkpoint_ns == "" for e in entries)
    assert [e.parent_checkpoint_id for e in entries[1:]] == [e.checkpoint_id for e in entries[:-1]]
    assert [list(e.updates) for e in entries] == [
        [],
        ["__start__"],
        ["agent"],
        ["approval"],
        ["tools"],
        ["agent"],
    ]
    assert entries[1].updates["__start__"]["messages"][0].content == REQUEST
    ai = entries[2].updates["agent"]["messages"][0]
    assert isinstance(ai, AIMessage) and [c["name"] for c in ai.tool_calls] == ["lookup_order", "refund"]
    assert entries[3].updates["approval"] == {"messages": []}
    tools = entries[4].updates["tools"]["messages"]
    assert [type(m) for m in tools] == [ToolMessage, ToolMessage]
    # the pause: the interrupt raised from step 1, and the value it was resumed with
    (intr,) = entries[2].interrupts["approval"]
    assert intr.value["question"] == "Approve this refund?"
    assert entries[2].resumes == {"approval": True}
    assert not any(e.errors for e in entries)
    assert entries[-1].next == [] and entries[-1].pending == {}
    # each stored message write shows up once across the whole history
    written = [m.id for e in entries for u in e.updates.values() for m in (u or {}).get("messages", [])]
    assert len(written) == len(set(written)) == 5
    assert [e.checkpoint_id for e in inspector.history(cfg["configurable"]["thread_id"], limit=2)] == [
        e.checkpoint_id for e in entries[-2:]
    ]


def test_history_includes_subgraph_namespaces_and_pending_interrupt(saver: Any, inspector: Any) -> None:
    """Subgraph steps appear under their own namespace; a paused thread shows what waits."""
    graph = build_subgraph_graph(saver)
    cfg = _thread("sub")
    graph.invoke({"topic": " Tea "}, cfg)
    entries = inspector.history(cfg["configurable"]["thread_id"])
    child = [e for e in entries if e.checkpoint_ns]
    assert child and all(e.checkpoint_ns.startswith("child:") for e in child)
    assert [n for e in child for n in e.updates] == ["__start__", "research"]
    assert "ask" in child[-1].interrupts
    root = [e for e in entries if not e.checkpoint_ns]
    assert root[-1].interrupts and list(root[-1].interrupts) == ["child"]
    assert root[-1].next == ["child"]
    only_root = inspector.history(cfg["configurable"]["thread_id"], checkpoint_ns="")
    assert [e.checkpoint_id for e in only_root] == [e.checkpoint_id for e in root]


def test_history_shows_errors_and_pending_writes(saver: Any, inspector: Any) -> None:
    """A failed node's error is on the step it ran from; its sibling's finished write is pending."""
    fail = [True]
    graph = build_flaky_pair(saver, Counter(), fail)
    cfg = _thread("err")
    with pytest.raises(FlakyError):
        graph.invoke({"log": []}, cfg)
    last = inspector.history(cfg["configurable"]["thread_id"])[-1]
    assert "flaky failed" in str(last.errors["flaky"])
    assert last.pending == {"steady": {"log": ["steady"]}}
    assert sorted(last.next) == ["flaky", "steady"]


def test_history_of_unknown_thread_is_not_found(inspector: Any) -> None:
    """NotFoundError names the thread and says how to list the stored ones."""
    from checkpoint_pg.errors import NotFoundError

    with pytest.raises(NotFoundError, match="'no-such-thread'.*checkpoint-pg threads"):
        inspector.history("no-such-thread")
    with pytest.raises(NotFoundError, match="no-such-thread"):
        inspector.resolve("no-such-thread")


# -- replay ----------------------------------------------------------------------------


def _demo(saver: Any) -> tuple[Any, list[Any]]:
    from checkpoint_pg.demo import REQUEST, build_demo_graph

    return build_demo_graph(saver), [
        {"messages": [HumanMessage(REQUEST, id="human-1")]},
        Command(resume=True),
    ]


SCENARIOS = {
    "demo-interrupt-resume": _demo,
    "tool-agent": lambda s: (build_tool_agent(s), [weather_question("Paris"), weather_question("Rome")]),
    "subgraph-interrupt": lambda s: (build_subgraph_graph(s), [{"topic": " AI "}, Command(resume="hint")]),
    "interrupt-before-send": lambda s: (
        build_map_reduce(s, interrupt_before_work=True),
        [{"items": ["a"]}, None],
    ),
    "chain-two-inputs": lambda s: (build_chain(s), [{"log": []}, {"log": ["again"]}]),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_replay_equals_the_live_stream(saver: Any, inspector: Any, scenario: str) -> None:
    """runs()/replay_updates() rebuild from storage exactly the chunks stream_mode="updates" yielded live."""
    graph, inputs = SCENARIOS[scenario](saver)
    cfg = _thread(scenario)
    live = _stream_runs(graph, cfg, inputs)
    runs = inspector.runs(cfg["configurable"]["thread_id"])
    assert [r.chunks for r in runs] == live
    assert all(r.complete for r in runs)
    assert list(inspector.replay_updates(cfg["configurable"]["thread_id"])) == [
        c for run in live for c in run
    ]


def test_replay_parallel_sends_and_a_retried_error(saver: Any, inspector: Any) -> None:
    """Send fan-out (order within a step may differ live) and a failed-then-retried node (cached chunk)."""
    graph = build_map_reduce(saver)
    cfg = _thread("fan")
    live = _stream_runs(graph, cfg, [{"items": ["a", "bb", "ccc"]}])
    (run,) = inspector.runs(cfg["configurable"]["thread_id"])
    key = repr
    assert sorted(run.chunks, key=key) == sorted(live[0], key=key)
    assert [c for c in run.chunks if "work" in c] == [
        {"work": {"results": ["a=1"]}},
        {"work": {"results": ["bb=2"]}},
        {"work": {"results": ["ccc=3"]}},
    ]

    fail = [True]
    flaky = build_flaky_pair(saver, Counter(), fail)
    cfg = _thread("flaky")
    first = _stream_runs(flaky, cfg, [{"log": []}])
    fail[0] = False
    second = _stream_runs(flaky, cfg, [None])
    runs = inspector.runs(cfg["configurable"]["thread_id"])
    assert [r.chunks for r in runs] == first + second
    assert runs[1].chunks[0] == {"steady": {"log": ["steady"]}, "__metadata__": {"cached": True}}


def test_replay_by_run_id(saver: Any, inspector: Any) -> None:
    """With config["metadata"]["run_id"], replay_updates(run_id=...) yields that run's chunks only."""
    from checkpoint_pg.errors import NotFoundError

    graph, inputs = _demo(saver)
    cfg = _thread("runid")
    live = []
    for run_id, inp in zip(["run-a", "run-b"], inputs):
        live.append(list(graph.stream(inp, {**cfg, "metadata": {"run_id": run_id}}, stream_mode="updates")))
    t = cfg["configurable"]["thread_id"]
    assert [r.run_id for r in inspector.runs(t)] == ["run-a", "run-b"]
    assert list(inspector.replay_updates(t, run_id="run-a")) == live[0]
    assert list(inspector.replay_updates(t, run_id="run-b")) == live[1]
    with pytest.raises(NotFoundError, match="run-zzz"):
        list(inspector.replay_updates(t, run_id="run-zzz"))


def test_replay_of_repeated_interrupts_is_marked_incomplete(saver: Any, inspector: Any) -> None:
    """A node interrupting twice keeps only its last interrupt in storage: that run says complete=False."""
    graph = build_review_graph(saver)
    cfg = _thread("review")
    live = _stream_runs(graph, cfg, [{"topic": "tea"}, Command(resume=True), Command(resume="fine")])
    runs = inspector.runs(cfg["configurable"]["thread_id"])
    assert len(runs) == 3
    assert runs[0].complete is False and runs[0].chunks == live[0][:-1]  # the first interrupt is lost
    assert [r.chunks for r in runs[1:]] == live[1:]


# -- diff, show, stats -----------------------------------------------------------------------


def test_diff_lists_messages_added_and_changed_by_id(saver: Any, inspector: Any) -> None:
    """diff(): list channels report added/removed elements (messages by id); scalars before/after."""
    from checkpoint_pg.demo import REQUEST, build_demo_graph

    graph = build_demo_graph(saver)
    cfg = _thread("diff")
    graph.invoke({"messages": [HumanMessage(REQUEST, id="human-1")]}, cfg)
    graph.invoke(Command(resume=False), cfg)  # rejected: the AI message is replaced under its id
    t = cfg["configurable"]["thread_id"]
    paused = inspector.resolve(t, "-3")
    latest = inspector.resolve(t)
    d = inspector.diff(paused, latest)
    (msgs,) = [c for c in d.channels if c.channel == "messages"]
    assert msgs.status == "changed"
    assert [m.type for m in msgs.added] == ["tool", "ai"]
    assert msgs.removed == []
    ((old, new),) = msgs.changed
    assert old.id == new.id == "ai-1" and "rejected" in new.content
    assert [c.status for c in inspector.diff(latest, latest).channels] == ["same"]
    assert all(not c.channel.startswith("branch:") for c in d.channels)

    review = build_review_graph(saver)
    rcfg = _thread("rdiff")
    review.invoke({"topic": "tea"}, rcfg)
    rt = rcfg["configurable"]["thread_id"]
    rd = {c.channel: c for c in inspector.diff(inspector.resolve(rt, "-1"), inspector.resolve(rt)).channels}
    assert rd["draft"].status == "added" and rd["draft"].after == "A short note about tea."
    assert rd["topic"].status == "same"


def test_show_values_next_and_pending(saver: Any, inspector: Any) -> None:
    """show(): a paused checkpoint's values, the node it waits in and the interrupt."""
    graph = build_review_graph(saver)
    cfg = _thread("show")
    graph.invoke({"topic": "tea"}, cfg)
    view = inspector.show(cfg["configurable"]["thread_id"])
    assert view.values == {"topic": "tea", "draft": "A short note about tea."}
    assert view.next == ["review"] and view.step == 1
    assert view.interrupts["review"][0].value["ask"] == "approve?"
    first = inspector.show(cfg["configurable"]["thread_id"], "-2")
    assert first.source == "input" and first.values == {}


def test_stats_per_thread_and_total(saver: Any, inspector: Any) -> None:
    """stats(): counts equal what the saver lists; messages shared across checkpoints are stored once."""
    graph = build_tool_agent(saver)
    cfgs = [_thread("stats"), _thread("stats")]
    for cfg in cfgs:
        graph.invoke(weather_question("Paris"), cfg)
    ids = [c["configurable"]["thread_id"] for c in cfgs]
    st = inspector.stats(ids)
    assert sorted(s.thread_id for s in st.threads) == sorted(ids)
    for s in st.threads:
        tuples = list(saver.list({"configurable": {"thread_id": s.thread_id}}))
        assert s.checkpoints == len(tuples)
        assert s.writes == sum(len(t.pending_writes or []) for t in tuples)
        assert s.objects < s.references  # deduplicated
        assert s.bytes == s.checkpoint_bytes + s.ref_bytes + s.object_bytes > 0
    assert st.total.checkpoints == sum(s.checkpoints for s in st.threads)
    assert st.total.bytes == sum(s.bytes for s in st.threads)
    assert inspector.stats().total.checkpoints >= st.total.checkpoints


# -- update_state, next, short ids, functional API ----------------------------------------------


def _tid(cfg: dict[str, Any]) -> str:
    return str(cfg["configurable"]["thread_id"])


def _at(cfg: dict[str, Any], checkpoint_id: str, ns: str = "") -> dict[str, Any]:
    return {"configurable": {"thread_id": _tid(cfg), "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}}


def _hil_agent(saver: Any) -> Any:
    """agent -> tools -> agent, stopping before ``tools`` (interrupt_before) for a human to edit."""
    from langchain_core.tools import tool
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode

    @tool
    def search(q: str) -> str:
        """Search."""
        return f"results for {q}"

    def agent(state: MessagesState) -> dict[str, Any]:
        if isinstance(state["messages"][-1], ToolMessage):
            return {"messages": [AIMessage("done", id="ai-final")]}
        call = {"name": "search", "args": {"q": "cats"}, "id": "c1"}
        return {"messages": [AIMessage("", id="ai-1", tool_calls=[call])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([search]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", lambda s: "tools" if s["messages"][-1].tool_calls else END)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=saver, interrupt_before=["tools"])


def _abc(saver: Any, **compile_kw: Any) -> Any:
    """a -> b -> c; with ``join=True``, a -> (b, c) -> d where d waits for both (a join)."""
    from langgraph.graph import END, START, StateGraph

    join = compile_kw.pop("join", False)

    def make(name: str) -> Any:
        return lambda state: {"log": [name]}

    builder = StateGraph(ChainState)
    for name in "abcd" if join else "abc":
        builder.add_node(name, make(name))
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    if join:
        builder.add_edge("a", "c")
        builder.add_edge(["b", "c"], "d")
        builder.add_edge("d", END)
    else:
        builder.add_edge("b", "c")
        builder.add_edge("c", END)
    return builder.compile(checkpointer=saver, **compile_kw)


def test_update_state_shows_on_the_update_checkpoint_and_streams_nothing(saver: Any, inspector: Any) -> None:
    """The edit of interrupt_before + update_state + continue: on the update checkpoint, under its node;
    replay equals the live stream (the stop's empty interrupt chunk, no chunk for the edit)."""
    graph = _hil_agent(saver)
    cfg = _thread("hil")
    t = _tid(cfg)
    live = _stream_runs(graph, cfg, [{"messages": [HumanMessage("find cats", id="h1")]}])
    call = {"name": "search", "args": {"q": "dogs"}, "id": "c1"}
    graph.update_state(cfg, {"messages": [AIMessage("", id="ai-1", tool_calls=[call])]})  # as agent
    live += _stream_runs(graph, cfg, [None])
    assert live[0][-1] == {"__interrupt__": ()}

    assert [r.chunks for r in inspector.runs(t)] == live
    entries = inspector.history(t)
    assert [e.source for e in entries] == ["input", "loop", "loop", "update", "loop", "loop"]
    paused, update = entries[2], entries[3]
    assert paused.pending == {} and paused.next == ["tools"]
    assert inspector.show(t, paused.checkpoint_id).pending_writes == []
    assert list(update.updates) == ["agent"]
    (edited,) = update.updates["agent"]["messages"]
    assert edited.id == "ai-1" and edited.tool_calls[0]["args"] == {"q": "dogs"}
    names = [n for e in entries for n in (*e.updates, *e.pending)]
    assert names == ["__start__", "agent", "agent", "tools", "agent"]
    for e in entries:
        want = graph.get_state(_at(cfg, e.checkpoint_id)).next
        assert inspector.show(t, e.checkpoint_id).next == list(want)
    # history gives next on every entry, as get_state_history does
    lg = {s.config["configurable"]["checkpoint_id"]: sorted(s.next) for s in graph.get_state_history(cfg)}
    assert {e.checkpoint_id: e.next for e in entries} == lg


def test_update_state_names_the_node_it_was_applied_as(saver: Any, inspector: Any) -> None:
    """as_node when storage tells it (a node about to run, a node new to the thread, LangGraph's own
    choice when omitted), "(update)" when it cannot; an as_node="__input__" edit is input."""
    graph = _abc(saver, interrupt_before=["b"])
    for as_node, shown in [("b", "b"), ("c", "c"), (None, "a")]:
        cfg = _thread("as")
        live = _stream_runs(graph, cfg, [{"log": []}])
        graph.update_state(cfg, {"log": ["x"]}, as_node=as_node)
        if as_node != "c":  # as c: nothing left to run
            live += _stream_runs(graph, cfg, [None])
        (update,) = [e for e in inspector.history(_tid(cfg)) if e.source == "update"]
        assert update.updates == {shown: {"log": ["x"]}}, as_node
        assert [r.chunks for r in inspector.runs(_tid(cfg))] == live, as_node

    cfg = _thread("as-input")
    live = _stream_runs(graph, cfg, [{"log": []}])
    graph.update_state(cfg, {"log": ["x"]}, as_node="__input__")
    live += _stream_runs(graph, cfg, [None])
    entries = inspector.history(_tid(cfg))
    (edit,) = [e for e in entries if e.source == "input" and e.step != -1]
    assert edit.input == {"__start__": {"log": ["x"]}} and edit.updates == {}
    # the continued run has b (paused before) and a (the new input) in one step:
    # parallel tasks, which the live stream gives in either order
    assert [sorted(map(repr, r.chunks)) for r in inspector.runs(_tid(cfg))] == [
        sorted(map(repr, chunks)) for chunks in live
    ]

    chain = build_chain(saver)
    for as_node, shown in [(None, "c"), ("a", "(update)")]:  # a ran long ago: nothing stored says so
        cfg = _thread("done")
        chain.invoke({"log": []}, cfg)
        chain.update_state(cfg, {"log": ["x"]}, as_node=as_node)
        entries = inspector.history(_tid(cfg))
        assert entries[-1].source == "update" and entries[-1].updates == {shown: {"log": ["x"]}}
        assert entries[-2].pending == {}
        assert [c for r in inspector.runs(_tid(cfg)) for c in r.chunks] == [
            {n: {"log": [n]}} for n in "abc"
        ]


def test_updates_of_a_checkpoint_that_already_had_a_child_show_what_they_changed(
    saver: Any, inspector: Any
) -> None:
    """update_state on a past checkpoint (time travel) keeps no writes of its own, there
    being a child already: history shows what each update changed, under "(update)"."""
    chain = build_chain(saver)
    cfg = _thread("fork-edits")
    chain.invoke({"log": []}, cfg)
    past = [s for s in chain.get_state_history(cfg) if s.metadata["step"] == 1][0].config
    chain.update_state(past, {"log": ["edit1"]}, as_node="a")
    chain.update_state(past, {"log": ["edit2"]}, as_node="a")
    updates = [e.updates for e in inspector.history(_tid(cfg)) if e.source == "update"]
    assert updates == [{"(update)": {"log": ["edit1"]}}, {"(update)": {"log": ["edit2"]}}]


def test_next_is_what_langgraph_would_run(saver: Any, inspector: Any) -> None:
    """show().next equals graph.get_state(config).next at every checkpoint of every namespace:
    joins, Sends, subgraphs, interrupts, input checkpoints."""
    join = _abc(saver, join=True, interrupt_before=["d"])
    cfg = _thread("join")
    join.invoke({"log": []}, cfg)
    assert inspector.history(_tid(cfg))[-1].next == ["d"]
    assert inspector.show(_tid(cfg), "-3").next == ["__start__"]

    runs = [
        (join, cfg, []),
        (build_map_reduce(saver, interrupt_before_work=True), _thread("send"), [{"items": ["a", "b"]}, None]),
        (build_subgraph_graph(saver), _thread("sub"), [{"topic": "AI"}, Command(resume="hint")]),
        (build_flaky_pair(saver, Counter(), [False]), _thread("pair"), [{"log": []}]),
    ]
    for graph, config, inputs in runs:
        for inp in inputs:
            graph.invoke(inp, config)
        keys = inspector.checkpoint_keys(_tid(config))
        assert len({ns for ns, _ in keys}) == (2 if graph is runs[2][0] else 1)
        for ns, cid in keys:
            want = graph.get_state(_at(config, cid, ns)).next
            assert sorted(inspector.show(_tid(config), cid, checkpoint_ns=ns).next) == sorted(want), (ns, cid)


def test_resolve_takes_the_short_ids_history_prints(saver: Any, inspector: Any) -> None:
    """resolve() (so show and diff) takes any unique prefix or suffix of an id, such as history's."""
    from checkpoint_pg.cli import _short
    from checkpoint_pg.errors import ConfigError, NotFoundError

    graph = build_chain(saver)
    cfg = _thread("short")
    graph.invoke({"log": []}, cfg)
    t = _tid(cfg)
    ids = [e.checkpoint_id for e in inspector.history(t)]
    for cid in ids:
        assert inspector.resolve(t, _short(cid))["configurable"]["checkpoint_id"] == cid
        assert inspector.resolve(t, cid[:-4])["configurable"]["checkpoint_id"] == cid
        assert inspector.show(t, _short(cid)).checkpoint_id == cid
    common = ids[0][:6]  # the ids of one quick run share their time prefix
    assert all(i.startswith(common) for i in ids)
    with pytest.raises(ConfigError, match=f"'{common}' matches {len(ids)} checkpoints.*{ids[0]}"):
        inspector.resolve(t, common)
    with pytest.raises(NotFoundError, match="no checkpoint 'zzzzzz'"):
        inspector.resolve(t, "zzzzzz")
    with pytest.raises(NotFoundError, match="at least 6 characters"):
        inspector.resolve(t, ids[0][-5:])  # too short to match by more than chance


def test_replay_of_functional_api_tasks(saver: Any, inspector: Any) -> None:
    """@task calls replay under their function's name before the entrypoint's interrupt, and
    not again (as cached) on resume, as the live stream."""
    from langgraph.func import entrypoint, task

    @task
    def double(x: int) -> int:
        return x * 2

    @entrypoint(checkpointer=saver)
    def wf(n: int) -> dict[str, Any]:
        vals = [f.result() for f in [double(i) for i in range(n)]]
        return {"vals": vals, "ok": interrupt({"vals": vals})}

    cfg = _thread("func")
    live = _stream_runs(wf, cfg, [3, Command(resume=True)])
    runs = [r.chunks for r in inspector.runs(_tid(cfg))]
    assert runs[0] == [{"double": 0}, {"double": 2}, {"double": 4}, live[0][-1]]
    assert sorted(map(repr, live[0][:-1])) == sorted(map(repr, runs[0][:-1]))  # live: as they finish
    assert runs[1:] == live[1:] == [[{"wf": {"vals": [0, 2, 4], "ok": True}}]]
    for _, cid in inspector.checkpoint_keys(_tid(cfg)):
        assert inspector.show(_tid(cfg), cid).next == list(wf.get_state(_at(cfg, cid)).next)


def test_replay_streams_a_task_calls_interrupt_once(saver: Any, inspector: Any) -> None:
    """An interrupt raised in a @task call is stored for the call and for its caller (one
    Interrupt, by id); replay streams it once, as the live stream does."""
    from langgraph.func import entrypoint, task

    @task
    def ask(x: int) -> Any:
        return interrupt(f"ok {x}?")

    @entrypoint(checkpointer=saver)
    def wf(n: int) -> list[Any]:
        return [n, ask(n).result()]

    cfg = _thread("func-int")
    live = _stream_runs(wf, cfg, [3, Command(resume="yes")])
    runs = [r.chunks for r in inspector.runs(_tid(cfg))]
    assert [len(c) for c in live] == [1, 2]
    assert runs == live


def test_replay_of_a_resume_at_a_checkpoint_the_thread_moved_past(saver: Any, inspector: Any) -> None:
    """Command(resume=...) addressed at an interrupted checkpoint that already has a child
    reruns its tasks in a run of its own (a second "loop" child): replay gives that run,
    with the rerun task's chunk, as the live stream, not its chunks appended to the run before."""
    from langgraph.graph import END, START, StateGraph

    def ask(state: ChainState) -> dict[str, Any]:
        return {"log": [f"ask:{interrupt('ok?')}"]}

    builder = StateGraph(ChainState)
    builder.add_node("a", lambda s: {"log": ["a"]})
    builder.add_node("ask", ask)
    builder.add_node("d", lambda s: {"log": ["d"]})
    builder.add_edge(START, "a")
    builder.add_edge("a", "ask")
    builder.add_edge("ask", "d")
    builder.add_edge("d", END)
    graph = builder.compile(checkpointer=saver)
    cfg = _thread("resume-past")
    live = _stream_runs(graph, cfg, [{"log": []}])
    paused = graph.get_state(cfg).config
    live += _stream_runs(graph, cfg, [Command(resume="yes")])
    live.append(list(graph.stream(Command(resume="again"), paused, stream_mode="updates")))
    assert live[1] == live[2] == [{"ask": {"log": ["ask:yes"]}}, {"d": {"log": ["d"]}}]
    runs = inspector.runs(_tid(cfg))
    assert [r.chunks for r in runs] == live
    assert runs[2].first_checkpoint_id == paused["configurable"]["checkpoint_id"]


def _two_questions(saver: Any) -> Any:
    from langgraph.graph import END, START, StateGraph

    def ask(q: str) -> Any:
        return lambda state: {"log": [f"{q}:{interrupt(q)}"]}

    builder = StateGraph(ChainState)
    builder.add_node("ask1", ask("q1"))
    builder.add_node("ask2", ask("q2"))
    builder.add_node("end", lambda s: {"log": ["end"]})
    builder.add_edge(START, "ask1")
    builder.add_edge(START, "ask2")
    builder.add_edge(["ask1", "ask2"], "end")
    builder.add_edge("end", END)
    return builder.compile(checkpointer=saver)


def test_parallel_interrupts_resumed_together_replay_whole(saver: Any, inspector: Any) -> None:
    """Two parallel interrupts resumed by one Command(resume={id: value, ...}): replay
    gives the two runs as streamed. (Resumed by separate calls, they are stored the
    same way, so replay gives these two runs then too: see the README's limits.)"""
    graph = _two_questions(saver)
    cfg = _thread("both")
    live = _stream_runs(graph, cfg, [{"log": []}])
    ids = {i.value: i.id for i in graph.get_state(cfg).interrupts}
    live += _stream_runs(graph, cfg, [Command(resume={ids["q1"]: "A", ids["q2"]: "B"})])
    runs = inspector.runs(_tid(cfg))
    # parallel tasks stream as they finish, replay gives them in task order
    assert [sorted(map(repr, r.chunks)) for r in runs] == [sorted(map(repr, c)) for c in live]
    assert len(live[1]) == 3 and all(r.complete for r in runs)


# -- keep-last pruning -------------------------------------------------------------------------


def test_keep_last_keeps_n_checkpoints_and_a_usable_thread(saver: Any, inspector: Any) -> None:
    """keep_last(n): the newest n checkpoints per namespace stay (plus DeltaChannel ancestors); state intact."""
    from checkpoint_pg.inspect.maintenance import keep_last, plan_keep_last

    graph = build_delta_graph(saver)
    cfg = _thread("keep")
    graph.invoke({"items": [], "n": 0, "target": 5}, cfg)
    t = cfg["configurable"]["thread_id"]
    before = graph.get_state(cfg).values
    total = len(inspector.checkpoint_keys(t))
    (plan,) = plan_keep_last(inspector, [t], 3)
    keep_last(saver, [t], 3)
    after_keys = inspector.checkpoint_keys(t)
    assert 3 <= len(after_keys) < total
    # counted as prune deletes: the DeltaChannel's ancestors stay
    assert plan.checkpoints == total and plan.delete_at_most == total - len(after_keys)
    assert graph.get_state(cfg).values == before
    newest = sorted(cid for _, cid in after_keys)[-3:]
    assert [s.config["configurable"]["checkpoint_id"] for s in graph.get_state_history(cfg)][:3] == newest[
        ::-1
    ]
    # the thread goes on from where it was
    graph.invoke({"target": 6}, cfg)
    assert graph.get_state(cfg).values["n"] == 6


def test_written_messages_get_the_ids_the_next_checkpoint_gave_them(saver: Any, inspector: Any) -> None:
    """A write stored before add_messages gave its message an id (async durability) shows that id in history."""
    from langgraph.checkpoint.base import empty_checkpoint

    t = f"ids-{uuid.uuid4().hex[:8]}"
    human = HumanMessage("hi", id="h-1")
    c1 = empty_checkpoint()
    c1["channel_values"] = {"messages": [human]}
    c1["channel_versions"] = {"messages": "1"}
    cfg1 = saver.put(
        {"configurable": {"thread_id": t, "checkpoint_ns": ""}},
        c1,
        {"source": "loop", "step": 0},
        {"messages": "1"},
    )
    # stored without the id, as a write saved before add_messages gave one
    saver.put_writes(
        cfg1, [("messages", [ToolMessage("42", tool_call_id="c-1")])], "task-1", "~__pregel_pull, tools"
    )
    c2 = empty_checkpoint()
    c2["channel_values"] = {"messages": [human, ToolMessage("42", tool_call_id="c-1", id="tool-msg-1")]}
    c2["channel_versions"] = {"messages": "2"}
    saver.put(cfg1, c2, {"source": "loop", "step": 1}, {"messages": "2"})
    last = inspector.history(t)[-1]
    (msg,) = last.updates["tools"]["messages"]
    assert msg.id == "tool-msg-1" and msg.content == "42"


def test_saver_threads_lists_every_thread_id(saver) -> None:
    """saver.threads() (and athreads) is the short way to every thread id, in id order,
    across pages."""
    import asyncio  # noqa: PLC0415

    from langgraph.checkpoint.base import empty_checkpoint  # noqa: PLC0415

    for i, user in enumerate(["ann", "bob", "ann"]):
        cp = empty_checkpoint()
        saver.put(
            {"configurable": {"thread_id": f"th{i}", "checkpoint_ns": ""}},
            cp,
            {"source": "input", "step": -1, "parents": {}, "user": user},
            {},
        )
    assert list(saver.threads()) == ["th0", "th1", "th2"]
    assert list(saver.threads({"user": "ann"})) == ["th0", "th2"]

    async def collect() -> list[str]:
        return [t async for t in saver.athreads({"user": "bob"})]

    assert asyncio.run(collect()) == ["th1"]

    from checkpoint_pg.inspect import inspector  # noqa: PLC0415

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inspector, "MAX_PAGE", 2)  # three threads: two pages
        assert list(saver.threads()) == ["th0", "th1", "th2"]


async def test_async_saver_athreads(async_saver) -> None:
    """The async savers list thread ids too, page by page."""
    import asyncio  # noqa: PLC0415

    from langgraph.checkpoint.base import empty_checkpoint  # noqa: PLC0415

    from checkpoint_pg.inspect import inspector  # noqa: PLC0415

    for i, user in enumerate(["ann", "bob", "ann"]):
        await async_saver.aput(
            {"configurable": {"thread_id": f"a{i}", "checkpoint_ns": ""}},
            empty_checkpoint(),
            {"source": "input", "step": -1, "parents": {}, "user": user},
            {},
        )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inspector, "MAX_PAGE", 2)
        assert [t async for t in async_saver.athreads()] == ["a0", "a1", "a2"]
    assert [t async for t in async_saver.athreads({"user": "ann"})] == ["a0", "a2"]
    listed = await asyncio.to_thread(lambda: list(async_saver.threads({"user": "bob"})))
    assert listed == ["a1"]
