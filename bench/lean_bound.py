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

It runs the workload of bench.short_threads (sync-1 and async-1) on the same
Postgres, alternating with langgraph-checkpoint-postgres and ours in the same
run. The lean saver is a yardstick only: it cannot list, delete or migrate
and stores every message again in every checkpoint.

    python -m bench.lean_bound                 # 300 threads x 6 steps, 3 rounds, both backends
    python -m bench.lean_bound --threads 1000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple

from bench import common
from bench.common import ScratchDB, fmt_ratio, print_table
from bench.short_threads import Lat, async_threads, sync_threads

# mode -> savers, the incumbent first (ratios are against it)
MODES: dict[str, tuple[str, ...]] = {
    "pg sync-1": ("lg-pg", "lean", "lean-cached", "ours-pg"),
    "pg async-1": ("lg-pg", "lean", "lean-cached", "ours-pg"),
    "sqlite sync-1": ("lg-sqlite", "lean-sqlite", "ours-sqlite"),
}
_MISSING = object()

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


def _run_sync(name: str, url: str, threads: int, steps: int) -> tuple[float, Lat]:
    """``url``: a Postgres URL, or a new SQLite file's path for the *-sqlite savers."""
    import sqlite3

    import psycopg

    from bench.savers import open_sync

    lat = Lat()
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=300)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--rounds", type=int, default=3, help="alternations of the savers per mode")
    p.add_argument("--pg-url", default=common.DEFAULT_PG_URL)
    p.add_argument("--out", default="lean_bound", help="results name (bench/results/<out>.json) or a path")
    args = p.parse_args(argv)
    t_start = time.perf_counter()
    rates: dict[str, dict[str, list[float]]] = {}
    for mode, savers in MODES.items():
        for r in range(args.rounds):
            for name in savers:
                if name.endswith("-sqlite"):
                    with tempfile.TemporaryDirectory(prefix="lean_bound_") as tmp:
                        wall, lat = _run_sync(name, os.path.join(tmp, "db.sqlite"), args.threads, args.steps)
                else:
                    with ScratchDB(args.pg_url, f"lean_{name.replace('-', '_')}") as db:
                        if mode.endswith("async-1"):
                            wall, lat = asyncio.run(_run_async(name, db.url, args.threads, args.steps))
                        else:
                            wall, lat = _run_sync(name, db.url, args.threads, args.steps)
                if lat.bad:
                    raise SystemExit(f"{name} {mode}: {lat.bad} reads did not return the step just written")
                rate = args.threads * args.steps / wall
                rates.setdefault(mode, {}).setdefault(name, []).append(rate)
                print(f"[{mode} round {r + 1}] {name:11s} {rate:7.1f} steps/s", flush=True)
    rows, summary = [], {}
    for mode, by_saver in rates.items():
        incumbent, *others = MODES[mode]
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
