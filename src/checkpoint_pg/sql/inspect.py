"""The SQL of the inspection API and the ``checkpoint-pg`` command, both backends side by side.

Nothing here decodes values: the statements read keys, counts and sizes; values
are read through the core's operations. Every value is a bound parameter; only
validated table names (quoted by SQLAlchemy's preparer) are formatted in.

`InspectSQL` reads our own tables; `IncumbentSQL` reads the tables of
``langgraph-checkpoint-postgres`` / ``langgraph-checkpoint-sqlite`` for the import.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

from checkpoint_pg.core.chunks import CHUNK, CHUNK_TYPE
from checkpoint_pg.core.codec import HASH_SIZE
from checkpoint_pg.schema import Tables
from checkpoint_pg.sql import Stmt
from checkpoint_pg.sql.common import Names
from checkpoint_pg.sql.postgres import metadata_matches as postgres_matches
from checkpoint_pg.sql.sqlite import metadata_matches as sqlite_matches

__all__ = ["InspectSQL", "PostgresInspectSQL", "SqliteInspectSQL", "IncumbentSQL", "inspect_sql_for"]


class InspectSQL:
    """What both backends share; subclasses fill in the dialect-specific parts."""

    name: str
    # placeholder style: "%(x)s" on Postgres, ":x" on SQLite
    _p: str

    def __init__(self, tables: Tables, dialect: Any) -> None:
        self.n = Names(tables, dialect)

    def param(self, name: str) -> str:
        return self._p.format(name)

    # -- per backend ---------------------------------------------------------------

    def read_only(self) -> list[Stmt]:
        """Statements opening a read-only, consistent transaction (first in the transaction)."""
        raise NotImplementedError

    def _metadata_filter(self, column: str, filter: dict[str, Any], p: dict[str, Any]) -> list[str]:
        raise NotImplementedError

    def _octets(self, expr: str, text: bool = False) -> str:
        raise NotImplementedError

    def _holds(self, blob: str, part: str) -> str:
        """SQL true when the bytes ``part`` occur in ``blob``."""
        raise NotImplementedError

    # -- threads -------------------------------------------------------------------

    def list_threads(
        self,
        *,
        filter: dict[str, Any] | None,
        limit: int,
        offset: int,
        cursor: tuple[Any, str] | None,
        thread_ids: Sequence[str] | None = None,
        sizes: bool = True,
    ) -> Stmt:
        """Threads newest first: (thread_id, created_at, updated_at, metadata, checkpoints, bytes).

        Reads the threads table; the counts are index-range reads of the listed
        threads only (every primary key starts with thread_id).
        """
        n, P = self.n, self.param
        p: dict[str, Any] = {}
        where: list[str] = []
        if filter:
            where.extend(self._metadata_filter("t.metadata", filter, p))
        if cursor is not None:
            where.append(
                f"(t.updated_at < {P('cu')} OR (t.updated_at = {P('cu')} AND t.thread_id < {P('ct')}))"
            )
            p.update(cu=cursor[0], ct=cursor[1])
        if thread_ids is not None:
            where.append(self._in_text("t.thread_id", "ids", thread_ids, p))
        if sizes:
            count = f"(SELECT count(*) FROM {n.checkpoints} c WHERE c.thread_id = t.thread_id)"
            size = " + ".join(
                f"(SELECT coalesce(sum({self._octets('x.' + column, text)}), 0) FROM {table} x "
                "WHERE x.thread_id = t.thread_id)"
                for table, column, text, _ in self._sized()
            )
        else:
            count = size = "NULL"
        sql = (
            f"SELECT t.thread_id, t.created_at, t.updated_at, t.metadata, {count}, {size} FROM {n.threads} t"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY t.updated_at DESC, t.thread_id DESC LIMIT {P('limit')} OFFSET {P('offset')}"
        p.update(limit=limit, offset=offset)
        return Stmt(sql, p)

    def threads_updated_before(self, cutoff: Any) -> Stmt:
        """Ids of the threads whose last write is older than ``cutoff``."""
        return Stmt(
            f"SELECT thread_id FROM {self.n.threads} WHERE updated_at < {self.param('cut')} "
            "ORDER BY thread_id",
            {"cut": cutoff},
        )

    def all_thread_ids(self) -> Stmt:
        return Stmt(f"SELECT thread_id FROM {self.n.threads} ORDER BY thread_id", {})

    def thread_ids_page(self, filter: dict[str, Any] | None, after: str | None, limit: int) -> Stmt:
        """Thread ids in id order after ``after``: a range read of the primary key."""
        P = self.param
        p: dict[str, Any] = {"limit": limit}
        where = self._metadata_filter("metadata", filter, p) if filter else []
        if after is not None:
            where.append(f"thread_id > {P('after')}")
            p["after"] = after
        sql = f"SELECT thread_id FROM {self.n.threads}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return Stmt(sql + f" ORDER BY thread_id LIMIT {P('limit')}", p)

    # -- checkpoints and writes of one thread (keys only) -------------------------

    def thread_checkpoints(self, t: str, ns: str | None) -> Stmt:
        """(ns, id, parent, run_id, checkpoint doc, metadata) oldest first, without values."""
        P = self.param
        p: dict[str, Any] = {"t": t}
        sql = (
            "SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, run_id, checkpoint, metadata "
            f"FROM {self.n.checkpoints} WHERE thread_id = {P('t')}"
        )
        if ns is not None:
            sql += f" AND checkpoint_ns = {P('ns')}"
            p["ns"] = ns
        return Stmt(sql + " ORDER BY checkpoint_id, checkpoint_ns", p)

    def thread_checkpoint_keys(self, t: str) -> Stmt:
        """(ns, id, parent id) of every checkpoint of a thread."""
        return Stmt(
            f"SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id FROM {self.n.checkpoints} "
            f"WHERE thread_id = {self.param('t')}",
            {"t": t},
        )

    def checkpoint_counts(self) -> Stmt:
        """(thread_id, checkpoints) of every thread holding one, by thread id."""
        return Stmt(
            f"SELECT thread_id, count(*) FROM {self.n.checkpoints} GROUP BY thread_id ORDER BY thread_id",
            {},
        )

    def thread_write_keys(self, t: str, ns: str | None) -> Stmt:
        """(ns, checkpoint_id, task_id, idx, channel, task_path) of a thread's writes."""
        P = self.param
        p: dict[str, Any] = {"t": t}
        sql = (
            "SELECT checkpoint_ns, checkpoint_id, task_id, idx, channel, task_path "
            f"FROM {self.n.writes} WHERE thread_id = {P('t')}"
        )
        if ns is not None:
            sql += f" AND checkpoint_ns = {P('ns')}"
            p["ns"] = ns
        return Stmt(sql, p)

    # -- stats -----------------------------------------------------------------------

    def stats(self, thread_ids: Sequence[str] | None) -> list[Stmt]:
        """Four grouped reads, each (thread_id, rows, bytes, references, chunks, chunk bytes):

        checkpoints (doc bytes), writes and channel values (ref bytes and references),
        objects (data bytes). A row naming a chunk of a long list (core/chunks.py)
        holds a reference to each of the chunk's elements; the chunks themselves
        are references stored apart, not values: objects counts them separately.
        """
        n = self.n
        chunk = f"type = '{CHUNK_TYPE}'"
        out = []
        for table, size, text, refs in self._sized():
            p: dict[str, Any] = {}
            if refs:
                named = (
                    f"(SELECT count(*) FROM {n.objects} c WHERE c.thread_id = r.thread_id "
                    f"AND c.{chunk} AND {self._holds('r.' + refs, 'c.hash')})"
                )
                cols = (
                    f"coalesce(sum({self._octets('r.' + size, text)}), 0), "
                    f"coalesce(sum({self._octets('r.' + refs)}), 0) / {HASH_SIZE} "
                    f"+ {CHUNK - 1} * coalesce(sum({named}), 0), 0, 0"
                )
            elif table == n.objects:
                data = self._octets("r." + size, text)
                cols = (
                    f"coalesce(sum(CASE WHEN r.{chunk} THEN 0 ELSE {data} END), 0), 0, "
                    f"sum(CASE WHEN r.{chunk} THEN 1 ELSE 0 END), "
                    f"coalesce(sum(CASE WHEN r.{chunk} THEN {data} ELSE 0 END), 0)"
                )
            else:
                cols = f"coalesce(sum({self._octets('r.' + size, text)}), 0), 0, 0, 0"
            sql = f"SELECT r.thread_id, count(*), {cols} FROM {table} r"
            if thread_ids is not None:
                sql += " WHERE " + self._in_text("r.thread_id", "ids", thread_ids, p)
            out.append(Stmt(sql + " GROUP BY r.thread_id", p))
        return out

    # -- helpers ---------------------------------------------------------------------

    def _sized(self) -> list[tuple[str, str, bool, str | None]]:
        """(table, size column, is text, references column) of what a thread's bytes count:
        one list for `list_threads` and `stats`, so both report the same size."""
        n = self.n
        return [
            (n.checkpoints, "checkpoint", True, None),
            (n.writes, "refs", False, "refs"),
            (n.values, "refs", False, "refs"),
            (n.objects, "data", False, None),
        ]

    def _in_text(self, column: str, name: str, items: Sequence[str], p: dict[str, Any]) -> str:
        raise NotImplementedError


class PostgresInspectSQL(InspectSQL):
    """Postgres: ``%(name)s`` parameters, arrays, JSONB containment."""

    name = "postgresql"
    _p = "%({})s"

    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, postgresql.dialect())

    def read_only(self) -> list[Stmt]:
        # One snapshot for every statement of the inspection, and no write possible.
        return [Stmt("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", {})]

    def _metadata_filter(self, column: str, filter: dict[str, Any], p: dict[str, Any]) -> list[str]:
        p["mdf"] = json.dumps(filter)
        # a thread with subgraph checkpoints only has no metadata: none of its keys
        # are there, as on SQLite (NULL would match no filter at all)
        return [postgres_matches(f"coalesce({column}, '{{}}'::jsonb)", "%(mdf)s")]

    def _octets(self, expr: str, text: bool = False) -> str:
        # octet_length reads the size from a TOAST pointer without fetching the value
        return f"octet_length({expr})"

    def _holds(self, blob: str, part: str) -> str:
        return f"position({part} IN {blob}) > 0"

    def _in_text(self, column: str, name: str, items: Sequence[str], p: dict[str, Any]) -> str:
        p[name] = list(items)
        return f"{column} = ANY(%({name})s::text[])"


class SqliteInspectSQL(InspectSQL):
    """SQLite: ``:name`` parameters, lists as one JSON parameter read with json_each."""

    name = "sqlite"
    _p = ":{}"

    def __init__(self, tables: Tables) -> None:
        super().__init__(tables, sqlite.dialect())

    def read_only(self) -> list[Stmt]:
        return []  # the CLI opens the file read-only; a deferred BEGIN is one snapshot

    def _metadata_filter(self, column: str, filter: dict[str, Any], p: dict[str, Any]) -> list[str]:
        return sqlite_matches(column, filter, p, "m")

    def _octets(self, expr: str, text: bool = False) -> str:
        # length() of a BLOB column is its size, read without loading overflow pages;
        # for text, CAST(... AS BLOB) makes it count bytes, not characters
        return f"length(CAST({expr} AS BLOB))" if text else f"length({expr})"

    def _holds(self, blob: str, part: str) -> str:
        return f"instr({blob}, {part}) > 0"

    def _in_text(self, column: str, name: str, items: Sequence[str], p: dict[str, Any]) -> str:
        p[name] = json.dumps(list(items))
        return f"{column} IN (SELECT value FROM json_each(:{name}))"


def inspect_sql_for(saver: Any) -> InspectSQL:
    """The inspection SQL for a saver's backend and table prefix/schema."""
    backend = getattr(getattr(saver, "ctx", None), "sql", None)
    name = getattr(backend, "name", None)
    if name == "postgresql":
        return PostgresInspectSQL(saver.tables)
    if name == "sqlite":
        return SqliteInspectSQL(saver.tables)
    from checkpoint_pg.errors import ConfigError

    raise ConfigError(
        f"cannot inspect a {type(saver).__name__}: pass a checkpoint_pg PostgresSaver or SqliteSaver"
    )


class IncumbentSQL:
    """Reads the tables of langgraph-checkpoint-postgres / -sqlite (keys only) for the import."""

    def __init__(self, backend: str) -> None:
        if backend not in ("postgresql", "sqlite"):
            raise ValueError(backend)
        self.backend = backend
        self._p = "%({})s" if backend == "postgresql" else ":{}"
        self.writes_table = "checkpoint_writes" if backend == "postgresql" else "writes"

    def read_only(self) -> list[Stmt]:
        if self.backend == "postgresql":
            return [Stmt("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", {})]
        return []

    def threads(self) -> Stmt:
        """(thread_id, checkpoint count) of every thread, by thread id."""
        return Stmt("SELECT thread_id, count(*) FROM checkpoints GROUP BY thread_id ORDER BY thread_id", {})

    def checkpoint_keys(self, t: str) -> Stmt:
        """(ns, checkpoint_id, parent_checkpoint_id) of a thread's checkpoints."""
        return Stmt(
            "SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id FROM checkpoints "
            f"WHERE thread_id = {self._p.format('t')}",
            {"t": t},
        )

    def write_keys(self, t: str, with_task_path: bool = True) -> Stmt:
        """(ns, checkpoint_id, task_id, idx, channel, task_path) of a thread's writes."""
        path = "task_path" if with_task_path else "''"
        return Stmt(
            f"SELECT checkpoint_ns, checkpoint_id, task_id, idx, channel, {path} "
            f"FROM {self.writes_table} WHERE thread_id = {self._p.format('t')}",
            {"t": t},
        )
