"""A scripted tool-calling agent: a real LangGraph StateGraph with
``add_messages`` state, a model node that emits scripted AIMessages, a real
ToolNode, then an answer.

One turn = HumanMessage question (~150 chars) -> AIMessage with one tool call
-> ToolMessage with 1-2 KB of varied prose -> AIMessage answer (~300 chars).
Everything is deterministic in the turn number, so every saver stores the
same content.
"""

from __future__ import annotations

from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition
from typing_extensions import TypedDict

from bench.text import prose, sized

QUESTION_CHARS = 150
ANSWER_CHARS = 300
TOOL_MIN, TOOL_MAX = 1000, 2000
MESSAGES_PER_TURN = 4
CHECKPOINTS_PER_TURN = 5  # input, __start__, agent, tools, agent
# --shape subgraph: root checkpoints per turn (input, the subgraph node, its result);
# the agent's own checkpoints are under the call's namespace
SUBGRAPH_CHECKPOINTS_PER_TURN = 3


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def question(turn: int) -> str:
    return prose(f"q{turn}", QUESTION_CHARS)


def answer(turn: int) -> str:
    return prose(f"a{turn}", ANSWER_CHARS)


def tool_text(turn: int) -> str:
    return sized(f"t{turn}", TOOL_MIN, TOOL_MAX)


@tool
def search_notes(topic: str, turn: int) -> str:
    """Search the knowledge base for a topic and return the matching notes."""
    return tool_text(turn)


def _turn_of(msg: AnyMessage) -> int:
    # message ids are deterministic: q-<turn>, ai-<turn>-call, ai-<turn>-answer
    return int(str(msg.id).split("-")[1])


def model(state: State) -> dict[str, Any]:
    """Scripted 'LLM': tool call after a question, answer after a tool result."""
    last = state["messages"][-1]
    if isinstance(last, HumanMessage):
        turn = _turn_of(last)
        topic = " ".join(str(last.content).split()[:6])
        return {
            "messages": [
                AIMessage(
                    content="",
                    id=f"ai-{turn}-call",
                    tool_calls=[
                        {
                            "name": "search_notes",
                            "args": {"topic": topic, "turn": turn},
                            "id": f"call_{turn:06d}",
                            "type": "tool_call",
                        }
                    ],
                    response_metadata={"model_name": "scripted", "finish_reason": "tool_calls"},
                )
            ]
        }
    if isinstance(last, ToolMessage):
        turn = int(str(last.tool_call_id).split("_")[1])
        return {
            "messages": [
                AIMessage(
                    content=answer(turn),
                    id=f"ai-{turn}-answer",
                    response_metadata={"model_name": "scripted", "finish_reason": "stop"},
                )
            ]
        }
    raise RuntimeError(f"unexpected last message {type(last).__name__}")


def build_graph(checkpointer: Any) -> Any:
    g = StateGraph(State)
    g.add_node("agent", model)
    g.add_node("tools", ToolNode([search_notes]))
    g.add_edge(START, "agent")
    g.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: END})
    g.add_edge("tools", "agent")
    return g.compile(checkpointer=checkpointer)


def build_subgraph_graph(checkpointer: Any) -> Any:
    """The agent as a subgraph node taking the messages (a supervisor's worker, say):
    each call checkpoints its input, the whole history, under a namespace of its own."""
    g = StateGraph(State)
    g.add_node("worker", build_graph(None))
    g.add_edge(START, "worker")
    g.add_edge("worker", END)
    return g.compile(checkpointer=checkpointer)


def turn_input(turn: int) -> dict[str, Any]:
    return {"messages": [HumanMessage(content=question(turn), id=f"q-{turn}")]}
