"""Lifecycle operations (delete_thread, delete_for_runs, prune, copy_thread) on real
graphs, on both backends: every checkpoint that remains reads back exactly as it did
before, from the saver that ran the graph and from a fresh one; a copy reads as its
source; nothing is left that nothing refers to; the thread goes on afterwards.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Sequence
from typing import Annotated, Any

import pytest
from graphs import (
    build_delta_graph,
    build_map_reduce,
    build_nested_subgraphs,
    build_subgraph_graph,
    concat_reducer,
)
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, RemoveMessage, ToolMessage
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, interrupt
from test_storage import raw_for
from typing_extensions import TypedDict


def _cfg(name: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": f"lc-{name}-{uuid.uuid4().hex[:8]}"}}


def _tid(cfg: dict[str, Any]) -> str:
    return cfg["configurable"]["thread_id"]


def _plain(value: Any) -> Any:
    # exceptions (an __error__ write) compare by identity: by repr then
    if isinstance(value, BaseException):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def _values(values: dict[str, Any]) -> dict[str, Any]:
    """State values without the ids add_messages gives id-less messages (ToolNode's): random."""
    out = dict(values)
    if "messages" in out:
        out["messages"] = [
            m.model_copy(update={"id": None}) if isinstance(m, ToolMessage) else m for m in out["messages"]
        ]
    return out


def _tup(tup: Any) -> Any:
    return (
        tup.config,
        tup.parent_config,
        tup.metadata,
        tup.checkpoint,
        _plain(list(tup.pending_writes or [])),
    )


def _key(tup: Any) -> tuple[str, str]:
    c = tup.config["configurable"]
    return c["checkpoint_ns"], c["checkpoint_id"]


def read_thread(saver: Any, t: str) -> dict[tuple[str, str], Any]:
    """Every checkpoint of the thread (all namespaces), by list and by get_tuple: equal."""
    out = {}
    for tup in saver.list({"configurable": {"thread_id": t}}):
        out[_key(tup)] = _tup(tup)
    for key, want in out.items():
        got = saver.get_tuple({"configurable": {"thread_id": t, "checkpoint_ns": key[0], "checkpoint_id": key[1]}})
        assert got is not None, key
        assert _tup(got) == want, key
    return out


def history(graph: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    """The graph's view of each root checkpoint (DeltaChannels replayed), by id."""
    out = {}
    for s in graph.get_state_history(cfg):
        out[s.config["configurable"]["checkpoint_id"]] = (
            s.values,
            s.next,
            s.metadata,
            s.parent_config,
            [(t.name, t.interrupts, _plain(t.error)) for t in s.tasks],
        )
    return out


def _renamed(x: Any, src: str, dst: str) -> Any:
    """``x`` with every config's thread id ``src`` read as ``dst`` (a copy's view)."""
    if isinstance(x, dict):
        return {k: (dst if k == "thread_id" and v == src else _renamed(v, src, dst)) for k, v in x.items()}
    if isinstance(x, tuple):
        return tuple(_renamed(v, src, dst) for v in x)
    if isinstance(x, list):
        return [_renamed(v, src, dst) for v in x]
    return x


class Views:
    """What a thread reads as, before an operation, to compare with after it."""

    def __init__(self, saver: Any, build: Any, cfg: dict[str, Any]) -> None:
        self.build, self.cfg, self.t = build, cfg, _tid(cfg)
        self.tuples = read_thread(saver, self.t)
        self.graph = history(build(saver), cfg)
        self.latest = build(saver).get_state(cfg, subgraphs=True)

    def check(self, saver: Any, make_saver: Any, *, gone: bool = False, as_thread: str | None = None) -> None:
        """The thread (or its copy ``as_thread``) reads as before, from ``saver`` and a
        fresh saver: every checkpoint that remains, exactly; with ``gone``, a subset may go."""
        t = as_thread or self.t
        cfg = {"configurable": {"thread_id": t}}
        with make_saver() as fresh:
            for s in (saver, fresh):
                tuples = read_thread(s, t)
                graph = history(self.build(s), cfg)
                want_t = _renamed(self.tuples, self.t, t)
                want_g = _renamed(self.graph, self.t, t)
                if gone:
                    assert set(tuples) <= set(want_t)
                    assert set(graph) <= set(want_g)
                    want_t = {k: want_t[k] for k in tuples}
                    want_g = {k: want_g[k] for k in graph}
                for k in want_t:
                    assert tuples.get(k) == want_t[k], k
                for k in want_g:
                    assert graph.get(k) == want_g[k], k
                assert tuples == want_t
                assert graph == want_g


# -- graphs -------------------------------------------------------------------------


class ChatState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    log: Annotated[list[str], operator.add]
    notes: Annotated[list[str], DeltaChannel(concat_reducer, snapshot_frequency=3)]


def _bulk_model(state: ChatState) -> dict[str, Any]:
    """Several messages a step (lists pass 64 elements soon), a tool call every other turn."""
    n = len(state["messages"])
    last = state["messages"][-1]
    if isinstance(last, ToolMessage):
        return {"messages": [AIMessage(f"answer {n}", id=f"ai-{n}")], "notes": [f"a{n}"]}
    out = [AIMessage(f"thinking {n}.{i}", id=f"th-{n}-{i}") for i in range(14)]
    if n % 2 == 0:
        out.append(
            AIMessage(
                "call",
                id=f"call-{n}",
                tool_calls=[{"name": "get_weather", "args": {"city": f"C{n}"}, "id": f"tc-{n}"}],
            )
        )
    if n > 64 and n % 3 == 0:
        out = [*state["messages"], *out]  # the whole history again: a write naming chunks
    return {"messages": out, "log": [f"m{n}"], "notes": [f"n{n}"]}


def _route(state: ChatState) -> str:
    last = state["messages"][-1]
    return "tools" if isinstance(last, AIMessage) and last.tool_calls else "approve"


def _approve(state: ChatState) -> dict[str, Any]:
    ok = interrupt({"ask": "ok?", "n": len(state["messages"])})
    out: dict[str, Any] = {"log": [f"approved {ok}"]}
    if len(state["messages"]) > 64:
        # not an append: the list is stored whole, naming chunks
        out["messages"] = [RemoveMessage(id=state["messages"][1].id)]
    return out


def build_chat(saver: Any) -> Any:
    from graphs import get_weather

    b = StateGraph(ChatState)
    b.add_node("model", _bulk_model)
    b.add_node("tools", ToolNode([get_weather]))
    b.add_node("approve", _approve)
    b.add_edge(START, "model")
    b.add_conditional_edges("model", _route, ["tools", "approve"])
    b.add_edge("tools", "model")
    b.add_edge("approve", END)
    return b.compile(checkpointer=saver)


def run_chat(graph: Any, cfg: dict[str, Any], turns: int, start: int = 0, run_ids: Sequence[str] | None = None) -> None:
    for i in range(start, start + turns):
        c = cfg if run_ids is None else {**cfg, "metadata": {"run_id": run_ids[i - start]}}
        graph.invoke({"messages": [HumanMessage(f"q{i}", id=f"h-{i}")]}, c)
        graph.invoke(Command(resume=f"yes{i}"), c)


# -- prune ----------------------------------------------------------------------------


def test_prune_a_long_chat_reads_back_and_goes_on(saver: Any, make_saver: Any, saver_target: Any) -> None:
    """A chat whose messages list names shared chunks, with ToolNode turns, interrupts
    and a DeltaChannel, pruned to its 2 newest checkpoints: they read back as before,
    a second prune changes nothing, and the thread goes on as an unpruned one does."""
    keep = 2
    cfg = _cfg("prune-chat")
    graph = build_chat(saver)
    ref = build_chat(InMemorySaver())
    rcfg = {"configurable": {"thread_id": "r"}}
    run_chat(graph, cfg, 4)
    run_chat(ref, rcfg, 4)
    graph.invoke({"messages": [HumanMessage("last", id="h-last")]}, cfg)  # interrupted
    ref.invoke({"messages": [HumanMessage("last", id="h-last")]}, rcfg)
    assert len(graph.get_state(cfg).values["messages"]) > 64
    before = Views(saver, build_chat, cfg)
    with raw_for(saver_target, saver) as raw:
        assert raw.chunks(_tid(cfg))  # the long lists name shared chunks
    saver.prune([_tid(cfg)], strategy="keep_latest", keep_last=keep)
    before.check(saver, make_saver, gone=True)
    with raw_for(saver_target, saver) as raw:
        raw.assert_no_orphans(_tid(cfg))
        assert raw.chunks(_tid(cfg))
    saver.prune([_tid(cfg)], strategy="keep_latest", keep_last=keep)  # idempotent
    before.check(saver, make_saver, gone=True)
    graph.invoke(Command(resume="go"), cfg)
    ref.invoke(Command(resume="go"), rcfg)
    run_chat(graph, cfg, 1, start=10)
    run_chat(ref, rcfg, 1, start=10)
    assert _values(graph.get_state(cfg).values) == _values(ref.get_state(rcfg).values)
    with make_saver() as fresh:
        assert _values(build_chat(fresh).get_state(cfg).values) == _values(ref.get_state(rcfg).values)
    with raw_for(saver_target, saver) as raw:
        raw.assert_no_orphans(_tid(cfg))


def _subgraph_rounds(graph: Any, cfg: dict[str, Any], rounds: int, start: int = 0) -> None:
    for i in range(start, start + rounds):
        graph.invoke({"topic": f" Topic {i} "}, cfg)
        graph.invoke(Command(resume=f"hint {i}"), cfg)


@pytest.mark.parametrize(("build", "keep"), [(build_nested_subgraphs, 1), (build_subgraph_graph, 2)], ids=["nested-1", "subgraph-2"])
def test_prune_with_subgraph_namespaces(saver: Any, make_saver: Any, saver_target: Any, build: Any, keep: int) -> None:
    """Interrupted inside a subgraph (nested: a checkpointer=True one holding a call):
    finished calls go, the interrupted one stays and reads back, and resumes."""
    cfg = _cfg("prune-sub")
    graph, ref = build(saver), build(InMemorySaver())
    rcfg = {"configurable": {"thread_id": "r"}}
    inp = (lambda i: {"topic": f" Topic {i} "}) if build is build_subgraph_graph else (lambda i: {"log": [f"in{i}"]})
    for i in range(2):
        for g, c in ((graph, cfg), (ref, rcfg)):
            g.invoke(inp(i), c)
            g.invoke(Command(resume=f"hint {i}"), c)
    for g, c in ((graph, cfg), (ref, rcfg)):
        g.invoke(inp(9), c)  # interrupted inside the subgraph
    before = Views(saver, build, cfg)
    saver.prune([_tid(cfg)], strategy="keep_latest", keep_last=keep)
    before.check(saver, make_saver, gone=True)
    with raw_for(saver_target, saver) as raw:
        raw.assert_no_orphans(_tid(cfg))
    with make_saver() as fresh:
        for s in (saver, fresh):
            mine = build(s).get_state(cfg, subgraphs=True)
            assert mine.values == before.latest.values
            assert [t.state.values for t in mine.tasks if t.state] == [
                t.state.values for t in before.latest.tasks if t.state
            ]
    for g, c in ((graph, cfg), (ref, rcfg)):
        g.invoke(Command(resume="last"), c)
        g.invoke(inp(10), c)
    assert graph.get_state(cfg, subgraphs=True).values == ref.get_state(rcfg, subgraphs=True).values
    with make_saver() as fresh:
        assert build(fresh).get_state(cfg).values == ref.get_state(rcfg).values


def test_prune_map_reduce_with_sends_pending(saver: Any, make_saver: Any, saver_target: Any) -> None:
    cfg = _cfg("prune-sends")
    graph = build_map_reduce(saver, interrupt_before_work=True)
    ref = build_map_reduce(InMemorySaver(), interrupt_before_work=True)
    rcfg = {"configurable": {"thread_id": "r"}}
    items = [f" item{i} " for i in range(70)]
    for g, c in ((graph, cfg), (ref, rcfg)):
        g.invoke({"items": items[:5]}, c)
        g.invoke(None, c)
        g.invoke({"items": items}, c)  # stopped before the 70 sends
    before = Views(saver, lambda s: build_map_reduce(s, interrupt_before_work=True), cfg)
    saver.prune([_tid(cfg)], strategy="keep_latest", keep_last=1)
    before.check(saver, make_saver, gone=True)
    with raw_for(saver_target, saver) as raw:
        raw.assert_no_orphans(_tid(cfg))
    for g, c in ((graph, cfg), (ref, rcfg)):
        g.invoke(None, c)
    assert graph.get_state(cfg).values == ref.get_state(rcfg).values


def test_prune_delta_channel_with_forks(saver: Any, make_saver: Any, saver_target: Any) -> None:
    """A DeltaChannel thread forked by update_state from the middle of its history, the
    fork run on: the kept checkpoints replay as before and the thread continues."""
    keep = 2
    cfg = _cfg("prune-delta-fork")
    graph, ref = build_delta_graph(saver), build_delta_graph(InMemorySaver())
    rcfg = {"configurable": {"thread_id": "r"}}
    for g, c in ((graph, cfg), (ref, rcfg)):
        g.invoke({"items": [], "n": 0, "target": 4}, c)
    # fork from the middle of the history, then run the fork on
    hist = list(graph.get_state_history(cfg))
    rhist = list(ref.get_state_history(rcfg))
    mid, rmid = hist[len(hist) // 2].config, rhist[len(rhist) // 2].config
    fork = graph.update_state(mid, {"items": ["forked"]})
    rfork = ref.update_state(rmid, {"items": ["forked"]})
    graph.invoke({"target": 6}, fork)
    ref.invoke({"target": 6}, rfork)
    before = Views(saver, build_delta_graph, cfg)
    saver.prune([_tid(cfg)], strategy="keep_latest", keep_last=keep)
    before.check(saver, make_saver, gone=True)
    with raw_for(saver_target, saver) as raw:
        raw.assert_no_orphans(_tid(cfg))
    graph.invoke({"target": 8}, cfg)
    ref.invoke({"target": 8}, rcfg)
    assert graph.get_state(cfg).values == ref.get_state(rcfg).values
    with make_saver() as fresh:
        assert build_delta_graph(fresh).get_state(cfg).values == ref.get_state(rcfg).values


# -- delete_for_runs ------------------------------------------------------------------


def test_delete_for_runs_subset_of_a_chat(saver: Any, make_saver: Any, saver_target: Any) -> None:
    """Some runs of a chat (questions, resumes) deleted: the other runs' checkpoints read
    back as before, again after a second call, and the thread goes on; deleting every
    run leaves no row of the thread."""
    cfg = _cfg("dfr")
    graph = build_chat(saver)
    runs = [f"run-{i}-{uuid.uuid4().hex[:6]}" for i in range(8)]
    # each turn is two runs: the question, then the resume
    for i in range(4):
        graph.invoke({"messages": [HumanMessage(f"q{i}", id=f"h-{i}")]}, {**cfg, "metadata": {"run_id": runs[2 * i]}})
        graph.invoke(Command(resume=f"yes{i}"), {**cfg, "metadata": {"run_id": runs[2 * i + 1]}})
    graph.invoke({"messages": [HumanMessage("q9", id="h-9")]}, {**cfg, "metadata": {"run_id": "last"}})
    before = Views(saver, build_chat, cfg)
    saver.delete_for_runs([runs[1], runs[2], runs[5]])
    before.check(saver, make_saver, gone=True)
    with raw_for(saver_target, saver) as raw:
        raw.assert_no_orphans(_tid(cfg))
    saver.delete_for_runs([runs[1], runs[2], runs[5]])  # idempotent
    before.check(saver, make_saver, gone=True)
    graph.invoke(Command(resume="fine"), {**cfg, "metadata": {"run_id": "fine"}})
    with make_saver() as fresh:
        assert _values(build_chat(fresh).get_state(cfg).values) == _values(graph.get_state(cfg).values)
    with raw_for(saver_target, saver) as raw:
        raw.assert_no_orphans(_tid(cfg))
        saver.delete_for_runs([*runs, "last", "fine"])  # every run: nothing is left
        assert raw.counts(_tid(cfg)) == dict.fromkeys(("threads", "checkpoints", "values", "writes", "objects"), 0)


# -- copy_thread ----------------------------------------------------------------------


def test_copy_a_long_interrupted_chat(saver: Any, make_saver: Any, saver_target: Any) -> None:
    cfg = _cfg("copy-src")
    graph = build_chat(saver)
    run_chat(graph, cfg, 4)
    graph.invoke({"messages": [HumanMessage("last", id="h-last")]}, cfg)  # interrupted
    before = Views(saver, build_chat, cfg)
    dst = _tid(cfg) + "-copy"
    saver.copy_thread(_tid(cfg), dst)
    before.check(saver, make_saver, as_thread=dst)
    saver.copy_thread(_tid(cfg), dst)  # idempotent
    dcfg = {"configurable": {"thread_id": dst}}
    graph.invoke(Command(resume="copy"), dcfg)
    run_chat(graph, dcfg, 1, start=20)
    before.check(saver, make_saver)
    graph.invoke(Command(resume="src"), cfg)
    saver.delete_thread(_tid(cfg))
    with raw_for(saver_target, saver) as raw:
        assert raw.counts(_tid(cfg)) == dict.fromkeys(("threads", "checkpoints", "values", "writes", "objects"), 0)
        raw.assert_no_orphans(dst)
    with make_saver() as fresh:
        assert _values(build_chat(fresh).get_state(dcfg).values) == _values(graph.get_state(dcfg).values)


# -- two savers -----------------------------------------------------------------------


@pytest.mark.parametrize("op", ["prune1", "delete_for_runs"])
def test_another_saver_maintains_while_this_one_runs(saver: Any, make_saver: Any, saver_target: Any, op: str) -> None:
    cfg = _cfg("two")
    graph = build_chat(saver)
    ref = build_chat(InMemorySaver())
    rcfg = {"configurable": {"thread_id": "r"}}
    for i in range(4):
        for g, c in ((graph, cfg), (ref, rcfg)):
            g.invoke({"messages": [HumanMessage(f"q{i}", id=f"h-{i}")]}, {**c, "metadata": {"run_id": f"r{i}"}})
        before = Views(saver, build_chat, cfg) if i % 2 else None
        with make_saver() as other:
            if op == "delete_for_runs":
                other.delete_for_runs([f"r{i - 1}"])
            else:
                other.prune([_tid(cfg)], strategy="keep_latest", keep_last=int(op[-1]))
        if before is not None:
            before.check(saver, make_saver, gone=True)
        for g, c in ((graph, cfg), (ref, rcfg)):
            g.invoke(Command(resume=f"ok{i}"), {**c, "metadata": {"run_id": f"r{i}"}})
        assert _values(graph.get_state(cfg).values) == _values(ref.get_state(rcfg).values)
    with make_saver() as fresh:
        assert _values(build_chat(fresh).get_state(cfg).values) == _values(ref.get_state(rcfg).values)
    with raw_for(saver_target, saver) as raw:
        raw.assert_no_orphans(_tid(cfg))


# -- DeltaChannels snapshotting at different steps ------------------------------------


class TwoDeltas(TypedDict, total=False):
    a: Annotated[list[str], DeltaChannel(concat_reducer, snapshot_frequency=5)]
    b: Annotated[list[str], DeltaChannel(concat_reducer, snapshot_frequency=3)]
    n: int
    until: int


def build_two_deltas(saver: Any) -> Any:
    def step(state: TwoDeltas) -> TwoDeltas:
        n = state.get("n", 0) + 1
        return {"n": n, "a": [f"a{n}"], "b": [f"b{n}"]}

    b = StateGraph(TwoDeltas)
    b.add_node("step", step)
    b.add_edge(START, "step")
    b.add_conditional_edges("step", lambda s: "step" if s["n"] < s["until"] else END, ["step", END])
    return b.compile(checkpointer=saver)


@pytest.mark.parametrize("op", ["prune", "delete_for_runs"])
def test_an_ancestor_kept_for_a_delta_channel_reads_back_whole(
    saver: Any, make_saver: Any, saver_target: Any, op: str
) -> None:
    """Two DeltaChannels snapshot at different steps (every 5 and every 3 updates).
    The latest checkpoint replays ``a`` from an older snapshot than ``b``, so the
    ancestors back to ``a``'s snapshot stay; each of them is listed and read as
    well, and replays ``b`` from a snapshot older still: that must stay too, or
    those ancestors read back with ``b`` cut short."""
    cfg = _cfg("two-deltas")
    graph = build_two_deltas(saver)
    graph.invoke({"n": 0, "until": 8}, {**cfg, "metadata": {"run_id": "first"}})
    graph.invoke({"until": 13}, {**cfg, "metadata": {"run_id": "second"}})
    before = Views(saver, build_two_deltas, cfg)
    if op == "prune":
        saver.prune([_tid(cfg)], strategy="keep_latest", keep_last=1)
    else:
        saver.delete_for_runs(["first"])
    before.check(saver, make_saver, gone=True)
    with raw_for(saver_target, saver) as raw:
        raw.assert_no_orphans(_tid(cfg))
    graph.invoke({"until": 15}, cfg)
    ref = build_two_deltas(InMemorySaver())
    ref.invoke({"n": 0, "until": 15}, {"configurable": {"thread_id": "r"}})
    with make_saver() as fresh:
        assert build_two_deltas(fresh).get_state(cfg).values == ref.get_state({"configurable": {"thread_id": "r"}}).values


def test_copy_onto_an_existing_thread_is_refused_and_changes_nothing(saver: Any, make_saver: Any) -> None:
    from checkpoint_pg import ConfigError

    src, dst = _cfg("onto-src"), _cfg("onto-dst")
    graph = build_chat(saver)
    run_chat(graph, src, 1)
    run_chat(graph, dst, 1, start=5)
    before = Views(saver, build_chat, dst)
    with pytest.raises(ConfigError, match="already has checkpoints"):
        saver.copy_thread(_tid(src), _tid(dst))
    before.check(saver, make_saver)
    saver.delete_thread(_tid(dst))
    saver.copy_thread(_tid(src), _tid(dst))
    Views(saver, build_chat, src).check(saver, make_saver, as_thread=_tid(dst))


NULL_TASK = "00000000-0000-0000-0000-000000000000"  # the task id a Command(resume=) writes with


def _late_writes(saver: Any, src: dict[str, Any], dst: str) -> list[tuple[dict[str, Any], list[Any], str]]:
    """(config, writes, task) a run resumed on ``dst`` (a copy of ``src``, interrupted)
    still puts after ``dst`` was deleted: at the source's latest checkpoint, its resume
    value (a key the source holds too: see the test) and its task's write (one the
    source lacks); and a write for that run's next checkpoint, which never came."""
    tup = saver.get_tuple(src)
    task = next(t for t, ch, _ in tup.pending_writes if ch == "__interrupt__")
    at = {"configurable": {"thread_id": dst, "checkpoint_ns": "", "checkpoint_id": tup.config["configurable"]["checkpoint_id"]}}
    nxt = {"configurable": {**at["configurable"], "checkpoint_id": "ffffffff-late"}}
    return [(at, [("__resume__", "yes-d")], NULL_TASK), (at, [("log", ["approved yes-d"])], task), (nxt, [("log", ["next"])], "t-next")]


def _source_with_a_resume(saver: Any, src: dict[str, Any]) -> None:
    """The source interrupted, with a resume value of its own pending (the key a late write
    of the target's holds too)."""
    tup = saver.get_tuple(src)
    saver.put_writes(tup.config, [("__resume__", "yes-s")], NULL_TASK)


def _copy_reads_as_its_source(saver: Any, make_saver: Any, saver_target: Any, src: dict[str, Any], dst: str) -> None:
    """After the copy: ``dst`` reads as ``src`` (every checkpoint, its pending writes, the
    graph's view), holds the source's rows and objects and nothing else; copying again
    (the saver's retry of a copy whose commit it did not see) changes nothing."""
    Views(saver, build_chat, src).check(saver, make_saver, as_thread=dst)
    with raw_for(saver_target, saver) as raw:
        assert raw.counts(dst) == raw.counts(_tid(src))
        assert raw.objects(dst) == raw.objects(_tid(src))
        raw.assert_no_orphans(dst)
    saver.copy_thread(_tid(src), dst)
    Views(saver, build_chat, src).check(saver, make_saver, as_thread=dst)


def test_copy_replaces_writes_the_target_got_after_its_delete(saver: Any, make_saver: Any, saver_target: Any) -> None:
    """delete_thread(target) then copy_thread(source, target), while a run still going on
    the target (a copy of the source before) puts its last writes in between: the copy's
    pending writes are the source's. The copy skipped every write whose key the target
    held (ON CONFLICT DO NOTHING), so the target read back with the run's resume value
    instead of the source's and with the run's task done, and a retried copy was refused."""
    src = _cfg("late-src")
    graph = build_chat(saver)
    run_chat(graph, src, 1)
    graph.invoke({"messages": [HumanMessage("last", id="h-last")]}, src)  # interrupted
    _source_with_a_resume(saver, src)
    dst = _tid(src) + "-copy"
    saver.copy_thread(_tid(src), dst)
    saver.delete_thread(dst)
    for config, writes, task in _late_writes(saver, src, dst):
        saver.put_writes(config, writes, task)
    saver.copy_thread(_tid(src), dst)
    _copy_reads_as_its_source(saver, make_saver, saver_target, src, dst)
    dcfg = {"configurable": {"thread_id": dst}}
    graph.invoke(None, dcfg)  # the source's resume value, pending in the copy
    graph.invoke(None, src)
    assert _values(graph.get_state(dcfg).values) == _values(graph.get_state(src).values)
    assert graph.get_state(dcfg).values["log"][-1] == "approved yes-s"


async def test_async_copy_replaces_writes_the_target_got_after_its_delete(
    make_async_saver: Any, make_saver: Any, saver_target: Any
) -> None:
    """The same through adelete_thread, aput_writes and acopy_thread (whose retry was refused)."""
    src = _cfg("alate-src")
    dst = _tid(src) + "-copy"
    async with make_async_saver() as s:
        graph = build_chat(s)
        await graph.ainvoke({"messages": [HumanMessage("q", id="h-q")]}, src)  # interrupted
        await s.acopy_thread(_tid(src), dst)
        await s.adelete_thread(dst)
        with make_saver() as sync:
            _source_with_a_resume(sync, src)
            late = _late_writes(sync, src, dst)
        for config, writes, task in late:
            await s.aput_writes(config, writes, task)
        await s.acopy_thread(_tid(src), dst)
        with make_saver() as sync:
            _copy_reads_as_its_source(sync, make_saver, saver_target, src, dst)
        await s.acopy_thread(_tid(src), dst)


async def test_async_lifecycle_reads_back(make_async_saver: Any, make_saver: Any, saver_target: Any) -> None:
    cfg = _cfg("async")
    async with make_async_saver() as s, make_async_saver() as other:
        graph = build_chat(s)
        for i in range(4):
            await graph.ainvoke({"messages": [HumanMessage(f"q{i}", id=f"h-{i}")]}, {**cfg, "metadata": {"run_id": f"r{i}"}})
            await graph.ainvoke(Command(resume=f"y{i}"), {**cfg, "metadata": {"run_id": f"r{i}"}})
        with make_saver() as sync:
            before = Views(sync, build_chat, cfg)
        await other.adelete_for_runs(["r1", "r3"])
        await other.aprune([_tid(cfg)], keep_last=2)
        await other.acopy_thread(_tid(cfg), _tid(cfg) + "-c")
        with make_saver() as sync:
            before.check(sync, make_saver, gone=True)
            before.check(sync, make_saver, gone=True, as_thread=_tid(cfg) + "-c")
        await graph.ainvoke({"messages": [HumanMessage("more", id="h-more")]}, cfg)
        state = (await graph.aget_state(cfg)).values
        await other.adelete_thread(_tid(cfg))
        await other.adelete_thread(_tid(cfg) + "-c")
        report = await other.avacuum()
        assert report.bytes_after >= 0
    assert len(state["messages"]) > 64
    with make_saver() as sync, raw_for(saver_target, sync) as raw:
        for t in (_tid(cfg), _tid(cfg) + "-c"):
            assert raw.counts(t) == dict.fromkeys(("threads", "checkpoints", "values", "writes", "objects"), 0)


# -- a put after another process deleted the thread -----------------------------------


class OneDelta(TypedDict, total=False):
    items: Annotated[list[str], DeltaChannel(concat_reducer, snapshot_frequency=100)]
    n: int


def _delta_loop(checkpointer: Any, at_step_4: list[Any]) -> Any:
    """Six steps appending to a DeltaChannel; step 4 first calls what ``at_step_4``
    holds (another process's delete or prune of the thread), if anything."""

    def step(state: OneDelta) -> OneDelta:
        n = state.get("n", 0) + 1
        if n == 4 and at_step_4:
            at_step_4[0]()
        return {"n": n, "items": [f"i{n}"]}

    b = StateGraph(OneDelta)
    b.add_node("step", step)
    b.add_edge(START, "step")
    b.add_conditional_edges("step", lambda s: "step" if s["n"] < 6 else END, ["step", END])
    return b.compile(checkpointer=checkpointer)


@pytest.mark.parametrize("durability", ["sync", "async"])
def test_a_delta_channel_run_whose_thread_is_deleted_meanwhile_stores_nothing(
    saver: Any, make_saver: Any, durability: str
) -> None:
    """A run without a lease goes on after another process deleted its thread. Its
    next put carries the DeltaChannel's state over from ancestors that are gone, as a
    put carrying a list over would: it must fail and store nothing, not start a thread
    whose ``items`` hold only what the run wrote after the delete. With async
    durability the run's puts may all still be pending when the delete runs (it then
    deletes nothing of them): the run is then stored whole, never cut short."""
    from checkpoint_pg import IntegrityError
    from checkpoint_pg.shells.errors import BaseGone

    cfg = _cfg(f"deleted-mid-run-{durability}")
    action: list[Any] = []
    graph = _delta_loop(saver, action)
    whole = ["start", "i1", "i2", "i3", "i4", "i5", "i6"]
    with make_saver() as other:
        action.append(lambda: other.delete_thread(_tid(cfg)))
        try:
            graph.invoke({"items": ["start"], "n": 0}, cfg, durability=durability)
        except IntegrityError as exc:
            assert "is no longer stored" in str(exc)
            assert not isinstance(exc, BaseGone)  # refused once, not planned again
        else:
            assert durability == "async", "the put after the delete was stored"
        with make_saver() as fresh:
            stored = list(fresh.list(cfg))
            if stored:  # async: the delete came before the run's first put committed
                assert len(stored) == 8
                assert _delta_loop(fresh, []).get_state(cfg).values["items"] == whole
            assert stored == list(saver.list(cfg))
    # the saver goes on: the thread runs again from nothing, as it would in memory
    action.clear()
    saver.delete_thread(_tid(cfg))
    final = graph.invoke({"items": ["again"], "n": 0}, cfg)
    assert final["items"] == ["again", "i1", "i2", "i3", "i4", "i5", "i6"]
    assert graph.get_state(cfg).values == final


def test_a_delta_channel_put_after_prune_finds_the_parent_it_requires(
    saver: Any, make_saver: Any
) -> None:
    """``prune(keep_last=1)`` by another process while a run goes on keeps the run's
    newest checkpoint and what it replays from: the put that requires that parent
    finds it, and the run's checkpoints read back whole from a fresh saver."""
    cfg = _cfg("pruned-mid-run")
    with make_saver() as other:
        final = _delta_loop(saver, [lambda: other.prune([_tid(cfg)], keep_last=1)]).invoke(
            {"items": ["start"], "n": 0}, cfg
        )
    assert final["items"] == ["start", "i1", "i2", "i3", "i4", "i5", "i6"]
    with make_saver() as fresh:
        assert _delta_loop(fresh, []).get_state(cfg).values == final


def test_prune_keeps_parallel_interrupts_and_error_writes(saver: Any, make_saver: Any, saver_target: Any) -> None:
    from collections import Counter

    from graphs import FlakyError, build_flaky_pair, build_panel

    cfg, fcfg = _cfg("panel"), _cfg("flaky")
    panel = build_panel(saver)
    panel.invoke({"log": []}, cfg)
    first = panel.get_state(cfg).interrupts[0]
    panel.invoke(Command(resume={first.id: "one"}), cfg)  # the others still pending
    calls: Counter[str] = Counter()
    fail = [True]
    flaky = build_flaky_pair(saver, calls, fail)
    with pytest.raises(FlakyError):
        flaky.invoke({"log": []}, fcfg)
    views = [Views(saver, build_panel, cfg), Views(saver, lambda s: build_flaky_pair(s, calls, fail), fcfg)]
    saver.prune([_tid(cfg), _tid(fcfg)], keep_last=1)
    for v in views:
        v.check(saver, make_saver, gone=True)
    with raw_for(saver_target, saver) as raw:
        raw.assert_no_orphans(_tid(cfg))
        raw.assert_no_orphans(_tid(fcfg))
    rest = {i.id: i.value["ask"] for i in panel.get_state(cfg).interrupts}
    assert len(rest) == 2
    panel.invoke(Command(resume=rest), cfg)
    assert panel.get_state(cfg).values["log"][-1] == "end(4)"
    fail[0] = False
    flaky.invoke(None, fcfg)
    assert calls["steady"] == 1


def test_keeping_delta_ancestors_walks_each_checkpoint_a_bounded_number_of_times() -> None:
    """delete_for_runs walks back from every remaining checkpoint. With two channels
    whose snapshots never line up, each walk goes to the root (every ancestor replays
    one of them): without sharing what was walked, that is quadratic in the thread."""
    from collections.abc import Mapping

    from checkpoint_pg.core import lifecycle
    from checkpoint_pg.schema import KIND

    n = 2000
    docs: dict[tuple[str, str], Any] = {}
    vals: dict[tuple[str, str, str], Any] = {}
    for i in range(n):
        versions = {"a": f"a{i:05d}", "b": f"b{i:05d}"}
        counters = {}
        for ch, at in (("a", 4), ("b", 2)):  # snapshots every 5 steps, never together
            if i % 5 == at:
                vals[("", ch, versions[ch])] = (KIND.SCALAR, None, b"h" * 16)
            else:
                counters[ch] = [1, 1]
        docs[("", f"{i:05d}")] = (f"{i - 1:05d}" if i else None, {"channel_versions": versions},
                                  {"counters_since_delta_snapshot": counters})

    class Counted(Mapping):
        reads = 0

        def __getitem__(self, key: Any) -> Any:
            Counted.reads += 1
            return docs[key]

        def __iter__(self) -> Any:
            return iter(docs)

        def __len__(self) -> int:
            return len(docs)

    counted, needed, walked = Counted(), set(), {}
    for ns, cid in docs:
        lifecycle._keep_delta_ancestors(ns, cid, counted, vals, needed, walked)
    assert needed == set(docs) - {("", f"{n - 1:05d}")}
    assert Counted.reads < 5 * n, Counted.reads
