"""Adversarial review of the async savers: cancellation at every point, concurrency,
sync methods from other threads, lifecycle (tests/test_async_review.py)."""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from faultkit import await_until, paused_on, pool_waiting, wait_until
from graphs import build_tool_agent, normalize, weather_question


class Recorder(InMemorySaver):
    """InMemorySaver noting every put and put_writes a graph run makes, to replay them."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def put(self, config, checkpoint, metadata, new_versions):  # type: ignore[override]
        self.calls.append(("aput", copy.deepcopy((config, checkpoint, metadata, new_versions))))
        return super().put(config, checkpoint, metadata, new_versions)

    def put_writes(self, config, writes, task_id, task_path=""):  # type: ignore[override]
        self.calls.append(("aput_writes", copy.deepcopy((config, list(writes), task_id, task_path))))
        return super().put_writes(config, writes, task_id, task_path)


def recorded_run() -> Recorder:
    rec = Recorder()
    graph = build_tool_agent(rec)
    cfg = {"configurable": {"thread_id": "rec"}}
    graph.invoke(weather_question("Paris"), cfg)
    graph.invoke(weather_question("Rome"), cfg)
    return rec


def on_thread(call: tuple[str, tuple[Any, ...]], thread: str) -> tuple[str, tuple[Any, ...]]:
    name, args = call
    args = copy.deepcopy(args)
    args[0]["configurable"]["thread_id"] = thread
    return name, args


async def listing(saver: Any, thread: str) -> list[Any]:
    out = []
    async for t in saver.alist({"configurable": {"thread_id": thread}}):
        out.append(
            (
                t.config["configurable"]["checkpoint_id"],
                t.parent_config and t.parent_config["configurable"]["checkpoint_id"],
                normalize(t.checkpoint["channel_values"]),
                sorted(normalize([list(w) for w in t.pending_writes or []]), key=repr),
            )
        )
    return out


# --------------------------------------------------------------------------
# Real graphs under astream / ainvoke, every durability, many runs at once
# --------------------------------------------------------------------------

import operator  # noqa: E402
from typing import Annotated  # noqa: E402

from langgraph.graph import START, StateGraph  # noqa: E402
from langgraph.types import Command  # noqa: E402
from typing_extensions import TypedDict  # noqa: E402

from graphs import (  # noqa: E402
    athread_summary,
    build_delta_graph,
    build_map_reduce,
    build_review_graph,
    build_subgraph_graph,
)


class PairState(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


def build_failing_pair(checkpointer: Any, fail: list[bool]) -> Any:
    """``steady`` and ``flaky`` in one superstep; ``flaky`` raises while ``fail[0]``,
    after ``steady`` finished (its write is the superstep's pending write)."""

    async def steady(state: PairState) -> PairState:
        return {"log": ["steady"]}

    async def flaky(state: PairState) -> PairState:
        await asyncio.sleep(0.01)
        if fail[0]:
            raise RuntimeError("flaky failed")
        return {"log": ["flaky"]}

    async def join(state: PairState) -> PairState:
        return {"log": [f"join({len(state['log'])})"]}

    builder = StateGraph(PairState)
    for name, node in (("steady", steady), ("flaky", flaky)):
        builder.add_node(name, node)
        builder.add_edge(START, name)
    builder.add_node("join", join)
    builder.add_edge(["steady", "flaky"], "join")
    return builder.compile(checkpointer=checkpointer)


async def graph_scenarios(saver: Any, durability: str, tag: str) -> dict[str, Any]:
    """Several graphs run through ``saver`` with ``durability``; what they read back."""
    out: dict[str, Any] = {}

    def cfg(name: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": f"{tag}-{name}-{durability}"}}

    async def drain(graph: Any, inp: Any, config: Any) -> list[Any]:
        return [normalize(c) async for c in graph.astream(inp, config, durability=durability)]

    agent = build_tool_agent(saver)
    c = cfg("agent")
    out["agent_stream"] = await drain(agent, weather_question("Paris"), c)
    out["agent_stream2"] = await drain(agent, weather_question("Rome"), c)
    out["agent"] = await athread_summary(agent, c)

    review = build_review_graph(saver)
    c = cfg("review")
    out["review_stream"] = await drain(review, {"topic": "bees"}, c)
    out["review_resume1"] = normalize(await review.ainvoke(Command(resume=True), c, durability=durability))
    out["review_resume2"] = normalize(await review.ainvoke(Command(resume="ok"), c, durability=durability))
    out["review"] = await athread_summary(review, c)

    mapper = build_map_reduce(saver, interrupt_before_work=True)
    c = cfg("map")
    out["map_stream"] = await drain(mapper, {"items": [" a", "bb ", "ccc", "dddd", "e"]}, c)
    out["map_resume"] = await drain(mapper, None, c)
    out["map"] = await athread_summary(mapper, c)

    sub = build_subgraph_graph(saver)
    c = cfg("sub")
    out["sub_stream"] = await drain(sub, {"topic": " Owls "}, c)
    out["sub_resume"] = normalize(await sub.ainvoke(Command(resume="night"), c, durability=durability))
    out["sub"] = await athread_summary(sub, c, subgraphs=True)

    delta = build_delta_graph(saver)
    c = cfg("delta")
    out["delta_stream"] = await drain(delta, {"target": 5}, c)
    out["delta"] = await athread_summary(delta, c)

    fail = [True]
    pair = build_failing_pair(saver, fail)
    c = cfg("pair")
    with pytest.raises(RuntimeError, match="flaky failed"):
        await pair.ainvoke({"log": []}, c, durability=durability)
    out["pair_failed"] = await athread_summary(pair, c)
    fail[0] = False
    out["pair_resumed"] = normalize(await pair.ainvoke(None, c, durability=durability))
    out["pair"] = await athread_summary(pair, c)
    return out


def assert_same_observations(ours: dict[str, Any], reference: dict[str, Any]) -> None:
    from test_graphs import first_difference  # noqa: PLC0415

    assert ours.keys() == reference.keys()
    for key in reference:
        diff = first_difference(ours[key], reference[key], key)
        assert diff is None, f"differs from InMemorySaver at {diff}"


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
async def test_graphs_under_every_durability_match_in_memory(async_saver: Any, durability: str) -> None:
    """Tool agent, two interrupts in one node, Send fan-out resumed, a subgraph that
    interrupts, a DeltaChannel loop, a node failing mid-superstep then resumed: run
    through the async saver as LangGraph's async loop drives it, then read back
    (aget_state_history, pending writes) as InMemorySaver reads the same runs."""
    reference = await graph_scenarios(InMemorySaver(), durability, "ref")
    ours = await graph_scenarios(async_saver, durability, uuid.uuid4().hex[:8])
    assert_same_observations(ours, reference)


async def test_many_graph_runs_at_once_on_one_async_saver(async_saver: Any) -> None:
    """The same scenarios, 3 durabilities x 3 copies all at once on one saver
    (interleaving at every await, a pool's connections all in use): each run reads
    back as it does alone on InMemorySaver."""
    durabilities = ["sync", "async", "exit"]
    references = {d: await graph_scenarios(InMemorySaver(), d, "ref") for d in durabilities}
    runs = [(d, f"many{i}-{uuid.uuid4().hex[:6]}") for d in durabilities for i in range(3)]
    results = await asyncio.gather(*(graph_scenarios(async_saver, d, tag) for d, tag in runs))
    for (d, _), ours in zip(runs, results):
        assert_same_observations(ours, references[d])


# --------------------------------------------------------------------------
# Pools closed under waiting calls; sync methods when the saver's loop is gone
# --------------------------------------------------------------------------

import threading  # noqa: E402

from langgraph.checkpoint.base import empty_checkpoint  # noqa: E402


def one_checkpoint(saver: Any, thread: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(config, checkpoint, new_versions) of a thread's first checkpoint."""
    version = saver.get_next_version(None, None)
    cp = empty_checkpoint()
    cp["channel_values"] = {"n": 1}
    cp["channel_versions"] = {"n": version}
    return {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}, cp, {"n": version}


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_call_waiting_for_a_connection_when_the_pool_closes_says_the_saver_closed(
    make_async_saver: Any,
) -> None:
    """The pool's only connection is in use and a put waits for it when the saver's
    block ends (its pool closes): the put raises SaverClosedError, as a call made after
    the close does, not psycopg_pool's own PoolClosed("the pool 'pool-3' is closed"),
    which is no error of this package and names neither the saver nor what to do."""
    from checkpoint_pg import SaverClosedError

    async with make_async_saver(pool_size=1) as saver:
        assert await saver.aget_tuple({"configurable": {"thread_id": "warm"}}) is None
        config, cp, versions = one_checkpoint(saver, "pool-closed")
        async with saver._pool.connection():  # the pool's only connection, held
            put = asyncio.create_task(saver.aput(config, cp, {}, versions))
            # waiting for the connection (after a fixed pause it might not have asked yet)
            await await_until(lambda: pool_waiting(saver._pool), "the put waiting for the connection")
            assert not put.done()
            await saver._pool.close()
            with pytest.raises(SaverClosedError, match="nothing was sent"):
                await put
    async with make_async_saver() as fresh:
        assert await fresh.aget_tuple(config) is None


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_sync_call_waiting_for_a_connection_when_the_pool_closes_says_the_saver_closed(
    make_saver: Any,
) -> None:
    """The same on PostgresSaver: a thread waiting for the pool's only connection."""
    from checkpoint_pg import SaverClosedError

    with make_saver(pool_size=1) as saver:
        config, cp, versions = one_checkpoint(saver, "pool-closed-sync")
        assert saver.get_tuple(config) is None
        raised: list[BaseException] = []

        def put() -> None:
            try:
                saver.put(config, cp, {}, versions)
            except BaseException as exc:  # noqa: BLE001
                raised.append(exc)

        with saver._pool.connection():
            worker = threading.Thread(target=put)
            worker.start()
            wait_until(lambda: pool_waiting(saver._pool), "the put waiting for the connection")
            assert worker.is_alive()  # waiting for the connection
            saver._pool.close()
            worker.join(10)
        assert len(raised) == 1 and isinstance(raised[0], SaverClosedError), raised
    with make_saver() as fresh:
        assert fresh.get_tuple(config) is None


def _async_saver_of(backend: str, saver_target: Any) -> Any:
    """A coroutine function creating an async saver on this test's storage (no block)."""
    from checkpoint_pg import AsyncPostgresSaver, AsyncSqliteSaver  # noqa: PLC0415

    async def create() -> Any:
        if backend == "sqlite":
            saver = AsyncSqliteSaver(saver_target.conn_string)
        else:
            import psycopg  # noqa: PLC0415

            conn = await psycopg.AsyncConnection.connect(saver_target.conn_string, autocommit=True)
            saver = AsyncPostgresSaver(conn, **saver_target.options)
        await saver.asetup()
        return saver

    return create


def _in_a_thread(fn: Any) -> tuple[bool, Any]:
    """(finished within 30 s, what ``fn`` returned or raised) from a daemon thread: a
    call that hangs does so for ever, and a loaded machine may take 5 s for one that
    does not (a put waiting 1.5 s for a file's lock)."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # noqa: BLE001
            out.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(30)
    return not worker.is_alive(), (out[0] if out else None)


@pytest.mark.parametrize("where", ["this thread", "another thread"])
def test_sync_methods_of_an_async_saver_whose_loop_stopped_raise_instead_of_hanging(
    backend: str, saver_target: Any, where: str
) -> None:
    """An async saver created in ``loop.run_until_complete(...)``, its sync method then
    called once that loop stopped (from sync code, or a thread): the coroutine was
    handed to a loop nobody runs and the call waited for ever. It raises
    AsyncMisuseError saying why, and does nothing."""
    from checkpoint_pg import AsyncMisuseError

    loop = asyncio.new_event_loop()
    try:
        saver = loop.run_until_complete(_async_saver_of(backend, saver_target)())
        config = {"configurable": {"thread_id": "stopped-loop"}}
        if where == "this thread":
            with pytest.raises(AsyncMisuseError, match="not running"):
                saver.get_tuple(config)
        else:
            finished, got = _in_a_thread(lambda: saver.get_tuple(config))
            assert finished, "the sync call hung"
            assert isinstance(got, AsyncMisuseError) and "not running" in str(got)
        # served again once the loop runs
        assert loop.run_until_complete(saver.aget_tuple(config)) is None
    finally:
        if backend == "postgres":
            loop.run_until_complete(saver._conn.close())
        else:
            loop.run_until_complete(saver.aclose())
        loop.close()


def test_a_sync_call_handed_to_a_loop_that_then_stops_raises_instead_of_hanging(
    backend: str, saver_target: Any
) -> None:
    """The loop was running when a thread called a sync method, and stopped before it
    ran the call's coroutine: the call waited for ever. It raises AsyncMisuseError saying
    the loop stopped, and the call's coroutine never runs when the loop runs again."""
    from checkpoint_pg import AsyncMisuseError

    loop = asyncio.new_event_loop()
    saver = loop.run_until_complete(_async_saver_of(backend, saver_target)())
    config = {"configurable": {"thread_id": "loop-stops"}}
    release = threading.Event()

    def hold_then_stop() -> None:
        # the loop is running, blocked here: the call below is handed to it meanwhile
        release.wait(10)
        loop.stop()

    loop.call_soon(hold_then_stop)
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    target = {"configurable": {"thread_id": "loop-stops", "checkpoint_ns": "", "checkpoint_id": "x"}}
    got: list[Any] = []

    def call() -> None:
        try:
            got.append(saver.put_writes(target, [("ch", 1)], "task-1"))
        except BaseException as exc:  # noqa: BLE001
            got.append(exc)

    handed = threading.Event()
    real_call_soon_threadsafe = loop.call_soon_threadsafe

    def noted_call_soon_threadsafe(*args: Any, **kwargs: Any) -> Any:
        handed.set()  # (run_coroutine_threadsafe hands the coroutine over so)
        return real_call_soon_threadsafe(*args, **kwargs)

    loop.call_soon_threadsafe = noted_call_soon_threadsafe  # type: ignore[method-assign]
    caller = threading.Thread(target=call, daemon=True)
    try:
        caller.start()
        # the caller handed its coroutine over (see the assertion below): a fixed 1 s
        # could stop the loop first on a loaded machine
        assert handed.wait(30)
        release.set()
        runner.join(5)
        caller.join(5)
        assert not caller.is_alive(), "the sync call hung"
        (outcome,) = got
        # "stopped", not "not running": the call was handed over while the loop ran
        assert isinstance(outcome, AsyncMisuseError) and "stopped before the call finished" in str(
            outcome
        ), outcome
        # the cancelled coroutine never writes
        loop.run_until_complete(asyncio.sleep(0.05))
        tup = loop.run_until_complete(saver.aget_tuple(config))
        assert tup is None
    finally:
        release.set()
        if backend == "postgres":
            loop.run_until_complete(saver._conn.close())
        else:
            loop.run_until_complete(saver.aclose())
        loop.close()


def test_sync_methods_of_an_async_saver_whose_loop_closed_say_so(backend: str, saver_target: Any) -> None:
    """The saver's ``asyncio.run(...)`` ended: its sync methods raise AsyncMisuseError
    naming the closed loop (not asyncio's bare "Event loop is closed", nor a
    "coroutine was never awaited" warning)."""
    import warnings

    from checkpoint_pg import AsyncMisuseError

    saver = asyncio.run(_async_saver_of(backend, saver_target)())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a coroutine never awaited would warn
        with pytest.raises(AsyncMisuseError, match="event loop .* is closed"):
            saver.get_tuple({"configurable": {"thread_id": "closed-loop"}})
        with pytest.raises(AsyncMisuseError, match="event loop .* is closed"):
            list(saver.list(None))


# --------------------------------------------------------------------------
# Cancellation at many points of every call
# --------------------------------------------------------------------------

# event-loop iterations to let a call run before cancelling it: before it sends
# anything, while its statements are in flight, after it finished
CANCEL_AFTER = [0, 1, 2, 3, 5, 8, 13, 20, 40, 100]


async def cancelled_after(coro: Any, n: int) -> str:
    """Run ``coro`` as a task, cancel it after ``n`` loop iterations; how it ended."""
    task = asyncio.ensure_future(coro)
    for _ in range(n):
        await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return "cancelled"
    return "done"


async def replay(saver: Any, calls: list[Any], thread: str) -> None:
    for call in calls:
        name, args = on_thread(call, thread)
        await getattr(saver, name)(*args)


async def test_a_write_cancelled_anywhere_leaves_the_saver_and_the_thread_whole(
    make_async_saver: Any,
) -> None:
    """Each put / put_writes of two graph turns, cancelled after 0..100 loop
    iterations: the saver reads the thread as a new saver does (no cache of this
    process ahead of or behind the database), and the rest of the run, the cancelled
    call again first, stores the thread as InMemorySaver stores the run."""
    rec = recorded_run()
    reference = await listing(rec, "rec")
    # fresh: a second saver, which holds nothing of a thread before it reads it
    async with make_async_saver() as saver, make_async_saver() as fresh:
        for i in range(len(rec.calls)):
            for n in CANCEL_AFTER:
                thread = f"cancel-{i}-{n}"
                await replay(saver, rec.calls[:i], thread)
                name, args = on_thread(rec.calls[i], thread)
                outcome = await cancelled_after(getattr(saver, name)(*args), n)
                assert await listing(saver, thread) == await listing(fresh, thread), (i, n, outcome)
                await replay(saver, rec.calls[i:], thread)
                assert await listing(saver, thread) == reference, (i, n, outcome)


async def test_reads_leases_and_maintenance_cancelled_anywhere_leave_the_saver_working(
    make_async_saver: Any,
) -> None:
    """aget_tuple, alist, alease, adelete_thread, aprune and acopy_thread cancelled
    after 0..100 loop iterations: the thread (and its copy) reads the same through
    this saver and a new one, no lease is left held, and the thread can be run again."""
    rec = recorded_run()
    reference = await listing(rec, "rec")

    async def leased(saver: Any, thread: str) -> None:
        async with saver.alease(thread, ttl=60):
            await asyncio.sleep(0)

    calls = {
        "aget_tuple": lambda s, t: s.aget_tuple({"configurable": {"thread_id": t}}),
        "alist": lambda s, t: listing(s, t),
        "alease": leased,
        "adelete_thread": lambda s, t: s.adelete_thread(t),
        "aprune": lambda s, t: s.aprune([t], keep_last=2),
        "acopy_thread": lambda s, t: s.acopy_thread(t, f"{t}-copy"),
    }
    async with make_async_saver() as saver, make_async_saver() as fresh:
        await replay(saver, rec.calls, "base")
        for name, call in calls.items():
            for n in CANCEL_AFTER:
                thread = f"{name}-{n}"
                await saver.acopy_thread("base", thread)
                outcome = await cancelled_after(call(saver, thread), n)
                for t in (thread, f"{thread}-copy"):
                    assert await listing(saver, t) == await listing(fresh, t), (name, n, outcome)
                await saver.adelete_thread(thread)
                async with saver.alease(thread, ttl=5):  # not left held
                    await replay(saver, rec.calls, thread)
                assert await listing(saver, thread) == reference, (name, n, outcome)


# --------------------------------------------------------------------------
# from_conn_string interrupted while its pool waits for the server
# --------------------------------------------------------------------------

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/postgres"  # connection refused


async def test_async_from_conn_string_cancelled_while_connecting_closes_its_pool() -> None:
    """``asyncio.wait_for(...)`` around entering ``AsyncPostgresSaver.from_conn_string``
    of a server that does not answer: the caller gets TimeoutError, and the pool it
    was opening is closed, not left reconnecting for ever in background tasks (and
    holding connections once the server is back)."""
    import psycopg_pool

    from checkpoint_pg import AsyncPostgresSaver

    opened: list[Any] = []
    real_open = psycopg_pool.AsyncConnectionPool.open

    async def noted_open(pool: Any, *args: Any, **kwargs: Any) -> None:
        opened.append(pool)
        await real_open(pool, *args, **kwargs)

    async def enter() -> None:
        async with AsyncPostgresSaver.from_conn_string(UNREACHABLE):
            pass

    psycopg_pool.AsyncConnectionPool.open = noted_open  # type: ignore[method-assign]
    try:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(enter(), 0.5)
    finally:
        psycopg_pool.AsyncConnectionPool.open = real_open  # type: ignore[method-assign]
    assert len(opened) == 1 and opened[0].closed

    def pool_tasks() -> list[Any]:
        return [t for t in asyncio.all_tasks() if "ConnectionPool" in t.get_coro().__qualname__]

    # the pool's cancelled tasks end (a fixed 0.1 s on a loaded machine: maybe not yet);
    # one reconnecting would go on for minutes (psycopg_pool's reconnect_timeout)
    deadline = time.monotonic() + 30
    while pool_tasks() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    left = pool_tasks()
    assert left == []


def test_sync_from_conn_string_interrupted_while_connecting_closes_its_pool() -> None:
    """The same for PostgresSaver, interrupted by a signal (Ctrl-C, an alarm) while
    its pool waits for the server: no pool worker thread is left reconnecting."""
    import signal

    import psycopg_pool

    from checkpoint_pg import PostgresSaver

    class Interrupted(Exception):
        pass

    def interrupt(*_: Any) -> None:
        raise Interrupted

    opened: list[Any] = []
    real_open = psycopg_pool.ConnectionPool.open

    def noted_open(pool: Any, *args: Any, **kwargs: Any) -> None:
        opened.append(pool)
        real_open(pool, *args, **kwargs)

    previous = signal.signal(signal.SIGALRM, interrupt)
    psycopg_pool.ConnectionPool.open = noted_open  # type: ignore[method-assign]
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(Interrupted):
            with PostgresSaver.from_conn_string(UNREACHABLE):
                pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        psycopg_pool.ConnectionPool.open = real_open  # type: ignore[method-assign]
    assert len(opened) == 1 and opened[0].closed
    name = opened[0].name
    for _ in range(300):  # a deadline: ended as soon as the pool's threads are gone
        if not any(t.name.startswith(name) for t in threading.enumerate()):
            break
        threading.Event().wait(0.1)
    assert not any(t.name.startswith(name) for t in threading.enumerate())


# --------------------------------------------------------------------------
# A connection given to the saver, closed while calls wait for their turn on it
# --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_async_calls_waiting_for_the_savers_connection_when_it_closes_say_the_saver_closed(
    saver_target: Any,
) -> None:
    """AsyncPostgresSaver on one AsyncConnection runs one call at a time on it; the
    caller closes the connection while calls wait for their turn: each raises
    SaverClosedError having sent nothing, as a call made after the close does, not
    psycopg's bare OperationalError("the connection is closed")."""
    import psycopg

    from checkpoint_pg import AsyncPostgresSaver, SaverClosedError

    conn = await psycopg.AsyncConnection.connect(saver_target.conn_string, autocommit=True)
    saver = AsyncPostgresSaver(conn, **saver_target.options)
    await saver.asetup()
    assert await saver.aget_tuple({"configurable": {"thread_id": "warm"}}) is None
    async with saver._lock:  # another call's turn
        waiting = []
        for i in range(3):
            config, cp, versions = one_checkpoint(saver, f"closed-{i}")
            waiting.append(asyncio.ensure_future(saver.aput(config, cp, {}, versions)))
        waiting.append(asyncio.ensure_future(saver.aget_tuple(config)))
        # all four wait for the lock (one not there yet would be refused as closed at
        # its start, not while waiting)
        await await_until(lambda: len(saver._lock._waiters or ()) == len(waiting), "the calls waiting")
        await conn.close()
    for outcome in await asyncio.gather(*waiting, return_exceptions=True):
        assert isinstance(outcome, SaverClosedError), outcome


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_sync_calls_waiting_for_the_savers_connection_when_it_closes_say_the_saver_closed(
    saver_target: Any,
) -> None:
    """The same for PostgresSaver on one psycopg Connection, calls waiting in threads."""
    import psycopg

    from checkpoint_pg import PostgresSaver, SaverClosedError

    conn = psycopg.connect(saver_target.conn_string, autocommit=True)
    saver = PostgresSaver(conn, **saver_target.options)
    saver.setup()
    assert saver.get_tuple({"configurable": {"thread_id": "warm"}}) is None
    outcomes: list[Any] = []

    def put(i: int) -> None:
        config, cp, versions = one_checkpoint(saver, f"closed-sync-{i}")
        try:
            outcomes.append(saver.put(config, cp, {}, versions))
        except Exception as exc:  # noqa: BLE001
            outcomes.append(exc)

    with saver._lock:  # another call's turn
        workers = [threading.Thread(target=put, args=(i,)) for i in range(3)]
        for w in workers:
            w.start()
        # all three wait for the lock (one not there yet would be refused as closed at
        # its start, not while waiting)
        wait_until(lambda: all(paused_on(w, "with self._lock") for w in workers), "the calls waiting")
        conn.close()
    for w in workers:
        w.join(10)
    assert len(outcomes) == 3 and all(isinstance(o, SaverClosedError) for o in outcomes), outcomes


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_an_async_sqlite_saver_whose_close_is_cancelled_ends_its_worker_thread(
    saver_target: Any,
) -> None:
    """The ``async with AsyncSqliteSaver.from_conn_string(...)`` block's task is
    cancelled while the close waits for a write queued before it (another connection
    holds the file's write lock): the write and the close still run, and the saver's
    worker thread then ends instead of waiting for work for ever (one thread leaked per
    saver so closed)."""
    import sqlite3

    from checkpoint_pg import AsyncSqliteSaver

    path = saver_target.conn_string
    async with AsyncSqliteSaver.from_conn_string(path) as saver:
        await saver.asetup()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    workers: list[Any] = []
    write: list[Any] = []

    async def block() -> None:
        async with AsyncSqliteSaver.from_conn_string(path) as saver:
            workers.append(saver._executor)
            write.append(asyncio.ensure_future(saver.adelete_thread("queued")))
            # until the worker took the write and waits for the lock (in its BEGIN
            # IMMEDIATE): on a loaded machine a fixed pause let the close come first,
            # refusing the write unsent
            await await_until(
                lambda: any(paused_on(t, 'execute("BEGIN IMMEDIATE" if write') for t in list(saver._executor._threads)),
                "the write waiting for the file's lock",
            )
            closing.set()

    closing = asyncio.Event()
    task = asyncio.ensure_future(block())
    await closing.wait()
    await asyncio.sleep(0.3)  # closing, behind the write that waits for the lock
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    other.execute("COMMIT")
    other.close()
    await write[0]  # the queued write ran to its end
    threads = list(workers[0]._threads)
    for thread in threads:
        thread.join(5)
    assert threads and not any(t.is_alive() for t in threads)


# --------------------------------------------------------------------------
# An AsyncPostgresSaver awaited on another event loop
# --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
@pytest.mark.parametrize("given", ["pool", "connection"])
async def test_an_async_postgres_saver_awaited_on_another_loop_says_so_instead_of_hanging(
    make_async_saver: Any, saver_target: Any, given: str
) -> None:
    """A thread running its own event loop awaits the saver while the saver's loop
    uses its connection: psycopg_pool's wait (or the lock of the one connection) is
    the saver loop's, so the call waited for ever. It raises AsyncMisuseError at once,
    saying what to do, and the saver goes on serving its own loop."""
    import psycopg

    from checkpoint_pg import AsyncMisuseError, AsyncPostgresSaver

    config = {"configurable": {"thread_id": "other-loop"}}

    async def check(saver: Any, busy: Any) -> None:
        assert await saver.aget_tuple(config) is None

        def from_another_loop() -> Any:
            async def call() -> Any:
                return await asyncio.wait_for(saver.aget_tuple(config), 3)

            try:
                return asyncio.run(call())
            except BaseException as exc:  # noqa: BLE001
                return exc

        async with busy():  # the saver's loop is using its connection
            got = await asyncio.to_thread(from_another_loop)
        assert isinstance(got, AsyncMisuseError), got
        assert "create a saver on each event loop" in str(got)
        assert await saver.aget_tuple(config) is None

    if given == "pool":
        async with make_async_saver(pool_size=1) as saver:
            await check(saver, saver._pool.connection)
    else:
        conn = await psycopg.AsyncConnection.connect(saver_target.conn_string, autocommit=True)
        try:
            saver = AsyncPostgresSaver(conn, **saver_target.options)
            await saver.asetup()
            await check(saver, lambda: saver._lock)
        finally:
            await conn.close()


# --------------------------------------------------------------------------
# Sync methods from other threads while the saver's loop serves async runs
# --------------------------------------------------------------------------


def sync_review_and_agent(saver: Any, tag: str) -> tuple[Any, Any]:
    """Two interrupts resumed, then the tool agent, run with the sync API."""
    from graphs import thread_summary  # noqa: PLC0415

    review = build_review_graph(saver)
    c = {"configurable": {"thread_id": f"{tag}-review"}}
    review.invoke({"topic": "bees"}, c)
    review.invoke(Command(resume=True), c)
    review.invoke(Command(resume="ok"), c)
    agent = build_tool_agent(saver)
    c2 = {"configurable": {"thread_id": f"{tag}-agent"}}
    agent.invoke(weather_question(), c2)
    return thread_summary(review, c), thread_summary(agent, c2)


async def test_sync_runs_from_threads_and_async_runs_share_one_async_saver(async_saver: Any) -> None:
    """Four threads run graphs through the async saver's sync methods (each handed to
    its loop) while four tasks run graphs on that loop: every run reads back as it
    does alone on InMemorySaver."""
    reference = sync_review_and_agent(InMemorySaver(), "ref")
    references = await graph_scenarios(InMemorySaver(), "async", "ref")
    tag = uuid.uuid4().hex[:6]
    results = await asyncio.wait_for(
        asyncio.gather(
            *(asyncio.to_thread(sync_review_and_agent, async_saver, f"{tag}-s{i}") for i in range(4)),
            *(graph_scenarios(async_saver, "async", f"{tag}-a{i}") for i in range(4)),
        ),
        120,
    )
    for got in results[:4]:
        assert got == reference
    for got in results[4:]:
        assert_same_observations(got, references)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_an_async_postgres_saver_whose_close_is_cancelled_still_closes_its_connections(
    make_async_saver: Any,
) -> None:
    """The task of an ``async with AsyncPostgresSaver.from_conn_string(...)`` block is
    cancelled while the pool closes its idle connections (slow here, as over a slow
    network): the close runs to its end, then the task hears of its cancellation. Cut
    off half-way, psycopg_pool left the rest of its connections open for ever."""
    import psycopg_pool

    closing: list[Any] = []
    real = psycopg_pool.AsyncConnectionPool._close_connection

    async def slow_close(pool: Any, conn: Any) -> None:
        closing.append(conn)
        await asyncio.sleep(0.3)
        await real(pool, conn)

    async def block() -> None:
        async with make_async_saver(pool_size=3) as saver:
            config = {"configurable": {"thread_id": "slow-close"}}
            await asyncio.gather(*(saver.aget_tuple(config) for _ in range(6)))

    psycopg_pool.AsyncConnectionPool._close_connection = slow_close  # type: ignore[method-assign]
    try:
        task = asyncio.ensure_future(block())
        while not closing:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        psycopg_pool.AsyncConnectionPool._close_connection = real  # type: ignore[method-assign]
    assert closing and all(conn.closed for conn in closing)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_async_sqlite_from_conn_string_waiting_for_a_locked_new_file_leaves_the_loop_running(
    saver_target: Any,
) -> None:
    """A new SQLite file (not in WAL mode yet) whose lock another connection holds for
    a second: switching it to WAL waits for the lock, sleeping. Done on the event
    loop, every other task of the loop stood still meanwhile; now the loop goes on."""
    import sqlite3

    from checkpoint_pg import AsyncSqliteSaver

    path = saver_target.conn_string
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE unrelated (a)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO unrelated VALUES (1)")
    # the loop's own ticks free the lock: a timer's fixed second, on a loaded machine,
    # could pass with fewer ticks; a loop standing still frees it only at the timer
    timer = threading.Timer(20.0, other.execute, ("COMMIT",))
    timer.start()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            if ticks == 20 and timer.is_alive():
                timer.cancel()
                other.execute("COMMIT")
            await asyncio.sleep(0.05)

    running = asyncio.ensure_future(ticker())
    try:
        async with AsyncSqliteSaver.from_conn_string(path) as saver:
            opened_at = ticks
            await saver.asetup()
            assert await saver.aget_tuple({"configurable": {"thread_id": "t"}}) is None
    finally:
        running.cancel()
        timer.join()
        other.close()
    assert opened_at >= 10  # the loop ran while the file was waited for (~20 ticks)
