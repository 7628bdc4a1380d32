"""More cases of the SQLite read-back of a checkpoint this process put (`Head`,
ops.get_tuple's fast path), on real graphs and odd values, and of put_writes' lease
condition (no lease read first); tests/test_held_reads.py has the basic ones.

Every read here is checked against a fresh saver on the same storage (a "cold"
process): what the process that wrote returns must be what any other returns.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.channels import DeltaChannel
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.types import Command

from graphs import (
    build_chain,
    build_delta_graph,
    build_flaky_pair,
    build_map_reduce,
    build_nested_subgraphs,
    build_panel,
    build_review_graph,
    build_subgraph_graph,
    build_tool_agent,
    FlakyError,
    weather_question,
)
from test_held_reads import Chain, _fill, _thread

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _eq(a: Any, b: Any) -> bool:
    # exceptions (an __error__ write) compare by identity: by repr then
    return a == b or repr(a) == repr(b)


def _same_tuple(got: Any, want: Any) -> None:
    assert (got is None) == (want is None), (got, want)
    if got is None:
        return
    assert got.config == want.config
    assert got.parent_config == want.parent_config
    assert got.metadata == want.metadata
    assert got.checkpoint == want.checkpoint, (
        sorted(got.checkpoint["channel_values"]),
        sorted(want.checkpoint["channel_values"]),
    )
    assert _eq(got.pending_writes, want.pending_writes), (got.pending_writes, want.pending_writes)


def _cold(make_saver: Any, config: dict[str, Any], **options: Any) -> Any:
    with make_saver(**options) as cold:
        return cold.get_tuple(config)


def _latest(cfg: dict[str, Any]) -> dict[str, Any]:
    return {"configurable": {**cfg["configurable"], "checkpoint_id": None}}


@contextlib.contextmanager
def checked(saver: Any, make_saver: Any) -> Iterator[list[Any]]:
    """Every get_tuple of ``saver`` (LangGraph's, at each invoke and get_state) is
    read again by a saver with an empty cache on the same file, under the writer's
    connection lock (no write can come in between): the differences, collected."""
    diffs: list[Any] = []
    orig = saver.get_tuple
    with make_saver() as cold:

        def get_tuple(config: Any) -> Any:
            with saver._runner.lock:
                got = orig(config)
                cold.ctx.cache.clear()
                want = cold.get_tuple(config)
            try:
                _same_tuple(got, want)
            except AssertionError as exc:
                diffs.append((config, str(exc)[:2000]))
            return got

        saver.get_tuple = get_tuple
        try:
            yield diffs
        finally:
            del saver.get_tuple


def _cfg() -> dict[str, Any]:
    return {"configurable": {"thread_id": f"rev-{uuid.uuid4().hex[:8]}"}}


# -- bugs -------------------------------------------------------------------------------


@SQLITE
@pytest.mark.parametrize("who", ["this saver", "another process"])
@pytest.mark.parametrize(
    "value",
    [["a", "b"], {"snap": [1, 2]}, {"snap": "x" * 3000}],
    ids=["list", "small-scalar", "large-scalar"],
)
def test_a_delta_snapshot_carried_over_without_its_value_reads_as_stored(
    saver: Any, make_saver: Any, who: str, value: Any
) -> None:
    """LangGraph's DeltaChannel writes a `_DeltaSnapshot` into channel_values at a
    snapshot step only; the next checkpoint keeps the channel's version but leaves
    the value out (`create_checkpoint`). The value row of that version is stored, so
    a full read (and InMemorySaver) returns the snapshot for the later checkpoint
    too; the Head took "version without value" for an empty channel and left it out.
    The snapshot put by this saver, or by another process before this one continued."""
    thread = _thread()
    if who == "this saver":
        chain = Chain(saver, thread)
        chain.put(items=value, n=1)  # the snapshot step: items' value stored at v1
    else:
        with make_saver() as other:
            chain = Chain(other, thread)
            chain.put(items=value, n=1)
        chain.saver = saver
        saver.get_tuple(chain.config)  # continuing the thread: a full read
    # the next step does not write items: same version, no value in channel_values
    del chain.values["items"]
    cfg = chain.put(n=2)
    want = _cold(make_saver, cfg)
    assert want.checkpoint["channel_values"].get("items") == value  # the row of v1
    _same_tuple(saver.get_tuple(cfg), want)
    _same_tuple(saver.get_tuple(_latest(cfg)), want)


def _concat(state: list[str], writes: Any) -> list[str]:
    out = list(state)
    for w in writes:
        out.extend(w)
    return out


class _DeltaState(TypedDict, total=False):
    items: Annotated[list[str], DeltaChannel(_concat, snapshot_frequency=1)]
    n: int


def _delta_graph(saver: Any) -> Any:
    """A DeltaChannel snapshotting at every update, then a node that does not write it."""
    from langgraph.graph import END, START, StateGraph

    builder = StateGraph(_DeltaState)
    builder.add_node("add", lambda s: {"items": ["x"], "n": s.get("n", 0) + 1})
    builder.add_node("count", lambda s: {"n": s["n"] + 1})
    builder.add_edge(START, "add")
    builder.add_edge("add", "count")
    builder.add_edge("count", END)
    return builder.compile(checkpointer=saver)


@SQLITE
def test_a_delta_channel_graph_reads_back_as_stored(saver: Any, make_saver: Any) -> None:
    """The same on a real graph: a DeltaChannel snapshotting at every update, and a
    node that does not write it."""
    graph = _delta_graph(saver)
    config = _cfg()
    with checked(saver, make_saver) as diffs:
        graph.invoke({"n": 0}, config)
        graph.invoke({"n": 5}, config)
        graph.get_state(config)
    assert not diffs, diffs


@SQLITE
def test_a_lease_lapsing_while_put_writes_runs_does_not_lose_its_writes(
    saver: Any, make_saver: Any
) -> None:
    """put_writes inserts each write on the condition that no other run's lease is
    live (julianday('now') of the INSERT) and reads the lease only when fewer rows
    went in, in a later statement, whose 'now' is later. A lease lapsing in between
    refuses the writes in the INSERT and allows them in the read: the call returned
    without error and without its writes. Either outcome of the race is fine (refused
    with ThreadBusyError, or stored), not that one."""
    from checkpoint_pg.errors import ThreadBusyError

    thread = _thread()
    cfg = _fill(Chain(saver, thread))

    def slow_lease_read(sql: str) -> None:
        if sql.lstrip().upper().startswith("SELECT LEASE_OWNER"):
            time.sleep(0.6)  # the lease (0.3 s) lapses between the INSERT and this read

    with make_saver() as other:
        with other.lease(thread, ttl=0.3):
            saver.conn.set_trace_callback(slow_lease_read)
            try:
                saver.put_writes(cfg, [("step", 41)], "task-late")
                stored = True
            except ThreadBusyError:
                stored = False
            finally:
                saver.conn.set_trace_callback(None)
    writes = [w for w in _cold(make_saver, cfg).pending_writes if w[0] == "task-late"]
    assert writes == ([("task-late", "step", 41)] if stored else []), (stored, writes)


@SQLITE
def test_a_checkpoint_put_again_with_another_scalar_at_the_same_version(
    saver: Any, make_saver: Any
) -> None:
    """A checkpoint put again with the same versions but another (non-inline) scalar
    value: the value row of that version is kept as first stored (INSERT OR IGNORE),
    and a full read returns it; the cache remembered the second object for the same
    version (remember_scalars), and the Head read returned that one."""
    thread = _thread()
    config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    v = saver.get_next_version(None, None)
    cp = empty_checkpoint()
    cp["channel_versions"] = {"state": v}
    cp["channel_values"] = {"state": {"k": "first"}}
    cfg = saver.put(config, cp, {"source": "loop", "step": 0}, {"state": v})
    cp["channel_values"] = {"state": {"k": "second"}}
    saver.put(config, cp, {"source": "loop", "step": 0}, {"state": v})
    want = _cold(make_saver, cfg)
    _same_tuple(saver.get_tuple(cfg), want)


# -- paths test_held_reads.py does not cover (expected to pass) ------------------------------


@SQLITE
@pytest.mark.parametrize(
    "value",
    [
        pytest.param([{"a": 1}, {"a": 1}, ("t", 2)], id="list-of-dicts-and-tuples"),
        pytest.param({"rows": [1, 2, [3]], "m": {"x": None}}, id="dict-holding-lists"),
        pytest.param({"blob": "x" * 3000}, id="large-scalar"),
        pytest.param([HumanMessage("no id yet")], id="id-less-message-list"),
        pytest.param(b"\x00bytes", id="bytes"),
        pytest.param(["s"] * 300, id="long-list-chunked"),
    ],
)
def test_values_and_writes_of_every_shape_read_back_as_stored(
    saver: Any, make_saver: Any, value: Any
) -> None:
    """A channel and a write holding the value; read back by id and as latest, then
    after the caller changed what the first read returned."""
    chain = Chain(saver, _thread())
    chain.put(messages=[HumanMessage("hi", id="h1")], other=1)
    cfg = chain.put(shape=value)
    saver.put_writes(cfg, [("shape", value), ("messages", [AIMessage("w", id="w1")])], "task-1")
    want = _cold(make_saver, cfg)
    first = saver.get_tuple(cfg)
    _same_tuple(first, want)
    got = first.checkpoint["channel_values"]["shape"]
    if isinstance(got, (list, dict)):
        got.clear()
    for w in first.pending_writes:
        if isinstance(w[2], (list, dict)):
            w[2].clear()
    _same_tuple(saver.get_tuple(_latest(cfg)), want)


@SQLITE
def test_special_writes_replaced_and_id_less_messages_written(saver: Any, make_saver: Any) -> None:
    """__interrupt__ replaced by a second one, __error__ and __resume__, and a write of
    a message without an id (which the next put stores with its id, repointing the write)."""
    chain = Chain(saver, _thread())
    cfg = _fill(chain)
    saver.put_writes(cfg, [("__interrupt__", [{"ask": 1}])], "task-i")
    saver.put_writes(cfg, [("__interrupt__", [{"ask": 2}]), ("__resume__", [True])], "task-i")
    saver.put_writes(cfg, [("__error__", ValueError("boom"))], "task-e")
    idless = AIMessage("late")
    saver.put_writes(cfg, [("messages", [idless])], "task-m")
    _same_tuple(saver.get_tuple(cfg), _cold(make_saver, cfg))
    idless.id = "given-later"  # add_messages, in place
    cfg2 = chain.put(messages=[*chain.values["messages"], idless])
    _same_tuple(saver.get_tuple(cfg), _cold(make_saver, cfg))
    _same_tuple(saver.get_tuple(cfg2), _cold(make_saver, cfg2))


@SQLITE
@pytest.mark.parametrize("options", ["encrypted", "hash_key"])
def test_encrypted_and_keyed_savers_read_back_as_stored(make_saver: Any, options: str) -> None:
    pytest.importorskip("Crypto")
    from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

    def opts() -> dict[str, Any]:
        out: dict[str, Any] = {"hash_key": b"review-hash-key-0123456789abcdef"}
        if options == "encrypted":
            out["serde"] = EncryptedSerializer.from_pycryptodome_aes(key=b"0123456789abcdef" * 2)
        return out

    with make_saver(**opts()) as saver:
        chain = Chain(saver, _thread())
        cfg = _fill(chain)
        chain.put(step=3)  # a small scalar, carried over by the next put
        cfg = chain.put(state={"notes": ["c"], "n": 2})
        saver.put_writes(cfg, [("step", 4), ("messages", [AIMessage("x", id="x1")])], "task-2")
        got = saver.get_tuple(cfg)
        latest = saver.get_tuple(_latest(cfg))
    want = _cold(make_saver, cfg, **opts())
    _same_tuple(got, want)
    _same_tuple(latest, want)


@SQLITE
def test_a_put_refused_by_a_lease_leaves_the_previous_head_readable(
    saver: Any, make_saver: Any
) -> None:
    from checkpoint_pg.errors import ThreadBusyError

    thread = _thread()
    chain = Chain(saver, thread)
    cfg = _fill(chain)
    with make_saver() as other, other.lease(thread, ttl=60):
        with pytest.raises(ThreadBusyError):
            chain.put(step=9)
        with pytest.raises(ThreadBusyError):
            saver.put_writes(cfg, [("step", 10)], "task-x")
        assert saver.get_tuple(_latest(cfg)).config == cfg
        _same_tuple(saver.get_tuple(cfg), _cold(make_saver, cfg))
    _same_tuple(saver.get_tuple(_latest(cfg)), _cold(make_saver, cfg))


@SQLITE
@pytest.mark.parametrize("how", ["prune", "delete_for_runs", "copy_thread"])
def test_maintenance_by_the_same_saver(saver: Any, make_saver: Any, how: str) -> None:
    thread = _thread()
    chain = Chain(saver, thread)
    chain.put(messages=[HumanMessage("hi", id="h1")])
    cfg = chain.put(messages=[HumanMessage("hi", id="h1"), AIMessage("yo", id="a1")], s={"k": [1]})
    saver.put_writes(cfg, [("s", {"k": [2]})], "task-1")
    if how == "prune":
        saver.prune([thread], strategy="keep_latest")
    elif how == "delete_for_runs":
        meta = {"source": "loop", "step": 5, "run_id": "run-x"}
        cp = empty_checkpoint()
        cp["channel_versions"] = dict(chain.versions)
        cp["channel_values"] = dict(chain.values)
        doomed = saver.put(cfg, cp, meta, {})
        saver.delete_for_runs(["run-x"])
        assert saver.get_tuple(doomed) is None
    else:
        saver.copy_thread(thread, thread + "-copy")
        copy = {"configurable": {**cfg["configurable"], "thread_id": thread + "-copy"}}
        _same_tuple(saver.get_tuple(copy), _cold(make_saver, copy))
    _same_tuple(saver.get_tuple(cfg), _cold(make_saver, cfg))
    _same_tuple(saver.get_tuple(_latest(cfg)), _cold(make_saver, _latest(cfg)))


@SQLITE
def test_a_subgraph_namespace_and_the_root_each_have_their_head(saver: Any, make_saver: Any) -> None:
    thread = _thread()
    root = Chain(saver, thread)
    child = Chain(saver, thread)
    child.config["configurable"]["checkpoint_ns"] = "child:1"
    rcfg = root.put(messages=[HumanMessage("r", id="r1")], n=1)
    ccfg = child.put(messages=[HumanMessage("c", id="c1")], n={"deep": [1]})
    saver.put_writes(ccfg, [("n", {"deep": [2]})], "t-c")
    saver.put_writes(rcfg, [("n", 2)], "t-r")
    for cfg in (rcfg, ccfg, _latest(rcfg), _latest(ccfg)):
        _same_tuple(saver.get_tuple(cfg), _cold(make_saver, cfg))


@SQLITE
async def test_sync_and_async_savers_on_one_connection(tmp_path: Any, make_saver: Any) -> None:
    from checkpoint_pg import AsyncSqliteSaver, SqliteSaver

    path = str(tmp_path / "checkpoints.db")
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        sync = SqliteSaver(conn)
        sync.setup()
        asaver = AsyncSqliteSaver(conn)
        thread = _thread()
        chain = Chain(sync, thread)
        cfg = _fill(chain)
        cp = empty_checkpoint()
        v = asaver.get_next_version(chain.versions["step"], None)
        cp["channel_versions"] = {**chain.versions, "step": v}
        cp["channel_values"] = {**chain.values, "step": 99}
        cfg2 = await asaver.aput(cfg, cp, {"source": "loop", "step": 9}, {"step": v})
        await asaver.aput_writes(cfg, [("state", {"from": "async"})], "task-a")
        for c in (cfg, _latest(cfg), cfg2):
            got = sync.get_tuple(c)
            with SqliteSaver.from_conn_string(path) as cold:
                _same_tuple(got, cold.get_tuple(c))
        assert sync.get_tuple(_latest(cfg)).config == cfg2
    finally:
        conn.close()


# -- put_writes' lease condition -----------------------------------------------------------


@SQLITE
def test_put_writes_lease_rule(saver: Any, make_saver: Any) -> None:
    """No token and a live foreign lease: refused, nothing of the call stays (objects
    and the touch included). With the holder's token, after its ttl lapsed and nobody
    took it: allowed (the row's owner is still the token). Broken: refused as lost."""
    from checkpoint_pg.errors import ThreadBusyError

    thread = _thread()
    cfg = _fill(Chain(saver, thread))
    count = "SELECT (SELECT count(*) FROM cpg_writes), (SELECT count(*) FROM cpg_objects)"
    before = saver.conn.execute(count).fetchone()
    with make_saver() as other:
        with other.lease(thread, ttl=60):
            with pytest.raises(ThreadBusyError, match="leased by another run"):
                saver.put_writes(cfg, [("state", {"big": "y" * 5000}), ("__error__", "e")], "t-n")
            assert saver.conn.execute(count).fetchone() == before
        with saver.lease(thread, ttl=0.2):
            time.sleep(0.4)  # lapsed, not taken: still this run's
            saver.put_writes(cfg, [("step", 5)], "t-own")
            other.break_lease(thread)
            with pytest.raises(ThreadBusyError, match="is gone"):
                saver.put_writes(cfg, [("step", 6)], "t-own2")
    ws = {w[0] for w in _cold(make_saver, cfg).pending_writes}
    assert "t-own" in ws and "t-own2" not in ws and "t-n" not in ws


@SQLITE
def test_put_writes_refused_inside_the_callers_transaction_leaves_nothing(
    tmp_path: Any, make_saver: Any
) -> None:
    from checkpoint_pg import SqliteSaver
    from checkpoint_pg.errors import ThreadBusyError

    path = str(tmp_path / "checkpoints.db")
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        saver = SqliteSaver(conn)
        saver.setup()
        thread = _thread()
        cfg = _fill(Chain(saver, thread))
        with make_saver() as other, other.lease(thread, ttl=60):
            count = "SELECT (SELECT count(*) FROM cpg_writes), (SELECT count(*) FROM cpg_objects)"
            before = conn.execute(count).fetchone()
            conn.execute("BEGIN")
            with pytest.raises(ThreadBusyError):
                saver.put_writes(cfg, [("state", {"v": "z" * 4000})], "t-txn")
            assert conn.execute(count).fetchone() == before
            conn.execute("COMMIT")
    finally:
        conn.close()


# -- real graphs, every read checked against a cold one --------------------------------------


@SQLITE
def test_real_graphs_read_back_as_stored(saver: Any, make_saver: Any) -> None:
    with checked(saver, make_saver) as diffs:
        agent = build_tool_agent(saver)
        config = _cfg()
        agent.invoke(weather_question("Paris"), config)
        agent.invoke({"messages": [HumanMessage("and Rome?", id="q2")]}, config)
        agent.get_state(config)

        review = build_review_graph(saver)
        config = _cfg()
        review.invoke({"topic": "owls"}, config)
        review.get_state(config)
        review.invoke(Command(resume=True), config)
        review.get_state(config)
        review.invoke(Command(resume="lgtm"), config)
        review.get_state(config)

        sub = build_subgraph_graph(saver)
        config = _cfg()
        sub.invoke({"topic": " Tea "}, config)
        sub.get_state(config, subgraphs=True)
        sub.invoke(Command(resume="ok"), config)
        sub.get_state(config, subgraphs=True)

        nested = build_nested_subgraphs(saver)
        config = _cfg()
        nested.invoke({"log": ["go"]}, config)
        state = nested.get_state(config, subgraphs=True)
        inner = state.tasks[0].state.tasks[0].state
        nested.update_state(inner.config, {"log": ["edited"]}, as_node="leaf1")
        nested.get_state(config, subgraphs=True)
        nested.invoke(Command(resume="salt"), config)
        nested.invoke({"log": ["again"]}, config)
        nested.get_state(config, subgraphs=True)

        mr = build_map_reduce(saver)
        config = _cfg()
        mr.invoke({"items": [" x", "yy ", "zzz"]}, config)
        mr.get_state(config)

        delta = build_delta_graph(saver)
        config = _cfg()
        delta.invoke({"target": 7}, config)
        delta.invoke({"target": 9}, config)
        old = next(h for h in delta.get_state_history(config) if h.metadata["step"] == 5)
        fork = delta.update_state(old.config, {"items": ["forked"]}, as_node="tick")
        delta.invoke(None, fork)
        delta.get_state(config)

        chain = build_chain(saver)
        config = _cfg()
        chain.invoke({"log": []}, config)
        before_b = next(h for h in chain.get_state_history(config) if h.next == ("b",))
        chain.invoke(None, before_b.config)
        chain.get_state(before_b.config)
        chain.get_state(config)

        calls: Counter[str] = Counter()
        fail = [True]
        flaky = build_flaky_pair(saver, calls, fail)
        config = _cfg()
        with pytest.raises(FlakyError):
            flaky.invoke({"log": []}, config)
        flaky.get_state(config)
        fail[0] = False
        flaky.invoke(None, config)
        flaky.get_state(config)

        panel = build_panel(saver)
        config = _cfg()
        panel.invoke({"log": []}, config)
        ids = {i.value["ask"]: i.id for i in panel.get_state(config).interrupts}
        panel.invoke(Command(resume={ids["p"]: "yes"}), config)
        panel.get_state(config)
        panel.invoke(Command(resume={ids["q"]: "no", ids["r"]: "maybe"}), config)
        panel.get_state(config)
    assert not diffs, diffs


@SQLITE
@pytest.mark.parametrize("graph", ["agent", "delta"])
def test_a_thread_continued_by_another_process_still_reads_back_in_one_statement(
    saver: Any, make_saver: Any, graph: str
) -> None:
    """Channels carried over without a value (a node's trigger channel, a DeltaChannel
    between snapshots) do not cost the read-back its one statement: this process's
    put or full read knows they have no row, or holds the value of the row they have."""
    def build(s: Any) -> Any:
        return build_tool_agent(s) if graph == "agent" else _delta_graph(s)

    config = _cfg()
    first = weather_question("Paris") if graph == "agent" else {"n": 0}
    again = {"messages": [HumanMessage("and Rome?", id="q2")]} if graph == "agent" else {"n": 5}
    with make_saver() as other:
        build(other).invoke(first, config)
    build(saver).invoke(again, config)  # reads the thread whole, then puts
    sent: list[str] = []
    saver.conn.set_trace_callback(sent.append)
    try:
        got = saver.get_tuple(config)
    finally:
        saver.conn.set_trace_callback(None)
    assert len(sent) == 1, sent
    _same_tuple(got, _cold(make_saver, config))


@SQLITE
def test_a_put_rolled_back_with_the_callers_transaction(tmp_path: Any, make_saver: Any) -> None:
    """The caller's own transaction holds a put and its writes, then rolls back: the
    Head names a checkpoint that is not stored. It reads as absent, the latest is the
    one before, and the same checkpoint put again (outside) reads back as stored."""
    from checkpoint_pg import SqliteSaver

    path = str(tmp_path / "checkpoints.db")
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        saver = SqliteSaver(conn)
        saver.setup()
        chain = Chain(saver, _thread())
        first = _fill(chain)
        saved = (dict(chain.versions), dict(chain.values), chain.config, chain.step)
        conn.execute("BEGIN")
        gone = chain.put(messages=[*chain.values["messages"], AIMessage("x", id="x1")], state={"n": 2})
        saver.put_writes(gone, [("state", {"n": 3})], "task-g")
        conn.execute("ROLLBACK")
        assert saver.get_tuple(gone) is None
        _same_tuple(saver.get_tuple(_latest(first)), _cold(make_saver, first))
        # the very checkpoint put again (same id, versions and objects), then a new one
        versions, _, config, step = saved
        new_versions = {ch: v for ch, v in chain.versions.items() if versions.get(ch) != v}
        same = empty_checkpoint()
        same["id"] = gone["configurable"]["checkpoint_id"]
        same["channel_versions"] = dict(chain.versions)
        same["channel_values"] = dict(chain.values)
        assert saver.put(config, same, {"source": "loop", "step": step}, new_versions) == gone
        chain.config, chain.step = gone, step + 1
        again = chain.put(messages=[*chain.values["messages"], AIMessage("y", id="y1")], state={"n": 4})
        for c in (gone, again, _latest(again), first):
            _same_tuple(saver.get_tuple(c), _cold(make_saver, c))
    finally:
        conn.close()
