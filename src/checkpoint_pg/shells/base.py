"""What the sync and async savers share: options, versions, the schema check."""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.base import SerializerProtocol

from checkpoint_pg import migrate
from checkpoint_pg.core import lease as leases
from checkpoint_pg.core.config import normalize_thread_id, target_of
from checkpoint_pg.core.codec import ValueCodec
from checkpoint_pg.core.ops import Batch, Ctx, Op
from checkpoint_pg.core.values import ListCache
from checkpoint_pg.schema import DEFAULT_PREFIX, Tables, build_tables
from checkpoint_pg.sql import Stmt


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
    ) -> None:
        BaseCheckpointSaver.__init__(self, serde=serde)
        self.tables = build_tables(prefix or DEFAULT_PREFIX, schema)
        self.ctx = Ctx(
            sql_cls(self.tables),
            ValueCodec(self.serde, hash_key=hash_key, max_value_bytes=max_value_bytes),
            ListCache(),
            single_writer=single_writer,
            lease_key=id(self),
        )
        self._url_hint = url_hint
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
        """A zero-padded counter and 32 random bits: ``0000000007.9f3a01c2``.

        Sorts as the counter does (continuing a thread written by the incumbent
        savers, whose counters are 32 digits wide, sorts after them too) and is
        short, since every stored version repeats it.
        """
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(str(current).split(".")[0])
        return f"{current_v + 1:010d}.{random.getrandbits(32):08x}"

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


_log = logging.getLogger("checkpoint_pg")


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
