"""Helpers for the fault, concurrency, bad-input, security and model tests.

* `SimThread` drives a saver with the calls LangGraph makes during a run
  (``put_writes`` for the tasks of a step, then ``put`` of the next
  checkpoint) and remembers exactly what each checkpoint must read back as,
  so a test can count and compare everything afterwards.
* `raw_connection` / `row_counts` look at the tables directly (to prove that
  a refused call wrote nothing at all).
* `pg_terminate` kills server sessions from an admin connection.
* `after_first_yield` forwards a generator (a core operation, a driver's
  wait generator) unchanged, running a hook once it first yields.
* `wait_until` / `await_until` / `wait_for_blocked` / `paused_on` / `pool_waiting`
  wait for an observable condition (another thread's progress, a session waiting
  on a lock, a call waiting for a pooled connection) with a generous deadline,
  where a fixed pause only guessed at it and lost on a loaded machine.

Nothing here imports checkpoint_pg at module level: conftest imports the
package lazily, and so do we.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import linecache
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint, CheckpointTuple, empty_checkpoint

TABLES = ("threads", "checkpoints", "channel_values", "writes", "objects")


# --------------------------------------------------------------------------
# Looking at the tables
# --------------------------------------------------------------------------


def qualified(saver: Any, logical: str) -> str:
    """The quoted (schema-qualified) name of one of the saver's tables."""
    table = getattr(saver.tables, logical)
    name = f'"{table.name}"'
    return f'"{table.schema}".{name}' if table.schema else name


@contextlib.contextmanager
def raw_connection(backend: str, conn_string: str) -> Iterator[Any]:
    """An autocommit connection of the driver itself, outside any saver."""
    if backend == "sqlite":
        from checkpoint_pg.sqlite import path_of  # noqa: PLC0415

        conn = sqlite3.connect(path_of(conn_string), isolation_level=None, timeout=30)
        try:
            yield conn
        finally:
            conn.close()
    else:
        import psycopg  # noqa: PLC0415

        with psycopg.connect(conn_string, autocommit=True) as conn:
            yield conn


def row_counts(backend: str, conn_string: str, saver: Any, thread_id: str | None = None) -> dict[str, int]:
    """Rows per table (of one thread if given): equal before/after = nothing written."""
    out = {}
    with raw_connection(backend, conn_string) as conn:
        for logical in TABLES:
            sql = f"SELECT count(*) FROM {qualified(saver, logical)}"
            if thread_id is not None:
                sql += " WHERE thread_id = " + ("?" if backend == "sqlite" else "%s")
                row = conn.execute(sql, (thread_id,)).fetchone()
            else:
                row = conn.execute(sql).fetchone()
            out[logical] = row[0]
    return out


def admin_execute(url: str, sql: str, params: Sequence[Any] | None = None) -> list[Any]:
    import psycopg  # noqa: PLC0415

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def pg_terminate(url: str, *, only_idle: bool = False, application_name: str | None = None) -> int:
    """Terminate the other sessions on *url*'s database; return how many."""
    sql = (
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND backend_type = 'client backend'"
    )
    if only_idle:
        sql += " AND state = 'idle'"
    params: list[Any] = []
    if application_name is not None:
        sql += " AND application_name = %s"
        params.append(application_name)
    return admin_execute(url, sql, params)[0][0]


# --------------------------------------------------------------------------
# Waiting for another thread, task or session to get somewhere
# --------------------------------------------------------------------------

# generous: a wait ends as soon as its condition holds, and CI's machines are slow
PATIENCE = 30.0


def _look(condition: Callable[[], Any], what: str, timeout: float, deadline: float) -> Any:
    """``condition()``; AssertionError naming ``what`` if false past ``deadline``."""
    got = condition()
    if not got and time.monotonic() > deadline:
        raise AssertionError(f"{what}: not within {timeout} s")
    return got


def wait_until(condition: Callable[[], Any], what: str, timeout: float = PATIENCE) -> Any:
    """Poll ``condition()`` until it returns a true value, and return that value;
    AssertionError naming ``what`` if it never does within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (got := _look(condition, what, timeout, deadline)):
        time.sleep(0.01)
    return got


async def await_until(condition: Callable[[], Any], what: str, timeout: float = PATIENCE) -> Any:
    """`wait_until` for a task: polls between sleeps of the event loop, so the other
    tasks of the loop go on meanwhile."""
    deadline = time.monotonic() + timeout
    while not (got := _look(condition, what, timeout, deadline)):
        await asyncio.sleep(0.01)
    return got


def blocked_on(url: str, blocker_pid: int, but: Sequence[int] = ()) -> int | None:
    """The pid of a session waiting on a lock *blocker_pid*'s session holds, if any
    (``but``: sessions to leave out, terminated ones still ending)."""
    rows = admin_execute(
        url,
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND %s = ANY(pg_blocking_pids(pid)) AND NOT pid = ANY(%s)",
        [blocker_pid, list(but)],
    )
    return rows[0][0] if rows else None


def wait_for_blocked(url: str, blocker_pid: int, timeout: float = PATIENCE) -> int:
    """The pid of a session waiting on a lock *blocker_pid*'s session holds, once
    there is one."""
    return wait_until(lambda: blocked_on(url, blocker_pid), f"nothing waited on session {blocker_pid}'s lock", timeout)


def paused_on(thread: threading.Thread, text: str) -> bool:
    """Whether a frame of *thread*'s stack is on a source line holding ``text``: a thread
    blocked in ``with self._lock:``, or in SQLite's busy wait for a statement, waits on
    that line until it is through. Never the calling thread (its own frames hold the
    text it asks about)."""
    if thread is threading.current_thread():
        return False
    frame = sys._current_frames().get(thread.ident)  # type: ignore[arg-type]
    while frame is not None:
        if text in linecache.getline(frame.f_code.co_filename, frame.f_lineno):
            return True
        frame = frame.f_back
    return False


def pool_waiting(pool: Any) -> int:
    """How many calls wait for a connection of a psycopg_pool pool."""
    return pool.get_stats().get("requests_waiting", 0)


# --------------------------------------------------------------------------
# Comparing what was read back
# --------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """JSON-ish normal form: tuples become lists, dict keys are kept in order."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def ids_of(tuples: Sequence[CheckpointTuple]) -> list[str]:
    return [t.config["configurable"]["checkpoint_id"] for t in tuples]


# --------------------------------------------------------------------------
# A thread run the way LangGraph runs one
# --------------------------------------------------------------------------

_counter = iter(range(1, 1 << 62))


def next_checkpoint_id() -> str:
    """Increasing, UUID-shaped ids (LangGraph's uuid6 ids sort by time as well)."""
    n = next(_counter)
    base = uuid.uuid4().hex
    return f"{n:08x}-{base[:4]}-6{base[5:8]}-8{base[9:12]}-{base[12:24]}"


@dataclass
class Expected:
    """What one checkpoint must read back as."""

    checkpoint_id: str
    parent_id: str | None
    values: dict[str, Any]
    versions: dict[str, Any]
    metadata: dict[str, Any]
    writes: list[tuple[str, str, Any]] = field(default_factory=list)


@dataclass
class Step:
    """One prepared superstep: the writes for ``parent`` and the next checkpoint."""

    step: int
    parent: str | None
    checkpoint: Checkpoint
    new_versions: dict[str, Any]
    metadata: dict[str, Any]
    task_id: str
    writes: list[tuple[str, Any]]


class SimThread:
    """One thread driven step by step like a LangGraph run.

    Each step: the step's task writes go to the current checkpoint
    (``put_writes``), then the next checkpoint is ``put``. Channels:

    * ``messages`` -- a list that grows by one element per step (stored as
      list deltas by the saver);
    * ``step`` -- an int that changes every step;
    * ``doc`` -- a larger value that changes every 5th step only, so most
      checkpoints carry its version over from an earlier one.
    """

    def __init__(self, saver: Any, thread_id: str, ns: str = "", run_id: str = "run-1") -> None:
        self.saver = saver
        self.thread_id = thread_id
        self.ns = ns
        self.run_id = run_id
        self.checkpoint: Checkpoint | None = None
        self.step = -1
        self.expected: dict[str, Expected] = {}
        self.order: list[str] = []  # committed checkpoint ids, oldest first
        self._messages: list[str] = []

    # -- building -------------------------------------------------------------

    def config(self, checkpoint_id: str | None = None) -> RunnableConfig:
        conf: dict[str, Any] = {"thread_id": self.thread_id, "checkpoint_ns": self.ns}
        if checkpoint_id is not None:
            conf["checkpoint_id"] = checkpoint_id
        return {"configurable": conf}

    def _next(self, step: int) -> tuple[Checkpoint, dict[str, Any], dict[str, Any], list[Any]]:
        prev = self.checkpoint
        cp = empty_checkpoint() if prev is None else {**prev}
        cp = dict(cp)
        cp["id"] = next_checkpoint_id()
        values = dict(prev["channel_values"]) if prev else {}
        versions = dict(prev["channel_versions"]) if prev else {}
        changed: dict[str, Any] = {}
        msg = f"message {step} of {self.thread_id}"
        changed["messages"] = [*values.get("messages", []), msg]
        changed["step"] = step
        if step % 5 == 0:
            changed["doc"] = {"step": step, "text": f"document {step} " * 20, "tags": ["a", step]}
        new_versions = {}
        for ch, value in changed.items():
            new_versions[ch] = self.saver.get_next_version(versions.get(ch), None)
            versions[ch] = new_versions[ch]
            values[ch] = value
        cp["channel_values"] = values
        cp["channel_versions"] = versions
        cp["versions_seen"] = {"node": dict(versions)}
        metadata = {"source": "loop", "step": step, "run_id": self.run_id, "parents": {}}
        writes = [("messages", [msg]), ("step", step)]
        return cp, new_versions, metadata, writes  # type: ignore[return-value]

    # -- running --------------------------------------------------------------

    def prepare(self) -> Step:
        """The next step's calls, not sent yet (a test may send them itself)."""
        step = self.step + 1
        cp, new_versions, metadata, writes = self._next(step)
        parent = self.checkpoint["id"] if self.checkpoint else None
        return Step(step, parent, cp, new_versions, metadata, f"task-{step}", writes)

    def send_writes(self, st: Step) -> None:
        if st.parent is not None:
            self.saver.put_writes(self.config(st.parent), st.writes, st.task_id)
            self.expected[st.parent].writes = [(st.task_id, ch, v) for ch, v in st.writes]

    def send_put(self, st: Step) -> None:
        cfg = self.saver.put(self.config(st.parent), st.checkpoint, st.metadata, st.new_versions)
        assert cfg["configurable"]["checkpoint_id"] == st.checkpoint["id"]
        self.commit(st)

    def run_step(self) -> str:
        """Write the current checkpoint's task writes, then put the next checkpoint."""
        st = self.prepare()
        self.send_writes(st)
        self.send_put(st)
        return st.checkpoint["id"]

    async def arun_step(self) -> str:
        st = self.prepare()
        if st.parent is not None:
            await self.saver.aput_writes(self.config(st.parent), st.writes, st.task_id)
            self.expected[st.parent].writes = [(st.task_id, ch, v) for ch, v in st.writes]
        cfg = await self.saver.aput(self.config(st.parent), st.checkpoint, st.metadata, st.new_versions)
        assert cfg["configurable"]["checkpoint_id"] == st.checkpoint["id"]
        self.commit(st)
        return st.checkpoint["id"]

    def commit(self, st: Step) -> None:
        """Record a step whose put committed."""
        self._commit(st.checkpoint, st.parent, st.metadata, st.step)

    def expected_of(self, st: Step) -> Expected:
        cp = st.checkpoint
        return Expected(cp["id"], st.parent, dict(cp["channel_values"]), dict(cp["channel_versions"]), st.metadata)

    def _commit(self, cp: Checkpoint, parent: str | None, metadata: dict[str, Any], step: int) -> None:
        self.expected[cp["id"]] = Expected(
            cp["id"], parent, dict(cp["channel_values"]), dict(cp["channel_versions"]), metadata
        )
        self.order.append(cp["id"])
        self.checkpoint = cp
        self.step = step

    # -- checking -------------------------------------------------------------

    def check_tuple(
        self, tup: CheckpointTuple | None, checkpoint_id: str, exp: Expected | None = None
    ) -> None:
        exp = exp or self.expected[checkpoint_id]
        assert tup is not None, f"checkpoint {checkpoint_id} of {self.thread_id} is missing"
        assert tup.config["configurable"]["checkpoint_id"] == checkpoint_id
        assert plain(tup.checkpoint["channel_values"]) == plain(exp.values), (
            f"checkpoint {checkpoint_id} of {self.thread_id}: values differ"
        )
        assert {k: str(v) for k, v in tup.checkpoint["channel_versions"].items()} == {
            k: str(v) for k, v in exp.versions.items()
        }
        parent = tup.parent_config["configurable"]["checkpoint_id"] if tup.parent_config else None
        assert parent == exp.parent_id
        for key, value in exp.metadata.items():
            assert tup.metadata.get(key) == value
        assert sorted(plain(list(w)) for w in tup.pending_writes) == sorted(
            plain(list(w)) for w in exp.writes
        ), f"checkpoint {checkpoint_id} of {self.thread_id}: pending writes differ"

    def verify(self, saver: Any | None = None) -> int:
        """Everything committed reads back exactly; returns the number of checkpoints."""
        saver = saver or self.saver
        listed = list(saver.list(self.config()))
        assert ids_of(listed) == list(reversed(self.order)), f"history of {self.thread_id} differs"
        for tup in listed:
            self.check_tuple(tup, tup.config["configurable"]["checkpoint_id"])
        latest = saver.get_tuple(self.config())
        if self.order:
            self.check_tuple(latest, self.order[-1])
        else:
            assert latest is None
        return len(listed)

    async def averify(self, saver: Any | None = None) -> int:
        saver = saver or self.saver
        listed = [t async for t in saver.alist(self.config())]
        assert ids_of(listed) == list(reversed(self.order)), f"history of {self.thread_id} differs"
        for tup in listed:
            self.check_tuple(tup, tup.config["configurable"]["checkpoint_id"])
        if self.order:
            self.check_tuple(await saver.aget_tuple(self.config()), self.order[-1])
        return len(listed)


def dumps(value: Any) -> str:
    return json.dumps(plain(value), sort_keys=True, default=repr)


def after_first_yield(gen: Generator[Any, Any, Any], hook: Callable[[], None]) -> Generator[Any, Any, Any]:
    """``gen`` unchanged, with ``hook()`` called once it has yielded its first value
    (and not at all if it returns without yielding)."""
    try:
        value = next(gen)
    except StopIteration as stop:
        return stop.value
    hook()
    while True:
        sent = yield value
        try:
            value = gen.send(sent)
        except StopIteration as stop:
            return stop.value
