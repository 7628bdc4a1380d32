"""Faults: a put / put_writes is all or nothing, dead connections are replaced,
a server restart between two supersteps loses nothing.

"All or nothing" is checked three ways:

* the server kills the session (``pg_terminate_backend``) while the put is
  blocked half-way through its transaction (deterministic), and at random
  moments under load (slow);
* the driver fails at every single statement of a put in turn (a cursor /
  connection subclass that raises on its n-th call): on both backends;
* the serializer raises part-way through the values of a put or the writes
  of a put_writes.

Afterwards the checkpoint is either absent with no row of it left behind,
or fully readable with every value and write.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from faultkit import (
    TABLES,
    SimThread,
    Step,
    admin_execute,
    after_first_yield,
    await_until,
    blocked_on,
    paused_on,
    pg_terminate,
    pool_waiting,
    qualified,
    row_counts,
    wait_for_blocked,
    wait_until,
)
from fixtures.faults import throwaway_postgres  # noqa: F401 - fixture
from graphs import build_chain, normalize


def fault_errors() -> tuple[type[BaseException], ...]:
    """What a put that lost its connection may raise: the driver's error or ours."""
    import psycopg  # noqa: PLC0415

    from checkpoint_pg import CheckpointPgError  # noqa: PLC0415

    return (psycopg.Error, CheckpointPgError)


# --------------------------------------------------------------------------
# The session is killed half-way through a put
# --------------------------------------------------------------------------


@contextmanager
def blocker(url: str, sql: str, params: list[Any]) -> Iterator[Any]:
    """An open transaction that holds the lock a put will wait for."""
    import psycopg  # noqa: PLC0415

    with psycopg.connect(url) as conn:
        conn.execute(sql, params)
        try:
            yield conn
        finally:
            conn.rollback()


def kill_until_done(url: str, blocker_pid: int, t: threading.Thread, limit: int = 5) -> int:
    """Terminate every attempt of the blocked call (the saver may retry on a
    fresh connection) until it gives up; return the number of kills."""
    killed: list[int] = []
    while t.is_alive() and len(killed) < limit:
        # the next attempt (a reconnection first: slow on a loaded machine) or the end:
        # a fixed 2 s for the retry to block took a slow retry for the call giving up,
        # and a session still ending after its kill for the next attempt
        victim = wait_until(
            lambda: blocked_on(url, blocker_pid, but=killed) or not t.is_alive(),
            "the call neither waited on the lock again nor ended",
        )
        if victim is True:
            assert killed, "the put never blocked on the held lock"
            break
        admin_execute(url, "SELECT pg_terminate_backend(%s)", [victim])
        killed.append(victim)
    t.join(30)
    assert not t.is_alive(), f"the call still runs after {len(killed)} kills"
    return len(killed)


def in_thread(fn: Any) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(("ok", fn()))
        except BaseException as exc:  # noqa: BLE001
            outcome.append(("error", exc))

    t = threading.Thread(target=run)
    t.start()
    return t, outcome


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
@pytest.mark.parametrize("held", ["thread_row", "checkpoint_row"])
def test_put_killed_half_way_is_absent(saver, saver_target, held: str) -> None:
    """The put blocks on a lock (its first statement, or its last: the
    checkpoint row after objects and values went in), its session is
    terminated -- and so is every retry the saver makes on a fresh connection,
    until it gives up with an error: nothing of it remains, the thread reads as before, and the
    next step (a new run, after loading the thread) works."""
    url = saver_target.conn_string
    sim = SimThread(saver, f"kill-put-{uuid.uuid4().hex[:8]}")
    for _ in range(6):
        sim.run_step()
    st = sim.prepare()
    sim.send_writes(st)
    before = row_counts("postgres", url, saver, sim.thread_id)
    if held == "thread_row":
        sql = f"SELECT 1 FROM {qualified(saver, 'threads')} WHERE thread_id = %s FOR UPDATE"
        params = [sim.thread_id]
    else:
        sql = (
            f"INSERT INTO {qualified(saver, 'checkpoints')} (thread_id, checkpoint_ns, "
            "checkpoint_id, parent_checkpoint_id, run_id, checkpoint, metadata, complete) "
            "VALUES (%s, '', %s, NULL, NULL, '{}', '{}', true)"
        )
        params = [sim.thread_id, st.checkpoint["id"]]
    with blocker(url, sql, params) as held_conn:
        t, outcome = in_thread(lambda: sim.send_put(st))
        kill_until_done(url, held_conn.info.backend_pid, t)
    assert outcome and outcome[0][0] == "error", outcome
    assert saver.get_tuple(sim.config(st.checkpoint["id"])) is None
    assert row_counts("postgres", url, saver, sim.thread_id) == before
    assert sim.verify() == 6  # the thread is exactly as before
    sim.run_step()  # a new run continues from the last checkpoint
    assert sim.verify() == 7
    # the error is the driver's or ours, never an internal one
    assert isinstance(outcome[0][1], fault_errors()), repr(outcome[0][1])


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_put_writes_killed_half_way_is_absent(saver, saver_target) -> None:
    """A put_writes of three writes is killed (every attempt) while the second
    one waits on a lock: none of the three is stored (no partial task output)."""
    url = saver_target.conn_string
    sim = SimThread(saver, f"kill-writes-{uuid.uuid4().hex[:8]}")
    for _ in range(3):
        sim.run_step()
    cid = sim.order[-1]
    before = row_counts("postgres", url, saver, sim.thread_id)
    writes = [("messages", ["w0"]), ("step", 100), ("doc", {"w": 2})]
    sql = (
        f"INSERT INTO {qualified(saver, 'writes')} (thread_id, checkpoint_ns, checkpoint_id, "
        "task_id, idx, channel, task_path, kind, refs) VALUES (%s, '', %s, 'task-k', 1, 'x', '', 1, '')"
    )
    with blocker(url, sql, [sim.thread_id, cid]) as held_conn:
        t, outcome = in_thread(lambda: saver.put_writes(sim.config(cid), writes, "task-k"))
        kill_until_done(url, held_conn.info.backend_pid, t)
    assert outcome and outcome[0][0] == "error", outcome
    assert row_counts("postgres", url, saver, sim.thread_id) == before
    assert saver.get_tuple(sim.config(cid)).pending_writes == []
    saver.put_writes(sim.config(cid), writes, "task-k")
    assert [w[2] for w in saver.get_tuple(sim.config(cid)).pending_writes] == [["w0"], 100, {"w": 2}]
    assert isinstance(outcome[0][1], fault_errors()), repr(outcome[0][1])


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_random_kills_under_load_leave_no_partial_checkpoint(make_saver, saver_target) -> None:
    """4 writers step their threads while a killer terminates their sessions at
    random moments for a few seconds. A step that fails is retried the way an
    application would (load the thread, run again). Afterwards every
    checkpoint ever attempted is absent or whole, and every task's writes are
    all there or not at all."""
    url = saver_target.conn_string
    app = f"cpg-victim-{uuid.uuid4().hex[:6]}"
    sep = "&" if "?" in url else "?"
    with make_saver(conn_string=f"{url}{sep}application_name={app}", pool_size=4) as saver:
        stop = threading.Event()
        attempted: dict[str, Any] = {}
        sims: list[SimThread] = []
        failures = [0]
        errors: list[BaseException] = []

        def writer(i: int) -> None:
            sim = SimThread(saver, f"chaos-{i}-{uuid.uuid4().hex[:6]}")
            sims.append(sim)
            try:
                while not stop.is_set():
                    st = sim.prepare()
                    attempted[st.checkpoint["id"]] = (sim, sim.expected_of(st))
                    try:
                        sim.send_writes(st)
                        sim.send_put(st)
                    except Exception:  # noqa: BLE001 - which error: see the tests above
                        failures[0] += 1
                        # did it commit before the session died? then it counts
                        for _ in range(50):
                            try:
                                tup = saver.get_tuple(sim.config(st.checkpoint["id"]))
                                break
                            except Exception:  # noqa: BLE001
                                time.sleep(0.01)
                        else:
                            raise AssertionError("the saver never recovered")
                        if tup is not None:
                            sim.commit(st)
                        for _ in range(50):
                            try:
                                saver.get_tuple(sim.config())  # a new run loads the thread
                                break
                            except Exception:  # noqa: BLE001
                                time.sleep(0.01)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        workers = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
        for t in workers:
            t.start()
        rnd = random.Random(5)
        kills = 0
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            time.sleep(rnd.uniform(0.0, 0.05))
            kills += pg_terminate(url, application_name=app)
        stop.set()
        for t in workers:
            t.join(60)
        if errors:
            raise errors[0]
        # (the saver retries a call whose connection died, so few steps may fail)
        assert kills > 10, kills

        for sim in sims:
            sim.verify()
        for cid, (sim, exp) in attempted.items():
            tup = saver.get_tuple(sim.config(cid))
            if tup is not None:
                sim.check_tuple(tup, cid, sim.expected.get(cid, exp))
            else:
                assert cid not in sim.expected
        # task writes: all or nothing per task
        for sim in sims:
            for cid in sim.order:
                tup = saver.get_tuple(sim.config(cid))
                by_task: dict[str, int] = {}
                for task_id, _, _ in tup.pending_writes:
                    by_task[task_id] = by_task.get(task_id, 0) + 1
                assert all(n == 2 for n in by_task.values()), by_task


# --------------------------------------------------------------------------
# The driver fails at each statement of a put in turn (both backends)
# --------------------------------------------------------------------------


class FaultInjected(Exception):
    """Raised by the fault-injecting connection instead of running a statement."""


class Injector:
    """Counts statements; when armed, the n-th one raises instead of running."""

    def __init__(self) -> None:
        self.countdown: int | None = None
        self.fired = False

    def arm(self, n: int) -> None:
        self.countdown, self.fired = n, False

    def disarm(self) -> None:
        self.countdown = None

    def tick(self, sql: str) -> None:
        if self.countdown is None or sql.lstrip().upper().startswith("ROLLBACK"):
            return
        self.countdown -= 1
        if self.countdown == 0:
            self.countdown = None
            self.fired = True
            raise FaultInjected(sql[:60])


@contextmanager
def faulty_saver(backend: str, conn_string: str, options: dict[str, Any]) -> Iterator[tuple[Any, Injector]]:
    """A sync saver on one connection whose statements can be made to fail."""
    inj = Injector()
    if backend == "sqlite":
        from checkpoint_pg import SqliteSaver  # noqa: PLC0415

        class FaultySqlite(sqlite3.Connection):
            def execute(self, sql: str, *args: Any) -> Any:  # type: ignore[override]
                inj.tick(sql)
                return super().execute(sql, *args)

            def executemany(self, sql: str, *args: Any) -> Any:  # type: ignore[override]
                inj.tick(sql)
                return super().executemany(sql, *args)

        conn = sqlite3.connect(
            conn_string, factory=FaultySqlite, check_same_thread=False, isolation_level=None
        )
        try:
            saver = SqliteSaver(conn, **options)
            saver.setup()
            yield saver, inj
        finally:
            conn.close()
    else:
        import psycopg  # noqa: PLC0415

        from checkpoint_pg import PostgresSaver  # noqa: PLC0415

        class FaultyCursor(psycopg.Cursor):
            def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:  # type: ignore[override]
                inj.tick(str(query))
                return super().execute(query, params, **kw)

        with psycopg.connect(
            conn_string, autocommit=True, prepare_threshold=None, cursor_factory=FaultyCursor
        ) as conn:
            saver = PostgresSaver(conn, **options)
            saver.setup()
            yield saver, inj


def test_put_fails_at_every_statement(backend: str, saver_target) -> None:
    """For n = 1, 2, ...: the n-th statement of a put fails. Each failed attempt
    leaves no row; the loop ends when n passes the last statement and the put
    commits whole."""
    with faulty_saver(backend, saver_target.conn_string, saver_target.options) as (saver, inj):
        sim = SimThread(saver, f"every-stmt-{uuid.uuid4().hex[:8]}")
        for _ in range(5):
            sim.run_step()  # messages are now list deltas, doc is carried over
        for _round in range(2):
            st = sim.prepare()
            sim.send_writes(st)
            before = row_counts(backend, saver_target.conn_string, saver, sim.thread_id)
            for n in range(1, 100):
                inj.arm(n)
                try:
                    sim.send_put(st)
                except FaultInjected:
                    assert inj.fired
                    assert row_counts(backend, saver_target.conn_string, saver, sim.thread_id) == before
                    assert saver.get_tuple(sim.config(st.checkpoint["id"])) is None
                    continue
                finally:
                    inj.disarm()
                break
            else:
                pytest.fail("the put never succeeded")
            assert n > 1
            assert sim.verify() == 6 + _round


def test_put_writes_fails_at_every_statement(backend: str, saver_target) -> None:
    """Same for put_writes with regular and special (error) writes."""
    with faulty_saver(backend, saver_target.conn_string, saver_target.options) as (saver, inj):
        sim = SimThread(saver, f"every-wstmt-{uuid.uuid4().hex[:8]}")
        for _ in range(3):
            sim.run_step()
        cid = sim.order[-1]
        writes = [("messages", ["a", "b"]), ("step", 7), ("__error__", "boom"), ("doc", {"x": 1})]
        before = row_counts(backend, saver_target.conn_string, saver, sim.thread_id)
        for n in range(1, 100):
            inj.arm(n)
            try:
                saver.put_writes(sim.config(cid), writes, "task-x")
            except FaultInjected:
                assert row_counts(backend, saver_target.conn_string, saver, sim.thread_id) == before
                continue
            finally:
                inj.disarm()
            break
        pending = saver.get_tuple(sim.config(cid)).pending_writes
        assert sorted((c, repr(v)) for _, c, v in pending) == sorted((c, repr(v)) for c, v in writes)


# --------------------------------------------------------------------------
# The serializer raises part-way through
# --------------------------------------------------------------------------


class Boom:
    """A value the failing serializer refuses."""


class FailingSerde(JsonPlusSerializer):
    """JsonPlusSerializer that raises (or interrupts) on `Boom` values."""

    def __init__(self, exc: type[BaseException] = RuntimeError) -> None:
        super().__init__()
        self.exc = exc

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        if isinstance(obj, Boom):
            raise self.exc("serializer failed on purpose")
        return super().dumps_typed(obj)


def boom_step(sim: SimThread) -> Step:
    """The next step with a failing value in a channel after the others."""
    st = sim.prepare()
    st.checkpoint["channel_values"]["zz_bad"] = Boom()
    version = sim.saver.get_next_version(None, None)
    st.checkpoint["channel_versions"]["zz_bad"] = version
    st.new_versions["zz_bad"] = version
    return st


def test_serializer_raising_mid_put_writes_nothing(make_saver, saver_target, backend: str) -> None:
    from checkpoint_pg import CheckpointPgError, SerializationError  # noqa: PLC0415

    with make_saver(serde=FailingSerde()) as saver:
        sim = SimThread(saver, f"serde-put-{uuid.uuid4().hex[:8]}")
        for _ in range(4):
            sim.run_step()
        before = row_counts(backend, saver_target.conn_string, saver)
        st = boom_step(sim)
        with pytest.raises(SerializationError) as info:
            saver.put(sim.config(st.parent), st.checkpoint, st.metadata, st.new_versions)
        assert isinstance(info.value, CheckpointPgError)
        assert row_counts(backend, saver_target.conn_string, saver) == before
        assert saver.get_tuple(sim.config(st.checkpoint["id"])) is None
        assert sim.verify() == 4
        sim.run_step()
        assert sim.verify() == 5


def test_failed_put_does_not_spoil_the_next_one(make_saver, backend: str) -> None:
    """After a put fails (here: the serializer raises on a later channel), the
    same run's next put -- new versions, same list prefix, no reload in
    between -- must be accepted. It must not build on the list version the
    failed put planned but never stored (IntegrityError would follow)."""
    with make_saver(serde=FailingSerde()) as saver:
        sim = SimThread(saver, f"spoil-{uuid.uuid4().hex[:8]}")
        for _ in range(3):
            sim.run_step()
        st = boom_step(sim)
        with pytest.raises(Exception):  # noqa: B017 - SerializationError, checked above
            saver.put(sim.config(st.parent), st.checkpoint, st.metadata, st.new_versions)
        # same step again without the bad channel; the message list is the same objects
        retry = sim.prepare()
        retry.checkpoint["channel_values"]["messages"] = st.checkpoint["channel_values"]["messages"]
        sim.send_put(retry)
        assert sim.verify() == 4


def test_serializer_raising_mid_put_writes_stores_no_write(make_saver, saver_target, backend: str) -> None:
    from checkpoint_pg import SerializationError  # noqa: PLC0415

    with make_saver(serde=FailingSerde()) as saver:
        sim = SimThread(saver, f"serde-writes-{uuid.uuid4().hex[:8]}")
        sim.run_step()
        cid = sim.order[-1]
        before = row_counts(backend, saver_target.conn_string, saver)
        with pytest.raises(SerializationError):
            saver.put_writes(sim.config(cid), [("a", "fine"), ("b", Boom()), ("c", [1, 2])], "task-1")
        assert row_counts(backend, saver_target.conn_string, saver) == before
        assert saver.get_tuple(sim.config(cid)).pending_writes == []


def test_interrupt_inside_serializer_leaves_saver_usable(make_saver, saver_target, backend: str) -> None:
    """A KeyboardInterrupt (not an Exception) raised while a put is being
    prepared propagates unchanged, writes nothing, and leaves no open
    transaction or broken connection behind."""
    with make_saver(serde=FailingSerde(KeyboardInterrupt)) as saver:
        sim = SimThread(saver, f"kbd-{uuid.uuid4().hex[:8]}")
        for _ in range(2):
            sim.run_step()
        before = row_counts(backend, saver_target.conn_string, saver)
        st = boom_step(sim)
        with pytest.raises(KeyboardInterrupt):
            saver.put(sim.config(st.parent), st.checkpoint, st.metadata, st.new_versions)
        with pytest.raises(KeyboardInterrupt):
            saver.put_writes(sim.config(sim.order[-1]), [("a", 1), ("b", Boom())], "t")
        assert row_counts(backend, saver_target.conn_string, saver) == before
        sim.verify()
        for _ in range(2):
            sim.run_step()
        assert sim.verify() == 4


# --------------------------------------------------------------------------
# Dead connections
# --------------------------------------------------------------------------


def fill_pool(saver: Any, tag: str, n: int = 4) -> list[SimThread]:
    """Run n threads at once so the pool opens several connections."""
    sims = [SimThread(saver, f"{tag}-{i}") for i in range(n)]
    workers = [threading.Thread(target=lambda s=s: [s.run_step() for _ in range(5)]) for s in sims]
    for t in workers:
        t.start()
    for t in workers:
        t.join(60)
    return sims


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_dead_idle_connections_are_replaced(
    make_saver, fresh_pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The server terminates every idle session (as managed databases do during
    a long LLM call): the next operations through the pool just work, and each
    call run again is logged as a warning."""
    caplog.set_level("WARNING", logger="checkpoint_pg")
    with make_saver(conn_string=fresh_pg_url, pool_size=4) as saver:
        sims = fill_pool(saver, "dead")
        for _round in range(3):
            time.sleep(0.2)  # let the pool return every connection
            killed = pg_terminate(fresh_pg_url, only_idle=True)
            assert killed >= 1
            for sim in sims:  # each op may meet a dead connection; none may fail
                sim.run_step()
            for sim in sims:
                sim.verify()
    retried = [r for r in caplog.records if "running it again on a fresh connection" in r.getMessage()]
    assert retried and all(r.levelname == "WARNING" for r in retried)
    assert any("the connection under thread 'dead-" in r.getMessage() for r in retried)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_dead_idle_connections_are_replaced_async(make_async_saver, fresh_pg_url: str) -> None:
    async with make_async_saver(conn_string=fresh_pg_url, pool_size=4) as saver:
        sims = [SimThread(saver, f"adead-{i}") for i in range(4)]
        await asyncio.gather(*(s.arun_step() for s in sims))
        for _round in range(3):
            await asyncio.sleep(0.2)
            killed = await asyncio.to_thread(pg_terminate, fresh_pg_url, only_idle=True)
            assert killed >= 1
            for sim in sims:
                await sim.arun_step()
            for sim in sims:
                await sim.averify()


# --------------------------------------------------------------------------
# Restart between two supersteps (a private server)
# --------------------------------------------------------------------------


def chain_reference(names: list[str]) -> dict[str, Any]:
    graph = build_chain(InMemorySaver(), names)
    config = {"configurable": {"thread_id": "ref"}}
    graph.invoke({"log": ["start"]}, config, durability="sync")
    return {
        "values": graph.get_state(config).values,
        "steps": [s.metadata["step"] for s in graph.get_state_history(config)],
    }


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_restart_between_supersteps(throwaway_postgres, mode: str) -> None:
    """Postgres stops and starts (``fast``: clean shutdown; ``immediate``: a
    crash with WAL recovery) while a run is between two supersteps -- inside
    a node, after the previous step's checkpoint committed. The run goes on
    through the pool's fresh connections, and the thread's history is
    complete: same values and steps as the same run on InMemorySaver."""
    from checkpoint_pg import PostgresSaver  # noqa: PLC0415

    server = throwaway_postgres
    names = ["a", "b", "c", "d"]
    restarts = []

    with PostgresSaver.from_conn_string(server.url) as saver:
        saver.setup()

        def restart_in_node(state: dict[str, Any]) -> dict[str, Any]:
            server.restart(mode)
            restarts.append(mode)
            return {"log": ["restarted"]}

        from langgraph.graph import END, START, StateGraph  # noqa: PLC0415

        from graphs import ChainState  # noqa: PLC0415

        builder = StateGraph(ChainState)
        builder.add_node("a", lambda s: {"log": ["a"]})
        builder.add_node("b", restart_in_node)
        builder.add_node("c", lambda s: {"log": ["c"]})
        builder.add_edge(START, "a")
        builder.add_edge("a", "b")
        builder.add_edge("b", "c")
        builder.add_edge("c", END)
        graph = builder.compile(checkpointer=saver)
        config = {"configurable": {"thread_id": "restart"}}
        graph.invoke({"log": ["start"]}, config, durability="sync")
        assert restarts == [mode]
        assert graph.get_state(config).values == {"log": ["start", "a", "restarted", "c"]}
        history = list(graph.get_state_history(config))
        assert [s.metadata["step"] for s in history] == [3, 2, 1, 0, -1]
        for snap in history:  # every checkpoint reads back whole
            assert saver.get_tuple(snap.config) is not None

        # and between two invocations (the saver idle in between)
        server.restart(mode)
        graph2 = build_chain(saver, names)
        config2 = {"configurable": {"thread_id": "restart-2"}}
        graph2.invoke({"log": ["start"]}, config2, durability="sync", interrupt_after=["b"])
        server.restart(mode)
        graph2.invoke(None, config2, durability="sync")
        ref = chain_reference(names)
        assert normalize(graph2.get_state(config2).values) == normalize(ref["values"])
        assert [s.metadata["step"] for s in graph2.get_state_history(config2)] == ref["steps"]


# -- the retry policy the shells share (I/O-free) ----------------------------------


def _cached() -> Any:
    from checkpoint_pg.core.values import ListCache, ListState

    cache = ListCache()
    for t in ("t", "other"):
        cache.set((t, "", "messages"), ListState("1", (b"h" * 16,), ("m",), "1", 0))
    return cache


def _has(cache: Any, thread: str) -> bool:
    return cache.get((thread, "", "messages")) is not None


def _lost(msg: str) -> BaseException:
    from checkpoint_pg.shells.errors import ConnectionLost

    try:
        try:
            raise OSError(msg)
        except OSError as driver:
            raise ConnectionLost(msg) from driver
    except ConnectionLost as exc:
        return exc


def test_retry_policy_gives_each_failure_one_more_attempt(caplog: pytest.LogCaptureFixture) -> None:
    """A dead connection reconnects once, a stale cache replans a write once, in any
    order; the second of a kind is raised (a dead server as the driver's error, not
    our internal one); anything else is raised at once. A failed put or put_writes
    drops its own thread's cached lists, a lost connection every thread's; other
    failures (a refused lease, a read) keep the cache."""
    from checkpoint_pg.shells.base import Retry
    from checkpoint_pg.shells.errors import BaseGone

    cache = _cached()
    retry = Retry(cache, write=True, thread="t")
    with caplog.at_level("INFO", logger="checkpoint_pg"):
        assert retry.after(BaseGone("stale")) is Retry.RETRY
    assert "a write on thread 't' built on list versions no longer stored" in caplog.text
    assert not _has(cache, "t") and _has(cache, "other")
    assert retry.after(_lost("first")) is Retry.RECONNECT
    assert not _has(cache, "other")
    with pytest.raises(OSError, match="second"):
        retry.after(_lost("second"))
    with pytest.raises(BaseGone, match="again"):
        retry.after(BaseGone("again"))

    # a read: BaseGone is not retried, and a failure keeps the cache
    cache = _cached()
    with pytest.raises(BaseGone):
        Retry(cache, write=False).after(BaseGone("read"))
    with pytest.raises(ValueError):
        Retry(cache, write=False).after(ValueError("bad input"))
    assert _has(cache, "t") and _has(cache, "other")
    # ...but a lost connection on a read clears it (the server may have lost more)
    assert Retry(cache, write=False).after(_lost("read")) is Retry.RECONNECT
    assert not _has(cache, "t") and not _has(cache, "other")

    # a put failing for another reason: raised, its thread's lists dropped
    cache = _cached()
    with pytest.raises(ValueError):
        Retry(cache, write=True, thread="t").after(ValueError("bad input"))
    assert not _has(cache, "t") and _has(cache, "other")
    # a write that caches no lists (a lease refused, say): the cache stays
    with pytest.raises(ValueError):
        Retry(cache, write=True).after(ValueError("busy"))
    assert _has(cache, "other")


def test_a_refused_lease_leaves_other_threads_lists_cached(make_saver) -> None:
    """A second run's lease refused on one thread (routine under leases) must not make
    the next step of a long thread elsewhere store its whole messages list again."""
    from checkpoint_pg import ThreadBusyError

    with make_saver() as saver, make_saver() as other:
        graph = build_chain(saver)
        config = {"configurable": {"thread_id": f"long-{uuid.uuid4().hex[:6]}"}}
        graph.invoke({"log": ["x"] * 200}, config)
        key = (config["configurable"]["thread_id"], "", "log")
        assert saver.ctx.cache.get(key) is not None
        with other.lease("held-elsewhere"):
            with pytest.raises(ThreadBusyError):
                with saver.lease("held-elsewhere"):
                    pass
        assert saver.ctx.cache.get(key) is not None


# --------------------------------------------------------------------------
# Cancellation (asyncio timeouts, task.cancel) of async saver calls
# --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_the_first_call_after_setup_survives_a_dead_connection(fresh_pg_url: str, mode: str) -> None:
    """The schema check of a saver's first call runs on a pooled connection too: when
    the server closed it meanwhile, the call is retried on a fresh one, as every call
    is, instead of raising an internal error."""
    from checkpoint_pg import AsyncPostgresSaver, PostgresSaver

    app = f"first-{uuid.uuid4().hex[:8]}"
    url = f"{fresh_pg_url}?application_name={app}"
    config = {"configurable": {"thread_id": "first-call"}}
    if mode == "sync":
        with PostgresSaver.from_conn_string(fresh_pg_url) as admin:
            admin.setup()
        with PostgresSaver.from_conn_string(url, pool_size=1) as saver:
            assert pg_terminate(fresh_pg_url, application_name=app) == 1
            assert saver.get_tuple(config) is None
    else:
        async with AsyncPostgresSaver.from_conn_string(fresh_pg_url) as admin:
            await admin.asetup()
        async with AsyncPostgresSaver.from_conn_string(url, pool_size=1) as saver:
            assert await asyncio.to_thread(pg_terminate, fresh_pg_url, application_name=app) == 1
            assert await saver.aget_tuple(config) is None


async def test_a_cancellation_during_the_reconnect_is_not_lost(fresh_pg_url: str) -> None:
    """A call that met a dead pooled connection checks the pool before it runs again;
    psycopg_pool's check takes a cancellation arriving then for a broken connection's
    and goes on. The caller's cancellation must still end the call (a graph run under
    a timeout would otherwise go on past its deadline)."""
    from checkpoint_pg import AsyncPostgresSaver

    app = f"cancel-{uuid.uuid4().hex[:8]}"
    async with AsyncPostgresSaver.from_conn_string(f"{fresh_pg_url}?application_name={app}", pool_size=2) as saver:
        await saver.asetup()
        config = {"configurable": {"thread_id": "cancel-reconnect"}}
        await asyncio.gather(saver.aget_tuple(config), saver.aget_tuple(config))  # two connections
        real = saver._adrop_dead_connections

        async def cancelled_while_checking() -> None:
            asyncio.current_task().cancel()  # the caller's timeout fires now
            await real()

        saver._adrop_dead_connections = cancelled_while_checking
        assert await asyncio.to_thread(pg_terminate, fresh_pg_url, application_name=app) >= 1
        with pytest.raises(asyncio.CancelledError):
            await saver.aget_tuple(config)
        saver._adrop_dead_connections = real
        assert await saver.aget_tuple(config) is None


async def test_a_write_cancelled_in_flight_runs_to_its_end(fresh_pg_url: str) -> None:
    """A put whose caller is cancelled while its statement waits (here on a row lock
    another session holds) still completes, bookkeeping included, and the caller then
    gets CancelledError: cut off half-way, its SQL could commit without what keeps
    each message stored once. The saver goes on working."""
    import psycopg

    from checkpoint_pg import AsyncPostgresSaver

    async with AsyncPostgresSaver.from_conn_string(fresh_pg_url) as saver:
        await saver.asetup()
        thread = f"inflight-{uuid.uuid4().hex[:8]}"
        config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        v1 = saver.get_next_version(None, None)
        first = empty_checkpoint()
        first["channel_values"] = {"n": 1}
        first["channel_versions"] = {"n": v1}
        config = await saver.aput(config, first, {"step": 0}, {"n": v1})
        blocker = await psycopg.AsyncConnection.connect(fresh_pg_url)
        await blocker.execute("SELECT 1 FROM cpg_threads WHERE thread_id = %s FOR UPDATE", (thread,))
        v2 = saver.get_next_version(v1, None)
        second = empty_checkpoint()
        second["channel_values"] = {"n": 2}
        second["channel_versions"] = {"n": v2}
        put = asyncio.create_task(saver.aput(config, second, {"step": 1}, {"n": v2}))
        # the put waits for the lock (a fixed pause could cancel it before it was sent)
        await asyncio.to_thread(wait_for_blocked, fresh_pg_url, blocker.info.backend_pid)
        put.cancel()
        await asyncio.sleep(0.1)
        assert not put.done()  # still finishing its write
        await blocker.commit()
        await blocker.close()
        with pytest.raises(asyncio.CancelledError):
            await put
        got = await saver.aget_tuple({"configurable": {"thread_id": thread}})
        assert got.checkpoint["id"] == second["id"] and got.checkpoint["channel_values"] == {"n": 2}


def _step(n: int, prev: Any = None) -> tuple[dict[str, Any], Any]:
    from checkpoint_pg import AsyncPostgresSaver

    v = AsyncPostgresSaver.get_next_version(None, prev, None)  # type: ignore[arg-type]
    cp = empty_checkpoint()
    cp["channel_values"] = {"n": n}
    cp["channel_versions"] = {"n": v}
    return cp, v


async def _row_locked_thread(saver: Any, url: str) -> tuple[dict[str, Any], Any, Any]:
    """A thread with one checkpoint whose row another session holds FOR UPDATE: the
    next put on it waits (holding its connection) until ``blocker`` commits.
    (config of that checkpoint, its version of "n", blocker)."""
    import psycopg

    busy = f"busy-{uuid.uuid4().hex[:8]}"
    cp, v = _step(1)
    config = await saver.aput({"configurable": {"thread_id": busy, "checkpoint_ns": ""}}, cp, {}, {"n": v})
    blocker = await psycopg.AsyncConnection.connect(url)
    await blocker.execute("SELECT 1 FROM cpg_threads WHERE thread_id = %s FOR UPDATE", (busy,))
    return config, v, blocker


async def test_a_write_cancelled_while_waiting_for_a_connection_ends_at_once(
    fresh_pg_url: str,
) -> None:
    """A write still waiting for a pooled connection has sent nothing: cancelling it
    (a graph run's timeout while the pool is exhausted) ends it at once, not once
    a connection frees up, and stores nothing. A lease cancelled there is not
    given back either (it was never taken), so its caller does not wait for a
    connection to release it."""
    from checkpoint_pg import AsyncPostgresSaver

    async with AsyncPostgresSaver.from_conn_string(fresh_pg_url, pool_size=1) as saver:
        await saver.asetup()
        config, v, blocker = await _row_locked_thread(saver, fresh_pg_url)
        busy = config["configurable"]["thread_id"]
        cp2, v2 = _step(2, v)
        # holds the pool's only connection, waiting for the row lock
        holder = asyncio.create_task(saver.aput(config, cp2, {}, {"n": v2}))
        await asyncio.to_thread(wait_for_blocked, fresh_pg_url, blocker.info.backend_pid)
        waiting = f"waiting-{uuid.uuid4().hex[:8]}"
        cp3, v3 = _step(3)
        put = asyncio.create_task(
            saver.aput({"configurable": {"thread_id": waiting, "checkpoint_ns": ""}}, cp3, {}, {"n": v3})
        )
        await await_until(lambda: pool_waiting(saver._pool), "the put waiting for the pool's connection")
        assert not put.done()
        put.cancel()
        # waiting for the holder would be for ever (until the blocker commits, below): a
        # bound well above a loaded machine's pause still tells the two apart
        done, _ = await asyncio.wait({put}, timeout=10)
        assert put in done and put.cancelled()  # not waiting for the holder

        async def leased() -> None:
            async with saver.alease(f"lease-{uuid.uuid4().hex[:8]}"):
                await asyncio.sleep(0)

        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(leased(), 0.3)
        assert time.monotonic() - started < 10  # no release waiting for a connection (for ever)
        assert not holder.done()

        await blocker.commit()
        await blocker.close()
        await holder
        assert (await saver.aget_tuple({"configurable": {"thread_id": busy}})).checkpoint["id"] == cp2["id"]
        assert await saver.aget_tuple({"configurable": {"thread_id": waiting}}) is None
        # the saver goes on working, on the thread whose put was cancelled too
        await saver.aput({"configurable": {"thread_id": waiting, "checkpoint_ns": ""}}, cp3, {}, {"n": v3})
        assert (await saver.aget_tuple({"configurable": {"thread_id": waiting}})).checkpoint["id"] == cp3["id"]


async def test_a_lease_whose_release_waits_for_a_connection_is_given_back_when_cancelled(
    fresh_pg_url: str,
) -> None:
    """alease's block ends, and its release waits for the pool's only connection
    (another call holds it); the run's timeout fires meanwhile. The lease was taken,
    so it is still given back (once a connection frees) before TimeoutError is
    raised: the next alease on the thread succeeds at once, not after the ttl."""
    from checkpoint_pg import AsyncPostgresSaver

    async with AsyncPostgresSaver.from_conn_string(fresh_pg_url, pool_size=1) as saver:
        await saver.asetup()
        config, v, blocker = await _row_locked_thread(saver, fresh_pg_url)
        leased_thread = f"leased-{uuid.uuid4().hex[:8]}"
        holder = None
        timeouts: list[asyncio.Timeout] = []

        async def run() -> None:
            nonlocal holder
            async with asyncio.timeout(None) as timeout:
                timeouts.append(timeout)
                async with saver.alease(leased_thread):
                    cp2, v2 = _step(2, v)
                    # takes the pool's only connection, waiting for the row lock
                    holder = asyncio.create_task(saver.aput(config, cp2, {}, {"n": v2}))
                    await asyncio.to_thread(wait_for_blocked, fresh_pg_url, blocker.info.backend_pid)
                # the release waits for the connection when the timeout fires

        task = asyncio.create_task(run())
        # fixed pauses (a 0.6 s timeout, the blocker's commit at 0.9 s) let a loaded
        # machine fire the timeout before the release waited, or free the connection first
        await await_until(lambda: timeouts and pool_waiting(saver._pool), "the release waiting for the connection")
        timeouts[0].reschedule(asyncio.get_running_loop().time())
        await await_until(timeouts[0].expired, "the run's timeout firing")
        await blocker.commit()
        await blocker.close()
        with pytest.raises(TimeoutError):
            await task
        await holder
        async with saver.alease(leased_thread, ttl=5):
            pass  # given back: not ThreadBusyError


async def test_a_lease_whose_take_was_retried_is_given_back_when_cancelled_unsent(
    fresh_pg_url: str,
) -> None:
    """The take commits, but its connection is lost before the answer (ConnectionLost):
    the take is retried, and the run's timeout fires while the retry waits for the
    pool's only connection. That retry sent nothing, but the first attempt took the
    lease: it is given back, not left held for its ttl."""
    from checkpoint_pg import AsyncPostgresSaver
    from checkpoint_pg.shells.errors import ConnectionLost

    async with AsyncPostgresSaver.from_conn_string(fresh_pg_url, pool_size=1) as saver:
        await saver.asetup()
        thread = f"retried-{uuid.uuid4().hex[:8]}"
        real = saver._arun
        occupied = asyncio.Event()
        first = [True]
        timeouts: list[asyncio.Timeout] = []
        occupiers: list[asyncio.Future[None]] = []

        async def occupy() -> None:
            async with saver._connection():
                occupied.set()
                # the run's timeout fires while the retry waits for the connection (a
                # fixed 0.3 s from the start could fire before, on a loaded machine)
                await await_until(lambda: pool_waiting(saver._pool), "the retry waiting for the connection")
                timeouts[0].reschedule(asyncio.get_running_loop().time())
                await asyncio.sleep(0.3)

        async def arun(op: Any, *, txn: bool = True, write: bool = False) -> Any:
            if write and first[0]:
                first[0] = False
                await real(op, txn=txn, write=write)  # the take commits...
                # (another call takes the connection)
                occupiers.append(asyncio.ensure_future(occupy()))
                await occupied.wait()
                raise ConnectionLost("server closed the connection unexpectedly")  # ...unanswered
            return await real(op, txn=txn, write=write)

        saver._arun = arun  # type: ignore[method-assign]
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(None) as timeout:
                timeouts.append(timeout)
                async with saver.alease(thread, ttl=60):
                    pass
        saver._arun = real  # type: ignore[method-assign]
        await occupiers[0]  # the occupier gives the connection back
        async with saver.alease(thread, ttl=5):
            pass  # given back: not ThreadBusyError


async def test_a_lease_taken_while_its_caller_was_cancelled_is_given_back(tmp_path) -> None:
    """alease under a timeout that fires while the lease is being taken (here: another
    connection holds SQLite's write lock): the lease is given back, so the run can take
    it again at once instead of finding the thread leased to nobody for the ttl."""
    from checkpoint_pg import AsyncSqliteSaver

    path = str(tmp_path / "lease.db")
    async with AsyncSqliteSaver.from_conn_string(path) as saver:
        await saver.asetup()
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        timeouts: list[asyncio.Timeout] = []

        def commit_once_expired() -> None:
            # the lock is freed once the timeout fired: a timer's fixed 0.4 s could free it
            # first on a loaded machine, the take then done before the timeout
            wait_until(lambda: timeouts and timeouts[0].expired(), "the run's timeout firing")
            other.execute("COMMIT")

        committer = threading.Thread(target=commit_once_expired)
        committer.start()

        async def run() -> None:
            async with saver.alease("leased-run"):
                await asyncio.sleep(0)

        with pytest.raises(asyncio.TimeoutError):
            async with asyncio.timeout(0.1) as timeout:
                timeouts.append(timeout)
                await run()
        committer.join(30)
        other.close()
        await run()  # not ThreadBusyError


async def test_a_sync_savers_alease_taken_while_its_caller_was_cancelled_is_given_back(
    tmp_path,
) -> None:
    """A sync saver serves ``async with saver.alease(...)`` too, its take running in a
    worker thread. Cancelled while the take waits there (another connection holds
    SQLite's write lock), the take still commits once the lock frees: the lease is
    given back then, not left held by nobody for its ttl (ThreadBusyError for 300 s)."""
    from checkpoint_pg import SqliteSaver

    path = str(tmp_path / "sync-lease.db")
    with SqliteSaver.from_conn_string(path) as saver:
        saver.setup()
        assert saver.get_tuple({"configurable": {"thread_id": "warm"}}) is None  # schema checked
        real = saver._run
        started = threading.Event()

        def run_op(op: Any, **kwargs: Any) -> Any:
            # set once the take holds the connection's lock, before its BEGIN IMMEDIATE
            return real(after_first_yield(op, started.set), **kwargs)

        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")

        async def leased() -> None:
            async with saver.alease("sync-leased-run"):
                await asyncio.sleep(0)

        saver._run = run_op  # type: ignore[method-assign]
        task = asyncio.create_task(leased())
        assert await asyncio.to_thread(started.wait, 10)  # the take waits for the lock
        saver._run = real  # type: ignore[method-assign]
        task.cancel()
        other.execute("COMMIT")  # the take goes on and commits
        other.close()
        with pytest.raises(asyncio.CancelledError):
            await task
        await leased()  # not ThreadBusyError (its take runs after the first's: one lock)


@pytest.mark.parametrize("method", ["aput", "aput_writes", "adelete_thread", "acopy_thread", "aprune"])
async def test_a_sync_savers_async_write_cancelled_in_its_thread_runs_to_its_end(
    make_saver, saver_target, backend: str, method: str
) -> None:
    """A sync saver's async write runs in a worker thread, where a cancellation cannot stop
    it. Cancelled while the write waits there (another connection holds SQLite's write lock,
    or Postgres's tables), the caller hears of it only once the write is done, as with the
    async savers: told at once, code reacting to the cancellation raced the late write."""
    import psycopg

    with make_saver() as saver:
        thread = f"sync-cancel-{uuid.uuid4().hex[:8]}"
        config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        first, v1 = _step(1)
        config = saver.put(config, first, {"step": 0}, {"n": v1})
        second, v2 = _step(2, v1)
        calls = {
            "aput": lambda: saver.aput(config, second, {"step": 1}, {"n": v2}),
            "aput_writes": lambda: saver.aput_writes(config, [("n", 3)], "task-1"),
            "adelete_thread": lambda: saver.adelete_thread(thread),
            "acopy_thread": lambda: saver.acopy_thread(thread, f"{thread}-copy"),
            "aprune": lambda: saver.aprune([thread], strategy="delete"),
        }
        if backend == "sqlite":
            blocker = sqlite3.connect(saver_target.conn_string, isolation_level=None, check_same_thread=False)
            blocker.execute("BEGIN IMMEDIATE")
        else:
            blocker = psycopg.connect(saver_target.conn_string)
            names = ", ".join(qualified(saver, t) for t in TABLES)
            blocker.execute(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE")
        task = asyncio.create_task(calls[method]())
        # the write waits for the lock in its thread (a fixed 0.3 s could cancel it before
        # its thread took it up, on a loaded machine): in its BEGIN IMMEDIATE, or seen
        # waiting by the server
        if backend == "sqlite":
            await await_until(
                lambda: any(paused_on(t, 'execute("BEGIN IMMEDIATE" if write') for t in threading.enumerate()),
                "the write waiting for the file's lock",
            )
        else:
            await asyncio.to_thread(wait_for_blocked, saver_target.conn_string, blocker.info.backend_pid)
        task.cancel()
        await asyncio.sleep(0.3)
        ended_early = task.done()
        blocker.execute("COMMIT")
        blocker.close()
        assert not ended_early  # it was still finishing its write
        with pytest.raises(asyncio.CancelledError):
            await task
        got = saver.get_tuple({"configurable": {"thread_id": thread}})
        if method == "aput":
            assert got.checkpoint["id"] == second["id"]
        elif method == "aput_writes":
            assert [(w[1], w[2]) for w in got.pending_writes] == [("n", 3)]
        elif method == "acopy_thread":
            assert saver.get_tuple({"configurable": {"thread_id": f"{thread}-copy"}}) is not None
        else:
            assert got is None


async def test_a_lease_cancelled_while_the_first_calls_schema_check_waits_ends_at_once(
    fresh_pg_url: str,
) -> None:
    """A saver's first call (after asetup too) checks the schema revision before its
    write: a lease take cancelled while that check waits for the pool's only
    connection has sent nothing, so there is nothing to give back and alease ends
    at once instead of waiting for a connection to release a lease never taken."""
    from checkpoint_pg import AsyncPostgresSaver

    async with AsyncPostgresSaver.from_conn_string(fresh_pg_url, pool_size=1) as saver:
        await saver.asetup()  # leaves the schema check to the next call
        async with saver._pool.connection():  # another call holds the only connection

            async def leased() -> None:
                async with saver.alease(f"lease-{uuid.uuid4().hex[:8]}"):
                    await asyncio.sleep(0)

            task = asyncio.create_task(asyncio.wait_for(leased(), 0.3))
            # waiting for the connection would be for ever (it is held to the block's end)
            done, _ = await asyncio.wait({task}, timeout=10)
            assert task in done  # not waiting for the connection to free
            with pytest.raises(asyncio.TimeoutError):
                task.result()


async def test_a_call_made_while_handling_a_cancellation_still_survives_a_dead_connection(
    fresh_pg_url: str,
) -> None:
    """Cleanup after a cancellation (``except CancelledError: ...; raise``, a
    ``finally``) runs while the task counts the cancellation as being handled. A call
    made there that meets a dead pooled connection runs again on a fresh one, as
    every call does: only a cancellation arriving during the call ends it."""
    from checkpoint_pg import AsyncPostgresSaver

    app = f"cleanup-{uuid.uuid4().hex[:8]}"
    async with AsyncPostgresSaver.from_conn_string(
        f"{fresh_pg_url}?application_name={app}", pool_size=1
    ) as saver:
        await saver.asetup()
        thread = f"cleanup-{uuid.uuid4().hex[:8]}"
        config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        cp, v = _step(1)
        await saver.aput(config, cp, {}, {"n": v})
        cp2, v2 = _step(2, v)
        got = []

        async def run() -> None:
            try:
                await asyncio.sleep(10)  # the run is cancelled here
            except asyncio.CancelledError:
                # the server closed the idle pooled connection meanwhile
                assert await asyncio.to_thread(pg_terminate, fresh_pg_url, application_name=app) == 1
                got.append(await saver.aget_tuple(config))
                await saver.aput(got[0].config, cp2, {}, {"n": v2})
                raise

        task = asyncio.create_task(run())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert got[0].checkpoint["id"] == cp["id"]
        assert (await saver.aget_tuple(config)).checkpoint["id"] == cp2["id"]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_pool_timeout_is_raised_once_not_taken_for_a_dead_connection(
    fresh_pg_url: str, mode: str
) -> None:
    """Every connection of the caller's pool is busy for its whole timeout: the call
    fails with the pool's PoolTimeout after one wait. psycopg_pool raises it as an
    OperationalError without a SQLSTATE, which is no sign of a dead connection: run
    again, the call waited the pool's timeout twice (a run's deadline missed by as
    much) and dropped every thread's cached lists. A lease whose take timed out so
    was never taken: no release waits for a connection a third time."""
    from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

    from checkpoint_pg import AsyncPostgresSaver, PostgresSaver

    config = {"configurable": {"thread_id": "pool-timeout"}}
    kwargs = {"autocommit": True, "prepare_threshold": None}
    if mode == "sync":
        with ConnectionPool(fresh_pg_url, min_size=1, max_size=1, timeout=0.3, kwargs=kwargs) as pool:
            saver = PostgresSaver(pool)
            saver.setup()
            assert saver.get_tuple(config) is None
            with pool.connection():  # another call holds the only connection
                pool.pop_stats()
                with pytest.raises(PoolTimeout):
                    saver.get_tuple(config)
                with pytest.raises(PoolTimeout):  # and no release of a lease never taken
                    with saver.lease("pool-timeout"):
                        pass
                stats = pool.pop_stats()
            assert saver.get_tuple(config) is None
    else:
        async with AsyncConnectionPool(
            fresh_pg_url, min_size=1, max_size=1, timeout=0.3, kwargs=kwargs
        ) as pool:
            saver = AsyncPostgresSaver(pool)
            await saver.asetup()
            assert await saver.aget_tuple(config) is None
            async with pool.connection():
                pool.pop_stats()
                with pytest.raises(PoolTimeout):
                    await saver.aget_tuple(config)
                with pytest.raises(PoolTimeout):  # and no release of a lease never taken
                    async with saver.alease("pool-timeout"):
                        pass
                stats = pool.pop_stats()
            assert await saver.aget_tuple(config) is None
    assert stats.get("requests_errors") == 2, stats  # one wait for a connection per call
