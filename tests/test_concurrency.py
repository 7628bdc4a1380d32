"""Concurrency: load through a pool and PgBouncer, two writers on one thread,
late writes after delete, several processes on one SQLite file, async misuse.

Every load test counts exactly: each thread's history, each checkpoint's
values and pending writes (through the saver), and the rows in the tables
(through a plain connection), so a lost or duplicated write cannot hide.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import pytest

from faultkit import SimThread, ids_of, row_counts

TESTS_DIR = Path(__file__).resolve().parent

# The load: 8 workers drive 200 threads of 20 supersteps each.
WORKERS = 8
THREADS = 200
STEPS = 20


def expected_rows(threads: int, steps: int) -> dict[str, int]:
    """Rows a SimThread workload leaves, every value stored once per thread.

    Per thread: one checkpoint per step; two writes per step but the last;
    objects: one per distinct message (the channel list and the writes share
    them), one per step int written (the channel's own ints live in the
    checkpoint rows, revision 0014), one per distinct ``doc`` (steps 0, 5, ...).
    """
    docs = len(range(0, steps, 5))
    return {
        "threads": threads,
        "checkpoints": threads * steps,
        "writes": threads * (steps - 1) * 2,
        "objects": threads * (steps + (steps - 1) + docs),
    }


def check_rows(backend: str, conn_string: str, saver: Any, threads: int, steps: int) -> None:
    counts = row_counts(backend, conn_string, saver)
    expected = expected_rows(threads, steps)
    assert {k: counts[k] for k in expected} == expected, counts


def subprocess_env() -> dict[str, str]:
    """The child sees the same checkpoint_pg as we do, plus tests/ for faultkit."""
    env = dict(os.environ)
    parts = [str(TESTS_DIR)]
    import checkpoint_pg  # noqa: PLC0415

    parts.append(str(Path(checkpoint_pg.__file__).resolve().parent.parent))
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def pool_options(backend: str) -> dict[str, Any]:
    return {"pool_size": WORKERS} if backend == "postgres" else {}


# --------------------------------------------------------------------------
# Load
# --------------------------------------------------------------------------


def run_sync_load(saver: Any, tag: str, threads: int = THREADS, steps: int = STEPS) -> list[SimThread]:
    """WORKERS OS threads take thread ids from a queue and run them to the end."""
    sims = [SimThread(saver, f"load-{tag}-{i:03d}") for i in range(threads)]
    todo: queue.Queue[SimThread] = queue.Queue()
    for sim in sims:
        todo.put(sim)
    errors: list[BaseException] = []

    def worker() -> None:
        while not errors:
            try:
                sim = todo.get_nowait()
            except queue.Empty:
                return
            try:
                # a run starts by loading the thread, as LangGraph does
                assert saver.get_tuple(sim.config()) is None
                for _ in range(steps):
                    sim.run_step()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    pool = [threading.Thread(target=worker, name=f"load-worker-{i}") for i in range(WORKERS)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in pool), "a load worker hung"
    if errors:
        raise errors[0]
    return sims


async def run_async_load(saver: Any, tag: str, threads: int = THREADS, steps: int = STEPS) -> list[SimThread]:
    """WORKERS asyncio tasks on one event loop share one async saver."""
    sims = [SimThread(saver, f"aload-{tag}-{i:03d}") for i in range(threads)]
    todo: asyncio.Queue[SimThread] = asyncio.Queue()
    for sim in sims:
        todo.put_nowait(sim)

    async def worker() -> None:
        while not todo.empty():
            sim = todo.get_nowait()
            assert await saver.aget_tuple(sim.config()) is None
            for _ in range(steps):
                await sim.arun_step()

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(WORKERS))), timeout=600)
    return sims


@pytest.mark.slow
def test_load_sync_threads(backend: str, make_saver, saver_target) -> None:
    """8 threads x 200 LangGraph threads x 20 supersteps through the pool: all counted."""
    with make_saver(**pool_options(backend)) as saver:
        sims = run_sync_load(saver, backend)
        assert sum(sim.verify() for sim in sims) == THREADS * STEPS
        assert len(list(saver.list(None))) == THREADS * STEPS
        check_rows(backend, saver_target.conn_string, saver, THREADS, STEPS)


@pytest.mark.slow
async def test_load_async_tasks(backend: str, make_async_saver, saver_target) -> None:
    """8 tasks x 200 threads x 20 supersteps on ONE async saver (pool / sqlite worker)."""
    async with make_async_saver(**pool_options(backend)) as saver:
        sims = await run_async_load(saver, backend)
        total = 0
        for sim in sims:
            total += await sim.averify()
        assert total == THREADS * STEPS
        check_rows(backend, saver_target.conn_string, saver, THREADS, STEPS)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_load_through_pgbouncer(make_saver, pgbouncer_url: str, saver_target) -> None:
    """The same load through PgBouncer in transaction mode (server sessions shared)."""
    with make_saver(conn_string=pgbouncer_url, pool_size=WORKERS) as saver:
        sims = run_sync_load(saver, "bouncer")
        assert sum(sim.verify() for sim in sims) == THREADS * STEPS
        check_rows("postgres", saver_target.conn_string, saver, THREADS, STEPS)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_async_load_through_pgbouncer(make_async_saver, pgbouncer_url: str, saver_target) -> None:
    async with make_async_saver(conn_string=pgbouncer_url, pool_size=WORKERS) as saver:
        sims = await run_async_load(saver, "abouncer")
        total = 0
        for sim in sims:
            total += await sim.averify()
        assert total == THREADS * STEPS
        check_rows("postgres", saver_target.conn_string, saver, THREADS, STEPS)


def test_concurrent_setup_through_pgbouncer(fresh_pg_url: str, pgbouncer_url: str) -> None:
    """Several processes' savers call setup() at once through transaction pooling.

    setup() serializes migrations with an advisory lock. Through PgBouncer in
    transaction mode a *session* lock taken in one transaction and released
    in another may be released on a different server connection (and so not
    at all), leaving the lock held by a pooled server session forever; every
    later setup() then hangs. The lock must be transaction-scoped.
    """
    from checkpoint_pg import PostgresSaver  # noqa: PLC0415
    from fixtures.postgres import with_dbname  # noqa: PLC0415
    from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415

    url = with_dbname(pgbouncer_url, conninfo_to_dict(fresh_pg_url)["dbname"])
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            for _ in range(3):
                with PostgresSaver.from_conn_string(url, pool_size=2) as saver:
                    saver.setup()
                    SimThread(saver, f"setup-{i}-{uuid.uuid4().hex[:6]}").run_step()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    workers = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(6)]
    for t in workers:
        t.start()
    deadline = time.monotonic() + 30
    for t in workers:
        t.join(timeout=max(0.1, deadline - time.monotonic()))
    hung = [t for t in workers if t.is_alive()]
    if hung:
        from faultkit import admin_execute  # noqa: PLC0415

        locks = admin_execute(
            fresh_pg_url,
            "SELECT l.pid, l.granted, a.state, left(a.query, 80) FROM pg_locks l "
            "JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory'",
        )
        pytest.fail(f"{len(hung)} setup() calls hung through PgBouncer; advisory locks: {locks}")
    if errors:
        raise errors[0]


# --------------------------------------------------------------------------
# One thread, two writers
# --------------------------------------------------------------------------

TWO_WRITERS_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from graphs import build_chain

    backend, url, prefix, thread_id, writer, start_at = sys.argv[1:7]
    if backend == "sqlite":
        from checkpoint_pg import SqliteSaver as Base
        options = {}
    else:
        from checkpoint_pg import PostgresSaver as Base
        options = {"prefix": prefix}

    committed = []

    class Recording(Base):
        def put(self, config, checkpoint, metadata, new_versions):
            cfg = super().put(config, checkpoint, metadata, new_versions)
            committed.append(cfg["configurable"]["checkpoint_id"])
            return cfg

    names = [f"{writer}{i}" for i in range(6)]
    with Recording.from_conn_string(url, **options) as saver:
        graph = build_chain(saver, names)
        config = {"configurable": {"thread_id": thread_id}}
        while time.time() < float(start_at):
            time.sleep(0.001)
        for run in range(3):
            # each run continues from whatever the thread's latest checkpoint is
            graph.invoke({"log": [f"{writer}-run{run}"]}, config, durability="sync")
    print(json.dumps(committed))
    """
)


@pytest.mark.slow
def test_one_thread_two_writers(backend: str, saver, saver_target) -> None:
    """Two processes run the same thread at the same time.

    What happens (default mode, no single-writer lock): neither run fails.
    Both read the thread's latest checkpoint when a run starts and then each
    appends its own checkpoints, whose parents are its own previous ones, so
    the thread's history becomes two interleaved branches. "Latest" (what
    get_state / the next run reads) is the checkpoint with the greatest id,
    i.e. whichever writer committed last: the other writer's concurrent steps
    are not in the head's state (a lost *update*, as with any two unlocked
    writers), but every checkpoint either writer committed stays stored,
    listed, and fully readable by id -- no committed checkpoint becomes
    unreachable, and no value of one writer is replaced by the other's
    (channel versions carry a random part, values are content-addressed).
    To refuse the second run instead, see the single-writer design.
    """
    from checkpoint_pg import CheckpointPgError  # noqa: F401,PLC0415

    thread_id = f"two-writers-{uuid.uuid4().hex[:8]}"
    start_at = time.time() + 3.0  # both children are up and connected by then
    prefix = saver_target.options.get("prefix", "")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                TWO_WRITERS_CHILD,
                backend,
                saver_target.conn_string,
                prefix,
                thread_id,
                writer,
                str(start_at),
            ],
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for writer in ("A", "B")
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, f"writer failed:\n{err[-3000:]}"
    committed = {w: json.loads(out.strip().splitlines()[-1]) for w, (out, _) in zip("AB", outs)}
    # 3 runs x (input checkpoint, loop start, 6 nodes) checkpoints each
    assert [len(ids) for ids in committed.values()] == [24, 24], committed
    everything = set(committed["A"]) | set(committed["B"])
    assert len(everything) == 48

    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    listed = list(saver.list(config))
    assert set(ids_of(listed)) == everything, "a committed checkpoint is not listed"
    by_id = {t.config["configurable"]["checkpoint_id"]: t for t in listed}
    for cid in everything:
        tup = saver.get_tuple({"configurable": {**config["configurable"], "checkpoint_id": cid}})
        assert tup is not None, f"committed checkpoint {cid} is unreachable"
        assert tup.checkpoint["channel_values"] == by_id[cid].checkpoint["channel_values"]
        parent = tup.parent_config["configurable"]["checkpoint_id"] if tup.parent_config else None
        assert parent is None or parent in everything, "a checkpoint's parent is missing"
        # every value a checkpoint names is stored: "log" is present once written
        if "log" in tup.checkpoint["channel_versions"]:
            assert isinstance(tup.checkpoint["channel_values"].get("log"), list)
    # each writer's own log entries appear in its own checkpoints in order
    for writer, ids in committed.items():
        last = by_id[ids[-1]].checkpoint["channel_values"]["log"]
        assert last[-6:] == [f"{writer}{i}" for i in range(6)]
    head = saver.get_tuple(config)
    assert head.config["configurable"]["checkpoint_id"] == max(everything)


# --------------------------------------------------------------------------
# Late writes after delete
# --------------------------------------------------------------------------


def test_late_put_after_delete_is_refused(saver, saver_target, backend: str) -> None:
    """A put building on a deleted thread fails with IntegrityError and writes nothing."""
    from checkpoint_pg import CheckpointPgError, IntegrityError  # noqa: PLC0415

    sim = SimThread(saver, f"late-{uuid.uuid4().hex[:8]}")
    for _ in range(3):
        sim.run_step()  # step 2 carries "doc" over from step 0
    saver.delete_thread(sim.thread_id)
    before = row_counts(backend, saver_target.conn_string, saver, sim.thread_id)
    assert before == dict.fromkeys(before, 0)

    with pytest.raises(IntegrityError) as info:
        sim.run_step()  # the "late" put of a run that did not see the delete
    assert isinstance(info.value, CheckpointPgError)
    # the thread did not come back, not even partly
    assert saver.get_tuple(sim.config()) is None
    assert list(saver.list(sim.config())) == []
    assert not any(
        t.config["configurable"]["thread_id"] == sim.thread_id for t in saver.list(None)
    )
    after = row_counts(backend, saver_target.conn_string, saver, sim.thread_id)
    # put_writes of the late step (sent before its put) may leave invisible
    # write rows; no checkpoint, value or thread row exists
    assert after["checkpoints"] == after["channel_values"] == after["threads"] == 0


def test_late_put_writes_after_delete_stay_invisible(saver) -> None:
    """put_writes for a deleted checkpoint is accepted (async durability writes
    before the checkpoint lands) but brings nothing back."""
    sim = SimThread(saver, f"latew-{uuid.uuid4().hex[:8]}")
    sim.run_step()
    sim.run_step()
    cid = sim.order[-1]
    saver.delete_thread(sim.thread_id)
    saver.put_writes(sim.config(cid), [("messages", ["late"]), ("step", 99)], "late-task")
    assert saver.get_tuple(sim.config()) is None
    assert saver.get_tuple(sim.config(cid)) is None
    assert list(saver.list(sim.config())) == []


def test_new_run_after_delete_starts_a_fresh_thread(saver) -> None:
    """A put that carries nothing over (a new run from scratch) is a whole
    checkpoint, so it is accepted after delete_thread: the thread starts over."""
    thread_id = f"fresh-{uuid.uuid4().hex[:8]}"
    old = SimThread(saver, thread_id)
    for _ in range(3):
        old.run_step()
    saver.delete_thread(thread_id)
    new = SimThread(saver, thread_id, run_id="run-2")
    for _ in range(3):
        new.run_step()
    assert new.verify() == 3


@pytest.mark.slow
def test_delete_racing_a_writer_leaves_no_partial_checkpoint(backend: str, make_saver) -> None:
    """A writer keeps stepping a thread while another thread deletes it again
    and again: afterwards every checkpoint that exists reads back whole."""
    from checkpoint_pg import IntegrityError  # noqa: PLC0415

    with make_saver(**pool_options(backend)) as saver:
        thread_id = f"race-{uuid.uuid4().hex[:8]}"
        stop = threading.Event()
        sims: list[SimThread] = []
        refused = 0
        errors: list[BaseException] = []

        def writer() -> None:
            nonlocal refused
            try:
                sim = SimThread(saver, thread_id)
                sims.append(sim)
                while not stop.is_set():
                    try:
                        sim.run_step()
                    except IntegrityError:
                        refused += 1
                        sim = SimThread(saver, thread_id, run_id=f"run-{len(sims)}")
                        sims.append(sim)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        t = threading.Thread(target=writer)
        t.start()
        for _ in range(40):
            time.sleep(0.02)
            saver.delete_thread(thread_id)
        stop.set()
        t.join(timeout=60)
        if errors:
            raise errors[0]
        expected = {}
        for sim in sims:
            expected.update(sim.expected)
        for tup in saver.list({"configurable": {"thread_id": thread_id}}):
            cid = tup.config["configurable"]["checkpoint_id"]
            exp = expected[cid]
            assert tup.checkpoint["channel_values"] == exp.values, f"{cid} is partial"
            again = saver.get_tuple({"configurable": {"thread_id": thread_id, "checkpoint_id": cid}})
            assert again.checkpoint["channel_values"] == exp.values


# --------------------------------------------------------------------------
# SQLite: several processes, one file
# --------------------------------------------------------------------------

SQLITE_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from checkpoint_pg import SqliteSaver
    from faultkit import SimThread

    path, thread_id, steps, start_at, do_setup = sys.argv[1:6]
    while time.time() < float(start_at):
        time.sleep(0.001)
    with SqliteSaver.from_conn_string(path) as saver:
        if do_setup == "1":
            saver.setup()
        sim = SimThread(saver, thread_id)
        for _ in range(int(steps)):
            sim.run_step()
            saver.get_tuple(sim.config())
            list(saver.list(sim.config(), limit=3))
        assert sim.verify() == int(steps)
    print(json.dumps(sim.order))
    """
)


def run_sqlite_children(path: str, n: int, steps: int, do_setup: bool) -> dict[str, list[str]]:
    start_at = time.time() + 2.0
    thread_ids = [f"proc-{i}" for i in range(n)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SQLITE_CHILD, path, tid, str(steps), str(start_at), "1" if do_setup else "0"],
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tid in thread_ids
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert "database is locked" not in err, err[-3000:]
        assert p.returncode == 0, err[-3000:]
    return {tid: json.loads(out.strip().splitlines()[-1]) for tid, (out, _) in zip(thread_ids, outs)}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sqlite_four_processes_one_file(saver, saver_target) -> None:
    """4 processes write different threads to one file: no "database is locked"."""
    orders = run_sqlite_children(saver_target.conn_string, 4, 60, do_setup=False)
    for tid, order in orders.items():
        assert ids_of(list(saver.list({"configurable": {"thread_id": tid}}))) == list(reversed(order))
    check_rows("sqlite", saver_target.conn_string, saver, 4, 60)


@pytest.mark.slow
def test_sqlite_four_processes_setup_a_new_file_together(tmp_path) -> None:
    """4 processes open a file nobody set up yet, each calls setup() and writes."""
    from checkpoint_pg import SqliteSaver  # noqa: PLC0415

    path = str(tmp_path / "shared.db")
    orders = run_sqlite_children(path, 4, 20, do_setup=True)
    with SqliteSaver.from_conn_string(path) as saver:
        for tid, order in orders.items():
            assert ids_of(list(saver.list({"configurable": {"thread_id": tid}}))) == list(reversed(order))
        check_rows("sqlite", path, saver, 4, 20)


# --------------------------------------------------------------------------
# Async savers: many tasks, and sync calls on the saver's own loop
# --------------------------------------------------------------------------


async def test_one_async_saver_many_tasks(async_saver, saver_target, backend: str) -> None:
    """50 tasks share one async saver, interleaving at every await."""
    sims = [SimThread(async_saver, f"tasks-{i:02d}") for i in range(50)]

    async def run(sim: SimThread) -> None:
        for _ in range(10):
            await sim.arun_step()
            await async_saver.aget_tuple(sim.config())

    await asyncio.gather(*(run(sim) for sim in sims))
    for sim in sims:
        assert await sim.averify() == 10
    check_rows(backend, saver_target.conn_string, async_saver, 50, 10)


async def test_sync_call_on_the_async_savers_own_loop_raises(async_saver) -> None:
    """Calling a sync method on the saver's own loop would deadlock: it raises instead."""
    from checkpoint_pg import AsyncMisuseError, CheckpointPgError  # noqa: PLC0415

    sim = SimThread(async_saver, f"misuse-{uuid.uuid4().hex[:8]}")
    await sim.arun_step()
    config = sim.config()
    calls = {
        "get_tuple": lambda: async_saver.get_tuple(config),
        "list": lambda: list(async_saver.list(config)),
        "put_writes": lambda: async_saver.put_writes(sim.config(sim.order[-1]), [("x", 1)], "t"),
        "delete_thread": lambda: async_saver.delete_thread(sim.thread_id),
        "setup": lambda: async_saver.setup(),
    }
    for name, call in calls.items():
        with pytest.raises(AsyncMisuseError) as info:
            call()
        assert isinstance(info.value, CheckpointPgError)
        assert f"a{name}" in str(info.value), str(info.value)
    # nothing was done by the refused calls, and the same calls work from another thread
    assert await sim.averify() == 1
    tup = await asyncio.wait_for(asyncio.to_thread(async_saver.get_tuple, config), 30)
    sim.check_tuple(tup, sim.order[-1])
    listed = await asyncio.wait_for(asyncio.to_thread(lambda: list(async_saver.list(config))), 30)
    assert ids_of(listed) == sim.order


# --------------------------------------------------------------------------
# Leases: the second concurrent run is refused
# --------------------------------------------------------------------------

LEASE_CHILD = textwrap.dedent(
    """
    import contextlib, json, operator, os, sys, time
    from typing import Annotated
    from typing_extensions import TypedDict
    from langgraph.graph import END, START, StateGraph
    from checkpoint_pg import ThreadBusyError

    backend, url, prefix, thread_id, role, second_mode, sync_dir = sys.argv[1:8]
    if backend == "sqlite":
        from checkpoint_pg import SqliteSaver as Saver
        options = {}
    else:
        from checkpoint_pg import PostgresSaver as Saver
        options = {"prefix": prefix}

    def mark(name):
        open(os.path.join(sync_dir, name), "w").close()

    def wait_for(name, timeout=60):
        deadline = time.time() + timeout
        while not os.path.exists(os.path.join(sync_dir, name)):
            if time.time() > deadline:
                raise TimeoutError(name)
            time.sleep(0.01)

    class S(TypedDict):
        log: Annotated[list[str], operator.add]

    def slow(state):
        # the first run is inside a long step (an LLM call) when the second starts
        mark("first-in-slow-node")
        wait_for("second-done")
        return {"log": [f"{role}-slow"]}

    b = StateGraph(S)
    b.add_node("start", lambda s: {"log": [f"{role}-start"]})
    b.add_node("slow", slow if role == "first" else (lambda s: {"log": [f"{role}-slow"]}))
    b.add_node("end", lambda s: {"log": [f"{role}-end"]})
    b.add_edge(START, "start")
    b.add_edge("start", "slow")
    b.add_edge("slow", "end")
    b.add_edge("end", END)

    outcome = "completed"
    with Saver.from_conn_string(url, **options) as saver:
        graph = b.compile(checkpointer=saver)
        config = {"configurable": {"thread_id": thread_id}}
        leased = role == "first" or second_mode == "lease"
        if role == "second":
            wait_for("first-in-slow-node")
        try:
            with saver.lease(config, ttl=60) if leased else contextlib.nullcontext():
                graph.invoke({"log": [f"{role}-input"]}, config, durability="sync")
        except ThreadBusyError as exc:
            assert exc.thread_id == thread_id
            outcome = "busy"
        finally:
            if role == "second":
                mark("second-done")
    print(json.dumps(outcome))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("second_mode", ["lease", "plain"])
def test_a_leased_run_refuses_the_second_concurrent_run(
    backend: str, saver, saver_target, tmp_path, second_mode: str
) -> None:
    """Two processes, one thread. The first runs its graph under saver.lease and
    is inside a long node when the second starts. The second is refused with
    ThreadBusyError: at its own lease ("lease") or at its first write when it
    runs without one ("plain"). The first completes, and the thread's history
    is one linear chain holding only the first run's steps."""
    thread_id = f"lease-{uuid.uuid4().hex[:8]}"
    prefix = saver_target.options.get("prefix", "")
    procs = {
        role: subprocess.Popen(
            [sys.executable, "-c", LEASE_CHILD, backend, saver_target.conn_string, prefix,
             thread_id, role, second_mode, str(tmp_path)],
            env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for role in ("first", "second")
    }
    outs = {role: p.communicate(timeout=120) for role, p in procs.items()}
    for role, p in procs.items():
        assert p.returncode == 0, f"{role} failed:\n{outs[role][1][-3000:]}"
    outcome = {role: json.loads(out.strip().splitlines()[-1]) for role, (out, _) in outs.items()}
    assert outcome == {"first": "completed", "second": "busy"}

    listed = list(saver.list({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}))
    # one linear chain: each checkpoint's parent is the next older one
    for newer, older in zip(listed, listed[1:]):
        assert newer.parent_config["configurable"]["checkpoint_id"] == older.config["configurable"]["checkpoint_id"]
    assert listed[0].checkpoint["channel_values"]["log"] == [
        "first-input", "first-start", "first-slow", "first-end"
    ]


def test_copy_of_a_thread_whose_first_put_commits_meanwhile_is_whole(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """copy_thread locks the source's row, but a source with no row (deleted, then
    started again) has nothing to lock: its first put commits while the copy runs.
    The copy must take that checkpoint with its objects or not at all, never leave
    the target holding a checkpoint whose messages it does not have."""
    import secrets

    from langchain_core.messages import AIMessage, HumanMessage
    from langgraph.checkpoint.base import empty_checkpoint

    import checkpoint_pg.postgres as pg
    from checkpoint_pg import PostgresSaver

    prefix = f"c{secrets.token_hex(4)}_"
    real = pg._execute
    with PostgresSaver.from_conn_string(pg_url, pool_size=2, prefix=prefix) as saver:
        saver.setup()
        src = {"configurable": {"thread_id": "copy-src"}}
        first = HumanMessage("hi", id="m1")
        cp = empty_checkpoint()
        v1 = saver.get_next_version(None, None)
        cp["channel_values"] = {"messages": [first]}
        cp["channel_versions"] = {"messages": v1}
        saver.put(src, cp, {"source": "input", "step": -1}, {"messages": v1})
        saver.delete_thread("copy-src")  # gone, row and all; a new run starts it again

        def first_put() -> None:
            cp2 = empty_checkpoint()
            v2 = saver.get_next_version(None, None)
            cp2["channel_values"] = {"messages": [first, AIMessage("hello", id="m2")]}
            cp2["channel_versions"] = {"messages": v2}
            saver.put(src, cp2, {"source": "input", "step": -1}, {"messages": v2})

        done: list[bool] = []

        def execute(conn: Any, batch: Any, *how: Any) -> list[Any]:
            out: list[Any] = []
            for stmt in batch.stmts:
                out += real(conn, type(batch)([stmt], fetch=batch.fetch), *how)
                copying = stmt.params.get("d") == "copy-dst" and "INSERT INTO" in stmt.sql
                if copying and f"{prefix}objects" in stmt.sql and not done:
                    done.append(True)  # the source's first put commits now
                    worker = threading.Thread(target=first_put)
                    worker.start()
                    worker.join(10)
                    assert not worker.is_alive()
            return out

        monkeypatch.setattr(pg, "_execute", execute)
        saver.copy_thread("copy-src", "copy-dst")
        monkeypatch.setattr(pg, "_execute", real)
        assert done

    with PostgresSaver.from_conn_string(pg_url, prefix=prefix) as fresh:
        dst = {"configurable": {"thread_id": "copy-dst"}}
        for tup in fresh.list(dst):  # each checkpoint reads back whole
            assert fresh.get_tuple(tup.config) is not None
        latest = fresh.get_tuple(dst)
        if latest is not None:
            assert [m.id for m in latest.checkpoint["channel_values"]["messages"]] == ["m1", "m2"]


@pytest.mark.parametrize("op", ["prune", "delete_for_runs"])
def test_a_collection_leaves_a_first_put_committing_meanwhile_whole(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, op: str
) -> None:
    """prune(keep_latest) and delete_for_runs read a thread in several statements, under
    its row lock. A thread deleted and started again has no row to lock until its first
    put commits, which it may do between those reads: the collection then saw its
    objects but not its checkpoint, and deleted them (every read failed with
    IntegrityError). A thread without its row is left alone."""
    import secrets

    from langchain_core.messages import AIMessage, HumanMessage
    from langgraph.checkpoint.base import empty_checkpoint

    import checkpoint_pg.postgres as pg
    from checkpoint_pg import PostgresSaver

    prefix = f"c{secrets.token_hex(4)}_"
    real = pg._execute
    thread = {"configurable": {"thread_id": "gc-src"}}
    with PostgresSaver.from_conn_string(pg_url, pool_size=2, prefix=prefix) as saver:
        saver.setup()
        first = HumanMessage("hi", id="m1")
        cp = empty_checkpoint()
        v1 = saver.get_next_version(None, None)
        cp["channel_values"] = {"messages": [first]}
        cp["channel_versions"] = {"messages": v1}
        saver.put(thread, cp, {"source": "input", "step": -1, "run_id": "run-1"}, {"messages": v1})
        if op == "prune":
            saver.delete_thread("gc-src")  # gone, row and all; a new run starts it again

        def first_put() -> None:
            cp2 = empty_checkpoint()
            v2 = saver.get_next_version(None, None)
            cp2["channel_values"] = {"messages": [first, AIMessage("hello", id="m2")]}
            cp2["channel_versions"] = {"messages": v2}
            saver.put(thread, cp2, {"source": "input", "step": -1, "run_id": "run-2"}, {"messages": v2})

        def in_worker(fn: Any) -> None:  # another pooled connection, as another process
            worker = threading.Thread(target=fn)
            worker.start()
            worker.join(10)
            assert not worker.is_alive()

        fired: list[bool] = []
        deleted: list[bool] = []

        def execute(conn: Any, batch: Any, *how: Any) -> list[Any]:
            out: list[Any] = []
            for stmt in batch.stmts:
                if op == "delete_for_runs" and "FOR UPDATE" in stmt.sql and not deleted:
                    # the run's thread was found; it is deleted before the lock is taken
                    deleted.append(True)
                    in_worker(lambda: saver.delete_thread("gc-src"))
                out += real(conn, type(batch)([stmt], fetch=batch.fetch), *how)
                reading = "SELECT" in stmt.sql and f"{prefix}writes" in stmt.sql
                if reading and stmt.params.get("t") == "gc-src" and not fired:
                    fired.append(True)  # the thread's first put commits between the reads
                    in_worker(first_put)
            return out

        monkeypatch.setattr(pg, "_execute", execute)
        if op == "prune":
            saver.prune(["gc-src"], keep_last=1)
        else:
            saver.delete_for_runs(["run-1"])
        monkeypatch.setattr(pg, "_execute", real)
        if not fired:  # the collection left the thread alone: the run starts it after
            first_put()

    with PostgresSaver.from_conn_string(pg_url, prefix=prefix) as fresh:
        latest = fresh.get_tuple(thread)
        assert latest is not None
        assert [m.id for m in latest.checkpoint["channel_values"]["messages"]] == ["m1", "m2"]


@contextlib.contextmanager
def _async_sqlite_saver_on_its_own_loop(path: str, warm: bool) -> Iterator[Any]:
    """An AsyncSqliteSaver made on a loop that another thread runs, yielded to be awaited on
    the caller's own loops (threads that each run their own loop). ``warm``: the owner's
    loop makes a call first, and closes the saver when the block ends."""
    import threading

    from checkpoint_pg import AsyncSqliteSaver

    box: dict = {}
    ready, done = threading.Event(), threading.Event()

    async def owner() -> None:
        box["saver"] = AsyncSqliteSaver(path)
        if warm:
            await box["saver"].aget_tuple({"configurable": {"thread_id": "warm"}})
        ready.set()
        while not done.is_set():
            await asyncio.sleep(0.01)
        if warm:
            await box["saver"].aclose()

    thread = threading.Thread(target=lambda: asyncio.run(owner()))
    thread.start()
    try:
        assert ready.wait(10)
        yield box["saver"]
    finally:
        done.set()
        thread.join(10)


def test_async_sqlite_saver_awaited_on_another_loop(tmp_path) -> None:
    """An AsyncSqliteSaver made on one loop and awaited on another (threads that each run
    their own loop): the call runs and reports its outcome, instead of raising
    RuntimeError ("attached to a different loop") while its write commits anyway."""
    from langgraph.checkpoint.base import empty_checkpoint

    from checkpoint_pg import SqliteSaver

    path = str(tmp_path / "loops.db")
    with SqliteSaver.from_conn_string(path) as setup_saver:
        setup_saver.setup()
    cfg = {"configurable": {"thread_id": "other-loop", "checkpoint_ns": ""}}
    with _async_sqlite_saver_on_its_own_loop(path, warm=True) as saver:

        async def elsewhere() -> Any:
            stored = await saver.aput(cfg, empty_checkpoint(), {"source": "input", "step": -1}, {})
            return await saver.aget_tuple(stored)

        got = asyncio.run(elsewhere())
        assert got is not None and got.metadata["step"] == -1


def test_async_sqlite_saver_set_up_and_closed_on_another_loop(tmp_path) -> None:
    """asetup and aclose, awaited on another loop than the saver's (threads that each run
    their own loop, as its other calls may be): the migration runs and reports its outcome,
    and the close closes, instead of raising RuntimeError ("attached to a different loop")
    while the work goes on in the saver's worker thread."""
    from langgraph.checkpoint.base import empty_checkpoint

    cfg = {"configurable": {"thread_id": "setup-elsewhere", "checkpoint_ns": ""}}
    # not set up: the other loop does it
    with _async_sqlite_saver_on_its_own_loop(str(tmp_path / "setup-loops.db"), warm=False) as saver:

        async def elsewhere() -> Any:
            await saver.asetup()
            stored = await saver.aput(cfg, empty_checkpoint(), {"source": "input", "step": -1}, {})
            got = await saver.aget_tuple(stored)
            await saver.aclose()
            return got

        got = asyncio.run(elsewhere())
        assert got is not None and got.metadata["step"] == -1


def test_threads_sharing_a_codec_overflow_its_message_memo_without_error(monkeypatch) -> None:
    """The threads of a pool share the saver's codec: one emptying its full memo of
    serialized messages while others add to it raised "dictionary changed size during
    iteration" (8 threads putting 100,000 checkpoints through a pool did). With a
    memo of 50, 8 threads overflow it thousands of times; every dump succeeds, and
    each message keeps its object."""
    from langchain_core.messages import AIMessage
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    from checkpoint_pg.core import codec as codec_module

    monkeypatch.setattr(codec_module, "_MESSAGES_SIZE", 50)
    codec = codec_module.ValueCodec(JsonPlusSerializer())
    errors: list[BaseException] = []
    held: list[tuple[Any, bytes]] = []

    def dump_many(worker: int) -> None:
        try:
            for i in range(10_000):
                m = AIMessage(content=f"{worker}-{i}", id=f"{worker}-{i}")
                h = codec.dump(m).hash
                if i % 3 == 0:
                    held.append((m, h))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    for _ in range(3):  # a race: each round raised about half the time before the fix
        threads = [threading.Thread(target=dump_many, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert all(codec.dump(m).hash == h for m, h in held[:2000])
