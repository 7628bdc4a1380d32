"""How fast could any saver be on short threads? A measured bound.

Issue 6 asks for 1.5x the incumbent's steps/s on one connection. The floor
(bench/floor.py) counts only the database: two durable commits and one read.
This adds the client: a ``lean`` saver that does the least any saver must do
for the short-thread step (put + put_writes + get_tuple) and nothing more:

- put: serialize the whole checkpoint (values included) with the saver's
  serializer and insert it as one row; no deduplication, no thread row, no
  lease, no completeness check, no listing index;
- put_writes: one multi-row INSERT of the serialized writes;
- get_tuple: one SELECT of the newest row with its writes, deserialized.

``lean-cached`` is the same saver keeping what it put and wrote: reading its
own last checkpoint, the blob is not sent and nothing is decoded.
``lean-sqlite`` does the same on a SQLite file in WAL mode with
``synchronous=NORMAL`` (our setting; the incumbent keeps FULL), measured with
sync-1 against langgraph-checkpoint-sqlite and ours.

The ``dense`` savers are the same kind of yardstick for a saver that keeps
deduplication (each distinct value once per thread) with the planned "dense
layout", few rows per step:

- ``dense_obj(t, h, ty, d)``: one row per distinct serialized value per thread,
  h = blake2b-128 of ``ty + NUL + data`` (``serde.dumps_typed``); a list value
  (the messages) is stored element by element, any other value whole. Objects
  this process stored or read for the thread (a dict hash -> value per
  thread) are not sent again; new ones go in with ON CONFLICT DO NOTHING.
- ``dense_cp(t, ns, id, parent, doc, md, vals)``: doc is the checkpoint
  without its values (JSON), vals the refs of every channel value: a 2-byte
  header length, an ormsgpack header ``[name, n, ...]`` (n = -1: whole, one
  hash; else a list of n elements) and the 16-byte hashes, last, so SQL can
  cut them out with substring().
- ``dense_w(t, ns, cid, task, path, vals)``: one row per put_writes call, its
  writes' refs in one blob (header ``[idx, channel, n, ...]``).

Postgres ``dense``: put and put_writes are one statement each (a data-modifying
CTE inserts the new objects, multi-row VALUES, then the row; autocommit);
get_tuple is one statement returning the newest checkpoint row, its writes
rows and every object their refs name; what the process holds is reused as
Python objects, the rest deserialized. ``dense-cached`` sends the hashes it
holds (one bytea of concatenated hashes) and the statement leaves those
objects out. ``dense-thread`` is dense-cached plus what our saver must also
do: put upserts a ``dense_threads(thread_id, updated_at, metadata)`` row in the
same statement, and dense_cp has a listing index on (id, ns, t).
``dense-sqlite`` / ``dense-thread-sqlite``: the same on sqlite3 (WAL,
synchronous=NORMAL; a write is BEGIN IMMEDIATE, executemany of the new
objects, the row(s), COMMIT), get_tuple reads the checkpoint row and its
writes rows and asks for objects only when a ref names one it does not hold.
Before timing, a self-check puts a few threads with each dense saver and
compares what get_tuple returns (the same saver, and a fresh one holding
nothing) with what was put, and counts one object row per distinct value.

It runs the workload of bench.short_threads (sync-1 and async-1) on the same
Postgres, alternating with langgraph-checkpoint-postgres and ours in the same
run. The lean saver is a yardstick only: it cannot list, delete or migrate
and stores every message again in every checkpoint; the dense savers cannot
list, delete or migrate either, and hand out the very objects they cached.

    python -m bench.lean_bound                 # 300 threads x 6 steps, 3 rounds, both backends
    python -m bench.lean_bound --threads 1000 --rounds 5
    python -m bench.lean_bound --modes "sqlite sync-1" --savers dense-sqlite,lean-sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import inspect
import json
import os
import statistics
import tempfile
import time
from typing import Any

import orjson
import ormsgpack
from langgraph.checkpoint.base import WRITES_IDX_MAP, BaseCheckpointSaver, CheckpointTuple

from bench import common
from bench.common import ScratchDB, fmt_ratio, print_table
from bench.short_threads import Lat, async_threads, sync_threads
from bench.workload import latest, steps, thread_id

# mode -> savers, the incumbent first (ratios are against it)
MODES: dict[str, tuple[str, ...]] = {
    "pg sync-1": ("lg-pg", "lean", "lean-cached", "dense", "dense-cached", "dense-thread", "ours-pg"),
    "pg async-1": ("lg-pg", "lean", "lean-cached", "dense", "dense-cached", "dense-thread", "ours-pg"),
    "sqlite sync-1": ("lg-sqlite", "lean-sqlite", "dense-sqlite", "dense-thread-sqlite", "ours-sqlite"),
}
_MISSING = object()
_blake2b = hashlib.blake2b
_packb = ormsgpack.packb
_unpackb = ormsgpack.unpackb
_dumps = orjson.dumps
_loads = orjson.loads

_DDL = (
    "CREATE TABLE lean_cp (t text, ns text, id text, parent text, cp bytea, md jsonb, "
    "PRIMARY KEY (t, ns, id))",
    "CREATE TABLE lean_w (t text, ns text, cid text, task text, idx int, ch text, ty text, "
    "v bytea, PRIMARY KEY (t, ns, cid, task, idx))",
)
_PUT = "INSERT INTO lean_cp VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
_WRITE_ROW = "(%s, %s, %s, %s, %s, %s, %s, %s)"
# the checkpoint blob only when it is not the one this process put last (lean-cached)
_GET = (
    "SELECT c.id, c.parent, CASE WHEN c.id = %s THEN NULL ELSE c.cp END, c.md, "
    "(SELECT array_agg(ARRAY[w.task, w.ch, w.ty, w.idx::text] ORDER BY w.task, w.idx) FROM lean_w w "
    "WHERE w.t = c.t AND w.ns = c.ns AND w.cid = c.id), "
    "(SELECT array_agg(w.v ORDER BY w.task, w.idx) FROM lean_w w "
    "WHERE w.t = c.t AND w.ns = c.ns AND w.cid = c.id) "
    "FROM lean_cp c WHERE c.t = %s AND c.ns = %s ORDER BY c.id DESC LIMIT 1"
)


class _Lean(BaseCheckpointSaver):
    """The least a saver must do per call (see the module docstring).

    ``cached``: keep what this process put and wrote, and decode a read only
    where it differs (the checkpoint is not even sent when it is the last put).
    """

    def __init__(self, conn: Any, cached: bool = False) -> None:
        super().__init__()
        self.conn = conn
        self.cached = cached
        self._last: dict[tuple[str, str], tuple[str, Any]] = {}
        self._writes: dict[tuple[str, str, str, str, int], Any] = {}

    def _put_args(self, config: Any, checkpoint: Any, metadata: Any) -> tuple[tuple[Any, ...], Any]:
        c = config["configurable"]
        ns = c.get("checkpoint_ns", "")
        _, data = self.serde.dumps_typed(checkpoint)
        args = (c["thread_id"], ns, checkpoint["id"], c.get("checkpoint_id"), data, json.dumps(metadata))
        out = {"configurable": {"thread_id": c["thread_id"], "checkpoint_ns": ns, "checkpoint_id": checkpoint["id"]}}
        if self.cached:
            self._last[(c["thread_id"], ns)] = (checkpoint["id"], checkpoint)
        return args, out

    def _writes_args(self, config: Any, writes: Any, task_id: str) -> tuple[str, list[Any]]:
        c = config["configurable"]
        rows: list[Any] = []
        for i, (ch, v) in enumerate(writes):
            ty, data = self.serde.dumps_typed(v)
            rows += [c["thread_id"], c["checkpoint_ns"], c["checkpoint_id"], task_id, i, ch, ty, data]
            if self.cached:
                self._writes[(c["thread_id"], c["checkpoint_ns"], c["checkpoint_id"], task_id, i)] = v
        sql = "INSERT INTO lean_w VALUES " + ", ".join([_WRITE_ROW] * len(writes)) + " ON CONFLICT DO NOTHING"
        return sql, rows

    def _get_args(self, config: Any) -> tuple[str, str, str | None]:
        c = config["configurable"]
        t, ns = c["thread_id"], c.get("checkpoint_ns", "")
        last = self._last.get((t, ns))
        return (last[0] if last else None, t, ns)

    def _tuple(self, config: Any, row: Any) -> CheckpointTuple | None:
        if row is None:
            return None
        cid, _, data, md, heads, blobs = row
        t, ns = config["configurable"]["thread_id"], config["configurable"].get("checkpoint_ns", "")
        checkpoint = self._last[(t, ns)][1] if data is None else self.serde.loads_typed(("msgpack", data))
        writes = []
        for h, v in zip(heads or [], blobs or []):
            value = self._writes.get((t, ns, cid, h[0], int(h[3])), _MISSING)
            if value is _MISSING:
                value = self.serde.loads_typed((h[2], v))
            writes.append((h[0], h[1], value))
        return CheckpointTuple(config, checkpoint, md, None, writes)

    def put(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        args, out = self._put_args(config, checkpoint, metadata)
        self.conn.execute(_PUT, args)
        return out

    def put_writes(self, config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
        self.conn.execute(*self._writes_args(config, writes, task_id))

    def get_tuple(self, config: Any) -> CheckpointTuple | None:
        row = self.conn.execute(_GET, self._get_args(config)).fetchone()
        return self._tuple(config, row)

    async def aput(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        args, out = self._put_args(config, checkpoint, metadata)
        await self.conn.execute(_PUT, args)
        return out

    async def aput_writes(self, config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
        await self.conn.execute(*self._writes_args(config, writes, task_id))

    async def aget_tuple(self, config: Any) -> CheckpointTuple | None:
        cur = await self.conn.execute(_GET, self._get_args(config))
        return self._tuple(config, await cur.fetchone())


class _LeanSqlite(_Lean):
    """The lean saver on one sqlite3 connection (WAL, synchronous=NORMAL)."""

    DDL = (
        "CREATE TABLE lean_cp (t TEXT, ns TEXT, id TEXT, parent TEXT, cp BLOB, md TEXT, "
        "PRIMARY KEY (t, ns, id)) WITHOUT ROWID",
        "CREATE TABLE lean_w (t TEXT, ns TEXT, cid TEXT, task TEXT, idx INT, ch TEXT, ty TEXT, "
        "v BLOB, PRIMARY KEY (t, ns, cid, task, idx)) WITHOUT ROWID",
    )

    def put(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        args, out = self._put_args(config, checkpoint, metadata)
        self.conn.execute("INSERT OR IGNORE INTO lean_cp VALUES (?, ?, ?, ?, ?, ?)", args)
        return out

    def put_writes(self, config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
        sql, rows = self._writes_args(config, writes, task_id)
        self.conn.execute(sql.replace("%s", "?").replace("INSERT INTO", "INSERT OR IGNORE INTO")
                          .replace(" ON CONFLICT DO NOTHING", ""), rows)

    def get_tuple(self, config: Any) -> CheckpointTuple | None:
        c = config["configurable"]
        t, ns = c["thread_id"], c.get("checkpoint_ns", "")
        row = self.conn.execute(
            "SELECT id, parent, cp, md FROM lean_cp WHERE t = ? AND ns = ? ORDER BY id DESC LIMIT 1",
            (t, ns),
        ).fetchone()
        if row is None:
            return None
        ws = self.conn.execute(
            "SELECT task, ch, ty, idx, v FROM lean_w WHERE t = ? AND ns = ? AND cid = ? "
            "ORDER BY task, idx",
            (t, ns, row[0]),
        ).fetchall()
        heads = [(w[0], w[1], w[2], str(w[3])) for w in ws]
        return self._tuple(config, (row[0], row[1], row[2], json.loads(row[3]), heads, [w[4] for w in ws]))


# ====================================================================== dense
#
# A deduplicating saver with the planned "dense layout": each distinct value
# once per thread (content-addressed, lists element by element) but few rows
# per step. ``vals`` blobs (checkpoint and writes rows) are
#   2-byte big-endian header length | ormsgpack header | the 16-byte hashes
# header of a checkpoint: [name, n, name, n, ...] (n = -1: a whole value, one
# hash; n >= 0: a list of n elements, n hashes); of a writes row: [idx,
# channel, n, ...]. The hashes sit at the end so SQL can cut them out with
# substring() (get_tuple asks for the objects in the same statement).

_DENSE_DDL = (
    "CREATE TABLE dense_obj (t text, h bytea, ty text, d bytea, PRIMARY KEY (t, h))",
    "CREATE TABLE dense_cp (t text, ns text, id text, parent text, doc text, md jsonb, vals bytea, "
    "PRIMARY KEY (t, ns, id))",
    "CREATE TABLE dense_w (t text, ns text, cid text, task text, path text, vals bytea, "
    "PRIMARY KEY (t, ns, cid, task))",
)
_DENSE_THREAD_DDL = (
    "CREATE TABLE dense_threads (thread_id text PRIMARY KEY, updated_at timestamptz, metadata jsonb)",
    "CREATE INDEX dense_cp_list ON dense_cp (id, ns, t)",
)
_OBJ_ROW = "(%s, %s, %s, %s)"
_CP_INS = "INSERT INTO dense_cp VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
_W_INS = "INSERT INTO dense_w VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
_TH_CTE = ("th AS (INSERT INTO dense_threads VALUES (%s, now(), %s) ON CONFLICT (thread_id) DO UPDATE "
           "SET updated_at = excluded.updated_at, metadata = excluded.metadata)")


def _dense_get_sql(cached: bool) -> str:
    """One statement: the newest checkpoint (k=0), its writes rows (k=1) and the
    objects their refs name (k=2; ``cached``: minus the hashes the client holds,
    sent as one bytea of concatenated hashes: psycopg dumps a list of 22 bytes
    as bytea[] in ~57 us of client CPU (text format; ~18 us binary), the
    concatenation in ~0.5 us)."""
    return (
        "WITH c AS MATERIALIZED (SELECT id, parent, doc, md, vals FROM dense_cp "
        "WHERE t = %(t)s AND ns = %(ns)s ORDER BY id DESC LIMIT 1), "
        "w AS MATERIALIZED (SELECT w.task, w.path, w.vals FROM dense_w w JOIN c ON w.cid = c.id "
        "WHERE w.t = %(t)s AND w.ns = %(ns)s), "
        "v AS (SELECT vals, 3 + get_byte(vals, 0) * 256 + get_byte(vals, 1) AS o FROM "
        "(SELECT vals FROM c UNION ALL SELECT vals FROM w) u), "
        "r AS (SELECT substring(v.vals FROM v.o + 16 * i FOR 16) AS h FROM v, "
        "generate_series(0, (length(v.vals) + 1 - v.o) / 16 - 1) i) "
        "SELECT 0, id, parent, doc, md::text, vals, NULL::bytea FROM c "
        "UNION ALL SELECT 1, task, path, NULL, NULL, vals, NULL FROM w "
        "UNION ALL SELECT 2, o.ty, NULL, NULL, NULL, o.h, o.d FROM dense_obj o "
        "WHERE o.t = %(t)s AND o.h IN (SELECT h FROM r)"
        + (" AND o.h NOT IN (SELECT substring(%(held)s::bytea FROM 1 + 16 * j FOR 16) "
           "FROM generate_series(0, length(%(held)s::bytea) / 16 - 1) j)" if cached else "")
    )


_GET_DENSE = _dense_get_sql(False)
_GET_DENSE_CACHED = _dense_get_sql(True)


class _Dense(BaseCheckpointSaver):
    """The least a deduplicating saver with the dense layout must do per call
    (see the module docstring).

    ``cached``: get_tuple sends the hashes this process holds for the thread
    and the statement leaves those objects out. ``thread``: put also upserts a
    threads row (with the checkpoint's metadata) in the same statement, and
    dense_cp has a listing index on (id, ns, t).
    """

    def __init__(self, conn: Any, cached: bool = False, thread: bool = False) -> None:
        super().__init__()
        self.conn = conn
        self.cached = cached
        self.thread = thread
        # thread id -> {hash: value}: what this process stored or read for the thread
        self._held: dict[str, dict[bytes, Any]] = {}
        self._put_sql: dict[int, str] = {}
        self._w_sql: dict[int, str] = {}
        self._get_sql = _GET_DENSE_CACHED if cached else _GET_DENSE

    # ---------------------------------------------------------------- encode

    def _held_of(self, t: str) -> dict[bytes, Any]:
        held = self._held.get(t)
        if held is None:
            held = self._held[t] = {}
        return held

    def _ref(self, v: Any, t: str, held: dict[bytes, Any], fresh: dict[bytes, Any],
             objs: list[tuple[str, bytes, str, bytes]]) -> bytes:
        ty, d = self.serde.dumps_typed(v)
        h = _blake2b(ty.encode() + b"\0" + d, digest_size=16).digest()
        if h not in held and h not in fresh:
            fresh[h] = v
            objs.append((t, h, ty, d))
        return h

    def _vals(self, t: str, entries: Any) -> tuple[bytes, dict[bytes, Any], list[tuple[str, bytes, str, bytes]]]:
        """``entries``: (header prefix, value) pairs -> (vals blob, new objects {hash:
        value}, their rows). A list value is stored element by element (header
        prefix + (n,)), another whole (prefix + (-1,))."""
        held = self._held_of(t)
        fresh: dict[bytes, Any] = {}
        objs: list[tuple[str, bytes, str, bytes]] = []
        hdr: list[Any] = []
        hs: list[bytes] = []
        ref = self._ref
        for prefix, v in entries:
            if type(v) is list:
                hdr += (*prefix, len(v))
                for e in v:
                    hs.append(ref(e, t, held, fresh, objs))
            else:
                hdr += (*prefix, -1)
                hs.append(ref(v, t, held, fresh, objs))
        head = _packb(hdr)
        return len(head).to_bytes(2, "big") + head + b"".join(hs), fresh, objs

    def _put_prep(self, config: Any, checkpoint: Any, metadata: Any) -> tuple[Any, ...]:
        """-> (thread id, new objects {hash: value}, object rows, checkpoint row, md, config out)."""
        c = config["configurable"]
        t = c["thread_id"]
        ns = c.get("checkpoint_ns", "")
        vals, fresh, objs = self._vals(t, (((name,), v) for name, v in checkpoint["channel_values"].items()))
        doc = _dumps({k: v for k, v in checkpoint.items() if k != "channel_values"}).decode()
        md = _dumps(metadata).decode()
        row = (t, ns, checkpoint["id"], c.get("checkpoint_id"), doc, md, vals)
        out = {"configurable": {"thread_id": t, "checkpoint_ns": ns, "checkpoint_id": checkpoint["id"]}}
        return t, fresh, objs, row, md, out

    def _writes_prep(self, config: Any, writes: Any, task_id: str, task_path: str) -> tuple[Any, ...]:
        """-> (thread id, new objects, object rows, writes row)."""
        c = config["configurable"]
        t = c["thread_id"]
        vals, fresh, objs = self._vals(
            t, (((WRITES_IDX_MAP.get(ch, i), ch), v) for i, (ch, v) in enumerate(writes))
        )
        row = (t, c.get("checkpoint_ns", ""), c["checkpoint_id"], task_id, task_path, vals)
        return t, fresh, objs, row

    # ---------------------------------------------------------------- decode

    @staticmethod
    def _values(vals: bytes, held: dict[bytes, Any]) -> dict[str, Any]:
        o = 2 + ((vals[0] << 8) | vals[1])
        hdr = _unpackb(vals[2:o])
        cv: dict[str, Any] = {}
        it = iter(hdr)
        for name, n in zip(it, it):
            if n < 0:
                cv[name] = held[vals[o:o + 16]]
                o += 16
            else:
                cv[name] = [held[vals[p:p + 16]] for p in range(o, o + 16 * n, 16)]
                o += 16 * n
        return cv

    @staticmethod
    def _writes(task: str, vals: bytes, held: dict[bytes, Any], out: list[Any]) -> None:
        o = 2 + ((vals[0] << 8) | vals[1])
        hdr = _unpackb(vals[2:o])
        it = iter(hdr)
        for idx, ch, n in zip(it, it, it):
            if n < 0:
                out.append((task, idx, ch, held[vals[o:o + 16]]))
                o += 16
            else:
                out.append((task, idx, ch, [held[vals[p:p + 16]] for p in range(o, o + 16 * n, 16)]))
                o += 16 * n

    def _tuple(self, t: str, ns: str, cp: Any, ws: Any, held: dict[bytes, Any]) -> CheckpointTuple:
        """``cp``: (id, parent, doc, md text, vals); ``ws``: [(task, path, vals)]; every
        object they name in ``held`` (KeyError otherwise)."""
        cid, parent, doc, md, vals = cp
        checkpoint = _loads(doc)
        checkpoint["channel_values"] = self._values(vals, held)
        pw: list[Any] = []
        for task, _, wv in ws:
            self._writes(task, wv, held, pw)
        if len(pw) > 1:
            pw.sort(key=_task_idx)
        return CheckpointTuple(
            {"configurable": {"thread_id": t, "checkpoint_ns": ns, "checkpoint_id": cid}},
            checkpoint,
            _loads(md),
            {"configurable": {"thread_id": t, "checkpoint_ns": ns, "checkpoint_id": parent}} if parent else None,
            [(w[0], w[2], w[3]) for w in pw],
        )

    def _get_args(self, config: Any) -> tuple[str, str, dict[str, Any]]:
        c = config["configurable"]
        t, ns = c["thread_id"], c.get("checkpoint_ns", "")
        if self.cached:
            held = self._held.get(t)
            return t, ns, {"t": t, "ns": ns, "held": b"".join(held) if held else b""}
        return t, ns, {"t": t, "ns": ns}

    def _from_rows(self, t: str, ns: str, rows: list[Any]) -> CheckpointTuple | None:
        cp = None
        ws = []
        held = self._held_of(t)
        loads = self.serde.loads_typed
        for k, a, b, doc, md, x, y in rows:
            if k == 2:
                if x not in held:
                    held[x] = loads((a, y))
            elif k == 1:
                ws.append((a, b, x))
            else:
                cp = (a, b, doc, md, x)
        if cp is None:
            return None
        return self._tuple(t, ns, cp, ws, held)

    # ---------------------------------------------------------------- postgres

    def _put_stmt(self, objs: list[Any], row: Any, md: str) -> tuple[str, list[Any]]:
        n = len(objs)
        sql = self._put_sql.get(n)
        if sql is None:
            ctes = []
            if n:
                ctes.append("o AS (INSERT INTO dense_obj VALUES " + ", ".join([_OBJ_ROW] * n)
                            + " ON CONFLICT DO NOTHING)")
            if self.thread:
                ctes.append(_TH_CTE)
            sql = self._put_sql[n] = ("WITH " + ", ".join(ctes) + " " if ctes else "") + _CP_INS
        params = [x for r in objs for x in r] if n else []
        if self.thread:
            params += (row[0], md)
        params += row
        return sql, params

    def _w_stmt(self, objs: list[Any], row: Any) -> tuple[str, list[Any]]:
        n = len(objs)
        sql = self._w_sql.get(n)
        if sql is None:
            sql = self._w_sql[n] = (
                "WITH o AS (INSERT INTO dense_obj VALUES " + ", ".join([_OBJ_ROW] * n)
                + " ON CONFLICT DO NOTHING) " + _W_INS if n else _W_INS
            )
        params = [x for r in objs for x in r] if n else []
        params += row
        return sql, params

    def put(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        t, fresh, objs, row, md, out = self._put_prep(config, checkpoint, metadata)
        self.conn.execute(*self._put_stmt(objs, row, md))
        if fresh:
            self._held[t].update(fresh)
        return out

    def put_writes(self, config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
        t, fresh, objs, row = self._writes_prep(config, writes, task_id, task_path)
        self.conn.execute(*self._w_stmt(objs, row))
        if fresh:
            self._held[t].update(fresh)

    def get_tuple(self, config: Any) -> CheckpointTuple | None:
        t, ns, args = self._get_args(config)
        return self._from_rows(t, ns, self.conn.execute(self._get_sql, args).fetchall())

    async def aput(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        t, fresh, objs, row, md, out = self._put_prep(config, checkpoint, metadata)
        await self.conn.execute(*self._put_stmt(objs, row, md))
        if fresh:
            self._held[t].update(fresh)
        return out

    async def aput_writes(self, config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
        t, fresh, objs, row = self._writes_prep(config, writes, task_id, task_path)
        await self.conn.execute(*self._w_stmt(objs, row))
        if fresh:
            self._held[t].update(fresh)

    async def aget_tuple(self, config: Any) -> CheckpointTuple | None:
        t, ns, args = self._get_args(config)
        cur = await self.conn.execute(self._get_sql, args)
        return self._from_rows(t, ns, await cur.fetchall())


def _task_idx(w: Any) -> tuple[str, int]:
    return w[0], w[1]


class _DenseSqlite(_Dense):
    """The dense saver on one sqlite3 connection (WAL, synchronous=NORMAL).

    A write is BEGIN IMMEDIATE, the new objects (executemany), the row, COMMIT
    (one autocommit INSERT when there is nothing else to write). get_tuple
    reads the checkpoint row and its writes rows, and asks for objects only
    when a ref names one this process does not hold (no round trip to save).
    """

    DDL = (
        "CREATE TABLE dense_obj (t TEXT, h BLOB, ty TEXT, d BLOB, PRIMARY KEY (t, h)) WITHOUT ROWID",
        "CREATE TABLE dense_cp (t TEXT, ns TEXT, id TEXT, parent TEXT, doc TEXT, md TEXT, vals BLOB, "
        "PRIMARY KEY (t, ns, id)) WITHOUT ROWID",
        "CREATE TABLE dense_w (t TEXT, ns TEXT, cid TEXT, task TEXT, path TEXT, vals BLOB, "
        "PRIMARY KEY (t, ns, cid, task)) WITHOUT ROWID",
    )
    THREAD_DDL = (
        "CREATE TABLE dense_threads (thread_id TEXT PRIMARY KEY, updated_at REAL, metadata TEXT) WITHOUT ROWID",
        "CREATE INDEX dense_cp_list ON dense_cp (id, ns, t)",
    )
    _OBJ = "INSERT OR IGNORE INTO dense_obj VALUES (?, ?, ?, ?)"
    _CP = "INSERT OR IGNORE INTO dense_cp VALUES (?, ?, ?, ?, ?, ?, ?)"
    _W = "INSERT OR IGNORE INTO dense_w VALUES (?, ?, ?, ?, ?, ?)"
    _TH = ("INSERT INTO dense_threads VALUES (?, julianday('now'), ?) ON CONFLICT (thread_id) DO UPDATE "
           "SET updated_at = excluded.updated_at, metadata = excluded.metadata")
    _GET_CP = "SELECT id, parent, doc, md, vals FROM dense_cp WHERE t = ? AND ns = ? ORDER BY id DESC LIMIT 1"
    _GET_W = "SELECT task, path, vals FROM dense_w WHERE t = ? AND ns = ? AND cid = ?"

    def _write(self, objs: list[Any], sql: str, row: Any, thread_row: Any = None) -> None:
        conn = self.conn
        if not objs and thread_row is None:
            conn.execute(sql, row)
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            if objs:
                conn.executemany(self._OBJ, objs)
            conn.execute(sql, row)
            if thread_row is not None:
                conn.execute(self._TH, thread_row)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def put(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        t, fresh, objs, row, md, out = self._put_prep(config, checkpoint, metadata)
        self._write(objs, self._CP, row, (t, md) if self.thread else None)
        if fresh:
            self._held[t].update(fresh)
        return out

    def put_writes(self, config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
        t, fresh, objs, row = self._writes_prep(config, writes, task_id, task_path)
        self._write(objs, self._W, row)
        if fresh:
            self._held[t].update(fresh)

    def get_tuple(self, config: Any) -> CheckpointTuple | None:
        c = config["configurable"]
        t, ns = c["thread_id"], c.get("checkpoint_ns", "")
        conn = self.conn
        cp = conn.execute(self._GET_CP, (t, ns)).fetchone()
        if cp is None:
            return None
        ws = conn.execute(self._GET_W, (t, ns, cp[0])).fetchall()
        held = self._held_of(t)
        try:
            return self._tuple(t, ns, cp, ws, held)
        except KeyError:
            pass
        # some objects are not held: fetch those, then decode again
        missing = set()
        for vals in [cp[4]] + [w[2] for w in ws]:
            o = 2 + ((vals[0] << 8) | vals[1])
            missing.update(h for h in (vals[p:p + 16] for p in range(o, len(vals), 16)) if h not in held)
        miss = list(missing)
        loads = self.serde.loads_typed
        for i in range(0, len(miss), 500):
            part = miss[i:i + 500]
            for h, ty, d in conn.execute(
                "SELECT h, ty, d FROM dense_obj WHERE t = ? AND h IN (" + ", ".join("?" * len(part)) + ")",
                (t, *part),
            ):
                held[h] = loads((ty, d))
        return self._tuple(t, ns, cp, ws, held)


_DENSE_PG = {  # name -> (cached, thread)
    "dense": (False, False),
    "dense-cached": (True, False),
    "dense-thread": (True, True),
}
_DENSE_SQLITE = {"dense-sqlite": False, "dense-thread-sqlite": True}


def _open_dense_sqlite(path: str, thread: bool) -> tuple[Any, _DenseSqlite]:
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    for ddl in _DenseSqlite.DDL + (_DenseSqlite.THREAD_DDL if thread else ()):
        conn.execute(ddl)
    return conn, _DenseSqlite(conn, cached=True, thread=thread)


def _dense_pg_ddl(thread: bool) -> tuple[str, ...]:
    return _DENSE_DDL + (_DENSE_THREAD_DDL if thread else ())


def _run_sync(name: str, url: str, threads: int, steps: int) -> tuple[float, Lat]:
    """``url``: a Postgres URL, or a new SQLite file's path for the *-sqlite savers."""
    import sqlite3

    import psycopg

    from bench.savers import open_sync

    lat = Lat()
    if name in _DENSE_SQLITE:
        conn, saver = _open_dense_sqlite(url, _DENSE_SQLITE[name])
        try:
            t0 = time.perf_counter()
            sync_threads(saver, "t", range(threads), steps, lat)
            return time.perf_counter() - t0, lat
        finally:
            conn.close()
    if name in _DENSE_PG:
        with psycopg.connect(url, autocommit=True) as conn:
            cached, thread = _DENSE_PG[name]
            for ddl in _dense_pg_ddl(thread):
                conn.execute(ddl)
            saver = _Dense(conn, cached=cached, thread=thread)
            t0 = time.perf_counter()
            sync_threads(saver, "t", range(threads), steps, lat)
            return time.perf_counter() - t0, lat
    if name == "lean-sqlite":
        conn = sqlite3.connect(url, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            for ddl in _LeanSqlite.DDL:
                conn.execute(ddl)
            saver: Any = _LeanSqlite(conn)
            t0 = time.perf_counter()
            sync_threads(saver, "t", range(threads), steps, lat)
            return time.perf_counter() - t0, lat
        finally:
            conn.close()
    if name.startswith("lean"):
        with psycopg.connect(url, autocommit=True) as conn:
            for ddl in _DDL:
                conn.execute(ddl)
            saver = _Lean(conn, cached=name == "lean-cached")
            t0 = time.perf_counter()
            sync_threads(saver, "t", range(threads), steps, lat)
            return time.perf_counter() - t0, lat
    with open_sync(name, url) as saver:
        t0 = time.perf_counter()
        sync_threads(saver, "t", range(threads), steps, lat)
        return time.perf_counter() - t0, lat


async def _run_async(name: str, url: str, threads: int, steps: int) -> tuple[float, Lat]:
    import psycopg

    from bench.savers import open_async

    lat = Lat()
    if name in _DENSE_PG:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            cached, thread = _DENSE_PG[name]
            for ddl in _dense_pg_ddl(thread):
                await conn.execute(ddl)
            saver = _Dense(conn, cached=cached, thread=thread)
            t0 = time.perf_counter()
            await async_threads(saver, "t", range(threads), steps, lat)
            return time.perf_counter() - t0, lat
    if name.startswith("lean"):
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            for ddl in _DDL:
                await conn.execute(ddl)
            saver: Any = _Lean(conn, cached=name == "lean-cached")
            t0 = time.perf_counter()
            await async_threads(saver, "t", range(threads), steps, lat)
            return time.perf_counter() - t0, lat
    async with open_async(name, url) as saver:
        t0 = time.perf_counter()
        await async_threads(saver, "t", range(threads), steps, lat)
        return time.perf_counter() - t0, lat


# ---------------------------------------------------------------- self-check


def _want_values(serde: Any, st: Any) -> set[tuple[str, bytes]]:
    """The distinct serialized values a step puts (list elements one by one)."""
    out = set()
    for v in list(st.checkpoint["channel_values"].values()) + [v for _, v in st.writes]:
        for e in (v if type(v) is list else [v]):
            out.add(serde.dumps_typed(e))
    return out


def _verify(who: str, tup: Any, st: Any, parent: str | None) -> list[str]:
    if tup is None:
        return [f"{who}: get_tuple returned None"]
    bad = []
    if tup.config["configurable"]["checkpoint_id"] != st.checkpoint["id"]:
        bad.append(f"{who}: checkpoint id")
    if tup.checkpoint != st.checkpoint:
        bad.append(f"{who}: checkpoint differs: {tup.checkpoint!r} != {st.checkpoint!r}")
    if tup.metadata != st.metadata:
        bad.append(f"{who}: metadata differs")
    if tup.pending_writes != [(st.task_id, ch, v) for ch, v in st.writes]:
        bad.append(f"{who}: pending writes differ: {tup.pending_writes!r}")
    got_parent = tup.parent_config["configurable"]["checkpoint_id"] if tup.parent_config else None
    if got_parent != parent:
        bad.append(f"{who}: parent {got_parent} != {parent}")
    return bad


async def _check_threads(name: str, saver: Any, fresh: Any, count: Any, n_threads: int = 3,
                         n_steps: int = 6) -> list[str]:
    """Put a few threads with ``saver``; after each step compare get_tuple of the
    same saver and of ``fresh()`` (a new saver, nothing held) with what was put;
    at the end of a thread, its object rows must be its distinct values."""

    async def call(f: Any, *a: Any) -> Any:
        r = f(*a)
        return await r if inspect.isawaitable(r) else r

    a = "a" if name.startswith("async ") else ""
    errors: list[str] = []
    for i in range(n_threads):
        tid = thread_id("check", i)
        gen = steps(saver, tid, i, n_steps)
        st = next(gen)
        want: set[tuple[str, bytes]] = set()
        parent = None
        while True:
            cfg = await call(getattr(saver, a + "put"), st.config, st.checkpoint, st.metadata, st.new_versions)
            await call(getattr(saver, a + "put_writes"), cfg, st.writes, st.task_id)
            want |= _want_values(saver.serde, st)
            for who, s in (("same saver", saver), ("fresh saver", fresh())):
                tup = await call(getattr(s, a + "get_tuple"), latest(tid))
                errors += _verify(f"{name} {tid} step {st.metadata['step']} {who}", tup, st, parent)
            parent = st.checkpoint["id"]
            try:
                st = gen.send(cfg)
            except StopIteration:
                break
        n = await call(count, tid)
        if n != len(want):
            errors.append(f"{name} {tid}: {n} object rows for {len(want)} distinct values")
    return errors


def self_check(pg_url: str, db_prefix: str) -> None:
    """The dense savers return what was put (same saver and a fresh one) and
    store each distinct value once per thread; raises SystemExit otherwise."""
    import psycopg

    errors: list[str] = []
    for name, thread in _DENSE_SQLITE.items():
        with tempfile.TemporaryDirectory(prefix="lean_bound_") as tmp:
            conn, saver = _open_dense_sqlite(os.path.join(tmp, "db.sqlite"), thread)
            try:
                errors += asyncio.run(_check_threads(
                    name, saver, lambda: _DenseSqlite(conn, cached=True, thread=thread),
                    lambda t: conn.execute("SELECT count(*) FROM dense_obj WHERE t = ?", (t,)).fetchone()[0],
                ))
            finally:
                conn.close()
    for name, (cached, thread) in _DENSE_PG.items():
        with _scratch(pg_url, db_prefix, f"check_{name}") as db:
            with psycopg.connect(db.url, autocommit=True) as conn:
                for ddl in _dense_pg_ddl(thread):
                    conn.execute(ddl)
                errors += asyncio.run(_check_threads(
                    name, _Dense(conn, cached, thread), lambda: _Dense(conn, cached, thread),
                    lambda t: conn.execute("SELECT count(*) FROM dense_obj WHERE t = %s", (t,)).fetchone()[0],
                ))

        async def go(url: str) -> list[str]:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                for ddl in _dense_pg_ddl(thread):
                    await conn.execute(ddl)

                async def count(t: str) -> int:
                    cur = await conn.execute("SELECT count(*) FROM dense_obj WHERE t = %s", (t,))
                    return (await cur.fetchone())[0]

                return await _check_threads(
                    f"async {name}", _Dense(conn, cached, thread), lambda: _Dense(conn, cached, thread), count)

        with _scratch(pg_url, db_prefix, f"check_async_{name}") as db:
            errors += asyncio.run(go(db.url))
    if errors:
        raise SystemExit("dense self-check failed:\n  " + "\n  ".join(errors[:20]))
    print("dense self-check: ok (values, pending writes, parents and one object row per distinct value, "
          "same saver and a fresh one)", flush=True)


def _scratch(pg_url: str, prefix: str, tag: str) -> ScratchDB:
    db = ScratchDB(pg_url, tag)
    if prefix != "bench":
        db.name = prefix + db.name[len("bench"):]
        db.url = common._with_db(pg_url, db.name)
    return db


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=300)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--rounds", type=int, default=3, help="alternations of the savers per mode")
    p.add_argument("--pg-url", default=common.DEFAULT_PG_URL)
    p.add_argument("--out", default="lean_bound", help="results name (bench/results/<out>.json) or a path")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of: " + ", ".join(MODES))
    p.add_argument("--savers", default=None,
                   help="comma-separated subset of the savers (the incumbent of a mode always runs)")
    p.add_argument("--db-prefix", default="bench", help="scratch database names start with this")
    p.add_argument("--no-check", action="store_true", help="skip the dense savers' self-check")
    args = p.parse_args(argv)
    t_start = time.perf_counter()
    modes = {}
    for mode in args.modes.split(","):
        incumbent, *others = MODES[mode]
        if args.savers:
            others = [s for s in others if s in args.savers.split(",")]
        modes[mode] = (incumbent, *others)
    if not args.no_check:
        self_check(args.pg_url, args.db_prefix)
    rates: dict[str, dict[str, list[float]]] = {}
    for mode, savers in modes.items():
        for r in range(args.rounds):
            for name in savers:
                if name.endswith("-sqlite"):
                    with tempfile.TemporaryDirectory(prefix="lean_bound_") as tmp:
                        wall, lat = _run_sync(name, os.path.join(tmp, "db.sqlite"), args.threads, args.steps)
                else:
                    with _scratch(args.pg_url, args.db_prefix, f"lean_{name.replace('-', '_')}") as db:
                        if mode.endswith("async-1"):
                            wall, lat = asyncio.run(_run_async(name, db.url, args.threads, args.steps))
                        else:
                            wall, lat = _run_sync(name, db.url, args.threads, args.steps)
                if lat.bad:
                    raise SystemExit(f"{name} {mode}: {lat.bad} reads did not return the step just written")
                rate = args.threads * args.steps / wall
                rates.setdefault(mode, {}).setdefault(name, []).append(rate)
                print(f"[{mode} round {r + 1}] {name:19s} {rate:7.1f} steps/s", flush=True)
    rows, summary = [], {}
    for mode, by_saver in rates.items():
        incumbent, *others = modes[mode]
        med = {name: statistics.median(v) for name, v in by_saver.items()}
        summary[mode] = {"steps_per_s": med, "runs": by_saver}
        for name in others:
            rel = [v / i for v, i in zip(by_saver[name], by_saver[incumbent])]
            rows.append([
                mode,
                name,
                f"{med[name]:,.0f}",
                f"{med[incumbent]:,.0f} ({incumbent})",
                fmt_ratio(med[name] / med[incumbent]),
                f"{fmt_ratio(min(rel))}-{fmt_ratio(max(rel))}",
            ])
    table = print_table(
        ["mode", "saver", "steps/s", "incumbent steps/s", "/ incumbent", "single rounds"],
        rows,
        title=f"lean bound: {args.threads} threads x {args.steps} steps, median of {args.rounds} "
        "alternating rounds (single rounds: the lowest and highest ratio of one round)",
    )
    data = {
        "benchmark": "lean_bound",
        "meta": common.run_meta(args),
        "modes": summary,
        "wall_s": time.perf_counter() - t_start,
        "table": table,
    }
    path = common.write_results(args.out, data)
    print(f"\nwrote {common.shown(path)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
