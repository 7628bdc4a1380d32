"""Real LangGraph graphs run on our savers, checked against ``InMemorySaver``.

Every test runs one scenario twice: on the saver under test (fixture
``saver`` or ``async_saver``, one per backend) and on a fresh
``InMemorySaver``, LangGraph's reference implementation. Both runs must give
the same observations (final state, full history with per-checkpoint
source/step/next/tasks/interrupts, pending writes, stored checkpoint counts,
streamed chunks) once run-specific ids are normalised away; each test also
asserts the expected values outright, so that both savers being wrong in the
same way is caught too.
"""

from __future__ import annotations

import operator
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, AnyMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import MessagesState
from langgraph.graph.message import add_messages
from langgraph.types import Command

# tests/ is on sys.path (pytest's default prepend import mode; see conftest.py).
from graphs import (
    athread_summary,
    build_chain,
    build_delta_graph,
    build_flaky_pair,
    build_map_reduce,
    build_nested_subgraphs,
    build_panel,
    build_review_graph,
    build_subgraph_graph,
    build_tool_agent,
    count_checkpoints,
    delta_snapshot_steps,
    FlakyError,
    in_order,
    normalize,
    pending_writes_summary,
    snapshot_summary,
    stream_summary,
    thread_summary,
    weather_question,
)


Observations = dict[str, Any]
Scenario = Callable[[BaseCheckpointSaver, RunnableConfig], Observations]
AsyncScenario = Callable[[BaseCheckpointSaver, RunnableConfig], Awaitable[Observations]]


def new_thread(prefix: str) -> RunnableConfig:
    """A config for a thread no other test (or earlier run on a kept DB) used."""
    return {"configurable": {"thread_id": f"graphs-{prefix}-{uuid.uuid4().hex[:12]}"}}


def first_difference(ours: Any, reference: Any, path: str = "") -> str | None:
    """Path and values of the first place two observations differ, or None."""
    if ours == reference and type(ours) is type(reference):  # the common case, at C speed
        return None
    if isinstance(ours, dict) and isinstance(reference, dict):
        for key in list(reference) + [k for k in ours if k not in reference]:
            if key not in ours or key not in reference:
                return f"{path}[{key!r}]: present only in {'ours' if key in ours else 'reference'}"
            found = first_difference(ours[key], reference[key], f"{path}[{key!r}]")
            if found:
                return found
        return None
    if isinstance(ours, (list, tuple)) and isinstance(reference, (list, tuple)):
        for i, (a, b) in enumerate(zip(ours, reference)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        if len(ours) != len(reference):
            return f"{path}: length {len(ours)} != reference {len(reference)}"
        return None
    if ours != reference:
        return f"{path}: ours {ours!r} != reference {reference!r}"
    return None


def assert_same(ours: Observations, reference: Observations) -> None:
    """Compare observation by observation; a failure names the first difference."""
    assert ours.keys() == reference.keys()
    for key in reference:
        diff = first_difference(ours[key], reference[key], key)
        assert diff is None, f"differs from InMemorySaver at {diff}"


def differential(saver: BaseCheckpointSaver, scenario: Scenario, prefix: str) -> Observations:
    """Run ``scenario`` on ``saver`` and on a fresh ``InMemorySaver``; return ours."""
    ours = scenario(saver, new_thread(prefix))
    reference = scenario(InMemorySaver(), new_thread(prefix))
    assert_same(ours, reference)
    return ours


async def adifferential(
    saver: BaseCheckpointSaver, scenario: AsyncScenario, prefix: str
) -> Observations:
    """Async :func:`differential`."""
    ours = await scenario(saver, new_thread(prefix))
    reference = await scenario(InMemorySaver(), new_thread(prefix))
    assert_same(ours, reference)
    return ours


def steps_and_sources(history: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(h["step"], h["source"]) for h in history]


HUMAN, AI, TOOL = "human", "ai", "tool"
PARIS_ANSWER = "Here is what I found: Paris: 21C and sunny; Paris: 12:00"


# --------------------------------------------------------------------------
# ToolNode agent loop (the seed graph)
# --------------------------------------------------------------------------


def test_tool_agent_stream_updates(saver: BaseCheckpointSaver) -> None:
    """ToolNode loop streamed with ``stream_mode="updates"``: one update per node
    (call_model, tools, generate), the full message list in state, 5 checkpoints
    (input + 4 loop), each with the right next node and task result, no pending
    writes left; a second turn on the same thread builds on the stored messages
    and ends after call_model without tools."""

    def scenario(s: BaseCheckpointSaver, config: RunnableConfig) -> Observations:
        graph = build_tool_agent(s)
        first = list(graph.stream(weather_question(), config, stream_mode="updates"))
        after_first = thread_summary(graph, config)
        second = list(
            graph.stream(
                {"messages": [HumanMessage("thanks", id="human-2")]},
                config,
                stream_mode="updates",
            )
        )
        return {
            "first": stream_summary(first),
            "after_first": after_first,
            "second": stream_summary(second),
            "after_second": thread_summary(graph, config),
        }

    obs = differential(saver, scenario, "agent-updates")

    assert [next(iter(chunk)) for chunk in obs["first"]] == ["call_model", "tools", "generate"]
    tool_update = obs["first"][1]["tools"]["messages"]
    assert [(m["name"], m["content"]) for m in tool_update] == [
        ("get_weather", "Paris: 21C and sunny"),
        ("get_time", "Paris: 12:00"),
    ]

    first = obs["after_first"]
    messages = first["state"]["values"]["messages"]
    assert [m["type"] for m in messages] == [HUMAN, AI, TOOL, TOOL, AI]
    assert messages[1]["tool_calls"] == [
        ("get_weather", {"city": "Paris"}, "call-w-Paris"),
        ("get_time", {"city": "Paris"}, "call-t-Paris"),
    ]
    assert messages[-1]["content"] == PARIS_ANSWER
    assert first["state"]["next"] == ()
    assert first["pending_writes"] == []
    assert steps_and_sources(first["history"]) == [
        (3, "loop"),
        (2, "loop"),
        (1, "loop"),
        (0, "loop"),
        (-1, "input"),
    ]
    assert [h["next"] for h in first["history"]] == [
        (),
        ("generate",),
        ("tools",),
        ("call_model",),
        ("__start__",),
    ]
    tools_task = first["history"][2]["tasks"]
    assert [t["name"] for t in tools_task] == ["tools"]
    assert len(tools_task[0]["result"]["messages"]) == 2
    assert first["stored_checkpoints"] == 5

    assert obs["second"] == [
        {"call_model": {"messages": [{"type": AI, "content": "You said: thanks"}]}}
    ]
    second = obs["after_second"]
    assert [m["type"] for m in second["state"]["values"]["messages"]] == [
        HUMAN, AI, TOOL, TOOL, AI, HUMAN, AI,
    ]
    assert steps_and_sources(second["history"][:4]) == [
        (6, "loop"), (5, "loop"), (4, "input"), (3, "loop"),
    ]
    assert second["stored_checkpoints"] == 5 + 3


def test_tool_agent_stream_messages(saver: BaseCheckpointSaver) -> None:
    """ToolNode loop streamed with ``stream_mode="messages"``: the model's tokens
    arrive per node and step, they add up to the stored AI messages, the tool
    call chunk carries both calls, and ToolNode's results are streamed as
    ToolMessages; the stored thread is the same as InMemorySaver's."""

    def scenario(s: BaseCheckpointSaver, config: RunnableConfig) -> Observations:
        graph = build_tool_agent(s)
        chunks = list(graph.stream(weather_question(), config, stream_mode="messages"))
        raw = [
            (type(msg).__name__, meta["langgraph_node"], msg.content)
            for msg, meta in chunks
        ]
        return {
            "stream": stream_summary(chunks),
            "raw": raw,
            "thread": thread_summary(graph, config),
        }

    obs = differential(saver, scenario, "agent-messages")

    def text_of(node: str) -> str:
        return "".join(
            str(c) for kind, n, c in obs["raw"] if n == node and kind == "AIMessageChunk"
        )

    stored = obs["thread"]["state"]["values"]["messages"]
    assert text_of("call_model") == stored[1]["content"] == "Checking Paris."
    assert text_of("generate") == stored[4]["content"] == PARIS_ANSWER
    call_chunks = [c for c in obs["stream"] if c[1] == "call_model" and "tool_calls" in c[0]]
    assert [c[0]["tool_calls"] for c in call_chunks] == [stored[1]["tool_calls"]]
    tool_msgs = [c for c in obs["stream"] if c[3] == ToolMessage.__name__]
    assert [(c[0]["name"], c[1], c[2]) for c in tool_msgs] == [
        ("get_weather", "tools", 2),
        ("get_time", "tools", 2),
    ]
    assert {(c[1], c[2]) for c in obs["stream"]} == {
        ("call_model", 1),
        ("tools", 2),
        ("generate", 3),
    }
    assert AIMessageChunk.__name__ in {c[3] for c in obs["stream"]}
    assert len(obs["thread"]["history"]) == 5


# --------------------------------------------------------------------------
# interrupt() and Command(resume=...)
# --------------------------------------------------------------------------


def test_interrupt_and_resume(saver: BaseCheckpointSaver) -> None:
    """A node calling ``interrupt()`` twice: at each pause get_state shows the
    waiting interrupt in ``.tasks`` and ``.interrupts`` with ``next=('review',)``;
    after the first resume the answer is kept as a pending ``__resume__`` write
    while the graph waits again; the second resume finishes the graph with both
    answers used and the history records the step's interrupt and result."""

    def scenario(s: BaseCheckpointSaver, config: RunnableConfig) -> Observations:
        graph = build_review_graph(s)
        out: Observations = {}
        first = graph.invoke({"topic": "owls"}, config)
        out["first_interrupts"] = normalize(first["__interrupt__"])
        out["paused_1"] = thread_summary(graph, config)
        second = graph.invoke(Command(resume=True), config)
        out["second_interrupts"] = normalize(second["__interrupt__"])
        out["paused_2"] = thread_summary(graph, config)
        out["final"] = normalize(graph.invoke(Command(resume="lgtm"), config))
        out["done"] = thread_summary(graph, config)
        return out

    obs = differential(saver, scenario, "interrupt")

    draft = "A short note about owls."
    ask_1 = {"ask": "approve?", "draft": draft}
    ask_2 = {"ask": "comment?", "approved": True}
    assert obs["first_interrupts"] == [("Interrupt", ask_1)]

    paused = obs["paused_1"]["state"]
    assert paused["next"] == ("review",)
    assert paused["interrupts"] == [ask_1]
    assert [(t["name"], t["interrupts"], t["result"]) for t in paused["tasks"]] == [
        ("review", [ask_1], None)
    ]
    assert paused["values"] == {"topic": "owls", "draft": draft}
    assert obs["paused_1"]["pending_writes"] == [
        ("review", "__interrupt__", [("Interrupt", ask_1)])
    ]

    assert obs["second_interrupts"] == [("Interrupt", ask_2)]
    paused = obs["paused_2"]
    assert paused["state"]["interrupts"] == [ask_2]
    assert paused["state"]["step"] == 1  # still the same checkpoint
    assert len(paused["history"]) == len(obs["paused_1"]["history"]) == 3
    channels = [(name, channel) for name, channel, _ in paused["pending_writes"]]
    assert ("review", "__resume__") in channels
    assert channels.count(("review", "__interrupt__")) == 1  # replaced, not added
    assert ("review", "__resume__", [True]) in paused["pending_writes"]

    assert obs["final"]["published"] == f"{draft} [lgtm]"
    done = obs["done"]
    assert done["state"]["next"] == ()
    assert done["state"]["interrupts"] == []
    assert steps_and_sources(done["history"]) == [
        (3, "loop"), (2, "loop"), (1, "loop"), (0, "loop"), (-1, "input"),
    ]
    review_step = done["history"][2]
    assert review_step["interrupts"] == [ask_2]
    assert review_step["tasks"][0]["result"] == {"approved": True, "comment": "lgtm"}


# --------------------------------------------------------------------------
# Subgraph with its own checkpoint namespace
# --------------------------------------------------------------------------


def test_subgraph_namespace(saver: BaseCheckpointSaver) -> None:
    """A compiled subgraph interrupting inside its own namespace: get_state
    (subgraphs=True) nests the child's state (values, next, interrupt) under the
    parent task; the child namespace has its own history whose checkpoints point
    at the parent checkpoint through ``metadata['parents']``; after resuming,
    both namespaces hold 5 checkpoints and the parent got the child's answer."""

    def scenario(s: BaseCheckpointSaver, config: RunnableConfig) -> Observations:
        graph = build_subgraph_graph(s)
        thread_id = config["configurable"]["thread_id"]
        out: Observations = {}
        graph.invoke({"topic": " Tea "}, config)
        state = graph.get_state(config, subgraphs=True)
        child_state = state.tasks[0].state
        assert child_state is not None and not isinstance(child_state, dict)
        ns = child_state.config["configurable"]["checkpoint_ns"]
        child_config: RunnableConfig = {
            "configurable": {"thread_id": thread_id, "checkpoint_ns": ns}
        }
        parent_ids = {
            h.config["configurable"]["checkpoint_id"]: h.next
            for h in graph.get_state_history(config)
        }
        out["ns_prefix"] = ns.split(":")[0]
        out["paused"] = thread_summary(graph, config, subgraphs=True)
        out["child_history"] = [
            snapshot_summary(h) for h in graph.get_state_history(child_config)
        ]
        out["child_parents"] = [
            parent_ids.get(t.metadata["parents"].get(""))
            for t in s.list(child_config)
        ]
        out["counts_paused"] = (
            count_checkpoints(s, config, ""),
            count_checkpoints(s, config, ns),
            count_checkpoints(s, config),
        )
        out["final"] = graph.invoke(Command(resume="milk"), config)
        out["done"] = thread_summary(graph, config, subgraphs=True)
        out["child_history_done"] = [
            snapshot_summary(h) for h in graph.get_state_history(child_config)
        ]
        out["counts_done"] = (
            count_checkpoints(s, config, ""),
            count_checkpoints(s, config, ns),
            count_checkpoints(s, config),
        )
        return out

    obs = differential(saver, scenario, "subgraph")

    assert obs["ns_prefix"] == "child"
    paused = obs["paused"]["state"]
    assert paused["next"] == ("child",)
    assert paused["values"] == {"topic": "tea", "log": ["prepare"]}
    ask = {"ask": "hint?", "steps": ["researched tea"]}
    assert paused["interrupts"] == [ask]
    child = paused["tasks"][0]["state"]
    assert child["values"] == {"topic": "tea", "steps": ["researched tea"]}
    assert child["next"] == ("ask",)
    assert child["interrupts"] == [ask]
    assert [(t["name"], t["interrupts"]) for t in child["tasks"]] == [("ask", [ask])]

    assert steps_and_sources(obs["child_history"]) == [(1, "loop"), (0, "loop"), (-1, "input")]
    assert [h["next"] for h in obs["child_history"]] == [("ask",), ("research",), ("__start__",)]
    # every child checkpoint points at the parent checkpoint that runs the child
    assert obs["child_parents"] == [("child",)] * 3
    assert obs["counts_paused"] == (3, 3, 6)

    assert obs["final"] == {
        "topic": "tea",
        "answer": "researched tea / hint: milk",
        "log": ["prepare", "finish: researched tea / hint: milk"],
    }
    assert obs["done"]["state"]["tasks"] == []
    assert steps_and_sources(obs["done"]["history"]) == [
        (3, "loop"), (2, "loop"), (1, "loop"), (0, "loop"), (-1, "input"),
    ]
    assert [h["next"] for h in obs["child_history_done"]] == [
        (), ("write",), ("ask",), ("research",), ("__start__",),
    ]
    assert obs["child_history_done"][0]["values"]["answer"] == "researched tea / hint: milk"
    assert obs["counts_done"] == (5, 5, 10)


# --------------------------------------------------------------------------
# Send fan-out (map-reduce)
# --------------------------------------------------------------------------


def test_send_fan_out(saver: BaseCheckpointSaver) -> None:
    """Map-reduce with ``Send``: three ``work`` tasks run in one superstep and
    their writes land in the ``results`` reducer channel in Send order; the
    history shows that superstep's checkpoint with next=('work','work','work')
    and each task's result."""

    def scenario(s: BaseCheckpointSaver, config: RunnableConfig) -> Observations:
        graph = build_map_reduce(s)
        final = graph.invoke({"items": [" x", "yy ", "zzz"]}, config)
        return {"final": final, "thread": thread_summary(graph, config)}

    obs = differential(saver, scenario, "send")

    assert obs["final"] == {
        "items": ["x", "yy", "zzz"],
        "results": ["x=1", "yy=2", "zzz=3"],
        "summary": "x=1,yy=2,zzz=3",
    }
    history = obs["thread"]["history"]
    assert [h["next"] for h in history] == [
        (), ("reduce",), ("work", "work", "work"), ("split",), ("__start__",),
    ]
    fan = history[2]
    assert [t["result"] for t in fan["tasks"]] == [
        {"results": ["x=1"]},
        {"results": ["yy=2"]},
        {"results": ["zzz=3"]},
    ]
    assert obs["thread"]["stored_checkpoints"] == 5


def test_send_packets_survive_interrupt_before(saver: BaseCheckpointSaver) -> None:
    """Stopping before ``work`` leaves three pending ``Send`` tasks in the stored
    checkpoint (with their own arguments, not yet run); resuming with
    ``invoke(None)`` reads them back from the saver and runs each exactly once."""

    def scenario(s: BaseCheckpointSaver, config: RunnableConfig) -> Observations:
        graph = build_map_reduce(s, interrupt_before_work=True)
        paused = graph.invoke({"items": ["a", "bb", "ccc"]}, config)
        out = {"paused_values": paused, "paused": thread_summary(graph, config)}
        out["final"] = graph.invoke(None, config)
        out["done"] = thread_summary(graph, config)
        return out

    obs = differential(saver, scenario, "send-interrupt")

    assert obs["paused_values"] == {"items": ["a", "bb", "ccc"], "results": []}
    paused = obs["paused"]["state"]
    assert paused["next"] == ("work", "work", "work")
    assert [(t["name"], t["result"]) for t in paused["tasks"]] == [("work", None)] * 3
    assert obs["paused"]["pending_writes"] == []
    assert obs["final"]["results"] == ["a=1", "bb=2", "ccc=3"]
    assert obs["final"]["summary"] == "a=1,bb=2,ccc=3"
    assert len(obs["done"]["history"]) == 5


# --------------------------------------------------------------------------
# Time travel: replay and fork
# --------------------------------------------------------------------------


def test_time_travel_replay_from_older_checkpoint(saver: BaseCheckpointSaver) -> None:
    """Invoking with the config of an older checkpoint (next=('b',)) re-runs b
    and c from there: the result is the same state, three checkpoints are
    added (a 'fork' copy of the older one, then b's and c's) whose parent chain
    leads back to that older checkpoint, and the original branch is still
    readable by its checkpoint id but not on the new lineage."""

    def scenario(s: BaseCheckpointSaver, config: RunnableConfig) -> Observations:
        graph = build_chain(s)
        graph.invoke({"log": []}, config)
        history = list(graph.get_state_history(config))
        old_final = history[0]
        before_b = next(h for h in history if h.next == ("b",))
        replayed = graph.invoke(None, before_b.config)
        new_history = list(graph.get_state_history(config))
        by_id = {h.config["configurable"]["checkpoint_id"]: h for h in new_history}
        chain = []
        lineage = []
        current: Any = new_history[0]
        while current is not None:
            chain.append(current.config["configurable"]["checkpoint_id"])
            lineage.append((current.metadata["source"], current.metadata["step"], current.next))
            parent = current.parent_config
            current = by_id[parent["configurable"]["checkpoint_id"]] if parent else None
        before_b_id = before_b.config["configurable"]["checkpoint_id"]
        return {
            "replayed": replayed,
            "history_len": (len(history), len(new_history)),
            "lineage": lineage,
            "before_b_in_chain_at": chain.index(before_b_id),
            "old_final_in_chain": old_final.config["configurable"]["checkpoint_id"] in chain,
            "old_final_reread": snapshot_summary(graph.get_state(old_final.config)),
            "thread": thread_summary(graph, config),
        }

    obs = differential(saver, scenario, "replay")

    assert obs["replayed"] == {"log": ["a", "b", "c"]}
    assert obs["history_len"] == (5, 8)
    assert obs["lineage"] == [
        ("loop", 4, ()),
        ("loop", 3, ("c",)),
        ("fork", 2, ("b",)),
        ("loop", 1, ("b",)),
        ("loop", 0, ("a",)),
        ("input", -1, ("__start__",)),
    ]
    assert obs["before_b_in_chain_at"] == 3  # newest -> (next c) -> fork -> before_b
    assert obs["old_final_in_chain"] is False
    assert obs["old_final_reread"]["values"] == {"log": ["a", "b", "c"]}
    assert obs["old_final_reread"]["next"] == ()
    assert obs["thread"]["state"]["values"] == {"log": ["a", "b", "c"]}


def test_time_travel_update_state_fork(saver: BaseCheckpointSaver) -> None:
    """``update_state`` on an older checkpoint forks the thread: the fork has
    source 'update', its parent is that checkpoint, its values add the update
    and next stays ('b',); running the fork yields a different final state
    while the original branch keeps its own; parent links of the new branch
    lead through the fork to the original checkpoints."""

    def scenario(s: BaseCheckpointSaver, config: RunnableConfig) -> Observations:
        graph = build_chain(s)
        graph.invoke({"log": []}, config)
        history = list(graph.get_state_history(config))
        before_b = next(h for h in history if h.next == ("b",))
        fork_config = graph.update_state(before_b.config, {"log": ["x"]}, as_node="a")
        fork = graph.get_state(fork_config)
        fork_parent_is_before_b = (
            fork.parent_config is not None
            and fork.parent_config["configurable"]["checkpoint_id"]
            == before_b.config["configurable"]["checkpoint_id"]
        )
        final = graph.invoke(None, fork_config)
        new_history = list(graph.get_state_history(config))
        by_id = {h.config["configurable"]["checkpoint_id"]: h for h in new_history}
        lineage = []
        current: Any = new_history[0]
        while current is not None:
            lineage.append((current.metadata["source"], current.metadata["step"]))
            parent = current.parent_config
            current = by_id[parent["configurable"]["checkpoint_id"]] if parent else None
        return {
            "fork": snapshot_summary(fork),
            "fork_parent_is_before_b": fork_parent_is_before_b,
            "final": final,
            "lineage": lineage,
            "original_final": snapshot_summary(graph.get_state(history[0].config)),
            "thread": thread_summary(graph, config),
        }

    obs = differential(saver, scenario, "fork")

    fork = obs["fork"]
    assert fork["source"] == "update"
    assert fork["values"] == {"log": ["a", "x"]}
    assert fork["next"] == ("b",)
    assert obs["fork_parent_is_before_b"] is True
    assert obs["final"] == {"log": ["a", "x", "b", "c"]}
    assert obs["original_final"]["values"] == {"log": ["a", "b", "c"]}
    assert obs["lineage"] == [
        ("loop", 4), ("loop", 3), ("update", 2), ("loop", 1), ("loop", 0), ("input", -1),
    ]
    assert len(obs["thread"]["history"]) == 5 + 3
    assert obs["thread"]["state"]["values"] == {"log": ["a", "x", "b", "c"]}


@pytest.mark.parametrize("where", ["same process", "another process"])
def test_update_state_with_a_message_edited_in_place(make_saver: Any, where: str) -> None:
    """LangGraph's "edit the tool call" pattern: stop before ``tools``, take the last
    message from ``get_state``, edit its tool call and content in place, and write it
    back with ``update_state``. The update's checkpoint must store the edit (a new
    process reads it and resumes with it, as one on InMemorySaver does), and the
    checkpoint before it must still read as it was. In the process that ran the graph
    or in another (an API worker reading the thread cold, as a human review does)."""

    def scenario(s: BaseCheckpointSaver, config: RunnableConfig) -> Observations:
        graph = build_tool_agent(None).builder.compile(checkpointer=s, interrupt_before=["tools"])
        graph.invoke(weather_question("Paris"), config)
        if where == "another process" and s is not reference:
            with make_saver() as cold:
                return edit(cold, config)
        return edit(s, config)

    def edit(s: BaseCheckpointSaver, config: RunnableConfig) -> Observations:
        graph = build_tool_agent(None).builder.compile(checkpointer=s, interrupt_before=["tools"])
        last = graph.get_state(config).values["messages"][-1]
        last.tool_calls[0]["args"] = {"city": "Rome"}
        last.content = "Checking Rome."
        graph.update_state(config, {"messages": [last]})
        return {"edited": thread_summary(graph, config)}

    def resumed(s: BaseCheckpointSaver, config: RunnableConfig) -> Observations:
        graph = build_tool_agent(None).builder.compile(checkpointer=s, interrupt_before=["tools"])
        return {"final": normalize(graph.invoke(None, config)), "thread": thread_summary(graph, config)}

    config = new_thread("edit-in-place")
    reference = InMemorySaver()
    ref_config = new_thread("edit-in-place")
    with make_saver() as saver:
        ours = scenario(saver, config)
    assert_same(ours, scenario(reference, ref_config))
    edited, before = ours["edited"]["history"][:2]
    assert edited["values"]["messages"][-1]["content"] == "Checking Rome."
    assert before["values"]["messages"][-1]["content"] == "Checking Paris."
    with make_saver() as fresh:  # another process resumes the edited thread
        ours = resumed(fresh, config)
    assert_same(ours, resumed(reference, ref_config))
    tool_results = [m["content"] for m in ours["final"]["messages"] if m["type"] == TOOL]
    assert tool_results == ["Rome: 21C and sunny", "Paris: 12:00"]  # only get_weather edited


def _after(state: Any) -> dict[str, Any]:
    return {"messages": [HumanMessage("after", id="h-2")]}


def _edit_last_and_resume(graph: Any, config: RunnableConfig) -> None:
    """A review: get_state, edit the last message in place, update_state with it, resume."""
    last = graph.get_state(config).values["messages"][-1]
    last.content = "final"
    graph.update_state(config, {"messages": [last]})
    graph.invoke(None, config, durability="sync")


def _matches_in_memory(
    make_saver: Any,
    build: Callable[[BaseCheckpointSaver], Any],
    run: Callable[[BaseCheckpointSaver, RunnableConfig], None],
    name: str,
    check: Callable[[BaseCheckpointSaver, RunnableConfig], None] | None = None,
) -> list[Any]:
    """``run`` on InMemorySaver and on ours: the thread's history (of the graph ``build``
    makes) must be the same, read in this process (then ``check``) and in a new one.
    The reference history, newest first."""

    def history(s: BaseCheckpointSaver, config: RunnableConfig) -> list[Any]:
        return [snapshot_summary(h) for h in build(s).get_state_history(config)]

    reference = InMemorySaver()
    ref_config = new_thread(name)
    run(reference, ref_config)
    expected = history(reference, ref_config)
    config = new_thread(name)
    with make_saver() as saver:
        run(saver, config)
        assert_same({"history": history(saver, config)}, {"history": expected})
        if check is not None:
            check(saver, config)
    with make_saver() as fresh:  # another process reads the thread
        assert_same({"history": history(fresh, config)}, {"history": expected})
    return expected


@pytest.mark.parametrize("durability", ["sync", "exit"])
def test_node_edits_a_message_in_place_and_writes_it_back(make_saver: Any, durability: str) -> None:
    """A node edits the last message of the list in place (content, tool call args)
    and returns it to replace itself by id: the next checkpoint stores the edit and
    the one before it does not, as InMemorySaver does, in this process and in a new one.
    (Not "async": there the put may be planned before the write that reveals the edit.)"""

    def draft(state: MessagesState) -> dict[str, Any]:
        call = {"name": "t", "args": {"x": 1}, "id": "c1"}
        return {"messages": [AIMessage("draft", id="ai-1", tool_calls=[call])]}

    def revise(state: MessagesState) -> dict[str, Any]:
        m = state["messages"][-1]
        m.tool_calls[0]["args"]["x"] = 2
        m.content = "final"
        return {"messages": [m]}

    def build(s: BaseCheckpointSaver) -> Any:
        return in_order(MessagesState, ("draft", draft), ("revise", revise), ("after", _after)).compile(
            checkpointer=s
        )

    def run(s: BaseCheckpointSaver, config: RunnableConfig) -> None:
        build(s).invoke({"messages": [HumanMessage("hi", id="h-1")]}, config, durability=durability)  # type: ignore[arg-type]

    expected = _matches_in_memory(make_saver, build, run, "node-edit")
    assert [m["content"] for m in expected[0]["values"]["messages"]] == ["hi", "final", "after"]


@pytest.mark.parametrize("where", ["node", "update_state"])
def test_an_edited_message_msgpack_cannot_fingerprint_is_stored_as_edited(
    make_saver: Any, where: str
) -> None:
    """A message whose fields hold a value the serializer stores but the memo's
    fingerprint (plain msgpack) cannot take (a set in additional_kwargs) was never
    remembered, so an edit in place written back was not counted: the next put took
    the list's elements by identity and stored the message as it was before the edit
    (a new process read 'draft' where InMemorySaver holds 'final')."""

    def draft(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage("draft", id="ai-1", additional_kwargs={"tags": {"a"}})]}

    def revise(state: MessagesState) -> dict[str, Any]:
        m = state["messages"][-1]
        m.content = "final"
        return {"messages": [m]}

    def build(s: BaseCheckpointSaver) -> Any:
        if where == "update_state":
            graph = in_order(MessagesState, ("draft", draft), ("after", _after))
            return graph.compile(checkpointer=s, interrupt_before=["after"])
        return in_order(MessagesState, ("draft", draft), ("revise", revise), ("after", _after)).compile(
            checkpointer=s
        )

    def run(s: BaseCheckpointSaver, config: RunnableConfig) -> None:
        graph = build(s)
        graph.invoke({"messages": [HumanMessage("hi", id="h-1")]}, config, durability="sync")  # type: ignore[arg-type]
        if where == "update_state":
            _edit_last_and_resume(graph, config)

    expected = _matches_in_memory(make_saver, build, run, "edit-unfingerprinted")
    assert [m["content"] for m in expected[0]["values"]["messages"]] == ["hi", "final", "after"]


def test_an_edited_message_the_memo_dropped_is_stored_as_edited(
    make_saver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The memo of serialized messages is emptied when full (10,000 messages: a server
    running other threads meanwhile). A message it had dropped, edited in place and
    written back (get_state, edit, update_state, as a human review does later) was
    serialized anew without being counted as an edit, and the update's put took the
    list by identity: it stored the message as it was before the edit."""
    from checkpoint_pg.core import codec

    monkeypatch.setattr(codec, "_MESSAGES_SIZE", 4)

    def draft(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage("draft", id="ai-1")]}

    def build(s: BaseCheckpointSaver) -> Any:
        graph = in_order(MessagesState, ("draft", draft), ("after", _after))
        return graph.compile(checkpointer=s, interrupt_before=["after"])

    def run(s: BaseCheckpointSaver, config: RunnableConfig) -> None:
        graph = build(s)
        graph.invoke({"messages": [HumanMessage("hi", id="h-1")]}, config, durability="sync")  # type: ignore[arg-type]
        # another thread's messages fill the memo meanwhile
        msgs = [HumanMessage(f"other {i}", id=f"o-{i}") for i in range(10)]
        graph.invoke({"messages": msgs}, new_thread("edit-dropped-other"), durability="sync")  # type: ignore[arg-type]
        _edit_last_and_resume(graph, config)

    expected = _matches_in_memory(make_saver, build, run, "edit-dropped")
    assert [m["content"] for m in expected[0]["values"]["messages"]] == ["hi", "final", "after"]


class _MessagesAndLog(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    log: Annotated[list[AnyMessage], operator.add]


def test_a_message_edited_and_written_back_reads_as_stored_in_its_other_lists(
    make_saver: Any,
) -> None:
    """A message held by two lists (``messages`` and a log of it), edited in place by a
    node and written back to ``messages`` only: the log's stored version keeps the
    message as it was (InMemorySaver reads 'draft' there). The cached log still held
    the edited object, so this process read 'final' in the log, and in the older
    checkpoints of ``messages`` too (their hash found the edited object)."""

    def draft(state: _MessagesAndLog) -> dict[str, Any]:
        m = AIMessage("draft", id="ai-1")
        return {"messages": [m], "log": [m]}

    def revise(state: _MessagesAndLog) -> dict[str, Any]:
        m = state["messages"][-1]
        m.content = "final"
        return {"messages": [m]}

    def build(s: BaseCheckpointSaver) -> Any:
        graph = in_order(_MessagesAndLog, ("draft", draft), ("revise", revise), ("after", _after))
        return graph.compile(checkpointer=s)

    def run(s: BaseCheckpointSaver, config: RunnableConfig) -> None:
        start = {"messages": [HumanMessage("hi", id="h-1")], "log": []}
        build(s).invoke(start, config, durability="sync")  # type: ignore[arg-type]

    def check(saver: BaseCheckpointSaver, config: RunnableConfig) -> None:
        got = saver.get_tuple(config).checkpoint["channel_values"]
        assert [m.content for m in got["log"]] == ["draft"]
        assert [m.content for m in got["messages"]] == ["hi", "final", "after"]

    expected = _matches_in_memory(make_saver, build, run, "edit-two-lists", check)
    assert [m["content"] for m in expected[0]["values"]["log"]] == ["draft"]


# --------------------------------------------------------------------------
# DeltaChannel
# --------------------------------------------------------------------------


def expected_delta_items(rounds: int) -> list[str]:
    """What build_delta_graph's ``items`` holds after ``rounds`` ticks."""
    items: list[str] = []
    for n in range(1, rounds + 1):
        items.append(f"tick{n}")
        if n < rounds:
            items += [f"L{n}", f"R{n}", f"r{len(items)}"]
    return items


def test_delta_channel_history_rebuilds(saver: BaseCheckpointSaver) -> None:
    """A ``DeltaChannel`` (snapshot every 3 updates) over 7 rounds with two
    parallel writers per superstep: the saver stores ``_DeltaSnapshot`` blobs at
    the same steps as InMemorySaver, and the channel rebuilt from the saver's
    ancestor writes equals the reference at every checkpoint of the history
    (order of parallel writes kept); continuing the thread and forking an old,
    non-snapshot checkpoint with ``update_state`` rebuild the same values too."""

    def scenario(s: BaseCheckpointSaver, config: RunnableConfig) -> Observations:
        graph = build_delta_graph(s)
        out: Observations = {"final": graph.invoke({"target": 7}, config)}
        out["snapshot_steps"] = delta_snapshot_steps(s, config, "items")
        out["thread"] = thread_summary(graph, config)
        out["continued"] = graph.invoke({"target": 9}, config)
        history = list(graph.get_state_history(config))
        old = next(h for h in history if h.metadata["step"] == 5)
        out["old"] = snapshot_summary(graph.get_state(old.config))
        fork_config = graph.update_state(old.config, {"items": ["forked"]}, as_node="tick")
        out["fork"] = snapshot_summary(graph.get_state(fork_config))
        out["fork_final"] = graph.invoke(None, fork_config)
        out["after_fork"] = thread_summary(graph, config)
        out["snapshot_steps_after"] = delta_snapshot_steps(s, config, "items")
        return out

    obs = differential(saver, scenario, "delta")

    assert obs["final"]["items"] == expected_delta_items(7)
    assert obs["final"]["n"] == 7
    assert obs["snapshot_steps"] and len(obs["snapshot_steps"]) >= 3
    history = obs["thread"]["history"]
    assert len(history) == 1 + 2 * 7  # input, then per round tick + left/right, less the last
    for h in history:
        n = h["values"].get("n", 0)
        assert h["values"]["items"][: len(expected_delta_items(n))] == expected_delta_items(n)
    assert obs["continued"]["n"] == 9
    assert obs["continued"]["items"][:len(obs["final"]["items"])] == obs["final"]["items"]
    assert obs["fork"]["source"] == "update"
    assert obs["fork"]["values"]["items"] == obs["old"]["values"]["items"] + ["forked"]
    assert obs["fork_final"]["items"][: len(obs["fork"]["values"]["items"])] == (
        obs["fork"]["values"]["items"]
    )
    assert obs["after_fork"]["state"]["values"] == normalize(obs["fork_final"])


async def test_delta_channel_async(async_saver: BaseCheckpointSaver) -> None:
    """The same ``DeltaChannel`` loop through ``ainvoke`` and the async read path
    (``aget_delta_channel_history`` behind aget_state/aget_state_history): the
    rebuilt values at every checkpoint equal InMemorySaver's and the expected
    list."""

    async def scenario(s: BaseCheckpointSaver, config: RunnableConfig) -> Observations:
        graph = build_delta_graph(s)
        final = await graph.ainvoke({"target": 8}, config)
        return {"final": final, "thread": await athread_summary(graph, config)}

    obs = await adifferential(async_saver, scenario, "delta-async")
    assert obs["final"]["items"] == expected_delta_items(8)
    assert obs["thread"]["state"]["values"]["items"] == expected_delta_items(8)
    assert len(obs["thread"]["history"]) == 1 + 2 * 8


@pytest.mark.parametrize("durability", ["async", "exit"])
def test_delta_channel_durability(saver: BaseCheckpointSaver, durability: str) -> None:
    """The ``DeltaChannel`` loop run twice on one thread with ``durability`` async
    and exit: the same values and history as InMemorySaver. An exit run stores only
    its last checkpoint, whose parent was never stored: a put requires its parent
    only when the saver stored that parent itself (core/ops.py `LastPuts`)."""

    def scenario(s: BaseCheckpointSaver, config: RunnableConfig) -> Observations:
        graph = build_delta_graph(s)
        out: Observations = {"first": graph.invoke({"target": 4}, config, durability=durability)}  # type: ignore[arg-type]
        out["second"] = graph.invoke({"target": 7}, config, durability=durability)  # type: ignore[arg-type]
        out["thread"] = thread_summary(graph, config)
        return out

    obs = differential(saver, scenario, f"delta-{durability}")
    assert obs["second"]["n"] == 7


# --------------------------------------------------------------------------
# Durability modes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_durability_modes(saver: BaseCheckpointSaver, durability: str) -> None:
    """``invoke(..., durability=...)`` with the tool agent and with the
    interrupting review graph: same final state and the same number of stored
    checkpoints as InMemorySaver (all 5 with sync/async, only the last with
    exit), and an 'exit' run still resumes from its interrupt."""

    def scenario(s: BaseCheckpointSaver, config: RunnableConfig) -> Observations:
        agent = build_tool_agent(s)
        final = agent.invoke(weather_question(), config, durability=durability)  # type: ignore[arg-type]
        out: Observations = {
            "final": normalize(final),
            "agent": thread_summary(agent, config),
        }
        review_config = new_thread("durability-review")
        review = build_review_graph(s)
        review.invoke({"topic": "bees"}, review_config, durability=durability)  # type: ignore[arg-type]
        out["review_paused"] = thread_summary(review, review_config)
        review.invoke(Command(resume=True), review_config, durability=durability)  # type: ignore[arg-type]
        done = review.invoke(Command(resume="ok"), review_config, durability=durability)  # type: ignore[arg-type]
        out["review_final"] = done
        out["review"] = thread_summary(review, review_config)
        return out

    obs = differential(saver, scenario, f"durability-{durability}")

    assert obs["final"]["messages"][-1]["content"] == PARIS_ANSWER
    assert obs["agent"]["state"]["values"] == obs["final"]
    expected = 1 if durability == "exit" else 5
    assert obs["agent"]["stored_checkpoints"] == expected
    assert len(obs["agent"]["history"]) == expected
    assert obs["review_paused"]["state"]["next"] == ("review",)
    assert obs["review_final"]["published"] == "A short note about bees. [ok]"


# --------------------------------------------------------------------------
# Async paths
# --------------------------------------------------------------------------


async def _async_scenario(s: BaseCheckpointSaver, config: RunnableConfig) -> Observations:
    """astream (updates, messages) of the tool agent and ainvoke of the review graph."""
    agent = build_tool_agent(s)
    updates = [c async for c in agent.astream(weather_question(), config, stream_mode="updates")]
    out: Observations = {
        "updates": stream_summary(updates),
        "agent": await athread_summary(agent, config),
    }
    msg_config = new_thread("async-messages")
    messages = [
        c async for c in agent.astream(weather_question("Oslo"), msg_config, stream_mode="messages")
    ]
    out["messages"] = stream_summary(messages)
    out["agent_messages"] = await athread_summary(agent, msg_config)

    review_config = new_thread("async-review")
    review = build_review_graph(s)
    first = await review.ainvoke({"topic": "cats"}, review_config)
    out["interrupt"] = normalize(first["__interrupt__"])
    out["paused"] = await athread_summary(review, review_config)
    await review.ainvoke(Command(resume=True), review_config)
    out["final"] = await review.ainvoke(Command(resume="fine"), review_config)
    out["review"] = await athread_summary(review, review_config)
    return out


def _check_async_observations(obs: Observations) -> None:
    assert [next(iter(c)) for c in obs["updates"]] == ["call_model", "tools", "generate"]
    assert obs["agent"]["state"]["values"]["messages"][-1]["content"] == PARIS_ANSWER
    assert len(obs["agent"]["history"]) == 5
    assert obs["agent"]["stored_checkpoints"] == 5
    oslo = obs["agent_messages"]["state"]["values"]["messages"]
    assert oslo[-1]["content"] == "Here is what I found: Oslo: 21C and sunny; Oslo: 12:00"
    assert {(c[1], c[2]) for c in obs["messages"]} == {
        ("call_model", 1), ("tools", 2), ("generate", 3),
    }
    assert obs["interrupt"] == [("Interrupt", {"ask": "approve?", "draft": "A short note about cats."})]
    assert obs["paused"]["state"]["next"] == ("review",)
    assert obs["paused"]["pending_writes"] == [("review", "__interrupt__", obs["interrupt"])]
    assert obs["final"]["published"] == "A short note about cats. [fine]"
    assert len(obs["review"]["history"]) == 5


async def test_async_saver_ainvoke_astream(async_saver: BaseCheckpointSaver) -> None:
    """The async saver behind ``astream`` (updates and messages) and ``ainvoke``
    with interrupt/resume, read back through the async API (aget_state,
    aget_state_history, aget_tuple, alist): same observations as InMemorySaver
    and the expected streams, states, histories and pending writes."""
    obs = await adifferential(async_saver, _async_scenario, "async")
    _check_async_observations(obs)


async def test_sync_saver_serves_ainvoke(saver: BaseCheckpointSaver) -> None:
    """The sync saver fixture used from asyncio (``ainvoke``/``astream`` call its
    async methods): same observations as InMemorySaver and as the async saver."""
    obs = await adifferential(saver, _async_scenario, "sync-as-async")
    _check_async_observations(obs)


# --------------------------------------------------------------------------
# A failing node in a parallel superstep
# --------------------------------------------------------------------------


def test_parallel_failure_resume_skips_finished_node(saver: BaseCheckpointSaver) -> None:
    """``steady`` and ``flaky`` run in one superstep and ``flaky`` raises: the
    error propagates, get_state shows next=('flaky',), the ``flaky`` task with
    its error and the ``steady`` task with its result, and steady's write is a
    pending write stored exactly once; resuming with ``invoke(None)`` runs only
    ``flaky`` again (steady's call count stays 1), uses the stored write once,
    and the step's pending writes still hold one steady write."""

    def scenario(s: BaseCheckpointSaver, config: RunnableConfig) -> Observations:
        calls: Counter[str] = Counter()
        fail = [True]
        graph = build_flaky_pair(s, calls, fail)
        out: Observations = {}
        with pytest.raises(FlakyError, match="flaky failed"):
            graph.invoke({"log": []}, config)
        out["calls_failed"] = dict(calls)
        out["failed"] = thread_summary(graph, config)
        fail[0] = False
        out["final"] = graph.invoke(None, config)
        out["calls_done"] = dict(calls)
        out["done"] = thread_summary(graph, config)
        step0 = next(h for h in graph.get_state_history(config) if h.metadata["step"] == 0)
        out["step0_writes"] = pending_writes_summary(s, step0)
        return out

    obs = differential(saver, scenario, "flaky")

    assert obs["calls_failed"] == {"steady": 1, "flaky": 1}
    failed = obs["failed"]["state"]
    assert failed["next"] == ("flaky",)
    tasks = {t["name"]: t for t in failed["tasks"]}
    assert tasks["steady"]["result"] == {"log": ["steady"]}
    assert tasks["steady"]["error"] is None
    assert tasks["flaky"]["error"] is not None and "flaky failed" in str(tasks["flaky"]["error"])
    writes = obs["failed"]["pending_writes"]
    assert [w for w in writes if w[1] == "log"] == [("steady", "log", ["steady"])]
    assert [w[0] for w in writes if w[1] == "__error__"] == ["flaky"]

    assert obs["calls_done"] == {"steady": 1, "flaky": 2, "join": 1}
    assert obs["final"] == {"log": ["flaky", "steady", "join(2)"]}
    assert obs["done"]["state"]["values"]["log"].count("steady") == 1
    step0_log = [w for w in obs["step0_writes"] if w[1] == "log"]
    assert step0_log == [("flaky", "log", ["flaky"]), ("steady", "log", ["steady"])]


# --------------------------------------------------------------------------
# Several interrupts in one step; nested subgraph namespaces
# --------------------------------------------------------------------------


def _sorted_interrupts(result: dict[str, Any]) -> list[Any]:
    # the order of a step's interrupts in invoke's result is the order its
    # parallel tasks finished in, which no saver decides
    return sorted(normalize(result["__interrupt__"]), key=repr)


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_parallel_interrupts_resumed_by_id(saver: BaseCheckpointSaver, durability: str) -> None:
    """Three parallel nodes interrupt in one superstep; ``Command(resume={id: value})``
    answers one of them, then the other two. In between, the answered node's
    writes (its resume, its log entry, its barrier mark) stay pending next to the
    two open interrupts, and ``next`` names only the unanswered nodes; the final
    log holds every answer once, in task order. With ``durability="exit"`` only
    the checkpoints at each exit are stored, as with InMemorySaver."""

    def scenario(s: BaseCheckpointSaver, config: RunnableConfig) -> Observations:
        graph = build_panel(s)
        out: Observations = {}
        first = graph.invoke({"log": []}, config, durability=durability)  # type: ignore[arg-type]
        out["first"] = _sorted_interrupts(first)
        out["paused"] = thread_summary(graph, config)
        ids = {i.value["ask"]: i.id for i in graph.get_state(config).interrupts}
        partial = graph.invoke(Command(resume={ids["p"]: "yes"}), config, durability=durability)  # type: ignore[arg-type]
        out["partial"] = _sorted_interrupts(partial)
        out["partly_answered"] = thread_summary(graph, config)
        out["final"] = graph.invoke(
            Command(resume={ids["q"]: "no", ids["r"]: "maybe"}), config, durability=durability  # type: ignore[arg-type]
        )
        out["done"] = thread_summary(graph, config)
        return out

    obs = differential(saver, scenario, f"panel-{durability}")

    asks = [("Interrupt", {"ask": name}) for name in ("p", "q", "r")]
    assert obs["first"] == asks
    paused = obs["paused"]["state"]
    assert paused["next"] == ("p", "q", "r")
    assert paused["interrupts"] == [{"ask": "p"}, {"ask": "q"}, {"ask": "r"}]
    assert obs["partial"] == asks[1:]
    partly = obs["partly_answered"]
    assert partly["state"]["next"] == ("q", "r")
    assert partly["state"]["interrupts"] == [{"ask": "q"}, {"ask": "r"}]
    assert ("p", "__resume__", ["yes"]) in partly["pending_writes"]
    assert ("p", "log", ["p=yes"]) in partly["pending_writes"]
    assert [w[0] for w in partly["pending_writes"] if w[1] == "__interrupt__"] == ["p", "q", "r"]
    assert obs["final"] == {"log": ["start", "p=yes", "q=no", "r=maybe", "end(4)"]}
    assert obs["done"]["state"]["next"] == ()
    assert obs["done"]["pending_writes"] == []
    expected = [3, 1] if durability == "exit" else [3, 2, 1, 0, -1]
    assert [h["step"] for h in obs["done"]["history"]] == expected


def test_nested_subgraph_update_state_and_namespaces(saver: BaseCheckpointSaver) -> None:
    """Three levels (``middle`` compiled with ``checkpointer=True``, ``inner`` inside
    it) interrupting at the bottom: get_state(subgraphs=True) nests both child
    states under the parent task, in namespaces ``middle`` and
    ``middle|inner:<task id>``; update_state with ``as_node`` on the inner
    namespace's config forks that namespace only, and the resume runs on the
    edited state; a second run of the thread finds ``middle``'s own state kept."""

    def scenario(s: BaseCheckpointSaver, config: RunnableConfig) -> Observations:
        graph = build_nested_subgraphs(s)
        thread_id = config["configurable"]["thread_id"]
        out: Observations = {}

        def ns_history(ns: str) -> list[dict[str, Any]]:
            conf: RunnableConfig = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns}}
            return [snapshot_summary(h) for h in graph.get_state_history(conf)]

        graph.invoke({"log": ["go"]}, config)
        state = graph.get_state(config, subgraphs=True)
        middle = state.tasks[0].state
        assert middle is not None and not isinstance(middle, dict)
        inner = middle.tasks[0].state
        assert inner is not None and not isinstance(inner, dict)
        inner_ns = inner.config["configurable"]["checkpoint_ns"]
        out["namespaces"] = (
            middle.config["configurable"]["checkpoint_ns"],
            inner_ns.split(":")[0],
            inner_ns.split(":")[1] == middle.tasks[0].id,
        )
        out["paused"] = thread_summary(graph, config, subgraphs=True)
        out["inner_history"] = ns_history(inner_ns)
        updated = graph.update_state(inner.config, {"log": ["edited"]}, as_node="leaf1")
        out["updated_ns"] = updated["configurable"]["checkpoint_ns"] == inner_ns
        out["after_update"] = thread_summary(graph, config, subgraphs=True)
        out["inner_history_updated"] = ns_history(inner_ns)
        out["final"] = graph.invoke(Command(resume="salt"), config)
        out["done"] = thread_summary(graph, config, subgraphs=True)
        out["middle_history"] = ns_history("middle")
        out["again"] = normalize(graph.invoke({"log": ["again"]}, config))
        out["again_state"] = snapshot_summary(graph.get_state(config, subgraphs=True))
        return out

    obs = differential(saver, scenario, "nested")

    assert obs["namespaces"] == ("middle", "middle|inner", True)
    paused = obs["paused"]["state"]
    ask = {"ask": "hint?", "log": ["go", "top1", "mid1", "leaf1"]}
    assert paused["next"] == ("middle",)
    assert paused["interrupts"] == [ask]
    middle = paused["tasks"][0]["state"]
    assert (middle["values"], middle["next"]) == ({"log": ["go", "top1", "mid1"]}, ("inner",))
    inner = middle["tasks"][0]["state"]
    assert (inner["values"], inner["next"], inner["interrupts"]) == (
        {"log": ["go", "top1", "mid1", "leaf1"]}, ("leaf_ask",), [ask],
    )
    assert [h["next"] for h in obs["inner_history"]] == [("leaf_ask",), ("leaf1",), ("__start__",)]

    assert obs["updated_ns"] is True
    edited = obs["after_update"]["state"]["tasks"][0]["state"]["tasks"][0]["state"]
    assert (edited["source"], edited["next"]) == ("update", ("leaf_ask",))
    assert edited["values"] == {"log": ["go", "top1", "mid1", "leaf1", "edited"]}
    assert steps_and_sources(obs["inner_history_updated"]) == [
        (2, "update"), (1, "loop"), (0, "loop"), (-1, "input"),
    ]
    # the parent namespace is untouched by the update
    assert obs["after_update"]["history"] == obs["paused"]["history"]

    assert obs["final"] == {"log": ["go", "top1", "top2(salt)"], "hint": "salt"}
    assert obs["done"]["state"]["tasks"] == []
    assert obs["middle_history"][0]["values"] == {"log": ["go", "top1", "mid1"], "hint": "salt"}
    assert [h["next"] for h in obs["middle_history"]] == [(), ("inner",), ("mid1",), ("__start__",)]
    # middle kept its state: its log now holds the first run's and this input's
    again_middle = obs["again_state"]["tasks"][0]["state"]
    assert again_middle["values"]["log"] == [
        "go", "top1", "mid1", "go", "top1", "top2(salt)", "again", "top1", "mid1",
    ]
    assert obs["again"]["log"] == ["go", "top1", "top2(salt)", "again", "top1"]


# --------------------------------------------------------------------------
# The demo
# --------------------------------------------------------------------------


@pytest.mark.parametrize("approve", [True, False])
def test_demo_prints_same_history(saver: BaseCheckpointSaver, approve: bool) -> None:
    """``checkpoint_pg.demo.run_demo`` pauses at the refund approval, resumes and
    prints the thread history; on our saver the printed lines and final
    messages equal InMemorySaver's, the refund tool runs only when approved,
    and the history has one header per checkpoint (6)."""
    from checkpoint_pg.demo import run_demo  # noqa: PLC0415 - lazy, like conftest

    thread_id = f"graphs-demo-{uuid.uuid4().hex[:12]}"
    ours: list[str] = []
    reference: list[str] = []
    final = run_demo(saver, thread_id=thread_id, approve=approve, out=ours.append)
    ref_final = run_demo(InMemorySaver(), thread_id=thread_id, approve=approve, out=reference.append)
    assert ours == reference
    assert normalize(final) == normalize(ref_final)
    assert sum(line.startswith("step ") for line in ours) == 6
    assert any(line.startswith("paused for approval") for line in ours)
    tool_names = [m.name for m in final["messages"] if isinstance(m, ToolMessage)]
    assert tool_names == (["lookup_order", "refund"] if approve else ["lookup_order"])
    assert isinstance(final["messages"][-1], AIMessage)
    assert final["messages"][-1].content.startswith("Done.")
