"""Threads written by real LangGraph graphs, and what a saver reads back of them.

Run by the migration review tests in a subprocess against the source tree of an
older release (its ``src`` first on PYTHONPATH), so that the data is written as that
release wrote it; the same module then reads it back with today's code:

    python migration_workload.py write BACKEND URL PREFIX OUT   # run graphs, dump the read-back
    python migration_workload.py read  BACKEND URL PREFIX OUT   # dump the read-back only
    python migration_workload.py continue BACKEND URL PREFIX OUT  # go on with every thread

Nothing here imports the tests' fixtures: only langgraph, the saver under test and
graphs.py (which needs nothing of checkpoint_pg).
"""

from __future__ import annotations

import dataclasses
import operator
import pickle
import sys
from collections import Counter
from typing import Annotated, Any

from graphs import (
    build_delta_graph,
    build_flaky_pair,
    build_map_reduce,
    build_nested_subgraphs,
    build_panel,
    build_review_graph,
    build_subgraph_graph,
    build_tool_agent,
    weather_question,
)
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict


class BigState(TypedDict, total=False):
    messages: Annotated[list[BaseMessage], add_messages]
    numbers: Annotated[list[int], operator.add]
    bag: dict[str, Any]  # a dict holding lists (0012 stores it key by key)
    count: int
    status: str
    ratio: float
    done: bool
    nothing: None
    long_text: str
    blob: bytes


def build_big(checkpointer: Any) -> Any:
    """Long lists (> 64 elements: chunks), a dict channel holding lists, small scalars
    of every kind (0014 inlines them), and an interrupt at the end."""

    def grow(state: BigState) -> BigState:
        n = state.get("count", 0)
        msgs: list[BaseMessage] = []
        for i in range(40):
            k = n * 40 + i
            if i % 4 == 0:
                msgs.append(HumanMessage(f"question {k}", id=f"h{k}"))
            elif i % 4 == 1:
                msgs.append(
                    AIMessage(
                        "",
                        id=f"a{k}",
                        tool_calls=[{"name": "get_weather", "args": {"city": f"c{k}"}, "id": f"call{k}"}],
                    )
                )
            elif i % 4 == 2:
                msgs.append(ToolMessage(f"sunny {k}", tool_call_id=f"call{k - 1}", name="get_weather", id=f"t{k}"))
            else:
                msgs.append(AIMessage(f"answer {k} " + "x" * (k % 50), id=f"a{k}"))
        return {
            "messages": msgs,
            "numbers": list(range(n * 50, n * 50 + 50)),
            "bag": {
                "history": [f"item {i}" for i in range(10 + n * 5)],
                "tags": ["a", "b", "c", "d", "e", "f", "g", "h", "i"],
                "owner": {"name": "n", "n": n},
                "raw": b"\x00\x01bytes",
            },
            "count": n + 1,
            "status": f"round {n + 1}",
            "ratio": 0.5 + n,
            "done": n >= 1,
            "nothing": None,
            "long_text": "y" * 100,
            "blob": bytes(range(n, n + 20)),
        }

    def gate(state: BigState) -> BigState:
        answer = interrupt({"ask": "more?", "count": state["count"]})
        return {"status": f"gate={answer}"}

    def route(state: BigState) -> str:
        return "grow" if state["count"] < 2 else "gate"

    g = StateGraph(BigState)
    g.add_node("grow", grow)
    g.add_node("gate", gate)
    g.add_edge(START, "grow")
    g.add_conditional_edges("grow", route, ["grow", "gate"])
    g.add_edge("gate", END)
    return g.compile(checkpointer=checkpointer)


# name -> (builder, how to run it up to where it stops, how to continue it)
def _cfg(name: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": f"wl-{name}"}}


def _run_flaky(saver: Any, cfg: dict[str, Any]) -> None:
    fail = [True]
    graph = build_flaky_pair(saver, Counter(), fail)
    try:
        graph.invoke({"log": []}, cfg)
    except Exception:  # noqa: BLE001 - the flaky node's error, stored as a pending write
        pass


def _resume_panel_partly(graph: Any, cfg: dict[str, Any]) -> None:
    graph.invoke({"log": []}, cfg)
    first = graph.get_state(cfg).interrupts[0]
    graph.invoke(Command(resume={first.id: "yes"}), cfg)


WORKLOADS: dict[str, tuple[Any, Any]] = {
    "agent": (build_tool_agent, lambda g, c: g.invoke(weather_question(), c)),
    "review": (
        build_review_graph,
        lambda g, c: (g.invoke({"topic": "cats"}, c), g.invoke(Command(resume=True), c)),
    ),
    "subgraph": (build_subgraph_graph, lambda g, c: g.invoke({"topic": " Owls "}, c)),
    "nested": (build_nested_subgraphs, lambda g, c: g.invoke({"log": []}, c)),
    "mapreduce": (
        lambda s: build_map_reduce(s, interrupt_before_work=True),
        lambda g, c: g.invoke({"items": [" a", "bb ", "ccc"] * 3}, c),
    ),
    "delta": (build_delta_graph, lambda g, c: g.invoke({"target": 5}, c)),
    "panel": (build_panel, _resume_panel_partly),
    "big": (build_big, lambda g, c: g.invoke({"messages": [HumanMessage("start", id="start")]}, c)),
}

# how each stopped thread goes on, and the graph's final values then (compared with
# the same run on InMemorySaver)
CONTINUE: dict[str, Any] = {
    "review": lambda g, c: g.invoke(Command(resume="fine"), c),
    "subgraph": lambda g, c: g.invoke(Command(resume="look up"), c),
    "nested": lambda g, c: g.invoke(Command(resume="deep"), c),
    "mapreduce": lambda g, c: g.invoke(None, c),
    "panel": lambda g, c: g.invoke(
        Command(resume={i.id: "ok" for i in g.get_state(c).interrupts}), c
    ),
    "big": lambda g, c: g.invoke(Command(resume="enough"), c),
    "delta": lambda g, c: g.invoke({"target": 7}, c),
    "agent": lambda g, c: g.invoke(weather_question("Rome"), c),
}


def write(saver: Any) -> None:
    for name, (build, run) in WORKLOADS.items():
        run(build(saver), _cfg(name))
    _run_flaky(saver, _cfg("flaky"))


# -- reading back --------------------------------------------------------------------


def canon(value: Any) -> Any:
    """A plain, order-independent picture of ``value`` that compares by content (an
    exception by type and args, a message by its fields)."""
    if isinstance(value, dict):
        return ("dict", sorted(((canon(k), canon(v)) for k, v in value.items()), key=repr))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [canon(v) for v in value])
    if isinstance(value, (set, frozenset)):
        return ("set", sorted((canon(v) for v in value), key=repr))
    if isinstance(value, BaseException):
        return ("exc", type(value).__name__, canon(list(value.args)))
    if isinstance(value, float):
        return ("float", repr(value))
    if value is None or isinstance(value, (str, int, bool, bytes, bytearray)):
        return (type(value).__name__, value)
    if hasattr(value, "model_dump"):
        return (type(value).__name__, canon(value.model_dump()))
    if dataclasses.is_dataclass(value):
        return (type(value).__name__, canon({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}))
    slots = [s for c in type(value).__mro__ for s in getattr(c, "__slots__", ())]
    if slots:
        return (type(value).__name__, canon({s: getattr(value, s, "<unset>") for s in slots}))
    if hasattr(value, "__dict__"):
        return (type(value).__name__, canon(vars(value)))
    return (type(value).__name__, repr(value))


def _tuple(t: Any) -> Any:
    if t is None:
        return None
    return canon(
        {
            "config": t.config,
            "checkpoint": t.checkpoint,
            "metadata": t.metadata,
            "parent": t.parent_config,
            "pending": list(t.pending_writes or []),
        }
    )


def read(saver: Any) -> dict[str, Any]:
    """Everything the saver gives back of the workload's threads."""
    out: dict[str, Any] = {"list_all": [_tuple(t) for t in saver.list(None)]}
    for name in [*WORKLOADS, "flaky"]:
        cfg = _cfg(name)
        listed = list(saver.list(cfg))
        out[f"{name}/list"] = [_tuple(t) for t in listed]
        out[f"{name}/latest"] = _tuple(saver.get_tuple(cfg))
        out[f"{name}/each"] = [_tuple(saver.get_tuple(t.config)) for t in listed]
        out[f"{name}/filtered"] = [
            _tuple(t) for t in saver.list(cfg, filter={"source": "loop"}, limit=3)
        ]
        if name in WORKLOADS:
            graph = WORKLOADS[name][0](saver)
            out[f"{name}/state"] = canon(graph.get_state(cfg, subgraphs=True))
            out[f"{name}/history"] = [canon(s) for s in graph.get_state_history(cfg)]
    return out


def go_on(saver: Any) -> dict[str, Any]:
    """Continue every thread where it stopped; what each graph then holds, without ids."""
    from graphs import snapshot_summary

    out: dict[str, Any] = {}
    for name, (build, _) in WORKLOADS.items():
        graph, cfg = build(saver), _cfg(name)
        CONTINUE[name](graph, cfg)
        out[name] = {
            "state": snapshot_summary(graph.get_state(cfg, subgraphs=True)),
            "history": [snapshot_summary(s) for s in graph.get_state_history(cfg)],
        }
    flaky = build_flaky_pair(saver, Counter(), [False])
    out["flaky"] = flaky.invoke(None, _cfg("flaky"))
    return out


def open_saver(backend: str, url: str, prefix: str) -> Any:
    from checkpoint_pg import PostgresSaver, SqliteSaver

    if backend == "sqlite":
        return SqliteSaver.from_conn_string(url)
    return PostgresSaver.from_conn_string(url, prefix=prefix)


def main(argv: list[str]) -> None:
    action, backend, url, prefix, out = argv
    with open_saver(backend, url, prefix) as saver:
        if action == "write":
            saver.setup()
            write(saver)
        result = go_on(saver) if action == "continue" else read(saver)
        with open(out, "wb") as f:
            pickle.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1:])
