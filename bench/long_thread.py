"""Long-thread benchmark ("store every message once").

One thread of a scripted tool-calling agent (bench/agent.py) run for N turns
against each saver. Each (saver, turns) pair runs in its own subprocess with
its own scratch Postgres database / SQLite directory, so bytes and peak RSS
are per saver.

    python -m bench.long_thread                       # default: 50,200,1000 turns
    python -m bench.long_thread --savers ours-pg,lg-pg --turns 50
    python -m bench.long_thread --quick               # smoke run
    python -m bench.long_thread --shape subgraph      # the agent as a subgraph node

Results: a table on stdout and bench/results/long_thread.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import common
from bench.common import (
    ScratchDB,
    fmt_bytes,
    fmt_num,
    fmt_ratio,
    mean,
    print_table,
    ratio,
)
from bench.savers import ALL, backend, family

INCUMBENTS = ("lg-pg", "lg-sqlite")
DEFAULT_SAVERS = ALL
INCUMBENT_MAX_TURNS = 200


# ====================================================================== worker


def _memory_saver_bytes(saver: Any) -> int:
    """Serialized bytes an InMemorySaver holds (checkpoints + blobs + writes)."""
    total = 0

    def add(v: Any) -> None:
        nonlocal total
        if isinstance(v, (bytes, bytearray, memoryview)):
            total += len(v)
        elif isinstance(v, str):
            total += len(v.encode())
        elif isinstance(v, (tuple, list)):
            for x in v:
                add(x)
        elif isinstance(v, dict):
            for x in v.values():
                add(x)

    add(saver.storage)
    add(saver.writes)
    add(saver.blobs)
    return total


def _turn_stats(per_turn: list[float]) -> dict[str, Any]:
    k = max(1, len(per_turn) // 10)
    return {
        "ms_per_turn": mean(per_turn) * 1e3,
        "ms_per_turn_first10pct": mean(per_turn[:k]) * 1e3,
        "ms_per_turn_last10pct": mean(per_turn[-k:]) * 1e3,
        "ms_per_turn_p50": common.median(per_turn) * 1e3,
        "turns_total_s": sum(per_turn),
    }


def _start_history_watchdog(args: argparse.Namespace, res: dict[str, Any], rss0: int, t_start: float) -> None:
    if not args.rss_limit_gb:
        return
    import threading

    limit = args.rss_limit_gb * (1 << 30)
    t_hist = time.perf_counter()

    def watch() -> None:
        while True:
            time.sleep(0.05)
            rss = common.current_rss_bytes() or 0
            if rss > limit:
                out = dict(res)
                out["history_aborted"] = (
                    f"history walk aborted: RSS passed {args.rss_limit_gb} GB after "
                    f"{time.perf_counter() - t_hist:.0f}s"
                )
                out["rss_growth_peak"] = common.maxrss_bytes() - rss0
                out["worker_wall_s"] = time.perf_counter() - t_start
                Path(args.result_file).write_text(json.dumps(out))
                os._exit(0)

    threading.Thread(target=watch, daemon=True, name="rss-watchdog").start()


def worker(args: argparse.Namespace) -> int:
    """Run one saver for N turns in this process; write a JSON result file."""
    import gc

    if args.as_limit_gb:
        import resource

        lim = int(args.as_limit_gb * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))

    from bench import agent
    from bench.agent import MESSAGES_PER_TURN, answer, turn_input
    from bench.savers import open_sync

    res: dict[str, Any] = {"saver": args.saver, "turns": args.turns, "shape": args.shape}
    thread = {"configurable": {"thread_id": "long-thread-1"}}
    invoke_kw: dict[str, Any] = {}
    if args.durability != "default":
        invoke_kw["durability"] = args.durability

    t_start = time.perf_counter()
    if args.shape == "subgraph":
        build_graph, CHECKPOINTS_PER_TURN = agent.build_subgraph_graph, agent.SUBGRAPH_CHECKPOINTS_PER_TURN
    else:
        build_graph, CHECKPOINTS_PER_TURN = agent.build_graph, agent.CHECKPOINTS_PER_TURN
    with open_sync(args.saver, args.target) as saver:
        graph = build_graph(saver)
        # warm up imports/serializers on a throwaway thread (not counted)
        graph.invoke(turn_input(10**6), {"configurable": {"thread_id": "warmup"}}, **invoke_kw)
        if hasattr(saver, "delete_thread"):
            try:
                saver.delete_thread("warmup")
            except NotImplementedError:
                pass
        gc.collect()
        rss0 = common.maxrss_bytes()
        cur0 = common.current_rss_bytes()

        per_turn: list[float] = []
        stopped = None  # why the turns loop ended early, if it did
        t_loop = time.perf_counter()
        for t in range(args.turns):
            inp = turn_input(t)
            t0 = time.perf_counter()
            try:
                graph.invoke(inp, thread, **invoke_kw)
            except MemoryError:
                stopped = f"MemoryError in turn {t + 1} (address-space limit {args.as_limit_gb} GB)"
                break
            per_turn.append(time.perf_counter() - t0)
            if t + 1 < args.turns:
                if args.turns_budget_s and time.perf_counter() - t_loop > args.turns_budget_s:
                    stopped = f"turn time budget {args.turns_budget_s:.0f}s reached after {t + 1} turns"
                    break
                rss = common.current_rss_bytes()
                if args.rss_limit_gb and rss and rss > args.rss_limit_gb * (1 << 30):
                    stopped = f"RSS soft limit {args.rss_limit_gb} GB reached after {t + 1} turns"
                    break
        turns_done = len(per_turn)
        rss_turns = common.maxrss_bytes()
        if stopped:
            gc.collect()
            res["stopped"] = stopped
            if stopped.startswith("MemoryError"):
                # the saver may be half-written; report what the turns measured
                if args.saver == "memory":
                    b = _memory_saver_bytes(saver)
                    res["size"] = {"bytes_asis": b, "bytes_vacuum": b, "how": "serialized bytes held"}
                res.update(
                    ok=False, turns_done=turns_done, messages=None, checkpoints=None,
                    **_turn_stats(per_turn), get_state_ms=None, get_state_n=0, history_ms=None,
                    history_mode=args.history_mode, history_partial=None,
                    expected_checkpoints=CHECKPOINTS_PER_TURN * args.turns,
                    rss_baseline=rss0, rss_current_baseline=cur0,
                    rss_growth_turns=rss_turns - rss0, rss_growth_peak=rss_turns - rss0,
                    worker_wall_s=time.perf_counter() - t_start, durability=args.durability,
                )
                Path(args.result_file).write_text(json.dumps(res))
                return 0

        # get_state latency on the final thread
        gs: list[float] = []
        state = None
        for _ in range(args.get_state_n):
            t0 = time.perf_counter()
            state = graph.get_state(thread)
            gs.append(time.perf_counter() - t0)
        msgs = state.values["messages"] if state is not None else []
        ok = (
            turns_done > 0
            and len(msgs) == MESSAGES_PER_TURN * turns_done
            and msgs[-1].content == answer(turns_done - 1)
        )
        n_messages = len(msgs)
        del state, msgs
        gc.collect()

        # full history: list(graph.get_state_history(config)), built by hand so
        # a time budget can stop it (quadratic for savers that copy the list).
        # LangGraph itself materializes list(checkpointer.list(...)) before
        # yielding, so memory cannot be bounded by iterating: a watchdog ends
        # the worker (after saving what was measured) once RSS passes the limit.
        res.update(
            ok=ok, turns_done=turns_done, messages=n_messages, checkpoints=None, **_turn_stats(per_turn),
            get_state_ms=mean(gs) * 1e3, get_state_n=len(gs), history_ms=None,
            history_mode=args.history_mode, history_partial=None,
            expected_checkpoints=CHECKPOINTS_PER_TURN * args.turns,
            rss_baseline=rss0, rss_current_baseline=cur0, rss_growth_turns=rss_turns - rss0,
            durability=args.durability,
        )
        if args.saver == "memory":
            b = _memory_saver_bytes(saver)
            res["size"] = {"bytes_asis": b, "bytes_vacuum": b, "how": "serialized bytes held"}
        _start_history_watchdog(args, res, rss0, t_start)
        hist_times: list[float] = []
        n_ckpt = None
        partial = None
        for _ in range(args.history_repeats):
            keep: list[Any] = []
            n = 0
            t0 = time.perf_counter()
            for snap in graph.get_state_history(thread):
                n += 1
                if args.history_mode == "list":
                    keep.append(snap)
                del snap
                if args.history_budget_s and time.perf_counter() - t0 > args.history_budget_s:
                    partial = {"seconds": time.perf_counter() - t0, "snapshots": n}
                    break
            dt = time.perf_counter() - t0
            del keep
            gc.collect()
            if partial:
                break
            n_ckpt = n
            hist_times.append(dt)
        rss_end = common.maxrss_bytes()

        if args.saver == "memory":
            b = _memory_saver_bytes(saver)
            res["size"] = {"bytes_asis": b, "bytes_vacuum": b, "how": "serialized bytes held"}

    res.update(
        ok=ok,
        turns_done=turns_done,
        messages=n_messages,
        checkpoints=n_ckpt,
        **_turn_stats(per_turn),
        get_state_ms=mean(gs) * 1e3,
        get_state_n=len(gs),
        history_ms=min(hist_times) * 1e3 if hist_times else None,
        history_mode=args.history_mode,
        history_partial=partial,
        expected_checkpoints=CHECKPOINTS_PER_TURN * args.turns,
        rss_baseline=rss0,
        rss_current_baseline=cur0,
        rss_growth_turns=rss_turns - rss0,
        rss_growth_peak=rss_end - rss0,
        worker_wall_s=time.perf_counter() - t_start,
        durability=args.durability,
    )
    Path(args.result_file).write_text(json.dumps(res))
    return 0


# ====================================================================== driver


def run_one(args: argparse.Namespace, saver: str, turns: int) -> dict[str, Any]:
    """Run one (saver, turns) in a subprocess and measure its storage."""
    be = backend(saver)
    scratch: ScratchDB | None = None
    tmpdir: tempfile.TemporaryDirectory[str] | None = None
    target = None
    if be == "pg":
        scratch = ScratchDB(args.pg_url, f"lt_{saver}_{turns}").__enter__()
        target = scratch.url
    elif be == "sqlite":
        tmpdir = tempfile.TemporaryDirectory(prefix=f"bench_lt_{saver}_")
        target = str(Path(tmpdir.name) / "checkpoints.sqlite")
    history_mode = args.history_mode
    if history_mode == "auto":
        history_mode = "list" if turns <= args.history_list_max_turns else "iter"
    try:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            result_file = f.name
        cmd = [
            sys.executable, "-m", "bench.long_thread", "--worker",
            "--saver", saver, "--turns", str(turns), "--result-file", result_file,
            "--get-state-n", str(args.get_state_n),
            "--history-repeats", str(args.history_repeats),
            "--history-mode", history_mode,
            "--history-budget-s", str(args.history_budget_s),
            "--turns-budget-s", str(args.turns_budget_s),
            "--durability", args.durability,
            "--shape", args.shape,
            "--as-limit-gb", str(args.as_limit_gb),
            "--rss-limit-gb", str(args.rss_limit_gb),
        ]
        if target:
            cmd += ["--target", target]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd, cwd=str(common.REPO), env=common.subprocess_env(),
                capture_output=True, text=True, timeout=args.timeout,
            )
        except subprocess.TimeoutExpired:
            return {"saver": saver, "turns": turns, "error": f"timeout after {args.timeout}s"}
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            err = (proc.stderr or proc.stdout).strip().splitlines()
            return {"saver": saver, "turns": turns, "error": " | ".join(err[-6:]) or f"exit {proc.returncode}"}
        res = json.loads(Path(result_file).read_text())
        res["subprocess_wall_s"] = wall
        if be == "pg":
            res["size"] = common.pg_measure(scratch.url, family(saver))
            res["size"]["how"] = (
                "sum pg_total_relation_size of the saver's tables; asis = right after the run, "
                "vacuum = after plain VACUUM"
            )
        elif be == "sqlite":
            res["size"] = common.sqlite_measure(target)
            res["size"]["how"] = (
                "db file (+wal) after PRAGMA wal_checkpoint(TRUNCATE); vacuum = after VACUUM"
            )
        return res
    finally:
        try:
            os.unlink(result_file)
        except Exception:  # noqa: BLE001
            pass
        if scratch is not None:
            scratch.drop()
        if tmpdir is not None:
            tmpdir.cleanup()


def _row(r: dict[str, Any]) -> list[Any]:
    if "error" in r:
        return [r["saver"], r["turns"], "ERROR: " + r["error"][:90]] + [""] * 9
    size = r.get("size") or {}
    return [
        r["saver"],
        r["turns"] if r.get("turns_done", r["turns"]) == r["turns"] else f"{r['turns']} (stopped at {r['turns_done']})",
        r.get("checkpoints"),
        fmt_bytes(size.get("bytes_asis")),
        fmt_bytes(size.get("bytes_vacuum")),
        fmt_num(r["ms_per_turn"]),
        fmt_num(r["ms_per_turn_last10pct"]),
        fmt_num(r["get_state_ms"]),
        _hist_cell(r),
        fmt_bytes(r["rss_growth_turns"]),
        fmt_bytes(r["rss_growth_peak"]),
        "yes" if r.get("ok") else "NO",
    ]


def _hist_cell(r: dict[str, Any]) -> str:
    star = "*" if r.get("history_mode") == "iter" else ""
    if r.get("history_aborted"):
        return "aborted (RSS limit)"
    if r.get("history_partial"):
        pt = r["history_partial"]
        return f">{pt['seconds']:.0f}s ({pt['snapshots']}/{r.get('expected_checkpoints')}){star}"
    return fmt_num(r["history_ms"]) + star


HEADERS = [
    "saver", "turns", "ckpts", "bytes(as-is)", "bytes(VACUUM)", "ms/turn",
    "ms/turn last10%", "get_state ms", "history ms", "RSS+ turns", "RSS+ peak", "ok",
]


def compute_ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # partial runs (stopped early) are not comparable: left out of ratios
    by = {(r["saver"], r["turns"]): r for r in results if "error" not in r and not r.get("stopped")}

    def g(s: str, t: int, *path: str) -> Any:
        r = by.get((s, t))
        for p in path:
            if r is None:
                return None
            r = r.get(p)
        return r

    out = []
    for t in sorted({r["turns"] for r in results}):
        rows = {
            "ours-pg bytes / lg-pg bytes (as-is)": ratio(g("ours-pg", t, "size", "bytes_asis"), g("lg-pg", t, "size", "bytes_asis")),
            "ours-pg bytes / lg-pg bytes (VACUUM)": ratio(g("ours-pg", t, "size", "bytes_vacuum"), g("lg-pg", t, "size", "bytes_vacuum")),
            "ours-sqlite bytes / lg-sqlite bytes": ratio(g("ours-sqlite", t, "size", "bytes_asis"), g("lg-sqlite", t, "size", "bytes_asis")),
            "ours-sqlite bytes / lg-sqlite bytes (VACUUM)": ratio(g("ours-sqlite", t, "size", "bytes_vacuum"), g("lg-sqlite", t, "size", "bytes_vacuum")),
        }
        for ours in ("ours-pg", "ours-sqlite"):
            rows[f"{ours} ms/turn / lg-pg ms/turn"] = ratio(g(ours, t, "ms_per_turn"), g("lg-pg", t, "ms_per_turn"))
            rows[f"{ours} ms/turn / lg-sqlite ms/turn"] = ratio(g(ours, t, "ms_per_turn"), g("lg-sqlite", t, "ms_per_turn"))
            rows[f"{ours} ms/turn / memory ms/turn"] = ratio(g(ours, t, "ms_per_turn"), g("memory", t, "ms_per_turn"))
        rows["ours-pg history / lg-pg history"] = ratio(g("ours-pg", t, "history_ms"), g("lg-pg", t, "history_ms"))
        rows["ours-sqlite history / lg-sqlite history"] = ratio(g("ours-sqlite", t, "history_ms"), g("lg-sqlite", t, "history_ms"))
        rows["ours-pg history / memory history"] = ratio(g("ours-pg", t, "history_ms"), g("memory", t, "history_ms"))
        rows["ours-pg get_state / lg-pg get_state"] = ratio(g("ours-pg", t, "get_state_ms"), g("lg-pg", t, "get_state_ms"))
        rows["ours-sqlite get_state / lg-sqlite get_state"] = ratio(g("ours-sqlite", t, "get_state_ms"), g("lg-sqlite", t, "get_state_ms"))
        rows["ours-pg get_state / memory get_state"] = ratio(g("ours-pg", t, "get_state_ms"), g("memory", t, "get_state_ms"))
        rows["ours-pg RSS+ peak / lg-pg RSS+ peak"] = ratio(g("ours-pg", t, "rss_growth_peak"), g("lg-pg", t, "rss_growth_peak"))
        for k, v in rows.items():
            if v is not None:
                out.append({"turns": t, "ratio": k, "value": v})
    return out


def growth(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Bytes per turn between consecutive turn counts: ~constant = linear storage."""
    out = []
    by_saver: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        if "error" not in r and not r.get("stopped") and (r.get("size") or {}).get("bytes_asis") is not None:
            by_saver.setdefault(r["saver"], []).append(r)
    for s, rs in by_saver.items():
        rs.sort(key=lambda r: r["turns"])
        for a, b in zip(rs, rs[1:]):
            d = b["size"]["bytes_asis"] - a["size"]["bytes_asis"]
            out.append({
                "saver": s, "from": a["turns"], "to": b["turns"],
                "bytes_per_turn": d / (b["turns"] - a["turns"]),
            })
        r = rs[-1]
        out.append({"saver": s, "from": 0, "to": r["turns"], "bytes_per_turn": r["size"]["bytes_asis"] / r["turns"]})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.long_thread", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--savers", help=f"comma list of {','.join(ALL)} (default: all available)")
    p.add_argument("--turns", help="comma list of turn counts (default 50,200,1000; --quick 5,20)")
    p.add_argument("--force", action="store_true",
                   help=f"run incumbents (lg-*) above {INCUMBENT_MAX_TURNS} turns too")
    p.add_argument("--quick", action="store_true", help="smoke run: few turns, few repeats")
    p.add_argument("--pg-url", default=common.DEFAULT_PG_URL, help="admin URL; scratch DBs are created from it")
    p.add_argument("--get-state-n", type=int, default=None, help="get_state calls to average (default 20)")
    p.add_argument("--history-repeats", type=int, default=1)
    p.add_argument("--history-mode", choices=("auto", "list", "iter"), default="auto",
                   help="list = list(get_state_history()); iter = iterate without keeping snapshots; "
                        "auto = list up to --history-list-max-turns, iter above (memory bound)")
    p.add_argument("--history-list-max-turns", type=int, default=200)
    p.add_argument("--history-budget-s", type=float, default=120,
                   help="stop the history walk after this many seconds and report it as partial (0 = no limit)")
    p.add_argument("--turns-budget-s", type=float, default=300,
                   help="stop a run's turn loop after this many seconds and report the turns done (0 = no limit)")
    p.add_argument("--durability", choices=("default", "sync", "async", "exit"), default="default",
                   help="graph.invoke durability (default: langgraph's default, 'async')")
    p.add_argument("--shape", choices=("agent", "subgraph"), default="agent",
                   help="agent = the scripted agent as the graph; subgraph = the agent as a "
                        "subgraph node taking the messages (each call checkpoints the history "
                        "it is given under a namespace of its own)")
    p.add_argument("--timeout", type=float, default=1800, help="per-subprocess timeout, seconds")
    p.add_argument("--rss-limit-gb", type=float, default=6.0,
                   help="stop a run's turn loop once the worker's RSS exceeds this (0 = no limit)")
    p.add_argument("--as-limit-gb", type=float, default=16.0,
                   help="hard address-space limit per worker subprocess (0 = none): last-resort guard")
    p.add_argument("--out", default="long_thread",
                   help="results name (bench/results/<out>.json) or a path (<out>.json)")
    # worker mode (internal)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--saver", help=argparse.SUPPRESS)
    p.add_argument("--target", help=argparse.SUPPRESS)
    p.add_argument("--result-file", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.get_state_n is None:
        args.get_state_n = 5 if args.quick else 20
    if args.worker:
        args.turns = int(args.turns)
        return worker(args)

    t_run = time.perf_counter()
    turns_list = [int(x) for x in (args.turns or ("5,20" if args.quick else "50,200,1000")).split(",")]
    requested = common.parse_savers(args.savers, ALL, DEFAULT_SAVERS)
    notes: list[str] = []
    savers = []
    for s in requested:
        ok, why = common.saver_available(s)
        if ok:
            savers.append(s)
        else:
            notes.append(f"skipped {s}: {why}")
    if any(backend(s) == "pg" for s in savers):
        err = common.check_postgres(args.pg_url)
        if err:
            raise SystemExit(f"Postgres not reachable at {args.pg_url}: {err}")
    for n in notes:
        print("note:", n, flush=True)

    results: list[dict[str, Any]] = []
    meta = common.run_meta(args)
    data: dict[str, Any] = {"benchmark": "long_thread", "meta": meta, "notes": notes}
    for turns in turns_list:
        for s in savers:
            if s in INCUMBENTS and turns > INCUMBENT_MAX_TURNS and not args.force:
                msg = f"skipped {s} at {turns} turns (incumbent; > {INCUMBENT_MAX_TURNS}, use --force)"
                notes.append(msg)
                print("note:", msg, flush=True)
                continue
            t0 = time.perf_counter()
            print(f"[{time.strftime('%H:%M:%S')}] {s} x {turns} turns ...", flush=True)
            r = run_one(args, s, turns)
            r["driver_wall_s"] = time.perf_counter() - t0
            results.append(r)
            if "error" in r:
                print(f"    ERROR: {r['error']}", flush=True)
            else:
                print(f"    {r['ms_per_turn']:.1f} ms/turn, {fmt_bytes((r.get('size') or {}).get('bytes_asis'))}, "
                      f"{r['driver_wall_s']:.1f}s", flush=True)
                if r.get("history_aborted"):
                    msg = f"{s} x {turns}: {r['history_aborted']}"
                    notes.append(msg)
                    print("    " + msg, flush=True)
                if r.get("stopped"):
                    msg = f"{s} x {turns}: stopped early: {r['stopped']}"
                    notes.append(msg)
                    print("    " + msg, flush=True)
            data["results"] = results
            common.write_results(args.out, data)  # partial results survive a crash

    print()
    table = print_table(HEADERS, [_row(r) for r in results], title="long_thread: one agent thread per saver")
    print("bytes: Postgres = sum of pg_total_relation_size over the saver's own tables "
          "(ours: cpg_*, lg: checkpoints/checkpoint_blobs/checkpoint_writes/checkpoint_migrations), "
          "as-is after the run and after plain VACUUM; SQLite = db file after wal_checkpoint(TRUNCATE), "
          "then after VACUUM; memory = serialized bytes InMemorySaver holds.")
    print("RSS+ = growth of peak RSS (ru_maxrss) over the post-setup baseline, per subprocess; "
          "'turns' = during the turns, 'peak' = including get_state/history. "
          "history marked * = iterated without keeping snapshots; '>Ns (k/n)' = stopped by --history-budget-s after k of n snapshots.")
    ratios = compute_ratios(results)
    if ratios:
        print()
        print_table(["ratio", "turns", "value"],
                    [[x["ratio"], x["turns"], fmt_ratio(x["value"])] for x in ratios],
                    title="ratios (< 1 means ours is smaller/faster)")
    gr = growth(results)
    if gr:
        print()
        print_table(["saver", "turns", "bytes/turn"],
                    [[x["saver"], f"{x['from']}->{x['to']}", fmt_bytes(x["bytes_per_turn"])] for x in gr],
                    title="storage growth per turn (as-is; constant = linear in thread length)")
    total = time.perf_counter() - t_run
    data.update(results=results, ratios=ratios, growth=gr, notes=notes, total_wall_s=total, table=table)
    path = common.write_results(args.out, data)
    print(f"\nwrote {common.shown(path)}; total wall time {total:.0f}s")
    for n in notes:
        print("note:", n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
