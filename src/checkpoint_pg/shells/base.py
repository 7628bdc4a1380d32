"""What the sync and async savers share: options, versions, the schema check."""

from __future__ import annotations

import dataclasses
import logging
import random
import shlex
import uuid
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any, NamedTuple

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from checkpoint_pg import migrate
from checkpoint_pg.core import lease as leases
from checkpoint_pg.core import ops, vacuum
from checkpoint_pg.core.config import check_limit, check_writes, normalize_thread_id, target_of
from checkpoint_pg.core.codec import ValueCodec
from checkpoint_pg.core.ops import Batch, Ctx, Memo, Op
from checkpoint_pg.core.values import DEFAULT_CACHE_ITEMS, ListCache
from checkpoint_pg.errors import (
    AsyncMisuseError,
    ConfigError,
    DatabaseBusyError,
    SaverClosedError,
    SchemaVersionError,
    ThreadBusyError,
)
from checkpoint_pg.schema import DEFAULT_PREFIX, Tables, build_tables, other_prefixes, store_options
from checkpoint_pg.shells.errors import BaseGone, ConnectionLost
from checkpoint_pg.sql import Stmt


class Call(NamedTuple):
    """An operation for a shell to run: how to build it, and its transaction.

    ``thread``: a put's or put_writes' thread, whose cached list versions a failure
    drops (they may not have been committed); other calls cache nothing of their own.
    """

    make: Callable[[], Op]
    txn: bool = True
    write: bool = False
    thread: str | None = None


class Retry:
    """The retry policy of one call, I/O-free: which failure earns another attempt.

    The shells run the call, and on a failure ask `after` what to do:

    - a dead pooled connection (`ConnectionLost`): run it again once on a fresh
      connection (the shell drops the dead ones first); twice in a row, the
      server is gone: the driver's error is raised;
    - a write refused for building on list versions that are no longer stored
      (`BaseGone`): plan it again once from what is stored. It was planned on
      versions cached here that another process deleted since (delete_thread,
      prune); a put whose own parent is gone is refused again.

    Anything else is raised. A failed put or put_writes drops its thread's cached
    list versions, since they may not have been committed and later deltas must not
    build on them; a lost connection drops every thread's (the server may have lost
    more). Other threads' stay: a lease refused on one thread must not make the
    next put of a long thread elsewhere store its whole list again.
    """

    RETRY = "retry"
    RECONNECT = "reconnect"  # drop the pool's dead connections, then retry

    def __init__(self, cache: ListCache, write: bool, thread: str | None = None) -> None:
        self.cache = cache
        self.write = write
        self.thread = thread
        self.used: set[type[BaseException]] = set()

    def after(self, exc: BaseException) -> str:
        """``RETRY`` or ``RECONNECT``; or raises what the caller should see."""
        kind = (
            ConnectionLost
            if isinstance(exc, ConnectionLost)
            else BaseGone
            if isinstance(exc, BaseGone) and self.write
            else None
        )
        if kind is ConnectionLost:
            self.cache.clear()
        elif self.thread is not None:
            self.cache.forget_thread(self.thread)
        if kind is None:
            raise exc
        if kind in self.used:
            if kind is ConnectionLost:
                # twice in a row: the server is gone, say so with the driver's error
                raise exc.__cause__ or exc from None
            raise exc
        self.used.add(kind)
        # said, not hidden: a run that went on after one is no different, but an operator
        # seeing many learns the database drops connections (or another process prunes)
        where = f"thread {self.thread!r}" if self.thread else "a call"
        if kind is ConnectionLost:
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if getattr(exc.__cause__, "sqlstate", None) == "40P01":
                # postgres.py runs a call the server aborted for a deadlock again too: its
                # connection is fine, and not the thing to look into
                _log.warning(
                    "the server aborted the call on %s to break a deadlock "
                    "(%s); running it again",
                    where,
                    why,
                )
            else:
                _log.warning(
                    "the connection under %s was lost (%s); running it again "
                    "on a fresh connection",
                    where,
                    why,
                )
            return self.RECONNECT
        _log.info(
            "a write on %s built on list versions no longer stored (another "
            "process deleted or pruned them); planning it again from what is stored",
            where,
        )
        return self.RETRY


def _thread_of(config: RunnableConfig) -> str:
    """The thread id of a write's config as the cache keys it ("" when it is not one:
    the operation then refuses the config before it caches anything)."""
    thread = (config.get("configurable") or {}).get("thread_id")
    return str(thread) if isinstance(thread, (str, uuid.UUID)) else ""


# What a listing's pager yields and is sent back: the next page's call, then
# the page's (items, cursor of the next page or None).
Pager = Generator["Call | None", "tuple[list[CheckpointTuple], Any]", None]


class SaverBase(BaseCheckpointSaver[str]):
    """Options and helpers common to every saver class."""

    tables: Tables
    ctx: Ctx

    def _init_core(
        self,
        sql_cls: Any,
        *,
        serde: SerializerProtocol | None,
        prefix: str,
        schema: str | None,
        hash_key: bytes | None,
        max_value_bytes: int | None,
        url_hint: str,
        single_writer: bool = False,
        cache_items: int = DEFAULT_CACHE_ITEMS,
    ) -> None:
        if type(cache_items) is not int or cache_items < 0:
            raise ConfigError(
                "cache_items must be an int >= 0 (how many list elements, messages mostly, the "
                f"saver keeps in memory for the threads it runs), got {cache_items!r}"
            )
        BaseCheckpointSaver.__init__(self, serde=serde)
        self.tables = build_tables(prefix or DEFAULT_PREFIX, schema)
        self.ctx = Ctx(
            sql_cls(self.tables),
            ValueCodec(self.serde, hash_key=hash_key, max_value_bytes=max_value_bytes),
            ListCache(cache_items),
            single_writer=single_writer,
            lease_key=id(self),
        )
        # what error messages put after `checkpoint-pg migrate upgrade --url`: these tables'
        # options too, or the advised command would migrate the default ones; the URL
        # shell-quoted (a path with a space, a URL's ?a=1&b=2), so that the command runs as
        # written, but not a placeholder such as "<your database url>", which is to be replaced
        placeholder = url_hint.startswith("<") and url_hint.endswith(">")
        url = url_hint if placeholder else shlex.quote(url_hint)
        self._url_hint = url + store_options(self.tables.prefix, self.tables.schema)
        self._schema_ok = False

    def with_allowlist(self, extra_allowlist: Any) -> Any:
        """A clone whose serializer also allows ``extra_allowlist`` (strict msgpack mode).

        The clone shares connections and caches but decodes with the new
        serializer: LangGraph calls this when compiling a graph under
        LANGGRAPH_STRICT_MSGPACK=true, to let the graph's own state types through.
        """
        clone = super().with_allowlist(extra_allowlist)
        if clone is not self:
            old = self.ctx.codec
            codec = ValueCodec(
                clone.serde, hash_key=old._key or None, max_value_bytes=old.max_value_bytes
            )
            if old.encrypted:
                codec._key = old._key
            clone.ctx = dataclasses.replace(self.ctx, codec=codec)
        return clone

    @staticmethod
    def _new_lease(thread: Any, ttl: float) -> leases.Lease:
        """A lease for a thread id (str or UUID) or a config naming a thread."""
        if isinstance(thread, Mapping):
            thread_id = target_of(thread).thread_id  # type: ignore[arg-type]
        else:
            thread_id = normalize_thread_id(thread)
        return leases.new_lease(thread_id, ttl)

    def get_next_version(self, current: str | None, channel: None = None) -> str:
        """A zero-padded counter and 48 random bits: ``0000000007.9f3a01c25e7b``.

        Sorts as the counter does (continuing a thread written by the incumbent
        savers, whose counters are 32 digits wide, sorts after them too) and is
        short, since every stored version repeats it. The random part tells apart
        the versions two forks of one checkpoint give a channel (a regenerated
        answer): values are stored by (channel, version), so two forks drawing the
        same one would read one value. 32 bits (before session 17) made that one
        in ~4e9 per pair of forks; 48 bits, one in ~3e14, for 4 more characters.
        """
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(str(current).split(".")[0])
        return f"{current_v + 1:010d}.{random.getrandbits(48):012x}"

    # -- what each method runs: one place for both shells ---------------------------

    def _get_tuple_call(self, config: RunnableConfig) -> Call:
        # one statement on Postgres: atomic without BEGIN/COMMIT
        return Call(partial(ops.get_tuple, self.ctx, config), txn=not self.ctx.sql.single_statement)

    def _list_pager(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> Pager:
        """The calls of a listing, page by page; yields None after the last page."""
        memo, after, remaining = Memo(), None, check_limit(limit)
        txn = not ops.list_in_one_statement(self.ctx, config)
        while remaining is None or remaining > 0:
            make = partial(
                ops.list_page,
                self.ctx,
                memo,
                config,
                filter=filter,
                before=before,
                limit=remaining,
                after=after,
            )
            items, after = yield Call(make, txn=txn)
            if remaining is not None:
                remaining -= len(items)
            if after is None:
                break
        yield None

    def _put_call(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> Call:
        # unfinished: repoints claimed by an attempt, sent again by the retry (writing._repoint)
        make = partial(
            ops.put, self.ctx, config, checkpoint, metadata, new_versions, unfinished=[]
        )
        return Call(make, txn=not self.ctx.sql.single_statement, write=True, thread=_thread_of(config))

    def _put_writes_call(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str
    ) -> Call:
        # a list once: a retry (shells.base.Retry) sends the same writes again
        writes = check_writes(writes)
        make = partial(
            ops.put_writes, self.ctx, config, writes, task_id, task_path, unfinished=[]
        )
        return Call(make, txn=not self.ctx.sql.single_statement, write=True, thread=_thread_of(config))

    def _prune_call(
        self,
        thread_ids: Sequence[str],
        strategy: str,
        keep_last: int,
        updated_before: datetime | None,
    ) -> Call:
        make = partial(ops.prune, self.ctx, thread_ids, strategy, keep_last, updated_before)
        return Call(make, write=True)

    def _vacuum_call(self, full: bool) -> Call:
        if not isinstance(full, bool):
            raise ConfigError(f"full must be a bool, got {full!r}")
        # outside any transaction: VACUUM refuses to run inside one
        return Call(partial(vacuum.vacuum, self.ctx, full), txn=False)

    def _write_call(self, op: Callable[..., Op], *args: Any) -> Call:
        """A writing operation of the core, ``op(ctx, *args)``, in a transaction."""
        return Call(partial(op, self.ctx, *args), write=True)

    def _read_call(self, op: Callable[..., Op], *args: Any) -> Call:
        return Call(partial(op, self.ctx, *args))

    # -- the schema -------------------------------------------------------------------

    def _schema_op(self) -> Op:
        (rows,) = yield Batch(
            [Stmt(f"SELECT version_num FROM {self._qualified_version_table()}", {})]
        )
        return rows[0][0] if rows else None

    def _qualified_version_table(self) -> str:
        name = f'"{self.tables.version_table}"'
        return f'"{self.tables.schema}".{name}' if self.tables.schema else name

    def _check_revision(self, revision: str | None) -> None:
        migrate.check(revision, self._url_hint)
        self._schema_ok = True

    def _tables_op(self) -> Op:
        (rows,) = yield Batch([self.ctx.sql.table_names(self.tables.schema)])
        return [r[0] for r in rows]

    def _name_other_prefixes(self, exc: SchemaVersionError, table_names: Sequence[str]) -> None:
        """A database without our tables under this prefix that holds them under another:
        say so. The advice alone (setup()) would create an empty second set of tables
        beside the app's, and the app would look as if its threads were gone."""
        others = other_prefixes(table_names, self.tables.prefix)
        if exc.current is None and others:
            found = ", ".join(repr(p) for p in others[:5]) + (
                f" and {len(others) - 5} more" if len(others) > 5 else ""
            )
            command = (
                f" (or run `checkpoint-pg migrate upgrade --url {exc.upgrade_url}`)"
                if exc.upgrade_url
                else ""
            )
            exc.args = (
                f"{exc.problem}: this database holds checkpoint_pg tables with the prefix {found}, "
                f"not {self.tables.prefix!r}: give the saver prefix={others[0]!r} (its threads "
                f"are there), or call setup(){command} to create an empty set with the prefix "
                f"{self.tables.prefix!r}",
            )


_log = logging.getLogger("checkpoint_pg")


# What a lease's take raises having certainly taken nothing: no lease to give back
# (a release would wait on a busy file again, or log a lease that never was).
NOTHING_TAKEN = (ThreadBusyError, DatabaseBusyError, AsyncMisuseError, ConfigError, SaverClosedError)


def _release_failed(lease: leases.Lease, exc: Exception) -> None:
    _log.warning(
        "could not release the lease on thread %r (%s); it lapses in at most %.0f s",
        lease.thread_id,
        exc,
        lease.ttl,
    )


def release_quietly(release: Callable[[], Any], lease: leases.Lease) -> None:
    """Release a lease at the end of its block without hiding the block's outcome:
    if the database cannot be reached, the lease lapses by itself after its ttl."""
    try:
        release()
    except Exception as exc:
        _release_failed(lease, exc)


async def arelease_quietly(release: Callable[[], Awaitable[Any]], lease: leases.Lease) -> None:
    try:
        await release()
    except Exception as exc:
        _release_failed(lease, exc)
