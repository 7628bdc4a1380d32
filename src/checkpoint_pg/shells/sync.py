"""The sync shell: drives the core's operations on a blocking connection.

Its async methods run the sync ones in a worker thread, so a sync saver also
serves ``ainvoke`` / ``astream``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from functools import partial
from typing import Any, TypeVar

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
from checkpoint_pg.errors import SchemaVersionError
from checkpoint_pg.shells.aio import UNSENT, finish_then_cancel, held_lease
from checkpoint_pg.shells.base import (
    NOTHING_TAKEN,
    Call,
    Retry,
    SaverBase,
    release_quietly,
)

T = TypeVar("T")


def start(op: Op) -> tuple[Batch | None, Any]:
    """Run ``op`` up to its first batch, or to its end: ``(batch, None)`` or ``(None, result)``.

    That first part builds statements from the values alone (serializing,
    hashing, compressing, planning list deltas) and needs no connection: the
    Postgres savers run it before taking one, so a call holds a pooled
    connection only for its SQL (the core's caches are thread-safe). SQLite
    runs it under its connection's lock (see `checkpoint_pg.sqlite`), and
    skips BEGIN/COMMIT for an operation with nothing to send.
    """
    try:
        return next(op), None
    except StopIteration as stop:
        return None, stop.value


def drive(op: Op, execute: Callable[[Batch], list[Any]], first: Batch | None = None) -> Any:
    """Run an operation: send each batch to ``execute``, feed the rows back.

    ``first``: the batch the caller already took from ``op`` with `next`.
    """
    try:
        batch = next(op) if first is None else first
        while True:
            batch = op.send(execute(batch))
    except StopIteration as stop:
        return stop.value


def _to_thread_to_its_end(fn: Callable[..., T], *args: Any) -> Awaitable[T]:
    """``asyncio.to_thread(fn, *args)`` awaited to its end even if the caller is cancelled
    meanwhile, which then hears of it (see `finish_then_cancel`)."""
    return finish_then_cancel(asyncio.to_thread(fn, *args))


class SyncSaver(SaverBase):
    """BaseCheckpointSaver on a blocking connection; subclasses provide `_run`."""

    def _drop_dead_connections(self) -> None:
        """Backends with a pool discard its broken connections (see postgres.py)."""

    def _run(self, op: Op, *, txn: bool = True, write: bool = False) -> Any:
        raise NotImplementedError  # provided by the backend (postgres.py / sqlite.py)

    def _ensure_schema(self) -> None:
        if not self._schema_ok:
            try:
                self._check_revision(self._run(self._schema_op(), txn=False))
            except SchemaVersionError as exc:
                if exc.current is None:
                    with suppress(Exception):  # a probe for advice: never the error raised
                        self._name_other_prefixes(exc, self._run(self._tables_op(), txn=False))
                raise

    def _do(self, call: Call) -> Any:
        """Run the operation ``call`` builds, again when `Retry` says so."""
        make, txn, write, _ = call
        retry = Retry(self.ctx.cache, write, call.thread)
        retried = False
        while True:
            try:
                self._ensure_schema()  # in the loop: its connection may be a dead one too
                return self._run(make(), txn=txn, write=write)
            except BaseException as exc:  # noqa: BLE001 - Retry re-raises what it does not retry
                if retried and getattr(exc, UNSENT, False):
                    # this attempt sent nothing, but an earlier one may have committed
                    setattr(exc, UNSENT, False)
                retried = True
                if retry.after(exc) is Retry.RECONNECT:
                    self._drop_dead_connections()

    # -- BaseCheckpointSaver ---------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._do(self._get_tuple_call(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        pager = self._list_pager(config, filter, before, limit)
        call = next(pager)
        while call is not None:
            page = self._do(call)
            yield from page[0]
            call = pager.send(page)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._do(self._put_call(config, checkpoint, metadata, new_versions))

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._do(self._put_writes_call(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._do(self._write_call(ops.delete_thread, thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self._do(self._write_call(ops.delete_for_runs, run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._do(self._write_call(ops.copy_thread, source_thread_id, target_thread_id))

    def prune(
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
        self._do(self._prune_call(thread_ids, strategy, keep_last, updated_before))

    def vacuum(self, *, full: bool = False) -> VacuumReport:
        """Give the space deleted rows left back (after delete_thread or prune, say).

        SQLite rebuilds the file, which then shrinks. Postgres marks the space free for
        new rows; ``full=True`` rewrites the tables to shrink them, locking each one
        while it does. Needs a connection outside any transaction (autocommit)."""
        return self._do(self._vacuum_call(full))  # type: ignore[no-any-return]

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return self._do(self._read_call(ops.get_delta_channel_history, config, channels))

    def threads(self, filter: Mapping[str, Any] | None = None) -> Iterator[str]:
        """Every thread id, in id order, read page by page from the threads table
        (``filter``: top-level keys of the metadata of the root checkpoint put last, the
        newest unless puts arrived out of id order).
        `checkpoint_pg.inspect.Inspector.threads` lists them newest first, with details."""
        from checkpoint_pg.inspect import Inspector  # noqa: PLC0415 - the inspector imports us

        yield from Inspector(self).iter_thread_ids(filter)

    async def athreads(self, filter: Mapping[str, Any] | None = None) -> AsyncIterator[str]:
        it = self.threads(filter)
        done = object()
        while (item := await asyncio.to_thread(next, it, done)) is not done:
            yield item  # type: ignore[misc]

    # -- leases ---------------------------------------------------------------------------

    @contextmanager
    def lease(self, thread: Any, *, ttl: float = leases.DEFAULT_TTL) -> Iterator[leases.Lease]:
        """Hold a thread against every other writer while the block runs.

        ``thread`` is a thread id or a config. Raises `ThreadBusyError` at once if
        another run holds the thread. Inside the block, the puts and writes of
        graphs run through this saver carry the lease and renew it for ``ttl``
        seconds; any other writer of the thread is refused. A crashed holder's
        lease lapses ``ttl`` seconds after its last put.
        """
        lease = self._new_lease(thread, ttl)

        def release() -> None:
            self._do(self._write_call(ops.release_lease, lease))

        try:
            self._do(self._write_call(ops.take_lease, lease))
        except NOTHING_TAKEN:
            raise
        except BaseException as exc:
            # interrupted (or failed) once the take may have committed
            if not getattr(exc, UNSENT, False):
                release_quietly(release, lease)
            raise
        try:
            with leases.holding(self.ctx.lease_key, lease, self.ctx.leases):
                yield lease
        finally:
            release_quietly(release, lease)

    def renew_lease(self, lease: leases.Lease) -> None:
        """Extend a held lease by its ttl from now (for steps longer than the ttl)."""
        self._do(self._write_call(ops.renew_lease, lease))

    def break_lease(self, thread_id: str) -> bool:
        """Clear a thread's lease (a crashed run's, say); True if it was live.

        The run that held it is refused at its next write."""
        return self._do(self._write_call(ops.break_lease, thread_id))

    @asynccontextmanager
    async def alease(
        self, thread: Any, *, ttl: float = leases.DEFAULT_TTL
    ) -> AsyncIterator[leases.Lease]:
        """`lease` for ``async with`` (the database calls run in a worker thread)."""
        lease = self._new_lease(thread, ttl)
        async with held_lease(
            self.ctx,
            lease,
            # a cancellation cannot stop the take in its thread: it is awaited to its end,
            # so that a take committing after its caller was cancelled is given back
            lambda: _to_thread_to_its_end(self._do, self._write_call(ops.take_lease, lease)),
            lambda: asyncio.to_thread(self._do, self._write_call(ops.release_lease, lease)),
        ):
            yield lease

    async def arenew_lease(self, lease: leases.Lease) -> None:
        await _to_thread_to_its_end(self.renew_lease, lease)

    async def abreak_lease(self, thread_id: str) -> bool:
        return await _to_thread_to_its_end(self.break_lease, thread_id)

    # -- async twins: the sync methods in a worker thread -----------------------------
    # A write runs to its end and only then does its caller hear of a cancellation (as
    # the async savers' writes do): a cancellation cannot stop it in its thread, and code
    # reacting to it (a retry, a delete, closing the saver) would race the late write.
    # Reads end at once: what they still do in their thread changes nothing.

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        it = self.list(config, filter=filter, before=before, limit=limit)
        done = object()
        while (item := await asyncio.to_thread(next, it, done)) is not done:
            yield item  # type: ignore[misc]

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await _to_thread_to_its_end(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await _to_thread_to_its_end(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await _to_thread_to_its_end(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await _to_thread_to_its_end(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await _to_thread_to_its_end(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(
        self,
        thread_ids: Sequence[str],
        *,
        strategy: str = "keep_latest",
        keep_last: int = 1,
        updated_before: datetime | None = None,
    ) -> None:
        await _to_thread_to_its_end(
            partial(
                self.prune,
                thread_ids,
                strategy=strategy,
                keep_last=keep_last,
                updated_before=updated_before,
            )
        )

    async def avacuum(self, *, full: bool = False) -> VacuumReport:
        return await asyncio.to_thread(partial(self.vacuum, full=full))

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return await asyncio.to_thread(
            lambda: self.get_delta_channel_history(config=config, channels=channels)
        )
