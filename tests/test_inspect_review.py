"""Adversarial review of the inspection API's accuracy against LangGraph itself (both backends)."""

from __future__ import annotations

import operator
import uuid
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command


class _S(TypedDict, total=False):
    log: Annotated[list, operator.add]
    x: int


@pytest.fixture
def inspector(saver: Any) -> Any:
    from checkpoint_pg.inspect import Inspector

    return Inspector(saver)


def _goto_graph(saver: Any, **compile_kw: Any) -> Any:
    def a(state: _S) -> Command:
        return Command(update={"log": ["a"]}, goto="c")

    builder = StateGraph(_S)
    builder.add_node("a", a, destinations=("b", "c"))
    builder.add_node("b", lambda s: {"log": ["b"]})
    builder.add_node("c", lambda s: {"log": ["c"]})
    builder.add_edge(START, "a")
    builder.add_edge("b", END)
    builder.add_edge("c", END)
    return builder.compile(checkpointer=saver, **compile_kw)


def test_command_input_on_a_finished_thread_does_not_replay_an_interrupt(saver: Any, inspector: Any) -> None:
    """A Command(update=..., goto=...) sent to a thread whose run had finished starts a new
    run (LangGraph counts it as resuming), but the run before ended normally: it streamed
    no {"__interrupt__": ()} chunk, so replay must not add one."""
    graph = _goto_graph(saver)
    cfg = {"configurable": {"thread_id": f"goto-{uuid.uuid4().hex[:10]}"}}
    live = [
        list(graph.stream(inp, cfg, stream_mode="updates"))
        for inp in ({"log": []}, Command(update={"x": 5}, goto="b"))
    ]
    assert live == [[{"a": {"log": ["a"]}}, {"c": {"log": ["c"]}}], [{"b": {"log": ["b"]}}]]
    runs = inspector.runs(cfg["configurable"]["thread_id"])
    assert [r.chunks for r in runs] == live
    assert all(r.complete for r in runs)


def test_command_goto_after_interrupt_before_still_replays_the_stop(saver: Any, inspector: Any) -> None:
    """The same Command input after a run that stopped at interrupt_before: that run did
    stream {"__interrupt__": ()}, and replay keeps it."""
    graph = _goto_graph(saver, interrupt_before=["c"])
    cfg = {"configurable": {"thread_id": f"goto-ib-{uuid.uuid4().hex[:10]}"}}
    live = [
        list(graph.stream(inp, cfg, stream_mode="updates"))
        for inp in ({"log": []}, Command(update={"x": 5}))
    ]
    assert live[0][-1] == {"__interrupt__": ()}
    runs = inspector.runs(cfg["configurable"]["thread_id"])
    assert [r.chunks for r in runs] == live


def test_history_input_keeps_every_command_update_on_one_checkpoint(saver: Any, inspector: Any) -> None:
    """Two Command(update=...) inputs sent to a finished thread are both stored as writes
    on its last checkpoint (the first ran nothing, so made no checkpoint). LangGraph applies
    both (the state has u1 and u2); history's ``input`` must show both, not the last only
    ("each stored write appears in exactly one entry")."""
    graph = _goto_graph(saver)
    cfg = {"configurable": {"thread_id": f"twice-{uuid.uuid4().hex[:10]}"}}
    graph.invoke({"log": []}, cfg)
    graph.invoke(Command(update={"log": ["u1"]}), cfg)
    graph.invoke(Command(update={"log": ["u2"]}, goto="b"), cfg)
    assert graph.get_state(cfg).values["log"] == ["a", "c", "u1", "u2", "b"]
    (entry,) = [e for e in inspector.history(cfg["configurable"]["thread_id"]) if e.input]
    assert entry.input["log"] == [["u1"], ["u2"]]


def test_show_and_diff_give_a_delta_channel_snapshot_as_its_value(saver: Any, inspector: Any) -> None:
    """A DeltaChannel stores a ``_DeltaSnapshot(value)`` every few updates. At those
    checkpoints LangGraph's get_state gives the list itself: so must show(), and diff()
    must compare the lists (the items added), not two opaque wrappers."""
    from graphs import build_delta_graph

    graph = build_delta_graph(saver)
    cfg = {"configurable": {"thread_id": f"delta-{uuid.uuid4().hex[:10]}"}}
    graph.invoke({"target": 6, "items": []}, cfg)
    tid = cfg["configurable"]["thread_id"]
    snaps = []
    for snap in graph.get_state_history(cfg):
        raw = saver.get_tuple(snap.config).checkpoint["channel_values"].get("items")
        if raw is not None:
            snaps.append(snap)
    assert len(snaps) >= 2
    for snap in snaps:
        view = inspector.show(tid, snap.config["configurable"]["checkpoint_id"])
        assert view.values["items"] == snap.values["items"]
    newer, older = snaps[0], snaps[1]
    d = {c.channel: c for c in inspector.diff(older.config, newer.config).changed}
    n = len(older.values["items"])
    assert d["items"].status == "changed"
    assert d["items"].after == newer.values["items"]
    assert d["items"].added == newer.values["items"][n:] and d["items"].removed == []
