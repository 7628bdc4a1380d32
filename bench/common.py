"""Shared helpers for the benchmarks: scratch Postgres databases, size
measurement, timing statistics, table printing and JSON results."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import platform
import re
import resource
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from importlib import metadata as _md
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src"
RESULTS = Path(__file__).resolve().parent / "results"

DEFAULT_PG_URL = os.environ.get(
    "BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

# Tables the incumbent langgraph-checkpoint-postgres creates.
LG_PG_TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes", "checkpoint_migrations")
OURS_PREFIX = "cpg_"

# Ours on Postgres prepares its statements (prepare=True) as the incumbent's
# from_conn_string does (prepare_threshold=0), so both run like for like.
# BENCH_PG_PREPARE=none measures ours with its own default instead, which prepares
# nothing (PgBouncer-safe).
OURS_PG_PREPARE: bool = os.environ.get("BENCH_PG_PREPARE", "").strip().lower() not in ("none", "0", "false")


def ensure_src_on_path() -> None:
    """Make ``checkpoint_pg`` importable from the work tree (PYTHONPATH=src)."""
    s = str(SRC)
    if SRC.is_dir() and s not in sys.path:
        sys.path.insert(0, s)


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    pp = env.get("PYTHONPATH", "")
    parts = [str(SRC), str(REPO)] + ([pp] if pp else [])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


# ---------------------------------------------------------------- our savers

_OURS_CACHE: dict[str, Any] = {}


def ours_status() -> tuple[Any | None, str]:
    """Return (checkpoint_pg module or None, human-readable reason)."""
    if "mod" in _OURS_CACHE:
        return _OURS_CACHE["mod"], _OURS_CACHE["why"]
    ensure_src_on_path()
    mod, why = None, ""
    try:
        import checkpoint_pg as mod  # type: ignore[no-redef]
    except Exception as e:  # noqa: BLE001 - any failure means "not available"
        why = f"checkpoint_pg does not import: {type(e).__name__}: {e}"
        mod = None
    _OURS_CACHE["mod"], _OURS_CACHE["why"] = mod, why
    return mod, why


def ours_class(name: str) -> tuple[Any | None, str]:
    """Return one of our saver classes, e.g. ``ours_class("PostgresSaver")``."""
    mod, why = ours_status()
    if mod is None:
        return None, why
    cls = getattr(mod, name, None)
    if cls is None:
        return None, f"checkpoint_pg has no {name}"
    return cls, ""


def parse_savers(arg: str | None, known: Sequence[str], default: Sequence[str]) -> list[str]:
    if not arg:
        return list(default)
    out = []
    for s in arg.split(","):
        s = s.strip()
        if not s:
            continue
        if s == "all":
            out.extend(k for k in known if k not in out)
            continue
        if s not in known:
            raise SystemExit(f"unknown saver {s!r}; known: {', '.join(known)}")
        if s not in out:
            out.append(s)
    return out


def saver_available(name: str) -> tuple[bool, str]:
    """Whether a saver name can run in this environment, and why not."""
    if name.startswith("ours-"):
        need = {
            "ours-pg": ("PostgresSaver",),
            "ours-sqlite": ("SqliteSaver",),
        }.get(name, ())
        for cls_name in need:
            cls, why = ours_class(cls_name)
            if cls is None:
                return False, why
        return True, ""
    return True, ""


# ---------------------------------------------------------------- Postgres


def _with_db(url: str, dbname: str) -> str:
    """Replace the database name in a postgres URL."""
    m = re.match(r"^(postgres(?:ql)?://[^/]*)(/[^?]*)?(\?.*)?$", url)
    if not m:
        raise ValueError(f"cannot parse postgres url {url!r}")
    return f"{m.group(1)}/{dbname}{m.group(3) or ''}"


class ScratchDB:
    """Creates a fresh database on enter and drops it (WITH FORCE) on exit."""

    def __init__(self, admin_url: str, tag: str) -> None:
        safe = re.sub(r"[^a-z0-9_]", "_", tag.lower())
        self.name = f"bench_{safe}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.admin_url = admin_url
        self.url = _with_db(admin_url, self.name)

    def __enter__(self) -> ScratchDB:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{self.name}"')
        return self

    def __exit__(self, *exc: object) -> None:
        self.drop()

    def drop(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self.admin_url, autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        except Exception as e:  # noqa: BLE001
            print(f"warning: could not drop scratch database {self.name}: {e}", file=sys.stderr)


def check_postgres(admin_url: str) -> str | None:
    """Return None when Postgres is reachable, else the error text."""
    try:
        import psycopg

        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as c:
            c.execute("SELECT 1")
        return None
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"


_SIZE_SQL = """
SELECT c.relname, c.relkind,
       CASE WHEN c.relkind = 'p' THEN
            (SELECT coalesce(sum(pg_total_relation_size(t.relid)), 0)
               FROM pg_partition_tree(c.oid) t WHERE t.isleaf)
            ELSE pg_total_relation_size(c.oid) END AS bytes
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'm')
   AND NOT c.relispartition
"""


def pg_table_sizes(url: str) -> dict[str, int]:
    """pg_total_relation_size (heap + TOAST + indexes + fsm/vm) of every
    top-level table in schema public; partitioned tables sum their leaves."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as c:
        rows = c.execute(_SIZE_SQL).fetchall()
    return {r[0]: int(r[2]) for r in rows}


def saver_tables(sizes: dict[str, int], kind: str) -> dict[str, int]:
    """The tables that belong to a saver: ours are ``cpg_*``, the incumbent's
    are the four langgraph tables."""
    if kind == "ours":
        return {k: v for k, v in sizes.items() if k.startswith(OURS_PREFIX)}
    if kind == "lg":
        return {k: v for k, v in sizes.items() if k in LG_PG_TABLES}
    raise ValueError(kind)


def pg_vacuum(url: str, full: bool = False) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as c:
        c.execute("VACUUM FULL" if full else "VACUUM")


def pg_measure(url: str, kind: str) -> dict[str, Any]:
    """Sizes as left by the run, then after a plain VACUUM (ANALYZE-free)."""
    import psycopg

    asis_all = pg_table_sizes(url)
    asis = saver_tables(asis_all, kind)
    pg_vacuum(url)
    vac_all = pg_table_sizes(url)
    vac = saver_tables(vac_all, kind)
    with psycopg.connect(url, autocommit=True) as c:
        dbsize = c.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    other = {k: v for k, v in vac_all.items() if k not in vac}
    return {
        "bytes_asis": sum(asis.values()),
        "bytes_vacuum": sum(vac.values()),
        "tables_asis": asis,
        "tables_vacuum": vac,
        "other_public_tables": other,
        "database_size": int(dbsize),
    }


# ---------------------------------------------------------------- SQLite


def sqlite_measure(path: str | Path) -> dict[str, Any]:
    """File size after PRAGMA wal_checkpoint(TRUNCATE) (db + any wal left),
    then after VACUUM."""
    path = Path(path)
    if not path.exists():
        return {"bytes_asis": None, "bytes_vacuum": None, "files": {}}

    def size() -> tuple[int, dict[str, int]]:
        files = {p.name: p.stat().st_size for p in sorted(path.parent.iterdir()) if p.is_file()}
        main = path.stat().st_size
        wal = Path(str(path) + "-wal")
        total = main + (wal.stat().st_size if wal.exists() else 0)
        return total, files

    con = sqlite3.connect(str(path))
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        asis, files = size()
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        con.execute("VACUUM")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        vac, files_vac = size()
    finally:
        con.close()
    return {
        "bytes_asis": asis,
        "bytes_vacuum": vac,
        "files": files,
        "files_vacuum": files_vac,
        "tables": tables,
    }


# ---------------------------------------------------------------- stats


def mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def percentile(xs: Sequence[float], p: float) -> float:
    """Nearest-rank-interpolated percentile, p in [0, 100]."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    if len(s) == 1:
        return s[0]
    k = (len(s) - 1) * p / 100.0
    lo = math.floor(k)
    hi = math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def median(xs: Sequence[float]) -> float:
    return percentile(xs, 50)


def maxrss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def current_rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


class Timer:
    def __enter__(self) -> Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.s = time.perf_counter() - self.t0


# ---------------------------------------------------------------- output


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or (isinstance(a, float) and math.isnan(a)) or (
        isinstance(b, float) and math.isnan(b)
    ):
        return None
    return a / b


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, div in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}"
    return f"{int(n)} B"


def fmt_num(x: float | None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, int):
        return f"{x:,}"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.1f}"
    return f"{x:.{digits}f}"


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}x"


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> str:
    rows = [["-" if c is None else str(c) for c in r] for r in rows]
    rows = [(r + [""] * len(headers))[: len(headers)] if len(r) != len(headers) else r for r in rows]
    widths = [len(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    lines = []
    if title:
        lines.append(title)
    lines.append("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths))))
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def _version(dist: str) -> str | None:
    try:
        return _md.version(dist)
    except _md.PackageNotFoundError:
        return None


def run_meta(args: Any) -> dict[str, Any]:
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip() or None
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip() != ""
    except Exception:  # noqa: BLE001
        rev, dirty = None, None
    mod, why = ours_status()
    return {
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv,
        "args": {k: v for k, v in vars(args).items()} if args is not None else None,
        "git_rev": rev,
        "ours_pg_prepare": OURS_PG_PREPARE,
        "src_dirty": dirty,
        "python": platform.python_version(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": {
            d: _version(d)
            for d in (
                "langgraph", "langgraph-checkpoint", "langgraph-checkpoint-postgres",
                "langgraph-checkpoint-sqlite", "langchain-core", "psycopg", "psycopg-pool",
            )
        },
        "checkpoint_pg": {"available": mod is not None, "why_not": why or None,
                          "file": getattr(mod, "__file__", None)},
    }


def write_results(name: str, data: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json``, or ``<name>.json`` when name is a path."""
    path = Path(f"{name}.json") if ("/" in name or "\\" in name) else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)
    return path


def shown(path: Path) -> str:
    """A path for messages: relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


@contextlib.contextmanager
def phase(label: str) -> Iterator[None]:
    t0 = time.perf_counter()
    print(f"[{time.strftime('%H:%M:%S')}] {label} ...", flush=True)
    try:
        yield
    finally:
        print(f"[{time.strftime('%H:%M:%S')}] {label} done in {time.perf_counter() - t0:.1f}s", flush=True)
