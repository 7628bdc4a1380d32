"""What both backends' SQL modules share: quoted table names, row shapes, leases."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from checkpoint_pg.core.chunks import CHUNK_TYPE
from checkpoint_pg.schema import Tables
from checkpoint_pg.sql import Stmt

if TYPE_CHECKING:
    from checkpoint_pg.core.lease import Lease


class Names:
    """Quoted, schema-qualified table names for one dialect."""

    def __init__(self, tables: Tables, dialect: sa.Dialect) -> None:
        fmt = dialect.identifier_preparer.format_table
        self.threads = fmt(tables.threads)
        self.checkpoints = fmt(tables.checkpoints)
        self.values = fmt(tables.channel_values)
        self.writes = fmt(tables.writes)
        self.objects = fmt(tables.objects)
        self.version_table = tables.version_table


# Column lists shared by the SELECTs of both backends, in the order the core reads them.
CHECKPOINT_COLS = "thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata"
VALUE_COLS = "channel, version, kind, base_version, root_version, refs"
WRITE_COLS = "checkpoint_id, task_id, idx, channel, task_path, kind, refs"


def nothing_left(n: Names, t: str) -> str:
    """``AND`` conditions true when thread ``t`` (a placeholder) holds no checkpoint,
    write or object: its row can go without listings showing an empty thread."""
    return " ".join(
        f"AND NOT EXISTS (SELECT 1 FROM {tbl} WHERE thread_id = {t})"
        for tbl in (n.checkpoints, n.writes, n.objects)
    )


class CheckpointPages:
    """``select_checkpoints`` for both backends' SQL classes.

    A backend gives its placeholder (`_ph`), the conditions of a metadata
    filter (`_filter_clauses`, binding what they need into the parameters) and
    any statement that must run before the page (`_page_prelude`).
    """

    n: Names

    def _ph(self, name: str) -> str:
        raise NotImplementedError

    def _filter_clauses(self, filter: dict[str, Any], p: dict[str, Any]) -> list[str]:
        raise NotImplementedError

    def _page_prelude(self, thread_id: str | None) -> list[Stmt]:
        return []

    def parent_stored_sql(self) -> str:
        """A row when the parent of the checkpoint being put is stored (see
        `context.LastPuts`: a put whose DeltaChannel replays from it requires it)."""
        t, ns, parent = (self._ph(k) for k in ("t", "ns", "parent"))
        return (
            f"SELECT 1 FROM {self.n.checkpoints} WHERE thread_id = {t} "
            f"AND checkpoint_ns = {ns} AND checkpoint_id = {parent}"
        )

    def select_thread_writes(self, t: str) -> Stmt:
        """Every pending write of a thread: (ns, checkpoint id, task, idx, channel, refs)."""
        return Stmt(
            "SELECT checkpoint_ns, checkpoint_id, task_id, idx, channel, refs "
            f"FROM {self.n.writes} WHERE thread_id = {self._ph('t')}",
            {"t": t},
        )

    def refresh_thread_row(self, t: str) -> list[Stmt]:
        """After checkpoints other than the oldest were deleted (delete_for_runs): the
        thread row's metadata is its newest root checkpoint's again (what `threads`
        filters on), and a row left with nothing of its thread and no lease goes, as
        delete_thread's does (listings do not show an empty thread)."""
        n, t_ = self.n, self._ph("t")
        return [
            Stmt(
                f"UPDATE {n.threads} SET metadata = (SELECT metadata FROM {n.checkpoints} "
                f"WHERE thread_id = {t_} AND checkpoint_ns = '' ORDER BY checkpoint_id DESC "
                f"LIMIT 1) WHERE thread_id = {t_}",
                {"t": t},
            ),
            Stmt(
                f"DELETE FROM {n.threads} WHERE thread_id = {t_} AND lease_owner IS NULL "
                + nothing_left(n, t_),
                {"t": t},
            ),
        ]

    def select_thread_objects(self, t: str) -> Stmt:
        """Every object of a thread: (hash, data of a chunk, else NULL)."""
        return Stmt(
            f"SELECT hash, CASE WHEN type = '{CHUNK_TYPE}' THEN data END "
            f"FROM {self.n.objects} WHERE thread_id = {self._ph('t')}",
            {"t": t},
        )

    def select_checkpoints(
        self,
        *,
        thread_id: str | None,
        ns: str | None,
        checkpoint_id: str | None,
        before: str | None,
        filter: dict[str, Any] | None,
        limit: int | None,
        after: tuple[str, str, str] | None = None,
    ) -> list[Stmt]:
        """A page of checkpoints, newest first (the last statement returns the rows).

        ``after`` is the keyset of the previous page's last row: (checkpoint id,
        namespace, thread).
        """
        ph = self._ph
        where: list[str] = []
        p: dict[str, Any] = {}
        for col, name, value, op in (
            ("thread_id", "t", thread_id, "="),
            ("checkpoint_ns", "ns", ns, "="),
            ("checkpoint_id", "id", checkpoint_id, "="),
            ("checkpoint_id", "before", before, "<"),
        ):
            if value is not None:
                where.append(f"{col} {op} {ph(name)}")
                p[name] = value
        if filter:
            where.extend(self._filter_clauses(filter, p))
        if after is not None:
            where.append(
                f"(checkpoint_id, checkpoint_ns, thread_id) < ({ph('a_id')}, {ph('a_ns')}, {ph('a_t')})"
            )
            p.update(a_id=after[0], a_ns=after[1], a_t=after[2])
        sql = f"SELECT {CHECKPOINT_COLS} FROM {self.n.checkpoints}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY checkpoint_id DESC, checkpoint_ns DESC, thread_id DESC"
        if limit is not None:
            sql += f" LIMIT {ph('limit')}"
            p["limit"] = limit
        return [*self._page_prelude(thread_id), Stmt(sql, p)]

class LeaseSQL:
    """The statements of thread leases (core/lease.py), for one backend.

    ``epoch`` is the backend's "now in seconds since the epoch", ``now`` its
    timestamp for created_at, ``ph`` turns a parameter name into a placeholder
    and ``extra`` gives parameters ``now`` needs.
    """

    def __init__(
        self,
        n: Names,
        epoch: str,
        now: str,
        ph: Callable[[str], str],
        extra: Callable[[], dict[str, Any]] = dict,
        lock_row: str | None = None,
    ) -> None:
        self._extra = extra
        # Postgres: take the thread row's lock first. Updating the lease columns
        # alone would not wait for a put_writes holding the row FOR KEY SHARE,
        # which could then commit after its lease was taken or broken.
        self._lock = lock_row
        t, lease, ttl = ph("t"), ph("lease"), ph("ttl")
        mine = f"thread_id = {t} AND lease_owner = {lease}"
        # Takes the lease when it is free, lapsed or already the caller's; a
        # thread that does not exist yet gets its row now.
        self.acquire = (
            f"INSERT INTO {n.threads} AS t (thread_id, created_at, updated_at, lease_owner, "
            f"lease_until) VALUES ({t}, {now}, {now}, {lease}, {epoch} + {ttl}) "
            "ON CONFLICT (thread_id) DO UPDATE SET lease_owner = excluded.lease_owner, "
            "lease_until = excluded.lease_until, updated_at = excluded.updated_at "
            "WHERE t.lease_owner IS NULL "
            f"OR t.lease_until <= {epoch} OR t.lease_owner = excluded.lease_owner"
        )
        self.read = f"SELECT lease_owner, lease_until - {epoch} FROM {n.threads} WHERE thread_id = {t}"
        self.renew = f"UPDATE {n.threads} SET lease_until = {epoch} + {ttl} WHERE {mine}"
        # Releasing a lease of a thread the run never wrote to removes the row
        # the lease created, so listings do not show an empty thread.
        self.drop_unused_row = (
            f"DELETE FROM {n.threads} WHERE {mine} " + nothing_left(n, t)
        )
        self.release = f"UPDATE {n.threads} SET lease_owner = NULL, lease_until = NULL WHERE {mine}"
        self.break_ = (
            f"UPDATE {n.threads} SET lease_owner = NULL, lease_until = NULL "
            f"WHERE thread_id = {t} AND lease_owner IS NOT NULL"
        )

    def params(self, t: str, lease: Lease | None = None) -> dict[str, Any]:
        p: dict[str, Any] = {"t": t, **self._extra()}
        if lease is not None:
            p.update(lease=lease.token, ttl=lease.ttl)
        return p

    def _locked(self, t: str) -> list[Stmt]:
        return [Stmt(self._lock, {"t": t})] if self._lock else []

    def take(self, lease: Lease) -> list[Stmt]:
        """Acquire, then read back whose the lease is and for how long."""
        return [
            *self._locked(lease.thread_id),
            Stmt(self.acquire, self.params(lease.thread_id, lease)),
            self.check(lease.thread_id),
        ]

    def check(self, t: str) -> Stmt:
        return Stmt(self.read, {"t": t})

    def extend(self, lease: Lease) -> list[Stmt]:
        return [Stmt(self.renew, self.params(lease.thread_id, lease)), self.check(lease.thread_id)]

    def give_back(self, lease: Lease) -> list[Stmt]:
        p = {"t": lease.thread_id, "lease": lease.token}
        return [Stmt(self.drop_unused_row, p), Stmt(self.release, p)]

    def break_lease(self, t: str) -> list[Stmt]:
        return [*self._locked(t), self.check(t), Stmt(self.break_, {"t": t})]
