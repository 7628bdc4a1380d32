"""Session 19, lifecycle review: the saver's in-process bookkeeping (WrittenMessages,
ListCache, heads, leases) against delete_thread, copy_thread, prune, delete_for_runs,
imports and other savers changing a thread, compared with InMemorySaver."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Annotated, Any

import pytest
from graphs import get_time
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, interrupt
from test_s19 import _new_config, _put
from typing_extensions import TypedDict


def _tool_write(saver: Any, tag: str, msg: Any) -> tuple[Any, Any, dict[str, Any]]:
    """A thread whose first checkpoint holds a ToolNode's write of ``msg``:
    (its config, the checkpoint's config, the channel versions put)."""
    config = _new_config(tag)
    versions: dict[str, Any] = {}
    first = _put(saver, config, {}, versions, -1)
    saver.put_writes(first, [("messages", [msg])], "tools")
    return config, first, versions


def _read_back(make_saver: Any, first: Any) -> list[Any]:
    """The writes of ``first`` as a fresh process reads them: (content, id) of each message."""
    with make_saver() as fresh:
        ((_, _, got),) = fresh.get_tuple(first).pending_writes
    return [(m.content, m.id) for m in got]


# -- a write's message given its id and edited in place -------------------------------


def test_a_write_read_back_is_not_repointed_at_its_message_given_an_id_and_edited(make_saver: Any) -> None:
    """A step cut short leaves a ToolMessage without an id in its write. A process reads
    it back (get_state), LangGraph gives the message its id in place while applying the
    write, and the caller edits it in place (update_state with it): the put stores the
    edit, and the write must keep what the node wrote. It was repointed at the edit, as
    the claim took any message with an id for the write's message given its id since."""
    with make_saver() as saver:
        config, first, versions = _tool_write(saver, "read-id-edit", ToolMessage("12:00", tool_call_id="t1"))
    with make_saver() as reader:
        ((_, _, written),) = reader.get_tuple(first).pending_writes
        written[0].id = "tm-1"  # add_messages, applying the write
        written[0].content = "12:00 (edited)"  # the caller's edit
        _put(reader, first, {"messages": written}, versions, 0)
    assert _read_back(make_saver, first) == [("12:00", None)]
    with make_saver() as fresh:
        latest = fresh.get_tuple(config).checkpoint["channel_values"]["messages"]
    assert [(m.content, m.id) for m in latest] == [("12:00 (edited)", "tm-1")]


def test_a_pending_write_is_not_repointed_at_its_message_given_an_id_and_edited(make_saver: Any) -> None:
    """The same in the process that wrote it: the write's entry waits for a put (its step
    was cut short, or the put went in before it), the message gets its id and an edit in
    place, and the put of it must leave the write as written."""
    msg = ToolMessage("12:00", tool_call_id="t1")
    with make_saver() as saver:
        _, first, versions = _tool_write(saver, "live-id-edit", msg)
        msg.id = "tm-1"
        msg.content = "12:00 (edited)"
        _put(saver, first, {"messages": [msg]}, versions, 0)
    assert _read_back(make_saver, first) == [("12:00", None)]


def test_a_write_read_back_is_still_repointed_at_its_message_given_only_its_id(make_saver: Any) -> None:
    """What the repoint is for stays: the message given its id and nothing else is one
    stored object, the write's and the list's."""
    with make_saver() as saver:
        _, first, versions = _tool_write(saver, "read-id-only", ToolMessage("12:00", tool_call_id="t1"))
    with make_saver() as reader:
        ((_, _, written),) = reader.get_tuple(first).pending_writes
        written[0].id = "tm-1"
        _put(reader, first, {"messages": written}, versions, 0)
    assert _read_back(make_saver, first) == [("12:00", "tm-1")]


class _ToolState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]


def _model(state: _ToolState) -> dict[str, Any]:
    call = {"name": "get_time", "args": {"city": "Paris"}, "id": "call-1"}
    return {"messages": [AIMessage("checking", id="ai-1", tool_calls=[call])]}


def _beside_tools(saver: Any, name: str, node: Any) -> Any:
    """model -> (ToolNode, ``node``) in parallel: the ToolNode writes a ToolMessage
    without an id, which stays pending when ``node`` raises or interrupts."""
    b = StateGraph(_ToolState)
    for n, fn in (("model", _model), ("tools", ToolNode([get_time])), (name, node)):
        b.add_node(n, fn)
    b.add_edge(START, "model")
    b.add_conditional_edges("model", lambda _: ["tools", name], ["tools", name])
    b.add_edge(["tools", name], END)
    return b.compile(checkpointer=saver)


def _audit(state: _ToolState) -> dict[str, Any]:
    raise RuntimeError("audit is down")


def _build_cut_short(saver: Any) -> Any:
    """audit raises beside the ToolNode, so the step is cut short with the ToolNode's write
    stored and not applied (as in test_storage's test_failed_superstep_resume_stores_a_toolmessage_once)."""
    return _beside_tools(saver, "audit", _audit)


def _tool_results(graph: Any, config: Any) -> list[Any]:
    return [
        [(t.name, [m.content for m in (t.result or {}).get("messages", [])]) for t in s.tasks if t.name == "tools"]
        for s in graph.get_state_history(config)
    ]


@pytest.mark.parametrize("runner", ["same", "other"])
def test_editing_the_tool_result_of_a_step_cut_short_leaves_the_tools_write_as_written(
    make_saver: Any, runner: str
) -> None:
    """LangGraph's "edit the tool result" pattern on a step cut short by a failing
    parallel task: get_state (which applies the ToolNode's write, giving its message an
    id in place), edit that ToolMessage, update_state with it. The history's tools task
    must show what the tool returned, as InMemorySaver does, from the saver that edited
    and from a fresh one; the run by this saver or by another one (a second saver on the
    database, as another process)."""
    config = {"configurable": {"thread_id": f"s19l-cut-{runner}-{uuid.uuid4().hex[:8]}"}}
    ref_config = {"configurable": {"thread_id": "ref"}}
    mem = InMemorySaver()
    with make_saver() as saver, make_saver() as other:
        results = {}
        for s, run_by, cfg in ((saver, saver if runner == "same" else other, config), (mem, mem, ref_config)):
            with pytest.raises(RuntimeError, match="audit is down"):
                _build_cut_short(run_by).invoke({"messages": [HumanMessage("time?", id="h-1")]}, cfg)
            graph = _build_cut_short(s)
            tool_msg = graph.get_state(cfg).values["messages"][-1]
            assert isinstance(tool_msg, ToolMessage) and tool_msg.id is not None
            tool_msg.content = f"{tool_msg.content} (edited)"
            graph.update_state(cfg, {"messages": [tool_msg]})
            results[s is mem] = (_tool_results(graph, cfg), graph.get_state(cfg).values["messages"][-1].content)
        want = results[True]
        assert want[1] == "Paris: 12:00 (edited)"
        assert any(r == [("tools", ["Paris: 12:00"])] for r in want[0])
        assert results[False] == want
        with make_saver() as fresh:
            graph = _build_cut_short(fresh)
            assert (_tool_results(graph, config), graph.get_state(config).values["messages"][-1].content) == want


# -- lifecycle operations on a thread whose step left ToolMessages pending ------------


def _approve(state: _ToolState) -> dict[str, Any]:
    return {"messages": [AIMessage(f"approved {interrupt('ok?')}", id=f"ap-{len(state['messages'])}")]}


def _build_approval(saver: Any) -> Any:
    """approve interrupts beside the ToolNode: the thread pauses with the ToolNode's
    ToolMessages (without ids) pending in its writes."""
    return _beside_tools(saver, "approve", _approve)


def _memory_copy(mem: InMemorySaver, src: str, dst: str) -> None:
    """copy_thread for InMemorySaver, which does not implement it (langgraph 1.2)."""
    for ns, cps in mem.storage.get(src, {}).items():
        mem.storage[dst][ns].update(cps)
    for store in (mem.writes, mem.blobs):
        for key, value in list(store.items()):
            if key[0] == src:
                store[(dst, *key[1:])] = dict(value) if isinstance(value, dict) else value


@pytest.mark.parametrize("op", ["copy", "delete_and_rerun", "other_deletes_and_reruns", "other_copies_onto"])
def test_a_paused_thread_changed_by_a_lifecycle_operation_reads_and_runs_on_as_in_memory(
    make_saver: Any, saver_target: Any, op: str
) -> None:
    """A thread paused with ToolMessages pending in a write, then copied, deleted and run
    again, or changed by another saver (another process) while this saver's caches and
    pending-write bookkeeping still describe it; then both threads resumed. Every read
    (state, history, pending writes) matches InMemorySaver doing the same, from this saver
    and a fresh one, and each thread stores each ToolMessage once."""
    from graphs import thread_summary
    from test_storage import raw_for

    tag = uuid.uuid4().hex[:8]
    ids = {"s": f"s19l-{op}-s-{tag}", "d": f"s19l-{op}-d-{tag}"}
    mem = InMemorySaver()
    ref = _build_approval(mem)

    def cfg(name: str, ours: bool) -> dict[str, Any]:
        return {"configurable": {"thread_id": ids[name] if ours else name}}

    with make_saver() as saver, make_saver() as other:
        ours, theirs = _build_approval(saver), _build_approval(other)

        def both(name: str, value: Any, graph: Any = None) -> None:
            (graph or ours).invoke(value, cfg(name, True))
            ref.invoke(value, cfg(name, False))

        def check(where: str) -> None:
            for name in ids:
                want = thread_summary(ref, cfg(name, False))
                assert thread_summary(ours, cfg(name, True)) == want, (where, name)
                with make_saver() as fresh:
                    assert thread_summary(_build_approval(fresh), cfg(name, True)) == want, (where, name)
                with raw_for(saver_target, saver) as raw:
                    stored = [m for m in raw.decoded_objects(ids[name]).values() if isinstance(m, ToolMessage)]
                assert len(stored) == len({m.tool_call_id for m in stored}), (where, name, stored)

        ask = {"messages": [HumanMessage("time?", id="h-1")]}
        both("s", ask)
        both("d", ask)
        ours.get_state(cfg("s", True))  # this saver's caches and read-back writes describe it
        if op == "copy":
            saver.delete_thread(ids["d"])
            saver.copy_thread(ids["s"], ids["d"])
        elif op == "other_copies_onto":
            other.delete_thread(ids["d"])
            other.copy_thread(ids["s"], ids["d"])
        else:
            (saver if op == "delete_and_rerun" else other).delete_thread(ids["s"])
            mem.delete_thread("s")
            both("s", ask, ours if op == "delete_and_rerun" else theirs)
        if "cop" in op:
            mem.delete_thread("d")
            _memory_copy(mem, "s", "d")
        check("after " + op)
        both("d", Command(resume="yes-d"))
        both("s", Command(resume="yes-s"))
        check("resumed")


async def test_editing_the_tool_result_of_a_step_cut_short_leaves_the_tools_write_as_written_async(
    make_async_saver: Any, make_saver: Any
) -> None:
    """The same on the async savers (ainvoke, aget_state, aupdate_state). LangGraph's
    async runner cancels the ToolNode when audit raises first, so audit raises once the
    ToolNode's write is stored (else the step has no tools write to edit, on any saver)."""
    config = {"configurable": {"thread_id": f"s19l-cut-async-{uuid.uuid4().hex[:8]}"}}
    mem = InMemorySaver()
    results = []

    def audit_once_tools_wrote(s: Any, cfg: Any) -> Any:
        async def audit(state: _ToolState) -> dict[str, Any]:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                tup = await s.aget_tuple(cfg)
                # the ToolNode's own write (a ToolMessage): under async durability the
                # latest checkpoint may still be the model's step, whose pending write of
                # the AIMessage is on "messages" too (CI saw audit raise on that one, and
                # the ToolNode cancelled before it wrote)
                if any(
                    ch == "messages" and any(isinstance(m, ToolMessage) for m in v)
                    for _, ch, v in (tup.pending_writes if tup else [])
                ):
                    break
                await asyncio.sleep(0.01)
            raise RuntimeError("audit is down")

        return audit

    async with make_async_saver() as saver:
        for s, cfg in ((saver, config), (mem, {"configurable": {"thread_id": "ref"}})):
            graph = _beside_tools(s, "audit", audit_once_tools_wrote(s, cfg))
            with pytest.raises(RuntimeError, match="audit is down"):
                await graph.ainvoke({"messages": [HumanMessage("time?", id="h-1")]}, cfg)
            tool_msg = (await graph.aget_state(cfg)).values["messages"][-1]
            tool_msg.content = f"{tool_msg.content} (edited)"
            await graph.aupdate_state(cfg, {"messages": [tool_msg]})
            results.append([[(t.name, t.result) for t in st.tasks if t.name == "tools"] async for st in graph.aget_state_history(cfg)])
    ours, want = ([[(n, [m.content for m in (r or {}).get("messages", [])]) for n, r in ts] for ts in res] for res in results)
    assert any(ts == [("tools", ["Paris: 12:00"])] for ts in want)
    assert ours == want
    with make_saver() as fresh:
        assert _tool_results(_build_cut_short(fresh), config) == want
