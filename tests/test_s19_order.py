"""Session 19: real graphs under the orders LangGraph's background executor may give a
step's put_writes and the next checkpoint's put, on our savers and on InMemorySaver.

LangGraph (durability "async"; "sync" waits for the put, never for the writes) submits a
task's put_writes and the next put to background threads: either may finish first, and
add_messages gives the written messages their ids in place meanwhile. `Reorder` forces one
order on a saver's calls while a graph runs, on ours and on InMemorySaver alike:

* ``writes_last``: a put_writes waits, before doing anything, for the next put to finish;
* ``put_last``: a put waits for every put_writes called before it to finish;
* ``stored_last`` (our sync saver on Postgres, whose calls plan outside the connection):
  a put_writes serializes its writes as it is called, then waits for the next put to be
  stored before storing them (InMemorySaver stores them at once: its reads never depend
  on when).

What a graph reads back (each checkpoint of the history, its tasks and its pending
writes), in the process that ran it and in a new one, must be InMemorySaver's, and each
ToolMessage of the thread must be one stored object.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import operator
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, Overwrite, RetryPolicy, Send, interrupt
from typing_extensions import TypedDict

from graphs import (
    apending_writes_summary,
    build_tool_agent,
    in_order,
    pending_writes_summary,
    snapshot_summary,
    weather_question,
)
from test_graphs import assert_same, new_thread
from test_s19 import _listed_first, _put
from test_storage import raw_for

MODES = ["writes_last", "put_last"]
DURABILITIES = ["async", "sync"]
_holding: contextvars.ContextVar[Any] = contextvars.ContextVar("holding", default=None)
# the orders under which add_messages waits for the writes to serialize their messages
_SERIALIZE_FIRST: list[Reorder] = []


def _messages_once_serialized(left: Any, right: Any) -> Any:
    """add_messages, once each message of ``right`` without an id was serialized by the
    put_writes of its write, under ``stored_last``: the race's order, where the write holds
    the message without the id add_messages gives it here."""
    for order in _SERIALIZE_FIRST:
        order.wait_serialized(right if isinstance(right, list) else [right])
    return add_messages(left, right)


class Chat(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], _messages_once_serialized]


class Reorder:
    """Forces ``mode``'s order on ``saver``'s put and put_writes (or aput and aput_writes)
    while ``active``. A call with nothing to wait for (no put follows the last writes of a
    run) goes on after ``timeout``; ``held`` counts the calls that waited for the other."""

    def __init__(self, saver: Any, mode: str, *, is_async: bool = False, timeout: float = 0.5) -> None:
        self.saver, self.mode, self.is_async, self.timeout = saver, mode, is_async, timeout
        self.cond = threading.Condition()
        self.puts_started = self.puts_done = 0
        self.writes_started = 0
        self.writes_open: set[int] = set()
        self.held = 0
        self.active = False
        self.serialized: set[int] = set()  # id() of the messages a put_writes serialized

    # -- the waits --------------------------------------------------------------------

    def _next_put(self) -> int:
        with self.cond:
            return self.puts_started + 1

    def _wait_for_put(self, target: int) -> None:
        with self.cond:
            if self.cond.wait_for(lambda: self.puts_done >= target, self.timeout):
                self.held += 1

    def _wait_for_writes(self, before: int) -> None:
        with self.cond:
            if self.writes_open and self.cond.wait_for(
                lambda: all(s >= before for s in self.writes_open), self.timeout
            ):
                self.held += 1

    def _serialized(self, writes: Any) -> None:
        with self.cond:
            for value in writes:
                self.serialized.update(id(m) for m in value if isinstance(m, BaseMessage))
            self.cond.notify_all()

    def wait_serialized(self, messages: list[Any]) -> None:
        if not self.active:
            return
        ids = {id(m) for m in messages if isinstance(m, BaseMessage) and m.id is None}
        with self.cond:
            # (a write read back by a resume was serialized before: it never comes)
            self.cond.wait_for(lambda: ids <= self.serialized, self.timeout)

    @contextlib.contextmanager
    def _put(self) -> Iterator[None]:
        with self.cond:
            self.puts_started += 1
            before = self.writes_started
        if self.active and self.mode == "put_last":
            self._wait_for_writes(before)
        try:
            yield
        finally:
            with self.cond:
                self.puts_done += 1
                self.cond.notify_all()

    @contextlib.contextmanager
    def _writes(self) -> Iterator[int]:
        with self.cond:
            seq = self.writes_started
            self.writes_started += 1
            self.writes_open.add(seq)
        try:
            yield self._next_put()
        finally:
            with self.cond:
                self.writes_open.discard(seq)
                self.cond.notify_all()

    # -- the saver's methods ----------------------------------------------------------

    def __enter__(self) -> Reorder:
        s = self.saver
        if self.is_async:
            put, put_writes = s.aput, s.aput_writes

            async def aput(config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
                with self.cond:
                    self.puts_started += 1
                    before = self.writes_started
                if self.active and self.mode == "put_last":
                    await asyncio.to_thread(self._wait_for_writes, before)
                try:
                    return await put(config, checkpoint, metadata, new_versions)
                finally:
                    with self.cond:
                        self.puts_done += 1
                        self.cond.notify_all()

            async def aput_writes(config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
                with self._writes() as target:
                    if self.active and self.mode == "writes_last":
                        await asyncio.to_thread(self._wait_for_put, target)
                    await put_writes(config, writes, task_id, task_path)

            s.aput, s.aput_writes = aput, aput_writes
            return self
        put, put_writes = s.put, s.put_writes

        def put_(config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
            with self._put():
                return put(config, checkpoint, metadata, new_versions)

        def put_writes_(config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
            with self._writes() as target:
                if self.active and self.mode == "writes_last":
                    self._wait_for_put(target)
                if not (self.active and self.mode == "stored_last"):
                    return put_writes(config, writes, task_id, task_path)
                if isinstance(s, InMemorySaver):
                    put_writes(config, writes, task_id, task_path)  # serialized and stored
                    return self._serialized([v if isinstance(v, list) else [v] for _, v in writes])
                token = _holding.set((self, target))
                try:
                    return put_writes(config, writes, task_id, task_path)
                finally:
                    _holding.reset(token)

        s.put, s.put_writes = put_, put_writes_
        if self.mode == "stored_last" and not isinstance(s, InMemorySaver):
            encode = s.ctx.codec.encode

            def encode_then_wait(value: Any) -> Any:
                out = encode(value)
                held = _holding.get()
                if held is not None:
                    held[0]._serialized([value if isinstance(value, list) else [value]])
                    held[0]._wait_for_put(held[1])
                return out

            s.ctx.codec.encode = encode_then_wait
        return self

    def __exit__(self, *exc: Any) -> None:
        for name in ("put", "put_writes", "aput", "aput_writes"):
            self.saver.__dict__.pop(name, None)
        if not isinstance(self.saver, InMemorySaver):
            self.saver.ctx.codec.__dict__.pop("encode", None)

    @contextlib.contextmanager
    def on(self) -> Iterator[None]:
        """The order is forced in here (a graph's run), not around update_state's calls."""
        self.active = True
        if self.mode == "stored_last":
            _SERIALIZE_FIRST.append(self)
        try:
            yield
        finally:
            self.active = False
            if self in _SERIALIZE_FIRST:
                _SERIALIZE_FIRST.remove(self)


# -- what a graph reads back ----------------------------------------------------------


async def _history(graph: Driver, config: RunnableConfig) -> list[Any]:
    """Each checkpoint of the thread, newest first, with its tasks and pending writes, and
    after each the history of the subgraph namespaces its tasks name."""
    out: list[Any] = []
    for snap in await graph.history(config):
        out.append({**snapshot_summary(snap), "writes": await graph.pending(snap)})
        for task in snap.tasks:
            if task.state is not None:
                sub = {"configurable": {**task.state["configurable"]}}
                sub["configurable"].pop("checkpoint_id", None)
                out.append(await _history(graph, sub))
    return out


def _tool_messages_stored_once(
    saver_target: Any, saver: Any, config: RunnableConfig, keys: set[tuple[Any, ...]]
) -> None:
    """Each ToolMessage of the thread (``keys``: `_tool_key` of each) is one stored object,
    held by no stored list whole."""
    with raw_for(saver_target, saver) as raw:
        objs = raw.decoded_objects(config["configurable"]["thread_id"])
    found = Counter(_tool_key(v) for v in objs.values() if isinstance(v, ToolMessage))
    assert found == Counter(keys), f"stored ToolMessages {sorted(found.elements(), key=repr)}, expected {keys}"
    nested = [v for v in objs.values() if isinstance(v, (list, tuple, dict)) and "ToolMessage" in repr(v)]
    assert nested == []


def _tool_key(m: ToolMessage) -> tuple[Any, ...]:
    return (m.id, m.tool_call_id, m.content)


async def _tool_keys(graph: Driver, config: RunnableConfig) -> set[tuple[Any, ...]]:
    """The ToolMessages of the thread's history and of its checkpoints' pending writes (a
    message without an id by its contents)."""
    keys: set[tuple[Any, ...]] = set()
    saver = graph.graph.checkpointer
    for snap in await graph.history(config):
        tup = await saver.aget_tuple(snap.config) if graph.is_async else saver.get_tuple(snap.config)
        values = [*snap.values.values(), *(v for _, _, v in tup.pending_writes)]
        for value in values:
            for m in value if isinstance(value, list) else [value]:
                if isinstance(m, ToolMessage):
                    keys.add(_tool_key(m))
    return keys


# -- the graphs -----------------------------------------------------------------------

Build = Callable[[BaseCheckpointSaver], Any]
# run(driver of the graph, config, on, durability): ``on()`` around each run of the graph
Run = Callable[[Any, RunnableConfig, Callable[[], Any], str], Awaitable[None]]


class Driver:
    """A graph's calls as coroutines: its async methods (``is_async``), or its sync ones."""

    def __init__(self, graph: Any, is_async: bool, reopen: Callable[[], Any] | None = None) -> None:
        self.graph, self.is_async = graph, is_async
        # an async context manager: (Driver, on) of the graph on a new saver (another
        # process), under the same order; the same ones on InMemorySaver
        self.reopen = reopen

    async def invoke(self, value: Any, config: RunnableConfig, durability: str) -> Any:
        if self.is_async:
            return await self.graph.ainvoke(value, config, durability=durability)
        return self.graph.invoke(value, config, durability=durability)

    async def get_state(self, config: RunnableConfig) -> Any:
        if self.is_async:
            return await self.graph.aget_state(config)
        return self.graph.get_state(config)

    async def history(self, config: RunnableConfig) -> list[Any]:
        if self.is_async:
            return [s async for s in self.graph.aget_state_history(config)]
        return list(self.graph.get_state_history(config))

    async def update_state(self, config: RunnableConfig, values: Any) -> Any:
        if self.is_async:
            return await self.graph.aupdate_state(config, values)
        return self.graph.update_state(config, values)

    async def pending(self, snap: Any) -> Any:
        if self.is_async:
            return await apending_writes_summary(self.graph.checkpointer, snap)
        return pending_writes_summary(self.graph.checkpointer, snap)


def _tool_agent(s: BaseCheckpointSaver, **compile: Any) -> Any:
    """graphs.build_tool_agent's ToolNode loop, on `Chat`."""
    return build_tool_agent(None, Chat).builder.compile(checkpointer=s, **compile)


def _agent(s: BaseCheckpointSaver) -> Any:
    return _tool_agent(s)


async def _run_agent(graph: Any, config: RunnableConfig, on: Any, durability: str) -> None:
    for city in ("Paris", "Rome"):
        with on():
            await graph.invoke(weather_question(city), config, durability)


def _reviewed_agent(s: BaseCheckpointSaver) -> Any:
    return _tool_agent(s, interrupt_before=["tools"])


async def _run_agent_edit(graph: Any, config: RunnableConfig, on: Any, durability: str) -> None:
    """LangGraph's "edit the tool call": stop before tools, edit in place, update_state, resume."""
    with on():
        await graph.invoke(weather_question("Paris"), config, durability)
    last = (await graph.get_state(config)).values["messages"][-1]
    last.tool_calls[0]["args"] = {"city": "Rome"}
    last.content = "Checking Rome."
    await graph.update_state(config, {"messages": [last]})
    with on():
        await graph.invoke(None, config, durability)


async def _run_fork(graph: Any, config: RunnableConfig, on: Any, durability: str) -> None:
    """Time travel: replay from the checkpoint before tools, then fork it with an edit."""
    with on():
        await graph.invoke(weather_question("Paris"), config, durability)
    with on():
        await graph.invoke(None, config, durability)
    before_tools = next(s for s in await graph.history(config) if s.next == ("tools",))
    with on():
        await graph.invoke(None, before_tools.config, durability)  # a replay
    last = before_tools.values["messages"][-1]
    last.tool_calls[1]["args"] = {"city": "Oslo"}
    fork = await graph.update_state(before_tools.config, {"messages": [last]})
    with on():
        await graph.invoke(None, fork, durability)


class _Drafts(TypedDict, total=False):
    drafts: list[AnyMessage]
    done: bool


def _drafts(s: BaseCheckpointSaver) -> Any:
    def write(state: _Drafts) -> _Drafts:
        return {"drafts": [HumanMessage("draft"), ToolMessage("other", tool_call_id="c-1")]}

    def finish(state: _Drafts) -> _Drafts:
        return {"done": True}

    return in_order(_Drafts, ("write", write), ("finish", finish)).compile(
        checkpointer=s, interrupt_before=["finish"]
    )


def _run_review(channel: str, wrap: Callable[[Any], Any]) -> Run:
    """The graph stops, a review edits the first message of ``channel`` from get_state in
    place and writes the list back (through ``wrap``), the graph resumes."""

    async def run(graph: Any, config: RunnableConfig, on: Any, durability: str) -> None:
        with on():
            await graph.invoke({}, config, durability)
        items = (await graph.get_state(config)).values[channel]
        items[0].content = "edited"
        await graph.update_state(config, {channel: wrap(items)})
        with on():
            await graph.invoke(None, config, durability)

    return run


class _Notes(TypedDict, total=False):
    notes: Annotated[list[AnyMessage], operator.add]
    done: bool


def _notes(s: BaseCheckpointSaver) -> Any:
    def write(state: _Notes) -> _Notes:
        return {"notes": [AIMessage("draft"), ToolMessage("other", tool_call_id="c-1")]}

    def more(state: _Notes) -> _Notes:
        return {"notes": [AIMessage(f"more after {len(state['notes'])}")]}

    def finish(state: _Notes) -> _Notes:
        return {"done": True, "notes": [ToolMessage("last", tool_call_id="c-2")]}

    return in_order(_Notes, ("write", write), ("more", more), ("finish", finish)).compile(
        checkpointer=s, interrupt_before=["finish"]
    )


def _fan_out(s: BaseCheckpointSaver) -> Any:
    """Send fan-out: each ``tool`` task writes a ToolMessage without an id to add_messages."""

    def plan(state: Chat) -> dict[str, Any]:
        calls = [{"name": "t", "args": {"n": i}, "id": f"call-{i}"} for i in range(3)]
        return {"messages": [AIMessage("plan", tool_calls=calls)]}

    def route(state: Chat) -> list[Send]:
        return [Send("tool", c) for c in state["messages"][-1].tool_calls]

    def tool(call: dict[str, Any]) -> dict[str, Any]:
        return {"messages": [ToolMessage(f"result {call['args']['n']}", tool_call_id=call["id"])]}

    def answer(state: Chat) -> dict[str, Any]:
        return {"messages": [AIMessage(f"{len(state['messages'])} messages")]}

    g = StateGraph(Chat)
    g.add_node("plan", plan)
    g.add_node("tool", tool)
    g.add_node("answer", answer)
    g.add_edge(START, "plan")
    g.add_conditional_edges("plan", route, ["tool"])
    g.add_edge("tool", "answer")
    g.add_edge("answer", END)
    return g.compile(checkpointer=s)


async def _run_once(graph: Any, config: RunnableConfig, on: Any, durability: str) -> None:
    with on():
        await graph.invoke({"messages": [HumanMessage("go")]}, config, durability)


def _subgraph(s: BaseCheckpointSaver) -> Any:
    """A parent whose ``child`` (a subgraph) writes a ToolMessage, asks for a hint
    (interrupt), then writes another; the parent answers after."""

    def call(state: Chat) -> dict[str, Any]:
        return {"messages": [ToolMessage("called", tool_call_id="c-1")]}

    def ask(state: Chat) -> dict[str, Any]:
        hint = interrupt({"ask": len(state["messages"])})
        return {"messages": [ToolMessage(f"hint {hint}", tool_call_id="c-2")]}

    child = in_order(Chat, ("call", call), ("ask", ask)).compile()

    def answer(state: Chat) -> dict[str, Any]:
        return {"messages": [AIMessage(f"{len(state['messages'])} messages")]}

    return in_order(Chat, ("child", child), ("answer", answer)).compile(checkpointer=s)


async def _run_resume(graph: Any, config: RunnableConfig, on: Any, durability: str) -> None:
    with on():
        await graph.invoke({"messages": [HumanMessage("go")]}, config, durability)
    with on():
        await graph.invoke(Command(resume="north"), config, durability)


def _beside_a_tool(name: str, node: Any, **options: Any) -> Build:
    """``tools`` (a ToolMessage without an id) and ``name`` run in one step, then ``join``."""

    def tools(state: Chat) -> dict[str, Any]:
        return {"messages": [ToolMessage("sunny", tool_call_id="c-1")]}

    def join(state: Chat) -> dict[str, Any]:
        return {"messages": [ToolMessage(f"joined {len(state['messages'])}", tool_call_id="c-3")]}

    def build(s: BaseCheckpointSaver) -> Any:
        g = StateGraph(Chat)
        g.add_node("tools", tools)
        g.add_node(name, node, **options)
        g.add_node("join", join)
        g.add_edge(START, "tools")
        g.add_edge(START, name)
        g.add_edge(["tools", name], "join")
        g.add_edge("join", END)
        return g.compile(checkpointer=s)

    return build


# by thread: a graph is built again to resume (its nodes would count from 0)
_CALLS: Counter[str] = Counter()


def _fails_first(wait: float) -> Any:
    """A node raising ValueError at its thread's first call, ``wait`` s in."""

    def flaky(state: Chat, config: RunnableConfig) -> dict[str, Any]:
        key = f"{config['configurable']['thread_id']}/{wait}"
        _CALLS[key] += 1
        if _CALLS[key] == 1:
            time.sleep(wait)  # (after tools finished: a sibling still running is cancelled)
            raise ValueError("flaky failed")
        return {"messages": [ToolMessage("recovered", tool_call_id="c-2")]}

    return flaky


def _ask(state: Chat) -> dict[str, Any]:
    answer = interrupt({"ask": len(state["messages"])})
    return {"messages": [ToolMessage(f"answer {answer}", tool_call_id="c-2")]}


# flaky fails its first attempt while the writes of tools are stored, and is retried
_retried = _beside_a_tool(
    "flaky", _fails_first(0.0), retry_policy=RetryPolicy(max_attempts=2, initial_interval=0.01, retry_on=ValueError)
)
# ask interrupts: the write of tools waits with the checkpoint, read back by the resume
_interrupted_beside_a_tool = _beside_a_tool("ask", _ask)
# flaky fails the thread's first run (no retry)
_failing_beside_a_tool = _beside_a_tool("flaky", _fails_first(0.1))


def _run_resumed_elsewhere(resume: Any) -> Run:
    """The run stops (an interrupt, a failure); another process resumes it with ``resume``
    and edits the last ToolMessage through update_state, then this one runs the graph again."""

    async def run(graph: Driver, config: RunnableConfig, on: Any, durability: str) -> None:
        with on(), contextlib.suppress(ValueError):
            await graph.invoke({"messages": [HumanMessage("go")]}, config, durability)
        async with graph.reopen() as (other, other_on):  # type: ignore[misc]
            with other_on():
                await other.invoke(resume, config, durability)
            last = [m for m in (await other.get_state(config)).values["messages"] if m.type == "tool"][-1]
            last.content = "edited"
            await other.update_state(config, {"messages": [last]})
        with on():
            await graph.invoke({"messages": [HumanMessage("again")]}, config, durability)

    return run


class _ChatAndLog(Chat, total=False):
    log: list[AnyMessage]


def _two_channels(s: BaseCheckpointSaver) -> Any:
    """A node writes one ToolMessage object (without an id) to the messages and to a
    plain list: add_messages gives it its id, which the other list's element has too."""

    def tools(state: _ChatAndLog) -> dict[str, Any]:
        result = ToolMessage("sunny", tool_call_id="c-1")
        return {"messages": [result], "log": [*state.get("log", []), result]}

    def answer(state: _ChatAndLog) -> dict[str, Any]:
        return {"messages": [AIMessage(f"{len(state['log'])} logged")]}

    return in_order(_ChatAndLog, ("tools", tools), ("answer", answer)).compile(checkpointer=s)


async def _run_twice(graph: Any, config: RunnableConfig, on: Any, durability: str) -> None:
    for text in ("go", "again"):
        with on():
            await graph.invoke({"messages": [HumanMessage(text)]}, config, durability)


SCENARIOS: dict[str, tuple[Build, Run]] = {
    "two-channels": (_two_channels, _run_twice),
    "interrupted-resumed-elsewhere": (_interrupted_beside_a_tool, _run_resumed_elsewhere(Command(resume="yes"))),
    "failed-resumed-elsewhere": (_failing_beside_a_tool, _run_resumed_elsewhere(None)),
    "agent": (_agent, _run_agent),
    "agent-edit": (_reviewed_agent, _run_agent_edit),
    "fork": (_reviewed_agent, _run_fork),
    "drafts": (_drafts, _run_review("drafts", list)),
    "notes-overwrite": (_notes, _run_review("notes", Overwrite)),
    "fan-out": (_fan_out, _run_once),
    "subgraph": (_subgraph, _run_resume),
    "retry": (_retried, _run_once),
}


async def _run_both(
    open_saver: Callable[[], Any], saver_target: Any, scenario: str, mode: str, durability: str, is_async: bool
) -> None:
    """``scenario`` under ``mode`` on InMemorySaver and on a saver ``open_saver`` opens (an
    async context manager): the same history, read in this process and in a new one."""
    build, run = SCENARIOS[scenario]

    def drive(s: BaseCheckpointSaver, on: Any = None) -> Driver:
        @contextlib.asynccontextmanager
        async def reopen() -> AsyncIterator[tuple[Driver, Any]]:
            if isinstance(s, InMemorySaver):
                yield drive(s, on), on
                return
            async with open_saver() as other:
                with Reorder(other, mode, is_async=is_async) as again:
                    yield drive(other, again.on), again.on

        return Driver(build(s), is_async, reopen)

    reference = InMemorySaver()
    ref_config = new_thread(f"order-{scenario}")
    with Reorder(reference, mode, is_async=is_async) as order:
        await run(drive(reference, order.on), ref_config, order.on, durability)
    expected = await _history(drive(reference), ref_config)
    config = new_thread(f"order-{scenario}")
    async with open_saver() as saver:
        with Reorder(saver, mode, is_async=is_async) as order:
            await run(drive(saver, order.on), config, order.on, durability)
        # (a put finds the writes before it stored, as often as not: nothing to hold)
        assert order.held or mode == "put_last", "the order was never forced"
        assert_same({"history": await _history(drive(saver), config)}, {"history": expected})
        keys = await _tool_keys(drive(saver), config)
        _tool_messages_stored_once(saver_target, saver, config, keys)
    async with open_saver() as fresh:  # another process reads the thread
        assert_same({"history": await _history(drive(fresh), config)}, {"history": expected})


def _as_async(make_saver: Any) -> Callable[[], Any]:
    @contextlib.asynccontextmanager
    async def opened() -> AsyncIterator[Any]:
        with make_saver() as s:
            yield s

    return opened


@pytest.mark.parametrize("durability", DURABILITIES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_graph_under_forced_order_reads_as_in_memory(
    make_saver: Any, saver_target: Any, scenario: str, mode: str, durability: str
) -> None:
    asyncio.run(_run_both(_as_async(make_saver), saver_target, scenario, mode, durability, False))


@pytest.mark.parametrize("durability", DURABILITIES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_graph_under_forced_order_reads_as_in_memory_async(
    make_async_saver: Any, saver_target: Any, scenario: str, mode: str, durability: str
) -> None:
    await _run_both(make_async_saver, saver_target, scenario, mode, durability, True)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)  # SQLite plans under its lock
@pytest.mark.parametrize("durability", DURABILITIES)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_graph_with_writes_serialized_before_and_stored_after_the_put(
    make_saver: Any, saver_target: Any, scenario: str, durability: str
) -> None:
    """The order of the race WrittenMessages is for: put_writes serializes its messages
    before add_messages gives them ids, the put storing the list goes in, then the writes."""
    asyncio.run(_run_both(_as_async(make_saver), saver_target, scenario, "stored_last", durability, False))


# -- defects found ----------------------------------------------------------------------


class _DraftsAndChat(TypedDict, total=False):
    drafts: list[AnyMessage]
    messages: Annotated[list[AnyMessage], add_messages]
    done: bool


def _draft_then_finish(s: BaseCheckpointSaver) -> Any:
    def write(state: _DraftsAndChat) -> _DraftsAndChat:
        return {"drafts": [HumanMessage("draft")]}

    def finish(state: _DraftsAndChat) -> _DraftsAndChat:
        return {"done": True}

    return in_order(_DraftsAndChat, ("write", write), ("finish", finish)).compile(
        checkpointer=s, interrupt_before=["finish"]
    )


@pytest.mark.parametrize("mode", MODES)
def test_a_draft_edited_and_posted_to_the_messages_leaves_its_write_as_written(
    make_saver: Any, mode: str
) -> None:
    """A node writes a message without an id to a plain list; a review edits it in place
    (get_state) and posts it to the messages (update_state), where add_messages gives it
    its id. Its id came after an edit, not alone: the node's write must keep the draft.
    With the write stored after the put of its step (``writes_last``), its entry waited
    for a later put, and update_state's put of the message, edited and now with an id,
    repointed the write at it: a new process read the node's write as the edit.

    (In this process the write reads as the edit under either order: get_state returned
    the very object the write's hash is held as, README "State is immutable".)"""

    def run(s: BaseCheckpointSaver, config: RunnableConfig) -> None:
        graph = _draft_then_finish(s)
        with Reorder(s, mode) as order, order.on():
            graph.invoke({"messages": []}, config)
        draft = graph.get_state(config).values["drafts"][0]
        draft.content = "edited"
        graph.update_state(config, {"messages": [draft]})
        graph.invoke(None, config)

    def history(s: BaseCheckpointSaver, config: RunnableConfig) -> list[Any]:
        return asyncio.run(_history(Driver(_draft_then_finish(s), False), config))

    reference, ref_config = InMemorySaver(), new_thread("draft-posted")
    run(reference, ref_config)
    config = new_thread("draft-posted")
    with make_saver() as saver:
        run(saver, config)
    with make_saver() as fresh:
        assert_same({"history": history(fresh, config)}, {"history": history(reference, ref_config)})


def test_a_write_is_not_repointed_at_its_message_edited_then_given_its_id(make_saver: Any) -> None:
    """The saver's calls of the graph above, on both backends: the put storing the node's
    message (without an id) goes in before its put_writes registers it; a review edits
    it in place and posts it to add_messages, which gives it its id; that put stores the
    edit. Only the id is what a later hash may add to a written message: the write keeps
    the draft."""
    draft = HumanMessage("draft")
    with make_saver() as saver:
        config, versions, first, second = _listed_first(saver, "edited-then-ided", "drafts", [draft])
        saver.put_writes(first, [("drafts", [draft])], "write-task")
        draft.content, draft.id = "edited", "m-1"
        _put(saver, second, {"messages": [draft]}, versions, 1)
    with make_saver() as fresh:
        writes = fresh.get_tuple(first).pending_writes
        latest = fresh.get_tuple(config).checkpoint["channel_values"]
    assert [(ch, [(m.content, m.id) for m in v]) for _, ch, v in writes] == [("drafts", [("draft", None)])]
    assert [(m.content, m.id) for m in latest["messages"]] == [("edited", "m-1")]
