"""Thread leases (saver.lease / alease): a run holds its thread against every other writer."""

from __future__ import annotations

import time
from typing import Any

import pytest
from faultkit import wait_for_blocked
from graphs import build_chain, build_map_reduce, build_subgraph_graph
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.types import Command

from checkpoint_pg import CheckpointPgError, ConfigError, ThreadBusyError


def cfg(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


def put_step(saver: Any, parent: dict[str, Any], n: int) -> dict[str, Any]:
    cp = empty_checkpoint()
    ver = saver.get_next_version(None, None)
    cp["channel_values"] = {"n": n}
    cp["channel_versions"] = {"n": ver}
    return saver.put(parent, cp, {"source": "loop", "step": n, "parents": {}}, {"n": ver})


def ids(saver: Any, thread_id: str) -> list[str]:
    return [t.config["configurable"]["checkpoint_id"] for t in saver.list(cfg(thread_id))]


def thread_rows(saver: Any) -> list[str]:
    from checkpoint_pg.inspect import Inspector  # noqa: PLC0415

    return [t.thread_id for t in Inspector(saver).threads(sizes=False).threads]


def test_a_second_lease_is_refused_until_the_first_is_released(make_saver) -> None:
    """Two savers on one database (two processes in production): the second
    lease on a thread fails at once with ThreadBusyError naming the thread and
    the way out; after the first block ends the thread can be leased again."""
    with make_saver() as a, make_saver() as b:
        with a.lease("t1", ttl=60):
            with pytest.raises(ThreadBusyError, match="'t1' is leased by another run") as info:
                with b.lease("t1"):
                    pytest.fail("the second lease was granted")
            assert info.value.thread_id == "t1"
            assert "break_lease('t1')" in str(info.value)
            assert isinstance(info.value, CheckpointPgError)
            with b.lease("other-thread"):  # other threads are not affected
                pass
        with b.lease("t1"):
            pass


def test_writes_without_the_lease_are_refused_and_store_nothing(make_saver) -> None:
    """While a run holds the thread, a put or put_writes of any other writer
    (no lease, single_writer off) is refused; the holder's go through."""
    with make_saver() as holder, make_saver() as other:
        first = put_step(holder, cfg("t2"), 0)
        with holder.lease(cfg("t2"), ttl=60):
            second = put_step(holder, first, 1)
            with pytest.raises(ThreadBusyError, match="leased by another run"):
                put_step(other, second, 2)
            with pytest.raises(ThreadBusyError, match="leased by another run"):
                other.put_writes(second, [("n", 5)], "task-x")
            holder.put_writes(second, [("n", 6)], "task-h")
        assert ids(other, "t2") == [second["configurable"]["checkpoint_id"], first["configurable"]["checkpoint_id"]]
        tup = other.get_tuple(second)
        assert [(w[0], w[2]) for w in tup.pending_writes] == [("task-h", 6)]
        # released: the other writer may go on
        put_step(other, second, 2)


def test_special_writes_are_checked_too(make_saver) -> None:
    """Error / interrupt writes (stored by another statement than regular ones)
    are refused the same way."""
    with make_saver() as holder, make_saver() as other:
        first = put_step(holder, cfg("t3"), 0)
        with holder.lease("t3", ttl=60):
            with pytest.raises(ThreadBusyError):
                other.put_writes(first, [("__error__", "boom")], "task-e")
        assert other.get_tuple(first).pending_writes == []


def test_writes_sent_again_are_kept_once_or_refused_by_a_lease(make_saver) -> None:
    """A task's writes sent again (a retry) are there already: kept once, no error.
    Sent again while another run holds the thread, they are refused like new ones
    (on SQLite the lease is read only when not every write went in)."""
    with make_saver() as holder, make_saver() as other:
        first = put_step(holder, cfg("t9"), 0)
        for _ in range(2):
            other.put_writes(first, [("n", 5), ("__error__", "boom")], "task-r")
        stored = sorted((w[0], w[1], w[2]) for w in other.get_tuple(first).pending_writes)
        assert stored == [("task-r", "__error__", "boom"), ("task-r", "n", 5)]
        with holder.lease("t9", ttl=60):
            for writes, task in (([("n", 5)], "task-r"), ([("n", 7)], "task-new")):
                with pytest.raises(ThreadBusyError, match="leased by another run"):
                    other.put_writes(first, writes, task)
            holder.put_writes(first, [("n", 5)], "task-r")  # the holder's retry goes through
        assert sorted((w[0], w[1], w[2]) for w in holder.get_tuple(first).pending_writes) == stored


def test_the_holders_puts_renew_the_lease(make_saver) -> None:
    """A put extends the lease by its ttl: a run that keeps saving steps keeps
    the thread for longer than one ttl."""
    with make_saver() as holder, make_saver() as other:
        parent = cfg("t4")
        ttl, n = 1.0, 0
        with holder.lease("t4", ttl=ttl):
            taken = time.monotonic()
            # puts 0.1 s apart until well over one ttl passed: a loaded machine stretches
            # each gap, but not near the ttl (puts 0.25 s apart under a 0.6 s ttl: it did)
            while time.monotonic() - taken < 1.6 * ttl:
                time.sleep(0.1)
                parent = put_step(holder, parent, n)
                n += 1
            # 1.6 s after taking a 1 s lease, it is still held
            with pytest.raises(ThreadBusyError):
                with other.lease("t4"):
                    pass


def test_a_lapsed_lease_can_be_taken_and_its_old_holder_is_refused(make_saver) -> None:
    """A crashed (or stalled) holder's lease lapses after ttl: another run takes
    the thread, and the old holder's next write fails as 'lease is gone',
    without writing over the new holder's steps."""
    with make_saver() as stalled, make_saver() as other:
        first = put_step(stalled, cfg("t5"), 0)
        with stalled.lease("t5", ttl=0.3):
            time.sleep(0.5)
            with other.lease("t5", ttl=60):
                newer = put_step(other, first, 1)
                with pytest.raises(ThreadBusyError, match="lease on thread 't5' is gone"):
                    put_step(stalled, first, 1)
                with pytest.raises(ThreadBusyError, match="is gone"):
                    stalled.put_writes(first, [("n", 9)], "late")
                # the old holder cannot renew it either
                with pytest.raises(ThreadBusyError, match="is gone"):
                    stalled.renew_lease(stalled_lease(stalled, "t5"))
        assert ids(other, "t5") == [newer["configurable"]["checkpoint_id"], first["configurable"]["checkpoint_id"]]


def stalled_lease(saver: Any, thread_id: str) -> Any:
    from checkpoint_pg.core import lease  # noqa: PLC0415

    held = lease.held(saver.ctx.lease_key, thread_id, saver.ctx.leases)
    assert held is not None
    return held


def test_renew_lease_extends_a_long_step(make_saver) -> None:
    """A step longer than the ttl keeps the thread with renew_lease."""
    with make_saver() as holder, make_saver() as other:
        ttl = 1.0
        with holder.lease("t6", ttl=ttl) as lease:
            taken = time.monotonic()
            # renewed 0.1 s apart until well over one ttl passed (see the test above)
            while time.monotonic() - taken < 1.6 * ttl:
                time.sleep(0.1)
                holder.renew_lease(lease)
            with pytest.raises(ThreadBusyError):
                with other.lease("t6"):
                    pass


def test_break_lease_frees_the_thread_and_stops_the_holder(make_saver) -> None:
    """break_lease is the operator's way out after a crash with a long ttl."""
    with make_saver() as holder, make_saver() as admin:
        first = put_step(holder, cfg("t7"), 0)
        assert admin.break_lease("t7") is False  # nothing to break
        with holder.lease("t7", ttl=3600):
            assert admin.break_lease("t7") is True
            with pytest.raises(ThreadBusyError, match="is gone"):
                put_step(holder, first, 1)
            with admin.lease("t7"):
                put_step(admin, first, 1)
        assert len(ids(admin, "t7")) == 2


def test_deleting_the_thread_stops_its_leased_run(make_saver) -> None:
    with make_saver() as holder, make_saver() as admin:
        first = put_step(holder, cfg("t8"), 0)
        with holder.lease("t8", ttl=60):
            admin.delete_thread("t8")
            with pytest.raises(ThreadBusyError, match="is gone"):
                put_step(holder, first, 1)
        assert ids(admin, "t8") == []


def test_the_lease_is_released_when_the_block_raises(make_saver) -> None:
    with make_saver() as a, make_saver() as b:
        with pytest.raises(RuntimeError, match="node failed"):
            with a.lease("t9", ttl=3600):
                raise RuntimeError("node failed")
        with b.lease("t9"):
            pass


def test_a_lease_on_a_new_thread_leaves_no_empty_thread_behind(saver) -> None:
    """Taking a lease creates the thread's row; if the run wrote nothing, the
    release removes it, so listings do not show an empty thread. A thread the
    run wrote to stays, with its lease cleared."""
    with saver.lease("never-written"):
        pass
    with saver.lease("written"):
        put_step(saver, cfg("written"), 0)
    assert "never-written" not in thread_rows(saver)
    assert "written" in thread_rows(saver)


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), "60", True])
def test_bad_ttl_is_refused(saver, ttl: Any) -> None:
    with pytest.raises(ConfigError, match="ttl must be a positive number"):
        with saver.lease("t10", ttl=ttl):
            pass


def test_bad_thread_ids_are_refused(saver) -> None:
    with pytest.raises(ConfigError):
        with saver.lease(1):
            pass
    with pytest.raises(ConfigError):
        with saver.lease({"configurable": {}}):
            pass


def graph(saver: Any) -> Any:
    return build_chain(saver, ("a", "b"))


def test_graph_runs_under_a_lease_sync(make_saver) -> None:
    """LangGraph saves checkpoints on background threads: the lease reaches them."""
    with make_saver() as saver, make_saver() as other:
        g = graph(saver)
        config = {"configurable": {"thread_id": "g1"}}
        with saver.lease(config, ttl=60):
            g.invoke({"log": ["x"]}, config)
            with pytest.raises(ThreadBusyError):
                graph(other).invoke({"log": ["intruder"]}, config)
            g.invoke({"log": ["y"]}, config)
        assert g.get_state(config).values["log"] == ["x", "a", "b", "y", "a", "b"]


async def test_graph_runs_under_a_lease_async(make_async_saver) -> None:
    async with make_async_saver() as saver, make_async_saver() as other:
        g = graph(saver)
        config = {"configurable": {"thread_id": "g2"}}
        async with saver.alease(config, ttl=60) as lease:
            await g.ainvoke({"log": ["x"]}, config)
            with pytest.raises(ThreadBusyError):
                await graph(other).ainvoke({"log": ["intruder"]}, config)
            await saver.arenew_lease(lease)
        assert (await g.aget_state(config)).values["log"] == ["x", "a", "b"]
        assert await other.abreak_lease("g2") is False


async def test_sync_saver_alease_covers_ainvoke(make_saver) -> None:
    """A sync saver serves ainvoke through worker threads; its alease reaches them."""
    with make_saver() as saver, make_saver() as other:
        g = graph(saver)
        config = {"configurable": {"thread_id": "g3"}}
        async with saver.alease(config, ttl=60):
            await g.ainvoke({"log": ["x"]}, config)
            with pytest.raises(ThreadBusyError):
                other.put_writes(g.get_state(config).config, [("log", ["intruder"])], "t")
        assert g.get_state(config).values["log"] == ["x", "a", "b"]


def test_the_lease_covers_the_savers_allowlist_clone(make_saver) -> None:
    """LangGraph compiles graphs with saver.with_allowlist(...) in strict msgpack
    mode: the clone writes under the lease taken through the saver."""
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer  # noqa: PLC0415

    strict = JsonPlusSerializer(allowed_msgpack_modules=None)
    with make_saver(serde=strict) as saver, make_saver() as other:
        clone = saver.with_allowlist([("collections", "OrderedDict")])
        assert clone is not saver
        with saver.lease("t11", ttl=60):
            first = put_step(clone, cfg("t11"), 0)
            with pytest.raises(ThreadBusyError):
                put_step(other, first, 1)


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_parallel_tasks_write_under_the_runs_lease(make_saver, durability: str) -> None:
    """LangGraph commits the writes of parallel tasks (Send fan-out here) from a
    future's callback on a worker thread, outside the run's context: the saver
    finds the lease its block holds all the same, and other savers stay refused."""
    with make_saver() as saver, make_saver() as other:
        g = build_map_reduce(saver)
        config = {"configurable": {"thread_id": f"fan-{durability}"}}
        with saver.lease(config, ttl=60):
            out = g.invoke({"items": ["a", "bb", "ccc", "dddd"]}, config, durability=durability)
            assert out["summary"] == "a=1,bb=2,ccc=3,dddd=4"
            with pytest.raises(ThreadBusyError):
                build_map_reduce(other).invoke({"items": ["x"]}, config)
        assert g.get_state(config).values["summary"] == "a=1,bb=2,ccc=3,dddd=4"


async def test_parallel_tasks_and_subgraphs_under_alease(make_async_saver) -> None:
    async with make_async_saver() as saver:
        config = {"configurable": {"thread_id": "fan-async"}}
        async with saver.alease(config, ttl=60):
            out = await build_map_reduce(saver).ainvoke({"items": ["a", "bb"]}, config)
            assert out["summary"] == "a=1,bb=2"
        # a subgraph (its own namespace) paused by an interrupt, resumed under a new lease
        sub = {"configurable": {"thread_id": "sub-async"}}
        g = build_subgraph_graph(saver)
        async with saver.alease(sub, ttl=60):
            await g.ainvoke({"topic": " Tides ", "log": []}, sub)
        async with saver.alease(sub, ttl=60):
            out = await g.ainvoke(Command(resume="moon"), sub)
        assert out["log"][-1] == "finish: researched tides / hint: moon"


def test_another_lease_in_the_same_process_is_refused(saver) -> None:
    """Inside one process the lease still excludes a second run that takes its own."""
    with saver.lease("same-proc", ttl=60):
        with pytest.raises(ThreadBusyError):
            with saver.lease("same-proc"):
                pass


def test_taking_a_lease_waits_for_a_put_writes_in_flight(pg_url: str) -> None:
    """Postgres: put_writes checks the lease holding the thread row FOR KEY SHARE;
    taking (or breaking) a lease locks the row FOR UPDATE first, so a write that
    passed its check commits before the lease changes hands, never after."""
    import secrets  # noqa: PLC0415
    import threading  # noqa: PLC0415

    import psycopg  # noqa: PLC0415

    from checkpoint_pg import PostgresSaver  # noqa: PLC0415

    prefix = f"l{secrets.token_hex(4)}_"
    with PostgresSaver.from_conn_string(pg_url, prefix=prefix) as saver:
        saver.setup()
        put_step(saver, cfg("race"), 0)
        with psycopg.connect(pg_url) as in_flight:
            in_flight.execute(
                f"SELECT 1 FROM {prefix}threads WHERE thread_id = 'race' FOR KEY SHARE"
            )
            taken = threading.Event()

            def take() -> None:
                with saver.lease("race", ttl=60):
                    taken.set()

            worker = threading.Thread(target=take)
            worker.start()
            # the take waits on the put_writes' lock (a fixed pause could end before it asked)
            wait_for_blocked(pg_url, in_flight.info.backend_pid)
            assert not taken.wait(0.5), "the lease was taken under a put_writes in flight"
            in_flight.commit()
            assert taken.wait(10)
            worker.join(10)


def test_copy_thread_respects_a_lease_on_the_target(make_saver) -> None:
    """Copying onto a thread another run has leased (still empty) is refused; the
    holder itself may copy into it, and the copy keeps the source's metadata."""
    with make_saver() as holder, make_saver() as other:
        put_step(other, cfg("src"), 0)
        with holder.lease("dst", ttl=60):
            with pytest.raises(ThreadBusyError, match="leased by another run"):
                other.copy_thread("src", "dst")
            assert ids(other, "dst") == []
            holder.copy_thread("src", "dst")
        assert ids(other, "dst") == ids(other, "src")
        assert list(other.threads({"source": "loop"})) == ["dst", "src"]
