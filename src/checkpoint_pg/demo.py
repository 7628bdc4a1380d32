"""A small, offline tool-calling agent that shows what a checkpointer stores.

The chat model is scripted (no network, deterministic): on a customer's
request it asks for the ``lookup_order`` and ``refund`` tools; once the tool
results are in, it answers. Before any refund runs, the ``approval`` node
pauses the graph with :func:`langgraph.types.interrupt` and waits for a human.

:func:`run_demo` drives one thread through the pause and the resume and then
prints the thread's checkpoint history, one checkpoint per header line.
It works with any :class:`~langgraph.checkpoint.base.BaseCheckpointSaver`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, StateSnapshot, interrupt

__all__ = ["ScriptedSupportModel", "build_demo_graph", "format_history", "run_demo"]

ORDER_ID = "A-1001"
REQUEST = f"My order {ORDER_ID} arrived broken. Can I get my money back?"


@tool
def lookup_order(order_id: str) -> str:
    """Look up an order and return its status."""
    return f"order {order_id}: 1 x teapot, 42.50 EUR, delivered, damaged in transit"


@tool
def refund(order_id: str, amount: float) -> str:
    """Refund an amount for an order."""
    return f"refunded {amount:.2f} EUR for order {order_id}"


TOOLS = [lookup_order, refund]


class ScriptedSupportModel(BaseChatModel):
    """A chat model whose answer depends only on the conversation so far.

    After a human message it calls both tools; after tool results it writes
    the final answer from them. Message ids are derived from the position,
    so two runs of the same conversation produce identical messages.
    """

    @property
    def _llm_type(self) -> str:
        return "scripted-support"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        msg_id = f"ai-{sum(isinstance(m, AIMessage) for m in messages) + 1}"
        last = messages[-1]
        if isinstance(last, ToolMessage):
            results = [m.content for m in messages if isinstance(m, ToolMessage)]
            reply = AIMessage(
                content="Done. " + "; ".join(str(r) for r in results) + ".",
                id=msg_id,
            )
        else:
            reply = AIMessage(
                content="Let me check that order and issue the refund.",
                id=msg_id,
                tool_calls=[
                    {
                        "name": "lookup_order",
                        "args": {"order_id": ORDER_ID},
                        "id": "call-lookup-1",
                    },
                    {
                        "name": "refund",
                        "args": {"order_id": ORDER_ID, "amount": 42.5},
                        "id": "call-refund-1",
                    },
                ],
            )
        return ChatResult(generations=[ChatGeneration(message=reply)])


def build_demo_graph(checkpointer: BaseCheckpointSaver | None) -> CompiledStateGraph:
    """Compile the demo graph: ``agent`` -> ``approval`` -> ``tools`` -> ``agent``."""
    model = ScriptedSupportModel()

    def agent(state: MessagesState) -> dict[str, list[BaseMessage]]:
        """Ask the scripted model for the next message."""
        return {"messages": [model.invoke(state["messages"])]}

    def route(state: MessagesState) -> Literal["approval", "__end__"]:
        """Go on to approval when the last AI message calls tools."""
        last = state["messages"][-1]
        return "approval" if isinstance(last, AIMessage) and last.tool_calls else END

    def approval(state: MessagesState) -> dict[str, list[BaseMessage]]:
        """Pause for a human decision on refund calls; drop them if rejected."""
        last = state["messages"][-1]
        assert isinstance(last, AIMessage)
        refunds = [c for c in last.tool_calls if c["name"] == "refund"]
        if not refunds:
            return {"messages": []}
        approved = interrupt(
            {"question": "Approve this refund?", "tool_calls": refunds}
        )
        if approved:
            return {"messages": []}
        kept = [c for c in last.tool_calls if c["name"] != "refund"]
        # Same id: add_messages replaces the AI message instead of appending.
        edited = AIMessage(
            content=f"{last.content} (refund rejected by a human)",
            id=last.id,
            tool_calls=kept,
        )
        return {"messages": [edited]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("approval", approval)
    builder.add_node("tools", ToolNode(TOOLS))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["approval", END])
    builder.add_edge("approval", "tools")
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


def _cut(text: str, width: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _format_message(msg: BaseMessage) -> str:
    role = {"human": "human", "ai": "ai", "tool": "tool", "system": "system"}.get(
        msg.type, msg.type
    )
    text = f"{role}: {_cut(str(msg.content))}"
    if isinstance(msg, ToolMessage):
        text = f"tool[{msg.name}]: {_cut(str(msg.content))}"
    calls = getattr(msg, "tool_calls", None) or []
    if calls:
        rendered = ", ".join(
            f"{c['name']}({', '.join(f'{k}={v!r}' for k, v in c['args'].items())})"
            for c in calls
        )
        text += f" -> calls {rendered}"
    return text


def _writers(snapshot: StateSnapshot | None) -> str:
    """Name the tasks of ``snapshot`` and the channels their results wrote."""
    if snapshot is None:
        return "(nothing: first checkpoint)"
    parts = []
    for task in snapshot.tasks:
        result = task.result if isinstance(task.result, dict) else {}
        # an empty update is a write too (`history` shows it): name it as one
        written = sorted(
            k if v not in (None, [], {}, "") else f"{k} (empty)" for k, v in result.items()
        )
        resumed = " after an interrupt" if task.interrupts else ""
        if written:
            parts.append(f"{task.name}{resumed} -> {', '.join(written)}")
        elif task.result is not None:
            parts.append(f"{task.name}{resumed} -> (nothing)")
        elif task.interrupts:
            parts.append(f"{task.name} -> (waiting on its interrupt)")
        else:
            parts.append(f"{task.name} -> (not run)")
    return "; ".join(parts) if parts else "(update)"


def format_history(snapshots: Sequence[StateSnapshot]) -> list[str]:
    """Render a thread's history, oldest first, as plain text lines.

    Each checkpoint gets one header line (step, source, the tasks of the
    previous checkpoint that wrote it, next nodes), then the messages it
    added, indented, and any interrupt waiting on it.
    """
    lines: list[str] = []
    ordered = sorted(snapshots, key=lambda s: s.config["configurable"]["checkpoint_id"])
    seen: dict[str, str] = {}
    previous: StateSnapshot | None = None
    for snap in ordered:
        meta = snap.metadata or {}
        values = snap.values if isinstance(snap.values, dict) else {}
        nxt = ",".join(snap.next) or "-"
        lines.append(
            f"step {meta.get('step', '?'):>2}  {meta.get('source', '?'):<6} "
            f"written by: {_writers(previous)}  next: {nxt}"
        )
        for msg in values.get("messages", []):
            rendered = _format_message(msg)
            if seen.get(str(msg.id)) != rendered:
                seen[str(msg.id)] = rendered
                lines.append(f"    {rendered}")
        for intr in snap.interrupts:
            lines.append(f"    interrupt: {_cut(repr(intr.value))}")
        previous = snap
    return lines


def run_demo(
    checkpointer: BaseCheckpointSaver,
    thread_id: str = "demo",
    approve: bool = True,
    out: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """Run the demo on one thread, pause at the approval, resume, print history.

    Returns the final state values of the thread.
    """
    graph = build_demo_graph(checkpointer)
    config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
    out(f"thread {thread_id!r}: customer asks for a refund")
    first = graph.invoke({"messages": [HumanMessage(REQUEST, id="human-1")]}, config)
    for intr in first.get("__interrupt__", []):
        out(f"paused for approval: {_cut(repr(intr.value))}")
    out(f"human {'approves' if approve else 'rejects'} the refund")
    final = graph.invoke(Command(resume=approve), config)
    out(_format_message(final["messages"][-1]))
    out("")
    history = list(graph.get_state_history(config))
    out(f"history: {len(history)} checkpoints, oldest first")
    for line in format_history(history):
        out(line)
    return final
