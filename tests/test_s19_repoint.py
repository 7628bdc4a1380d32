"""Session 19, repoint review: a write's repoint (core/written.py) against delete_for_runs,
prune and delete_thread of another saver (another process) committing before it.

A repoint points a node's write of a message without an id at the object the next
checkpoint stored for it once add_messages gave it its id (``new``), and deletes the
write's object (``old``) when nothing else uses it. On Postgres it commits apart from
the put or put_writes before it, and a lifecycle operation of another process may
delete ``new`` in between: delete_for_runs of the put's run, which keeps the write's
checkpoint (of an earlier run). The write then named an object no longer stored and
``old`` went too: get_tuple and list of that checkpoint raised IntegrityError ("stored
object ... is missing"). The repoint now leaves a write whose ``new`` is gone as it is.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from faultkit import admin_execute, after_first_yield, wait_until
from langchain_core.messages import ToolMessage
from test_s19 import _new_config, _put
from test_storage import raw_for, thread_of


def _check_write_kept(make_saver: Any, saver_target: Any, first: Any) -> None:
    """The ToolNode's write of ``first`` reads back whole, from a fresh saver, and every
    hash a row of the thread names is stored."""
    with make_saver() as fresh:
        tup = fresh.get_tuple(first)
        listed = next(iter(fresh.list(first, limit=1)))
        with raw_for(saver_target, fresh) as raw:
            missing = raw.orphans(thread_of(first))["missing_objects"]
    for writes in (tup.pending_writes, listed.pending_writes):
        assert [(task, ch, [m.content for m in v]) for task, ch, v in writes] == [
            ("tools", "messages", ["12:00"])
        ]
    assert missing == []


class _Worker(threading.Thread):
    """A thread whose failure the test sees (`done`), where a plain one's only printed."""

    def __init__(self, fn: Any, *args: Any) -> None:
        super().__init__(target=fn, args=args)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            super().run()
        except BaseException as exc:  # noqa: BLE001 - handed to the test by `done`
            self.error = exc

    def done(self) -> None:
        self.join(30)
        assert not self.is_alive()
        if self.error is not None:
            raise self.error


def _lifecycle(other: Any, op: str, t: str) -> None:
    """``op`` by ``other``: delete_for_runs of run-b, prune keeping the latest, delete_thread."""
    if op == "delete_for_runs":
        other.delete_for_runs(["run-b"])
    elif op == "prune":
        other.prune([t], strategy="keep_latest", keep_last=1)
    else:
        other.delete_thread(t)


def _paused(other: Any, op: str, t: str) -> tuple[_Worker, threading.Event, threading.Event]:
    """`_lifecycle` on a thread of its own, paused while it holds the thread's row lock
    until the second event is set; the first is set when it pauses. delete_for_runs and
    prune pause before reading the thread's rows; delete_thread, one statement with its
    lock, once it ran (its transaction is still open: an operation's code after its last
    statement runs before the commit)."""
    locked, go = threading.Event(), threading.Event()

    def pause() -> None:
        locked.set()
        assert go.wait(30)

    if op == "delete_thread":
        forget, calls = other.ctx.cache.forget_thread, []

        def forget_then_pause(thread_id: str) -> None:
            forget(thread_id)
            calls.append(thread_id)
            if len(calls) == 2:  # the first is before the statement
                pause()

        other.ctx.cache.forget_thread = forget_then_pause
    else:
        select = other.ctx.sql.select_thread_checkpoints

        def pause_then_select(thread_id: str) -> Any:
            pause()
            return select(thread_id)

        other.ctx.sql.select_thread_checkpoints = pause_then_select
    return _Worker(_lifecycle, other, op, t), locked, go


def _release_once_blocked(pg_url: str, threads_table: str, go: threading.Event) -> _Worker:
    """A thread setting ``go`` once a session waits for the row lock of ``threads_table``
    (the repoint's lock_thread, behind the paused delete)."""

    def release() -> None:
        wait_until(
            lambda: admin_execute(
                pg_url,
                "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                "AND cardinality(pg_blocking_pids(pid)) > 0 AND query LIKE %s",
                [f"%{threads_table}%FOR UPDATE%"],
            ),
            "the repoint never waited for the delete's row lock",
        )
        go.set()

    helper = _Worker(release)
    helper.start()
    return helper


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
@pytest.mark.parametrize("when", ["committed", "lock_held"])
@pytest.mark.parametrize("op", ["delete_for_runs", "prune", "delete_thread"])
def test_a_lifecycle_operation_between_a_put_and_its_repoint_leaves_nothing_dangling(
    make_saver: Any, saver_target: Any, pg_url: str, when: str, op: str
) -> None:
    """A run paused with a ToolNode's write (no id) pending on its last checkpoint; the
    next run (run-b) puts the message with its id, and another process changes the
    thread after that put committed and before its repoint does: already committed, or
    holding the thread's row lock the repoint then waits for.

    delete_for_runs of run-b keeps the write's checkpoint (run-a's), and so must keep
    its write readable: it was repointed at run-b's object, which the delete had just
    collected, and its own object was dropped (get_tuple: "stored object ... is
    missing"). prune keeping the latest checkpoint deletes the write with its checkpoint,
    and delete_thread everything: the repoint, finding no write, brings nothing back."""
    msg = ToolMessage("12:00", tool_call_id="t1")
    with make_saver() as saver, make_saver() as other:
        versions: dict[str, Any] = {}
        first = _put(saver, _new_config(f"{op}-repoint"), {}, versions, -1, "run-a")
        t = thread_of(first)
        saver.put_writes(first, [("messages", [msg])], "tools")
        msg.id = "tm-1"  # add_messages, applying the write in run-b
        build = saver.ctx.sql.repoint_writes
        helpers: list[_Worker] = []

        def lifecycle_first(fixups: Any) -> Any:  # the put has committed
            if when == "committed":
                _lifecycle(other, op, t)
            else:
                worker, locked, go = _paused(other, op, t)
                worker.start()
                assert locked.wait(30)
                helpers.extend([worker, _release_once_blocked(pg_url, saver.tables.threads.name, go)])
            return build(fixups)

        saver.ctx.sql.repoint_writes = lifecycle_first
        second = _put(saver, first, {"messages": [msg]}, versions, 0, "run-b")
        for h in helpers:
            h.done()
        assert len(helpers) == (2 if when == "lock_held" else 0)
    if op == "delete_for_runs":
        _check_write_kept(make_saver, saver_target, first)
        return
    with make_saver() as fresh, raw_for(saver_target, fresh) as raw:
        if op == "prune":
            raw.assert_no_orphans(t)
            assert fresh.get_tuple(first) is None
            (kept,) = fresh.list({"configurable": {"thread_id": t}})
            assert kept.config["configurable"]["checkpoint_id"] == second["configurable"]["checkpoint_id"]
            assert [(m.content, m.id) for m in kept.checkpoint["channel_values"]["messages"]] == [("12:00", "tm-1")]
        else:
            assert raw.counts(t) == dict.fromkeys(("threads", "checkpoints", "values", "writes", "objects"), 0)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
@pytest.mark.parametrize("op", ["delete_for_runs", "delete_thread"])
def test_a_late_write_whose_put_was_deleted_meanwhile_is_not_repointed_at_nothing(
    pg_url: str, make_saver: Any, saver_target: Any, op: str
) -> None:
    """The other order, on a pool: the put holding the message with its id commits while
    the node's put_writes (serialized without it) is in flight, so the put_writes
    repoints once its write is in. Another process deletes the put's run, or the whole
    thread, in between: the write must keep the object it stored."""
    from checkpoint_pg.core import ops

    msg = ToolMessage("12:00", tool_call_id="t1")
    with make_saver(pool_size=2) as saver, make_saver() as other:
        versions: dict[str, Any] = {}
        first = _put(saver, _new_config(f"late-{op}"), {}, versions, -1, "run-a")
        reached, go = threading.Event(), threading.Event()

        def pause() -> None:  # serialized (without the id) and registered, not sent
            reached.set()
            assert go.wait(30)

        def write() -> None:
            op_ = ops.put_writes(saver.ctx, first, [("messages", [msg])], "tools", "")
            saver._run(after_first_yield(op_, pause), txn=False, write=True)

        writer = _Worker(write)
        writer.start()
        assert reached.wait(30)
        msg.id = "tm-1"
        _put(saver, first, {"messages": [msg]}, versions, 0, "run-b")
        if op == "delete_for_runs":
            other.delete_for_runs(["run-b"])
        else:
            other.delete_thread(thread_of(first))
        go.set()
        writer.done()
    if op == "delete_for_runs":
        _check_write_kept(make_saver, saver_target, first)
    else:
        # the late write is in, its checkpoint gone (prune collects such writes):
        # whatever it names is stored
        with make_saver() as fresh, raw_for(saver_target, fresh) as raw:
            assert raw.orphans(thread_of(first))["missing_objects"] == []


def test_a_write_sent_again_after_its_put_was_deleted_is_not_repointed_at_nothing(
    make_saver: Any, saver_target: Any
) -> None:
    """SQLite's repoint checks ``new`` too, though LangGraph cannot get there: a put and
    the repoint it claims are one transaction, and a saver runs a put_writes from its
    serializing to its storing under its lock, so no put comes in between and no delete
    between a put and its repoint. The one way left is artificial: a put_writes that
    failed after serializing (its entry stays pending), the put of the message with its
    id (which claims the entry), another process deleting that put's run, and the same
    write sent again with the message's id taken back off (LangGraph never clears one),
    which repoints once it is in."""
    msg = ToolMessage("12:00", tool_call_id="t1")
    with make_saver() as saver, make_saver() as other:
        versions: dict[str, Any] = {}
        first = _put(saver, _new_config("sent-again"), {}, versions, -1, "run-a")
        insert = saver.ctx.sql.insert_writes

        def lost(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("lost before it was sent")

        saver.ctx.sql.insert_writes = lost
        with pytest.raises(RuntimeError, match="lost before"):
            saver.put_writes(first, [("messages", [msg])], "tools")
        saver.ctx.sql.insert_writes = insert
        msg.id = "tm-1"
        _put(saver, first, {"messages": [msg]}, versions, 0, "run-b")
        other.delete_for_runs(["run-b"])
        msg.id = None  # the caller's message as it first sent it
        saver.put_writes(first, [("messages", [msg])], "tools")
    _check_write_kept(make_saver, saver_target, first)
