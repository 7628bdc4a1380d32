"""Short-threads benchmark ("fastest on short threads"): saver calls only.

Part 1 — per-call latency/throughput: T threads x S supersteps; each step is
``put`` + ``put_writes`` (2 writes) + ``get_tuple`` (latest). Modes:
sync-1 (one connection), sync-8 (8 threads; Postgres through a
psycopg_pool.ConnectionPool(max_size=8), SQLite: 8 threads on one saver),
async-1, async-8 (8 asyncio tasks through AsyncConnectionPool; Postgres only).
Each (mode, saver) gets its own scratch database / SQLite file. With
``--rounds R`` (``--full``: 3) every (mode, saver) runs R times, the savers'
order alternating between rounds; the table gives medians and the range of
the per-round ratios, since one run's ratio drifts with the machine.

Part 2 — listing: populate N threads x K checkpoints with the saver's own
``put`` (not timed as a benchmark, just reported), then time a metadata-filter
``list(None, filter={"source": "loop", "user": "u42"}, limit=10)``, a
per-thread list, and listing thread ids (incumbent: SELECT DISTINCT
thread_id; ours: ``saver.threads()`` when it exists).

    python -m bench.short_threads
    python -m bench.short_threads --savers ours-pg,lg-pg --modes sync-1,async-8
    python -m bench.short_threads --quick
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import common, floor
from bench.common import ScratchDB, fmt_bytes, fmt_num, fmt_ratio, percentile, print_table, ratio
from bench.savers import backend, family, open_async, open_async_pool, open_sync, open_sync_pool
from bench.workload import latest, steps, thread_id, user_of

SAVERS = ("ours-pg", "lg-pg", "ours-sqlite", "lg-sqlite", "memory")
DEFAULT_SAVERS = ("ours-pg", "lg-pg", "ours-sqlite", "lg-sqlite")
MODES = ("sync-1", "sync-8", "async-1", "async-8")
PAIRS = (("ours-pg", "lg-pg"), ("ours-sqlite", "lg-sqlite"))
CALLS = ("put", "put_writes", "get_tuple")


def mode_applies(mode: str, saver: str) -> bool:
    be = backend(saver)
    if be == "pg":
        return True
    if be == "sqlite":
        return mode in ("sync-1", "sync-8", "async-1")
    return mode in ("sync-1", "async-1")  # memory


# ====================================================================== part 1


class Lat:
    """Latencies per call type for one worker."""

    def __init__(self) -> None:
        self.d: dict[str, list[float]] = {c: [] for c in CALLS}
        self.bad = 0


def _check(tup: Any, ckpt_id: str, lat: Lat) -> None:
    if tup is None or tup.checkpoint["id"] != ckpt_id or len(tup.pending_writes or []) != 2:
        lat.bad += 1


def sync_threads(saver: Any, prefix: str, indices: range, n_steps: int, lat: Lat) -> None:
    pc = time.perf_counter
    d_put, d_pw, d_get = lat.d["put"], lat.d["put_writes"], lat.d["get_tuple"]
    for i in indices:
        tid = thread_id(prefix, i)
        gen = steps(saver, tid, i, n_steps)
        st = next(gen)
        q = latest(tid)
        while True:
            t0 = pc()
            cfg = saver.put(st.config, st.checkpoint, st.metadata, st.new_versions)
            t1 = pc()
            saver.put_writes(cfg, st.writes, st.task_id)
            t2 = pc()
            tup = saver.get_tuple(q)
            t3 = pc()
            d_put.append(t1 - t0)
            d_pw.append(t2 - t1)
            d_get.append(t3 - t2)
            _check(tup, st.checkpoint["id"], lat)
            try:
                st = gen.send(cfg)
            except StopIteration:
                break


async def async_threads(saver: Any, prefix: str, indices: range, n_steps: int, lat: Lat) -> None:
    pc = time.perf_counter
    d_put, d_pw, d_get = lat.d["put"], lat.d["put_writes"], lat.d["get_tuple"]
    for i in indices:
        tid = thread_id(prefix, i)
        gen = steps(saver, tid, i, n_steps)
        st = next(gen)
        q = latest(tid)
        while True:
            t0 = pc()
            cfg = await saver.aput(st.config, st.checkpoint, st.metadata, st.new_versions)
            t1 = pc()
            await saver.aput_writes(cfg, st.writes, st.task_id)
            t2 = pc()
            tup = await saver.aget_tuple(q)
            t3 = pc()
            d_put.append(t1 - t0)
            d_pw.append(t2 - t1)
            d_get.append(t3 - t2)
            _check(tup, st.checkpoint["id"], lat)
            try:
                st = gen.send(cfg)
            except StopIteration:
                break


def _split(n: int, k: int) -> list[range]:
    return [range(i, n, k) for i in range(k)]


def _summarize(lats: list[Lat], wall: float, n_threads: int, n_steps: int) -> dict[str, Any]:
    out: dict[str, Any] = {"wall_s": wall, "threads": n_threads, "steps": n_threads * n_steps}
    total = 0
    for c in CALLS:
        xs = [x for lat in lats for x in lat.d[c]]
        total += len(xs)
        out[c] = {
            "n": len(xs),
            "p50_ms": percentile(xs, 50) * 1e3,
            "p99_ms": percentile(xs, 99) * 1e3,
            "mean_ms": (sum(xs) / len(xs) * 1e3) if xs else None,
        }
    out["steps_per_s"] = n_threads * n_steps / wall
    out["calls_per_s"] = total / wall
    out["bad_reads"] = sum(lat.bad for lat in lats)
    return out


def run_mode(args: argparse.Namespace, saver_name: str, mode: str, target: str | None) -> dict[str, Any]:
    kind, workers = mode.split("-")
    workers = int(workers)
    n, s = args.threads, args.steps
    prefix = f"{mode}"
    lats = [Lat() for _ in range(workers)]
    parts = _split(n, workers)
    if kind == "sync":
        if workers == 1:
            cm = open_sync(saver_name, target)
        elif backend(saver_name) == "pg":
            cm = open_sync_pool(saver_name, target, workers)
        else:  # sqlite / memory: N threads share one saver
            cm = open_sync(saver_name, target)
        with cm as saver:
            # warm-up thread (not timed)
            sync_threads(saver, "warm", range(n, n + 2), s, Lat())
            t0 = time.perf_counter()
            if workers == 1:
                sync_threads(saver, prefix, parts[0], s, lats[0])
            else:
                with ThreadPoolExecutor(workers) as ex:
                    futs = [ex.submit(sync_threads, saver, prefix, parts[w], s, lats[w]) for w in range(workers)]
                    for f in futs:
                        f.result()
            wall = time.perf_counter() - t0
    else:

        async def go() -> float:
            if workers == 1:
                cm = open_async(saver_name, target)
            else:
                cm = open_async_pool(saver_name, target, workers)
            async with cm as saver:
                await async_threads(saver, "warm", range(n, n + 2), s, Lat())
                t0 = time.perf_counter()
                await asyncio.gather(*(async_threads(saver, prefix, parts[w], s, lats[w]) for w in range(workers)))
                return time.perf_counter() - t0

        wall = asyncio.run(go())
    return _summarize(lats, wall, n, s)


def _one_mode_run(args: argparse.Namespace, s: str, mode: str, rnd: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    label = f" round {rnd + 1}/{args.rounds}" if args.rounds > 1 else ""
    print(f"[{time.strftime('%H:%M:%S')}] {mode} {s}{label} ({args.threads} threads x {args.steps} steps) ...",
          flush=True)
    try:
        with scratch_target(args, s, mode.replace("-", "")) as target:
            r = run_mode(args, s, mode, target)
            r["bytes"] = measure_size(s, target)
    except Exception as e:  # noqa: BLE001
        r = {"error": f"{type(e).__name__}: {e}"}
        print(f"    ERROR {r['error']}", flush=True)
    r.update(saver=s, mode=mode, driver_wall_s=time.perf_counter() - t0)
    if "error" not in r:
        print(f"    {r['steps_per_s']:.0f} steps/s, put p50 {r['put']['p50_ms']:.2f} ms, "
              f"{r['driver_wall_s']:.1f}s", flush=True)
    return r


def merge_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One result per (mode, saver): the median over rounds of throughput and of
    each percentile; every round's steps/s is kept in ``round_steps_per_s``."""
    if len(rounds) == 1 or any("error" in r for r in rounds):
        out = dict(next((r for r in rounds if "error" in r), rounds[0]))
        if "error" not in out:
            out["round_steps_per_s"] = [out["steps_per_s"]]
        return out
    med = common.median
    out = dict(rounds[0])
    for key in ("steps_per_s", "calls_per_s", "wall_s"):
        out[key] = med([r[key] for r in rounds])
    for c in CALLS:
        out[c] = {k: med([r[c][k] for r in rounds]) for k in rounds[0][c] if k != "n"}
        out[c]["n"] = sum(r[c]["n"] for r in rounds)
    out["bad_reads"] = sum(r["bad_reads"] for r in rounds)
    out["driver_wall_s"] = sum(r["driver_wall_s"] for r in rounds)
    out["round_steps_per_s"] = [r["steps_per_s"] for r in rounds]
    return out


@contextlib.contextmanager
def scratch_target(args: argparse.Namespace, saver: str, tag: str) -> Any:
    be = backend(saver)
    if be == "pg":
        with ScratchDB(args.pg_url, f"st_{tag}_{saver}") as db:
            yield db.url
    elif be == "sqlite":
        with tempfile.TemporaryDirectory(prefix=f"bench_st_{saver}_") as d:
            yield str(Path(d) / "checkpoints.sqlite")
    else:
        yield None


def measure_size(saver: str, target: str | None) -> int | None:
    be = backend(saver)
    try:
        if be == "pg":
            return sum(common.saver_tables(common.pg_table_sizes(target), family(saver)).values())
        if be == "sqlite":
            return common.sqlite_measure(target)["bytes_asis"]
    except Exception:  # noqa: BLE001
        return None
    return None


# ====================================================================== floor


def measure_floors(args: argparse.Namespace, savers: list[str]) -> dict[str, dict[str, float]]:
    """What the databases alone cost per step (see bench/floor.py), in this run."""
    out: dict[str, dict[str, float]] = {}
    if any(backend(s) == "pg" for s in savers):
        with ScratchDB(args.pg_url, "st_floor") as db:
            out["pg"] = floor.postgres_floor(db.url)
    if any(backend(s) == "sqlite" for s in savers):
        with tempfile.TemporaryDirectory(prefix="bench_st_floor_") as d:
            out["sqlite"] = floor.sqlite_floor(d, "NORMAL")
            out["sqlite-full"] = floor.sqlite_floor(d, "FULL")
    return out


def print_floor_table(floors: dict[str, dict[str, float]], calls: list[dict[str, Any]]) -> str:
    """Floor steps/s per backend, and single-connection savers against it."""
    sync1 = {r["saver"]: r["steps_per_s"] for r in calls if r.get("mode") == "sync-1" and "error" not in r}
    rows = []
    for name, f in floors.items():
        fl = f["floor_steps_per_s"]
        be = name.split("-")[0]
        row = [name, fmt_num(f["commit_ms"], 3), fmt_num(f["read_ms"], 3), fmt_num(fl, 0)]
        for saver in (f"ours-{be}", f"lg-{be}"):
            row.append(fmt_ratio(ratio(sync1.get(saver), fl)))
        row.append(fmt_ratio(ratio(fl, sync1.get(f"lg-{be}"))))
        rows.append(row)
    return print_table(
        ["floor", "commit ms", "read ms", "floor steps/s", "ours sync-1/floor", "incumbent sync-1/floor",
         "floor/incumbent"],
        rows,
        title="floor: 2 durable commits + 1 read per step on the same database (bench/floor.py); "
              "floor/incumbent = the most any saver could gain over the incumbent here",
    )


# ====================================================================== part 2


def populate(saver: Any, n_threads: int, per_thread: int) -> None:
    for i in range(n_threads):
        tid = thread_id("pop", i)
        gen = steps(saver, tid, i, per_thread)
        st = next(gen)
        while True:
            cfg = saver.put(st.config, st.checkpoint, st.metadata, st.new_versions)
            try:
                st = gen.send(cfg)
            except StopIteration:
                break


def _populate_pg_parallel(saver_name: str, url: str, n_threads: int, per_thread: int, workers: int) -> None:
    """Populate with ``workers`` threads through a pool (each uses put)."""
    with open_sync_pool(saver_name, url, workers) as saver:
        with ThreadPoolExecutor(workers) as ex:
            futs = []
            for w in range(workers):
                idx = range(w, n_threads, workers)
                futs.append(ex.submit(_populate_indices, saver, idx, per_thread))
            for f in futs:
                f.result()


def _populate_indices(saver: Any, indices: range, per_thread: int) -> None:
    for i in indices:
        tid = thread_id("pop", i)
        gen = steps(saver, tid, i, per_thread)
        st = next(gen)
        while True:
            cfg = saver.put(st.config, st.checkpoint, st.metadata, st.new_versions)
            try:
                st = gen.send(cfg)
            except StopIteration:
                break


def _distinct_threads(saver_name: str, saver: Any) -> tuple[str, Any]:
    """How to list thread ids for this saver: (label, zero-arg callable) or (note, None)."""
    if saver_name.startswith("ours-"):
        label = "saver.threads()"
        fn = getattr(saver, "threads", None)
        if fn is None:
            fn = getattr(saver, "list_threads", None)
            label = "saver.list_threads()"
        if fn is None:
            return "saver.threads() not implemented", None

        def call() -> int:
            r = fn()
            if inspect.isawaitable(r):
                raise RuntimeError("threads() returned an awaitable on a sync saver")
            return len(list(r))

        return label, call
    if saver_name == "lg-pg":

        def call() -> int:
            with saver._cursor() as cur:  # the incumbent's own connection handling
                cur.execute("SELECT DISTINCT thread_id FROM checkpoints")
                return len(cur.fetchall())

        return "SELECT DISTINCT thread_id FROM checkpoints", call
    if saver_name == "lg-sqlite":

        def call() -> int:
            with saver.cursor(transaction=False) as cur:
                cur.execute("SELECT DISTINCT thread_id FROM checkpoints")
                return len(cur.fetchall())

        return "SELECT DISTINCT thread_id FROM checkpoints", call
    if saver_name == "memory":
        return "storage keys", lambda: len(list(saver.storage.keys()))
    return "n/a", None


def listing(args: argparse.Namespace, saver_name: str, target: str | None) -> dict[str, Any]:
    n, k = args.list_threads, args.list_checkpoints // max(1, args.list_threads)
    out: dict[str, Any] = {"threads": n, "checkpoints_per_thread": k, "checkpoints": n * k}
    t0 = time.perf_counter()
    if backend(saver_name) == "pg" and args.populate_workers > 1:
        _populate_pg_parallel(saver_name, target, n, k, args.populate_workers)
        how = f"put() from {args.populate_workers} threads through a pool"
    else:
        with open_sync(saver_name, target) as saver:
            populate(saver, n, k)
        how = "put() in a loop, one connection"
    out["populate_s"] = time.perf_counter() - t0
    out["populate_how"] = how
    if backend(saver_name) == "pg":
        import psycopg

        with psycopg.connect(target, autocommit=True) as c:
            # Fresh statistics, visibility map and hint bits for both savers alike:
            # otherwise autovacuum may start on the new tables in the middle of the
            # timed queries (one run measured 32 ms instead of ~4 for the same query).
            c.execute("VACUUM ANALYZE")
    out["bytes"] = measure_size(saver_name, target)

    user = user_of(42)
    probe_tid = thread_id("pop", 42)
    queries = {
        "filter_limit10": lambda s: list(s.list(None, filter={"source": "loop", "user": user}, limit=10)),
        "filter_limit100": lambda s: list(s.list(None, filter={"source": "loop", "user": user}, limit=100)),
        "thread_all": lambda s: list(s.list({"configurable": {"thread_id": probe_tid}})),
        "thread_limit1": lambda s: list(s.list({"configurable": {"thread_id": probe_tid}}, limit=1)),
    }
    with open_sync(saver_name, target) as saver:
        for name, q in queries.items():
            times, cnt = [], None
            q(saver)  # warm
            for _ in range(args.list_repeats):
                t0 = time.perf_counter()
                res = q(saver)
                times.append(time.perf_counter() - t0)
                cnt = len(res)
            out[name] = {"median_ms": common.median(times) * 1e3, "min_ms": min(times) * 1e3, "rows": cnt}
        label, call = _distinct_threads(saver_name, saver)
        if call is None:
            out["threads_list"] = {"note": label}
        else:
            times, cnt = [], None
            try:
                call()
                for _ in range(args.list_repeats):
                    t0 = time.perf_counter()
                    cnt = call()
                    times.append(time.perf_counter() - t0)
                out["threads_list"] = {"how": label, "median_ms": common.median(times) * 1e3,
                                       "min_ms": min(times) * 1e3, "rows": cnt}
            except Exception as e:  # noqa: BLE001
                out["threads_list"] = {"how": label, "note": f"failed: {type(e).__name__}: {e}"}
    return out


# ====================================================================== driver


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.short_threads", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--savers", help=f"comma list of {','.join(SAVERS)} (default: {','.join(DEFAULT_SAVERS)})")
    p.add_argument("--modes", help=f"comma list of {','.join(MODES)} (default: all)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads per (mode, saver) (default 500; --full 2000; --quick 100)")
    p.add_argument("--steps", type=int, default=6, help="supersteps per thread (default 6)")
    p.add_argument("--list-threads", type=int, default=None,
                   help="threads to populate for listing (default 2000; --full 10000; --quick 500)")
    p.add_argument("--list-checkpoints", type=int, default=None,
                   help="checkpoints to populate (default 20000; --full 100000; --quick 5000)")
    p.add_argument("--list-repeats", type=int, default=5)
    p.add_argument("--populate-workers", type=int, default=4, help="Postgres populate threads (1 = single connection)")
    p.add_argument("--rounds", type=int, default=None,
                   help="part 1: run each (mode, saver) this many times, alternating the savers' order; "
                        "report medians and the range of per-round ratios (default 1; --full 3)")
    p.add_argument("--no-listing", action="store_true", help="skip part 2")
    p.add_argument("--no-calls", action="store_true", help="skip part 1")
    p.add_argument("--quick", action="store_true", help="smoke run with small sizes")
    p.add_argument("--full", action="store_true",
                   help="the issue's sizes: 2000 threads per mode, listing 10000 threads / 100000 checkpoints "
                        "(about 45-60 min on 2 cores)")
    p.add_argument("--pg-url", default=common.DEFAULT_PG_URL)
    p.add_argument("--out", default="short_threads",
                   help="results name (bench/results/<out>.json) or a path (<out>.json)")
    args = p.parse_args(argv)
    size = "quick" if args.quick else "full" if args.full else "default"
    if args.threads is None:
        args.threads = {"quick": 100, "default": 500, "full": 2000}[size]
    if args.rounds is None:
        args.rounds = 3 if size == "full" else 1
    if args.list_threads is None:
        args.list_threads = {"quick": 500, "default": 2000, "full": 10000}[size]
    if args.list_checkpoints is None:
        args.list_checkpoints = {"quick": 5000, "default": 20000, "full": 100000}[size]

    t_run = time.perf_counter()
    notes: list[str] = []
    savers = []
    for s in common.parse_savers(args.savers, SAVERS, DEFAULT_SAVERS):
        ok, why = common.saver_available(s)
        if ok:
            savers.append(s)
        else:
            notes.append(f"skipped {s}: {why}")
    modes = common.parse_savers(args.modes, MODES, MODES)
    if any(backend(s) == "pg" for s in savers):
        err = common.check_postgres(args.pg_url)
        if err:
            raise SystemExit(f"Postgres not reachable at {args.pg_url}: {err}")
    for n_ in notes:
        print("note:", n_, flush=True)
    data: dict[str, Any] = {"benchmark": "short_threads", "meta": common.run_meta(args), "notes": notes}

    # ---- part 1
    calls: list[dict[str, Any]] = []
    floors: dict[str, dict[str, float]] = {}
    if not args.no_calls:
        floors = data["floor"] = measure_floors(args, savers)
        for mode in modes:
            applicable = [s for s in savers if mode_applies(mode, s)]
            per_round: dict[str, list[dict[str, Any]]] = {s: [] for s in applicable}
            for rnd in range(args.rounds):
                # alternate the order, so neither saver always runs on a warmer machine
                for s in applicable if rnd % 2 == 0 else applicable[::-1]:
                    per_round[s].append(_one_mode_run(args, s, mode, rnd))
            for s in applicable:
                calls.append(merge_rounds(per_round[s]))
                data["calls"] = calls
                common.write_results(args.out, data)

    # ---- part 2
    lists: list[dict[str, Any]] = []
    if not args.no_listing:
        for s in savers:
            t0 = time.perf_counter()
            print(f"[{time.strftime('%H:%M:%S')}] listing {s} (populate {args.list_threads} threads / "
                  f"{args.list_checkpoints} checkpoints) ...", flush=True)
            try:
                with scratch_target(args, s, "list") as target:
                    r = listing(args, s, target)
            except Exception as e:  # noqa: BLE001
                r = {"error": f"{type(e).__name__}: {e}"}
                print(f"    ERROR {r['error']}", flush=True)
            r.update(saver=s, driver_wall_s=time.perf_counter() - t0)
            if "error" not in r:
                print(f"    populated in {r['populate_s']:.1f}s; filter_limit10 {r['filter_limit10']['median_ms']:.1f} ms",
                      flush=True)
            lists.append(r)
            data["listing"] = lists
            common.write_results(args.out, data)

    # ---- report
    tables = []
    print()
    if calls:
        rows = []
        for r in calls:
            if "error" in r:
                rows.append([r["mode"], r["saver"], "ERROR: " + r["error"][:80]] + [""] * 8)
                continue
            rows.append([
                r["mode"], r["saver"], fmt_num(r["steps_per_s"], 0), fmt_num(r["calls_per_s"], 0),
                *[f"{fmt_num(r[c]['p50_ms'], 3)}/{fmt_num(r[c]['p99_ms'], 2)}" for c in CALLS],
                fmt_bytes(r.get("bytes")), r["bad_reads"], f"{r['wall_s']:.1f}",
            ])
        tables.append(print_table(
            ["mode", "saver", "steps/s", "calls/s", "put p50/p99 ms", "put_writes p50/p99", "get_tuple p50/p99",
             "bytes", "bad", "wall s"],
            rows, title=f"short_threads: {args.threads} threads x {args.steps} steps, each step put + put_writes(2) + get_tuple"))
        print("mode: sync-1 = one connection; sync-8 = 8 threads (Postgres: ConnectionPool(max_size=8); "
              "SQLite: one shared saver); async-1; async-8 = 8 tasks on AsyncConnectionPool(max_size=8).")
        if floors:
            print()
            tables.append(print_floor_table(floors, calls))
            print("sqlite = WAL + synchronous=NORMAL (checkpoint_pg's setting); sqlite-full = WAL + FULL "
                  "(SQLite's default, kept by langgraph-checkpoint-sqlite).")
    if lists:
        print()
        rows = []
        for r in lists:
            if "error" in r:
                rows.append([r["saver"], "ERROR: " + r["error"][:80]] + [""] * 7)
                continue
            tl = r.get("threads_list", {})
            rows.append([
                r["saver"], f"{r['threads']}x{r['checkpoints_per_thread']}", f"{r['populate_s']:.0f}",
                fmt_bytes(r.get("bytes")),
                *[f"{fmt_num(r[q]['median_ms'])} ({r[q]['rows']})" for q in
                  ("filter_limit10", "filter_limit100", "thread_all", "thread_limit1")],
                f"{fmt_num(tl['median_ms'])} ({tl['rows']})" if "median_ms" in tl else tl.get("note", "-"),
            ])
        tables.append(print_table(
            ["saver", "threads x ckpts", "populate s", "bytes", "filter lim10 ms (rows)", "filter lim100 ms",
             "thread list ms", "thread lim1 ms", "list threads ms"],
            rows, title="listing (median ms; rows returned in parentheses)"))
        print('filter = list(None, filter={"source": "loop", "user": "u42"}, limit=...); thread = list({thread_id}) '
              "all / limit=1; list threads = incumbent SELECT DISTINCT thread_id, ours saver.threads().")

    ratios = compute_ratios(calls, lists)
    if ratios:
        tables.extend(print_ratio_tables(ratios))
    total = time.perf_counter() - t_run
    data.update(calls=calls, floor=floors, listing=lists, ratios=ratios, total_wall_s=total, notes=notes, tables=tables)
    path = common.write_results(args.out, data)
    print(f"\nwrote {common.shown(path)}; total wall time {total:.0f}s")
    for n_ in notes:
        print("note:", n_)
    return 0


LIST_QUERIES = ("filter_limit10", "filter_limit100", "thread_all", "thread_limit1")


def compute_ratios(calls: list[dict[str, Any]], lists: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat list of ours/incumbent ratios (kind, pair, mode/query, metric, value)."""
    out = []
    cb = {(r["saver"], r["mode"]): r for r in calls if "error" not in r}
    for ours, inc in PAIRS:
        pair = f"{ours}/{inc}"
        for mode in MODES:
            a, b = cb.get((ours, mode)), cb.get((inc, mode))
            if not a or not b:
                continue
            per_round = [ratio(x, y) for x, y in zip(a.get("round_steps_per_s", []), b.get("round_steps_per_s", []))]
            out.append({"kind": "calls", "pair": pair, "mode": mode, "metric": "steps/s",
                        "value": ratio(a["steps_per_s"], b["steps_per_s"]),
                        "rounds": [x for x in per_round if x is not None]})
            for c in CALLS:
                for q in ("p50", "p99"):
                    out.append({"kind": "calls", "pair": pair, "mode": mode, "metric": f"{c} {q}",
                                "value": ratio(a[c][f"{q}_ms"], b[c][f"{q}_ms"])})
    lb = {r["saver"]: r for r in lists if "error" not in r}
    for ours, inc in PAIRS:
        a, b = lb.get(ours), lb.get(inc)
        if not a or not b:
            continue
        pair = f"{ours}/{inc}"
        for q in LIST_QUERIES:
            out.append({"kind": "listing", "pair": pair, "metric": q,
                        "value": ratio(a[q]["median_ms"], b[q]["median_ms"])})
        ta, tb = a.get("threads_list", {}), b.get("threads_list", {})
        out.append({"kind": "listing", "pair": pair, "metric": "list threads",
                    "value": ratio(ta.get("median_ms"), tb.get("median_ms"))})
        out.append({"kind": "listing", "pair": pair, "metric": "bytes", "value": ratio(a.get("bytes"), b.get("bytes"))})
    return [x for x in out if x["value"] is not None]


def print_ratio_tables(ratios: list[dict[str, Any]]) -> list[str]:
    tables = []
    cols = ["steps/s"] + [f"{c} {q}" for c in CALLS for q in ("p50", "p99")]
    rows = []
    seen = []
    for x in ratios:
        if x["kind"] == "calls" and (x["pair"], x["mode"]) not in seen:
            seen.append((x["pair"], x["mode"]))
    for pair, mode in seen:
        mine = [x for x in ratios if x["kind"] == "calls" and x["pair"] == pair and x["mode"] == mode]
        vals = {x["metric"]: x["value"] for x in mine}
        rounds = next((x.get("rounds") or [] for x in mine if x["metric"] == "steps/s"), [])
        spread = f"{fmt_ratio(min(rounds))}-{fmt_ratio(max(rounds))}" if len(rounds) > 1 else "-"
        rows.append([pair, mode] + [fmt_ratio(vals.get(c)) for c in cols[:1]] + [spread]
                    + [fmt_ratio(vals.get(c)) for c in cols[1:]])
    if rows:
        print()
        tables.append(print_table(["ours/incumbent", "mode", cols[0], "steps/s rounds"] + cols[1:], rows,
                                  title="call ratios ours/incumbent: steps/s > 1 = ours faster; latency < 1 = ours faster"))
    lcols = list(LIST_QUERIES) + ["list threads", "bytes"]
    rows = []
    for pair in dict.fromkeys(x["pair"] for x in ratios if x["kind"] == "listing"):
        vals = {x["metric"]: x["value"] for x in ratios if x["kind"] == "listing" and x["pair"] == pair}
        rows.append([pair] + [fmt_ratio(vals.get(c)) for c in lcols])
    if rows:
        print()
        tables.append(print_table(["ours/incumbent"] + lcols, rows,
                                  title="listing ratios ours/incumbent (median latency; < 1 = ours faster)"))
    return tables


if __name__ == "__main__":
    sys.exit(main())
