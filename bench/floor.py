"""The floor under any saver's step: what the database alone costs, measured in the same run.

A step of the short-thread workload is two durable writes (put, put_writes)
and one read (get_tuple). No saver that commits each call can be faster than
two empty-ish commits and one trivial read on the same connection, so
``floor steps/s = 1 / (2 * commit + read)``. Dividing by an incumbent's
steps/s gives the most any saver could gain over it here, with zero CPU of
its own.

- Postgres: an autocommit ``INSERT`` of one 200-byte row (a durable commit:
  the WAL flush) and ``SELECT 1`` (a round trip), psycopg, one connection.
- SQLite: ``BEGIN IMMEDIATE; INSERT; COMMIT`` and a primary-key ``SELECT`` in
  WAL mode, with ``synchronous=NORMAL`` (what checkpoint_pg uses) and ``FULL``
  (SQLite's default, which langgraph-checkpoint-sqlite keeps).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_ROW = "x" * 200


def _mean_s(fn: Callable[[int], Any], n: int) -> float:
    for i in range(min(200, n)):
        fn(-1 - i)
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t0) / n


def _result(commit_s: float, read_s: float) -> dict[str, float]:
    return {
        "commit_ms": commit_s * 1e3,
        "read_ms": read_s * 1e3,
        "floor_steps_per_s": 1.0 / (2 * commit_s + read_s),
    }


def postgres_floor(url: str, n: int = 2000) -> dict[str, float]:
    """Durable commit and round trip on a scratch table of the database at ``url``."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_floor (id int PRIMARY KEY, v text)")
        conn.execute("TRUNCATE bench_floor")
        try:
            commit = _mean_s(
                lambda i: conn.execute("INSERT INTO bench_floor VALUES (%s, %s)", (i, _ROW)), n
            )
            read = _mean_s(lambda i: conn.execute("SELECT 1").fetchone(), n)
        finally:
            conn.execute("DROP TABLE bench_floor")
    return _result(commit, read)


def sqlite_floor(directory: str, synchronous: str, n: int = 2000) -> dict[str, float]:
    """Write transaction and primary-key read on a new WAL file in ``directory``."""
    path = Path(directory) / f"floor_{synchronous.lower()}.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("CREATE TABLE bench_floor (id INTEGER PRIMARY KEY, v TEXT)")

        def write(i: int) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO bench_floor VALUES (?, ?)", (i, _ROW))
            conn.execute("COMMIT")

        commit = _mean_s(write, n)
        read = _mean_s(
            lambda i: conn.execute("SELECT v FROM bench_floor WHERE id = ?", (abs(i) % n,)).fetchone(), n
        )
    finally:
        conn.close()
    return _result(commit, read)
