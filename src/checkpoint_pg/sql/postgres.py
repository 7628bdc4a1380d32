"""The SQL for Postgres (psycopg 3, ``%(name)s`` parameters, arrays for batches)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.dialects import postgresql

from checkpoint_pg.core.chunks import CHUNK, CHUNK_TYPE
from checkpoint_pg.core.codec import StoredObject
from checkpoint_pg.core.lease import Lease, lease_params as _lease_params
from checkpoint_pg.core.values import ValueRow
from checkpoint_pg.schema import KIND, Tables
from checkpoint_pg.sql import Stmt
from checkpoint_pg.sql.common import VALUE_COLS, WRITE_COLS, CheckpointPages, LeaseSQL, Names, nothing_left
from checkpoint_pg.sql.functions import Functions

__all__ = ["PostgresSQL"]

# Now, in seconds since the epoch, by the server's clock (leases).
_EPOCH = "extract(epoch from now())::float8"


def metadata_matches(column: str, param: str) -> str:
    """SQL true when the jsonb ``column`` matches the filter document ``param``
    (NULL: no filter) as InMemorySaver matches: ``column.get(k) == v`` for every
    key, so None also matches a missing key and lists and dicts compare whole
    (true and 1 differ, as in JSON).
    Containment of the filter (its nulls stripped) comes first: a necessary
    condition, and the cheap one."""
    f = f"{param}::jsonb"
    return (
        f"({f} IS NULL OR ({column} @> jsonb_strip_nulls({f}) AND NOT EXISTS ("
        f"SELECT 1 FROM jsonb_each({f}) AS f "
        f"WHERE coalesce({column} -> f.key, 'null'::jsonb) IS DISTINCT FROM f.value)))"
    )


def _columns(rows: Sequence[Sequence[Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    """Rows of keys as one array parameter per column (for unnest)."""
    return {name: [r[i] for r in rows] for i, name in enumerate(names)}


# Arrays are sent as array literals (str) which the statements cast: psycopg
# would otherwise adapt them element by element in Python (finding the element
# type, then hex-encoding and regex-quoting each bytea), several times the cost
# of formatting the literal here.


def text_array(items: Sequence[str | None]) -> str:
    """A text[] literal: every element quoted, NULL for None."""
    if not items:
        return "{}"
    if None not in items:
        joined = '","'.join(items)  # type: ignore[arg-type]
        # no element holds a quote or a backslash: nothing to escape
        if "\\" not in joined and joined.count('"') == 2 * (len(items) - 1):
            return '{"' + joined + '"}'
    return "{%s}" % ",".join(
        "NULL" if s is None else '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
        for s in items
    )


def bytea_array(items: Iterable[bytes]) -> str:
    """A bytea[] literal of hex elements (the backslash escaped for the array parser)."""
    hexes = [b.hex() for b in items]
    return "{\\\\x" + ",\\\\x".join(hexes) + "}" if hexes else "{}"


def int_array(items: Iterable[int]) -> str:
    return "{%s}" % ",".join(map(str, items))


def _object_params(objs: Sequence[StoredObject]) -> dict[str, str]:
    return {
        "h": bytea_array([o.hash for o in objs]),
        "ty": text_array([o.type for o in objs]),
        "d": bytea_array([o.data for o in objs]),
    }


def _value_params(rows: Sequence[ValueRow]) -> dict[str, str]:
    return {
        "ch": text_array([r.channel for r in rows]),
        "ver": text_array([r.version for r in rows]),
        "kind": int_array([r.kind for r in rows]),
        "base": text_array([r.base_version for r in rows]),
        "root": text_array([r.root_version for r in rows]),
        "refs": bytea_array([r.stored_refs for r in rows]),
    }


def _write_params(rows: Sequence[tuple[int, str, int, bytes, Any]]) -> dict[str, str]:
    return {
        "idx": int_array([r[0] for r in rows]),
        "ch": text_array([r[1] for r in rows]),
        "kind": int_array([r[2] for r in rows]),
        "refs": bytea_array([r[3] for r in rows]),
    }


class PostgresSQL(CheckpointPages):
    """Statements for one prefix/schema on Postgres."""

    @staticmethod
    def table_names(schema: str | None) -> Stmt:
        """The tables of ``schema`` (else the first of the search path), for a wrong prefix's hint."""
        return Stmt(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = coalesce(%(schema)s, current_schema())",
            {"schema": schema},
        )

    name = "postgresql"
    # get_tuple, put and put_writes are one statement each (see get_tuple_stmt,
    # put_checkpoint): one round trip, atomic without BEGIN/COMMIT.
    single_statement = True

    def __init__(self, tables: Tables) -> None:
        n = self.n = Names(tables, postgresql.dialect())
        self.fn = Functions(tables)
        self.lease = LeaseSQL(
            n,
            _EPOCH,
            "now()",
            lambda name: f"%({name})s",
            lock_row=f"SELECT 1 FROM {n.threads} WHERE thread_id = %(t)s FOR UPDATE",
        )
        # Takes the thread's row lock, renews the caller's lease if it is the
        # row's, and returns the lease for the put function to check.
        self._upsert_thread = (
            f"INSERT INTO {n.threads} AS t (thread_id, created_at, updated_at, metadata) "
            "VALUES (%(t)s, now(), now(), %(tmd)s::jsonb) "
            "ON CONFLICT (thread_id) DO UPDATE SET updated_at = excluded.updated_at, "
            "metadata = COALESCE(excluded.metadata, t.metadata), "
            f"lease_until = CASE WHEN t.lease_owner = %(lease)s THEN {_EPOCH} + %(ttl)s "
            "ELSE t.lease_until END "
            f"RETURNING lease_owner, lease_until - {_EPOCH}"
        )
        self._insert_objects = (
            f"INSERT INTO {n.objects} (thread_id, hash, type, data) "
            "SELECT %(t)s, o.h, o.ty, o.d "
            "FROM unnest(%(h)s::bytea[], %(ty)s::text[], %(d)s::bytea[]) AS o(h, ty, d) "
            "ON CONFLICT DO NOTHING"
        )
        self._insert_values = (
            f"INSERT INTO {n.values} "
            "(thread_id, checkpoint_ns, channel, version, kind, base_version, root_version, refs) "
            "SELECT %(t)s, %(ns)s, r.ch, r.ver, r.kind, r.base, r.root, r.refs "
            "FROM unnest(%(ch)s::text[], %(ver)s::text[], %(kind)s::int2[], %(base)s::text[], "
            "%(root)s::text[], %(refs)s::bytea[]) AS r(ch, ver, kind, base, root, refs) "
            "ON CONFLICT DO NOTHING"
        )
        self._insert_checkpoint = (
            f"INSERT INTO {n.checkpoints} (thread_id, checkpoint_ns, checkpoint_id, "
            "parent_checkpoint_id, run_id, checkpoint, metadata, complete) "
            "VALUES (%(t)s, %(ns)s, %(id)s, %(parent)s, %(run_id)s, %(doc)s, %(md)s::jsonb, "
            # one primary-key lookup per required version (LATERAL ... OFFSET 0): the
            # cached generic plan of a join scanned every value of the thread
            "(SELECT count(*) FROM unnest(%(req_ch)s::text[], %(req_ver)s::text[]) AS q(ch, ver), "
            f"LATERAL (SELECT 1 FROM {n.values} v WHERE v.thread_id = %(t)s "
            "AND v.checkpoint_ns = %(ns)s AND v.channel = q.ch AND v.version = q.ver OFFSET 0) AS v"
            ") = %(req_n)s) "
            "ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET "
            "parent_checkpoint_id = excluded.parent_checkpoint_id, run_id = excluded.run_id, "
            "checkpoint = excluded.checkpoint, metadata = excluded.metadata, "
            "complete = excluded.complete"
        )
        # Regular writes: the first stored write of (task, idx) wins, and its objects
        # are inserted only with it, so a task that runs twice adds nothing.
        self._insert_writes = (
            "WITH new AS ("
            f"INSERT INTO {n.writes} (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, "
            "channel, task_path, kind, refs) "
            "SELECT %(t)s, %(ns)s, %(cid)s, %(task)s, w.idx, w.ch, %(path)s, w.kind, w.refs "
            "FROM unnest(%(idx)s::int[], %(ch)s::text[], %(kind)s::int2[], %(refs)s::bytea[]) "
            "AS w(idx, ch, kind, refs) ON CONFLICT DO NOTHING RETURNING idx) "
            f"INSERT INTO {n.objects} (thread_id, hash, type, data) "
            "SELECT DISTINCT ON (o.h) %(t)s, o.h, o.ty, o.d "
            "FROM unnest(%(oidx)s::int[], %(oh)s::bytea[], %(oty)s::text[], %(od)s::bytea[]) "
            "AS o(idx, h, ty, d) WHERE o.idx IN (SELECT idx FROM new) ON CONFLICT DO NOTHING"
        )
        # Special writes (error, interrupt, resume, scheduled) replace what was
        # there; their objects go in with them.
        self._upsert_special_writes = (
            f"WITH o AS (INSERT INTO {n.objects} (thread_id, hash, type, data) "
            "SELECT %(t)s, o.h, o.ty, o.d "
            "FROM unnest(%(oh)s::bytea[], %(oty)s::text[], %(od)s::bytea[]) AS o(h, ty, d) "
            "ON CONFLICT DO NOTHING) "
            f"INSERT INTO {n.writes} (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, "
            "channel, task_path, kind, refs) "
            "SELECT %(t)s, %(ns)s, %(cid)s, %(task)s, w.idx, w.ch, %(path)s, w.kind, w.refs "
            "FROM unnest(%(idx)s::int[], %(ch)s::text[], %(kind)s::int2[], %(refs)s::bytea[]) "
            "AS w(idx, ch, kind, refs) "
            "ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE SET "
            "channel = excluded.channel, task_path = excluded.task_path, kind = excluded.kind, "
            "refs = excluded.refs"
        )
        # Reads of a list page: every (thread, namespace) group in one statement,
        # each key a LATERAL primary-key lookup (OFFSET 0 keeps it one, whatever
        # the statistics say). Rows start with the group's keys.
        self._select_values = (
            "SELECT q.t, q.ns, v.* FROM unnest(%(t)s::text[], %(ns)s::text[], %(ch)s::text[], "
            "%(ver)s::text[]) AS q(t, ns, ch, ver), LATERAL (SELECT "
            f"{VALUE_COLS} FROM {n.values} WHERE thread_id = q.t AND checkpoint_ns = q.ns "
            "AND channel = q.ch AND version = q.ver OFFSET 0) AS v"
        )
        self._select_ranges = (
            "SELECT q.t, q.ns, v.* FROM unnest(%(t)s::text[], %(ns)s::text[], %(ch)s::text[], "
            "%(lo)s::text[], %(hi)s::text[]) AS q(t, ns, ch, lo, hi), LATERAL (SELECT "
            f"{VALUE_COLS} FROM {n.values} WHERE thread_id = q.t AND checkpoint_ns = q.ns "
            "AND channel = q.ch AND version >= q.lo AND version <= q.hi OFFSET 0) AS v"
        )
        self._select_writes = (
            "SELECT q.t, q.ns, w.* FROM unnest(%(t)s::text[], %(ns)s::text[], %(id)s::text[]) "
            f"AS q(t, ns, id), LATERAL (SELECT {WRITE_COLS} FROM {n.writes} WHERE thread_id = q.t "
            "AND checkpoint_ns = q.ns AND checkpoint_id = q.id OFFSET 0) AS w"
        )
        self._select_objects = (
            "SELECT q.t, o.* FROM unnest(%(t)s::text[], %(h)s::bytea[]) AS q(t, h), LATERAL ("
            f"SELECT hash, type, data FROM {n.objects} WHERE thread_id = q.t AND hash = q.h "
            "OFFSET 0) AS o"
        )

        # The hashes in every refs of ``vals`` and ``w``, less those in ``known``,
        # cut from all refs at once. generate_series sits inside ARRAY(...), so
        # the generic plan takes unnest's small estimate, not generate_series'
        # 1,000 rows per call (hash tables for 20,000 rows); no PL/pgSQL helper
        # either (~10 us per call).
        hs = (
            "hs AS (SELECT DISTINCT h FROM unnest(ARRAY(SELECT substring(x.a FROM g * 16 + 1 FOR 16) "
            "FROM (SELECT string_agg(refs, ''::bytea) AS a FROM "
            "(SELECT refs FROM vals UNION ALL SELECT refs FROM w) AS y) AS x, "
            "generate_series(0, length(x.a) / 16 - 1) AS g)) AS h), "
        )
        self._todo_objects = (
            f"{hs}todo AS (SELECT hs.h FROM hs LEFT JOIN unnest(ARRAY("
            "SELECT substring(%(known)s::bytea FROM g * 16 + 1 FOR 16) "
            "FROM generate_series(0, length(%(known)s::bytea) / 16 - 1) AS g)) AS k(h) "
            "ON k.h = hs.h WHERE k.h IS NULL) "
        )
        # A page (list_thread) also sends the elements of the chunks of long lists
        # it reads (core/chunks.py) that are neither known nor read already (todo2):
        # a listing of long lists takes one round trip per page. So does get_tuple
        # when the process holds nothing of the thread (a server process reading a
        # thread another one ran), and only then: these CTEs cost every call ~30 us
        # on the server (186 us against 155, on a short thread), while the chunks
        # of the lists a run holds are known to it (`_known_chunks`).
        self._todo_chunked = (
            f"{hs}kn AS (SELECT h FROM unnest(ARRAY("
            "SELECT substring(%(known)s::bytea FROM g * 16 + 1 FOR 16) "
            "FROM generate_series(0, length(%(known)s::bytea) / 16 - 1) AS g)) AS h), "
            "todo AS (SELECT hs.h FROM hs LEFT JOIN kn ON kn.h = hs.h WHERE kn.h IS NULL), "
            "objs AS (SELECT o.* FROM todo, LATERAL (SELECT hash, type, data "
            f"FROM {n.objects} WHERE thread_id = %(t)s AND hash = todo.h OFFSET 0) AS o), "
            "todo2 AS (SELECT substring(c.data FROM g * 16 + 1 FOR 16) AS h "
            f"FROM objs AS c, generate_series(0, {CHUNK - 1}) AS g WHERE c.type = '{CHUNK_TYPE}' "
            "EXCEPT SELECT h FROM kn EXCEPT SELECT h FROM todo) "
        )
        self._objects_read_chunked = (
            "SELECT type, data, hash FROM objs UNION ALL SELECT o.type, o.data, o.hash FROM todo2, "
            f"LATERAL (SELECT hash, type, data FROM {n.objects} WHERE thread_id = %(t)s "
            "AND hash = todo2.h OFFSET 0) AS o"
        )

    # -- writes -----------------------------------------------------------------

    def insert_writes_sql(self, special: bool) -> str:
        return self._upsert_special_writes if special else self._insert_writes

    def upsert_thread(self, t: str, md_json: str | None, lease: Lease | None = None) -> Stmt:
        return Stmt(self._upsert_thread, {"t": t, "tmd": md_json, **_lease_params(lease)})

    def put_sql(self) -> list[str]:
        """A put as two statements of the put function.

        The first upserts the thread row, which takes its row lock: a put and a
        delete/prune of the same thread run one after the other. The second
        inserts objects, values and the checkpoint as data-modifying CTEs; as a
        new statement it gets a new snapshot, so the checkpoint's completeness
        check sees a delete that committed while the first one waited.
        """
        ctes = ", ".join(
            f"w{i} AS ({sql})" for i, sql in enumerate([self._insert_objects, self._insert_values])
        )
        return [self._upsert_thread, f"WITH {ctes} {self._insert_checkpoint}"]

    def newer_checkpoint_sql(self) -> str:
        """A checkpoint of (thread, ns) newer than the parent of the one being put."""
        return (
            f"SELECT 1 FROM {self.n.checkpoints} WHERE thread_id = %(t)s "
            "AND checkpoint_ns = %(ns)s AND checkpoint_id > coalesce(%(parent)s, '') "
            "AND checkpoint_id <> %(id)s"
        )

    def touch_thread_sql(self) -> str:
        # put_writes: a write is activity too (a resume after a long pause writes
        # before the node's put), which prune(updated_before=) must see. Only
        # when the row is over a second old: a run's steps touch it by their puts.
        return (
            f"UPDATE {self.n.threads} SET updated_at = now() "
            "WHERE thread_id = %(t)s AND updated_at < now() - interval '1 second'"
        )

    def lock_thread_shared_sql(self) -> str:
        # put_writes: waits for a delete/prune of the thread in progress, and
        # reads the thread's lease for the function to check
        return (
            f"SELECT lease_owner, lease_until - {_EPOCH} FROM {self.n.threads} "
            "WHERE thread_id = %(t)s FOR KEY SHARE"
        )

    def put_checkpoint(
        self,
        t: str,
        ns: str,
        thread_md: str | None,
        objs: Sequence[StoredObject],
        rows: Sequence[ValueRow],
        cid: str,
        parent: str | None,
        run_id: str | None,
        doc: str,
        md_json: str,
        required: Sequence[tuple[str, str]],
        guard: bool = False,
        lease: Lease | None = None,
        need_parent: bool = False,
    ) -> list[Stmt]:
        """Call the put function: one round trip, atomic without BEGIN/COMMIT."""
        p = {
            **self.upsert_thread(t, thread_md, lease).params,
            **_object_params(objs),
            "ns": ns,
            **_value_params(rows),
            "id": cid,
            "parent": parent,
            "run_id": run_id,
            "doc": doc,
            "md": md_json,
            "req_ch": text_array([c for c, _ in required]),
            "req_ver": text_array([v for _, v in required]),
            "req_n": len(required),
            "guard": guard,
            "need_parent": need_parent,
        }
        return [Stmt(self.fn.call("put"), p)]

    def insert_writes(
        self,
        t: str,
        ns: str,
        cid: str,
        task_id: str,
        task_path: str,
        rows: Sequence[tuple[int, str, int, bytes, Sequence[StoredObject]]],
        lease: Lease | None = None,
    ) -> list[Stmt]:
        """One call of the put_writes function per kind of write (regular, special)."""
        out: list[Stmt] = []
        base = {"t": t, "ns": ns, "cid": cid, "task": task_id, "path": task_path}
        base.update(_lease_params(lease))
        for special in (False, True):
            group = [r for r in rows if (r[0] < 0) == special]
            if not group:
                continue
            objs = [(r[0], o) for r in group for o in r[4]]
            p = {
                **base,
                **_write_params(group),
                "oidx": int_array([i for i, _ in objs]),
                "oh": bytea_array([o.hash for _, o in objs]),
                "oty": text_array([o.type for _, o in objs]),
                "od": bytea_array([o.data for _, o in objs]),
                "special": special,
            }
            out.append(Stmt(self.fn.call("put_writes"), p))
        return out

    # -- reads ------------------------------------------------------------------

    def _ph(self, name: str) -> str:
        return f"%({name})s"

    def _filter_clauses(self, filter: dict[str, Any], p: dict[str, Any]) -> list[str]:
        p["filter"] = json.dumps(filter)
        return [metadata_matches("metadata", "%(filter)s")]

    def _page_prelude(self, thread_id: str | None) -> list[Stmt]:
        if thread_id is not None:
            return []
        # Across threads, walk the index in list order (recent_idx) and stop at the
        # limit. How selective a metadata filter is, the planner only guesses: from
        # some ANALYZE samples it chose to sort the whole table instead (38 ms for
        # 100,000 checkpoints against 3-5 ms). The read runs in a transaction.
        return [Stmt("SET LOCAL enable_sort = off", {})]

    def select_values(self, keys: Sequence[tuple[str, str, str, str]]) -> list[Stmt]:
        """Values by (thread, ns, channel, version); rows (thread, ns, *VALUE_COLS)."""
        return [Stmt(self._select_values, _columns(keys, ("t", "ns", "ch", "ver")))]

    def select_value_ranges(self, ranges: Sequence[tuple[str, str, str, str, str]]) -> list[Stmt]:
        """Values of (thread, ns, channel) between two versions (delta chains)."""
        return [Stmt(self._select_ranges, _columns(ranges, ("t", "ns", "ch", "lo", "hi")))]

    def select_writes(self, keys: Sequence[tuple[str, str, str]]) -> list[Stmt]:
        """Writes of (thread, ns, checkpoint id); rows (thread, ns, *WRITE_COLS)."""
        return [Stmt(self._select_writes, _columns(keys, ("t", "ns", "id")))]

    def select_objects(self, keys: Sequence[tuple[str, bytes]]) -> list[Stmt]:
        """Objects by (thread, hash); rows (thread, hash, type, data)."""
        return [Stmt(self._select_objects, _columns(keys, ("t", "h")))]

    def get_tuple_sql(self, with_id: bool, cold: bool = False) -> str:
        """Read a checkpoint, its values (with delta chains), writes and objects at once.

        Rows are tagged: 0 checkpoint, 1 channel value, 2 write, 3 object.
        Objects whose hash is in ``known`` (decoded already in this process) are
        not sent; ``cold`` (nothing known) also sends the elements of the chunks
        read. LATERAL lookups keep every step on the primary keys even when the
        planner has no statistics yet (a fresh table).
        """
        n = self.n
        cond = " AND checkpoint_id = %(id)s" if with_id else ""
        sql = (
            "WITH cp AS ("
            f"SELECT checkpoint_id, parent_checkpoint_id, checkpoint, metadata FROM {n.checkpoints} "
            f"WHERE thread_id = %(t)s AND checkpoint_ns = %(ns)s{cond} "
            "ORDER BY checkpoint_id DESC LIMIT 1), "
            "direct AS (SELECT v.* FROM cp, "
            "json_each_text(cp.checkpoint::json -> 'channel_versions') AS q(ch, ver), "
            "LATERAL (SELECT channel, version, kind, base_version, root_version, refs "
            f"FROM {n.values} WHERE thread_id = %(t)s AND checkpoint_ns = %(ns)s "
            "AND channel = q.ch AND version = q.ver OFFSET 0) AS v), "
            "vals AS (SELECT channel, version, kind, base_version, refs FROM direct "
            "UNION ALL SELECT c.* FROM direct AS d, LATERAL ("
            f"SELECT channel, version, kind, base_version, refs FROM {n.values} "
            "WHERE thread_id = %(t)s AND checkpoint_ns = %(ns)s AND channel = d.channel "
            "AND version >= d.root_version AND version < d.version OFFSET 0) AS c "
            f"WHERE d.kind = {KIND.DELTA}), "
            "w AS (SELECT w.* FROM cp, LATERAL ("
            "SELECT task_id, idx, channel, task_path, kind, refs "
            f"FROM {n.writes} WHERE thread_id = %(t)s AND checkpoint_ns = %(ns)s "
            "AND checkpoint_id = cp.checkpoint_id OFFSET 0) AS w), "
            f"{self._todo_chunked if cold else self._todo_objects}"
            "SELECT 0, checkpoint_id, parent_checkpoint_id, checkpoint, metadata::text, "
            "NULL::int, NULL::int, NULL::bytea, NULL::bytea FROM cp "
            "UNION ALL SELECT 1, channel, version, base_version, NULL, NULL, kind, refs, NULL FROM vals "
            "UNION ALL SELECT 2, task_id, channel, task_path, NULL, idx, kind, refs, NULL FROM w "
            "UNION ALL SELECT 3, o.type, NULL, NULL, NULL, NULL, NULL, o.data, o.hash FROM "
            + (
                f"({self._objects_read_chunked}) AS o"
                if cold
                else "todo, "
                f"LATERAL (SELECT hash, type, data FROM {n.objects} WHERE thread_id = %(t)s "
                "AND hash = todo.h OFFSET 0) AS o"
            )
        )
        # OFFSET 0 keeps each LATERAL a per-key index lookup (no pull-up into a
        # hash join over the whole thread when statistics are missing or stale).
        return sql

    def list_thread_sql(self, shape: str) -> str:
        """A page of one thread's checkpoints with everything they need, at once.

        ``shape``: ``ns`` (one namespace, no bound), ``ns_hi`` (one namespace,
        ids below ``%(hi)s``: ``before`` and the keyset of the previous page in
        one bound) or ``all`` (every namespace; sorted, as a thread has few).
        Rows are tagged like get_tuple's and lead with the namespace: 0 checkpoint
        (id, parent, document, metadata), 1 channel value (channel, version,
        base, root, kind, refs), 2 write (checkpoint id, task, channel, path,
        idx, kind, refs), 3 object (type, data, hash). Values shared by the
        page's checkpoints, and objects, come once; objects in ``known`` (decoded
        already: held by this process, or sent by an earlier page of the same
        listing) not at all.
        """
        n = self.n
        md = metadata_matches("metadata", "%(filter)s")
        cols = "checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata"
        if shape == "all":
            cp = (
                f"SELECT {cols} FROM {n.checkpoints} WHERE thread_id = %(t)s "
                "AND (%(hi)s::text IS NULL OR checkpoint_id < %(hi)s) "
                "AND (%(a_id)s::text IS NULL OR (checkpoint_id, checkpoint_ns) < (%(a_id)s, %(a_ns)s)) "
                f"AND {md} ORDER BY checkpoint_id DESC, checkpoint_ns DESC LIMIT %(limit)s"
            )
        else:
            bound = " AND checkpoint_id < %(hi)s" if shape == "ns_hi" else ""
            cp = (
                f"SELECT {cols} FROM {n.checkpoints} WHERE thread_id = %(t)s "
                f"AND checkpoint_ns = %(ns)s{bound} AND {md} "
                "ORDER BY checkpoint_id DESC LIMIT %(limit)s"
            )
        vcols = "channel, version, kind, base_version, root_version, refs"
        return (
            f"WITH cp AS ({cp}), "
            "keys AS (SELECT DISTINCT cp.checkpoint_ns AS ns, q.ch, q.ver FROM cp, "
            "json_each_text(cp.checkpoint::json -> 'channel_versions') AS q(ch, ver)), "
            f"direct AS (SELECT k.ns, v.* FROM keys AS k, LATERAL (SELECT {vcols} "
            f"FROM {n.values} WHERE thread_id = %(t)s AND checkpoint_ns = k.ns "
            "AND channel = k.ch AND version = k.ver OFFSET 0) AS v), "
            # the delta chains of the page overlap (versions of one list): UNION
            # sends each stored version once
            "vals AS (SELECT * FROM direct UNION SELECT d.ns, c.* FROM direct AS d, LATERAL ("
            f"SELECT {vcols} FROM {n.values} WHERE thread_id = %(t)s AND checkpoint_ns = d.ns "
            "AND channel = d.channel AND version >= d.root_version AND version < d.version "
            f"OFFSET 0) AS c WHERE d.kind = {KIND.DELTA}), "
            "w AS (SELECT cp.checkpoint_ns AS ns, cp.checkpoint_id AS cid, w.* FROM cp, LATERAL ("
            f"SELECT task_id, idx, channel, task_path, kind, refs FROM {n.writes} "
            "WHERE thread_id = %(t)s AND checkpoint_ns = cp.checkpoint_ns "
            "AND checkpoint_id = cp.checkpoint_id OFFSET 0) AS w), "
            f"{self._todo_chunked}"
            "SELECT 0, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, "
            "metadata::text, NULL, NULL::int, NULL::int, NULL::bytea, NULL::bytea FROM cp "
            "UNION ALL SELECT 1, ns, channel, version, base_version, root_version, NULL, NULL, "
            "kind, refs, NULL FROM vals "
            "UNION ALL SELECT 2, ns, cid, task_id, channel, task_path, NULL, idx, kind, refs, NULL "
            "FROM w "
            "UNION ALL SELECT 3, NULL, o.type, NULL, NULL, NULL, NULL, NULL, NULL, o.data, o.hash "
            f"FROM ({self._objects_read_chunked}) AS o"
        )

    def list_thread_stmt(
        self,
        t: str,
        ns: str | None,
        before: str | None,
        after: tuple[str, str] | None,
        filter: dict[str, Any] | None,
        limit: int,
        known: Sequence[bytes],
    ) -> Stmt:
        """Call the list_thread function: one page of one thread in one round trip."""
        hi, a_id, a_ns = before, None, None
        if after is not None:
            if ns is not None:
                # within one namespace the keyset is an id bound like ``before``
                hi = after[0] if hi is None or after[0] < hi else hi
            else:
                a_id, a_ns = after
        return Stmt(
            f"SELECT * FROM {self.fn.list_thread}(%(t)s, %(ns)s, %(hi)s, %(a_id)s, %(a_ns)s, "
            "%(filter)s::jsonb, %(limit)s, %(known)s)",
            {"t": t, "ns": ns, "hi": hi, "a_id": a_id, "a_ns": a_ns,
             "filter": json.dumps(filter) if filter else None,
             "limit": limit, "known": b"".join(known)},
        )

    def get_tuple_stmt(self, t: str, ns: str, cid: str | None, known: Sequence[bytes] = ()) -> Stmt:
        """Call the get_tuple function (functions.py): its plan is cached by the server."""
        return Stmt(
            f"SELECT * FROM {self.fn.get_tuple}(%(t)s, %(ns)s, %(id)s, %(known)s)",
            {"t": t, "ns": ns, "id": cid, "known": b"".join(known)},
        )

    def repoint_writes(self, fixups: Sequence[tuple[Any, ...]]) -> list[Stmt]:
        """`repoint_write` for each fixup, under the row lock of their threads.

        A put_writes in flight (it holds the row FOR KEY SHARE) may be storing
        another write of the same bytes, found already stored; deleting them
        before it commits would leave its write pointing at nothing.
        """
        locks = [self.lock_thread(t) for t in dict.fromkeys(f[0] for f in fixups)]
        return [*locks, *(s for f in fixups for s in self.repoint_write(*f))]

    def repoint_write(
        self, t: str, ns: str, cid: str, task: str, idx: int, pos: int, old: bytes, new: bytes
    ) -> list[Stmt]:
        """Point element ``pos`` of a write at ``new`` and drop ``old`` if nothing uses it."""
        n = self.n
        p = {"t": t, "ns": ns, "cid": cid, "task": task, "idx": idx, "at": pos * 16 + 1,
             "old": old, "new": new}
        return [
            Stmt(
                f"UPDATE {n.writes} SET refs = overlay(refs PLACING %(new)s FROM %(at)s FOR 16) "
                "WHERE thread_id = %(t)s AND checkpoint_ns = %(ns)s AND checkpoint_id = %(cid)s "
                "AND task_id = %(task)s AND idx = %(idx)s "
                "AND substring(refs FROM %(at)s FOR 16) = %(old)s "
                # still stored: a delete_for_runs, prune or delete_thread of another
                # session may have collected it since the put that stored it committed
                # (apart from this); none can from here to the commit, as each takes the
                # thread's row lock, held here (a thread without its row, deleted, has
                # no checkpoint left to read a late write's message)
                f"AND EXISTS (SELECT 1 FROM {n.objects} WHERE thread_id = %(t)s AND hash = %(new)s)",
                p,
            ),
            Stmt(
                f"DELETE FROM {n.objects} WHERE thread_id = %(t)s AND hash = %(old)s "
                f"AND NOT EXISTS (SELECT 1 FROM {n.writes} WHERE thread_id = %(t)s "
                "AND position(%(old)s IN refs) > 0) "
                f"AND NOT EXISTS (SELECT 1 FROM {n.values} WHERE thread_id = %(t)s "
                "AND position(%(old)s IN refs) > 0) "
                # nor a chunk (core/chunks.py) that a list holds it by
                f"AND NOT EXISTS (SELECT 1 FROM {n.objects} WHERE thread_id = %(t)s "
                f"AND type = '{CHUNK_TYPE}' AND position(%(old)s IN data) > 0)",
                p,
            ),
        ]

    # -- maintenance ------------------------------------------------------------

    def thread_exists(self, t: str) -> Stmt:
        return Stmt(f"SELECT 1 FROM {self.n.checkpoints} WHERE thread_id = %(t)s LIMIT 1", {"t": t})

    def _own_tables(self) -> list[str]:
        n = self.n
        return [n.threads, n.checkpoints, n.values, n.writes, n.objects]

    def stored_bytes(self) -> Stmt:
        """The bytes of the saver's tables: indexes, TOAST and free-space maps included."""
        return Stmt(
            "SELECT coalesce(sum(pg_total_relation_size(to_regclass(r))), 0)::bigint "
            "FROM unnest(%(rels)s::text[]) AS r",
            {"rels": self._own_tables()},
        )

    def vacuum_refused(self) -> Stmt:
        """The saver's tables this role may not vacuum: Postgres lets their owner, the
        database's owner, a superuser (and from 17 a role granted MAINTAIN) vacuum a table,
        and skips any other with a warning only, which would read as a vacuum done."""
        return Stmt(
            "SELECT c.relname FROM unnest(%(rels)s::text[]) WITH ORDINALITY AS u(r, i) "
            "JOIN pg_class c ON c.oid = to_regclass(u.r) "
            "WHERE NOT pg_has_role(c.relowner, 'USAGE') "
            "AND NOT pg_has_role((SELECT datdba FROM pg_database WHERE datname = current_database()), 'USAGE') "
            # CASE, not AND: before 17 the server does not know the privilege and would raise
            "AND NOT CASE WHEN current_setting('server_version_num')::int >= 170000 "
            "THEN has_table_privilege(c.oid, 'MAINTAIN') ELSE false END ORDER BY u.i",
            {"rels": self._own_tables()},
        )

    def vacuum(self, full: bool) -> list[Stmt]:
        """Plain VACUUM marks dead rows' space free for new rows; FULL rewrites the tables,
        giving it back to the operating system, under a lock that blocks every use."""
        opts = "FULL, ANALYZE" if full else "ANALYZE"
        return [Stmt(f"VACUUM ({opts}) {', '.join(self._own_tables())}", {})]

    def lock_thread(self, t: str) -> Stmt:
        # Serializes delete/prune with concurrent puts on the same thread (puts
        # upsert this row first, so they wait for the row lock, and vice versa).
        return Stmt(f"SELECT 1 FROM {self.n.threads} WHERE thread_id = %(t)s FOR UPDATE", {"t": t})

    def date_thread(self, t: str, created: datetime, updated: datetime) -> Stmt:
        """Give a thread the times it was created and last written (an imported one)."""
        return Stmt(
            f"UPDATE {self.n.threads} SET created_at = %(c)s, updated_at = %(u)s WHERE thread_id = %(t)s",
            {"t": t, "c": created, "u": updated},
        )

    def claim_thread(self, t: str) -> list[Stmt]:
        """Lock a thread's row, making it first when there is none (a new thread): a put,
        a lease's take or another copy of that thread waits for this transaction to end,
        where a lock of no row let them commit between its checks and its writes. The
        row this makes goes with a rollback; `drop_claim` removes it if left empty."""
        return [
            Stmt(
                f"INSERT INTO {self.n.threads} (thread_id, created_at, updated_at) "
                "VALUES (%(t)s, now(), now()) ON CONFLICT (thread_id) DO NOTHING",
                {"t": t},
            ),
            self.lock_thread(t),
        ]

    def drop_claim(self, t: str) -> list[Stmt]:
        """Remove the row `claim_thread` made when nothing came into the thread."""
        return [
            Stmt(
                f"DELETE FROM {self.n.threads} WHERE thread_id = %(t)s AND lease_owner IS NULL "
                + nothing_left(self.n, "%(t)s"),
                {"t": t},
            )
        ]

    def thread_is_stale(self, t: str, cutoff: datetime) -> Stmt:
        """A row when the thread's last write is older than ``cutoff`` (aware)."""
        return Stmt(
            f"SELECT 1 FROM {self.n.threads} WHERE thread_id = %(t)s AND updated_at < %(cut)s",
            {"t": t, "cut": cutoff},
        )

    def delete_thread(self, t: str) -> list[Stmt]:
        # One statement, one snapshot: a first put committing meanwhile (with no
        # thread row yet to lock) is deleted whole or not at all, never its
        # values without their objects.
        n = self.n
        tables = (n.threads, n.checkpoints, n.writes, n.values)
        ctes = ", ".join(
            f"d{i} AS (DELETE FROM {tbl} WHERE thread_id = %(t)s)" for i, tbl in enumerate(tables)
        )
        return [Stmt(f"WITH {ctes} DELETE FROM {n.objects} WHERE thread_id = %(t)s", {"t": t})]

    def copy_thread(self, src: str, dst: str) -> list[Stmt]:
        """The copy is one statement, so one snapshot of the source: the source's row
        lock (taken first) holds nothing when the source has no row yet (deleted, or
        its first put in flight), and a put committing between separate statements
        would be copied without its objects. Each put is one statement, so a snapshot
        holds it whole or not.

        The statement before it empties the target, which has no checkpoint (checked
        under its row lock) but may hold writes and their objects (a run still going
        on it put them after a delete_thread): the copy's writes are the source's,
        where ON CONFLICT DO NOTHING kept the target's at the same key."""
        n = self.n
        p = {"s": src, "d": dst}
        clear = (
            f"WITH x0 AS (DELETE FROM {n.writes} WHERE thread_id = %(d)s), "
            f"x1 AS (DELETE FROM {n.values} WHERE thread_id = %(d)s) "
            f"DELETE FROM {n.objects} WHERE thread_id = %(d)s"
        )
        parts = [
            # the target's row may exist already: a lease taken on it
            f"INSERT INTO {n.threads} AS t (thread_id, created_at, updated_at, metadata) "
            f"SELECT %(d)s, now(), now(), metadata FROM {n.threads} WHERE thread_id = %(s)s "
            "ON CONFLICT (thread_id) DO UPDATE SET updated_at = excluded.updated_at, "
            "metadata = COALESCE(t.metadata, excluded.metadata)",
            f"INSERT INTO {n.objects} (thread_id, hash, type, data) "
            f"SELECT %(d)s, hash, type, data FROM {n.objects} WHERE thread_id = %(s)s "
            "ON CONFLICT DO NOTHING",
            f"INSERT INTO {n.values} (thread_id, checkpoint_ns, channel, version, kind, "
            "base_version, root_version, refs) SELECT %(d)s, checkpoint_ns, channel, version, "
            f"kind, base_version, root_version, refs FROM {n.values} WHERE thread_id = %(s)s "
            "ON CONFLICT DO NOTHING",
            f"INSERT INTO {n.writes} (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, "
            "channel, task_path, kind, refs) SELECT %(d)s, checkpoint_ns, checkpoint_id, "
            f"task_id, idx, channel, task_path, kind, refs FROM {n.writes} "
            "WHERE thread_id = %(s)s ON CONFLICT DO NOTHING",
        ]
        ctes = ", ".join(f"c{i} AS ({sql})" for i, sql in enumerate(parts))
        return [
            Stmt(clear, p),
            Stmt(
                f"WITH {ctes} INSERT INTO {n.checkpoints} (thread_id, checkpoint_ns, checkpoint_id, "
                "parent_checkpoint_id, run_id, checkpoint, metadata, complete) "
                "SELECT %(d)s, checkpoint_ns, checkpoint_id, parent_checkpoint_id, run_id, "
                f"checkpoint, metadata, complete FROM {n.checkpoints} WHERE thread_id = %(s)s "
                "ON CONFLICT DO NOTHING",
                p,
            )
        ]

    def select_threads_of_runs(self, run_ids: Sequence[str]) -> Stmt:
        return Stmt(
            f"SELECT DISTINCT thread_id FROM {self.n.checkpoints} WHERE run_id = ANY(%(r)s::text[])",
            {"r": list(run_ids)},
        )

    def delete_checkpoints(self, t: str, keys: Sequence[tuple[str, str]]) -> list[Stmt]:
        n = self.n
        p = {"t": t, "ns": [k[0] for k in keys], "id": [k[1] for k in keys]}
        if not keys:
            return []
        return [
            Stmt(
                f"DELETE FROM {tbl} WHERE thread_id = %(t)s AND (checkpoint_ns, checkpoint_id) IN "
                "(SELECT * FROM unnest(%(ns)s::text[], %(id)s::text[]))",
                p,
            )
            for tbl in (n.writes, n.checkpoints)
        ]

    def select_thread_checkpoints(self, t: str) -> Stmt:
        return Stmt(
            f"SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata "
            f"FROM {self.n.checkpoints} WHERE thread_id = %(t)s",
            {"t": t},
        )

    def select_thread_values(self, t: str) -> Stmt:
        return Stmt(
            f"SELECT checkpoint_ns, channel, version, kind, base_version, refs "
            f"FROM {self.n.values} WHERE thread_id = %(t)s",
            {"t": t},
        )

    def select_thread_write_refs(self, t: str) -> Stmt:
        return Stmt(
            f"SELECT checkpoint_ns, checkpoint_id, refs FROM {self.n.writes} WHERE thread_id = %(t)s",
            {"t": t},
        )

    def delete_values(self, t: str, keys: Sequence[tuple[str, str, str]]) -> list[Stmt]:
        if not keys:
            return []
        return [
            Stmt(
                f"DELETE FROM {self.n.values} WHERE thread_id = %(t)s AND "
                "(checkpoint_ns, channel, version) IN "
                "(SELECT * FROM unnest(%(ns)s::text[], %(ch)s::text[], %(ver)s::text[]))",
                {
                    "t": t,
                    "ns": [k[0] for k in keys],
                    "ch": [k[1] for k in keys],
                    "ver": [k[2] for k in keys],
                },
            )
        ]

    def delete_objects(self, t: str, hashes: Sequence[bytes]) -> list[Stmt]:
        if not hashes:
            return []
        return [
            Stmt(
                f"DELETE FROM {self.n.objects} WHERE thread_id = %(t)s AND hash = ANY(%(h)s::bytea[])",
                {"t": t, "h": list(hashes)},
            )
        ]
