"""Reusable LangGraph graphs for checkpointer tests, plus tools to compare runs.

Every graph here is deterministic: the chat model is scripted from the
conversation so far, tools return fixed text, and node side effects are
counted in a caller-owned ``Counter`` so that two runs (for example one on
our saver and one on ``InMemorySaver``) can be compared value for value.

The ``*_summary`` helpers turn what a graph reads back from a checkpointer
(state, history, pending writes) into plain data with the run-specific parts
removed (checkpoint ids, task ids, message ids, run ids, timestamps), so
that two savers that stored the same thing produce equal summaries.
"""

from __future__ import annotations

import json
import operator
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Literal

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import Command, Interrupt, PregelTask, Send, StateSnapshot, interrupt
from typing_extensions import TypedDict

NULL_TASK_ID = "00000000-0000-0000-0000-000000000000"
"""Task id LangGraph stores writes under when no task made them (input, resume)."""


def in_order(schema: Any, *nodes: tuple[str, Any], output_schema: Any = None) -> StateGraph:
    """A graph of ``schema`` running ``nodes`` ((name, node) pairs) one after another,
    not compiled yet."""
    g = StateGraph(schema, output_schema=output_schema) if output_schema else StateGraph(schema)
    for name, node in nodes:
        g.add_node(name, node)
    names = [name for name, _ in nodes]
    for a, b in zip([START, *names], [*names, END]):
        g.add_edge(a, b)
    return g


# --------------------------------------------------------------------------
# Scripted chat model and tools
# --------------------------------------------------------------------------


@tool
def get_weather(city: str) -> str:
    """Return the weather in a city."""
    return f"{city}: 21C and sunny"


@tool
def get_time(city: str) -> str:
    """Return the local time in a city."""
    return f"{city}: 12:00"


WEATHER_TOOLS = [get_weather, get_time]


def _script(messages: Sequence[BaseMessage]) -> AIMessage:
    """The scripted conversation: the reply depends on the messages only.

    * last message is a tool result -> answer from all tool results;
    * human asks about the weather in <City> -> call both tools for <City>;
    * anything else -> a direct answer, no tool call.
    """
    msg_id = f"ai-{sum(isinstance(m, AIMessage) for m in messages) + 1}"
    last = messages[-1]
    if isinstance(last, ToolMessage):
        facts = [str(m.content) for m in messages if isinstance(m, ToolMessage)]
        return AIMessage(content="Here is what I found: " + "; ".join(facts), id=msg_id)
    text = str(last.content)
    match = re.search(r"weather in (\w+)", text)
    if match:
        city = match.group(1)
        return AIMessage(
            content=f"Checking {city}.",
            id=msg_id,
            tool_calls=[
                {"name": "get_weather", "args": {"city": city}, "id": f"call-w-{city}"},
                {"name": "get_time", "args": {"city": city}, "id": f"call-t-{city}"},
            ],
        )
    return AIMessage(content=f"You said: {text}", id=msg_id)


class ScriptedChatModel(BaseChatModel):
    """A chat model that answers from :func:`_script`, with token streaming.

    When streamed (as under ``stream_mode="messages"``) it yields its content
    word by word and then one chunk carrying the tool calls.
    """

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=_script(messages))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        reply = _script(messages)
        for token in re.findall(r"\s*\S+", str(reply.content)):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token, id=reply.id))
            if run_manager:
                run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk
        last = AIMessageChunk(
            content="",
            id=reply.id,
            chunk_position="last",
            tool_call_chunks=[
                {
                    "name": c["name"],
                    "args": json.dumps(c["args"]),
                    "id": c["id"],
                    "index": i,
                    "type": "tool_call_chunk",
                }
                for i, c in enumerate(reply.tool_calls)
            ],
        )
        yield ChatGenerationChunk(message=last)


# --------------------------------------------------------------------------
# Graph builders
# --------------------------------------------------------------------------


def build_tool_agent(
    checkpointer: BaseCheckpointSaver | None, schema: Any = MessagesState
) -> CompiledStateGraph:
    """The seed graph: ``call_model`` -(tools_condition)-> ``tools`` -> ``generate``.

    ``tools`` is a real ``ToolNode`` with two tools; with no tool call the
    graph ends after ``call_model``. ``schema``: a state with a ``messages`` list.
    """
    model = ScriptedChatModel()

    def call_model(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [model.invoke(state["messages"])]}

    def generate(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(schema)
    builder.add_node("call_model", call_model, input_schema=schema)
    builder.add_node("tools", ToolNode(WEATHER_TOOLS))
    builder.add_node("generate", generate, input_schema=schema)
    builder.add_edge(START, "call_model")
    builder.add_conditional_edges("call_model", tools_condition, ["tools", END])
    builder.add_edge("tools", "generate")
    builder.add_edge("generate", END)
    return builder.compile(checkpointer=checkpointer)


def weather_question(city: str = "Paris") -> dict[str, list[BaseMessage]]:
    """Input for :func:`build_tool_agent` that makes the model call both tools."""
    return {"messages": [HumanMessage(f"What is the weather in {city}?", id="human-1")]}


class ReviewState(TypedDict, total=False):
    topic: str
    draft: str
    approved: bool
    comment: str
    published: str


def build_review_graph(checkpointer: BaseCheckpointSaver | None) -> CompiledStateGraph:
    """``draft`` -> ``review`` (two interrupts: approve?, comment?) -> ``publish``.

    ``review`` calls ``interrupt()`` twice in one node, so after the first
    resume the first answer must survive in the pending writes while the
    graph waits for the second one.
    """

    def draft(state: ReviewState) -> ReviewState:
        return {"draft": f"A short note about {state['topic']}."}

    def review(state: ReviewState) -> ReviewState:
        approved = interrupt({"ask": "approve?", "draft": state["draft"]})
        comment = interrupt({"ask": "comment?", "approved": approved})
        return {"approved": bool(approved), "comment": str(comment)}

    def route(state: ReviewState) -> Literal["publish", "__end__"]:
        return "publish" if state.get("approved") else END

    def publish(state: ReviewState) -> ReviewState:
        return {"published": f"{state['draft']} [{state['comment']}]"}

    builder = StateGraph(ReviewState)
    builder.add_node("draft", draft)
    builder.add_node("review", review)
    builder.add_node("publish", publish)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "review")
    builder.add_conditional_edges("review", route, ["publish", END])
    builder.add_edge("publish", END)
    return builder.compile(checkpointer=checkpointer)


class ParentState(TypedDict, total=False):
    topic: str
    answer: str
    log: Annotated[list[str], operator.add]


class ChildState(TypedDict, total=False):
    topic: str
    steps: Annotated[list[str], operator.add]
    answer: str


class ChildOutput(TypedDict, total=False):
    answer: str


def build_subgraph_graph(checkpointer: BaseCheckpointSaver | None) -> CompiledStateGraph:
    """Parent ``prepare`` -> ``child`` (a compiled subgraph) -> ``finish``.

    The child runs in its own checkpoint namespace: ``research`` ->
    ``ask`` (interrupts for a hint) -> ``write``; it only returns ``answer``.
    """

    def research(state: ChildState) -> ChildState:
        return {"steps": [f"researched {state['topic']}"]}

    def ask(state: ChildState) -> ChildState:
        hint = interrupt({"ask": "hint?", "steps": list(state["steps"])})
        return {"steps": [f"hint: {hint}"]}

    def write(state: ChildState) -> ChildState:
        return {"answer": " / ".join(state["steps"])}

    child = in_order(ChildState, ("research", research), ("ask", ask), ("write", write), output_schema=ChildOutput)

    def prepare(state: ParentState) -> ParentState:
        return {"topic": state["topic"].strip().lower(), "log": ["prepare"]}

    def finish(state: ParentState) -> ParentState:
        return {"log": [f"finish: {state['answer']}"]}

    builder = in_order(ParentState, ("prepare", prepare), ("child", child.compile()), ("finish", finish))
    return builder.compile(checkpointer=checkpointer)


class MapState(TypedDict, total=False):
    items: list[str]
    results: Annotated[list[str], operator.add]
    summary: str


class WorkState(TypedDict):
    item: str


def build_map_reduce(
    checkpointer: BaseCheckpointSaver | None,
    *,
    interrupt_before_work: bool = False,
) -> CompiledStateGraph:
    """``split`` fans out one ``work`` task per item with ``Send``; ``reduce`` joins.

    All ``work`` tasks run in one superstep and write to the ``results``
    reducer channel. With ``interrupt_before_work`` the graph stops with the
    ``Send`` packets pending, so they must come back from the saver.
    """

    def split(state: MapState) -> MapState:
        return {"items": [s.strip() for s in state["items"]]}

    def fan_out(state: MapState) -> list[Send]:
        return [Send("work", {"item": item}) for item in state["items"]]

    def work(state: WorkState) -> MapState:
        return {"results": [f"{state['item']}={len(state['item'])}"]}

    def reduce(state: MapState) -> MapState:
        return {"summary": ",".join(sorted(state["results"]))}

    builder = StateGraph(MapState)
    builder.add_node("split", split)
    builder.add_node("work", work)
    builder.add_node("reduce", reduce)
    builder.add_edge(START, "split")
    builder.add_conditional_edges("split", fan_out, ["work"])
    builder.add_edge("work", "reduce")
    builder.add_edge("reduce", END)
    return builder.compile(
        checkpointer=checkpointer,
        interrupt_before=["work"] if interrupt_before_work else None,
    )


class ChainState(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


def build_chain(
    checkpointer: BaseCheckpointSaver | None, names: Sequence[str] = ("a", "b", "c")
) -> CompiledStateGraph:
    """A linear graph; each node appends its own name to ``log``."""

    def make(name: str) -> Any:
        def node(state: ChainState) -> ChainState:
            return {"log": [name]}

        return node

    builder = StateGraph(ChainState)
    previous = START
    for name in names:
        builder.add_node(name, make(name))
        builder.add_edge(previous, name)
        previous = name
    builder.add_edge(previous, END)
    return builder.compile(checkpointer=checkpointer)


def concat_reducer(state: list[str], writes: Sequence[list[str] | str]) -> list[str]:
    """Batching-invariant list append, as ``DeltaChannel`` requires."""
    out = list(state)
    for write in writes:
        out.extend(write if isinstance(write, list) else [write])
    return out


class DeltaState(TypedDict, total=False):
    items: Annotated[list[str], DeltaChannel(concat_reducer, snapshot_frequency=3)]
    n: int
    target: int


def build_delta_graph(checkpointer: BaseCheckpointSaver | None) -> CompiledStateGraph:
    """A loop whose state lives in a ``DeltaChannel`` (snapshot every 3 updates).

    Each round ``tick`` bumps ``n`` and fans out to ``left`` and ``right``,
    which both append to ``items`` in the same superstep (so the saver must
    replay their writes in task order) and both lead back to ``tick``, which
    runs once per round; the loop stops at ``target`` rounds.
    """

    def tick(state: DeltaState) -> DeltaState:
        n = state.get("n", 0) + 1
        return {"n": n, "items": [f"tick{n}"]}

    def left(state: DeltaState) -> DeltaState:
        return {"items": [f"L{state['n']}"]}

    def right(state: DeltaState) -> DeltaState:
        return {"items": [f"R{state['n']}", f"r{len(state['items'])}"]}

    def route(state: DeltaState) -> list[str] | str:
        return ["left", "right"] if state["n"] < state["target"] else END

    builder = StateGraph(DeltaState)
    builder.add_node("tick", tick)
    builder.add_node("left", left)
    builder.add_node("right", right)
    builder.add_edge(START, "tick")
    builder.add_conditional_edges("tick", route, ["left", "right", END])
    # Two plain edges, not add_edge(["left", "right"], "tick"): a join barrier
    # would hit LangGraph's NamedBarrierValue aliasing under durability="async"
    # (langgraph issue #8748), which is not what this graph is here to test.
    builder.add_edge("left", "tick")
    builder.add_edge("right", "tick")
    return builder.compile(checkpointer=checkpointer)


class FlakyState(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


class FlakyError(RuntimeError):
    """Raised by the ``flaky`` node while it is told to fail."""


def wait_for_write(
    saver: BaseCheckpointSaver,
    thread_id: str,
    channel: str,
    value: Any,
    timeout: float = 20.0,
) -> None:
    """Block until the thread's latest checkpoint has a pending write ``channel=value``.

    Lets a node fail only once a sibling task's write is stored, so the
    test does not depend on thread timing.
    """
    deadline = time.monotonic() + timeout
    config: RunnableConfig = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    while time.monotonic() < deadline:
        tup = saver.get_tuple(config)
        if tup is not None and any(
            c == channel and v == value for _, c, v in tup.pending_writes or []
        ):
            return
        time.sleep(0.01)
    raise TimeoutError(f"no pending write {channel}={value!r} stored within {timeout}s")


def build_flaky_pair(
    checkpointer: BaseCheckpointSaver, calls: Counter[str], fail: list[bool]
) -> CompiledStateGraph:
    """``steady`` and ``flaky`` run in parallel in one superstep, then ``join``.

    While ``fail[0]`` is true, ``flaky`` waits until steady's write is stored
    in ``checkpointer`` and then raises :class:`FlakyError`. Every node
    counts its calls in ``calls``.
    """

    def steady(state: FlakyState) -> FlakyState:
        calls["steady"] += 1
        return {"log": ["steady"]}

    def flaky(state: FlakyState, config: RunnableConfig) -> FlakyState:
        calls["flaky"] += 1
        if fail[0]:
            thread_id = config["configurable"]["thread_id"]
            wait_for_write(checkpointer, thread_id, "log", ["steady"])
            raise FlakyError("flaky failed")
        return {"log": ["flaky"]}

    def join(state: FlakyState) -> FlakyState:
        calls["join"] += 1
        return {"log": [f"join({len(state['log'])})"]}

    builder = StateGraph(FlakyState)
    builder.add_node("steady", steady)
    builder.add_node("flaky", flaky)
    builder.add_node("join", join)
    builder.add_edge(START, "steady")
    builder.add_edge(START, "flaky")
    builder.add_edge(["steady", "flaky"], "join")
    builder.add_edge("join", END)
    return builder.compile(checkpointer=checkpointer)


class PanelState(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


def build_panel(checkpointer: BaseCheckpointSaver | None) -> CompiledStateGraph:
    """``start`` fans out to ``p``, ``q`` and ``r``, which each ``interrupt()`` in
    the same superstep; ``end`` joins them (a barrier).

    All three interrupts are pending at once, so a resume must name them by id
    (``Command(resume={interrupt_id: value})``); a resume naming only some of
    them leaves the others pending, with the answered ones' writes kept.
    """

    def start(state: PanelState) -> PanelState:
        return {"log": ["start"]}

    def make(name: str) -> Any:
        def member(state: PanelState) -> PanelState:
            answer = interrupt({"ask": name})
            return {"log": [f"{name}={answer}"]}

        return member

    def end(state: PanelState) -> PanelState:
        return {"log": [f"end({len(state['log'])})"]}

    builder = StateGraph(PanelState)
    builder.add_node("start", start)
    builder.add_edge(START, "start")
    for name in ("p", "q", "r"):
        builder.add_node(name, make(name))
        builder.add_edge("start", name)
    builder.add_node("end", end)
    builder.add_edge(["p", "q", "r"], "end")
    builder.add_edge("end", END)
    return builder.compile(checkpointer=checkpointer)


class NestState(TypedDict, total=False):
    log: Annotated[list[str], operator.add]
    hint: str


class NestOutput(TypedDict, total=False):
    hint: str


def build_nested_subgraphs(checkpointer: BaseCheckpointSaver | None) -> CompiledStateGraph:
    """Three levels: ``top1`` -> ``middle`` -> ``top2``, where ``middle`` is a
    subgraph compiled with ``checkpointer=True`` (its namespace is plain
    ``middle``, kept across runs of the thread) running ``mid1`` -> ``inner``,
    and ``inner`` a subgraph (namespace ``middle|inner:<task id>``) running
    ``leaf1`` -> ``leaf_ask``, which interrupts for a hint. Both subgraphs
    return only ``hint``, so each namespace's ``log`` tells its own story."""

    def leaf1(state: NestState) -> NestState:
        return {"log": ["leaf1"]}

    def leaf_ask(state: NestState) -> NestState:
        hint = interrupt({"ask": "hint?", "log": list(state["log"])})
        return {"log": [f"leaf_ask={hint}"], "hint": str(hint)}

    inner = in_order(NestState, ("leaf1", leaf1), ("leaf_ask", leaf_ask), output_schema=NestOutput)

    def mid1(state: NestState) -> NestState:
        return {"log": ["mid1"]}

    middle = in_order(NestState, ("mid1", mid1), ("inner", inner.compile()), output_schema=NestOutput)

    def top1(state: NestState) -> NestState:
        return {"log": ["top1"]}

    def top2(state: NestState) -> NestState:
        return {"log": [f"top2({state.get('hint')})"]}

    builder = in_order(NestState, ("top1", top1), ("middle", middle.compile(checkpointer=True)), ("top2", top2))
    return builder.compile(checkpointer=checkpointer)


# --------------------------------------------------------------------------
# Normalising what a saver gives back
# --------------------------------------------------------------------------


def normalize(value: Any) -> Any:
    """Plain, comparable data: run-specific ids and timestamps removed."""
    if isinstance(value, BaseMessage):
        out: dict[str, Any] = {"type": value.type, "content": value.content}
        if isinstance(value, AIMessage) and value.tool_calls:
            out["tool_calls"] = [
                (c["name"], normalize(c["args"]), c["id"]) for c in value.tool_calls
            ]
        if isinstance(value, ToolMessage):
            out["tool_call_id"] = value.tool_call_id
            out["name"] = value.name
        return out
    if isinstance(value, Interrupt):
        return ("Interrupt", normalize(value.value))
    if isinstance(value, Send):
        return ("Send", value.node, normalize(value.arg))
    if isinstance(value, Command):
        return ("Command", normalize(value.update), normalize(value.goto))
    if isinstance(value, _DeltaSnapshot):
        return ("DeltaSnapshot", normalize(value.value))
    if isinstance(value, BaseException):
        return ("Error", type(value).__name__, str(value))
    if isinstance(value, StateSnapshot):
        return snapshot_summary(value)
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    return value


def _sorted(items: Sequence[Any]) -> list[Any]:
    return sorted(items, key=repr)


def task_summary(task: PregelTask) -> dict[str, Any]:
    """A task as (name, error, interrupts, result, nested state)."""
    return {
        "name": task.name,
        "error": normalize(task.error),
        "interrupts": [normalize(i.value) for i in task.interrupts],
        "result": normalize(task.result),
        "state": snapshot_summary(task.state)
        if isinstance(task.state, StateSnapshot)
        else None,
    }


def snapshot_summary(snap: StateSnapshot) -> dict[str, Any]:
    """One checkpoint as the graph sees it, without ids or timestamps."""
    meta = dict(snap.metadata or {})
    return {
        "values": normalize(snap.values),
        "next": tuple(snap.next),
        "source": meta.get("source"),
        "step": meta.get("step"),
        "delta_counters": normalize(meta.get("counters_since_delta_snapshot")),
        "tasks": _sorted([task_summary(t) for t in snap.tasks]),
        "interrupts": _sorted([normalize(i.value) for i in snap.interrupts]),
        "has_parent": snap.parent_config is not None,
    }


def pending_writes_summary(
    saver: BaseCheckpointSaver, snap: StateSnapshot
) -> list[tuple[str, str, Any]]:
    """Pending writes of ``snap``'s checkpoint as sorted (task name, channel, value)."""
    tup = saver.get_tuple(snap.config)
    assert tup is not None
    return _pending(tup.pending_writes or [], snap)


async def apending_writes_summary(
    saver: BaseCheckpointSaver, snap: StateSnapshot
) -> list[tuple[str, str, Any]]:
    """Async :func:`pending_writes_summary`."""
    tup = await saver.aget_tuple(snap.config)
    assert tup is not None
    return _pending(tup.pending_writes or [], snap)


def _pending(writes: Sequence[Any], snap: StateSnapshot) -> list[tuple[str, str, Any]]:
    names = {t.id: t.name for t in snap.tasks}
    names[NULL_TASK_ID] = "<no task>"  # graph input, Command(resume=...), update_state
    return _sorted(
        [(names.get(tid, "?"), channel, normalize(value)) for tid, channel, value in writes]
    )


def thread_summary(
    graph: CompiledStateGraph, config: RunnableConfig, *, subgraphs: bool = False
) -> dict[str, Any]:
    """Latest state, full history (newest first) and pending writes of a thread."""
    saver = graph.checkpointer
    assert isinstance(saver, BaseCheckpointSaver)
    state = graph.get_state(config, subgraphs=subgraphs)
    history = list(graph.get_state_history(config))
    return {
        "state": snapshot_summary(state),
        "history": [snapshot_summary(s) for s in history],
        "pending_writes": pending_writes_summary(saver, state) if history else [],
        "stored_checkpoints": count_checkpoints(saver, config),
    }


async def athread_summary(
    graph: CompiledStateGraph, config: RunnableConfig, *, subgraphs: bool = False
) -> dict[str, Any]:
    """Async :func:`thread_summary`, read through the saver's async methods."""
    saver = graph.checkpointer
    assert isinstance(saver, BaseCheckpointSaver)
    state = await graph.aget_state(config, subgraphs=subgraphs)
    history = [s async for s in graph.aget_state_history(config)]
    thread = {"configurable": {"thread_id": config["configurable"]["thread_id"]}}
    return {
        "state": snapshot_summary(state),
        "history": [snapshot_summary(s) for s in history],
        "pending_writes": await apending_writes_summary(saver, state) if history else [],
        "stored_checkpoints": len([t async for t in saver.alist(thread)]),
    }


def count_checkpoints(
    saver: BaseCheckpointSaver, config: RunnableConfig, checkpoint_ns: str | None = None
) -> int:
    """How many checkpoints the saver lists for the thread (all namespaces by default)."""
    conf: dict[str, Any] = {"thread_id": config["configurable"]["thread_id"]}
    if checkpoint_ns is not None:
        conf["checkpoint_ns"] = checkpoint_ns
    return len(list(saver.list({"configurable": conf})))


def delta_snapshot_steps(saver: BaseCheckpointSaver, config: RunnableConfig, channel: str) -> list[int]:
    """Steps of the checkpoints whose stored ``channel`` value is a ``_DeltaSnapshot``."""
    steps = []
    for tup in saver.list({"configurable": {"thread_id": config["configurable"]["thread_id"]}}):
        if isinstance(tup.checkpoint["channel_values"].get(channel), _DeltaSnapshot):
            steps.append(tup.metadata["step"])
    return sorted(steps)


def stream_summary(chunks: Sequence[Any]) -> list[Any]:
    """Streamed chunks without ids; ``messages`` tuples keep node and step."""
    out = []
    for chunk in chunks:
        if (
            isinstance(chunk, tuple)
            and len(chunk) == 2
            and isinstance(chunk[0], BaseMessage)
            and isinstance(chunk[1], dict)
        ):
            msg, meta = chunk
            out.append(
                (
                    normalize(msg),
                    meta.get("langgraph_node"),
                    meta.get("langgraph_step"),
                    type(msg).__name__,
                )
            )
        else:
            out.append(normalize(chunk))
    return out
