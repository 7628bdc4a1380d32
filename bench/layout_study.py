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

Objects (the messages themselves) are copied as they are stored today. The
candidate layouts are not a saver: reads and writes of them are not
implemented, only their size is measured.

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


def _build(conn: Any, schema: str, delta: bool) -> None:
    conn.execute(_DDL.format(s=schema))
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
    conn.cursor().executemany(f"INSERT INTO {schema}.checkpoints VALUES (%s, %s, %s, %s, %s)", rows)
    writes: dict[tuple[str, str, str, str], list[bytes]] = defaultdict(list)
    for t, ns, cid, task, idx, ch, path, kind, refs in conn.execute(
        "SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, task_path, kind, refs "
        "FROM cpg_writes ORDER BY 1, 2, 3, 4, 5"
    ):
        head = json.dumps([idx, ch, path, kind], separators=(",", ":")).encode()
        writes[(t, ns, cid, task)].append(len(head).to_bytes(2, "big") + head + bytes(refs))
    conn.cursor().executemany(
        f"INSERT INTO {schema}.writes VALUES (%s, %s, %s, %s, %s)",
        [(tk[t], ns, uuid.UUID(cid), task, b"".join(parts)) for (t, ns, cid, task), parts in writes.items()],
    )
    conn.execute(
        f"INSERT INTO {schema}.objects SELECT x.tk, o.hash, "
        "CASE WHEN o.type LIKE 'z:%%' THEN 1 ELSE 0 END, o.data FROM cpg_objects o "
        f"JOIN {schema}.threads x ON x.thread_id = o.thread_id"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--turns", type=int, default=200)
    p.add_argument("--pg-url", default=common.DEFAULT_PG_URL)
    p.add_argument("--incumbent-from", default="lt_s3",
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
            conn.execute("VACUUM")
            layouts = {
                "shipped": _sizes(conn, "public", common.OURS_PREFIX),
                "dense": _sizes(conn, "dense"),
                "dense+delta": _sizes(conn, "dense_delta"),
            }
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
