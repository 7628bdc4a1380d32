"""How small could a 200-turn thread be on Postgres? A measured study of a denser layout.

Issue 3 asks for at most 1% of langgraph-checkpoint-postgres's bytes; the
shipped layout takes ~2.7%. What is left is per-row cost, not content: every
row repeats the thread id and text checkpoint ids, every channel version is a
row, every checkpoint stores its whole JSON document. This study runs the
long-thread agent (bench/agent.py) on our Postgres saver, then rewrites the
same data into two candidate layouts in the same database and measures them
with the same ``pg_total_relation_size`` after VACUUM:

- ``dense``: an integer thread key, checkpoint ids as uuid, the channel
  versions a checkpoint introduces packed into its row, one row of writes per
  task (instead of one per write).
- ``dense+delta``: ``dense`` with each checkpoint row's payload (document,
  metadata, packed versions) deflated against its parent's payload, with a
  full payload every 16 rows so a read walks at most 15 parents.

- ``packed``: ``dense+delta`` for the newest ``HOT`` checkpoints of each
  thread and namespace only; older checkpoints go ``SEGMENT`` at a time into
  one row, their payloads and their writes deflated together. Objects are
  deflated ``SEGMENT`` at a time in the order they were stored (against the
  saver's preset dictionary), with one row per object left to find its
  segment by hash: what storing each message once, and compressing messages
  across each other, would take together.
- ``packed, hash lists``: ``packed`` with one row per object segment listing
  its objects' hashes instead of one index row per object (a lookup by hash
  then scans the thread's lists).

Objects (the messages themselves) are copied as they are stored today, but in
``packed``. The candidate layouts are not a saver: reads and writes of them
are not implemented, only their size is measured.

    python -m bench.layout_study                 # 200 turns
    python -m bench.layout_study --turns 50 --out layout_50
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
import zlib
from collections import defaultdict
from typing import Any

from bench import common
from bench.common import ScratchDB, fmt_bytes, fmt_ratio, print_table, ratio

KEYFRAME_EVERY = 16
HOT = 32  # packed: checkpoints per (thread, namespace) kept as rows
SEGMENT = 64  # packed: checkpoints, or objects, per segment row

_DDL = """
CREATE SCHEMA {s};
CREATE TABLE {s}.threads (tk int4 PRIMARY KEY, thread_id text NOT NULL UNIQUE);
CREATE TABLE {s}.checkpoints (
    tk int4 NOT NULL, ns text NOT NULL, id uuid NOT NULL, parent uuid,
    payload bytea NOT NULL, PRIMARY KEY (tk, ns, id));
CREATE INDEX ON {s}.checkpoints (id, ns, tk);
CREATE TABLE {s}.writes (
    tk int4 NOT NULL, ns text NOT NULL, cid uuid NOT NULL, task text NOT NULL,
    packed bytea NOT NULL, PRIMARY KEY (tk, ns, cid, task));
CREATE TABLE {s}.objects (
    tk int4 NOT NULL, hash bytea NOT NULL, type int2 NOT NULL, data bytea NOT NULL,
    PRIMARY KEY (tk, hash));
"""

_PACKED_DDL = """
CREATE TABLE {s}.segments (
    tk int4 NOT NULL, ns text NOT NULL, first uuid NOT NULL, last uuid NOT NULL,
    data bytea NOT NULL, PRIMARY KEY (tk, ns, first));
CREATE TABLE {s}.object_segments (tk int4 NOT NULL, seg int4 NOT NULL, data bytea NOT NULL,
    PRIMARY KEY (tk, seg));
CREATE TABLE {s}.object_index (tk int4 NOT NULL, hash bytea NOT NULL, seg int4 NOT NULL,
    PRIMARY KEY (tk, hash));
CREATE TABLE {s}.segment_hashes (tk int4 NOT NULL, seg int4 NOT NULL, hashes bytea NOT NULL,
    PRIMARY KEY (tk, seg));
"""


def _run_thread(url: str, turns: int) -> None:
    from bench.agent import build_graph, turn_input
    from bench.savers import open_sync

    with open_sync("ours-pg", url) as saver:
        graph = build_graph(saver)
        config = {"configurable": {"thread_id": "long-thread-1"}}
        for t in range(turns):
            graph.invoke(turn_input(t), config)


def _sizes(conn: Any, schema: str, prefix: str = "") -> dict[str, int]:
    rows = conn.execute(
        "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = 'r' AND c.relname LIKE %s",
        (schema, prefix + "%"),
    ).fetchall()
    return {name: size for name, size in rows}


def _payload(doc: str, md: Any, vals: list[tuple[str, str, int, str | None, bytes]]) -> bytes:
    head = json.dumps([doc, md, [v[:4] for v in vals]], separators=(",", ":")).encode()
    return len(head).to_bytes(4, "big") + head + b"".join(v[4] for v in vals)


def _deflate(data: bytes, zdict: bytes | None) -> bytes:
    co = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, **({"zdict": zdict} if zdict else {}))
    return co.compress(data) + co.flush()


def _build(conn: Any, schema: str, delta: bool, packed: bool = False, hash_lists: bool = False) -> None:
    conn.execute(_DDL.format(s=schema))
    if packed:
        conn.execute(_PACKED_DDL.format(s=schema))
    threads = [r[0] for r in conn.execute("SELECT thread_id FROM cpg_threads ORDER BY thread_id")]
    tk = {t: i + 1 for i, t in enumerate(threads)}
    conn.cursor().executemany(f"INSERT INTO {schema}.threads VALUES (%s, %s)", [(k, t) for t, k in tk.items()])
    # each stored channel version goes into the row of the first checkpoint that carries it
    values = {
        (t, ns, ch, ver): (kind, base, bytes(refs))
        for t, ns, ch, ver, kind, base, refs in conn.execute(
            "SELECT thread_id, checkpoint_ns, channel, version, kind, base_version, refs FROM cpg_channel_values"
        )
    }
    placed: set[tuple[str, str, str, str]] = set()
    chain: dict[tuple[str, str], int] = defaultdict(int)
    payloads: dict[str, bytes] = {}
    rows = []
    for t, ns, cid, parent, doc, md in conn.execute(
        "SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata "
        "FROM cpg_checkpoints ORDER BY thread_id, checkpoint_ns, checkpoint_id"
    ):
        vals = []
        for ch, ver in json.loads(doc).get("channel_versions", {}).items():
            key = (t, ns, ch, str(ver))
            if key in values and key not in placed:
                placed.add(key)
                kind, base, refs = values[key]
                vals.append((ch, str(ver), kind, base, refs))
        plain = _payload(doc, md, vals)
        payloads[cid] = plain
        zdict = None
        if delta and parent in payloads and chain[(t, ns)] % KEYFRAME_EVERY:
            zdict = payloads[parent]
        chain[(t, ns)] += 1
        stored = _deflate(plain, zdict) if delta else plain
        rows.append((tk[t], ns, uuid.UUID(cid), uuid.UUID(parent) if parent else None, stored))
    writes: dict[tuple[str, str, str, str], list[bytes]] = defaultdict(list)
    for t, ns, cid, task, idx, ch, path, kind, refs in conn.execute(
        "SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, task_path, kind, refs "
        "FROM cpg_writes ORDER BY 1, 2, 3, 4, 5"
    ):
        head = json.dumps([idx, ch, path, kind], separators=(",", ":")).encode()
        writes[(t, ns, cid, task)].append(len(head).to_bytes(2, "big") + head + bytes(refs))
    task_rows = [
        (tk[t], ns, uuid.UUID(cid), task, b"".join(parts)) for (t, ns, cid, task), parts in writes.items()
    ]
    if packed:
        rows, task_rows = _pack_checkpoints(conn, schema, rows, task_rows, payloads)
        _pack_objects(conn, schema, tk, hash_lists)
    conn.cursor().executemany(f"INSERT INTO {schema}.checkpoints VALUES (%s, %s, %s, %s, %s)", rows)
    conn.cursor().executemany(f"INSERT INTO {schema}.writes VALUES (%s, %s, %s, %s, %s)", task_rows)
    if packed:
        return
    conn.execute(
        f"INSERT INTO {schema}.objects SELECT x.tk, o.hash, "
        "CASE WHEN o.type LIKE 'z:%%' THEN 1 ELSE 0 END, o.data FROM cpg_objects o "
        f"JOIN {schema}.threads x ON x.thread_id = o.thread_id"
    )


def _pack_checkpoints(
    conn: Any, schema: str, rows: list[Any], task_rows: list[Any], payloads: dict[str, bytes]
) -> tuple[list[Any], list[Any]]:
    """Segments of the checkpoints older than the newest HOT of their (thread, namespace),
    each with its writes; returns the checkpoint and write rows left as rows."""
    by_key: dict[tuple[int, str], list[Any]] = defaultdict(list)
    for r in rows:  # in checkpoint id order
        by_key[(r[0], r[1])].append(r)
    writes_of: dict[tuple[int, str, Any], list[bytes]] = defaultdict(list)
    for tkey, ns, cid, task, packed in task_rows:
        writes_of[(tkey, ns, cid)].append(task.encode() + b"\0" + packed)
    hot_rows, cold = [], set()
    segments = []
    for (tkey, ns), cps in by_key.items():
        n_cold = max(0, len(cps) - HOT) // SEGMENT * SEGMENT
        for i in range(0, n_cold, SEGMENT):
            part = cps[i : i + SEGMENT]
            plain = b"".join(
                payloads[str(r[2])] + b"".join(writes_of[(tkey, ns, r[2])]) for r in part
            )
            cold.update((tkey, ns, r[2]) for r in part)
            segments.append((tkey, ns, part[0][2], part[-1][2], _deflate(plain, None)))
        hot_rows.extend(cps[n_cold:])
    conn.cursor().executemany(f"INSERT INTO {schema}.segments VALUES (%s, %s, %s, %s, %s)", segments)
    return hot_rows, [w for w in task_rows if (w[0], w[1], w[2]) not in cold]


def _pack_objects(conn: Any, schema: str, tk: dict[str, int], hash_lists: bool) -> None:
    """Objects SEGMENT at a time, in the order they were stored, deflated together
    against the preset dictionary; found by hash through one index row per object,
    or with ``hash_lists`` through one row per segment listing its objects' hashes."""
    from checkpoint_pg.core.zdict import CURRENT, DICTIONARIES

    zd = DICTIONARIES[CURRENT]
    by_thread: dict[str, list[tuple[bytes, bytes]]] = defaultdict(list)
    for t, h, typ, data in conn.execute("SELECT thread_id, hash, type, data FROM cpg_objects ORDER BY ctid"):
        data = bytes(data)
        if typ.startswith(CURRENT + ":"):
            d = zlib.decompressobj(15, zd)
            data = d.decompress(data) + d.flush()
        by_thread[t].append((bytes(h), typ.encode() + b"\0" + data))
    segs, index = [], []
    for t, objs in by_thread.items():
        for i in range(0, len(objs), SEGMENT):
            part = objs[i : i + SEGMENT]
            plain = b"".join(len(d).to_bytes(4, "big") + d for _, d in part)
            segs.append((tk[t], i // SEGMENT, _deflate(plain, zd)))
            index.extend((tk[t], h, i // SEGMENT) for h, _ in part)
    conn.cursor().executemany(f"INSERT INTO {schema}.object_segments VALUES (%s, %s, %s)", segs)
    if hash_lists:
        lists: dict[tuple[int, int], list[bytes]] = defaultdict(list)
        for tkey, h, seg in index:
            lists[(tkey, seg)].append(h)
        conn.cursor().executemany(
            f"INSERT INTO {schema}.segment_hashes VALUES (%s, %s, %s)",
            [(tkey, seg, b"".join(hs)) for (tkey, seg), hs in lists.items()],
        )
    else:
        conn.cursor().executemany(f"INSERT INTO {schema}.object_index VALUES (%s, %s, %s)", index)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--turns", type=int, default=200)
    p.add_argument("--pg-url", default=common.DEFAULT_PG_URL)
    p.add_argument("--incumbent-from", default="lt_s9",
                   help="bench/results/<name>.json of bench.long_thread with lg-pg at the same turns")
    p.add_argument("--out", default="layout_study",
                   help="results name (bench/results/<out>.json) or a path (<out>.json)")
    args = p.parse_args(argv)
    import psycopg

    t0 = time.perf_counter()
    with ScratchDB(args.pg_url, "layout") as db:
        _run_thread(db.url, args.turns)
        with psycopg.connect(db.url, autocommit=True) as conn:
            _build(conn, "dense", delta=False)
            _build(conn, "dense_delta", delta=True)
            _build(conn, "packed", delta=True, packed=True)
            _build(conn, "packed_lists", delta=True, packed=True, hash_lists=True)
            conn.execute("VACUUM")
            layouts = {
                "shipped": _sizes(conn, "public", common.OURS_PREFIX),
                "dense": _sizes(conn, "dense"),
                "dense+delta": _sizes(conn, "dense_delta"),
                "packed": _sizes(conn, "packed"),
                "packed, hash lists": _sizes(conn, "packed_lists"),
            }
            # every layout keeps alembic's version table (the candidates' schemas have none)
            version = {k: v for k, v in layouts["shipped"].items() if k.endswith("alembic_version")}
            for name in ("dense", "dense+delta", "packed", "packed, hash lists"):
                layouts[name].update(version)
    incumbent = _incumbent_bytes(args.incumbent_from, args.turns)
    rows = []
    for name, sizes in layouts.items():
        total = sum(sizes.values())
        parts = ", ".join(f"{k.removeprefix(common.OURS_PREFIX)} {fmt_bytes(v)}" for k, v in sorted(sizes.items()))
        rows.append([name, fmt_bytes(total), fmt_ratio(ratio(total, incumbent)), parts])
    table = print_table(
        ["layout", "bytes", "/ lg-pg", "tables"],
        rows,
        title=f"layout study: one {args.turns}-turn thread on Postgres, after VACUUM "
        f"(lg-pg: {fmt_bytes(incumbent)} from bench/results/{args.incumbent_from}.json)",
    )
    data = {
        "benchmark": "layout_study",
        "turns": args.turns,
        "layouts": layouts,
        "incumbent_bytes": incumbent,
        "keyframe_every": KEYFRAME_EVERY,
        "hot": HOT,
        "segment": SEGMENT,
        "wall_s": time.perf_counter() - t0,
        "table": table,
    }
    path = common.write_results(args.out, data)
    print(f"\nwrote {common.shown(path)}")
    return 0


def _incumbent_bytes(name: str, turns: int) -> int | None:
    path = common.RESULTS / f"{name}.json"
    if not path.exists():
        return None
    for r in json.loads(path.read_text()).get("results", []):
        if r.get("saver") == "lg-pg" and r.get("turns") == turns and r.get("size"):
            return r["size"].get("bytes_vacuum")
    return None


if __name__ == "__main__":
    raise SystemExit(main())
