"""The SQL for SQLite (stdlib sqlite3, ``:name`` parameters, executemany for batches).

Lists of text keys travel as one JSON parameter read with ``json_each``; lists of
hashes (bytes) as chunks of placeholders, since JSON cannot carry bytes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy.dialects import sqlite

from checkpoint_pg.core.chunks import CHUNK, CHUNK_TYPE
from checkpoint_pg.core.codec import StoredObject
from checkpoint_pg.core.lease import Lease
from checkpoint_pg.core.values import ValueRow
from checkpoint_pg.schema import KIND, Tables
from checkpoint_pg.sql import Stmt
from checkpoint_pg.sql.common import VALUE_COLS, WRITE_COLS, CheckpointPages, LeaseSQL, Names

__all__ = ["SqliteSQL"]

# Now in seconds since the epoch (leases), by the clock of the machine the file is on.
_EPOCH = "((julianday('now') - 2440587.5) * 86400.0)"

_CHUNK = 400  # well under SQLite's default limit of bound variables per statement


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(sep=" ")


def metadata_matches(column: str, filter: dict[str, Any], p: dict[str, Any], tag: str) -> list[str]:
    """WHERE clauses true when the JSON text ``column`` matches ``filter`` as
    InMemorySaver matches: ``column.get(k) == v`` for every key, so None also
    matches a missing key, and lists and dicts compare whole, whatever the order
    of their keys, 1 equal to 1.0 (but not to True, as in JSON). Keys and values are bound into ``p``
    (parameter names start with ``tag``); json_each reads the top-level entries."""
    out = []
    for i, (key, value) in enumerate(filter.items()):
        k, v = f"{tag}k{i}", f"{tag}v{i}"
        p[k] = key
        entry = f"SELECT 1 FROM json_each({column}) AS j WHERE j.key = :{k} AND "
        if value is None:
            out.append(f"NOT EXISTS ({entry}j.type <> 'null')")
        elif isinstance(value, bool):
            out.append(f"EXISTS ({entry}j.type = '{'true' if value else 'false'}')")
        elif isinstance(value, (int, float)):
            # SQLite's JSON reads an integer beyond 64 bits as a real, and sqlite3
            # cannot bind one: compare it as the real it is read as
            p[v] = value if isinstance(value, float) or -(2**63) <= value < 2**63 else float(value)
            out.append(f"EXISTS ({entry}j.type IN ('integer', 'real') AND j.value = :{v})")
        elif isinstance(value, str):
            p[v] = value
            out.append(f"EXISTS ({entry}j.type = 'text' AND j.value = :{v})")
        else:  # the same nodes at the same paths, both ways
            p[v] = json.dumps(value, separators=(",", ":"), ensure_ascii=False)  # as stored
            a, b = "json_tree(j.value)", f"json_tree(:{v})"
            kind = "object" if isinstance(value, dict) else "array"
            out.append(
                f"EXISTS ({entry}j.type = '{kind}' AND NOT EXISTS ({_nodes(a)} EXCEPT {_nodes(b)}) "
                f"AND NOT EXISTS ({_nodes(b)} EXCEPT {_nodes(a)}))"
            )
    return out


def _nodes(tree: str) -> str:
    """(path, kind, value) of every node of a json_tree, numbers as one kind."""
    return (
        "SELECT fullkey, CASE WHEN type IN ('integer', 'real') THEN 'number' ELSE type END, "
        f"CASE WHEN type IN ('object', 'array') THEN NULL ELSE atom END FROM {tree}"
    )


def _by_group(rows: Sequence[Sequence[Any]], width: int) -> dict[tuple[Any, ...], list[Any]]:
    """Rows grouped by their first ``width`` columns, each keeping the rest."""
    out: dict[tuple[Any, ...], list[Any]] = {}
    for r in rows:
        out.setdefault(tuple(r[:width]), []).append(list(r[width:]))
    return out


def _chunks(items: Sequence[Any]) -> list[Sequence[Any]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


def _in_list(prefix: str, items: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    names = [f"{prefix}{i}" for i in range(len(items))]
    return "(" + ", ".join(":" + n for n in names) + ")", dict(zip(names, items))


_CHUNK_SEQ = json.dumps(list(range(CHUNK)))  # the places of a chunk's hashes


class SqliteSQL(CheckpointPages):
    """Statements for one prefix on SQLite."""

    @staticmethod
    def table_names(schema: str | None) -> Stmt:
        """The file's tables, for a wrong prefix's hint (SQLite has no schemas)."""
        return Stmt("SELECT name FROM sqlite_master WHERE type = 'table'", {})

    name = "sqlite"
    single_statement = False

    def __init__(self, tables: Tables) -> None:
        n = self.n = Names(tables, sqlite.dialect())
        self.lease = LeaseSQL(n, _EPOCH, ":now", lambda name: f":{name}", lambda: {"now": _now()})
        self._upsert_thread = (
            f"INSERT INTO {n.threads} AS t (thread_id, created_at, updated_at, metadata) "
            "VALUES (:t, :now, :now, :md) "
            "ON CONFLICT (thread_id) DO UPDATE SET updated_at = excluded.updated_at, "
            "metadata = COALESCE(excluded.metadata, t.metadata)"
        )
        # A put reads the thread's lease back from its upsert: one statement fewer
        # than a separate lease read (~25 us of a ~1.2 ms step). A put_writes reads
        # it only when its writes did not all go in (see `_insert_write`).
        self._upsert_thread_checked = (
            f"{self._upsert_thread} RETURNING lease_owner, lease_until - {_EPOCH}"
        )
        self._write_checks = (
            f"SELECT lease_owner, lease_until - {_EPOCH} FROM {n.threads} WHERE thread_id = :t"
        )
        self._insert_object = (
            f"INSERT OR IGNORE INTO {n.objects} (thread_id, hash, type, data) "
            "VALUES (:t, :h, :ty, :d)"
        )
        self._insert_value = (
            f"INSERT OR IGNORE INTO {n.values} (thread_id, checkpoint_ns, channel, version, "
            "kind, base_version, root_version, refs) "
            "VALUES (:t, :ns, :ch, :ver, :kind, :base, :root, :refs)"
        )
        self._insert_checkpoint = (
            f"INSERT INTO {n.checkpoints} (thread_id, checkpoint_ns, checkpoint_id, "
            "parent_checkpoint_id, run_id, checkpoint, metadata, complete) "
            "VALUES (:t, :ns, :id, :parent, :run_id, :doc, :md, "
            # CROSS JOIN: one primary-key lookup per required version. With a plain
            # JOIN the planner (no statistics) scans every value of the thread.
            "(SELECT count(*) FROM json_each(:req) AS q "
            f"CROSS JOIN {n.values} v ON v.thread_id = :t AND v.checkpoint_ns = :ns "
            "AND v.channel = json_extract(q.value, '$[0]') "
            "AND v.version = json_extract(q.value, '$[1]')) = :req_n) "
            "ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET "
            "parent_checkpoint_id = excluded.parent_checkpoint_id, run_id = excluded.run_id, "
            "checkpoint = excluded.checkpoint, metadata = excluded.metadata, "
            "complete = excluded.complete"
        )
        # Objects of a regular write go in only while the write itself is new; the
        # transaction is BEGIN IMMEDIATE, so nothing can slip in between.
        self._insert_write_object = (
            f"INSERT OR IGNORE INTO {n.objects} (thread_id, hash, type, data) "
            f"SELECT :t, :h, :ty, :d WHERE NOT EXISTS (SELECT 1 FROM {n.writes} "
            "WHERE thread_id = :t AND checkpoint_ns = :ns AND checkpoint_id = :cid "
            "AND task_id = :task AND idx = :idx)"
        )
        # A write goes in only while the thread's lease allows it (core/lease.py
        # `verdict`: the caller's token is the row's, or it has none and no live lease
        # is there): fewer rows than sent tell ops.put_writes to read the lease.
        lease_allows = (
            f"CASE WHEN :lease IS NULL THEN NOT EXISTS (SELECT 1 FROM {n.threads} "
            f"WHERE thread_id = :t AND lease_owner IS NOT NULL AND lease_until - {_EPOCH} > 0) "
            f"ELSE EXISTS (SELECT 1 FROM {n.threads} WHERE thread_id = :t AND lease_owner = :lease) END"
        )
        self._insert_write = (
            f"INSERT OR IGNORE INTO {n.writes} (thread_id, checkpoint_ns, checkpoint_id, "
            "task_id, idx, channel, task_path, kind, refs) "
            f"SELECT :t, :ns, :cid, :task, :idx, :ch, :path, :kind, :refs WHERE {lease_allows}"
        )
        self._upsert_special_write = (
            f"INSERT INTO {n.writes} (thread_id, checkpoint_ns, checkpoint_id, "
            "task_id, idx, channel, task_path, kind, refs) "
            f"SELECT :t, :ns, :cid, :task, :idx, :ch, :path, :kind, :refs WHERE {lease_allows} "
            "ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE SET "
            "channel = excluded.channel, task_path = excluded.task_path, kind = excluded.kind, "
            "refs = excluded.refs"
        )
        # Reads of a list page, one statement per (thread, namespace) group (no
        # round trips to save in-process); rows start with the group's keys.
        self._select_values = (
            f"SELECT thread_id, checkpoint_ns, {VALUE_COLS} FROM {n.values} WHERE thread_id = :t "
            "AND checkpoint_ns = :ns AND (channel, version) IN (SELECT json_extract(value, '$[0]'), "
            "json_extract(value, '$[1]') FROM json_each(:pairs))"
        )
        self._select_ranges = (
            "SELECT v.thread_id, v.checkpoint_ns, v.channel, v.version, v.kind, v.base_version, "
            f"v.root_version, v.refs FROM json_each(:ranges) AS q CROSS JOIN {n.values} v "
            "ON v.thread_id = :t AND v.checkpoint_ns = :ns "
            "AND v.channel = json_extract(q.value, '$[0]') "
            "AND v.version >= json_extract(q.value, '$[1]') "
            "AND v.version <= json_extract(q.value, '$[2]')"
        )
        self._select_writes = (
            f"SELECT thread_id, checkpoint_ns, {WRITE_COLS} FROM {n.writes} WHERE thread_id = :t "
            "AND checkpoint_ns = :ns AND checkpoint_id IN (SELECT value FROM json_each(:ids))"
        )
        # with id -> the statement of `get_head_stmt`
        self._get_head = {with_id: self._get_head_sql(with_id) for with_id in (True, False)}
        # (with id, with objects) -> the statement
        self._get_tuple = {
            (with_id, objects): self._get_tuple_sql(with_id, objects)
            for with_id in (True, False)
            for objects in (True, False)
        }

    # -- writes -----------------------------------------------------------------


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
        """The statements of a put, run in one BEGIN IMMEDIATE transaction after
        `put_checks` (which upserts the thread row, ``thread_md`` included; the
        caller's lease, renewed here, single-writer mode and ``need_parent``)."""
        return [
            *([Stmt(self.lease.renew, self.lease.params(t, lease))] if lease is not None else []),
            *self.insert_objects(t, objs),
            *self.insert_values(t, ns, rows),
            self.insert_checkpoint(t, ns, cid, parent, run_id, doc, md_json, required),
        ]

    def put_checks(
        self,
        t: str,
        ns: str,
        cid: str,
        parent: str | None,
        guard: bool,
        thread_md: str | None,
        need_parent: bool = False,
    ) -> list[Stmt]:
        """What `ops.put` runs first: the thread row's upsert, which reads back its
        lease; with ``guard`` whether a checkpoint newer than the parent exists; with
        ``need_parent`` whether the parent is stored."""
        out = [Stmt(self._upsert_thread_checked, {"t": t, "md": thread_md, "now": _now()})]
        if guard:
            out.append(
                Stmt(
                    f"SELECT 1 FROM {self.n.checkpoints} WHERE thread_id = :t "
                    "AND checkpoint_ns = :ns AND checkpoint_id > coalesce(:parent, '') "
                    "AND checkpoint_id <> :id LIMIT 1",
                    {"t": t, "ns": ns, "parent": parent, "id": cid},
                )
            )
        if need_parent:
            out.append(Stmt(self.parent_stored_sql(), {"t": t, "ns": ns, "parent": parent}))
        return out

    def write_checks(self, t: str) -> Stmt:
        """The thread's lease, which `ops.put_writes` reads when its writes did not all
        go in (already there, or refused by the lease: see `insert_writes`)."""
        return Stmt(self._write_checks, {"t": t})

    def insert_objects(self, t: str, objs: Sequence[StoredObject]) -> list[Stmt]:
        if not objs:
            return []
        return [
            Stmt(
                self._insert_object,
                [{"t": t, "h": o.hash, "ty": o.type, "d": o.data} for o in objs],
                many=True,
            )
        ]

    def insert_values(self, t: str, ns: str, rows: Sequence[ValueRow]) -> list[Stmt]:
        if not rows:
            return []
        return [
            Stmt(
                self._insert_value,
                [
                    {
                        "t": t,
                        "ns": ns,
                        "ch": r.channel,
                        "ver": r.version,
                        "kind": r.kind,
                        "base": r.base_version,
                        "root": r.root_version,
                        "refs": r.stored_refs,
                    }
                    for r in rows
                ],
                many=True,
            )
        ]

    def insert_checkpoint(
        self,
        t: str,
        ns: str,
        cid: str,
        parent: str | None,
        run_id: str | None,
        doc: str,
        md_json: str,
        required: Sequence[tuple[str, str]],
    ) -> Stmt:
        return Stmt(
            self._insert_checkpoint,
            {
                "t": t,
                "ns": ns,
                "id": cid,
                "parent": parent,
                "run_id": run_id,
                "doc": doc,
                "md": md_json,
                "req": json.dumps([list(p) for p in required]),
                "req_n": len(required),
            },
        )

    def insert_writes(
        self,
        t: str,
        ns: str,
        cid: str,
        task_id: str,
        task_path: str,
        rows: Sequence[tuple[int, str, int, bytes, Sequence[StoredObject]]],
        lease: Lease | None = None,
        touch: bool = True,
    ) -> list[Stmt]:
        """The writes, each only if the caller's lease allows it, and their objects;
        the write statements are ``counted`` (see ops.put_writes). ``touch``: the
        thread row may be over a second old (this process did not write it lately)."""
        base = {
            "t": t,
            "ns": ns,
            "cid": cid,
            "task": task_id,
            "path": task_path,
            "lease": None if lease is None else lease.token,
        }
        # a write is activity too, which prune(updated_before=) must see (as on Postgres)
        out: list[Stmt] = []
        if touch:
            now = datetime.now(timezone.utc)
            second_ago = (now - timedelta(seconds=1)).isoformat(sep=" ")
            touched = (
                f"UPDATE {self.n.threads} SET updated_at = :now "
                "WHERE thread_id = :t AND updated_at < :second_ago"
            )
            out.append(Stmt(touched, {"t": t, "now": now.isoformat(sep=" "), "second_ago": second_ago}))
        regular = [r for r in rows if r[0] >= 0]
        special = [r for r in rows if r[0] < 0]
        if regular:
            objs = [
                {**base, "idx": r[0], "h": o.hash, "ty": o.type, "d": o.data}
                for r in regular
                for o in r[4]
            ]
            if objs:
                out.append(Stmt(self._insert_write_object, objs, many=True))
            out.append(
                Stmt(
                    self._insert_write,
                    [{**base, "idx": r[0], "ch": r[1], "kind": r[2], "refs": r[3]} for r in regular],
                    many=True,
                    counted=True,
                )
            )
        if special:
            out.extend(self.insert_objects(t, [o for r in special for o in r[4]]))
            out.append(
                Stmt(
                    self._upsert_special_write,
                    [{**base, "idx": r[0], "ch": r[1], "kind": r[2], "refs": r[3]} for r in special],
                    many=True,
                    counted=True,
                )
            )
        return out

    # -- reads ------------------------------------------------------------------

    def _ph(self, name: str) -> str:
        return f":{name}"

    def _filter_clauses(self, filter: dict[str, Any], p: dict[str, Any]) -> list[str]:
        return metadata_matches("metadata", filter, p, "f")

    def select_values(self, keys: Sequence[tuple[str, str, str, str]]) -> list[Stmt]:
        """Values by (thread, ns, channel, version); rows (thread, ns, *VALUE_COLS)."""
        return [
            Stmt(self._select_values, {"t": t, "ns": ns, "pairs": json.dumps(rest)})
            for (t, ns), rest in _by_group(keys, 2).items()
        ]

    def select_value_ranges(self, ranges: Sequence[tuple[str, str, str, str, str]]) -> list[Stmt]:
        """Values of (thread, ns, channel) between two versions (delta chains)."""
        return [
            Stmt(self._select_ranges, {"t": t, "ns": ns, "ranges": json.dumps(rest)})
            for (t, ns), rest in _by_group(ranges, 2).items()
        ]

    def select_writes(self, keys: Sequence[tuple[str, str, str]]) -> list[Stmt]:
        """Writes of (thread, ns, checkpoint id); rows (thread, ns, *WRITE_COLS)."""
        return [
            Stmt(self._select_writes, {"t": t, "ns": ns, "ids": json.dumps([r[0] for r in rest])})
            for (t, ns), rest in _by_group(keys, 2).items()
        ]

    def select_objects(self, keys: Sequence[tuple[str, bytes]]) -> list[Stmt]:
        """Objects by (thread, hash); rows (thread, hash, type, data). With a chunk of a
        long list's hashes (core/chunks.py), the objects it names too: the reader asks
        for a chunk it does not hold, and so not for its elements either."""
        n = self.n
        out = []
        for (t,), rest in _by_group(keys, 1).items():
            for chunk in _chunks([r[0] for r in rest]):
                marks, p = _in_list("h", chunk)
                out.append(
                    Stmt(
                        f"SELECT thread_id, hash, type, data FROM {n.objects} "
                        f"WHERE thread_id = :t AND hash IN {marks} "
                        "UNION ALL SELECT o.thread_id, o.hash, o.type, o.data "
                        f"FROM {n.objects} AS c CROSS JOIN json_each(:seq) AS k "
                        f"CROSS JOIN {n.objects} AS o WHERE c.thread_id = :t AND c.hash IN {marks} "
                        f"AND c.type = '{CHUNK_TYPE}' AND o.thread_id = :t "
                        "AND o.hash = substr(c.data, k.value * 16 + 1, 16)",
                        {"t": t, "seq": _CHUNK_SEQ, **p},
                    )
                )
        return out

    def get_tuple_stmt(self, t: str, ns: str, cid: str | None, known: Sequence[bytes] = ()) -> Stmt:
        """A checkpoint with its values (and their delta chains) and writes, as tagged rows.

        The rows of `PostgresSQL.get_tuple_sql`, but of the objects (tag 3) only
        those whose hash is a whole refs column: SQLite cannot cut a refs blob
        into hashes, so the core reads the elements of longer lists after.
        Tag 1 rows carry the root version in column 5. Versions are matched as
        the JSON strings of the checkpoint's channel_versions.

        With ``known`` objects (a run continuing the thread in this process) no
        objects are read here: the statement costs about half as much without them,
        and the core reads the few it may lack after (`reading._fetch_missing`).
        """
        return Stmt(self._get_tuple[(cid is not None, not known)], {"t": t, "ns": ns, "id": cid})

    def get_head_stmt(self, t: str, ns: str, cid: str | None) -> Stmt:
        """A checkpoint's row and its writes, without its values: tag 0 (id, parent,
        document, metadata), tag 1 (task, idx, channel, path, kind, refs). For a
        checkpoint whose values this process holds (`ops.get_tuple`)."""
        return Stmt(self._get_head[cid is not None], {"t": t, "ns": ns, "id": cid})

    def _get_head_sql(self, with_id: bool) -> str:
        n = self.n
        cond = " AND checkpoint_id = :id" if with_id else ""
        return (
            "WITH cp AS ("
            f"SELECT checkpoint_id, parent_checkpoint_id, checkpoint, metadata FROM {n.checkpoints} "
            f"WHERE thread_id = :t AND checkpoint_ns = :ns{cond} "
            "ORDER BY checkpoint_id DESC LIMIT 1) "
            "SELECT 0, checkpoint_id, parent_checkpoint_id, checkpoint, metadata, NULL, NULL FROM cp "
            "UNION ALL SELECT 1, w.task_id, w.idx, w.channel, w.task_path, w.kind, w.refs "
            f"FROM cp CROSS JOIN {n.writes} AS w ON w.thread_id = :t AND w.checkpoint_ns = :ns "
            "AND w.checkpoint_id = cp.checkpoint_id"
        )

    def list_thread_stmt(
        self,
        t: str,
        ns: str | None,
        before: str | None,
        after: tuple[str, str] | None,
        filter: dict[str, Any] | None,
        limit: int,
        known: Sequence[bytes] = (),
    ) -> Stmt:
        """A page of one thread's checkpoints with their values and writes, as tagged rows.

        The rows of `PostgresSQL.list_thread_sql`, but of the objects (tag 3)
        only those whose hash is a whole refs column, as in `get_tuple_stmt`;
        the core reads the elements of longer lists after, in the same
        transaction. ``known`` is not used: objects of whole refs are small.
        """
        (page,) = self.select_checkpoints(
            thread_id=t,
            ns=ns,
            checkpoint_id=None,
            before=before,
            filter=filter,
            limit=limit,
            after=(after[0], after[1], t) if after is not None else None,
        )
        n = self.n
        vcols = "v.channel, v.version, v.kind, v.base_version, v.root_version, v.refs"
        sql = (
            f"WITH cp AS ({page.sql}), "
            "keys AS (SELECT DISTINCT cp.checkpoint_ns AS ns, q.key AS ch, q.value AS ver "
            "FROM cp CROSS JOIN json_each(cp.checkpoint, '$.channel_versions') AS q "
            "WHERE q.type = 'text'), "
            # CROSS JOIN keeps this order: one primary-key lookup per key
            f"direct AS (SELECT k.ns, {vcols} FROM keys AS k CROSS JOIN {n.values} v "
            "ON v.thread_id = :t AND v.checkpoint_ns = k.ns AND v.channel = k.ch "
            "AND v.version = k.ver), "
            # the page's delta chains overlap: UNION keeps each stored version once
            f"vals AS (SELECT * FROM direct UNION SELECT d.ns, {vcols} FROM direct AS d "
            f"CROSS JOIN {n.values} v ON v.thread_id = :t AND v.checkpoint_ns = d.ns "
            "AND v.channel = d.channel AND v.version >= d.root_version "
            f"AND v.version < d.version WHERE d.kind = {KIND.DELTA}), "
            "w AS (SELECT cp.checkpoint_ns AS ns, cp.checkpoint_id AS cid, w.task_id, w.channel, "
            f"w.task_path, w.idx, w.kind, w.refs FROM cp CROSS JOIN {n.writes} w "
            "ON w.thread_id = :t AND w.checkpoint_ns = cp.checkpoint_ns "
            "AND w.checkpoint_id = cp.checkpoint_id) "
            "SELECT 0, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata, "
            "NULL, NULL, NULL, NULL, NULL FROM cp "
            "UNION ALL SELECT 1, ns, channel, version, base_version, root_version, NULL, NULL, "
            "kind, refs, NULL FROM vals "
            "UNION ALL SELECT 2, ns, cid, task_id, channel, task_path, NULL, idx, kind, refs, NULL "
            "FROM w "
            "UNION ALL SELECT 3, NULL, type, NULL, NULL, NULL, NULL, NULL, NULL, data, hash "
            f"FROM {n.objects} WHERE thread_id = :t AND hash IN (SELECT refs FROM vals "
            "WHERE length(refs) = 16 UNION SELECT refs FROM w WHERE length(refs) = 16)"
        )
        return Stmt(sql, page.params)

    def _get_tuple_sql(self, with_id: bool, objects: bool) -> str:
        n = self.n
        cond = " AND checkpoint_id = :id" if with_id else ""
        sql = (
            "WITH cp AS ("
            f"SELECT checkpoint_id, parent_checkpoint_id, checkpoint, metadata FROM {n.checkpoints} "
            f"WHERE thread_id = :t AND checkpoint_ns = :ns{cond} "
            "ORDER BY checkpoint_id DESC LIMIT 1), "
            "direct AS (SELECT v.channel, v.version, v.kind, v.base_version, v.root_version, v.refs "
            # CROSS JOIN keeps this order: one primary-key lookup per channel
            "FROM cp CROSS JOIN json_each(cp.checkpoint, '$.channel_versions') AS q "
            f"CROSS JOIN {n.values} v ON v.thread_id = :t AND v.checkpoint_ns = :ns "
            "AND v.channel = q.key AND q.type = 'text' AND v.version = q.value), "
            "vals AS (SELECT * FROM direct UNION ALL "
            "SELECT v.channel, v.version, v.kind, v.base_version, v.root_version, v.refs "
            f"FROM direct AS d JOIN {n.values} v ON v.thread_id = :t AND v.checkpoint_ns = :ns "
            "AND v.channel = d.channel AND v.version >= d.root_version AND v.version < d.version "
            f"WHERE d.kind = {KIND.DELTA}), "
            "w AS (SELECT task_id, channel, task_path, idx, kind, refs "
            f"FROM {n.writes} WHERE thread_id = :t AND checkpoint_ns = :ns "
            "AND checkpoint_id = (SELECT checkpoint_id FROM cp)) "
            "SELECT 0, checkpoint_id, parent_checkpoint_id, checkpoint, metadata, "
            "NULL, NULL, NULL, NULL FROM cp "
            "UNION ALL SELECT 1, channel, version, base_version, root_version, NULL, kind, refs, "
            "NULL FROM vals "
            "UNION ALL SELECT 2, task_id, channel, task_path, NULL, idx, kind, refs, NULL FROM w"
        )
        if not objects:
            return sql
        # Objects that are a whole refs column (a scalar, a one-element list): no
        # need to cut the blob, so they come in this statement too. (A condition on
        # a parameter would not spare their cost: the IN list is built regardless.)
        return (
            f"{sql} UNION ALL SELECT 3, type, NULL, NULL, NULL, NULL, NULL, data, hash "
            f"FROM {n.objects} WHERE thread_id = :t AND hash IN (SELECT refs FROM vals "
            "WHERE length(refs) = 16 UNION SELECT refs FROM w WHERE length(refs) = 16)"
        )

    def repoint_writes(self, fixups: Sequence[tuple[Any, ...]]) -> list[Stmt]:
        """`repoint_write` for each fixup (writes run under BEGIN IMMEDIATE: no lock to take)."""
        return [s for f in fixups for s in self.repoint_write(*f)]

    def repoint_write(
        self, t: str, ns: str, cid: str, task: str, idx: int, pos: int, old: bytes, new: bytes
    ) -> list[Stmt]:
        """Point element ``pos`` of a write at ``new`` and drop ``old`` if nothing uses it."""
        n = self.n
        p = {"t": t, "ns": ns, "cid": cid, "task": task, "idx": idx, "at": pos * 16 + 1,
             "old": old, "new": new}
        return [
            Stmt(
                # || makes text of blobs; the cast takes the same bytes back as a blob
                f"UPDATE {n.writes} SET refs = CAST(substr(refs, 1, :at - 1) || :new || "
                "substr(refs, :at + 16) AS BLOB) WHERE thread_id = :t AND checkpoint_ns = :ns "
                "AND checkpoint_id = :cid AND task_id = :task AND idx = :idx "
                "AND substr(refs, :at, 16) = :old "
                # still stored (see PostgresSQL.repoint_write): here a put and its repoint
                # are one transaction, but a put_writes repoints in its own
                f"AND EXISTS (SELECT 1 FROM {n.objects} WHERE thread_id = :t AND hash = :new)",
                p,
            ),
            Stmt(
                f"DELETE FROM {n.objects} WHERE thread_id = :t AND hash = :old "
                f"AND NOT EXISTS (SELECT 1 FROM {n.writes} WHERE thread_id = :t "
                "AND instr(refs, :old) > 0) "
                f"AND NOT EXISTS (SELECT 1 FROM {n.values} WHERE thread_id = :t "
                "AND instr(refs, :old) > 0) "
                # nor a chunk (core/chunks.py) that a list holds it by
                f"AND NOT EXISTS (SELECT 1 FROM {n.objects} WHERE thread_id = :t "
                f"AND type = '{CHUNK_TYPE}' AND instr(data, :old) > 0)",
                p,
            ),
        ]

    # -- maintenance ------------------------------------------------------------

    def thread_exists(self, t: str) -> Stmt:
        return Stmt(f"SELECT 1 FROM {self.n.checkpoints} WHERE thread_id = :t LIMIT 1", {"t": t})

    def stored_bytes(self) -> Stmt:
        """The bytes of the database file (its pages; the WAL apart)."""
        return Stmt("SELECT c.page_count * s.page_size FROM pragma_page_count() AS c, pragma_page_size() AS s", {})

    def vacuum(self, full: bool) -> list[Stmt]:
        """Rebuild the file without its free pages (SQLite has no lighter VACUUM), then
        copy the WAL into it and cut the WAL to nothing."""
        return [Stmt("VACUUM", {}), Stmt("PRAGMA wal_checkpoint(TRUNCATE)", {})]

    def lock_thread(self, t: str) -> Stmt:
        # BEGIN IMMEDIATE already holds the database's write lock.
        return Stmt("SELECT 1", {})

    def date_thread(self, t: str, created: datetime, updated: datetime) -> Stmt:
        """Give a thread the times it was created and last written (an imported one)."""
        return Stmt(
            f"UPDATE {self.n.threads} SET created_at = :c, updated_at = :u WHERE thread_id = :t",
            {
                "t": t,
                "c": created.astimezone(timezone.utc).isoformat(sep=" "),
                "u": updated.astimezone(timezone.utc).isoformat(sep=" "),
            },
        )

    def claim_thread(self, t: str) -> list[Stmt]:
        # BEGIN IMMEDIATE already holds the database's write lock: nothing commits meanwhile.
        return [self.lock_thread(t)]

    def drop_claim(self, t: str) -> list[Stmt]:
        return []

    def thread_is_stale(self, t: str, cutoff: datetime) -> Stmt:
        """A row when the thread's last write is older than ``cutoff`` (aware)."""
        return Stmt(
            f"SELECT 1 FROM {self.n.threads} WHERE thread_id = :t AND updated_at < :cut",
            {"t": t, "cut": cutoff.astimezone(timezone.utc).isoformat(sep=" ")},
        )

    def delete_thread(self, t: str) -> list[Stmt]:
        n = self.n
        return [
            Stmt(f"DELETE FROM {tbl} WHERE thread_id = :t", {"t": t})
            for tbl in (n.threads, n.checkpoints, n.writes, n.values, n.objects)
        ]

    def copy_thread(self, src: str, dst: str) -> list[Stmt]:
        from datetime import datetime, timezone

        n = self.n
        p = {"s": src, "d": dst, "now": datetime.now(timezone.utc).isoformat(sep=" ")}
        return [
            # the target has no checkpoint, but may hold writes and their objects (a run
            # still going on it put them after a delete_thread): the copy's writes are
            # the source's, where INSERT OR IGNORE kept the target's at the same key
            *(Stmt(f"DELETE FROM {tbl} WHERE thread_id = :d", p) for tbl in (n.writes, n.values, n.objects)),
            Stmt(
                # the target's row may exist already: a lease taken on it
                f"INSERT INTO {n.threads} AS t (thread_id, created_at, updated_at, metadata) "
                f"SELECT :d, :now, :now, metadata FROM {n.threads} WHERE thread_id = :s "
                "ON CONFLICT (thread_id) DO UPDATE SET updated_at = excluded.updated_at, "
                "metadata = COALESCE(t.metadata, excluded.metadata)",
                p,
            ),
            Stmt(
                f"INSERT OR IGNORE INTO {n.objects} (thread_id, hash, type, data) "
                f"SELECT :d, hash, type, data FROM {n.objects} WHERE thread_id = :s",
                p,
            ),
            Stmt(
                f"INSERT OR IGNORE INTO {n.values} (thread_id, checkpoint_ns, channel, version, "
                "kind, base_version, root_version, refs) SELECT :d, checkpoint_ns, channel, "
                f"version, kind, base_version, root_version, refs FROM {n.values} "
                "WHERE thread_id = :s",
                p,
            ),
            Stmt(
                f"INSERT OR IGNORE INTO {n.writes} (thread_id, checkpoint_ns, checkpoint_id, "
                "task_id, idx, channel, task_path, kind, refs) SELECT :d, checkpoint_ns, "
                f"checkpoint_id, task_id, idx, channel, task_path, kind, refs FROM {n.writes} "
                "WHERE thread_id = :s",
                p,
            ),
            Stmt(
                f"INSERT OR IGNORE INTO {n.checkpoints} (thread_id, checkpoint_ns, checkpoint_id, "
                "parent_checkpoint_id, run_id, checkpoint, metadata, complete) "
                "SELECT :d, checkpoint_ns, checkpoint_id, parent_checkpoint_id, run_id, "
                f"checkpoint, metadata, complete FROM {n.checkpoints} WHERE thread_id = :s",
                p,
            ),
        ]

    def select_threads_of_runs(self, run_ids: Sequence[str]) -> Stmt:
        return Stmt(
            f"SELECT DISTINCT thread_id FROM {self.n.checkpoints} "
            "WHERE run_id IN (SELECT value FROM json_each(:r))",
            {"r": json.dumps(list(run_ids))},
        )

    def delete_checkpoints(self, t: str, keys: Sequence[tuple[str, str]]) -> list[Stmt]:
        if not keys:
            return []
        n = self.n
        p = {"t": t, "k": json.dumps([list(k) for k in keys])}
        sub = (
            "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(:k))"
        )
        return [
            Stmt(
                f"DELETE FROM {tbl} WHERE thread_id = :t AND (checkpoint_ns, checkpoint_id) IN {sub}",
                p,
            )
            for tbl in (n.writes, n.checkpoints)
        ]

    def select_thread_checkpoints(self, t: str) -> Stmt:
        return Stmt(
            "SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata "
            f"FROM {self.n.checkpoints} WHERE thread_id = :t",
            {"t": t},
        )

    def select_thread_values(self, t: str) -> Stmt:
        return Stmt(
            "SELECT checkpoint_ns, channel, version, kind, base_version, refs "
            f"FROM {self.n.values} WHERE thread_id = :t",
            {"t": t},
        )

    def select_thread_write_refs(self, t: str) -> Stmt:
        return Stmt(
            f"SELECT checkpoint_ns, checkpoint_id, refs FROM {self.n.writes} WHERE thread_id = :t",
            {"t": t},
        )

    def delete_values(self, t: str, keys: Sequence[tuple[str, str, str]]) -> list[Stmt]:
        if not keys:
            return []
        return [
            Stmt(
                f"DELETE FROM {self.n.values} WHERE thread_id = :t AND "
                "(checkpoint_ns, channel, version) IN (SELECT json_extract(value, '$[0]'), "
                "json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each(:k))",
                {"t": t, "k": json.dumps([list(k) for k in keys])},
            )
        ]

    def delete_objects(self, t: str, hashes: Sequence[bytes]) -> list[Stmt]:
        out = []
        for chunk in _chunks(list(hashes)):
            marks, p = _in_list("h", chunk)
            out.append(
                Stmt(f"DELETE FROM {self.n.objects} WHERE thread_id = :t AND hash IN {marks}", {"t": t, **p})
            )
        return out
