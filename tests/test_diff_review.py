"""Differential review: seeded random graph scenarios, our savers against InMemorySaver.

Each seed builds a real LangGraph graph from a random pipeline of stages
(messages appended, with or without an id / removed / replaced by id /
cleared with REMOVE_ALL_MESSAGES, parallel branches, Send fan-out, a
conditional edge, a node returning Command(goto=...), subgraphs with and
without ``checkpointer=True`` (with an interrupt inside), ``interrupt()``, two
interrupts in one step, a node that fails on its first attempt beside a
sibling that succeeds, a DeltaChannel, an ``operator.add`` list, a plain
channel and a dict channel with a reducer; sometimes ``interrupt_before``),
then runs a random list of operations on a thread: ``invoke`` / ``stream``
under ``durability`` "sync", "async" or "exit", ``Command(resume=...)`` (by
interrupt id when there are two), a resume after the failure or the stop,
``Command(goto=...)`` input, ``update_state`` with ``as_node`` (messages
added, removed, replaced by id, cleared; lists past 64 elements; scalars that
compare equal across types), forks (a run, or an ``update_state``, from an
older checkpoint) and ``delete_thread``.

The same seed runs on ``InMemorySaver`` (the oracle) and on our saver, each
operation through one of two savers on the same storage (two processes, so
each one's caches go stale), through the sync API (``saver``) or the async one
(``async_saver``). Everything is then read through both savers and through a
FRESH one, so what a writing process holds is not what answers. Compared, with
checkpoint, task, interrupt, run and add_messages-given message ids replaced
by labels in the order they are first met (equal ids stay equal, different
ones different), timestamps and channel versions left out, and scalars by
type (``True`` is not ``1``):

- every operation's result (invoke's output, the streamed chunks of
  ``updates``/``values``/``checkpoints``/``tasks`` with subgraphs; chunks
  within a step are compared in any order, as parallel tasks finish in any
  order), and the error a failing run raises;
- ``get_state`` (with subgraphs) of the thread, of a middle checkpoint and of
  each subgraph task's config, the whole ``get_state_history`` (values, next,
  tasks with their interrupts and results, metadata, config and parent
  links), ``list`` of each namespace and of all, with a metadata filter,
  ``before`` and ``limit``, each checkpoint's pending writes, and
  ``get_delta_channel_history``.

Across namespaces ``list`` is compared by checkpoint id: InMemorySaver lists
namespace by namespace, we (as langgraph-checkpoint-postgres) newest first.
And on our storage: each message is one object, and no write keeps a copy
from before add_messages gave it its id. A message id add_messages gave is
not compared inside writes (see the strict xfail at the end).
"""

from __future__ import annotations

import contextlib
import operator
import os
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import pytest
from langchain_core.runnables import RunnableConfig
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, RemoveMessage
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import REMOVE_ALL_MESSAGES, add_messages
from langgraph.types import Command, Interrupt, PregelTask, Send, StateSnapshot, interrupt
from typing_extensions import TypedDict

from graphs import concat_reducer
from test_graphs import first_difference
from test_storage import Raw


def merge_counts(a: dict[str, int] | None, b: dict[str, int]) -> dict[str, int]:
    out = dict(a or {})
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


class S(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    log: Annotated[list[str], operator.add]
    last: str
    meta: dict[str, Any]
    counts: Annotated[dict[str, int], merge_counts]
    delta: Annotated[list[str], DeltaChannel(concat_reducer, snapshot_frequency=2)]


class FirstAttemptError(RuntimeError):
    """Raised by a ``flaky`` node the first time it runs in a scenario."""


# --------------------------------------------------------------------------
# The graph: a pipeline of random stages
# --------------------------------------------------------------------------

STAGES = (
    "append", "remove", "replace", "remove_all", "parallel", "fanout",
    "cond", "sub", "sub_ckpt", "interrupt", "flaky", "plain", "goto", "asks",
)


@dataclass
class Run:
    """What one scenario's nodes share with the driver (one per saver run)."""

    saver: BaseCheckpointSaver
    durability: str = "sync"
    failed: set[str] = field(default_factory=set)
    calls: Counter[str] = field(default_factory=Counter)


def _k(state: dict[str, Any]) -> int:
    return len(state.get("log") or [])


def _msg_ids(state: dict[str, Any]) -> list[str]:
    return [m.id for m in state.get("messages") or []]


def _basic(name: str, state: dict[str, Any], branch: bool = False, **extra: Any) -> dict[str, Any]:
    """A node's writes; one of parallel ``branch`` nodes leaves the plain channels alone."""
    out = {"log": [f"{name}{_k(state)}"], "counts": {name: 1}, **extra}
    if branch:
        out.pop("meta", None)
    else:
        out["last"] = name
    return out


def _stage_nodes(kind: str, p: str, run: Run, rng: random.Random) -> tuple[
    list[tuple[Any, ...]], list[tuple[Any, ...]], str, str
]:
    """(nodes, edges, entry, exit) of one stage; names are prefixed by ``p``.

    A node is (name, node) or (name, node, destinations of its Command)."""
    x, y = f"{p}x", f"{p}y"
    delta_too = rng.random() < 0.5
    # a message the node gives no id gets one from add_messages, after its write was saved
    idless = rng.random() < 0.3

    def plain_node(name: str, branch: bool = False) -> Callable[[dict[str, Any]], dict[str, Any]]:
        def node(state: dict[str, Any]) -> dict[str, Any]:
            run.calls[name] += 1
            out = _basic(name, state, branch, meta={"at": name, "n": _k(state)})
            if delta_too:
                out["delta"] = [f"{name}{_k(state)}"]
            return out

        return node

    def msg_node(name: str, how: str, branch: bool = False) -> Callable[[dict[str, Any]], dict[str, Any]]:
        def node(state: dict[str, Any]) -> dict[str, Any]:
            run.calls[name] += 1
            k, ids = _k(state), _msg_ids(state)
            if how == "append" or not ids and how != "remove_all":
                msgs: list[Any] = [AIMessage(content=f"{name}:{k}", id=None if idless else f"m-{name}-{k}")]
            elif how == "remove":
                msgs = [RemoveMessage(id=ids[k % len(ids)])]
            elif how == "replace":
                old = state["messages"][-1]
                msgs = [type(old)(content=f"{old.content}'", id=old.id)]
            else:
                msgs = [RemoveMessage(id=REMOVE_ALL_MESSAGES), HumanMessage(content=f"reset{k}", id=f"m-reset-{k}")]
            return _basic(name, state, branch, messages=msgs)

        return node

    if kind in ("append", "remove", "replace", "remove_all"):
        return [(x, msg_node(x, kind))], [], x, x
    if kind == "plain":
        return [(x, plain_node(x))], [], x, x
    if kind == "parallel":
        a, b = f"{p}a", f"{p}b"
        nodes = [(x, plain_node(x)), (a, msg_node(a, "append", True)), (b, plain_node(b, True)), (y, plain_node(y))]
        # two plain edges, not a join barrier: see build_delta_graph in graphs.py
        return nodes, [(x, a), (x, b), (a, y), (b, y)], x, y
    if kind == "fanout":
        w = f"{p}w"
        n = rng.randint(1, 3)

        def worker(arg: dict[str, Any]) -> dict[str, Any]:
            run.calls[w] += 1
            # reached by an edge (goto, update_state) it gets the state instead
            i, k = arg.get("i", "s"), arg.get("k", _k(arg))
            return {"log": [f"{w}{i}:{k}"], "messages": [AIMessage(content=f"{w}{i}", id=f"m-{w}{i}-{k}")],
                    "delta": [f"{w}{i}"]}

        def fan(state: dict[str, Any]) -> list[Send]:
            return [Send(w, {"i": i, "k": _k(state)}) for i in range(n)]

        nodes = [(x, plain_node(x)), (w, worker), (y, plain_node(y))]
        return nodes, [("cond", x, fan, [w]), (w, y)], x, y
    if kind == "cond":
        c1, c2 = f"{p}c1", f"{p}c2"

        def route(state: dict[str, Any]) -> str:
            return c1 if _k(state) % 2 else c2

        nodes = [(x, plain_node(x)), (c1, msg_node(c1, "append")), (c2, plain_node(c2)), (y, plain_node(y))]
        return nodes, [("cond", x, route, [c1, c2]), (c1, y), (c2, y)], x, y
    if kind in ("sub", "sub_ckpt"):
        child = StateGraph(S)
        s1, s2 = f"{p}s1", f"{p}s2"
        child.add_node(s1, msg_node(s1, "append"))
        asks = rng.random() < 0.5

        def s2_node(state: dict[str, Any]) -> dict[str, Any]:
            run.calls[s2] += 1
            answer = interrupt({"q": s2, "k": _k(state)}) if asks else "none"
            return _basic(s2, state, meta={"answer": answer}, delta=[f"{s2}:{answer}"])

        child.add_node(s2, s2_node)
        child.add_edge(START, s1)
        child.add_edge(s1, s2)
        child.add_edge(s2, END)
        compiled = child.compile(checkpointer=True if kind == "sub_ckpt" else None)
        return [(x, compiled)], [], x, x
    def asker(name: str, branch: bool = False) -> Callable[[dict[str, Any]], dict[str, Any]]:
        def ask(state: dict[str, Any]) -> dict[str, Any]:
            run.calls[name] += 1
            k = _k(state)
            answer = interrupt({"q": name, "k": k})
            msg = HumanMessage(content=str(answer), id=f"m-ans-{name}-{k}")
            return _basic(name, state, branch, messages=[msg])

        return ask

    if kind == "interrupt":
        return [(x, asker(x))], [], x, x
    if kind == "asks":  # two interrupts in one step
        a, b = f"{p}a", f"{p}b"
        nodes = [(x, plain_node(x)), (a, asker(a, True)), (b, asker(b, True)), (y, plain_node(y))]
        return nodes, [(x, a), (x, b), (a, y), (b, y)], x, y
    if kind == "goto":  # a node returning Command(update=..., goto=...)
        c1, c2 = f"{p}c1", f"{p}c2"

        def jump(state: dict[str, Any]) -> Command:
            run.calls[x] += 1
            k = _k(state)
            update = _basic(x, state, messages=[AIMessage(content=f"jump{k}", id=f"m-{x}-{k}")])
            return Command(update=update, goto=c1 if k % 2 else c2)

        nodes = [(x, jump, (c1, c2)), (c1, plain_node(c1)), (c2, msg_node(c2, "replace")), (y, plain_node(y))]
        return nodes, [(c1, y), (c2, y)], x, y
    if kind == "flaky":
        a, b = f"{p}ok", f"{p}fl"
        done = threading.Event()

        def steady(state: dict[str, Any]) -> dict[str, Any]:
            run.calls[a] += 1
            done.set()
            return _basic(a, state, True, messages=[AIMessage(content=f"{a}", id=f"m-{a}-{_k(state)}")])

        def flaky(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
            run.calls[b] += 1
            if b not in run.failed:
                run.failed.add(b)
                done.wait(10)
                if run.durability != "exit":
                    _wait_for_pending(run.saver, config, a)
                raise FirstAttemptError(f"{b} fails once")
            return _basic(b, state, True)

        def start(state: dict[str, Any]) -> dict[str, Any]:
            done.clear()
            return plain_node(x)(state)

        nodes = [(x, start), (a, steady), (b, flaky), (y, plain_node(y))]
        return nodes, [(x, a), (x, b), (a, y), (b, y)], x, y
    raise AssertionError(kind)


def _wait_for_pending(saver: BaseCheckpointSaver, config: Any, writer: str) -> None:
    """Until the thread's latest checkpoint holds a write of task ``writer``."""
    cfg = {"configurable": {"thread_id": config["configurable"]["thread_id"], "checkpoint_ns": ""}}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        tup = saver.get_tuple(cfg)
        if tup is not None and any(c == "log" and v[0].startswith(writer) for _, c, v in tup.pending_writes or []):
            return
        time.sleep(0.005)
    raise TimeoutError(f"no write of {writer} stored at {cfg}: {tup and tup.pending_writes}")


@dataclass
class Scenario:
    seed: int
    stages: list[str]
    ops: list[tuple[Any, ...]]
    interrupt_before: bool
    who: list[bool]


def make_scenario(seed: int) -> Scenario:
    rng = random.Random(seed)
    stages = rng.sample(STAGES, rng.randint(2, 4))
    ops: list[tuple[Any, ...]] = []
    for i in range(rng.randint(3, 7)):
        r = rng.random()
        dur = rng.choice(["sync", "async", "exit"])
        how = rng.choice(["invoke", "stream"])
        if i == 0 or r < 0.35:
            ops.append(("run", how, dur, i))
        elif r < 0.5:
            ops.append(("update", rng.random(), rng.choice(["add", "remove", "remove_all", "none", "bulk", "odd", "replace"]), i))
        elif r < 0.65:
            ops.append(("fork", rng.random(), how, dur, i))
        elif r < 0.75:
            ops.append(("fork_update", rng.random(), rng.random(), i))
        elif r < 0.82:
            ops.append(("goto", rng.random(), how, dur, i))
        elif r < 0.87:
            ops.append(("delete", i))
        else:
            ops.append(("run", how, dur, i))
    # which of two savers on the same storage (two processes) runs each op
    who = [rng.random() < 0.3 for _ in ops]
    return Scenario(seed, stages, ops, rng.random() < 0.25, who)


def build(scn: Scenario, run: Run, checkpointer: Any) -> Any:
    rng = random.Random(scn.seed * 7919 + 1)
    builder = StateGraph(S)
    prev = START
    names: list[str] = []
    for i, kind in enumerate(scn.stages):
        nodes, edges, entry, exit_ = _stage_nodes(kind, f"{kind[:3]}{i}", run, rng)
        for name, node, *dest in nodes:
            builder.add_node(name, node, destinations=tuple(dest[0]) if dest else None)
            names.append(name)
        for e in edges:
            if e[0] == "cond":
                builder.add_conditional_edges(e[1], e[2], e[3])
            else:
                builder.add_edge(*e)
        builder.add_edge(prev, entry)
        prev = exit_
    builder.add_edge(prev, END)
    before = [names[int(rng.random() * len(names))]] if scn.interrupt_before else None
    graph = builder.compile(checkpointer=checkpointer, interrupt_before=before)
    graph.node_names = names  # type: ignore[attr-defined]
    return graph


# --------------------------------------------------------------------------
# Running a scenario, through the sync or the async API
# --------------------------------------------------------------------------


@dataclass
class Api:
    """One graph's methods, awaited: the async ones (``aio``) or the sync ones."""

    graph: Any
    saver: Any
    aio: bool

    async def run(self, how: str, inp: Any, config: Any, dur: str) -> Any:
        g = self.graph
        try:
            if how == "invoke":
                out = await g.ainvoke(inp, config, durability=dur) if self.aio else g.invoke(inp, config, durability=dur)
                return ("out", out)
            kw = {"durability": dur, "subgraphs": True, "stream_mode": ["updates", "values", "checkpoints", "tasks"]}
            chunks = [c async for c in g.astream(inp, config, **kw)] if self.aio else list(g.stream(inp, config, **kw))
            return ("chunks", chunks)
        except FirstAttemptError as exc:
            return ("raised", exc)

    async def state(self, config: Any, subgraphs: bool = False) -> StateSnapshot:
        if self.aio:
            return await self.graph.aget_state(config, subgraphs=subgraphs)
        return self.graph.get_state(config, subgraphs=subgraphs)

    async def history(self, config: Any) -> list[StateSnapshot]:
        if self.aio:
            return [h async for h in self.graph.aget_state_history(config)]
        return list(self.graph.get_state_history(config))

    async def update(self, config: Any, values: Any, as_node: str | None) -> Any:
        if self.aio:
            return await self.graph.aupdate_state(config, values, as_node=as_node)
        return self.graph.update_state(config, values, as_node=as_node)

    async def list(self, config: Any, **kw: Any) -> list[CheckpointTuple]:
        if self.aio:
            return [t async for t in self.saver.alist(config, **kw)]
        return list(self.saver.list(config, **kw))

    async def delta_history(self, config: Any, channels: list[str]) -> Any:
        if self.aio:
            return await self.saver.aget_delta_channel_history(config=config, channels=channels)
        return self.saver.get_delta_channel_history(config=config, channels=channels)

    async def tuple(self, config: Any) -> CheckpointTuple | None:
        return await self.saver.aget_tuple(config) if self.aio else self.saver.get_tuple(config)


def _input(i: int) -> dict[str, Any]:
    return {"messages": [HumanMessage(content=f"hi{i}", id=f"m-in-{i}")], "log": [f"in{i}"], "meta": {"in": i}}


async def _pending_input(api: Api, config: Any, i: int, new: Any) -> Any:
    """Input for the next run: resume an interrupt, go on after an error or a stop, or ``new``."""
    state = await api.state(config)
    ids = [intr.id for intr in state.interrupts]
    if len(ids) > 1:
        return Command(resume={iid: f"yes{i}" for iid in ids})
    if ids:
        return Command(resume=f"yes{i}")
    return None if state.next else new


def _update_values(kind: str, i: int, ids: list[str]) -> Any:
    if kind == "none":
        return None
    values: dict[str, Any] = {"log": [f"upd{i}"], "counts": {"upd": 1}, "last": f"upd{i}"}
    if kind == "remove" and ids:
        values["messages"] = [RemoveMessage(id=ids[i % len(ids)])]
    elif kind == "replace" and ids:  # one in the middle of the list, by id
        values["messages"] = [HumanMessage(content=f"edit{i}", id=ids[len(ids) // 2])]
    elif kind == "bulk":  # lists past 64 elements (stored in chunks), repeated elements
        values["messages"] = [AIMessage(content=f"b{i}.{j % 7}", id=f"m-bulk-{i}-{j}") for j in range(66)]
        values["log"] = [f"r{j % 3}" for j in range(70)]
        values["counts"] = {f"c{j}": j for j in range(40)}
    elif kind == "odd":  # scalars that compare equal across types, and odd values
        values["log"] = ["1", 1, True, 1.0, 0, False, 0.0, -0.0, None, "", b"1", b"", (1, "a"), [1], {"k": 1}]
        values["meta"] = {"a": 1, "b": True, "c": 1.0, "d": "1", "e": [0, False, 0.0], "f": None, "g": b"x",
                          "h": (True, 1), "i": {"j": [None, {}]}, "big": 2**64 - 1, "neg": -(2**63)}
    elif kind == "remove_all":
        values["messages"] = [RemoveMessage(id=REMOVE_ALL_MESSAGES), AIMessage(content=f"upd{i}", id=f"m-upd-{i}")]
    else:
        values["messages"] = [AIMessage(content=f"upd{i}", id=f"m-upd-{i}")]
    return values


def _pick(seq: Sequence[Any], r: float) -> Any:
    return seq[int(r * len(seq))]


async def run_ops(scn: Scenario, apis: tuple[Api, Api], run: Run, thread: str) -> list[Any]:
    config = {"configurable": {"thread_id": thread}}
    names = apis[0].graph.node_names
    out: list[Any] = []
    for op, other in zip(scn.ops, scn.who):
        api = apis[other]
        kind, i = op[0], op[-1]
        if kind in ("run", "fork", "goto"):
            how, dur = op[-3], op[-2]
            run.durability = dur
            at = config
            new: Any = _input(i)
            if kind == "fork" and (history := await api.history(config)):
                old = _pick(history, op[1])
                at, new = old.config, None if old.next else new
            elif kind == "goto" and await api.history(config):  # on a new thread it runs beside START
                new = Command(update={"log": [f"goto{i}"]}, goto=_pick(names, op[1]))
            out.append((op, await api.run(how, await _pending_input(api, at, i, new), at, dur)))
        elif kind == "update":
            state = await api.state(config)
            # get_state shows the writes of a failed step's finished tasks,
            # which update_state does not apply: remove only what both see
            ids = [] if state.next else [m.id for m in state.values.get("messages", [])]
            values = _update_values(op[2], i, ids)
            out.append((op, await api.update(config, values, _pick(names, op[1]))))
        elif kind == "delete":
            if api.aio:
                await api.saver.adelete_thread(thread)
            else:
                api.saver.delete_thread(thread)
            out.append((op, None))
        elif kind == "fork_update":
            history = await api.history(config)
            at = _pick(history, op[1]).config if history else config
            values = {"log": [f"fupd{i}"], "messages": [HumanMessage(content=f"fupd{i}", id=f"m-fupd-{i}")]}
            out.append((op, await api.update(at, values, _pick(names, op[2]))))
    return out


async def reads(api: Api, thread: str) -> dict[str, Any]:
    """Everything a thread reads back as, through the graph and its saver."""
    config = {"configurable": {"thread_id": thread}}
    history = await api.history(config)
    every = await api.list(config)
    namespaces = sorted({t.config["configurable"]["checkpoint_ns"] for t in every} - {""})
    root = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    by_id = lambda ts: sorted(ts, key=lambda t: t.config["configurable"]["checkpoint_id"], reverse=True)  # noqa: E731
    out: dict[str, Any] = {
        "state": await api.state(config, subgraphs=True),
        "history": history,
        # across namespaces InMemorySaver lists namespace by namespace, we (as
        # langgraph-checkpoint-postgres) newest first: compared by id
        "all": by_id(every),
        "all_loop": by_id(await api.list(config, filter={"source": "loop"})),
        "namespaces": {
            ns: await api.list({"configurable": {"thread_id": thread, "checkpoint_ns": ns}})
            for ns in namespaces
        },
        "loop_only": await api.list(root, filter={"source": "loop"}),
        "limit": await api.list(root, limit=2),
        "latest_tuple": await api.tuple(config),
    }
    if len(history) > 2:
        middle = history[len(history) // 2]
        out["before"] = await api.list(root, before=middle.config, limit=3)
        out["step"] = await api.list(root, filter={"step": middle.metadata["step"]})
        out["middle_tuple"] = await api.tuple(middle.config)
        out["middle_state"] = await api.state(middle.config, subgraphs=True)
    # what LangGraph rebuilds a DeltaChannel from, at every checkpoint of every namespace
    out["delta_history"] = [Written(await api.delta_history(t.config, ["delta"])) for t in out["all"]]
    out["delta_history_latest"] = Written(await api.delta_history(config, ["delta", "log", "messages"]))
    # a subgraph's own state, read by the config its parent's task names
    out["task_states"] = [
        await api.state(t.state, subgraphs=True)
        for snap in history for t in snap.tasks if t.state is not None and not isinstance(t.state, StateSnapshot)
    ]
    return out


# --------------------------------------------------------------------------
# Normalizing: ids to labels, nothing else dropped but timestamps/versions
# --------------------------------------------------------------------------

ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b[0-9a-f]{32}\b")


@dataclass
class Written:
    """A value read back as a task's write."""

    value: Any


class Labels:
    def __init__(self) -> None:
        self.seen: dict[str, str] = {}
        self.in_write = 0

    def sub(self, s: str) -> str:
        return ID.sub(lambda m: self.seen.setdefault(m.group(0), f"<id{len(self.seen)}>"), s)

    def __call__(self, v: Any) -> Any:
        if isinstance(v, str):
            return v if len(v) < 32 else self.sub(v)  # an id is 32 characters or more
        if isinstance(v, (bool, float, bytes)):  # True == 1 == 1.0, -0.0 == 0.0: by type and repr
            return (type(v).__name__, repr(v))
        if isinstance(v, Written):
            self.in_write += 1
            try:
                return self(v.value)
            finally:
                self.in_write -= 1
        if isinstance(v, BaseMessage):
            # an id add_messages gave a message after its write was saved: the write
            # reads back without it on InMemorySaver, with it on ours (see the xfail below)
            given = v.id is None or bool(ID.fullmatch(v.id))
            return (type(v).__name__, None if given and self.in_write else self(v.id), v.content,
                    repr(v.additional_kwargs), v.name)
        if isinstance(v, Interrupt):
            return ("Interrupt", self(v.value), self(v.id))
        if isinstance(v, Send):
            return ("Send", v.node, self(v.arg))
        if isinstance(v, Command):
            return ("Command", self(v.update), self(v.goto), self(v.resume), v.graph)
        if isinstance(v, _DeltaSnapshot):
            return ("DeltaSnapshot", self(v.value))
        if isinstance(v, BaseException):
            return ("Error", type(v).__name__, str(v))
        if isinstance(v, StateSnapshot):
            return {
                "values": self(v.values), "next": v.next, "config": self(v.config),
                "metadata": self(v.metadata), "parent": self(v.parent_config),
                "tasks": [self(t) for t in v.tasks], "interrupts": [self(i) for i in v.interrupts],
            }
        if isinstance(v, PregelTask):
            return {"id": self(v.id), "name": v.name, "path": self(v.path), "error": self(v.error),
                    "interrupts": [self(i) for i in v.interrupts], "state": self(v.state),
                    "result": self(Written(v.result))}
        if isinstance(v, CheckpointTuple):
            cp = v.checkpoint
            writes = [tuple(self(Written(x)) for x in w) for w in v.pending_writes or []]
            return {
                "config": self(v.config), "parent": self(v.parent_config), "metadata": self(v.metadata),
                "id": self(cp["id"]), "values": self(cp["channel_values"]),
                "channels": sorted(cp["channel_versions"]),
                "seen": {self(k): sorted(s) for k, s in cp["versions_seen"].items()},
                "writes": sorted(writes, key=repr),
            }
        if isinstance(v, dict):
            # a subgraph task's state config carries the saver object itself;
            # a step's interrupts come out in the order its tasks finished in
            return {
                self(k): "<saver>" if k == "__pregel_checkpointer"
                else self(sorted(x, key=lambda i: repr(i.value))) if k == "__interrupt__" else self(x)
                for k, x in v.items()
            }
        if isinstance(v, (list, tuple)):
            return [self(x) for x in v]
        return v


def _stream_in_steps(chunks: list[Any]) -> list[Any]:
    """Chunks between two root ``values`` chunks in a canonical order.

    A values chunk with ``__interrupt__`` is no step's end: each task that
    interrupts emits one, in the order the step's tasks stop."""
    out: list[Any] = []
    group: list[Any] = []
    for c in chunks:
        if c[1] == "values" and not c[0] and "__interrupt__" not in c[2]:
            out.extend(sorted(group, key=repr))
            out.append(c)
            group = []
        else:
            group.append(c)
    return out + sorted(group, key=repr)


def observe(ops_out: list[Any], read: dict[str, Any], labels: Labels | None = None) -> dict[str, Any]:
    labels = labels or Labels()
    got = {"reads": labels(read)}  # first: its order is deterministic
    ops = []
    for op, res in ops_out:
        res = labels(res)
        if isinstance(res, list) and res[0] == "chunks":
            res = [res[0], _stream_in_steps(res[1])]
        ops.append((list(op), res))
    got["ops"] = ops
    return got


def assert_same(ours: Any, reference: Any, what: str) -> None:
    diff = first_difference(ours, reference)
    assert diff is None, f"{what}: differs from InMemorySaver at {diff}"


def assert_messages_stored_once(raw: Raw, thread: str) -> None:
    """Each message is one object; no write holds a copy from before it had its id."""
    seen: Counter[Any] = Counter()
    for value in raw.decoded_objects(thread).values():
        if isinstance(value, BaseMessage):
            seen[(type(value).__name__, value.id, repr(value.content))] += 1
    assert all(v == 1 for v in seen.values()), [k for k, v in seen.items() if v > 1]
    with_id = {(t, c) for t, i, c in seen if i is not None}
    stale = [(t, i, c) for t, i, c in seen if i is None and (t, c) in with_id]
    assert not stale, f"copies without the id their message got: {stale}"


# --------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------


async def differential(scn: Scenario, saver: Any, fresh_saver: Any, saver_target: Any, aio: bool) -> None:
    """Run ``scn`` on InMemorySaver and on ``saver``, some ops through a second
    saver on the same storage, then read it back through both and a third one."""
    thread = f"diff-{scn.seed}-{uuid.uuid4().hex[:8]}"
    ref_saver = InMemorySaver()
    ref_run = Run(ref_saver)
    ref = Api(build(scn, ref_run, ref_saver), ref_saver, aio)
    ref_ops = await run_ops(scn, (ref, ref), ref_run, thread)
    reference = observe(ref_ops, await reads(ref, thread))

    where = f"seed {scn.seed} stages {scn.stages} ops {scn.ops} before {scn.interrupt_before} who {scn.who}"
    async with fresh_saver() as other:
        run = Run(saver)
        ours = Api(build(scn, run, saver), saver, aio)
        second = Api(build(scn, run, other), other, aio)
        ops = await run_ops(scn, (ours, second), run, thread)
        assert run.calls == ref_run.calls, where
        assert_same(observe(ops, await reads(ours, thread)), reference, f"{where}, first saver")
        assert_same(observe(ops, await reads(second, thread)), reference, f"{where}, second saver")
    async with fresh_saver() as fresh:
        cold = Api(build(scn, Run(fresh), fresh), fresh, aio)
        assert_same(observe(ops, await reads(cold, thread)), reference, f"{where}, fresh saver")
        raw = Raw(saver_target, fresh)
        try:
            assert_messages_stored_once(raw, thread)
        finally:
            raw.close()


# DIFF_REVIEW_SEEDS=start:stop explores more seeds (each failure names its seed)
# (the async test runs the first half of the range, offset by 1000)
_START, _STOP = map(int, os.environ.get("DIFF_REVIEW_SEEDS", "0:14").split(":"))


async def _fuzz(seeds: range, saver: Any, fresh_saver: Any, saver_target: Any, aio: bool) -> None:
    failures = []
    for seed in seeds:
        try:
            await differential(make_scenario(seed), saver, fresh_saver, saver_target, aio)
        except Exception as exc:  # noqa: BLE001 (each failing seed is named)
            failures.append(f"seed {seed}: {type(exc).__name__}: " + str(exc).splitlines()[0][:2000])
    assert not failures, "\n".join(failures)


async def test_differential_fuzz(saver: Any, make_saver: Any, saver_target: Any) -> None:
    """Every seed's scenario, run through the sync API, reads back as on InMemorySaver,
    from the writing saver and from a fresh one."""

    @contextlib.asynccontextmanager
    async def fresh() -> Any:
        with make_saver() as s:
            yield s

    await _fuzz(range(_START, _STOP), saver, fresh, saver_target, aio=False)


async def test_differential_fuzz_async(async_saver: Any, make_async_saver: Any, saver_target: Any) -> None:
    """The same with the async savers, ainvoke/astream and the async reads."""
    half = _START + max(1, (_STOP - _START) // 2)
    await _fuzz(range(_START + 1000, half + 1000), async_saver, make_async_saver, saver_target, aio=True)


# --------------------------------------------------------------------------
# Minimized: what the fuzz found with id-less messages (not in its default run)
# --------------------------------------------------------------------------


class _Msgs(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]


def _write_without_id(saver: Any) -> Any:
    def speak(state: _Msgs) -> _Msgs:
        return {"messages": [AIMessage(content="no id given")]}

    builder = StateGraph(_Msgs)
    builder.add_node("speak", speak)
    builder.add_edge(START, "speak")
    builder.add_edge("speak", END)
    return builder.compile(checkpointer=saver)


def _written_ids(graph: Any, config: Any) -> list[Any]:
    """Ids of the messages node ``speak``'s write holds, as history reads it back."""
    return [
        m.id
        for snap in graph.get_state_history(config)
        for task in snap.tasks
        if task.name == "speak" and task.result
        for m in task.result["messages"]
    ]


@pytest.mark.xfail(
    strict=True,
    reason="a write of a message without an id reads back with the id add_messages gave it "
    "later (the write is repointed at the list's object so the message is stored once); "
    "InMemorySaver returns the write as the node made it, id None",
)
def test_a_write_of_a_message_without_id_reads_back_as_written(saver: Any, make_saver: Any) -> None:
    config = {"configurable": {"thread_id": f"diff-noid-{uuid.uuid4().hex[:8]}"}}
    ref = _write_without_id(InMemorySaver())
    ref.invoke({"messages": []}, config, durability="sync")
    assert _written_ids(ref, config) == [None]
    _write_without_id(saver).invoke({"messages": []}, config, durability="sync")
    with make_saver() as fresh:
        assert _written_ids(_write_without_id(fresh), config) == [None]
