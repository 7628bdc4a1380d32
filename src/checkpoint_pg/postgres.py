"""The Postgres savers: `PostgresSaver` (sync) and `AsyncPostgresSaver`, on psycopg 3.

Statements are never prepared server-side unless the saver is given
``prepare=True``, so the savers work through PgBouncer in transaction mode
whatever the connection's own ``prepare_threshold``. Every hot call is one
round trip.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import quote, unquote, unquote_plus

import sqlalchemy as sa
from langgraph.checkpoint.serde.base import SerializerProtocol
from sqlalchemy.pool import StaticPool

from checkpoint_pg import migrate
from checkpoint_pg.core.ops import Batch, Op
from checkpoint_pg.core.values import DEFAULT_CACHE_ITEMS
from checkpoint_pg.errors import AsyncMisuseError, ConfigError, MissingDriverError
from checkpoint_pg.schema import DEFAULT_PREFIX, PG_SCHEMES
from checkpoint_pg.shells.aio import AsyncSaver, adrive, finish_then_cancel, mark_unsent, running_loop
from checkpoint_pg.shells.errors import (
    ConnectionLost,
    closed_error,
    prepared_elsewhere,
    setup_in_transaction,
    translate,
)
from checkpoint_pg.shells.sync import SyncSaver, drive, start
from checkpoint_pg.sql.postgres import PostgresSQL

try:
    import psycopg
    from psycopg.rows import tuple_row
    from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolClosed, PoolTimeout, TooManyRequests
except ImportError as exc:  # pragma: no cover - exercised by the missing-driver test
    raise MissingDriverError(
        f"the Postgres savers need psycopg 3 and psycopg_pool ({exc}): "
        "pip install 'checkpoint-pg[postgres]'"
    ) from None

__all__ = ["PostgresSaver", "AsyncPostgresSaver"]



def conninfo_of(url: str, *, sqlalchemy: bool = False) -> str:
    """A libpq conninfo for a URL or a libpq ``key=value`` string (with ``sqlalchemy``, a
    postgresql+psycopg:// URL), refusing schemes we do not serve."""
    if isinstance(url, str) and "://" not in url and "=" in url and _unparsable(url) is None:
        # "host=db dbname=app", as psycopg.connect and the incumbent's from_conn_string take
        return conninfo_of(url_of(url), sqlalchemy=True) if sqlalchemy else url
    if not isinstance(url, str) or not url.startswith(PG_SCHEMES):
        scheme = url.split("://", 1)[0] if isinstance(url, str) and "://" in url else url
        if isinstance(url, str) and (scheme == url or scheme == "sqlite"):
            raise ConfigError(
                f"{url!r} is not a Postgres URL: the Postgres savers take "
                "postgresql://user@host/db (or libpq's 'host=... dbname=...'); for a SQLite "
                "file use SqliteSaver or AsyncSqliteSaver"
            )
        raise ConfigError(
            f"unsupported database URL scheme {scheme!r}: use postgresql://user@host/db "
            "for Postgres, or a file path / sqlite:///path for SQLite"
        )
    rest = url.split("://", 1)[1]
    problem = _unparsable(f"postgresql://{rest}")
    if problem is not None:
        # raised here, not in the except clause: no chained driver error quoting the URL
        raise ConfigError(f"invalid database URL {mask(url)}: {problem}")
    return f"postgresql+psycopg://{rest}" if sqlalchemy else f"postgresql://{rest}"


def url_of(conninfo: str) -> str:
    """A libpq conninfo as a postgresql:// URL: a pool made from ``"host=db dbname=app"``
    is named in error messages by a URL that `checkpoint-pg --url` takes, not by a
    placeholder. A URL, or what libpq cannot parse, comes back as it is. A socket
    directory or a list of hosts goes in the query string, where libpq takes any keyword."""
    if "://" in conninfo:
        return conninfo
    try:
        params = {k: str(v) for k, v in psycopg.conninfo.conninfo_to_dict(conninfo).items() if v is not None}
    except psycopg.Error:
        return conninfo
    user, password = params.pop("user", None), params.pop("password", None)
    dbname = params.pop("dbname", "")
    host, port = params.get("host"), params.get("port")
    netloc = ""
    if user is not None:
        netloc = quote(user, safe="") + (f":{quote(password, safe='')}" if password is not None else "") + "@"
    if host and not host.startswith("/") and "," not in host and (port is None or port.isdigit()):
        params.pop("host")
        params.pop("port", None)
        netloc += f"[{host}]" if ":" in host else host
        netloc += f":{port}" if port else ""
    # percent-encoded throughout, never "+" for a space: libpq decodes only %XX
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params.items())
    return f"postgresql://{netloc}/{quote(dbname, safe='')}" + (f"?{query}" if query else "")


def _unparsable(conninfo: str) -> str | None:
    """libpq's complaint about a URL it cannot parse, without the URL's secrets: it
    quotes the token it stopped at (a password with a stray ``%`` or a space) or the
    whole URL."""
    try:
        psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.Error as exc:
        return hide_secrets(str(exc), conninfo)
    return None


def hide_secrets(text: str, url: str) -> str:
    """``text`` with ``url`` and its passwords (as written, and percent-decoded) masked."""
    text = text.replace(url, mask(url))
    rest = url.split("://", 1)[-1]
    netloc = rest.split("/", 1)[0].split("?", 1)[0]
    found = [
        # the userinfo as libpq reads it (up to the first "@") and as SQLAlchemy does (the last)
        *(part.split(":", 1)[1] for part in (rest.split("@", 1)[0], netloc.rpartition("@")[0])
          if "@" in rest and ":" in part),
        *re.findall(r"[?&](?:%s)=([^&#]*)" % "|".join(_SECRET_PARAMS), rest),
    ]
    for secret in sorted({v for s in found for v in (s, unquote(s), unquote_plus(s))}, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text


def read_only_options(conninfo: str) -> str:
    """libpq ``options`` for a read-only session: the user's own (the URL's
    ``options=``, else $PGOPTIONS, which an explicit ``options`` would replace)
    followed by ``default_transaction_read_only``."""
    own = psycopg.conninfo.conninfo_to_dict(conninfo).get("options") or os.environ.get("PGOPTIONS", "")
    return f"{own} -c default_transaction_read_only=on".strip()


def connect_read_only(conninfo: str, **kw: Any) -> Any:
    """A psycopg connection whose session defaults to read-only transactions, or, where
    the server side refuses the ``options`` startup parameter (PgBouncer does unless told
    to ignore it), a plain one: the savers' reads still run in their own transactions."""
    try:
        return psycopg.connect(conninfo, options=read_only_options(conninfo), **kw)
    except psycopg.OperationalError as exc:
        if "options" not in str(exc):  # e.g. PgBouncer refuses the startup parameter
            raise
        return psycopg.connect(conninfo, **kw)


# libpq takes a password from the query string too (and the SSL key's passphrase)
_SECRET_PARAMS = ("password", "sslpassword")


def mask(url: str) -> str:
    """The URL with its password hidden, for error messages: the one before the host
    and a ``?password=`` (or ``sslpassword=``) parameter alike.

    Hidden in the URL as written, not rendered again: SQLAlchemy's rendering writes a
    query's %20 as "+", which libpq takes for a plus (``options=-c%20search_path%3Dx``
    became ``-c+search_path=x``, refused by the server), and a database's %20 as a space,
    so that the command a message advises would not connect."""
    try:
        sa.engine.make_url(url)  # what it cannot parse is not shown at all
    except Exception:
        return "<your database url>"
    # the password between the user and the host, as SQLAlchemy's URL grammar has it
    url = re.sub(r"^([\w+]+://[^:/@?]*:)[^@]*@", r"\1***@", url)
    return re.sub(r"([?&](?:%s)=)[^&#]*" % "|".join(_SECRET_PARAMS), r"\1***", url)


# A read of several statements (a list page, a delta history) sees one snapshot,
# so a delete committing in between cannot leave it half a checkpoint.
_SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"
# ... but only in a transaction of our own: inside the caller's (a connection that
# is not autocommit, already in a transaction) a read joins it as a savepoint,
# and the caller's isolation level holds.
_IDLE = psycopg.pq.TransactionStatus.IDLE

_CONN_KW = {"autocommit": True, "prepare_threshold": None}


def _prepare_mode(prepare: Any) -> bool | None:
    """What the saver passes as psycopg's ``prepare``: False, never (the default: behind
    PgBouncer before 1.21 in transaction mode a statement name can stand for another
    client's statement, a wrong write nobody sees); None, as the connection's
    ``prepare_threshold`` says (``prepare=True``)."""
    if type(prepare) is not bool:
        raise ConfigError(
            f"prepare must be True or False, got {prepare!r}: True prepares statements "
            "server-side as the connection's prepare_threshold says (a few percent faster "
            "calls; for a direct connection, or PgBouncer 1.21+ with max_prepared_statements)"
        )
    return None if prepare else False


def _pool_kwargs(prepare: Any) -> dict[str, Any]:
    """The connection settings of a pool `from_conn_string` opens: with ``prepare``, each
    statement prepared at its first run."""
    return {**_CONN_KW, "prepare_threshold": 0 if _prepare_mode(prepare) is None else None}


# seconds the first connection may take: a server that does not answer by then is left to
# the pool's wait (this timeout is the probe's only, not the pool's)
_PROBE_TIMEOUT = 5


# seconds `from_conn_string` waits for its pool's first connection
_OPEN_TIMEOUT = 30


def _raise_with_reason(exc: BaseException, refused: BaseException | None) -> None:
    """The pool's timeout with what the first connection met (psycopg_pool's says only
    "pool initialization incomplete": the reason went to its log)."""
    if isinstance(exc, PoolTimeout) and refused is not None:
        raise PoolTimeout(
            f"no connection to the server within {_OPEN_TIMEOUT} s ({exc}); the first "
            f"attempt: {' '.join(str(refused).split())}"
        ) from refused


def _refused_for_good(exc: psycopg.OperationalError) -> bool:
    """A first connection of `from_conn_string` refused for a reason its pool's retries would
    not change: a database or role that is not there, a password or pg_hba.conf refused. It
    is raised at once, with the server's text, instead of after the pool's 30 s of retrying
    as psycopg_pool's "pool initialization incomplete", which does not say why. A server not
    answering (yet) is waited for by the pool, as before."""
    text = str(exc)
    return any(
        cause in text
        for cause in (
            "does not exist",  # database, role
            "authentication failed",
            "no password supplied",
            "no pg_hba.conf entry",
            "permission denied for database",
        )
    )


def _has_rows(cur: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any]) -> bool:
    # what `cur.description` tells, without building a Column per column
    res = cur.pgresult
    return res is not None and (res.nfields > 0 or res.status == _TUPLES_OK)


_TUPLES_OK = psycopg.pq.ExecStatus.TUPLES_OK


def _execute(conn: psycopg.Connection, batch: Batch, prepare: bool | None = False) -> list[Any]:
    # No pipeline mode: its flush/wait cycle costs milliseconds per batch here,
    # while the hot operations are single statements (one round trip each).
    out = []
    for stmt in batch.stmts:
        cur = conn.cursor(row_factory=tuple_row)
        # prepare: False, never; None, as the connection says (`_prepare_mode`)
        cur.execute(stmt.sql, stmt.params, prepare=prepare)
        out.append(cur.fetchall() if batch.fetch and _has_rows(cur) else None)
    return out


async def _aexecute(
    conn: psycopg.AsyncConnection, batch: Batch, prepare: bool | None = False
) -> list[Any]:
    out = []
    for stmt in batch.stmts:
        cur = conn.cursor(row_factory=tuple_row)
        await cur.execute(stmt.sql, stmt.params, prepare=prepare)
        out.append(await cur.fetchall() if batch.fetch and _has_rows(cur) else None)
    return out


# The pool's own refusals: OperationalErrors without a SQLSTATE, yet no connection died.
# Run again, a call the pool timed out waited its timeout twice.
_POOL_REFUSED = (PoolTimeout, PoolClosed, TooManyRequests)


def _refuse_closed(saver: Any, pool: Any, conn: Any) -> None:
    """A closed pool or connection as a closed saver: psycopg_pool's PoolClosed and
    psycopg's "the connection is closed" say neither which saver nor what to do."""
    # (a pool never opened is closed too: psycopg_pool's "not open yet" says what to do)
    if pool is not None and pool.closed and getattr(pool, "_opened", True):
        raise mark_unsent(closed_error(saver, "its connection pool was closed"))
    if conn is not None and conn.closed:
        raise mark_unsent(closed_error(saver, "its psycopg connection was closed"))


def _pool_closed(exc: psycopg.Error) -> bool:
    """The pool was closed since `_refuse_closed` looked: at the call's getconn ("is
    already closed"), or under the call while it waited for a connection ("is closed",
    what psycopg_pool tells its waiting clients). Not a pool never opened ("not open
    yet", which says what to do)."""
    return isinstance(exc, PoolClosed) and "not open yet" not in str(exc)


def _lost(exc: psycopg.OperationalError) -> bool:
    """The connection itself died (terminated, closed by the server or a proxy)."""
    from psycopg import errors

    if isinstance(exc, _POOL_REFUSED) or prepared_elsewhere(exc):
        return False
    return isinstance(exc, (errors.AdminShutdown, errors.ConnectionFailure)) or (
        exc.sqlstate is None or exc.sqlstate.startswith("08") or exc.sqlstate == "57P01"
    )


class PostgresSaver(SyncSaver):
    """A LangGraph checkpointer on Postgres (sync; also serves ``ainvoke``).

    ``conn`` is a psycopg `Connection`, a psycopg_pool `ConnectionPool`, or a
    SQLAlchemy `Engine` using the psycopg driver. Call `setup()` once to create
    or upgrade the tables. ``prepare=True`` prepares statements server-side as
    the connection's ``prepare_threshold`` says (not behind PgBouncer before 1.21
    in transaction mode); by default none is prepared.
    """

    def __init__(
        self,
        conn: Any,
        *,
        serde: SerializerProtocol | None = None,
        prefix: str = DEFAULT_PREFIX,
        schema: str | None = None,
        hash_key: bytes | None = None,
        max_value_bytes: int | None = None,
        single_writer: bool = False,
        cache_items: int = DEFAULT_CACHE_ITEMS,
        prepare: bool = False,
    ) -> None:
        self._prepare = _prepare_mode(prepare)
        self._conn = self._pool = self._engine = None
        if isinstance(conn, ConnectionPool):
            self._pool = conn
            hint = mask(url_of(conn.conninfo))
        elif isinstance(conn, psycopg.Connection):
            self._conn = conn
            hint = "<your database url>"
        elif isinstance(conn, sa.Engine):
            if conn.dialect.name != "postgresql" or conn.dialect.driver != "psycopg":
                raise ConfigError(
                    f"PostgresSaver needs a postgresql+psycopg engine, got {conn.url.drivername!r}"
                )
            self._engine = conn
            hint = mask(str(conn.url))
        else:
            raise ConfigError(
                "PostgresSaver takes a psycopg Connection, a psycopg_pool ConnectionPool or a "
                f"SQLAlchemy Engine, got {type(conn).__name__}; "
                "use PostgresSaver.from_conn_string(url) for a URL"
            )
        self._lock = threading.Lock()
        self._init_core(
            PostgresSQL,
            serde=serde,
            prefix=prefix,
            schema=schema,
            hash_key=hash_key,
            max_value_bytes=max_value_bytes,
            url_hint=hint,
            single_writer=single_writer,
            cache_items=cache_items,
        )

    @classmethod
    @contextmanager
    def from_conn_string(
        cls,
        url: str,
        *,
        pool_size: int = 4,
        prepare: bool = False,
        **options: Any,
    ) -> Iterator[PostgresSaver]:
        """A saver on a small connection pool that replaces dead connections.

        ``prepare=True`` prepares each statement server-side at its first run (a
        few percent faster calls, measured), for a direct connection or PgBouncer
        1.21+ with ``max_prepared_statements``; the default prepares none, which
        PgBouncer in transaction mode before 1.21 requires.
        """
        conninfo, kwargs = conninfo_of(url), _pool_kwargs(prepare)
        refused = None
        try:
            psycopg.connect(conninfo, **kwargs, connect_timeout=_PROBE_TIMEOUT).close()
        except psycopg.OperationalError as exc:
            if _refused_for_good(exc):
                raise
            refused = exc
        pool = ConnectionPool(conninfo, min_size=1, max_size=pool_size, kwargs=kwargs, open=False)
        try:
            pool.open(wait=True, timeout=_OPEN_TIMEOUT)
        except BaseException as exc:
            # interrupted while waiting for the server (KeyboardInterrupt, a signal's
            # timeout): the pool's workers would go on reconnecting for ever
            pool.close()
            _raise_with_reason(exc, refused)
            raise
        try:
            yield cls(pool, prepare=prepare, **options)
        finally:
            pool.close()

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        _refuse_closed(self, self._pool, self._conn)
        if self._pool is not None:
            with self._pool.connection() as conn:
                yield conn
        elif self._engine is not None:
            raw = self._engine.raw_connection()
            try:
                yield raw.driver_connection  # type: ignore[misc]
            finally:
                raw.close()
        else:
            with self._lock:
                # closed while this call waited for another's turn on it
                _refuse_closed(self, None, self._conn)
                yield self._conn  # type: ignore[misc]

    def _run(self, op: Op, *, txn: bool = True, write: bool = False) -> Any:
        first, result = start(op)  # before taking a connection (see `start`)
        if first is None:
            return result
        try:
            with self._connection() as conn:
                if not txn and self._engine is not None:
                    return self._outside_transaction(conn, op, first)
                if txn or not conn.autocommit:
                    ours = conn.info.transaction_status == _IDLE
                    with conn.transaction():
                        if not write and ours:
                            conn.execute(_SNAPSHOT, prepare=False)
                        return drive(op, lambda b: _execute(conn, b, self._prepare), first)
                return drive(op, lambda b: self._one_statement(conn, b), first)
        except psycopg.errors.DeadlockDetected as exc:
            # a put and a put_writes of one thread inserting shared objects
            raise ConnectionLost(str(exc)) from exc
        except psycopg.Error as exc:
            if _pool_closed(exc):
                raise mark_unsent(closed_error(self, "its connection pool was closed")) from exc
            if isinstance(exc, _POOL_REFUSED):
                # no connection given: nothing sent (a lease take has nothing to give back)
                raise mark_unsent(exc)
            if isinstance(exc, psycopg.OperationalError) and self._pool is not None and _lost(exc):
                raise ConnectionLost(str(exc)) from exc
            ours = translate(exc, self._url_hint)
            if ours is None:
                raise
            raise ours from exc

    def _outside_transaction(self, conn: psycopg.Connection, op: Op, first: Batch) -> Any:
        """An operation outside any transaction (vacuum) on an engine's connection: the
        saver borrowed it idle, so it runs in autocommit mode (SQLAlchemy's are not, and
        VACUUM refuses a transaction), and goes back to the pool as it came."""
        was = conn.autocommit
        conn.autocommit = True
        try:
            return drive(op, lambda b: self._one_statement(conn, b), first)
        finally:
            conn.autocommit = was

    def _drop_dead_connections(self) -> None:
        # After the server closed idle sessions, every pooled connection may be
        # dead: check them all (reconnecting as needed) before the retry.
        if self._pool is not None:
            self._pool.check()

    def _one_statement(self, conn: psycopg.Connection, batch: Batch) -> list[Any]:
        # Outside a transaction each statement commits alone: a batch of several
        # (a put_writes with regular and special writes) gets one of its own.
        if len(batch.stmts) > 1:
            with conn.transaction():
                return _execute(conn, batch, self._prepare)
        return _execute(conn, batch, self._prepare)

    def setup(self) -> None:
        """Create or upgrade the tables (alembic upgrade to head); idempotent and concurrency-safe."""
        with self._sa_connection() as sc:
            migrate.upgrade(sc, self.tables)
        self._schema_ok = False

    @contextmanager
    def _sa_connection(self) -> Iterator[sa.Connection]:
        if self._engine is not None:
            with self._engine.connect() as sc:
                yield sc
            return
        with self._connection() as conn:
            status = conn.info.transaction_status
            if status != _IDLE:
                # (psycopg would refuse the autocommit switch below with its own error)
                raise setup_in_transaction(self, f"transaction status {status.name}")
            autocommit, rows, cursors = conn.autocommit, conn.row_factory, conn.cursor_factory
            conn.autocommit = False  # migrations run in one transaction
            # SQLAlchemy reads plain tuples from the driver's own cursors: under the
            # incumbent's dict_row it failed at its first statement and closed the caller's
            # connection (it read the server version as 'version')
            conn.row_factory, conn.cursor_factory = tuple_row, psycopg.Cursor
            engine = sa.create_engine(
                "postgresql+psycopg://", creator=lambda: conn, poolclass=StaticPool
            )
            try:
                with engine.connect() as sc:
                    yield sc
            finally:
                engine.dispose(close=False)
                if not conn.closed:
                    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                        conn.rollback()
                    conn.autocommit = autocommit
                    conn.row_factory, conn.cursor_factory = rows, cursors


class AsyncPostgresSaver(AsyncSaver):
    """A LangGraph checkpointer on Postgres for asyncio (``ainvoke`` / ``astream``).

    ``conn`` is a psycopg `AsyncConnection` or a psycopg_pool
    `AsyncConnectionPool`. Create it inside a running event loop; its sync
    methods work from other threads only. ``prepare``: as `PostgresSaver`.
    """

    _shields_own_writes = True  # a write waiting for a connection is cancelled at once (_arun)

    def __init__(
        self,
        conn: Any,
        *,
        serde: SerializerProtocol | None = None,
        prefix: str = DEFAULT_PREFIX,
        schema: str | None = None,
        hash_key: bytes | None = None,
        max_value_bytes: int | None = None,
        single_writer: bool = False,
        cache_items: int = DEFAULT_CACHE_ITEMS,
        prepare: bool = False,
    ) -> None:
        self.loop = running_loop("AsyncPostgresSaver", "PostgresSaver")
        self._prepare = _prepare_mode(prepare)
        self._conn = self._pool = None
        if isinstance(conn, AsyncConnectionPool):
            self._pool = conn
            hint = mask(url_of(conn.conninfo))
        elif isinstance(conn, psycopg.AsyncConnection):
            self._conn = conn
            hint = "<your database url>"
        else:
            raise ConfigError(
                "AsyncPostgresSaver takes a psycopg AsyncConnection or a psycopg_pool "
                f"AsyncConnectionPool, got {type(conn).__name__}; "
                "use AsyncPostgresSaver.from_conn_string(url) for a URL"
            )
        self._lock = asyncio.Lock()
        self._init_core(
            PostgresSQL,
            serde=serde,
            prefix=prefix,
            schema=schema,
            hash_key=hash_key,
            max_value_bytes=max_value_bytes,
            url_hint=hint,
            single_writer=single_writer,
            cache_items=cache_items,
        )

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls,
        url: str,
        *,
        pool_size: int = 4,
        prepare: bool = False,
        **options: Any,
    ) -> AsyncIterator[AsyncPostgresSaver]:
        """A saver on a small connection pool that replaces dead connections
        (``prepare``: as `PostgresSaver.from_conn_string`)."""
        conninfo, kwargs = conninfo_of(url), _pool_kwargs(prepare)
        refused = None
        try:
            probe = await psycopg.AsyncConnection.connect(
                conninfo, **kwargs, connect_timeout=_PROBE_TIMEOUT
            )
            await probe.close()
        except psycopg.OperationalError as exc:
            if _refused_for_good(exc):
                raise
            refused = exc
        pool = AsyncConnectionPool(
            conninfo, min_size=1, max_size=pool_size, kwargs=kwargs, open=False
        )
        try:
            await pool.open(wait=True, timeout=_OPEN_TIMEOUT)
        except BaseException as exc:
            # cancelled while waiting for the server (a caller's timeout): the pool's
            # tasks would go on reconnecting for ever; closed to its end even if the
            # caller is cancelled again meanwhile
            await finish_then_cancel(pool.close())
            _raise_with_reason(exc, refused)
            raise
        try:
            yield cls(pool, prepare=prepare, **options)
        finally:
            # to its end: cut off by a cancellation, psycopg_pool leaves its idle
            # connections open and the calls waiting for one waiting
            await finish_then_cancel(pool.close())

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        _refuse_closed(self, self._pool, self._conn)
        if asyncio.get_running_loop() is not self.loop:
            # psycopg_pool's waits (and the lock of one connection) belong to the loop the
            # saver serves: awaited from another, a call waits for ever once calls contend
            raise AsyncMisuseError(
                "this AsyncPostgresSaver was awaited on another event loop than the one it was "
                "created on, whose connections it holds (a call from another loop waits for "
                "ever once calls contend for one): create a saver on each event loop, or share "
                "a PostgresSaver, which serves every loop and thread"
            )
        if self._pool is not None:
            async with self._pool.connection() as conn:
                yield conn
        else:
            async with self._lock:
                # closed while this call waited for another's turn on it
                _refuse_closed(self, None, self._conn)
                yield self._conn  # type: ignore[misc]

    async def _arun(self, op: Op, *, txn: bool = True, write: bool = False) -> Any:
        first, result = start(op)  # before taking a connection (see `start`)
        if first is None:
            return result
        connected = False
        try:
            async with self._connection() as conn:
                connected = True
                work = self._send(conn, op, first, txn, write)
                # a write, once it may send SQL, runs to its end (see AsyncSaver._ado)
                return await (finish_then_cancel(work) if write else work)
        except asyncio.CancelledError as exc:
            if write and not connected:
                # still waiting for a connection: ends now, with nothing sent
                raise mark_unsent(exc)
            raise
        except psycopg.errors.DeadlockDetected as exc:
            # a put and a put_writes of one thread inserting shared objects
            raise ConnectionLost(str(exc)) from exc
        except psycopg.Error as exc:
            if _pool_closed(exc):
                raise mark_unsent(closed_error(self, "its connection pool was closed")) from exc
            if isinstance(exc, _POOL_REFUSED):
                # no connection given: nothing sent (a lease take has nothing to give back)
                raise mark_unsent(exc)
            if isinstance(exc, psycopg.OperationalError) and self._pool is not None and _lost(exc):
                raise ConnectionLost(str(exc)) from exc
            ours = translate(exc, self._url_hint)
            if ours is None:
                raise
            raise ours from exc

    async def _send(
        self, conn: psycopg.AsyncConnection, op: Op, first: Batch, txn: bool, write: bool
    ) -> Any:
        if txn or not conn.autocommit:
            ours = conn.info.transaction_status == _IDLE
            async with conn.transaction():
                if not write and ours:
                    await conn.execute(_SNAPSHOT, prepare=False)
                return await adrive(op, lambda b: _aexecute(conn, b, self._prepare), first)
        return await adrive(op, lambda b: self._one_statement(conn, b), first)

    async def _adrop_dead_connections(self) -> None:
        if self._pool is not None:
            await self._pool.check()

    async def _one_statement(self, conn: psycopg.AsyncConnection, batch: Batch) -> list[Any]:
        if len(batch.stmts) > 1:
            async with conn.transaction():
                return await _aexecute(conn, batch, self._prepare)
        return await _aexecute(conn, batch, self._prepare)

    async def asetup(self) -> None:
        """Create or upgrade the tables (alembic upgrade to head); idempotent and concurrency-safe."""
        # refused as every call is: it would migrate on a connection of its own
        _refuse_closed(self, self._pool, self._conn)
        kwargs: dict[str, Any] = {}
        if self._pool is not None:
            conninfo = self._pool.conninfo
            # the pool's connection options too (user, search_path, sslmode...): the
            # migration must reach the tables the saver's own connections see
            # (not its row or cursor factory: classes for async cursors, and a migration
            # needs plain tuples)
            kwargs = {
                k: v
                for k, v in (self._pool.kwargs or {}).items()
                if k not in ("row_factory", "cursor_factory")
            }
        else:
            info = self._conn.info  # type: ignore[union-attr]
            conninfo = psycopg.conninfo.make_conninfo(info.dsn, password=info.password)

        def run() -> None:
            # alembic is synchronous: migrate on a short-lived sync connection
            with psycopg.connect(conninfo, **{**kwargs, **_CONN_KW}) as conn:
                PostgresSaver(
                    conn, prefix=self.tables.prefix, schema=self.tables.schema
                ).setup()

        await asyncio.to_thread(run)
        self._schema_ok = False

    def setup(self) -> None:
        """Sync twin of `asetup`, for use from another thread."""
        self._sync("setup", self.asetup)
