"""Issue 3, "Store every message once", checked in the database itself, on both backends.

These tests read the saver's own tables with a separate connection and
decode every stored object with the saver's codec
(``saver.ctx.codec.load(type, data)``), so "stored once" means one row in
``{prefix}objects``, not one value in what the saver returns:

- the seed graph (call_model -> ToolNode with two tools -> generate), streamed
  with ``stream_mode="messages"`` and ``"updates"``: each ToolMessage is one
  object, shared by the tools node's write and every later messages list;
- a superstep where one of two parallel nodes raises: on resume the other is
  not re-run and its write is stored once;
- storage grows linearly with the thread;
- round trips: what comes back equals what was put, for lists that are
  appended to, edited by RemoveMessage, have a message replaced by id, shrink,
  hold mixed types, and for forks; compared with InMemorySaver;
- a list put again with the same element objects serializes only new elements;
- EncryptedSerializer: no plaintext in any column, still deduplicated;
- delete_thread / delete_for_runs / prune / copy_thread leave no orphans and
  keep what remains readable.
"""

from __future__ import annotations

import enum
import hashlib
import math
import os
from pathlib import Path
import operator
import json
import secrets
import sqlite3
import datetime
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
import contextlib
from contextlib import contextmanager
from typing import Annotated, Any

import pytest
from faultkit import after_first_yield, wait_for_blocked
from graphs import (
    FlakyError,
    concat_reducer,
    build_chain,
    build_delta_graph,
    build_subgraph_graph,
    build_flaky_pair,
    build_tool_agent,
    weather_question,
)
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import REMOVE_ALL_MESSAGES, add_messages
from typing_extensions import TypedDict

HASH = 16
CITIES = ("Paris", "Rome", "Oslo", "Lima", "Cairo", "Quito")
KIND_EMPTY, KIND_SCALAR, KIND_LIST, KIND_DELTA, KIND_DICT = 0, 1, 2, 3, 4
CHUNK_TYPE = "#refs"  # core/chunks.py: 64 element hashes of a long list
AES_KEY = b"storage-test-aes-key-32-bytes!!!"
HASH_KEY = b"storage-test-hash-key"


def new_config(name: str) -> RunnableConfig:
    return {"configurable": {"thread_id": f"st-{name}-{uuid.uuid4().hex[:10]}"}}


def thread_of(config: RunnableConfig) -> str:
    return config["configurable"]["thread_id"]


def split(refs: bytes) -> list[bytes]:
    refs = bytes(refs)
    assert len(refs) % HASH == 0
    return [refs[i : i + HASH] for i in range(0, len(refs), HASH)]


# --------------------------------------------------------------------------
# Reading our tables directly
# --------------------------------------------------------------------------


class Raw:
    """Plain SQL on the saver's tables, over a connection of its own."""

    def __init__(self, target: Any, saver: Any) -> None:
        self.backend = target.backend
        self.saver = saver
        self.n = saver.ctx.sql.n  # quoted, schema-qualified table names
        if self.backend == "postgres":
            import psycopg

            self.conn: Any = psycopg.connect(target.conn_string, autocommit=True)
        else:
            self.conn = sqlite3.connect(target.conn_string)

    def close(self) -> None:
        self.conn.close()

    def q(self, sql: str, **params: Any) -> list[tuple]:
        # "__T__" stands for the thread id parameter in either driver's style
        sql = sql.replace("__T__", "%(t)s" if self.backend == "postgres" else ":t")
        cur = self.conn.execute(sql, params)
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in cur.fetchall()]

    # -- rows of one thread --------------------------------------------------

    def all_objects(self, t: str) -> dict[bytes, tuple[str, bytes]]:
        rows = self.q(f"SELECT hash, type, data FROM {self.n.objects} WHERE thread_id = __T__", t=t)
        return {bytes(h): (typ, bytes(d)) for h, typ, d in rows}

    def objects(self, t: str) -> dict[bytes, tuple[str, bytes]]:
        """Objects holding values: not the chunks of long lists' hashes."""
        return {h: o for h, o in self.all_objects(t).items() if o[0] != CHUNK_TYPE}

    def chunks(self, t: str) -> dict[bytes, bytes]:
        return {h: d for h, (typ, d) in self.all_objects(t).items() if typ == CHUNK_TYPE}

    def expand(self, t: str, refs: bytes) -> list[bytes]:
        """A row's hashes, one per element: the chunks it names put back together."""
        chunks = self.chunks(t)
        return [e for h in split(refs) for e in (split(chunks[h]) if h in chunks else [h])]

    def decoded_objects(self, t: str) -> dict[bytes, Any]:
        load = self.saver.ctx.codec.load
        return {h: load(typ, data) for h, (typ, data) in self.objects(t).items()}

    def values(self, t: str) -> list[tuple]:
        return self.q(
            f"SELECT checkpoint_ns, channel, version, kind, base_version, refs FROM {self.n.values} "
            "WHERE thread_id = __T__",
            t=t,
        )

    def writes(self, t: str) -> list[tuple]:
        return self.q(
            f"SELECT checkpoint_ns, checkpoint_id, task_id, idx, channel, kind, refs "
            f"FROM {self.n.writes} WHERE thread_id = __T__",
            t=t,
        )

    def checkpoints(self, t: str) -> list[tuple]:
        return self.q(
            f"SELECT checkpoint_ns, checkpoint_id, checkpoint FROM {self.n.checkpoints} "
            "WHERE thread_id = __T__",
            t=t,
        )

    def counts(self, t: str) -> dict[str, int]:
        out = {}
        for name in ("threads", "checkpoints", "values", "writes", "objects"):
            table = getattr(self.n, name)
            (c,) = self.q(f"SELECT count(*) FROM {table} WHERE thread_id = __T__", t=t)[0]
            out[name] = c
        return out

    def stored_bytes(self, t: str) -> int:
        """Sum of the length of every column of every row of the thread, in all our tables."""
        total = 0
        tables = self.saver.tables
        for table, name in (
            (tables.threads, self.n.threads),
            (tables.checkpoints, self.n.checkpoints),
            (tables.channel_values, self.n.values),
            (tables.writes, self.n.writes),
            (tables.objects, self.n.objects),
        ):
            terms = []
            for col in table.columns:
                c = f'"{col.name}"'
                if self.backend == "postgres":
                    is_bytes = col.type.python_type is bytes
                    terms.append(
                        f"coalesce(octet_length({c}), 0)" if is_bytes
                        else f"coalesce(octet_length({c}::text), 0)"
                    )
                else:
                    terms.append(f"coalesce(length(CAST({c} AS BLOB)), 0)")
            (s,) = self.q(
                f"SELECT coalesce(sum({' + '.join(terms)}), 0) FROM {name} WHERE thread_id = __T__", t=t
            )[0]
            total += int(s)
        return total

    # -- integrity ----------------------------------------------------------

    def orphans(self, t: str) -> dict[str, list[Any]]:
        """Rows nothing live refers to: values no checkpoint reaches, objects nothing names, writes without checkpoint."""
        cps = self.checkpoints(t)
        vals = {(ns, ch, ver): (kind, base, refs) for ns, ch, ver, kind, base, refs in self.values(t)}
        reached: set[tuple[str, str, str]] = set()
        missing: list[Any] = []
        for ns, _cid, doc in cps:
            for ch, ver in json.loads(doc).get("channel_versions", {}).items():
                key: tuple[str, str, str] | None = (ns, ch, str(ver))
                if key not in vals:
                    continue  # an empty channel: a version without a row
                while key is not None and key not in reached:
                    if key not in vals:
                        missing.append(key)  # a delta whose base is gone
                        break
                    reached.add(key)
                    kind, base, _ = vals[key]
                    key = (ns, ch, base) if kind == KIND_DELTA else None
        named: set[bytes] = set()
        for key in reached:
            named.update(split(vals[key][2]))
        cp_keys = {(ns, cid) for ns, cid, _ in cps}
        dangling_writes = []
        for ns, cid, task, idx, _ch, _kind, refs in self.writes(t):
            named.update(split(refs))
            if (ns, cid) not in cp_keys:
                dangling_writes.append((ns, cid, task, idx))
        chunks = self.chunks(t)
        for h in [h for h in named if h in chunks]:
            named.update(split(chunks[h]))
        objs = set(self.all_objects(t))
        return {
            "values": sorted(set(vals) - reached),
            "objects": sorted(h.hex() for h in objs - named),
            "writes": dangling_writes,
            "missing_values": missing,
            "missing_objects": sorted(h.hex() for h in named - objs),
        }

    def assert_no_orphans(self, t: str) -> None:
        found = self.orphans(t)
        assert found == {k: [] for k in found}, found


@pytest.fixture
def raw(saver_target: Any, saver: Any) -> Iterator[Raw]:
    r = Raw(saver_target, saver)
    try:
        yield r
    finally:
        r.close()


@contextmanager
def raw_for(saver_target: Any, saver: Any) -> Iterator[Raw]:
    r = Raw(saver_target, saver)
    try:
        yield r
    finally:
        r.close()


def decode_refs(objs: dict[bytes, Any], kind: int, refs: bytes) -> Any:
    hashes = split(refs)
    if kind == KIND_SCALAR:
        (h,) = hashes
        return objs[h]
    if kind == KIND_DICT:
        out, pos = {}, 1
        for key, n in objs[hashes[0]]:
            if n < 0:
                out[key], pos = objs[hashes[pos]], pos + 1
            else:
                out[key], pos = [objs[h] for h in hashes[pos : pos + n]], pos + n
        assert pos == len(hashes)
        return out
    return [objs[h] for h in hashes]


def contains_tool_message(value: Any, msg: ToolMessage) -> bool:
    return isinstance(value, ToolMessage) and (
        value.id == msg.id or value.tool_call_id == msg.tool_call_id
    )


def assert_tool_messages_stored_once(raw: Raw, t: str, expected: int) -> None:
    """Each ToolMessage of the thread is one object; no stored list holds a copy of it."""
    objs = raw.decoded_objects(t)
    tool_messages = [v for v in objs.values() if isinstance(v, ToolMessage)]
    assert len(tool_messages) == expected, (
        f"{len(tool_messages)} ToolMessage objects stored, expected {expected}: "
        + ", ".join(sorted(f"{m.tool_call_id}/id={m.id}" for m in tool_messages))
    )
    for msg in tool_messages:
        assert msg.id, msg
        same = [h for h, v in objs.items() if contains_tool_message(v, msg)]
        assert len(same) == 1, (msg, len(same))
        in_lists = [
            h for h, v in objs.items()
            if isinstance(v, (list, tuple, dict)) and _nested_contains(v, msg)
        ]
        assert in_lists == [], f"{msg.id} is also stored inside {len(in_lists)} other object(s)"
        # the same object is what the tools node's write and the messages lists refer to
        (h,) = same
        write_refs = [
            r for (_ns, _c, _task, _i, ch, _k, r) in raw.writes(t)
            if ch == "messages" and h in raw.expand(t, r)
        ]
        value_refs = [
            r for (_ns, ch, _v, _k, _b, r) in raw.values(t) if ch == "messages" and h in raw.expand(t, r)
        ]
        assert len(write_refs) == 1, f"{msg.id} is in {len(write_refs)} write rows"
        assert value_refs, f"{msg.id} is in no stored messages list"


def _nested_contains(value: Any, msg: ToolMessage) -> bool:
    if contains_tool_message(value, msg):
        return True
    if isinstance(value, dict):
        return any(_nested_contains(v, msg) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_nested_contains(v, msg) for v in value)
    return False


# --------------------------------------------------------------------------
# 1. The seed graph: every ToolMessage stored exactly once
# --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["messages", "updates"])
def test_seed_graph_stores_each_tool_message_once(saver: Any, raw: Raw, mode: str) -> None:
    """Streaming the seed graph (six turns, two tools each) stores every ToolMessage exactly once.

    The ToolMessage written by the ToolNode and the same message inside every
    later checkpoint's messages list are one row of the objects table: the
    write must not keep a second copy (e.g. one serialized before LangGraph's
    add_messages gave the message its id).
    """
    graph = build_tool_agent(saver)
    config = new_config(f"seed-{mode}")
    chunks = []
    for i, city in enumerate(CITIES):
        question = {"messages": [HumanMessage(f"What is the weather in {city}?", id=f"human-{i}")]}
        chunks += list(graph.stream(question, config, stream_mode=mode))
    assert chunks
    state = graph.get_state(config)
    tools = [m for m in state.values["messages"] if isinstance(m, ToolMessage)]
    assert [m.tool_call_id for m in tools] == [
        f"call-{k}-{city}" for city in CITIES for k in ("w", "t")
    ]
    assert len(state.values["messages"]) == 5 * len(CITIES)
    t = thread_of(config)
    assert_tool_messages_stored_once(raw, t, expected=2 * len(CITIES))
    # found by id: each id of the final state maps to exactly one stored object
    objs = raw.decoded_objects(t)
    for m in tools:
        assert sum(1 for v in objs.values() if isinstance(v, BaseMessage) and v.id == m.id) == 1
        assert sum(1 for v in objs.values() if v == m) == 1
    # every message of the conversation is stored once, whatever its type
    for m in state.values["messages"]:
        assert sum(1 for v in objs.values() if isinstance(v, BaseMessage) and v.id == m.id) == 1, m


def _assert_written_once(saver: Any, pg_url: str, config: RunnableConfig, tool_msg: ToolMessage) -> None:
    """After `_race_tool_write` on Postgres: the ToolMessage is one stored object, and the
    pending write reads back as the message with the id add_messages gave it."""

    class _Target:
        backend, conn_string = "postgres", pg_url

    with raw_for(_Target(), saver) as raw:
        assert_tool_messages_stored_once(raw, thread_of(config), expected=1)
    (pending,) = saver.get_tuple(config).pending_writes
    assert pending[2] == [tool_msg] and pending[2][0].id == "tool-msg-1"


def _race_tool_write(
    saver: Any, config: RunnableConfig, write: Any, reached: Any, go: Any
) -> tuple[RunnableConfig, ToolMessage]:
    """A question's checkpoint, then ``write(config, tool_msg)`` on another thread
    until it sets ``reached``; meanwhile add_messages gives the message its id and
    the put of the list holding it is stored; then ``go``: the write goes on."""
    import threading

    question = HumanMessage("weather?", id="q")
    cp = empty_checkpoint()
    v1 = saver.get_next_version(None, None)
    cp["channel_values"] = {"messages": [question]}
    cp["channel_versions"] = {"messages": v1}
    config = saver.put(config, cp, {"source": "loop", "step": 0}, {"messages": v1})
    tool_msg = ToolMessage("sunny", tool_call_id="call-1")  # no id yet
    writer = threading.Thread(target=write, args=(config, tool_msg))
    writer.start()
    assert reached.wait(10)
    tool_msg.id = "tool-msg-1"  # what add_messages does, in place
    cp2 = empty_checkpoint()
    v2 = saver.get_next_version(v1, None)
    cp2["channel_values"] = {"messages": [question, tool_msg]}
    cp2["channel_versions"] = {"messages": v2}
    saver.put(config, cp2, {"source": "loop", "step": 1}, {"messages": v2})
    go.set()
    writer.join(10)
    assert not writer.is_alive()
    return config, tool_msg


def test_write_stored_after_the_put_of_its_message_is_repointed(pg_url: str) -> None:
    """The race behind "two entries per ToolMessage" on a pool: put_writes serializes a
    ToolMessage before add_messages gives it its id, the put storing the list (with
    the id) commits on another connection first, and the write lands after it. The
    write must still end up pointing at the list's object, with no stale copy left.
    Driven deterministically: the put_writes pauses between serializing and storing."""
    import threading

    from checkpoint_pg import PostgresSaver
    from checkpoint_pg.core import ops

    prefix = f"r{secrets.token_hex(4)}_"
    with PostgresSaver.from_conn_string(pg_url, pool_size=2, prefix=prefix) as saver:
        saver.setup()
        reached, go = threading.Event(), threading.Event()

        def pause() -> None:  # serialized (without the id) and registered
            reached.set()
            assert go.wait(10)

        def write(config: RunnableConfig, tool_msg: ToolMessage) -> None:
            op = ops.put_writes(saver.ctx, config, [("messages", [tool_msg])], "tools-task", "")
            saver._run(after_first_yield(op, pause), txn=False, write=True)

        config, tool_msg = _race_tool_write(saver, new_config("race"), write, reached, go)
        _assert_written_once(saver, pg_url, config, tool_msg)


@pytest.mark.parametrize("second", ["put", "put_writes"])
def test_a_repoint_lost_with_its_connection_is_sent_again_by_the_retry(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, second: str
) -> None:
    """On Postgres a put (or put_writes) and the repoint it then claims commit apart.
    The server kills the session as the repoint is sent: the call is retried on a fresh
    connection, and the retry must repoint the write too (the claim was taken from
    WrittenMessages by the first attempt), not leave the ToolMessage stored twice.
    ``second``: which of the two calls stores last, and so repoints."""
    import threading

    import psycopg

    import checkpoint_pg.postgres as pg
    from checkpoint_pg import PostgresSaver

    real = pg._execute
    killed: list[int] = []
    in_writes, go = threading.Event(), threading.Event()

    def execute(conn: Any, batch: Any, *how: Any) -> list[Any]:
        sql = " ".join(s.sql for s in batch.stmts)
        if second == "put_writes" and "put_writes(" in sql and not in_writes.is_set():
            in_writes.set()  # serialized without the id: the put goes first
            assert go.wait(10)
        if not killed and "overlay(refs PLACING" in sql:
            killed.append(conn.info.backend_pid)
            with psycopg.connect(pg_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [conn.info.backend_pid])
        return real(conn, batch, *how)

    monkeypatch.setattr(pg, "_execute", execute)
    prefix = f"r{secrets.token_hex(4)}_"
    with PostgresSaver.from_conn_string(pg_url, pool_size=2, prefix=prefix) as saver:
        saver.setup()

        def write(cfg: RunnableConfig, msg: ToolMessage) -> None:
            saver.put_writes(cfg, [("messages", [msg])], "tools-task")
            reached.set()  # second == "put": the write is stored before the put

        # second == "put_writes": the write waits, serialized without the id, in `execute`
        reached = in_writes if second == "put_writes" else threading.Event()
        config, tool_msg = _race_tool_write(saver, new_config("repoint-lost"), write, reached, go)
        assert killed, "the repoint was never sent"
        _assert_written_once(saver, pg_url, config, tool_msg)


def test_a_repoint_waits_for_a_write_in_flight_that_holds_the_same_bytes(pg_url: str) -> None:
    """Two parallel tasks wrote the same id-less message (one object, stored once).
    One task's repoint (its message got its id) drops that object once nothing uses
    it; the other task's put_writes, found the object already stored and not yet
    committed, must not be left pointing at nothing: the repoint waits for it."""
    import threading

    import psycopg

    from checkpoint_pg import PostgresSaver

    prefix = f"r{secrets.token_hex(4)}_"
    with PostgresSaver.from_conn_string(pg_url, prefix=prefix) as saver:
        saver.setup()
        config = new_config("repoint-race")
        t = thread_of(config)
        cp = empty_checkpoint()
        cp["channel_values"] = {"n": 1}
        cp["channel_versions"] = {"n": saver.get_next_version(None, None)}
        config = saver.put(config, cp, {}, cp["channel_versions"])
        msg = ToolMessage("same result", tool_call_id="call-1")
        saver.put_writes(config, [("messages", [msg])], "task-a")
        old = saver.ctx.codec.dump(msg).hash
        with_id = saver.ctx.codec.dump(ToolMessage("same result", tool_call_id="call-1", id="m-1"))
        new = with_id.hash
        n = saver.tables
        cid = config["configurable"]["checkpoint_id"]
        with psycopg.connect(pg_url, autocommit=True) as conn:  # as the put of the list stored it
            conn.execute(
                f'INSERT INTO "{n.objects.name}" (thread_id, hash, type, data) VALUES (%s, %s, %s, %s)',
                (t, new, with_id.type, with_id.data),
            )
        with psycopg.connect(pg_url) as other:  # task b's put_writes, in flight
            other.execute(f'SELECT 1 FROM "{n.threads.name}" WHERE thread_id = %s FOR KEY SHARE', (t,))
            other.execute(
                f'INSERT INTO "{n.writes.name}" (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, '
                "channel, task_path, kind, refs) VALUES (%s, '', %s, 'task-b', 0, 'messages', '', %s, %s)",
                (t, cid, KIND_LIST, old),
            )
            stmts = saver.ctx.sql.repoint_writes([(t, "", cid, "task-a", 0, 0, old, new)])

            def repoint() -> None:  # task a's, on a connection of its own
                with psycopg.connect(pg_url) as conn, conn.transaction():
                    for st in stmts:
                        conn.execute(st.sql, st.params)

            worker = threading.Thread(target=repoint)
            worker.start()
            # waits for task b's transaction (seen waiting: after a fixed 0.5 s a loaded
            # machine's repoint may not have reached it, and run only after the commit)
            wait_for_blocked(pg_url, other.info.backend_pid)
            assert worker.is_alive()
            other.commit()
        worker.join(10)
        assert not worker.is_alive()
        with psycopg.connect(pg_url) as conn:
            kept = conn.execute(
                f'SELECT count(*) FROM "{n.objects.name}" WHERE thread_id = %s AND hash = %s', (t, old)
            ).fetchone()[0]
        assert kept == 1  # task b's write still uses it
        writes = {w[0]: w[2] for w in saver.get_tuple(config).pending_writes}
        assert writes["task-b"] == [msg]


# Postgres: calls plan outside the connection; SQLite plans under its lock
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_put_between_serializing_a_write_and_storing_it_keeps_one_copy(
    make_saver: Any, saver_target: Any
) -> None:
    """The same race one step earlier: the put storing the message (with the id
    add_messages gave it) runs while put_writes is still serializing it without
    the id. The write must still end up on the list's object. Driven by a
    serializer that pauses once the message's bytes are made."""
    import threading

    reached, go = threading.Event(), threading.Event()

    class PauseAfterSerializing(JsonPlusSerializer):
        def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
            out = super().dumps_typed(obj)
            # the write's serializing only: the put then serializes the message without
            # its id too, to tell its id from an edit (WrittenMessages.claim)
            if isinstance(obj, ToolMessage) and obj.id is None and not reached.is_set():
                reached.set()
                assert go.wait(10)
            return out

    with make_saver(serde=PauseAfterSerializing()) as saver:
        config, tool_msg = _race_tool_write(
            saver,
            new_config("race-serializing"),
            lambda config, msg: saver.put_writes(config, [("messages", [msg])], "tools-task"),
            reached,
            go,
        )
        with raw_for(saver_target, saver) as raw:
            assert_tool_messages_stored_once(raw, thread_of(config), expected=1)
        (write,) = saver.get_tuple(config).pending_writes
        assert write[2] == [tool_msg] and write[2][0].id == "tool-msg-1"


# Postgres: calls plan outside the connection; SQLite plans under its lock
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_put_never_builds_on_a_list_another_put_has_not_stored(make_saver: Any) -> None:
    """Two runs of one thread in one process (a pool, threads sharing a saver): put X
    has planned its list and not stored it yet when put Y, a sibling, plans the same
    channel. Y must not build on X's version: it is not stored, and may never be
    (Y was refused with IntegrityError and planned again, or failed)."""
    import threading

    planned, go = threading.Event(), threading.Event()
    y_serialized = Counter[str]()

    class Gate(JsonPlusSerializer):
        def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
            if isinstance(obj, dict) and obj.get("gate") == "X":
                planned.set()  # X's list ("log", planned first) is planned
                assert go.wait(10)
            elif isinstance(obj, dict) and obj.get("gate") == "Y":
                y_serialized["Y"] += 1
            return super().dumps_typed(obj)

    with make_saver(serde=Gate()) as saver:
        config = new_config("siblings")
        v1 = saver.get_next_version(None, None)
        first = empty_checkpoint()
        first["channel_values"] = {"log": ["a"]}
        first["channel_versions"] = {"log": v1}
        parent = saver.put(config, first, {"source": "input", "step": 0}, {"log": v1})
        stored: dict[str, Any] = {}

        def put(name: str) -> None:
            cp = empty_checkpoint()
            v = saver.get_next_version(v1, None)
            cp["channel_values"] = {"log": ["a", name], "gate": {"gate": name}}
            cp["channel_versions"] = {"log": v, "gate": v}
            stored[name] = saver.put(parent, cp, {"source": "loop", "step": 1}, {"log": v, "gate": v})

        x = threading.Thread(target=put, args=("X",))
        x.start()
        assert planned.wait(10)
        put("Y")
        go.set()
        x.join(10)
        assert set(stored) == {"X", "Y"} and y_serialized["Y"] == 1  # planned once
    with make_saver() as fresh:
        for name in ("X", "Y"):
            assert fresh.get_tuple(stored[name]).checkpoint["channel_values"]["log"] == ["a", name]


@pytest.mark.parametrize("mode", ["messages", "updates"])
async def test_seed_graph_async_stores_each_tool_message_once(
    async_saver: Any, saver_target: Any, mode: str
) -> None:
    """Same as the sync test with the async saver and ``astream``."""
    graph = build_tool_agent(async_saver)
    config = new_config(f"aseed-{mode}")
    for i, city in enumerate(CITIES):
        question = {"messages": [HumanMessage(f"What is the weather in {city}?", id=f"human-{i}")]}
        assert [c async for c in graph.astream(question, config, stream_mode=mode)]
    state = await graph.aget_state(config)
    assert len([m for m in state.values["messages"] if isinstance(m, ToolMessage)]) == 2 * len(CITIES)
    with raw_for(saver_target, async_saver) as raw:
        assert_tool_messages_stored_once(raw, thread_of(config), expected=2 * len(CITIES))


# --------------------------------------------------------------------------
# 2. A failed superstep: the node that succeeded is not re-run, its write stored once
# --------------------------------------------------------------------------


def test_failed_superstep_resume_keeps_single_write(saver: Any, raw: Raw) -> None:
    """``steady`` and ``flaky`` run in parallel, ``flaky`` raises; on resume ``steady`` is not re-run.

    steady's write ["steady"] is one writes row, and its element "steady" one
    object, shared with the final log list.
    """
    calls: Counter[str] = Counter()
    fail = [True]
    graph = build_flaky_pair(saver, calls, fail)
    config = new_config("flaky")
    with pytest.raises(FlakyError):
        graph.invoke({"log": []}, config)
    assert calls == Counter({"steady": 1, "flaky": 1})
    t = thread_of(config)

    def steady_rows() -> tuple[list[Any], int, int]:
        objs = raw.decoded_objects(t)
        rows = [
            w for w in raw.writes(t)
            if w[4] == "log" and decode_refs(objs, w[5], w[6]) == ["steady"]
        ]
        n_objs = sum(1 for v in objs.values() if v == "steady")
        n_lists = sum(1 for v in objs.values() if isinstance(v, list) and "steady" in v)
        return rows, n_objs, n_lists

    rows_before, objs_before, _ = steady_rows()
    assert len(rows_before) == 1 and objs_before == 1

    fail[0] = False
    out = graph.invoke(None, config)
    assert calls == Counter({"steady": 1, "flaky": 2, "join": 1})
    assert sorted(out["log"][:2]) == ["flaky", "steady"]
    assert out["log"][2] == "join(2)"
    rows_after, objs_after, lists_after = steady_rows()
    assert rows_after == rows_before, (rows_before, rows_after)
    assert objs_after == 1
    assert lists_after == 0
    raw.assert_no_orphans(t)


class _ToolState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def _two_parallel(nodes: dict[str, Any], checkpointer: Any) -> Any:
    """START -> both ``nodes`` in one superstep -> END on the messages state."""
    builder = StateGraph(_ToolState)
    for name, node in nodes.items():
        builder.add_node(name, node)
        builder.add_edge(START, name)
    builder.add_edge(list(nodes), END)
    return builder.compile(checkpointer=checkpointer)


def _one_node(name: str, node: Any, checkpointer: Any) -> Any:
    """START -> ``node`` -> END on the messages state."""
    builder = StateGraph(_ToolState)
    builder.add_node(name, node)
    builder.add_edge(START, name)
    builder.add_edge(name, END)
    return builder.compile(checkpointer=checkpointer)


@pytest.mark.parametrize("durability", ["sync", "async"])
def test_failed_superstep_resume_stores_a_toolmessage_once(saver: Any, raw: Raw, durability: str) -> None:
    """A ToolNode and a node that raises run in one superstep. The ToolMessage the
    ToolNode wrote has no id yet: it is stored so, as a pending write. On resume
    LangGraph applies that write again and gives the message its id; the put
    storing the list must repoint the write, not store the message a second time."""
    from langchain_core.tools import tool
    from langgraph.prebuilt import ToolNode

    @tool
    def lookup(order: str) -> str:
        """Look an order up."""
        return f"order {order}: one teapot, delivered broken"

    fail = [True]

    def agent(state: _ToolState) -> dict[str, Any]:
        call = {"name": "lookup", "args": {"order": "A-1"}, "id": "call-1", "type": "tool_call"}
        return {"messages": [AIMessage("", id="ai-1", tool_calls=[call])]}

    def audit(state: _ToolState) -> dict[str, Any]:
        if fail[0]:
            raise FlakyError("audit service down")
        return {"messages": [AIMessage("audited", id="ai-audit")]}

    builder = StateGraph(_ToolState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([lookup]))
    builder.add_node("audit", audit)
    builder.add_edge(START, "agent")
    builder.add_edge("agent", "tools")
    builder.add_edge("agent", "audit")
    builder.add_edge(["tools", "audit"], END)
    graph = builder.compile(checkpointer=saver)
    config = new_config("tool-resume")
    t = thread_of(config)
    with pytest.raises(FlakyError):
        graph.invoke({"messages": [HumanMessage("refund?", id="h-1")]}, config, durability=durability)
    fail[0] = False
    out = graph.invoke(None, config, durability=durability)
    (result,) = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert result.id is not None and "teapot" in result.content

    def stored() -> list[Any]:
        return [v for v in raw.decoded_objects(t).values() if isinstance(v, ToolMessage)]

    assert [m.id for m in stored()] == [result.id]  # one object, the one with the id
    raw.assert_no_orphans(t)
    # the write still reads back, now pointing at that object
    tup = saver.get_tuple(config)
    assert [m.id for m in tup.checkpoint["channel_values"]["messages"]] == [m.id for m in out["messages"]]


@pytest.mark.parametrize("durability", ["sync", "async"])
@pytest.mark.parametrize("resumed", [False, True], ids=["run", "resumed"])
def test_a_long_write_names_chunks_and_its_new_message_is_stored_once(
    saver: Any, raw: Raw, durability: str, resumed: bool
) -> None:
    """A node returns the 70 messages it was given plus a reply without an id: its write
    names a chunk for the first 64 hashes (core/chunks.py) and holds the reply's hash
    after the rest. When add_messages gives the reply its id, the put storing it repoints
    that hash, at its place after the chunk, whether the write was made in this run or
    read back to resume a step cut short by a parallel task that failed."""
    fail = [resumed]

    def echo(state: _ToolState) -> dict[str, Any]:
        return {"messages": [*state["messages"], AIMessage(f"reply to {len(state['messages'])}")]}

    def audit(state: _ToolState) -> dict[str, Any]:
        if fail[0]:
            raise FlakyError("audit service down")
        return {}

    graph = _two_parallel({"echo": echo, "audit": audit}, saver)
    config = new_config("long-write")
    t = thread_of(config)
    history = [HumanMessage(f"note {i}", id=f"h-{i}") for i in range(70)]
    if resumed:
        with pytest.raises(FlakyError):
            graph.invoke({"messages": history}, config, durability=durability)
        fail[0] = False
        out = graph.invoke(None, config, durability=durability)
    else:
        out = graph.invoke({"messages": history}, config, durability=durability)
    reply = out["messages"][-1]
    assert reply.id is not None and reply.content == "reply to 70" and len(out["messages"]) == 71
    # the input's write (70 messages) and echo's (71), each a chunk and the rest
    chunks = raw.chunks(t)
    writes = sorted((split(w[6]) for w in raw.writes(t) if w[4] == "messages"), key=len)
    assert [len(r) for r in writes] == [1 + 6, 1 + 6 + 1] and all(r[0] in chunks for r in writes)
    refs = writes[1]
    decoded = raw.decoded_objects(t)
    replies = [v for v in decoded.values() if isinstance(v, AIMessage)]
    assert [m.id for m in replies] == [reply.id]  # one object, the one with the id
    assert decoded[refs[-1]].id == reply.id  # the write points at it
    raw.assert_no_orphans(t)
    assert graph.get_state(config).values["messages"] == out["messages"]


@pytest.mark.parametrize("head", [[], [{"note": "a dict: the list is not chunked"}]], ids=["messages", "mixed"])
def test_a_write_after_its_chunk_is_repointed_at_its_place(saver: Any, raw: Raw, head: list[Any]) -> None:
    """put_writes stores the 70 messages of a thread plus one without an id (a chunk, 6
    hashes, then its hash); add_messages gives it its id; the put storing the list
    repoints the write's hash after the chunk, and the stale object goes. A list that
    also holds a dict is not chunked (codec.chunkable): the hash is repointed where it is."""
    history = [HumanMessage(f"note {i}", id=f"h-{i}") for i in range(70)]
    p = Putter(saver, f"st-chunked-write-{uuid.uuid4().hex[:8]}")
    config = p.put(messages=list(history))
    reply = AIMessage("reply")
    saver.put_writes(config, [("messages", [*head, *history, reply])], "echo-task")
    reply.id = "r-1"  # what add_messages does, in place
    p.put(messages=[*history, reply])
    t = thread_of(config)
    ((_, _, _, _, _, _, refs),) = raw.writes(t)
    refs = split(refs)
    if head:
        assert len(refs) == len(head) + 70 + 1 and not set(refs) & set(raw.chunks(t))
    else:
        assert len(refs) == 1 + 6 + 1 and refs[0] in raw.chunks(t)
    decoded = raw.decoded_objects(t)
    assert [v.id for v in decoded.values() if isinstance(v, AIMessage)] == ["r-1"]
    assert decoded[refs[-1]].id == "r-1"
    raw.assert_no_orphans(t)
    (pending,) = saver.get_tuple(config).pending_writes
    assert pending == ("echo-task", "messages", [*head, *history, reply])


def test_a_repoint_keeps_an_object_a_chunk_still_names(saver: Any, make_saver: Any, raw: Raw) -> None:
    """A write's message without an id has the bytes of an element inside a chunk of
    another channel's list. When the message gets its id and the write is repointed,
    the old object stays: the chunk still names it."""
    log = [AIMessage("same words")] + [AIMessage(f"entry {i}") for i in range(69)]  # no ids
    p = Putter(saver, f"st-repoint-chunk-{uuid.uuid4().hex[:8]}")
    config = p.put(log=log)
    msg = AIMessage("same words")  # equal bytes: one object with log[0]
    saver.put_writes(config, [("messages", [msg])], "task-m")
    msg.id = "m-1"
    p.put(messages=[msg])
    t = thread_of(config)
    raw.assert_no_orphans(t)
    with make_saver() as fresh:
        assert fresh.get_tuple(p.put_configs[0]).checkpoint["channel_values"]["log"] == log
        assert fresh.get_tuple(p.config).checkpoint["channel_values"]["messages"] == [msg]


def test_a_node_returning_the_whole_list_registers_nothing_step_after_step(saver: Any, raw: Raw) -> None:
    """A node returns the list it was given plus a reply (add_messages keeps the
    messages it already has). The messages with ids are hashed as a put stores them:
    the saver keeps no entry for them, instead of one more per message at every step
    (quadratic in the thread's length, and each put_writes scanning them all)."""

    def node(state: _ToolState) -> dict[str, Any]:
        return {"messages": [*state["messages"], AIMessage(f"reply {len(state['messages'])}")]}

    graph = _one_node("n", node, saver)
    config = new_config("whole-list")
    t = thread_of(config)

    def entries() -> int:
        return sum(len(v) for v in saver.ctx.written._data.values())

    for i in range(3):
        graph.invoke({"messages": [HumanMessage(f"hi {i}")]}, config)
    before = entries()
    for i in range(3, 12):
        out = graph.invoke({"messages": [HumanMessage(f"hi {i}")]}, config)
    assert entries() <= before
    assert len(out["messages"]) == 24
    stored = [v for v in raw.decoded_objects(t).values() if isinstance(v, (AIMessage, HumanMessage))]
    assert sorted(m.id for m in stored) == sorted(m.id for m in out["messages"])  # each once
    raw.assert_no_orphans(t)


def test_polling_an_interrupted_thread_keeps_no_copies_and_still_stores_once(saver: Any, raw: Raw) -> None:
    """A step is cut short by an interrupt; its ToolMessage (no id) waits as a pending
    write. A UI polls get_state meanwhile: each read decodes a copy of that message,
    which nothing resumes from, so none of them may stay alive in the saver (a large
    tool output held 10,000 times). The resume still stores the message once."""
    import gc
    import weakref

    from langgraph.types import Command, interrupt

    copies: list[Any] = []

    def tools(state: _ToolState) -> dict[str, Any]:
        return {"messages": [ToolMessage("x" * 5000, tool_call_id="call-1")]}  # as ToolNode: no id

    def ask(state: _ToolState) -> dict[str, Any]:
        interrupt("approve?")
        return {"messages": [AIMessage("approved", id="ai-ok")]}

    graph = _two_parallel({"tools": tools, "ask": ask}, saver)
    config = new_config("poll")
    t = thread_of(config)
    graph.invoke({"messages": [HumanMessage("hi", id="h-1")]}, config)
    for _ in range(20):
        graph.get_state(config)
        tup = saver.get_tuple(config)  # what get_state reads
        copies.extend(
            weakref.ref(m)
            for _, channel, value in tup.pending_writes
            if channel == "messages"
            for m in value
            if isinstance(m, ToolMessage)
        )
        del tup
    gc.collect()
    assert len(copies) == 20
    # none of the reads' copies kept alive (a read may hand back an object this
    # process already holds, the same each time)
    assert len({id(m) for r in copies if (m := r()) is not None}) <= 1
    out = graph.invoke(Command(resume="yes"), config)
    (result,) = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    stored = [v for v in raw.decoded_objects(t).values() if isinstance(v, ToolMessage)]
    assert [m.id for m in stored] == [result.id]
    raw.assert_no_orphans(t)



@pytest.mark.parametrize("shape", ["subgraph", "pass-through"])
def test_a_message_in_two_writes_before_its_put_is_stored_once(
    saver: Any, raw: Raw, shape: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With durability="async" the next step runs while the put storing the last
    one is under way. Its writes may hold the very message objects a pending write
    of the step before holds, id-less when written: a subgraph's input is the
    parent's messages, and a node may return the list it was given. Both writes
    must be repointed at the object the put stores with the id; remembering only
    the latest write per object left the first one on an id-less copy. The
    parent's puts are slowed down here, so the second write always comes first."""
    import time

    put = saver.put

    def slow_put(config: Any, *args: Any) -> Any:
        if not config["configurable"].get("checkpoint_ns"):
            time.sleep(0.2)
        return put(config, *args)

    monkeypatch.setattr(saver, "put", slow_put)

    def pre(state: _ToolState) -> dict[str, Any]:
        return {"messages": [AIMessage("looking the order up")]}  # no id: add_messages gives it

    builder = StateGraph(_ToolState)
    builder.add_node("pre", pre)
    if shape == "subgraph":
        sub = StateGraph(_ToolState)
        sub.add_node("answer", lambda s: {"messages": [AIMessage("one teapot", id="ai-sub")]})
        sub.add_edge(START, "answer")
        builder.add_node("next", sub.compile())
    else:
        builder.add_node("next", lambda s: {"messages": s["messages"]})
    builder.add_edge(START, "pre")
    builder.add_edge("pre", "next")
    builder.add_edge("next", END)
    graph = builder.compile(checkpointer=saver)
    config = new_config("two-writes")
    t = thread_of(config)
    out = graph.invoke({"messages": [HumanMessage("where is my order?")]}, config, durability="async")
    stored = [v for v in raw.decoded_objects(t).values() if isinstance(v, BaseMessage)]
    assert sorted(m.content for m in stored) == sorted(m.content for m in out["messages"])
    assert all(m.id is not None for m in stored)
    raw.assert_no_orphans(t)
    tup = saver.get_tuple(config)
    assert [m.id for m in tup.checkpoint["channel_values"]["messages"]] == [m.id for m in out["messages"]]


def test_writes_holding_whole_histories_do_not_evict_a_pending_repoint(saver: Any, raw: Raw) -> None:
    """Many threads at once, each with a long history, whose writes hold the whole
    history (a subgraph node's output, a node returning the list it was given).
    Those messages already have their ids: a put stores the very same bytes, so
    nothing is to be repointed. Registered all the same, they filled the bounded
    registry of written messages (10,000) and evicted the entry of another
    thread's id-less ToolMessage before the put storing it with its id: that
    write kept a second, id-less copy of the message."""
    a = new_config("evict-a")
    cp = empty_checkpoint()
    v1 = saver.get_next_version(None, None)
    question = HumanMessage("weather?", id="q")
    cp["channel_values"] = {"messages": [question]}
    cp["channel_versions"] = {"messages": v1}
    a = saver.put(a, cp, {"source": "loop", "step": 0}, {"messages": v1})
    tool_msg = ToolMessage("sunny", tool_call_id="call-1")  # no id yet
    saver.put_writes(a, [("messages", [tool_msg])], "tools-task")
    tool_msg.id = "tool-msg-1"  # what add_messages does, in place
    # meanwhile, other threads' steps write their histories (ids given long ago)
    for k in range(3):
        b = new_config(f"evict-b{k}")
        history = [AIMessage(f"old answer {k} {i}", id=f"old-{k}-{i}") for i in range(4_000)]
        cpb = empty_checkpoint()
        vb = saver.get_next_version(None, None)
        cpb["channel_values"] = {"messages": history}
        cpb["channel_versions"] = {"messages": vb}
        b = saver.put(b, cpb, {"source": "loop", "step": 0}, {"messages": vb})
        saver.put_writes(b, [("messages", [*history, AIMessage(f"new {k}", id=f"new-{k}")])], "agent")
    cp2 = empty_checkpoint()
    v2 = saver.get_next_version(v1, None)
    cp2["channel_values"] = {"messages": [question, tool_msg]}
    cp2["channel_versions"] = {"messages": v2}
    saver.put(a, cp2, {"source": "loop", "step": 1}, {"messages": v2})
    assert_tool_messages_stored_once(raw, thread_of(a), expected=1)
    raw.assert_no_orphans(thread_of(a))
    (write,) = saver.get_tuple(a).pending_writes
    assert write[2] == [tool_msg] and write[2][0].id == "tool-msg-1"


# --------------------------------------------------------------------------
# 3. Linear growth
# --------------------------------------------------------------------------


def _agent() -> tuple[Any, Any]:
    """bench/agent.py's scripted agent if importable, else an equivalent one."""
    try:
        from bench.agent import build_graph, turn_input

        return build_graph, turn_input
    except ImportError:
        return _own_build_graph, _own_turn_input


def _text(seed: str, n: int) -> str:
    words = []
    i = 0
    while sum(len(w) + 1 for w in words) < n:
        words.append(hashlib.sha256(f"{seed}-{i}".encode()).hexdigest()[: 3 + i % 7])
        i += 1
    return " ".join(words)[:n]


class _AgentState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def _own_build_graph(checkpointer: Any) -> Any:
    from langchain_core.tools import tool
    from langgraph.prebuilt import ToolNode, tools_condition

    @tool
    def search_notes(topic: str, turn: int) -> str:
        """Return notes about a topic."""
        return _text(f"tool{turn}", 1000 + (turn * 137) % 1000)

    def model(state: _AgentState) -> dict[str, Any]:
        last = state["messages"][-1]
        turn = int(str(last.id).split("-")[1]) if isinstance(last, HumanMessage) else None
        if turn is not None:
            return {"messages": [AIMessage("", id=f"ai-{turn}-call", tool_calls=[{
                "name": "search_notes", "args": {"topic": "x", "turn": turn},
                "id": f"call_{turn:06d}", "type": "tool_call"}])]}
        turn = int(str(last.tool_call_id).split("_")[1])
        return {"messages": [AIMessage(_text(f"answer{turn}", 300), id=f"ai-{turn}-answer")]}

    g = StateGraph(_AgentState)
    g.add_node("agent", model)
    g.add_node("tools", ToolNode([search_notes]))
    g.add_edge(START, "agent")
    g.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: END})
    g.add_edge("tools", "agent")
    return g.compile(checkpointer=checkpointer)


def _own_turn_input(turn: int) -> dict[str, Any]:
    return {"messages": [HumanMessage(_text(f"q{turn}", 150), id=f"q-{turn}")]}


def _bytes_at_n_and_2n(graph: Any, config: RunnableConfig, turn_input: Any, raw: Raw, n: int) -> tuple[int, int, Any]:
    """Stored bytes of the thread after ``n`` and after ``2 n`` turns of the scripted
    agent, and its final state (4 messages per turn)."""
    t = thread_of(config)
    sizes = []
    for turns in (range(n), range(n, 2 * n)):
        for turn in turns:
            graph.invoke(turn_input(turn), config)
        sizes.append(raw.stored_bytes(t))
    state = graph.get_state(config)
    assert len(state.values["messages"]) == 4 * 2 * n
    return sizes[0], sizes[1], state


def test_storage_grows_linearly(saver: Any, raw: Raw) -> None:
    """Bytes stored for a 30-turn thread are at most 2.2x those of the same thread at 15 turns.

    Bytes are the summed lengths of every column of every row of the thread
    in all our tables (not file or relation sizes, which move in pages).
    """
    build_graph, turn_input = _agent()
    graph = build_graph(saver)
    config = new_config("linear")
    t = thread_of(config)
    n = 15
    bytes_n, bytes_2n, state = _bytes_at_n_and_2n(graph, config, turn_input, raw, n)
    content = sum(len(str(m.content)) for m in state.values["messages"])
    assert bytes_n > 0
    ratio = bytes_2n / bytes_n
    assert ratio <= 2.2, f"{bytes_n} bytes after {n} turns, {bytes_2n} after {2 * n}: x{ratio:.2f}"
    # and the store is in the order of the content, not of content x checkpoints
    assert bytes_2n < 4 * content, (bytes_2n, content)
    raw.assert_no_orphans(t)


# --------------------------------------------------------------------------
# 4. Round trips
# --------------------------------------------------------------------------


class Putter:
    """Puts a chain of checkpoints of one thread, each with the given channel values."""

    def __init__(self, saver: Any, thread_id: str) -> None:
        self.saver = saver
        self.config: RunnableConfig = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        self.versions: dict[str, Any] = {}
        self.values: dict[str, Any] = {}
        self.step = 0
        self.put_configs: list[RunnableConfig] = []
        self.expected: list[dict[str, Any]] = []

    def put(self, **changes: Any) -> RunnableConfig:
        cp = empty_checkpoint()
        new_versions = {}
        for ch, value in changes.items():
            v = self.saver.get_next_version(self.versions.get(ch), None)
            self.versions[ch] = v
            new_versions[ch] = v
            self.values[ch] = value
        cp["channel_values"] = dict(self.values)
        cp["channel_versions"] = dict(self.versions)
        cfg = self.saver.put(self.config, cp, {"source": "loop", "step": self.step}, new_versions)
        self.step += 1
        self.config = cfg
        self.put_configs.append(cfg)
        self.expected.append(dict(self.values))
        return cfg


def _message_edits() -> list[dict[str, Any]]:
    """A sequence of channel states: append, remove, replace by id, shrink, mixed types, reorder."""
    h1 = HumanMessage("hello", id="h1")
    a1 = AIMessage("hi there", id="a1")
    t1 = ToolMessage("tool says 42", tool_call_id="c1", id="t1")
    a2 = AIMessage("the answer is 42", id="a2")
    v1 = [h1, a1]
    v2 = v1 + [t1, a2]  # append, same objects
    v3 = [m for m in v2 if m.id != "a1"]  # RemoveMessage-like removal from the middle
    v4 = [AIMessage("edited answer", id="a2") if m.id == "a2" else m for m in v3]  # replace by id
    v5 = v4[:1]  # shrink
    v6 = v5 + [HumanMessage("again", id="h2")]  # grow after shrinking
    v7: list[Any] = []
    mixed = [1, "two", 3.5, None, True, {"k": [1, 2]}, h1, ["nested", {"x": 1}], b"\x00bytes"]
    v8 = mixed
    v9 = v8 + [h1, "two"]  # duplicates inside one list
    v10 = list(reversed(v9))  # same elements, new order
    return [
        {"messages": v1, "other": "a"},
        {"messages": v2},
        {"messages": v3, "other": {"nested": [1, 2]}},
        {"messages": v4},
        {"messages": v5},
        {"messages": v6, "other": None},
        {"messages": v7},
        {"messages": v8},
        {"messages": v9},
        {"messages": v10, "other": []},
    ]


def test_put_then_get_tuple_round_trips_edited_lists(saver: Any, make_saver: Any, raw: Raw) -> None:
    """get_tuple returns exactly the channel values put, for every kind of list edit.

    Checked on the saver that wrote (its in-process list cache) and on a new
    saver over the same storage (everything decoded from the database), for
    every checkpoint of the chain, and through list().
    """
    thread = f"st-rt-{uuid.uuid4().hex[:8]}"
    p = Putter(saver, thread)
    for change in _message_edits():
        p.put(**change)
    # a long append-only run: crosses the delta chain limit (full copies in between)
    msgs = list(p.values["messages"])
    for i in range(60):
        msgs = msgs + [AIMessage(f"m{i} " * (i % 5 + 1), id=f"long-{i}")]
        p.put(messages=msgs)
    with make_saver() as fresh:
        for reader in (saver, fresh):
            for cfg, expected in zip(p.put_configs, p.expected):
                tup = reader.get_tuple(cfg)
                assert tup is not None
                assert tup.checkpoint["channel_values"] == expected, cfg
            listed = list(reader.list({"configurable": {"thread_id": thread}}))
            assert [t.checkpoint["channel_values"] for t in reversed(listed)] == p.expected
    kinds = Counter(v[3] for v in raw.values(thread) if v[1] == "messages")
    assert kinds[KIND_DELTA] > 0 and kinds[KIND_LIST] > 1, kinds
    raw.assert_no_orphans(thread)


def test_listing_reads_checkpoints_with_numeric_channel_versions(saver: Any, make_saver: Any) -> None:
    """Versions another saver made (ints, floats) are not the strings a page
    statement matches: list() reads such a thread in the general way, and every
    listed tuple equals get_tuple's, on the saver that wrote it and a new one."""
    thread = f"st-num-{uuid.uuid4().hex[:8]}"
    config: RunnableConfig = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    msgs: list[Any] = []
    for i in range(1, 6):
        msgs = msgs + [AIMessage(f"m{i}", id=f"{thread}-m{i}")]
        cp = empty_checkpoint()
        cp["channel_values"] = {"messages": msgs, "n": i}
        cp["channel_versions"] = {"messages": i, "n": float(i)}
        config = saver.put(config, cp, {"step": i}, {"messages": i, "n": float(i)})
        saver.put_writes(config, [("n", i * 10)], f"task-{i}")
    with make_saver() as fresh:
        for reader in (saver, fresh):
            listed = list(reader.list({"configurable": {"thread_id": thread}}))
            assert [len(t.checkpoint["channel_values"]["messages"]) for t in listed] == [5, 4, 3, 2, 1]
            assert [t.pending_writes[0][2] for t in listed] == [50, 40, 30, 20, 10]
            assert all(t == reader.get_tuple(t.config) for t in listed)


def test_metadata_reads_back_as_documented(saver: Any, make_saver: Any, backend: str) -> None:
    """README, "Metadata numbers on Postgres": there metadata is JSONB, so an integral
    float in exponent form reads back as an int, -0.0 as 0.0, and a dict's keys in
    JSONB's order (shorter first); SQLite keeps metadata as written. Channel values
    keep all three exactly on both backends."""
    thread = f"st-md-{uuid.uuid4().hex[:8]}"
    config: RunnableConfig = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    written = {"zz": 1, "big": 1e16, "neg": -0.0, "a": {"yy": 1, "b": 2}}
    cp = empty_checkpoint()
    cp["channel_values"] = {"v": dict(written)}
    cp["channel_versions"] = {"v": 1}
    config = saver.put(config, cp, dict(written), {"v": 1})
    with make_saver() as fresh:
        for reader in (saver, fresh):
            got = reader.get_tuple(config)
            md = {k: got.metadata[k] for k in written}
            assert md == written
            value = got.checkpoint["channel_values"]["v"]
            assert list(value) == list(written) and list(value["a"]) == ["yy", "b"]
            assert type(value["big"]) is float and str(value["neg"]) == "-0.0"
            if backend == "postgres":
                assert [k for k in got.metadata if k in written] == ["a", "zz", "big", "neg"]
                assert list(md["a"]) == ["b", "yy"]
                assert type(md["big"]) is int and str(md["neg"]) == "0.0"
            else:
                assert [k for k in got.metadata if k in written] == list(written)
                assert list(md["a"]) == ["yy", "b"]
                assert type(md["big"]) is float and str(md["neg"]) == "-0.0"


class EditState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    items: list[Any]
    cmd: str


def build_editor(checkpointer: Any) -> Any:
    """One node that edits the messages list as ``cmd`` says (ids are all deterministic)."""

    def editor(state: EditState) -> EditState:
        cmd = state["cmd"]
        op, _, arg = cmd.partition(" ")
        if op == "say":
            mid, _, text = arg.partition(" ")
            return {"messages": [AIMessage(text, id=mid)]}
        if op == "remove":
            return {"messages": [RemoveMessage(id=arg)]}
        if op == "replace":
            mid, _, text = arg.partition(" ")
            return {"messages": [AIMessage(text, id=mid)]}
        if op == "clear":
            return {"messages": [RemoveMessage(id=REMOVE_ALL_MESSAGES), AIMessage(arg, id="fresh")]}
        if op == "items":
            return {"items": json.loads(arg)}
        raise ValueError(cmd)

    g = StateGraph(EditState)
    g.add_node("editor", editor)
    g.add_edge(START, "editor")
    g.add_edge("editor", END)
    return g.compile(checkpointer=checkpointer)


EDIT_SCRIPT = [
    "say a1 first answer",
    "say a2 second answer",
    "say a3 third answer",
    "remove a2",
    "replace a1 first answer, edited",
    'items [1, "two", 3.5, null, true, {"k": [1, 2]}, ["n", 1]]',
    'items [1, "two"]',
    "clear start over",
    "say a4 after the clear",
    "remove h-8",
]


def _run_editor(graph: Any, config: RunnableConfig) -> None:
    for i, cmd in enumerate(EDIT_SCRIPT):
        graph.invoke({"cmd": cmd, "messages": [HumanMessage(cmd, id=f"h-{i}")]}, config)


def _fork(graph: Any, config: RunnableConfig) -> None:
    """update_state on an old checkpoint (after the 3rd run), then continue from the fork."""
    history = list(graph.get_state_history(config))
    old = [s for s in history if s.values.get("cmd") == "say a3 third answer" and not s.next]
    assert len(old) == 1
    assert [m.id for m in old[0].values["messages"]] == ["h-0", "a1", "h-1", "a2", "h-2", "a3"]
    forked = graph.update_state(
        old[0].config, {"messages": [AIMessage("forked reply", id="fork-1"), RemoveMessage(id="a1")]},
        as_node="editor",
    )
    graph.invoke({"cmd": "say a9 on the fork", "messages": [HumanMessage("on fork", id="hf")]}, forked)


def _snapshots(graph: Any, config: RunnableConfig) -> list[tuple[Any, ...]]:
    return [
        (s.values, s.next, s.metadata.get("source"), s.metadata.get("step"),
         s.parent_config is not None)
        for s in graph.get_state_history(config)
    ]


def _tuples(saver: Any, config: RunnableConfig) -> list[tuple[Any, ...]]:
    out = []
    for tup in saver.list({"configurable": {"thread_id": thread_of(config)}}):
        pending = sorted(((c, repr(v)) for _, c, v in tup.pending_writes or []))
        out.append((tup.checkpoint["channel_values"], tup.metadata.get("step"), pending))
    return out


def test_an_element_is_never_read_back_as_another_channels_object(saver: Any) -> None:
    """A list [1, 2] in one channel and a tuple (1, 2) in another serialize alike,
    so they share a stored object. Reading history in the process that holds both
    must return each channel's element with its own type, as InMemorySaver does,
    not the live object of the other channel."""

    class S(TypedDict, total=False):
        rows: Annotated[list, operator.add]
        pairs: Annotated[list, operator.add]

    def build(cp: Any) -> Any:
        b = StateGraph(S)
        b.add_node("r", lambda s: {"rows": [[1, 2]]})
        b.add_node("p", lambda s: {"pairs": [(1, 2)]})
        b.add_node("r2", lambda s: {"rows": [[3]]})
        b.add_edge(START, "r")
        b.add_edge("r", "p")
        b.add_edge("p", "r2")
        b.add_edge("r2", END)
        return b.compile(checkpointer=cp)

    def history(cp: Any) -> list[Any]:
        g = build(cp)
        cfg = {"configurable": {"thread_id": f"alias-{uuid.uuid4().hex[:8]}"}}
        g.invoke({"rows": [], "pairs": []}, cfg)
        return [h.values.get("rows") for h in g.get_state_history(cfg)]

    def shapes(rows_per_step: list[Any]) -> list[Any]:
        return [[(type(x), x) for x in rows or []] for rows in rows_per_step]

    expected = history(InMemorySaver())
    assert expected[1] == [[1, 2]]
    assert shapes(history(saver)) == shapes(expected)


def test_a_read_in_the_writing_process_returns_what_a_fresh_one_does(
    saver: Any, make_saver: Any
) -> None:
    """A list of tuples and dicts read back by the process that put it comes back as
    a fresh process reads it (lists, dicts; not the live objects, nor a dict changed
    in place after the put). A list of messages still comes back as the very
    objects put (they decode to their own type)."""
    from collections import OrderedDict

    thread = f"st-types-{uuid.uuid4().hex[:8]}"
    mutable = {"n": 1}
    p = Putter(saver, thread)
    cfg = p.put(rows=[("user", "hi"), OrderedDict(k=1), mutable])
    mutable["n"] = 2  # forbidden by LangGraph, but must not leak into what is read
    msgs = [HumanMessage("hi", id="h1"), AIMessage("hello", id="a1")]
    cfg = p.put(messages=msgs)
    with make_saver() as cold:
        fresh = cold.get_tuple(cfg).checkpoint["channel_values"]
    got = saver.get_tuple(cfg).checkpoint["channel_values"]
    assert [(type(v), v) for v in got["rows"]] == [(type(v), v) for v in fresh["rows"]]
    assert fresh["rows"] == [["user", "hi"], {"k": 1}, {"n": 1}]
    assert all(a is b for a, b in zip(got["messages"], msgs))


def test_graph_edits_and_fork_round_trip_like_in_memory(saver: Any, make_saver: Any, raw: Raw) -> None:
    """RemoveMessage, replace-by-id, shrinking and mixed-type lists, and a fork by update_state.

    The state, the full history and every checkpoint's channel values and
    pending writes read back from our saver (and from a new saver on the same
    storage) equal InMemorySaver's for the same run.
    """
    config = new_config("editor")
    ref_config: RunnableConfig = {"configurable": {"thread_id": "ref"}}
    ours = build_editor(saver)
    ref = build_editor(InMemorySaver())
    for graph, cfg in ((ours, config), (ref, ref_config)):
        _run_editor(graph, cfg)
        _fork(graph, cfg)

    expected_state = ref.get_state(ref_config).values
    assert [m.id for m in expected_state["messages"]] == [
        "h-0", "h-1", "a2", "h-2", "a3", "fork-1", "hf", "a9"
    ]
    assert ours.get_state(config).values == expected_state
    with make_saver() as fresh:
        for g in (ours, build_editor(fresh)):
            assert g.get_state(config).values == expected_state
            assert _snapshots(g, config) == _snapshots(ref, ref_config)
            assert _tuples(g.checkpointer, config) == _tuples(ref.checkpointer, ref_config)
    # the main branch is intact too: the newest checkpoint before the fork
    main = [s for s in ours.get_state_history(config) if s.values.get("cmd") == "remove h-8"]
    ref_main = [s for s in ref.get_state_history(ref_config) if s.values.get("cmd") == "remove h-8"]
    assert [s.values for s in main] == [s.values for s in ref_main]
    assert [m.id for m in main[0].values["messages"]] == ["fresh", "a4", "h-9"]
    assert main[0].values["items"] == [1, "two"]
    raw.assert_no_orphans(thread_of(config))


# --------------------------------------------------------------------------
# 5. Identity reuse: elements already stored are not serialized again
# --------------------------------------------------------------------------


class CountingSerde(JsonPlusSerializer):
    """JsonPlusSerializer that counts what it serializes."""

    def __init__(self) -> None:
        super().__init__()
        self.dumped: list[Any] = []

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        self.dumped.append(obj)
        return super().dumps_typed(obj)


@pytest.mark.parametrize("retry", ["same process", "cache cleared"])
def test_a_put_made_twice_keeps_later_lists_readable(
    saver: Any, make_saver: Any, raw: Raw, retry: str
) -> None:
    """A checkpoint put twice (a caller's retry, or the saver's own once the
    connection died after the server committed: it clears its cache first),
    then the thread goes on. Every later checkpoint reads back as put, through
    get_tuple and list, also by a saver with a cold cache; after a plain retry
    every delta still names the root its chain really has."""
    thread = f"st-twice-{uuid.uuid4().hex[:8]}"
    msgs = [HumanMessage(f"message {i}", id=f"m{i}") for i in range(7)]
    config: RunnableConfig = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    version = None
    expected = []
    for n in range(1, 8):
        cp = empty_checkpoint()
        version = saver.get_next_version(version, None)
        cp["channel_values"] = {"messages": msgs[:n]}
        cp["channel_versions"] = {"messages": version}
        args = (cp, {"source": "loop", "step": n}, {"messages": version})
        parent = config
        config = saver.put(parent, *args)
        if n == 2:
            if retry == "cache cleared":
                saver.ctx.cache.clear()  # what the saver's retry does before the put again
            assert saver.put(parent, *args) == config  # the same checkpoint once more
        expected.append((config, msgs[:n]))
    if retry == "same process":
        roots = raw.q(f"SELECT DISTINCT root_version FROM {raw.n.values} WHERE thread_id = __T__", t=thread)
        assert len(roots) == 1, roots
    with make_saver() as cold:
        for s in (saver, cold):
            for cfg, value in expected:
                assert s.get_tuple(cfg).checkpoint["channel_values"]["messages"] == value
            whole = {"configurable": {"thread_id": thread}}
            listed = [t.checkpoint["channel_values"]["messages"] for t in s.list(whole)]
            assert listed == [value for _, value in reversed(expected)]
            newest = next(iter(s.list(None, limit=1)))  # across threads: this one's is newest
            assert newest.checkpoint["channel_values"]["messages"] == msgs


def test_a_message_in_many_rows_is_serialized_once(make_saver: Any, saver_target: Any) -> None:
    """The history in a subgraph's namespace, as its input, as a write and in a dict:
    each message with an id is serialized once, the first time a row holds it. One
    without an id is serialized each time (add_messages may give it one in place)."""
    serde = CountingSerde()
    with make_saver(serde=serde) as saver:
        history = [HumanMessage(f"message {i}", id=f"m{i}") for i in range(80)]
        fresh = AIMessage("no id yet")
        p = Putter(saver, f"st-once-{uuid.uuid4().hex[:8]}")
        config = p.put(messages=history)
        assert len(serde.dumped) == 80
        serde.dumped.clear()
        sub = Putter(saver, p.config["configurable"]["thread_id"])
        sub.config = {"configurable": {"thread_id": sub.config["configurable"]["thread_id"], "checkpoint_ns": "sub:1"}}
        sub.put(__start__={"messages": [*history, fresh]}, messages=[*history, fresh])
        saver.put_writes(config, [("messages", [*history, fresh]), ("start", {"messages": history})], "t")
        assert [m for m in serde.dumped if isinstance(m, BaseMessage)] == [fresh] * 3
        tup = saver.get_tuple(sub.config)
        assert tup.checkpoint["channel_values"]["messages"] == [*history, fresh]


def test_a_message_given_new_content_since_another_thread_stored_it_is_stored_as_it_is(
    saver: Any, make_saver: Any
) -> None:
    """The codec remembers each message object it serialized, for the whole saver. An
    app that keeps one prompt message and gives it new content between runs (the
    date in it, say) starts a second thread with it: that thread never held the old
    content, and must not store it (as InMemorySaver does not), in its list or in
    its writes."""
    system = SystemMessage("Today is Monday", id="system-prompt")
    first = Putter(saver, f"st-memo-a-{uuid.uuid4().hex[:8]}")
    first.put(messages=[system, HumanMessage("hi", id="h1")])
    system.content = "Today is Tuesday"
    second = Putter(saver, f"st-memo-b-{uuid.uuid4().hex[:8]}")
    config = second.put(messages=[system, HumanMessage("hi", id="h2")])
    system.name = "calendar"
    saver.put_writes(config, [("prompt", system)], "task-p")
    with make_saver() as fresh:
        tup = fresh.get_tuple(config)
        assert [m.content for m in tup.checkpoint["channel_values"]["messages"]] == ["Today is Tuesday", "hi"]
        ((_, _, written),) = tup.pending_writes
        assert (written.content, written.name) == ("Today is Tuesday", "calendar")
        assert fresh.get_tuple(first.config).checkpoint["channel_values"]["messages"][0].content == (
            "Today is Monday"
        )


def test_a_message_changed_in_place_is_stored_as_the_graph_holds_it(saver: Any, make_saver: Any) -> None:
    """A node edits a message it was given in place (a dict of it: additional_kwargs;
    an extra field) and writes it again to a channel of its own. The codec remembers
    each message object it serialized; the checkpoint must still store the message as
    the graph holds it (as InMemorySaver does, and as this saver did before it
    remembered messages), not as it was first serialized."""

    class State(TypedDict):
        messages: Annotated[list[AnyMessage], add_messages]
        last: AnyMessage

    def first(state: State) -> dict[str, Any]:
        m = AIMessage("hi", id="m-1", additional_kwargs={"a": 1}, note="draft")
        return {"last": m, "messages": [m]}

    def second(state: State) -> dict[str, Any]:
        m = state["last"]
        m.additional_kwargs["b"] = 2  # in place: the field holds the same dict
        m.note = "final"  # an extra field, outside __dict__
        return {"last": m}

    g = StateGraph(State)
    g.add_node("first", first)
    g.add_node("second", second)
    g.add_edge(START, "first")
    g.add_edge("first", "second")
    g.add_edge("second", END)
    config = new_config("in-place")
    out = g.compile(checkpointer=saver).invoke({"messages": []}, config, durability="sync")
    assert out["last"].additional_kwargs == {"a": 1, "b": 2}
    with make_saver() as fresh:
        last = fresh.get_tuple(config).checkpoint["channel_values"]["last"]
    assert last.additional_kwargs == {"a": 1, "b": 2}
    assert last.note == "final"


def test_appending_to_a_list_serializes_only_the_new_element(
    make_saver: Any, saver_target: Any
) -> None:
    """A 100-element list put again with one more element: exactly one dumps_typed call.

    Holds for every put of a long append-only run (delta rows and the
    periodic full rows alike), and after a restart once the saver has read
    the list back.
    """
    serde = CountingSerde()
    thread = f"st-ident-{uuid.uuid4().hex[:8]}"
    with make_saver(serde=serde) as saver, raw_for(saver_target, saver) as raw:
        p = Putter(saver, thread)
        base = [HumanMessage(f"message {i} " + "x" * (i % 50), id=f"m{i}") for i in range(100)]
        p.put(messages=base)
        assert len(serde.dumped) == 100
        serde.dumped.clear()
        new = AIMessage("the 101st", id="m100")
        p.put(messages=base + [new])
        assert serde.dumped == [new]
        row = [v for v in raw.values(thread) if v[1] == "messages" and v[2] == p.versions["messages"]]
        assert len(row) == 1 and row[0][3] == KIND_DELTA and len(row[0][5]) == HASH

        msgs = base + [new]
        for i in range(40):  # crosses the chain limit: a full row is written on the way
            serde.dumped.clear()
            nxt = AIMessage(f"more {i}", id=f"more{i}")
            msgs = msgs + [nxt]
            p.put(messages=msgs)
            assert serde.dumped == [nxt], i
        kinds = Counter(v[3] for v in raw.values(thread) if v[1] == "messages")
        assert kinds[KIND_LIST] >= 2, kinds
        assert len(raw.objects(thread)) == 141

        # equal copies (not the same objects) are re-serialized but not stored again
        serde.dumped.clear()
        copies = [m.model_copy() for m in msgs] + [AIMessage("copy run", id="cp")]
        p.put(messages=copies)
        assert len(raw.objects(thread)) == 142

    # a new process: reading the thread lets the next put reuse what it read
    serde2 = CountingSerde()
    with make_saver(serde=serde2) as saver2:
        tup = saver2.get_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": ""}})
        assert tup is not None and tup.checkpoint["channel_values"]["messages"] == copies
        loaded = tup.checkpoint["channel_values"]["messages"]
        p2 = Putter(saver2, thread)
        p2.config = tup.config
        p2.versions = dict(tup.checkpoint["channel_versions"])
        p2.values = dict(tup.checkpoint["channel_values"])
        serde2.dumped.clear()
        last = AIMessage("after restart", id="restart")
        p2.put(messages=loaded + [last])
        assert serde2.dumped == [last]
        again = saver2.get_tuple(p2.config)
        assert again.checkpoint["channel_values"]["messages"] == copies + [last]


ZD1_SHA256 = "8c942c1abc407d803743168de23408cc541a05c3f01263fff1f27d760bd7254c"


def test_small_messages_are_stored_compressed_against_the_dictionary(
    saver: Any, make_saver: Any, raw: Raw
) -> None:
    """Messages of a few hundred bytes are stored at under 0.6x their serialized size
    (plain zlib left them at ~0.8x), and read back equal, also by a cold saver.
    The dictionary is frozen: decoding stored objects depends on its exact bytes."""
    from checkpoint_pg.core.codec import inflate
    from checkpoint_pg.core.zdict import DICTIONARIES

    assert hashlib.sha256(DICTIONARIES["zd1"]).hexdigest() == ZD1_SHA256
    thread = f"st-zd-{uuid.uuid4().hex[:8]}"
    msgs = [
        HumanMessage("Will it rain in Oslo tomorrow afternoon? I have to cycle to work.", id="h1"),
        AIMessage("", id="a1", tool_calls=[{"name": "weather", "args": {"city": "Oslo"}, "id": "call_1"}]),
        ToolMessage("Oslo tomorrow: 12C, light rain from 14:00.", tool_call_id="call_1", name="weather", id="t1"),
        AIMessage("Light rain from 14:00: take a rain jacket for the ride home.", id="a2"),
    ]
    p = Putter(saver, thread)
    cfg = p.put(messages=msgs)
    stored = raw.objects(thread)
    assert len(stored) == len(msgs)
    for typ, data in stored.values():
        assert typ.startswith("zd1:"), typ
        _, plain = inflate(typ, data)
        assert len(data) < 0.6 * len(plain), (typ, len(data), len(plain))
    assert saver.get_tuple(cfg).checkpoint["channel_values"]["messages"] == msgs
    with make_saver() as cold:
        assert cold.get_tuple(cfg).checkpoint["channel_values"]["messages"] == msgs


# --------------------------------------------------------------------------
# 6. EncryptedSerializer
# --------------------------------------------------------------------------


PLAINTEXT = ["21C and sunny", "What is the weather", "Here is what I found", "Checking Oslo", "12:00"]


def _dict_values() -> list[dict[str, Any]]:
    """Dicts holding lists (a subgraph's input, say), of every shape: stored key by key
    from 8 elements on in lists of messages or other objects, whole below that; lists
    of numbers, flags or short strings stay one object each."""
    msgs = [HumanMessage(f"question {i}", id=f"dq{i}") for i in range(9)]
    things = [("t", 1), ("t", 2), [1], {"x": [2]}, "y" * 70, b"\x00" * 64, {"z": None}, [[]]]
    return [
        {"messages": msgs[:3], "other": "small: one object"},
        {"messages": msgs, "count": 9},
        {"z": None, "messages": msgs, "a": [], "empty": {}, "nested": {"k": [1, 2]}},
        {"b": list(range(5)), "a": things, "c": [None, "x", 1.5, True, b"\x00"]},
        {"messages": msgs[:8]},
        {"vector": [0.25] * 1536, "id": 3, "words": ["short"] * 20},
    ]


def test_dicts_holding_lists_round_trip_key_by_key(saver: Any, make_saver: Any, raw: Raw) -> None:
    """A dict whose lists hold 8 elements or more is stored as its shape and its values,
    lists element by element: its messages are the objects the messages list holds, and
    what comes back (as a channel value and as a write) equals what the serializer gives
    back for the whole dict (a tuple comes back a list, as it does whole), key order
    included, on the writing saver and on a new one."""
    thread = f"st-dict-{uuid.uuid4().hex[:8]}"
    p = Putter(saver, thread)
    serde = JsonPlusSerializer()
    values = [serde.loads_typed(serde.dumps_typed(v)) for v in _dict_values()]
    assert values == _dict_values()[:3] + values[3:]
    msgs = values[1]["messages"]
    p.put(messages=list(msgs))
    for value in values:
        p.put(start=value)
    writes = [("start", v) for v in values]
    saver.put_writes(p.config, writes, "task-d")
    with make_saver() as fresh:
        for reader in (saver, fresh):
            for cfg, expected in zip(p.put_configs, p.expected):
                got = reader.get_tuple(cfg).checkpoint["channel_values"]
                assert got == expected
                assert [list(v) for v in got.values() if type(v) is dict] == [
                    list(v) for v in expected.values() if type(v) is dict
                ]
            pending = reader.get_tuple(p.config).pending_writes
            assert [(c, v) for _, c, v in pending] == writes
            assert [list(v) for _, _, v in pending] == [list(v) for v in values]
    kinds = sorted(v[3] for v in raw.values(thread) if v[1] == "start")
    assert kinds == [KIND_SCALAR] * 2 + [KIND_DICT] * 4, kinds
    w_kinds = sorted(w[5] for w in raw.writes(thread))
    assert w_kinds == [KIND_SCALAR] * 2 + [KIND_DICT] * 4, w_kinds
    decoded = raw.decoded_objects(thread)
    for m in msgs:  # one object per message, whatever holds it
        assert sum(1 for v in decoded.values() if isinstance(v, BaseMessage) and v.id == m.id) == 1
    raw.assert_no_orphans(thread)


def test_a_subgraph_taking_the_messages_stores_them_once(saver: Any, raw: Raw) -> None:
    """The scripted agent as a subgraph node: each call checkpoints its input, the whole
    history, under a namespace of its own, and returns it whole. Every message is one
    object, and the bytes of a 32-turn thread are at most 2.2x those at 16 turns: 2.0x.
    (With the input stored as one object they grew 3.0x; with every row holding all of
    the history's hashes, 2.35x.)"""
    build_graph, turn_input = _agent()
    graph = _one_node("agent", build_graph(None), saver)
    config = new_config("sub-msgs")
    t = thread_of(config)
    n = 16
    bytes_n, bytes_2n, state = _bytes_at_n_and_2n(graph, config, turn_input, raw, n)
    assert bytes_2n / bytes_n <= 2.2, (bytes_n, bytes_2n)
    decoded = raw.decoded_objects(t)
    for m in state.values["messages"]:
        assert sum(1 for v in decoded.values() if isinstance(v, BaseMessage) and v.id == m.id) == 1
    # each call's input checkpoint reads back whole: the history the call was given
    history = state.values["messages"]
    calls = {v[0]: v[3] for v in raw.values(t) if v[0] and v[1] == "__start__"}
    assert len(calls) == 2 * n and sorted(calls.values()).count(KIND_DICT) >= n, calls
    for ns in calls:
        first = list(saver.list({"configurable": {"thread_id": t, "checkpoint_ns": ns}}))[-1]
        given = first.checkpoint["channel_values"]["__start__"]["messages"]
        assert given and given == history[: len(given)]
    raw.assert_no_orphans(t)



def test_stats_count_the_elements_a_chunk_names(saver: Any, raw: Raw) -> None:
    """Inspector.stats: a row naming a chunk of a long list holds a reference to each of
    its 64 elements, and chunks are not stored values. Counted from the tables: every
    row's hashes put back together, every object that is not a chunk. (Counting each
    chunk as one reference and one object read x5.4 where x15.7 is shared.)"""
    from checkpoint_pg.inspect import Inspector

    build_graph, turn_input = _agent()
    graph = _one_node("agent", build_graph(None), saver)
    config = new_config("stats-chunks")
    t = thread_of(config)
    for turn in range(18):  # 72 messages: a chunk, and rows naming it
        graph.invoke(turn_input(turn), config)
    assert raw.chunks(t)
    rows = [r[-1] for r in raw.values(t)] + [r[-1] for r in raw.writes(t)]
    (st,) = Inspector(saver).stats([t]).threads
    assert st.references == sum(len(raw.expand(t, refs)) for refs in rows)
    assert st.objects == len(raw.objects(t))
    assert st.bytes == sum(
        len(d) for _, d in raw.all_objects(t).values()
    ) + st.checkpoint_bytes + sum(len(r) for r in rows)
    assert st.references / st.objects > 10, (st.references, st.objects)


class _NotMsgpack:
    """Pickled by JsonPlusSerializer(pickle_fallback=True): msgpack cannot take it."""

    def __init__(self, x: int) -> None:
        self.x = x

    def __eq__(self, other: object) -> bool:
        return type(other) is _NotMsgpack and other.x == self.x


def _typed(v: Any) -> Any:
    """A value with the types of everything in it, to compare types as well as values."""
    if isinstance(v, dict):
        return (type(v), {k: _typed(x) for k, x in v.items()})
    if isinstance(v, (list, tuple)):
        return (type(v), [_typed(x) for x in v])
    return (type(v), v)


@pytest.mark.parametrize(
    "pickle_fallback, value",
    [
        # the serializer pickles the whole dict: its tuple stays a tuple
        (True, {"items": list(range(8)), "pair": ("a", 1), "odd": _NotMsgpack(1)}),
        (True, {"items": [("t", i) for i in range(7)] + [_NotMsgpack(2)]}),
        # a bytearray inside a dict is msgpack bin, read back as bytes
        (False, {"items": list(range(8)), "blob": bytearray(b"z")}),
        (False, {"items": [bytearray(b"x")] * 8}),
    ],
)
def test_a_dict_comes_back_as_the_serializer_gives_it_whole(
    make_saver: Any, pickle_fallback: bool, value: dict[str, Any]
) -> None:
    """A dict is stored key by key only when its parts read back as they do inside
    the whole dict (msgpack, None, bytes); otherwise it is one object, and every read
    (channel value and write) returns what InMemorySaver returns with the same serde."""
    serde = JsonPlusSerializer(pickle_fallback=pickle_fallback)
    expected = serde.loads_typed(serde.dumps_typed(value))
    memory = InMemorySaver(serde=serde)
    with make_saver(serde=serde) as saver:
        for s in (memory, saver):
            p = Putter(s, f"st-whole-{uuid.uuid4().hex[:8]}")
            p.put(d=value)
            s.put_writes(p.config, [("d", value)], "task-w")
            tup = s.get_tuple(p.config)
            assert _typed(tup.checkpoint["channel_values"]["d"]) == _typed(expected)
            assert _typed(tup.pending_writes[0][2]) == _typed(expected)
        with make_saver(serde=serde) as fresh:
            tup = fresh.get_tuple(p.config)
            assert _typed(tup.checkpoint["channel_values"]["d"]) == _typed(expected)
            assert _typed(tup.pending_writes[0][2]) == _typed(expected)



def test_a_list_comes_back_as_the_serializer_gives_it_whole(make_saver: Any) -> None:
    """A list is stored element by element; each element reads back as it does inside
    the whole list, which InMemorySaver reads: a bytearray as bytes (alone, the
    serializer gives it back a bytearray), in a list and in a dict's list alike."""
    serde = JsonPlusSerializer()
    value = [bytearray(b"abc"), b"d", "e", 1, [bytearray(b"f")]]
    in_dict = {"items": [bytearray(b"%d" % i) * 64 for i in range(8)]}
    memory = InMemorySaver(serde=serde)
    with make_saver(serde=serde) as saver:
        configs = []
        for s in (memory, saver):
            p = Putter(s, f"st-list-{uuid.uuid4().hex[:8]}")
            p.put(items=value, d=in_dict)
            s.put_writes(p.config, [("items", value)], "task-w")
            configs.append(p.config)
        expected = memory.get_tuple(configs[0])
        assert _typed(expected.checkpoint["channel_values"]["items"][0]) == _typed(b"abc")
        for reader in (saver, make_saver(serde=serde)):
            with contextlib.nullcontext(reader) if reader is saver else reader as r:
                tup = r.get_tuple(configs[1])
                got, want = tup.checkpoint["channel_values"], expected.checkpoint["channel_values"]
                assert _typed(got["items"]) == _typed(want["items"])
                assert _typed(got["d"]) == _typed(want["d"])
                assert _typed(tup.pending_writes[0][2]) == _typed(expected.pending_writes[0][2])



def test_an_append_equal_by_hash_only_reads_back_as_stored(make_saver: Any) -> None:
    """A list appended to whose stored elements lead it by hash but are other objects
    (a bytearray where bytes were stored): the process that put it reads back what a
    fresh process reads, bytes, not the objects it was given."""
    with make_saver() as saver:
        p = Putter(saver, f"st-prefix-{uuid.uuid4().hex[:8]}")
        p.put(items=[b"bb"])
        p.put(items=[bytearray(b"bb"), "z"])
        warm = saver.get_tuple(p.config).checkpoint["channel_values"]["items"]
    with make_saver() as fresh:
        cold = fresh.get_tuple(p.config).checkpoint["channel_values"]["items"]
    assert [type(x) for x in cold] == [bytes, str]
    assert [type(x) for x in warm] == [type(x) for x in cold]


@pytest.mark.parametrize(
    "before, after",
    [
        (uuid.UUID(int=7), str(uuid.UUID(int=7))),
        (datetime.datetime(2024, 1, 1), datetime.datetime(2024, 1, 1).isoformat()),
    ],
    ids=["uuid", "datetime"],
)
def test_a_value_replaced_in_place_by_its_plain_form_is_stored_anew(
    make_saver: Any, before: Any, after: str
) -> None:
    """A message whose additional_kwargs value is replaced in place by its plain form
    (a UUID by its string): msgpack alone writes both alike, so the memo's fingerprint
    keeps their types, and the next put stores what the message now holds."""
    m = AIMessage("hi", id="m-plain", additional_kwargs={"x": before})
    with make_saver() as saver:
        Putter(saver, f"st-plain-a-{uuid.uuid4().hex[:8]}").put(m=m)
        m.additional_kwargs["x"] = after
        p = Putter(saver, f"st-plain-b-{uuid.uuid4().hex[:8]}")
        p.put(m=m)
    with make_saver() as fresh:
        got = fresh.get_tuple(p.config).checkpoint["channel_values"]["m"]
    assert got.additional_kwargs == {"x": after} and type(got.additional_kwargs["x"]) is str


def test_a_bytearray_write_reads_back_in_the_process_that_wrote_it(saver: Any) -> None:
    """JsonPlusSerializer hands back a bytearray value itself as its bytes: the object
    kept for the next get_tuple (ListCache.remember_writes) must be the stored bytes,
    not the caller's bytearray (unhashable, and changed when the caller changes it)."""
    thread = f"st-ba-{uuid.uuid4().hex[:8]}"
    p = Putter(saver, thread)
    p.put(n=1)
    blob = bytearray(b"abc")
    writes = [
        ("a", blob),
        ("b", [bytearray(b"x"), bytearray(b"y")]),
        ("c", {"items": list(range(8)), "blob": bytearray(b"z")}),
    ]
    saver.put_writes(p.config, writes, "task-ba")
    blob[0:1] = b"X"  # the caller's object, changed after it was saved
    got = {c: v for _, c, v in saver.get_tuple(p.config).pending_writes}
    assert got == {"a": b"abc", "b": [b"x", b"y"], "c": {"items": list(range(8)), "blob": b"z"}}


def test_encrypted_storage_has_no_plaintext_and_is_deduplicated(
    make_saver: Any, saver_target: Any
) -> None:
    """With EncryptedSerializer no stored column holds the plaintext, and each message is stored once.

    Object hashes are keyed: none equals the plain BLAKE2b of the serialized value.
    """
    from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

    serde = EncryptedSerializer.from_pycryptodome_aes(key=AES_KEY)
    with make_saver(serde=serde, hash_key=HASH_KEY) as saver, raw_for(saver_target, saver) as raw:
        graph = build_tool_agent(saver)
        config = new_config("enc")
        for _ in graph.stream(weather_question("Oslo"), config, stream_mode="messages"):
            pass
        for i, city in enumerate(CITIES[3:6]):
            graph.invoke({"messages": [HumanMessage(f"What is the weather in {city}?", id=f"h{i}")]},
                         config)
        state = graph.get_state(config)
        assert any("21C and sunny" in str(m.content) for m in state.values["messages"])
        t = thread_of(config)

        everything = []
        for table in ("threads", "checkpoints", "values", "writes", "objects"):
            rows = raw.q(f"SELECT * FROM {getattr(raw.n, table)} WHERE thread_id = __T__", t=t)
            for row in rows:
                for v in row:
                    everything.append(v if isinstance(v, bytes) else str(v).encode())
        blob = b"\n".join(everything)
        for text in PLAINTEXT:
            assert text.encode() not in blob, text
        objs = raw.objects(t)
        assert objs and all(typ.endswith("+aes") and not typ.startswith("z") for typ, _ in objs.values())

        # deduplicated: 2 ToolMessages per turn, each one object, shared with the lists
        assert_tool_messages_stored_once(raw, t, expected=8)
        decoded = raw.decoded_objects(t)
        ids = [m.id for m in state.values["messages"]]
        for mid in ids:
            assert sum(1 for v in decoded.values() if isinstance(v, BaseMessage) and v.id == mid) == 1

        # keyed hashes: not the plain hash of the serialized plaintext
        plain = JsonPlusSerializer()
        for h, value in decoded.items():
            typ, data = plain.dumps_typed(value)
            assert hashlib.blake2b(typ.encode() + b"\0" + data, digest_size=16).digest() != h


class _Level(enum.IntEnum):
    LOW = 1


# kept in the checkpoint's row (revision 0014) ...
IN_ROW = [None, True, False, 0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 1.5, -0.0, 1e300, 5e-324,
          "", "a" * 64, "ü" * 64, "日本語", 'a "quote", a \\ backslash and a\nnewline']
# ... and stored as objects: what JSON would not give back as the serializer does
AS_OBJECTS = [float("nan"), float("inf"), "a" * 65, "nul\x00", _Level.LOW, b"bytes", {"k": 1}]


def _same(a: Any, b: Any) -> bool:
    """Equal, of the same type, and for floats the same sign and NaN-ness."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return a == b


def test_small_scalars_live_in_the_checkpoint_row_and_read_back_exactly(
    saver: Any, make_saver: Any, raw: Raw
) -> None:
    """Small scalars (str up to 64 characters, ints msgpack holds, finite floats, bools,
    None) are kept in the checkpoint's own row, without a value row or an object; every
    other value keeps its rows. All read back with their exact types, in the writing
    process and in a fresh one, and so does a checkpoint carrying them over unchanged."""
    from langgraph.checkpoint.base import empty_checkpoint  # noqa: PLC0415

    values = {f"c{i:02d}": v for i, v in enumerate(IN_ROW + AS_OBJECTS)}
    config = new_config("scalars")
    t = thread_of(config)
    versions = {ch: saver.get_next_version(None, None) for ch in values}
    cp = empty_checkpoint()
    cp["channel_values"], cp["channel_versions"] = dict(values), dict(versions)
    first = saver.put(config, cp, {"source": "input", "step": -1}, versions)
    stored = {ch for (ch,) in raw.q(f"SELECT channel FROM {raw.n.values} WHERE thread_id = __T__", t=t)}
    assert stored == {f"c{i:02d}" for i in range(len(IN_ROW), len(values))}
    (doc,) = raw.q(f"SELECT checkpoint FROM {raw.n.checkpoints} WHERE thread_id = __T__", t=t)[0]
    assert sorted(json.loads(doc)["channel_values"]) == [f"c{i:02d}" for i in range(len(IN_ROW))]
    # the next checkpoint gives one channel a new value and carries the others over
    cp2 = empty_checkpoint()
    changed = {**values, "c00": "changed"}
    versions2 = {**versions, "c00": saver.get_next_version(versions["c00"], None)}
    cp2["channel_values"], cp2["channel_versions"] = dict(changed), dict(versions2)
    saver.put(first, cp2, {"source": "loop", "step": 0}, {"c00": versions2["c00"]})
    with make_saver() as fresh:
        for reader in (saver, fresh):
            for cfg, want in ((first, values), (config, changed)):
                got = reader.get_tuple(cfg).checkpoint["channel_values"]
                assert sorted(got) == sorted(want)
                assert [ch for ch in want if not _same(got[ch], want[ch])] == [], [(got[ch], want[ch]) for ch in want if not _same(got[ch], want[ch])]
            assert [t.checkpoint["channel_values"]["c00"] for t in reader.list(config)] == ["changed", None]


@pytest.mark.parametrize("option", ["hash_key", "serde"])
def test_a_saver_that_does_not_inline_continues_a_thread_with_row_scalars(
    saver: Any, make_saver: Any, option: str
) -> None:
    """A thread the default saver wrote (its scalars in the checkpoint's row, no value
    rows) continued by a saver that does not inline them (a hash_key, a serde of its
    own): the next checkpoint carries them over and is stored, not refused as BaseGone
    for want of value rows nobody wrote."""
    from langgraph.checkpoint.base import empty_checkpoint  # noqa: PLC0415
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer  # noqa: PLC0415

    class OwnSerde(JsonPlusSerializer):
        pass

    config = new_config("inline-then-not")
    versions = {"status": saver.get_next_version(None, None), "n": saver.get_next_version(None, None)}
    cp = empty_checkpoint()
    cp["channel_values"], cp["channel_versions"] = {"status": "ok", "n": 1}, dict(versions)
    first = saver.put(config, cp, {"source": "input", "step": -1}, versions)
    opts = {"hash_key": HASH_KEY} if option == "hash_key" else {"serde": OwnSerde()}
    with make_saver(**opts) as other:
        assert other.get_tuple(first).checkpoint["channel_values"] == {"status": "ok", "n": 1}
        versions2 = {**versions, "n": other.get_next_version(versions["n"], None)}
        cp2 = empty_checkpoint()
        cp2["channel_values"], cp2["channel_versions"] = {"status": "ok", "n": 2}, dict(versions2)
        nxt = other.put(first, cp2, {"source": "loop", "step": 0}, {"n": versions2["n"]})
        assert other.get_tuple(nxt).checkpoint["channel_values"] == {"status": "ok", "n": 2}
    if option == "serde":  # objects hashed with a key read only with it (by design)
        assert saver.get_tuple(nxt).checkpoint["channel_values"] == {"status": "ok", "n": 2}


def test_an_encrypted_saver_keeps_no_value_in_the_checkpoint_row(
    make_saver: Any, saver_target: Any
) -> None:
    """With EncryptedSerializer small scalars are objects like any value (encrypted),
    never in the checkpoint's row in the clear."""
    from langgraph.checkpoint.base import empty_checkpoint  # noqa: PLC0415
    from langgraph.checkpoint.serde.encrypted import EncryptedSerializer  # noqa: PLC0415

    serde = EncryptedSerializer.from_pycryptodome_aes(key=AES_KEY)
    with make_saver(serde=serde, hash_key=HASH_KEY) as saver, raw_for(saver_target, saver) as raw:
        config = new_config("enc-scalars")
        versions = {"status": saver.get_next_version(None, None), "n": saver.get_next_version(None, None)}
        cp = empty_checkpoint()
        cp["channel_values"], cp["channel_versions"] = {"status": "secret-status", "n": 7}, dict(versions)
        saver.put(config, cp, {"source": "input", "step": -1}, versions)
        t = thread_of(config)
        (doc,) = raw.q(f"SELECT checkpoint FROM {raw.n.checkpoints} WHERE thread_id = __T__", t=t)[0]
        assert "channel_values" not in json.loads(doc) and "secret-status" not in doc
        assert len(raw.q(f"SELECT channel FROM {raw.n.values} WHERE thread_id = __T__", t=t)) == 2
        assert saver.get_tuple(config).checkpoint["channel_values"] == {"status": "secret-status", "n": 7}


# --------------------------------------------------------------------------
# 7. Lifecycle: delete_thread, delete_for_runs, prune, copy_thread
# --------------------------------------------------------------------------


def _two_turns(graph: Any, config: RunnableConfig, cities: Sequence[str] = ("Paris", "Rome")) -> None:
    for i, city in enumerate(cities):
        graph.invoke(
            {"messages": [HumanMessage(f"What is the weather in {city}?", id=f"h-{city}-{i}")]},
            config,
        )


def test_delete_thread_removes_every_row_and_nothing_else(saver: Any, raw: Raw) -> None:
    """delete_thread leaves no row of the thread in any table; another thread is untouched."""
    graph = build_tool_agent(saver)
    a, b = new_config("del-a"), new_config("del-b")
    _two_turns(graph, a)
    _two_turns(graph, b)
    before_b = raw.counts(thread_of(b))
    state_b = graph.get_state(b).values
    assert all(before_b[k] > 0 for k in before_b), before_b
    saver.delete_thread(thread_of(a))
    assert raw.counts(thread_of(a)) == dict.fromkeys(before_b, 0)
    assert raw.counts(thread_of(b)) == before_b
    assert graph.get_state(b).values == state_b
    assert saver.get_tuple(a) is None
    raw.assert_no_orphans(thread_of(b))


def test_a_thread_another_process_deleted_starts_again_here(make_saver: Any, backend: str) -> None:
    """Another process deletes a thread whose lists this process has cached; the same
    conversation started again here is stored, as InMemorySaver and a fresh process do.

    The puts are planned as deltas of cached list versions that are gone: the
    database refuses them and the saver plans them again from what is stored.
    """

    class State(TypedDict):
        messages: Annotated[list[AnyMessage], add_messages]

    def reply(state: State) -> dict[str, Any]:
        n = len(state["messages"])
        return {"messages": [AIMessage(f"reply to {state['messages'][-1].content}", id=f"ai-{n}")]}

    builder = StateGraph(State)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    config = new_config("deleted-elsewhere")
    ask = {"messages": [HumanMessage("hi", id="h-1")]}
    with make_saver() as here, make_saver() as elsewhere:
        graph = builder.compile(checkpointer=here)
        first = graph.invoke(ask, config)["messages"]
        graph.invoke({"messages": [HumanMessage("more", id="h-2")]}, config)
        elsewhere.delete_thread(thread_of(config))
        assert graph.invoke(ask, config)["messages"] == first
        # a put straight after the delete, extending a list cached here
        cp = empty_checkpoint()
        cp["channel_values"] = {"messages": [*first, HumanMessage("again", id="h-3")]}
        cp["channel_versions"] = {"messages": here.get_next_version(None)}
        other = new_config("deleted-elsewhere-2")
        stored = here.put(other, {**cp, "channel_values": {"messages": first}}, {"source": "input", "step": -1}, cp["channel_versions"])
        elsewhere.delete_thread(thread_of(other))
        cp["channel_versions"] = {"messages": here.get_next_version(cp["channel_versions"]["messages"])}
        cp["id"] = str(uuid.uuid4())
        here.put(other, cp, {"source": "input", "step": -1}, cp["channel_versions"])
        assert stored["configurable"]["thread_id"] == thread_of(other)
    with make_saver() as fresh:
        assert builder.compile(checkpointer=fresh).get_state(config).values["messages"] == first
        got = fresh.get_tuple(other)
        assert got is not None and got.checkpoint["channel_values"]["messages"][-1].id == "h-3"
        assert len(list(fresh.list(other))) == 1


async def test_async_put_after_another_process_deleted_the_thread(make_async_saver: Any) -> None:
    """The async savers plan a put again too when a cached list version was deleted elsewhere."""
    config = new_config("adeleted-elsewhere")
    first = [HumanMessage("hi", id="h-1"), AIMessage("hello", id="ai-1")]
    async with make_async_saver() as here, make_async_saver() as elsewhere:
        cp = empty_checkpoint()
        cp["channel_values"] = {"messages": first}
        cp["channel_versions"] = {"messages": here.get_next_version(None)}
        await here.aput(config, cp, {"source": "input", "step": -1}, cp["channel_versions"])
        await elsewhere.adelete_thread(thread_of(config))
        assert await here.aget_tuple(config) is None
        cp = {**cp, "id": str(uuid.uuid4())}
        cp["channel_values"] = {"messages": [*first, HumanMessage("again", id="h-2")]}
        cp["channel_versions"] = {"messages": here.get_next_version(cp["channel_versions"]["messages"])}
        await here.aput(config, cp, {"source": "input", "step": -1}, cp["channel_versions"])
    async with make_async_saver() as fresh:
        got = await fresh.aget_tuple(config)
        assert got is not None
        assert [m.id for m in got.checkpoint["channel_values"]["messages"]] == ["h-1", "ai-1", "h-2"]


def test_delete_for_runs_leaves_no_orphans_and_keeps_the_rest_readable(saver: Any, raw: Raw) -> None:
    """Deleting one run's checkpoints removes their writes, unreferenced values and objects only."""
    graph = build_tool_agent(saver)
    config = new_config("runs")
    t = thread_of(config)
    run1, run2 = f"run-{secrets.token_hex(4)}", f"run-{secrets.token_hex(4)}"
    graph.invoke(weather_question("Paris"), {**config, "metadata": {"run_id": run1}})
    graph.invoke(
        {"messages": [HumanMessage("What is the weather in Rome?", id="h2")]},
        {**config, "metadata": {"run_id": run2}},
    )
    latest_before = graph.get_state(config)
    history = list(saver.list({"configurable": {"thread_id": t}}))
    by_run = Counter(h.metadata.get("run_id") for h in history)
    assert by_run[run1] > 0 and by_run[run2] > 0, by_run
    raw.assert_no_orphans(t)

    saver.delete_for_runs([run1])
    left = list(saver.list({"configurable": {"thread_id": t}}))
    assert {h.metadata.get("run_id") for h in left} == {run2}
    assert len(left) == by_run[run2]
    raw.assert_no_orphans(t)
    counts = raw.counts(t)
    assert counts["checkpoints"] == by_run[run2]
    assert counts["checkpoints"] < len(history)
    # the latest checkpoint still reads back the whole conversation, including run 1's messages
    latest_after = graph.get_state(config)
    assert latest_after.values == latest_before.values
    assert len(latest_after.values["messages"]) == 10
    for tup in left:
        assert saver.get_tuple(tup.config) is not None

    saver.delete_for_runs([run2])
    assert raw.counts(t)["checkpoints"] == 0
    assert raw.counts(t)["objects"] == 0
    assert raw.counts(t)["values"] == 0
    assert raw.counts(t)["writes"] == 0


def test_delete_for_runs_keeps_delta_channel_state_of_the_other_runs(make_saver: Any, saver_target: Any) -> None:
    """Run B's checkpoints replay their DeltaChannel from run A's writes: deleting run A
    keeps the ancestors that replay needs, as prune(keep_latest) does."""
    config = new_config("runs-delta")
    t = thread_of(config)
    with make_saver() as saver:
        graph = build_delta_graph(saver)
        graph.invoke({"items": [], "n": 0, "target": 2}, {**config, "metadata": {"run_id": "A"}})
        graph.invoke({"target": 5}, {**config, "metadata": {"run_id": "B"}})
        before = {s.config["configurable"]["checkpoint_id"]: s.values for s in graph.get_state_history(config)}
        run_b = {s.config["configurable"]["checkpoint_id"] for s in graph.get_state_history(config)
                 if s.metadata.get("run_id") == "B"}
        saver.delete_for_runs(["A"])
    with make_saver() as saver:  # a fresh saver: nothing cached
        graph = build_delta_graph(saver)
        after = {s.config["configurable"]["checkpoint_id"]: s.values for s in graph.get_state_history(config)}
        assert run_b <= set(after)
        for cid in run_b:
            assert after[cid] == before[cid], cid
        with raw_for(saver_target, saver) as raw:
            raw.assert_no_orphans(t)
        # run A's checkpoints that no delta replay needs are gone
        assert len(after) < len(before)


def test_prune_keep_latest_on_messages_thread(saver: Any, raw: Raw) -> None:
    """prune(keep_latest) keeps one checkpoint per namespace, its values, and no orphans."""
    graph = build_tool_agent(saver)
    config = new_config("prune")
    t = thread_of(config)
    _two_turns(graph, config, ("Paris", "Rome", "Oslo"))
    before = graph.get_state(config)
    counts_before = raw.counts(t)
    saver.prune([t], strategy="keep_latest")
    counts_after = raw.counts(t)
    assert counts_after["checkpoints"] == 1
    assert counts_after["objects"] <= counts_before["objects"]
    assert counts_after["values"] < counts_before["values"]
    raw.assert_no_orphans(t)
    after = graph.get_state(config)
    assert after.values == before.values
    assert after.config["configurable"]["checkpoint_id"] == before.config["configurable"]["checkpoint_id"]
    # and the thread goes on
    graph.invoke({"messages": [HumanMessage("What is the weather in Lima?", id="h-lima")]}, config)
    assert len(graph.get_state(config).values["messages"]) == len(before.values["messages"]) + 5
    raw.assert_no_orphans(t)


def test_prune_keeps_the_elements_that_only_chunks_name(saver: Any, make_saver: Any, raw: Raw) -> None:
    """Long lists name chunks of their hashes (core/chunks.py): prune keeps what the
    chunks of the rows it keeps hold, and drops chunks and elements nothing needs."""
    p = Putter(saver, f"st-prune-chunks-{uuid.uuid4().hex[:8]}")
    dropped = [HumanMessage(f"dropped {i}", id=f"d-{i}") for i in range(70)]
    p.put(messages=dropped)  # a full list of its own: one chunk, gone with its checkpoint
    kept = [HumanMessage(f"kept {i}", id=f"k-{i}") for i in range(150)]
    for n in (130, 140, 150):
        config = p.put(messages=kept[:n], start={"messages": kept[:n]})
    saver.put_writes(config, [("messages", [*kept, AIMessage("r", id="r")])], "task-w")
    t = thread_of(config)
    assert len(raw.chunks(t)) == 3
    saver.prune([t], strategy="keep_latest", keep_last=1)
    assert len(raw.chunks(t)) == 2
    assert not any(isinstance(v, HumanMessage) and v.id.startswith("d-") for v in raw.decoded_objects(t).values())
    raw.assert_no_orphans(t)
    with make_saver() as fresh:
        tup = fresh.get_tuple(config)
        assert tup.checkpoint["channel_values"] == {"messages": kept, "start": {"messages": kept}}
        assert tup.pending_writes == [("task-w", "messages", [*kept, AIMessage("r", id="r")])]


def test_prune_drops_writes_of_checkpoints_older_than_what_it_keeps(saver: Any, raw: Raw) -> None:
    """A late put_writes for a checkpoint another process pruned meanwhile leaves writes
    that no stored checkpoint has: the next prune drops them and the objects only they
    used. Writes of a checkpoint newer than the kept ones (async durability writes
    before it puts) stay."""
    from langgraph.checkpoint.base.id import uuid6

    graph = build_tool_agent(saver)
    config = new_config("prune-late")
    t = thread_of(config)
    _two_turns(graph, config, ("Paris", "Rome", "Oslo"))
    old = list(saver.list(config))[-2].config  # an early checkpoint
    saver.prune([t], strategy="keep_latest")
    late = AIMessage("written after the prune " * 200, id="late-msg")
    saver.put_writes(old, [("messages", [late])], "late-task")
    ahead = {"configurable": {**old["configurable"], "checkpoint_id": str(uuid6(clock_seq=-1))}}
    ahead_msg = AIMessage("not put yet " * 200, id="ahead-msg")
    saver.put_writes(ahead, [("messages", [ahead_msg])], "ahead-task")
    assert len(raw.writes(t)) == 2
    saver.prune([t], strategy="keep_latest")
    (kept,) = raw.writes(t)
    assert kept[1] == ahead["configurable"]["checkpoint_id"]
    stored = raw.decoded_objects(t).values()
    assert not any(getattr(o, "id", None) == "late-msg" for o in stored)
    assert any(getattr(o, "id", None) == "ahead-msg" for o in stored)


def test_prune_keep_latest_keeps_delta_channel_state(saver: Any, raw: Raw) -> None:
    """A DeltaChannel thread pruned to its latest checkpoint reads back the same state and continues."""
    graph = build_delta_graph(saver)
    config = new_config("prune-delta")
    t = thread_of(config)
    graph.invoke({"items": [], "n": 0, "target": 5}, config)
    before = graph.get_state(config)
    assert before.values["n"] == 5
    assert len(before.values["items"]) > 5
    n_before = raw.counts(t)
    saver.prune([t], strategy="keep_latest")
    after = graph.get_state(config)
    assert after.values == before.values
    assert raw.counts(t)["checkpoints"] < n_before["checkpoints"]
    raw.assert_no_orphans(t)
    # the same thread read by a reference InMemorySaver run gives the same state
    ref = build_delta_graph(InMemorySaver())
    ref_cfg: RunnableConfig = {"configurable": {"thread_id": "r"}}
    ref.invoke({"items": [], "n": 0, "target": 5}, ref_cfg)
    assert ref.get_state(ref_cfg).values == after.values
    # continuing after the prune matches continuing the reference
    graph.invoke({"target": 7}, config)
    ref.invoke({"target": 7}, ref_cfg)
    assert graph.get_state(config).values == ref.get_state(ref_cfg).values
    raw.assert_no_orphans(t)


class _UnusedDeltaState(TypedDict, total=False):
    log: Annotated[list[str], operator.add]
    n: int
    # declared but never written: LangGraph counts its supersteps and never snapshots it
    notes: Annotated[list[str], DeltaChannel(concat_reducer, snapshot_frequency=3)]


def _build_unused_delta_graph(checkpointer: Any) -> Any:
    def step(state: _UnusedDeltaState) -> _UnusedDeltaState:
        return {"n": state.get("n", 0) + 1, "log": [f"s{state.get('n', 0)}"]}

    builder = StateGraph(_UnusedDeltaState)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_edge("step", END)
    return builder.compile(checkpointer=checkpointer)


def test_prune_keep_latest_is_bounded_with_an_unwritten_delta_channel(saver: Any, raw: Raw) -> None:
    """A DeltaChannel never written on the branch has nothing to replay: keep_latest must
    not keep every ancestor for it (its counters say "no snapshot yet" forever)."""
    graph = _build_unused_delta_graph(saver)
    config = new_config("prune-unused-delta")
    t = thread_of(config)
    ref = _build_unused_delta_graph(InMemorySaver())
    ref_cfg: RunnableConfig = {"configurable": {"thread_id": "r"}}
    for _ in range(6):
        graph.invoke({"log": ["in"]}, config)
        ref.invoke({"log": ["in"]}, ref_cfg)
        saver.prune([t], strategy="keep_latest", keep_last=2)
        assert raw.counts(t)["checkpoints"] <= 2
        raw.assert_no_orphans(t)
    assert graph.get_state(config).values == ref.get_state(ref_cfg).values
    graph.invoke({"notes": ["written at last"]}, config)
    ref.invoke({"notes": ["written at last"]}, ref_cfg)
    saver.prune([t], strategy="keep_latest", keep_last=1)
    assert graph.get_state(config).values == ref.get_state(ref_cfg).values
    raw.assert_no_orphans(t)


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_prune_keep_latest_drops_finished_subgraph_calls(saver: Any, raw: Raw, durability: str) -> None:
    """Each subgraph call checkpoints under a namespace of its own: kept N per
    namespace, every call ever made would stay and a pruned thread grow without
    bound. A call goes with the root checkpoint it started from; an interrupted
    call (its root is the latest) stays and resumes."""
    from langgraph.types import Command

    from checkpoint_pg.inspect import Inspector

    graph = build_subgraph_graph(saver)
    config = new_config("prune-calls")
    t = thread_of(config)
    ref = build_subgraph_graph(InMemorySaver())
    ref_cfg: RunnableConfig = {"configurable": {"thread_id": "r"}}
    for i in range(4):
        for g, c in ((graph, config), (ref, ref_cfg)):
            g.invoke({"topic": f" Topic {i} "}, c, durability=durability)
        saver.prune([t], strategy="keep_latest", keep_last=1)
        raw.assert_no_orphans(t)
        # interrupted inside the child: its call is kept and reads back
        mine, theirs = graph.get_state(config, subgraphs=True), ref.get_state(ref_cfg, subgraphs=True)
        assert mine.values == theirs.values
        assert [tk.state.values for tk in mine.tasks if tk.state] == [
            tk.state.values for tk in theirs.tasks if tk.state
        ]
        for g, c in ((graph, config), (ref, ref_cfg)):
            g.invoke(Command(resume=f"hint {i}"), c, durability=durability)
        assert graph.get_state(config).values == ref.get_state(ref_cfg).values
        # the dry run (CLI prune --dry-run) counts what the prune then deletes
        total, drop = Inspector(saver).keep_last_plan(t, 1)
        assert total == len(raw.checkpoints(t))
        saver.prune([t], strategy="keep_latest", keep_last=1)
        raw.assert_no_orphans(t)
        assert len(raw.checkpoints(t)) == total - drop
        # the finished calls went with their root checkpoints
        assert {ns for ns, _, _ in raw.checkpoints(t)} == {""}
    assert graph.get_state(config).values == ref.get_state(ref_cfg).values


def test_prune_delete_removes_the_thread(saver: Any, raw: Raw) -> None:
    """prune(strategy="delete") removes every row of the thread."""
    graph = build_tool_agent(saver)
    config = new_config("prune-del")
    _two_turns(graph, config)
    saver.prune([thread_of(config)], strategy="delete")
    assert raw.counts(thread_of(config)) == dict.fromkeys(
        ("threads", "checkpoints", "values", "writes", "objects"), 0
    )


def test_prune_updated_before_leaves_threads_written_since(saver: Any, raw: Raw) -> None:
    """prune(..., updated_before=T) prunes only threads not written since T, with
    either strategy; T must be an aware datetime."""
    import datetime as dt

    from checkpoint_pg import ConfigError

    graph = build_chain(saver)
    stale, fresh = new_config("prune-stale"), new_config("prune-fresh")
    graph.invoke({"log": []}, stale)
    graph.invoke({"log": []}, fresh)
    cutoff = dt.datetime.now(dt.timezone.utc)
    graph.invoke({"log": []}, fresh)  # written after the cutoff
    ids = [thread_of(stale), thread_of(fresh)]
    n_fresh = raw.counts(thread_of(fresh))["checkpoints"]
    saver.prune(ids, strategy="keep_latest", updated_before=cutoff)
    assert raw.counts(thread_of(stale))["checkpoints"] == 1
    assert raw.counts(thread_of(fresh))["checkpoints"] == n_fresh
    saver.prune(ids, strategy="delete", updated_before=cutoff)
    assert raw.counts(thread_of(stale))["checkpoints"] == 0
    assert raw.counts(thread_of(fresh))["checkpoints"] == n_fresh
    with pytest.raises(ConfigError, match="timezone-aware"):
        saver.prune(ids, strategy="delete", updated_before=dt.datetime.now())


def test_a_pending_write_keeps_a_paused_thread_from_prune(saver: Any, raw: Raw) -> None:
    """A thread paused long ago gets a write (the resume value, before the node's put):
    prune(updated_before=) run meanwhile keeps it, and the run can finish."""
    import datetime as dt
    import time

    graph = build_chain(saver)
    config = new_config("prune-resume")
    graph.invoke({"log": []}, config)
    time.sleep(1.1)  # the thread's last write is now over a second old
    cutoff = dt.datetime.now(dt.timezone.utc)
    latest = saver.get_tuple(config).config
    saver.put_writes(latest, [("log", ["resumed"])], "task-resume")
    saver.prune([thread_of(config)], strategy="delete", updated_before=cutoff)
    assert raw.counts(thread_of(config))["checkpoints"] > 0
    saver.prune([thread_of(config)], strategy="delete", updated_before=dt.datetime.now(dt.timezone.utc))
    assert raw.counts(thread_of(config))["checkpoints"] == 0


def test_copy_thread_again_is_a_no_op_until_the_source_changes(saver: Any) -> None:
    """copy_thread is idempotent (the saver retries an operation whose commit it
    did not see): copying onto a thread that holds exactly the source's
    checkpoints does nothing; once they differ, the target is refused."""
    from checkpoint_pg import ConfigError

    graph = build_chain(saver)
    src = new_config("copy-src")
    graph.invoke({"log": []}, src)
    dst = f"copy-dst-{uuid.uuid4().hex[:8]}"
    saver.copy_thread(thread_of(src), dst)
    saver.copy_thread(thread_of(src), dst)
    dst_cfg: RunnableConfig = {"configurable": {"thread_id": dst}}
    assert [t.checkpoint["id"] for t in saver.list(dst_cfg)] == [
        t.checkpoint["id"] for t in saver.list(src)
    ]
    latest = saver.get_tuple(src).config
    saver.put_writes(latest, [("log", ["late"])], "task-late")  # the source gains a write only
    with pytest.raises(ConfigError, match="already has checkpoints"):
        saver.copy_thread(thread_of(src), dst)
    graph.invoke({"log": []}, src)
    with pytest.raises(ConfigError, match="already has checkpoints"):
        saver.copy_thread(thread_of(src), dst)


def test_copy_thread_copies_objects_and_is_independent(saver: Any, raw: Raw) -> None:
    """copy_thread: the copy reads back equal (state and history); continuing it leaves the source alone."""
    graph = build_tool_agent(saver)
    src = new_config("copy-src")
    _two_turns(graph, src)
    dst_id = f"st-copy-dst-{uuid.uuid4().hex[:8]}"
    dst: RunnableConfig = {"configurable": {"thread_id": dst_id}}
    src_counts = raw.counts(thread_of(src))
    src_objects = raw.objects(thread_of(src))
    src_state = graph.get_state(src)
    src_history = [(s.values, s.next, s.metadata.get("step")) for s in graph.get_state_history(src)]

    saver.copy_thread(thread_of(src), dst_id)
    assert raw.counts(dst_id) == src_counts
    assert raw.objects(dst_id) == src_objects
    assert graph.get_state(dst).values == src_state.values
    assert [(s.values, s.next, s.metadata.get("step")) for s in graph.get_state_history(dst)] == (
        src_history
    )
    raw.assert_no_orphans(dst_id)

    graph.invoke({"messages": [HumanMessage("What is the weather in Oslo?", id="h-oslo")]}, dst)
    assert len(graph.get_state(dst).values["messages"]) == len(src_state.values["messages"]) + 5
    assert raw.counts(thread_of(src)) == src_counts
    assert raw.objects(thread_of(src)) == src_objects
    assert graph.get_state(src).values == src_state.values
    assert graph.get_state(src).config == src_state.config
    assert [(s.values, s.next, s.metadata.get("step")) for s in graph.get_state_history(src)] == (
        src_history
    )
    # deleting the source leaves the copy whole
    saver.delete_thread(thread_of(src))
    assert len(graph.get_state(dst).values["messages"]) == len(src_state.values["messages"]) + 5
    raw.assert_no_orphans(dst_id)


def test_get_tuple_reuses_written_messages_only_when_exact(saver) -> None:
    """A message just written is not fetched or decoded again by the get_tuple that
    follows; the value returned equals what was written, for a message with an id.
    One without an id (LangGraph assigns it in place later) and non-message values
    are decoded from storage, so they come back exactly as stored."""
    from langchain_core.messages import AIMessage  # noqa: PLC0415
    from langgraph.checkpoint.base import empty_checkpoint  # noqa: PLC0415

    cfg = {"configurable": {"thread_id": "wc", "checkpoint_ns": ""}}
    c = saver.put(cfg, empty_checkpoint(), {"source": "input", "step": -1, "parents": {}}, {})
    with_id = AIMessage(content="hello", id="m1")
    without_id = AIMessage(content="later")
    error = ValueError("boom")
    saver.put_writes(c, [("messages", [with_id, without_id]), ("__error__", error)], "task")
    without_id.id = "assigned-after"  # what add_messages does, in place
    written = {ch: v for _, ch, v in saver.get_tuple(c).pending_writes}
    got, err = written["messages"], written["__error__"]
    assert got[0] is with_id
    assert got[1] is not without_id and got[1].id is None and got[1].content == "later"
    assert err is not error


def test_get_tuple_serves_stored_small_objects_fresh_and_current(saver, make_saver) -> None:
    """Scalar values and writes a saver just stored are not fetched again by its
    get_tuple, yet come back decoded afresh (a dict mutated after put_writes is
    returned as stored), with their exact types (1, True, "1" and None apart), and
    what another saver changed meanwhile is what is read."""
    from langgraph.checkpoint.base import create_checkpoint  # noqa: PLC0415

    cfg: RunnableConfig = {"configurable": {"thread_id": "small", "checkpoint_ns": ""}}
    values = {"i": 1, "b": True, "s": "1", "n": None, "f": 1.0}
    base = empty_checkpoint()
    base["channel_values"] = dict(values)
    base["channel_versions"] = {ch: saver.get_next_version(None, None) for ch in values}
    ckpt = create_checkpoint(base, None, 0)
    c = saver.put(cfg, ckpt, {"source": "input", "step": -1, "parents": {}}, ckpt["channel_versions"])
    payload = {"k": [1, 2]}
    saver.put_writes(c, [("d", payload), ("i", 2), ("b", False)], "task")
    payload["k"].append(3)
    tup = saver.get_tuple(c)
    got = tup.checkpoint["channel_values"]
    assert got == values and [type(v) for v in got.values()] == [type(v) for v in values.values()]
    writes = {ch: v for _, ch, v in tup.pending_writes}
    assert writes == {"d": {"k": [1, 2]}, "i": 2, "b": False} and type(writes["b"]) is bool
    assert writes["d"] is not payload

    with make_saver() as other:  # another process: rewrites the thread
        other.delete_thread("small")
        base["channel_values"] = {"i": 7, "b": False, "s": "x", "n": None, "f": 2.5}
        ckpt2 = {**create_checkpoint(base, None, 0), "id": ckpt["id"]}
        c2 = other.put(cfg, ckpt2, {"source": "input", "step": -1, "parents": {}}, ckpt2["channel_versions"])
        other.put_writes(c2, [("d", {"k": []})], "task")
    tup = saver.get_tuple(c)
    assert tup.checkpoint["channel_values"] == base["channel_values"]
    assert [(ch, v) for _, ch, v in tup.pending_writes] == [("d", {"k": []})]


FILTER_METADATA = [
    {"user": "u1", "tags": ["a", "b"], "cfg": {"x": 1, "y": 2}, "n": 1},
    {"user": None, "tags": ["a"], "cfg": {"y": 2, "x": 1}, "n": 1.0},
    {},
    {"user": "u2", "cfg": {"x": 1, "z": None}, "tags": []},
]
FILTERS = [
    {"user": None},
    {"user": "u1"},
    {"missing": None},
    {"tags": ["a"]},
    {"tags": ["a", "b"]},
    {"tags": ["b", "a"]},
    {"tags": []},
    {"cfg": {"x": 1, "y": 2}},
    {"cfg": {"x": 1}},
    {"cfg": {"x": 1, "z": None}},
    {"n": 1},
    {"user": None, "tags": ["a"]},
    {"user": "u1", "n": 1.0},
    {"n": 2**64},  # beyond 64 bits: InMemorySaver cannot store it, but a filter may ask
    {"n": -(2**70)},
]


@pytest.mark.parametrize("flt", FILTERS, ids=lambda f: json.dumps(f))
def test_metadata_filter_matches_as_in_memory(saver: Any, flt: dict[str, Any]) -> None:
    """list(filter=...) keeps a checkpoint when metadata.get(key) == value for every
    key, as InMemorySaver does: None matches a missing key too, lists and dicts
    compare whole (not as containment), dict key order and 1 vs 1.0 do not matter.
    For one thread (Postgres: the list_thread function), across threads, and in
    the thread listing (saver.threads, the inspector)."""
    thread = f"flt-{uuid.uuid4().hex[:8]}"
    ref = InMemorySaver()
    for cp_saver in (saver, ref):
        cfg: RunnableConfig = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        for i, md in enumerate(FILTER_METADATA):
            cp = empty_checkpoint()
            cp["id"] = f"1f0{i:05d}-0000-6000-8000-000000000000"
            cfg = cp_saver.put(cfg, cp, {**md, "i": i}, {})

    def found(s: Any, config: RunnableConfig | None) -> list[int]:
        return [t.metadata["i"] for t in s.list(config, filter=flt) if t.metadata.get("i") is not None]

    one = {"configurable": {"thread_id": thread}}
    expected = found(ref, one)
    assert found(saver, one) == expected
    assert found(saver, None) == found(ref, None)
    # threads(filter=...) tests the thread's latest metadata (i == 3) the same way
    assert (thread in set(saver.threads(filter=flt))) == (3 in expected)


def test_thread_filter_on_a_thread_without_root_metadata(saver: Any) -> None:
    """A thread with subgraph checkpoints only has no root metadata: threads(filter=...)
    treats it as having no keys, on both backends ({"k": None} matches, {"k": 1} not)."""
    thread = f"subonly-{uuid.uuid4().hex[:8]}"
    saver.put(
        {"configurable": {"thread_id": thread, "checkpoint_ns": "child:1"}},
        empty_checkpoint(),
        {"source": "loop", "step": 0, "parents": {}},
        {},
    )
    assert thread in set(saver.threads({"k": None}))
    assert thread not in set(saver.threads({"k": 1}))


def test_resolving_a_long_chain_keeps_a_bounded_memo() -> None:
    """A listing resolves every version of a list, newest first; the memo it shares
    across checkpoints keeps the last MEMO_VERSIONS lists, not every one (which grew
    with the square of the thread), and every version still resolves right."""
    from checkpoint_pg.core.values import MEMO_VERSIONS, resolve_hashes
    from checkpoint_pg.schema import KIND

    h = [bytes([i % 256, i // 256]) * 8 for i in range(1000)]
    rows: dict[str, tuple[int, str | None, bytes]] = {}
    for i in range(1000):  # a full list every 100 versions, one element appended otherwise
        v = f"{i:06d}"
        if i % 100 == 0:
            rows[v] = (KIND.LIST, None, b"".join(h[: i + 1]))
        else:
            rows[v] = (KIND.DELTA, f"{i - 1:06d}", h[i])
    memo: dict[str, tuple[bytes, ...]] = {}
    for i in reversed(range(1000)):
        assert resolve_hashes(rows, f"{i:06d}", memo, "test") == tuple(h[: i + 1])
        assert len(memo) <= MEMO_VERSIONS


async def test_vacuum_after_delete_keeps_every_other_thread(
    make_saver: Any, make_async_saver: Any, saver_target: Any
) -> None:
    """saver.vacuum() / avacuum() after delete_thread: the other thread reads back the
    same, the SQLite file shrinks, Postgres's full vacuum shrinks the tables; a saver
    whose connection is inside a transaction is refused with what to do, changing nothing."""
    from checkpoint_pg import ConfigError

    build_graph, turn_input = _agent()
    keep, drop = new_config("vac-keep"), new_config("vac-drop")
    with make_saver() as saver:
        graph = build_graph(saver)
        for turn in range(12):
            graph.invoke(turn_input(turn), keep)
            graph.invoke(turn_input(turn), drop)
        history = [t.checkpoint for t in saver.list(keep)]
        saver.delete_thread(thread_of(drop))
        report = saver.vacuum()
        assert report.full == (saver_target.backend == "sqlite")
        if saver_target.backend == "sqlite":
            assert report.bytes_after < 0.7 * report.bytes_before, report
        assert [t.checkpoint for t in saver.list(keep)] == history
    async with make_async_saver() as asaver:
        report = await asaver.avacuum(full=True)
        assert report.full and report.bytes_after <= report.bytes_before, report
        if saver_target.backend == "postgres":
            assert report.bytes_after < report.bytes_before, report  # dead rows rewritten away
        assert [t.checkpoint async for t in asaver.alist(keep)] == history
    # a connection of the caller's, inside a transaction: VACUUM cannot run there
    if saver_target.backend == "sqlite":
        from checkpoint_pg import SqliteSaver

        conn = sqlite3.connect(saver_target.conn_string, isolation_level=None)
        conn.execute("BEGIN")
        in_txn: Any = SqliteSaver(conn, **saver_target.options)
    else:
        import psycopg

        from checkpoint_pg import PostgresSaver

        conn = psycopg.connect(saver_target.conn_string)  # not autocommit
        in_txn = PostgresSaver(conn, **saver_target.options)
    try:
        with pytest.raises(ConfigError, match="vacuum cannot run inside a transaction"):
            in_txn.vacuum()
    finally:
        conn.close()
    with make_saver() as saver:
        assert [t.checkpoint for t in saver.list(keep)] == history


def test_sqlite_vacuum_says_when_a_reader_keeps_the_file_from_shrinking(tmp_path: Path) -> None:
    """A SQLite vacuum while another connection holds a read: the rebuilt database
    stays in the WAL (its checkpoint cannot finish), so the report says the file is yet
    to shrink instead of giving the new size as if it were on disk. Once the reader is
    done, another vacuum finishes it and the file is the size reported."""
    from checkpoint_pg import SqliteSaver

    path = str(tmp_path / "vac.db")
    build_graph, turn_input = _agent()
    with SqliteSaver.from_conn_string(path) as saver:
        saver.setup()
        graph = build_graph(saver)
        for turn in range(25):
            graph.invoke(turn_input(turn), new_config("vac-big"))
        graph.invoke(turn_input(0), new_config("vac-small"))
        saver.delete_thread("vac-big")
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        saver = SqliteSaver(conn)
        conn.execute("PRAGMA busy_timeout = 200")  # the checkpoint gives up soon
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM cpg_checkpoints").fetchone()  # holds its snapshot
        report = saver.vacuum()
        assert report.wal_pending and report.bytes_after < report.bytes_before, report
        assert os.path.getsize(path) > report.bytes_after  # not on disk yet
        reader.execute("COMMIT")
        again = saver.vacuum()
        assert not again.wal_pending, again
        assert os.path.getsize(path) == again.bytes_after <= report.bytes_after
    finally:
        reader.close()
        conn.close()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_vacuum_on_a_sqlalchemy_engine(saver_target: Any) -> None:
    """A PostgresSaver on a SQLAlchemy Engine (whose connections are not in autocommit
    mode) refused every vacuum with "cannot run inside a transaction", advice it could
    not follow: it borrows an idle connection of the engine's pool, which can run it.
    The connection goes back to the pool as it came, and the engine stays usable."""
    import sqlalchemy as sa

    from checkpoint_pg import PostgresSaver

    engine = sa.create_engine(saver_target.conn_string.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        saver = PostgresSaver(engine, **saver_target.options)
        saver.setup()
        config = new_config("vac-engine")
        cp = empty_checkpoint()
        cp["channel_values"] = {"a": "x" * 1000}
        cp["channel_versions"] = {"a": saver.get_next_version(None, None)}
        saver.put(config, cp, {}, cp["channel_versions"])
        saver.delete_thread(thread_of(config))
        report = saver.vacuum(full=True)
        assert report.full and report.bytes_after <= report.bytes_before, report
        with engine.connect() as sc:
            assert not sc.connection.driver_connection.autocommit  # as the pool gave it
            assert sc.execute(sa.text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_threads_after_delete_for_runs_filter_on_what_is_left(saver: Any) -> None:
    """`threads(filter)` matches each thread's newest root checkpoint: after
    delete_for_runs took a thread's newest checkpoints, it matches the newest left, and
    a thread left with no checkpoint is not listed. (Before, the deleted run's metadata
    still matched and the emptied thread stayed listed.)"""
    from checkpoint_pg.inspect import Inspector

    tag = uuid.uuid4().hex[:8]
    a, b = f"dfr-a-{tag}", f"dfr-b-{tag}"

    def put(t: str, cid: str, md: dict[str, Any]) -> None:
        cp = empty_checkpoint()
        cp["id"] = cid
        saver.put({"configurable": {"thread_id": t, "checkpoint_ns": ""}}, cp, md, {})

    put(a, "1ef00000-0000-6000-8000-000000000001", {"user": f"u1-{tag}", "run_id": f"r1-{tag}"})
    put(a, "1ef00000-0000-6000-8000-000000000002", {"user": f"u2-{tag}", "run_id": f"r2-{tag}"})
    put(b, "1ef00000-0000-6000-8000-000000000003", {"user": f"u2-{tag}", "run_id": f"r2-{tag}"})
    saver.delete_for_runs([f"r2-{tag}"])
    assert list(saver.threads({"user": f"u1-{tag}"})) == [a]
    assert list(saver.threads({"user": f"u2-{tag}"})) == []
    assert b not in list(saver.threads())
    assert [t.thread_id for t in Inspector(saver).threads(filter={"user": f"u1-{tag}"}).threads] == [a]


def test_a_collected_message_leaves_the_message_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    """The memo of serialized messages is keyed by id(): a message collected leaves it
    (the id may name another object next), from the memo and from what the memo
    dropped when full, and one made at a reused id is serialized as itself."""
    import gc

    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    from checkpoint_pg.core import codec as codec_module

    monkeypatch.setattr(codec_module, "_MESSAGES_SIZE", 3)
    codec = codec_module.ValueCodec(JsonPlusSerializer())
    kept = [AIMessage(f"kept {i}", id=f"k-{i}") for i in range(3)]
    for m in kept:
        codec.dump(m)
    gone = AIMessage("gone", id="g-1")
    codec.dump(gone)  # the memo was full: the three kept ones moved to `_dropped`
    dropped_key, gone_key = id(kept[0]), id(gone)
    assert dropped_key in codec._dropped and gone_key in codec._messages
    del kept[0], gone
    gc.collect()
    assert dropped_key not in codec._dropped and gone_key not in codec._messages
    assert {id(m) for m in kept} <= set(codec._dropped)  # the live ones stay
    fresh = [AIMessage(f"fresh {i}", id=f"f-{i}") for i in range(50)]
    for m in fresh:
        assert codec.dump(m).hash == codec_module.ValueCodec(JsonPlusSerializer()).dump(m).hash


def test_a_small_cache_keeps_only_the_threads_it_runs_and_reads_stay_right(make_saver: Any) -> None:
    """``cache_items=`` bounds the list elements the saver keeps in memory: the
    messages of threads run earlier are let go (a process that ran many threads kept
    them all, which the garbage collector walked at each full pass), and every read,
    a continued thread's included, is what a fresh saver reads; ``cache_items=0``
    keeps the newest list only, and reads stay right too."""
    import gc
    import weakref

    from graphs import thread_summary

    build_graph, turn_input = _agent()
    configs = [new_config(f"small-cache-{i}") for i in range(4)]
    with make_saver(cache_items=12) as saver:
        graph = build_graph(saver)
        first = graph.invoke(turn_input(0), configs[0])["messages"]
        refs = [weakref.ref(m) for m in first]
        del first
        for config in configs[1:3]:
            for turn in range(3):
                graph.invoke(turn_input(turn), config)
        gc.collect()
        assert refs and [r for r in refs if r() is not None] == []  # the first thread's let go
        # the newest list state is kept whatever its size (12 messages here), and the
        # writes of the last step
        assert saver.ctx.cache._items <= 12 + 12 + 4
        graph.invoke(turn_input(1), configs[0])  # a thread the cache let go goes on
        seen = [thread_summary(graph, config) for config in configs[:3]]
    with make_saver(cache_items=0) as saver:
        graph = build_graph(saver)
        graph.invoke(turn_input(0), configs[3])
        graph.invoke(turn_input(1), configs[3])
        assert len(saver.ctx.cache._data) == 1
        seen.append(thread_summary(graph, configs[3]))
    with make_saver() as fresh:
        fresh_graph = build_graph(fresh)
        assert [thread_summary(fresh_graph, config) for config in configs] == seen


def test_two_forks_of_one_checkpoint_keep_their_own_values_and_versions_carry_48_random_bits(
    saver: Any, make_saver: Any
) -> None:
    """Values are stored by (channel, version): two forks giving a channel the same
    version would read one value. Versions carry 48 random bits (32 before session 17,
    one collision in ~4e9 per pair of forks), and a thread whose versions have the 8 hex
    digits of earlier releases goes on growing by deltas and reads back whole."""
    import re

    assert re.fullmatch(r"\d{10}\.[0-9a-f]{12}", saver.get_next_version(None, None))
    assert saver.get_next_version("0000000004.deadbeef", None).startswith("0000000005.")
    config = new_config("forks")
    old = "0000000001.deadbeef"  # written by an earlier release
    msgs = [HumanMessage("q", id="m0"), AIMessage("a", id="m1")]
    cp = empty_checkpoint()
    cp["channel_values"] = {"messages": msgs}
    cp["channel_versions"] = {"messages": old}
    base = saver.put(config, cp, {"source": "loop", "step": 0}, {"messages": old})
    heads = []
    for n in range(3):  # three answers regenerated from one checkpoint
        ver = saver.get_next_version(old, None)
        fork = empty_checkpoint()
        fork["channel_values"] = {"messages": [*msgs, AIMessage(f"answer {n}", id=f"r{n}")]}
        fork["channel_versions"] = {"messages": ver}
        heads.append(saver.put(base, fork, {"source": "loop", "step": 1}, {"messages": ver}))
    with make_saver() as fresh:  # reads what is stored, not a process's cache
        for n, head in enumerate(heads):
            got = fresh.get_tuple(head).checkpoint["channel_values"]["messages"]
            assert [m.id for m in got] == ["m0", "m1", f"r{n}"]
            assert got[-1].content == f"answer {n}"
