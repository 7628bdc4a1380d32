"""The SQLite savers: `SqliteSaver` (sync) and `AsyncSqliteSaver`, on the stdlib sqlite3.

WAL journal and a busy timeout let several processes share one file; writes
take the lock up front (BEGIN IMMEDIATE), so two writers queue instead of
failing with "database is locked".
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from langgraph.checkpoint.serde.base import SerializerProtocol
from sqlalchemy.pool import StaticPool

from checkpoint_pg import migrate
from checkpoint_pg.core.ops import Batch, Op
from checkpoint_pg.core.values import DEFAULT_CACHE_ITEMS
from checkpoint_pg.errors import ConfigError
from checkpoint_pg.schema import DEFAULT_PREFIX, PG_SCHEMES
from checkpoint_pg.shells.aio import AsyncSaver, running_loop
from checkpoint_pg.shells.errors import closed_error, setup_in_transaction, translate
from checkpoint_pg.shells.sync import SyncSaver, drive, start
from checkpoint_pg.sql.sqlite import SqliteSQL
from checkpoint_pg.sqlite_wal import FALLBACK_PAGES, WalCheckpointer

__all__ = ["SqliteSaver", "AsyncSqliteSaver", "connect_sqlite", "path_of"]

BUSY_TIMEOUT_MS = 30_000


def path_of(url: str) -> str:
    """A file path for ``path``, ``sqlite:///path`` or ``:memory:``."""
    if not isinstance(url, str) or not url:
        raise ConfigError(f"a SQLite database is a file path or sqlite:///path, got {url!r}")
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :] or ":memory:"
    if url.startswith("sqlite://"):
        raise ConfigError(
            f"{url!r} has a host part after sqlite://: write a SQLite file as "
            "sqlite:///relative/path.db or sqlite:////absolute/path.db (or just the path)"
        )
    if url.startswith(PG_SCHEMES):
        raise ConfigError(
            f"{url.split('://', 1)[0]}:// is a Postgres URL: the SQLite savers take a file path "
            "or sqlite:///path; for Postgres use PostgresSaver or AsyncPostgresSaver"
        )
    if "://" in url:
        raise ConfigError(
            f"unsupported database URL scheme {url.split('://', 1)[0]!r}: use a file path or "
            "sqlite:///path for SQLite, postgresql://user@host/db for Postgres"
        )
    return url


WAL_SIZE_LIMIT = 4 * 1024 * 1024  # bytes the WAL file is cut back to once checkpointed


# The statements use RETURNING (SQLite 3.35) and the JSON functions (built in from
# 3.38; before that an option of the build, which most builds took).
MIN_SQLITE = (3, 35, 0)
_JSON_BUILT_IN = (3, 38, 0)


def _check_library(conn: sqlite3.Connection | None = None) -> None:
    """Refuse, with what to do, a SQLite library the savers' statements cannot run on
    (each would fail with a syntax error, or 'no such function: json_each')."""
    found = sqlite3.sqlite_version_info
    missing = None
    if found < MIN_SQLITE:
        missing = "RETURNING"
    elif conn is not None and found < _JSON_BUILT_IN:
        try:
            conn.execute("SELECT json_array()").fetchone()
        except sqlite3.OperationalError:
            missing = "the JSON functions"
    if missing is not None:
        raise ConfigError(
            f"this Python's sqlite3 module runs SQLite {sqlite3.sqlite_version}, without "
            f"{missing}; checkpoint_pg needs SQLite {'.'.join(map(str, MIN_SQLITE))} or later "
            "with the JSON functions (3.38 and later always have them): use a Python built "
            "with a newer SQLite (python.org's builds and current distributions' are)"
        )


def connect_sqlite(path: str, *, read_only: bool = False) -> sqlite3.Connection:
    """Open a connection the savers can share across threads, in WAL mode."""
    conn = _connect(path, read_only)
    try:
        _prepare_file(conn, path, read_only)
    except BaseException:
        conn.close()
        raise
    return conn


def _connect(path: str, read_only: bool = False) -> sqlite3.Connection:
    """The connection alone, checked: takes no lock on the file, so never waits."""
    _check_library()
    if read_only:
        conn = _connect_read_only(path)
    else:
        parent = Path(path).parent
        if path != ":memory:" and not path.startswith("file:"):
            if not parent.is_dir():
                raise ConfigError(
                    f"no directory {str(parent)!r} for the SQLite file {path!r}: create it first"
                )
            if Path(path).is_dir():
                raise ConfigError(
                    f"{path!r} is a directory: give the SQLite file's path, such as "
                    f"{str(Path(path) / 'agent.db')!r}"
                )
            if Path(path).is_file() and not _writable(path):
                # sqlite3 would open it read-only without a word, and in WAL mode with a
                # writable directory even switching the journal passes: the first write fails
                raise _read_only_error(path, None)
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    if sqlite3.sqlite_version_info < _JSON_BUILT_IN:
        try:
            _check_library(conn)
        except ConfigError:
            conn.close()
            raise
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def _prepare_file(conn: sqlite3.Connection, path: str, read_only: bool = False) -> None:
    """WAL and the pragmas the savers rely on: switching a new file to WAL waits (up to the
    busy timeout) while another connection holds its lock."""
    if not read_only and path != ":memory:":
        try:
            _use_wal(conn)
        except sqlite3.OperationalError as exc:
            if "readonly" not in str(exc):
                raise
            raise _read_only_error(path, exc) from exc
        except sqlite3.DatabaseError as exc:
            if "not a database" not in str(exc):
                raise
            raise ConfigError(
                f"{path!r} is not a SQLite database ({exc}): point the saver at a SQLite "
                "file, or at a path where none exists yet to create one; nothing was changed"
            ) from None
    # WAL + NORMAL: a commit survives a crash of the process; only a power loss
    # may drop the last transactions (see README, "Guarantees").
    conn.execute("PRAGMA synchronous = NORMAL")
    # A reader holding a snapshot lets the WAL grow past its checkpoints; without a
    # limit the file then keeps that size until the last connection closes.
    conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")


def _writable(path: str) -> bool:
    # the effective ids where the OS has them: a process that dropped its rights (or root)
    # is judged as it will be served
    return os.access(path, os.W_OK, effective_ids=os.access in os.supports_effective_ids)


def _read_only_error(path: str, exc: sqlite3.Error | None) -> ConfigError:
    """A saver writes: a file, or a directory for its -wal and -shm, that this process may
    not write is said as such, with what to do."""
    parent = str(Path(path).resolve().parent)
    file, folder = not _writable(path), not _writable(parent)
    if file and folder:
        cannot = f"the SQLite file {path!r} nor its directory {parent!r}"
    elif folder:
        cannot = f"the directory {parent!r} of the SQLite file {path!r}"
    else:  # the file, or neither as far as the modes tell (a read-only mount, an ACL)
        cannot = f"the SQLite file {path!r}"
    why = f" ({exc})" if exc is not None else ""
    return ConfigError(
        f"this process may not write {cannot}{why}: a saver writes checkpoints "
        "to the file, and SQLite its -wal and -shm files beside it; make both writable to this "
        "user, or, only to read the file, pass SqliteSaver(connect_sqlite(path, read_only=True))"
    )


def _connect_read_only(path: str) -> sqlite3.Connection:
    uri = f"{Path(path).resolve().as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
    try:
        conn.execute("PRAGMA schema_version").fetchone()
    except sqlite3.OperationalError as exc:
        # A WAL file needs its -shm index beside it, which a reader cannot create in
        # a read-only directory or filesystem (a copied backup): "unable to open"
        # there, "readonly directory" where only the mode forbids it. Without a
        # -wal to replay no writer is at work: read the file as it is (still
        # mode=ro: immutable only skips the locking and the index).
        conn.close()
        wal = Path(f"{path}-wal")
        if not any(s in str(exc) for s in _NO_SHM) or (wal.exists() and wal.stat().st_size > 0):
            raise
        conn = sqlite3.connect(f"{uri}&immutable=1", uri=True, check_same_thread=False, isolation_level=None)
    return conn


# what opening a WAL file without its -shm says (SQLITE_CANTOPEN, SQLITE_READONLY_DIRECTORY)
_NO_SHM = ("unable to open database file", "attempt to write a readonly database")


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL unless it is already (the mode is stored in the file).

    Switching needs a lock the busy timeout does not wait for: a process setting
    up the same new file (which holds its write lock for the whole migration)
    would make it fail with "database is locked". Retry until the busy timeout.
    """
    start = time.monotonic()
    deadline = start + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0].lower()
            if mode in ("wal", "memory"):  # an in-memory database has no WAL to switch to
                return
            if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() == "wal":
                return
            # refused without an error: a VFS without shared memory cannot take WAL
            # (retried for a moment, in case another connection was in the way)
            if time.monotonic() > start + 1:
                return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.02)


def _execute(conn: sqlite3.Connection, batch: Batch) -> list[Any]:
    out: list[Any] = []
    for stmt in batch.stmts:
        if stmt.many:
            cur = conn.executemany(stmt.sql, stmt.params)
            out.append(cur.rowcount if stmt.counted else None)
        else:
            cur = conn.execute(stmt.sql, stmt.params)
            out.append(cur.fetchall() if cur.description else cur.rowcount if stmt.counted else None)
    return out


# What every saver on one sqlite3 connection shares (a sync and an async one on the
# caller's connection, or on `saver.conn`, two graphs):
# - one lock: each takes an open transaction on its connection for the caller's own,
#   so a saver running while another is inside its BEGIN IMMEDIATE would join that
#   transaction and vanish with its rollback;
# - the file's preparation still to run (`_Shared.pending`): an AsyncSqliteSaver given
#   a path switches the file to WAL before its first call, and a SqliteSaver on its
#   connection whose call comes first must not write in rollback-journal mode meanwhile.
# (sqlite3 connections take no weak references: a saver that opened its connection
# drops the entry when it closes it; an id reused by a later connection only shares a
# lock.)
class _Shared:
    __slots__ = ("lock", "pending")

    def __init__(self) -> None:
        self.lock = threading.RLock()
        # makes the file ready before the first operation on the connection, by any saver;
        # none runs on a file not in WAL mode; tried again by the next one when it fails
        self.pending: Callable[[], None] | None = None


_SHARED: dict[int, _Shared] = {}
_SHARED_GUARD = threading.Lock()


def _shared_of(conn: sqlite3.Connection) -> _Shared:
    with _SHARED_GUARD:
        return _SHARED.setdefault(id(conn), _Shared())


def _close_owned(conn: sqlite3.Connection) -> None:
    with _SHARED_GUARD:
        _SHARED.pop(id(conn), None)
    conn.close()


class _Runner:
    """Runs operations on one sqlite3 connection, one at a time."""

    def __init__(self, conn: sqlite3.Connection, url_hint: str, saver: object) -> None:
        self.conn = conn
        self.shared = _shared_of(conn)
        self.lock = self.shared.lock
        self.url_hint = url_hint
        self.saver = saver  # named by the error a closed connection meets
        self.after_write: Any = None  # called after each write's commit (sqlite_wal.py)

    def run(self, op: Op, txn: bool, write: bool) -> Any:
        # The whole operation under the lock, its Python too: threads sharing the
        # connection that built their statements meanwhile (see `start`, as the
        # Postgres savers do) took the GIL from the one holding the lock each time
        # its SQL released it, and 8 threads went from 0.85x to 0.75x of the
        # incumbent's throughput in alternating rounds.
        if self.shared.pending is not None:
            self._ready()
        with self.lock:
            first, result = start(op)
            if first is None:
                return result
            conn = self.conn
            try:
                if not (txn or write):
                    return drive(op, lambda b: _execute(conn, b), first)
                if conn.in_transaction:
                    return self._in_callers_transaction(op, first)
                if first.alone and not write:
                    # a read that may need nothing more (context.Batch): BEGIN and COMMIT
                    # were a sixth of the SQL of a step reading back its checkpoint
                    try:
                        first = op.send(_execute(conn, first))
                    except StopIteration as stop:
                        return stop.value
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    result = drive(op, lambda b: _execute(conn, b), first)
                    conn.execute("COMMIT")
                    if write and self.after_write is not None:
                        self.after_write()
                except BaseException:
                    # also when COMMIT itself failed: never leave the connection
                    # inside a transaction for the next operation
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                return result
            except sqlite3.Error as exc:
                if isinstance(exc, sqlite3.ProgrammingError) and "same thread" in str(exc):
                    raise _same_thread_error() from exc
                if isinstance(exc, sqlite3.ProgrammingError) and "closed database" in str(exc):
                    raise self.closed() from exc
                ours = translate(exc, self.url_hint)
                if ours is None:
                    raise
                raise ours from exc

    def _ready(self) -> None:
        with self.lock:
            pending = self.shared.pending
            if pending is None:
                return
            try:
                pending()
            except sqlite3.Error as exc:
                ours = translate(exc, self.url_hint)
                if ours is None:
                    raise
                raise ours from exc
            self.shared.pending = None

    def _in_callers_transaction(self, op: Op, first: Batch) -> Any:
        # The caller's connection is in its own transaction: join it as a
        # savepoint (a BEGIN would fail), so its rollback undoes this call too.
        conn = self.conn
        conn.execute("SAVEPOINT cpg_call")
        try:
            result = drive(op, lambda b: _execute(conn, b), first)
        except BaseException:
            conn.execute("ROLLBACK TO cpg_call")
            conn.execute("RELEASE cpg_call")
            raise
        conn.execute("RELEASE cpg_call")
        return result

    def closed(self) -> Exception:
        return closed_error(self.saver, "its SQLite connection was closed")

    def setup(self, tables: Any) -> None:
        if self.shared.pending is not None:
            self._ready()
        with self.lock:
            try:
                self.conn.total_changes  # noqa: B018 - raises on a closed connection
            except sqlite3.ProgrammingError as exc:
                raise self.closed() from exc
            if _callers_transaction(self.conn):
                raise setup_in_transaction(self.saver, "sqlite3 in_transaction is True")
            engine = sa.create_engine("sqlite://", creator=lambda: self.conn, poolclass=StaticPool)
            try:
                with engine.connect() as sc:
                    migrate.upgrade(sc, tables)
            finally:
                engine.dispose(close=False)


def _same_thread_error() -> ConfigError:
    return ConfigError(
        "this sqlite3 connection can only be used by the thread that opened it "
        "(check_same_thread=True, sqlite3's default), and LangGraph writes checkpoints from "
        "worker threads (AsyncSqliteSaver runs every statement on one): open it with "
        "sqlite3.connect(path, check_same_thread=False), or pass the file's path instead"
    )


def _refuse_if_one_thread_only(conn: sqlite3.Connection) -> None:
    """AsyncSqliteSaver runs every statement on its worker thread: a connection only the
    thread that opened it may use (``check_same_thread=True``) would fail every call."""
    refused: list[sqlite3.ProgrammingError] = []

    def probe() -> None:
        try:
            conn.cursor().close()  # sqlite3 checks the thread; no SQL is run
        except sqlite3.ProgrammingError as exc:
            refused.append(exc)

    thread = threading.Thread(target=probe, name="checkpoint-pg-sqlite-probe")
    thread.start()
    thread.join()
    if refused and "same thread" in str(refused[0]):
        raise _same_thread_error()


def _checkpoint_in_background(
    runner: _Runner, path: str, owned: bool, owner: object
) -> WalCheckpointer | None:
    """WAL checkpoints on a thread of their own (sqlite_wal.py), for a file the saver
    opened itself: a connection the caller gave keeps SQLite's own checkpoints."""
    conn = runner.conn
    if not owned or conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        return None
    conn.execute(f"PRAGMA wal_autocheckpoint = {FALLBACK_PAGES}")
    # the file as SQLite resolved it when the connection opened: a relative path names another
    # file once the process changed directory (AsyncSqliteSaver(path) starts this thread at its
    # first call), where the thread's connection would create an empty one
    (_, _, file) = conn.execute("PRAGMA database_list").fetchone()
    wal = WalCheckpointer(file or path, owner)
    runner.after_write = wal.wrote
    return wal


class _Opened(NamedTuple):
    """A file the saver opened itself, off the event loop (`AsyncSqliteSaver.from_conn_string`)."""

    conn: sqlite3.Connection
    path: str


def _callers_transaction(conn: sqlite3.Connection) -> bool:
    """Whether the caller's own transaction is open on its connection. (One in Python
    3.12's autocommit=False mode always is, and its owner ends it with commit(): not
    work in progress that only we would commit.)"""
    return conn.in_transaction and getattr(conn, "autocommit", None) is not False


def _open(conn_or_path: Any) -> tuple[sqlite3.Connection, str, bool]:
    if isinstance(conn_or_path, _Opened):
        return conn_or_path.conn, conn_or_path.path, True
    if isinstance(conn_or_path, sqlite3.Connection):
        _check_library(conn_or_path)
        if _callers_transaction(conn_or_path) and conn_or_path.isolation_level is not None:
            # sqlite3 commits the open transaction when isolation_level becomes None
            raise ConfigError(
                "the sqlite3 connection given to the saver has a transaction of yours open "
                f"(in_transaction is True, isolation_level {conn_or_path.isolation_level!r}): "
                "the saver runs it with isolation_level=None, and switching would commit "
                "your pending statements. Nothing was changed; commit or roll back first, "
                "then make the saver"
            )
        if conn_or_path.isolation_level is not None:
            # we issue BEGIN/COMMIT ourselves
            conn_or_path.isolation_level = None
        conn_or_path.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return conn_or_path, "<your sqlite file>", False
    path = path_of(str(conn_or_path))
    return connect_sqlite(path), path, True


class SqliteSaver(SyncSaver):
    """A LangGraph checkpointer in a SQLite file (sync; also serves ``ainvoke``).

    ``conn`` is the file's path (or ``sqlite:///path``), or a `sqlite3.Connection`
    opened with ``check_same_thread=False``: LangGraph writes from worker threads (a
    call made from another thread than the opening one raises `ConfigError` saying so).
    """

    def __init__(
        self,
        conn: sqlite3.Connection | str,
        *,
        serde: SerializerProtocol | None = None,
        prefix: str = DEFAULT_PREFIX,
        hash_key: bytes | None = None,
        max_value_bytes: int | None = None,
        single_writer: bool = False,
        cache_items: int = DEFAULT_CACHE_ITEMS,
    ) -> None:
        self.conn, hint, self._owned = _open(conn)
        self._init_core(
            SqliteSQL,
            serde=serde,
            prefix=prefix,
            schema=None,
            hash_key=hash_key,
            max_value_bytes=max_value_bytes,
            url_hint=hint,
            single_writer=single_writer,
            cache_items=cache_items,
        )
        self._runner = _Runner(self.conn, self._url_hint, self)
        self._wal = _checkpoint_in_background(self._runner, hint, self._owned, self)

    @classmethod
    @contextmanager
    def from_conn_string(cls, path: str, **options: Any) -> Iterator[SqliteSaver]:
        """A saver on the SQLite file at ``path`` (or ``sqlite:///path``)."""
        saver = cls(path_of(path), **options)
        try:
            yield saver
        finally:
            saver.close()

    def close(self) -> None:
        if self._wal is not None:
            self._wal.close()
        if self._owned:
            # after the operation another thread is running: closed under it, its write
            # would fail half done
            with self._runner.lock:
                _close_owned(self.conn)

    def _run(self, op: Op, *, txn: bool = True, write: bool = False) -> Any:
        return self._runner.run(op, txn, write)

    def setup(self) -> None:
        """Create or upgrade the tables (alembic upgrade to head); idempotent."""
        self._runner.setup(self.tables)
        self._schema_ok = False


class AsyncSqliteSaver(AsyncSaver):
    """A LangGraph checkpointer in a SQLite file for asyncio.

    Statements run on one worker thread, so the event loop never blocks on the file.
    Create it inside a running event loop; its sync methods work from other threads only.
    ``conn`` is the file's path (or ``sqlite:///path``), or a `sqlite3.Connection` opened
    with ``check_same_thread=False`` (else `ConfigError`).
    """

    def __init__(
        self,
        conn: sqlite3.Connection | str,
        *,
        serde: SerializerProtocol | None = None,
        prefix: str = DEFAULT_PREFIX,
        hash_key: bytes | None = None,
        max_value_bytes: int | None = None,
        single_writer: bool = False,
        cache_items: int = DEFAULT_CACHE_ITEMS,
    ) -> None:
        # before opening anything: outside a loop there is nothing to serve
        self.loop = running_loop("AsyncSqliteSaver", "SqliteSaver")
        if isinstance(conn, sqlite3.Connection):
            _refuse_if_one_thread_only(conn)
        # A path: the connection alone here, the file made ready (WAL) on the worker before
        # the first call (`_Shared.pending`), since switching a new file to WAL waits while
        # another connection holds its lock, and here that wait would block the event loop.
        deferred = not isinstance(conn, (sqlite3.Connection, _Opened))
        if deferred:
            path = path_of(str(conn))
            self.conn, hint, self._owned = _connect(path), path, True
        else:
            self.conn, hint, self._owned = _open(conn)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint-pg-sqlite")
        self._closed = False
        self._wal: WalCheckpointer | None = None
        self._init_core(
            SqliteSQL,
            serde=serde,
            prefix=prefix,
            schema=None,
            hash_key=hash_key,
            max_value_bytes=max_value_bytes,
            url_hint=hint,
            single_writer=single_writer,
            cache_items=cache_items,
        )
        self._runner = _Runner(self.conn, self._url_hint, self)
        if deferred:
            self._runner.shared.pending = partial(self._ready_file, hint)
        else:
            self._wal = _checkpoint_in_background(self._runner, hint, self._owned, self)

    def _ready_file(self, path: str) -> None:
        # before the first call on the connection (`_Shared.pending`): on the worker, or on
        # the thread of a SqliteSaver given this saver's connection
        _prepare_file(self.conn, path)
        self._wal = _checkpoint_in_background(self._runner, path, self._owned, self)

    @classmethod
    @asynccontextmanager
    async def from_conn_string(cls, path: str, **options: Any) -> AsyncIterator[AsyncSqliteSaver]:
        """A saver on the SQLite file at ``path`` (or ``sqlite:///path``)."""
        path = path_of(path)
        # opened on a worker thread: switching a new file to WAL waits (sleeping) for
        # as long as another connection holds its lock, which blocked the event loop
        conn = await asyncio.to_thread(connect_sqlite, path)
        try:
            saver = cls(_Opened(conn, path), **options)  # type: ignore[arg-type]
        except BaseException:
            _close_owned(conn)
            raise
        try:
            yield saver
        finally:
            await saver.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        # on the caller's loop, as `_arun` (a future of another loop cannot be awaited here);
        # after the operations already queued: they run to their end first
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close_now)
        except BaseException:
            # cancelled while the operations queued before the close finish: they and
            # the close still run, then the worker ends (else it waited for work for ever)
            self._executor.shutdown(wait=False)
            raise
        self._executor.shutdown(wait=True)

    def _submit(self, fn: Any, *args: Any) -> Awaitable[Any]:
        """``fn(*args)`` on the worker, from the caller's loop; a closed saver's error if
        `aclose` ran (asyncio's "cannot schedule new futures" says neither which nor why)."""
        if self._closed:
            raise self._runner.closed()
        try:
            return asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except RuntimeError as exc:  # shut down meanwhile (aclose on another thread's loop)
            raise self._runner.closed() from exc

    def _close_now(self) -> None:
        if self._wal is not None:
            self._wal.close()
        if self._owned:
            _close_owned(self.conn)

    async def _arun(self, op: Op, *, txn: bool = True, write: bool = False) -> Any:
        # run_in_executor does not carry context variables (the caller's lease) over
        # On the caller's loop, which may not be `self.loop` (a saver shared by threads
        # that each run their own loop): a future of another loop cannot be awaited here,
        # and the worker would still commit the write the caller is told failed.
        run = contextvars.copy_context().run
        return await self._submit(run, self._runner.run, op, txn, write)

    async def asetup(self) -> None:
        """Create or upgrade the tables (alembic upgrade to head); idempotent."""
        # on the caller's loop, as `_arun`: awaited on another, the migration would run
        # while its caller was told RuntimeError
        await self._submit(self._runner.setup, self.tables)
        self._schema_ok = False

    def setup(self) -> None:
        """Sync twin of `asetup`, for use from another thread."""
        self._sync("setup", self.asetup)
