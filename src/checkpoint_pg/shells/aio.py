"""The async shell: drives the core's operations on an asyncio connection.

Its sync methods hand the coroutine to the saver's event loop from another
thread; called on that loop itself they would deadlock, so they raise.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from datetime import datetime
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager, contextmanager, suppress
from functools import partial
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
)

from checkpoint_pg.core import lease as leases
from checkpoint_pg.core import ops
from checkpoint_pg.core.ops import Batch, Op
from checkpoint_pg.core.vacuum import VacuumReport
from checkpoint_pg.errors import AsyncMisuseError, SchemaVersionError
from checkpoint_pg.shells.base import (
    NOTHING_TAKEN,
    Call,
    Retry,
    SaverBase,
    arelease_quietly,
    release_quietly,
)

# How often a sync call waiting on the saver's loop checks that the loop still runs (one
# not running at two checks in a row, nor in between, has stopped).
_LOOP_CHECK_S = 0.25


async def adrive(
    op: Op, execute: Callable[[Batch], Awaitable[list[Any]]], first: Batch | None = None
) -> Any:
    """Run an operation: await each batch, feed the rows back (``first``: see `drive`)."""
    try:
        batch = next(op) if first is None else first
        while True:
            batch = op.send(await execute(batch))
    except StopIteration as stop:
        return stop.value


def running_loop(saver: str, sync_twin: str) -> asyncio.AbstractEventLoop:
    """The running event loop an async saver is created on, or `AsyncMisuseError`
    saying how to create it (asyncio's own "no running event loop" does not)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise AsyncMisuseError(
            f"{saver} must be created inside a running event loop (in an async function), whose "
            f"asyncio calls it serves: use `async with {saver}.from_conn_string(...) as saver:` "
            f"there, or {sync_twin} from sync code"
        ) from None


# Set on the CancelledError of a write cancelled before any of its statements was
# sent (see `AsyncSaver._shields_own_writes`): nothing of it is stored, so there is
# nothing to undo. (An attribute, not a subclass: asyncio.timeout on Python 3.11
# turns only CancelledError itself into TimeoutError.)
UNSENT = "_cpg_unsent"


def mark_unsent(exc: BaseException) -> BaseException:
    setattr(exc, UNSENT, True)
    return exc


@asynccontextmanager
async def held_lease(
    ctx: Any,
    lease: leases.Lease,
    take: Callable[[], Awaitable[Any]],
    release: Callable[[], Awaitable[Any]],
) -> AsyncIterator[leases.Lease]:
    """Take ``lease``, hold it while the block runs, give it back (every saver's
    ``alease``). A take cancelled or failed once it may have committed is given back
    before the error goes on; the release runs to its end even if the caller is
    cancelled meanwhile (waiting for a pooled connection, the write itself would end
    at once, unsent, and leave the lease held)."""
    try:
        await take()
    except NOTHING_TAKEN:
        raise
    except BaseException as exc:
        if not getattr(exc, UNSENT, False):
            await finish_then_cancel(arelease_quietly(release, lease))
        raise
    try:
        with leases.holding(ctx.lease_key, lease, ctx.leases):
            yield lease
    finally:
        await finish_then_cancel(arelease_quietly(release, lease))


async def finish_then_cancel(work: Awaitable[Any]) -> Any:
    """Await ``work`` to its end whatever happens to the caller; if the caller was
    cancelled meanwhile, raise CancelledError then (``work``'s outcome is dropped)."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if task.done():  # the work itself was cancelled, not its caller
            raise
    while not task.done():
        try:
            await asyncio.wait((task,))
        except asyncio.CancelledError:
            pass  # cancelled again: still finishing
    if not task.cancelled():
        task.exception()  # retrieved: what the caller hears of is its cancellation
    raise asyncio.CancelledError


def _cancellations() -> int:
    """How many cancellations of the current task are pending or being handled
    (Task.cancelling() is Python 3.11's: 0 on 3.10, where a cancellation the pool
    took is lost)."""
    cancelling = getattr(asyncio.current_task(), "cancelling", None)
    return cancelling() if cancelling is not None else 0


def _raise_if_cancelled(before: int) -> None:
    # only a cancellation that arrived during this call: one the caller was already
    # handling when it made the call (a cleanup in `except CancelledError`) is not
    # this call's to raise again
    if _cancellations() > before:
        raise asyncio.CancelledError


class AsyncSaver(SaverBase):
    """BaseCheckpointSaver on an asyncio connection; subclasses provide `_arun`."""

    loop: asyncio.AbstractEventLoop
    # True where `_arun` runs a write's SQL through `finish_then_cancel` once it has a
    # connection, and marks a cancellation before that `mark_unsent` (Postgres: a
    # write waiting for a pooled connection ends at once). False: the whole call is
    # shielded (SQLite, whose writes wait for the file's lock on a worker thread,
    # where a cancellation could not reach them anyway).
    _shields_own_writes = False

    async def _adrop_dead_connections(self) -> None:
        """Backends with a pool discard its broken connections (see postgres.py)."""

    async def _arun(self, op: Op, *, txn: bool = True, write: bool = False) -> Any:
        raise NotImplementedError  # provided by the backend (postgres.py / sqlite.py)

    async def _ado(self, call: Call) -> Any:
        """Run the operation ``call`` builds, again when `Retry` says so.

        A write runs to its end even if the caller is cancelled meanwhile, and
        CancelledError is raised after it: cut off once its SQL was sent, it could
        commit without the bookkeeping that keeps each message stored once (see
        `written.WrittenMessages`), or take a lease nobody would give back. A backend
        that shields its writes itself from the moment it holds a connection lets
        a write still waiting for one end at once (`_shields_own_writes`).
        """
        if call.write and not self._shields_own_writes:
            return await finish_then_cancel(self._attempts(call))
        return await self._attempts(call)

    async def _attempts(self, call: Call) -> Any:
        make, txn, write, _ = call
        retry = Retry(self.ctx.cache, write, call.thread)
        retried = False
        cancellations = _cancellations()
        while True:
            try:
                if not self._schema_ok:  # in the loop: its connection may be a dead one too
                    try:
                        self._check_revision(await self._arun(self._schema_op(), txn=False))
                    except SchemaVersionError as exc:
                        if exc.current is None:
                            with suppress(Exception):  # a probe for advice: never the error raised
                                tables = await self._arun(self._tables_op(), txn=False)
                                self._name_other_prefixes(exc, tables)
                        raise
                    except asyncio.CancelledError as exc:
                        # the write itself was not sent yet (a lease take cancelled while
                        # the schema check waits for a connection has nothing to give back)
                        raise mark_unsent(exc) if write else exc
                return await self._arun(make(), txn=txn, write=write)
            except BaseException as exc:  # noqa: BLE001 - Retry re-raises what it does not retry
                if retried and getattr(exc, UNSENT, False):
                    # this attempt sent nothing, but an earlier one may have committed
                    # (a connection lost after its COMMIT): not unsent as a whole
                    setattr(exc, UNSENT, False)
                retried = True
                if retry.after(exc) is Retry.RECONNECT:
                    await self._adrop_dead_connections()
                    # the pool's check takes a cancellation for a broken connection's
                    # and goes on: the caller's must not be lost
                    _raise_if_cancelled(cancellations)

    def _sync(self, name: str, coro_fn: Callable[[], Awaitable[Any]]) -> Any:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            raise AsyncMisuseError(
                f"{type(self).__name__}.{name}() was called on the saver's own event loop, "
                f"where it would deadlock: use `await saver.a{name}(...)` (or graph.ainvoke / "
                "astream), or call it from another thread"
            )
        # handed to a loop that is closed (its asyncio.run ended) the call fails with
        # asyncio's bare "Event loop is closed"; to one that stopped, it waits for ever
        state = "closed" if self.loop.is_closed() else None if self.loop.is_running() else "not running"
        if state is not None:
            raise AsyncMisuseError(
                f"{type(self).__name__}.{name}() hands its work to the event loop the saver "
                f"was created on, and that event loop is {state}: call it from another thread "
                f"while that loop runs, or `await saver.a{name}(...)` on the loop; from sync "
                "code without one, use PostgresSaver / SqliteSaver"
            )
        fut = asyncio.run_coroutine_threadsafe(coro_fn(), self.loop)  # type: ignore[arg-type]
        ran: threading.Event | None = None  # set by the loop once it runs after a check
        while True:
            try:
                return fut.result(timeout=_LOOP_CHECK_S)
            except concurrent.futures.TimeoutError:
                if fut.done():
                    # the coroutine's own (DatabaseBusyError is one): since Python 3.11 the
                    # same class as the wait's, which asked the finished future for ever
                    raise
            if self.loop.is_running() or (ran is not None and ran.is_set()):
                ran = None
                continue
            if ran is None:
                # not running at this check: between two run_until_complete calls, or
                # stopped. Paused, it runs this before the next check and the call waits on
                ran = threading.Event()
                with suppress(RuntimeError):  # closed: it will not run again
                    self.loop.call_soon_threadsafe(ran.set)
                    continue
            # the loop stopped after taking the call: nothing would ever run it
            fut.cancel()
            raise AsyncMisuseError(
                f"{type(self).__name__}.{name}() handed its work to the event loop the saver "
                "was created on, and that event loop stopped before the call finished: it did "
                "not run, or stopped part way (a write may or may not have been stored: read "
                "the thread back). Keep the loop running while other threads call the saver"
            )

    async def athreads(self, filter: Mapping[str, Any] | None = None) -> AsyncIterator[str]:
        """Every thread id, in id order, read page by page from the threads table
        (``filter``: top-level keys of the metadata of the root checkpoint put last, the
        newest unless puts arrived out of id order)."""
        from checkpoint_pg.inspect import inspector  # noqa: PLC0415 - the inspector imports us
        from checkpoint_pg.sql.inspect import inspect_sql_for  # noqa: PLC0415

        sql, f, after = inspect_sql_for(self), inspector.thread_filter(filter), None
        while True:
            ids = await self._ado(Call(partial(inspector.thread_ids_op, sql, f, after)))
            for thread_id in ids:
                yield thread_id
            if len(ids) < inspector.MAX_PAGE:
                return
            after = ids[-1]

    def threads(self, filter: Mapping[str, Any] | None = None) -> Iterator[str]:
        """`athreads` from another thread than the saver's loop."""

        async def collect() -> list[str]:
            return [t async for t in self.athreads(filter)]

        yield from self._sync("threads", collect)

    # -- leases ---------------------------------------------------------------------------

    @asynccontextmanager
    async def alease(
        self, thread: Any, *, ttl: float = leases.DEFAULT_TTL
    ) -> AsyncIterator[leases.Lease]:
        """Hold a thread against every other writer while the block runs (see
        `checkpoint_pg.PostgresSaver.lease`; the same for ``async with``)."""
        lease = self._new_lease(thread, ttl)
        async with held_lease(
            self.ctx,
            lease,
            lambda: self._ado(self._write_call(ops.take_lease, lease)),
            lambda: self._ado(self._write_call(ops.release_lease, lease)),
        ):
            yield lease

    async def arenew_lease(self, lease: leases.Lease) -> None:
        """Extend a held lease by its ttl from now (for steps longer than the ttl)."""
        await self._ado(self._write_call(ops.renew_lease, lease))

    async def abreak_lease(self, thread_id: str) -> bool:
        """Clear a thread's lease (a crashed run's, say); True if it was live.

        The run that held it is refused at its next write."""
        return await self._ado(self._write_call(ops.break_lease, thread_id))

    @contextmanager
    def lease(self, thread: Any, *, ttl: float = leases.DEFAULT_TTL) -> Iterator[leases.Lease]:
        """`alease` for a ``with`` block in another thread than the saver's loop."""
        lease = self._new_lease(thread, ttl)

        def release() -> None:
            self._sync("lease", lambda: self._ado(self._write_call(ops.release_lease, lease)))

        try:
            self._sync("lease", lambda: self._ado(self._write_call(ops.take_lease, lease)))
        except NOTHING_TAKEN:
            raise
        except BaseException:
            # interrupted (or failed) while the loop may have taken it
            release_quietly(release, lease)
            raise
        try:
            with leases.holding(self.ctx.lease_key, lease, self.ctx.leases):
                yield lease
        finally:
            release_quietly(release, lease)

    def renew_lease(self, lease: leases.Lease) -> None:
        self._sync("renew_lease", lambda: self.arenew_lease(lease))

    def break_lease(self, thread_id: str) -> bool:
        return self._sync("break_lease", lambda: self.abreak_lease(thread_id))

    # -- BaseCheckpointSaver, async -----------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._ado(self._get_tuple_call(config))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        pager = self._list_pager(config, filter, before, limit)
        call = next(pager)
        while call is not None:
            page = await self._ado(call)
            for item in page[0]:
                yield item
            call = pager.send(page)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self._ado(self._put_call(config, checkpoint, metadata, new_versions))

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self._ado(self._put_writes_call(config, writes, task_id, task_path))

    async def adelete_thread(self, thread_id: str) -> None:
        await self._ado(self._write_call(ops.delete_thread, thread_id))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self._ado(self._write_call(ops.delete_for_runs, run_ids))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._ado(self._write_call(ops.copy_thread, source_thread_id, target_thread_id))

    async def aprune(
        self,
        thread_ids: Sequence[str],
        *,
        strategy: str = "keep_latest",
        keep_last: int = 1,
        updated_before: datetime | None = None,
    ) -> None:
        """Prune threads: keep the ``keep_last`` newest checkpoints per namespace
        (``strategy="keep_latest"``), or delete the threads (``strategy="delete"``).

        With ``updated_before`` (an aware datetime), threads written since then are
        left alone, checked under each thread's lock as it is pruned."""
        await self._ado(self._prune_call(thread_ids, strategy, keep_last, updated_before))

    async def avacuum(self, *, full: bool = False) -> VacuumReport:
        """Give the space deleted rows left back (after delete_thread or prune, say).

        SQLite rebuilds the file, which then shrinks. Postgres marks the space free for
        new rows; ``full=True`` rewrites the tables to shrink them, locking each one
        while it does. Needs a connection outside any transaction (autocommit)."""
        return await self._ado(self._vacuum_call(full))  # type: ignore[no-any-return]

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return await self._ado(self._read_call(ops.get_delta_channel_history, config, channels))

    # -- sync twins: only from other threads -------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._sync("get_tuple", lambda: self.aget_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        async def collect() -> list[CheckpointTuple]:
            return [t async for t in self.alist(config, filter=filter, before=before, limit=limit)]

        yield from self._sync("list", collect)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._sync("put", lambda: self.aput(config, checkpoint, metadata, new_versions))

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._sync("put_writes", lambda: self.aput_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._sync("delete_thread", lambda: self.adelete_thread(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self._sync("delete_for_runs", lambda: self.adelete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._sync("copy_thread", lambda: self.acopy_thread(source_thread_id, target_thread_id))

    def prune(
        self,
        thread_ids: Sequence[str],
        *,
        strategy: str = "keep_latest",
        keep_last: int = 1,
        updated_before: datetime | None = None,
    ) -> None:
        self._sync(
            "prune",
            lambda: self.aprune(
                thread_ids, strategy=strategy, keep_last=keep_last, updated_before=updated_before
            ),
        )

    def vacuum(self, *, full: bool = False) -> VacuumReport:
        return self._sync("vacuum", lambda: self.avacuum(full=full))  # type: ignore[no-any-return]

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return self._sync(
            "get_delta_channel_history",
            lambda: self.aget_delta_channel_history(config=config, channels=channels),
        )
