"""Postgres functions for the hot path: get_tuple, list_thread, put and put_writes.

Every call of these operations would otherwise be planned anew, since the
savers never prepare statements (PgBouncer in transaction mode forbids them).
Planning the get_tuple query costs more than running it. A PL/pgSQL function
keeps its queries' plans in the server session that runs it, which is safe
behind any pooler: the call itself is a plain statement.

The function bodies are the statements of `PostgresSQL` (sql/postgres.py)
with their ``%(name)s`` parameters turned into arguments ``p_name``;
migrations install them (CREATE OR REPLACE) for a prefix and schema.

Changing a function needs a new migration that installs it; before writing
one, freeze the DDL the previous revision installed into
checkpoint_pg/migrations/frozen.py (as 0002's is), so that old revisions keep
installing what they did and a downgrade can restore it.
tests/test_migrations.py checks that the head installs this module's DDL.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlalchemy.dialects import postgresql

from checkpoint_pg.schema import Tables

if TYPE_CHECKING:
    from checkpoint_pg.sql.postgres import PostgresSQL

# argument name -> SQL type, in call order, per function
SIGNATURES: dict[str, list[tuple[str, str]]] = {
    "get_tuple": [("t", "text"), ("ns", "text"), ("id", "text"), ("known", "bytea")],
    "list_thread": [
        ("t", "text"),
        ("ns", "text"),
        ("hi", "text"),
        ("a_id", "text"),
        ("a_ns", "text"),
        ("filter", "jsonb"),
        ("limit", "int"),
        ("known", "bytea"),
    ],
    "put": [
        ("t", "text"),
        ("tmd", "text"),
        ("h", "bytea[]"),
        ("ty", "text[]"),
        ("d", "bytea[]"),
        ("ns", "text"),
        ("ch", "text[]"),
        ("ver", "text[]"),
        ("kind", "int2[]"),
        ("base", "text[]"),
        ("root", "text[]"),
        ("refs", "bytea[]"),
        ("id", "text"),
        ("parent", "text"),
        ("run_id", "text"),
        ("doc", "text"),
        ("md", "text"),
        ("req_ch", "text[]"),
        ("req_ver", "text[]"),
        ("req_n", "int"),
        ("guard", "boolean"),
        ("lease", "text"),
        ("ttl", "float8"),
        ("need_parent", "boolean"),
    ],
    "put_writes": [
        ("t", "text"),
        ("ns", "text"),
        ("cid", "text"),
        ("task", "text"),
        ("path", "text"),
        ("idx", "int[]"),
        ("ch", "text[]"),
        ("kind", "int2[]"),
        ("refs", "bytea[]"),
        ("oidx", "int[]"),
        ("oh", "bytea[]"),
        ("oty", "text[]"),
        ("od", "bytea[]"),
        ("special", "boolean"),
        ("lease", "text"),
        ("ttl", "float8"),
    ],
}

_GET_TUPLE_COLUMNS = (
    "o_tag int, o_a text, o_b text, o_c text, o_d text, o_n int, o_k int, o_r bytea, o_h bytea"
)
_LIST_THREAD_COLUMNS = (
    "o_tag int, o_ns text, o_a text, o_b text, o_c text, o_d text, o_e text, o_n int, o_k int, "
    "o_r bytea, o_h bytea"
)
_PARAM = re.compile(r"%\((\w+)\)s")

# The lease rule of core/lease.py `verdict`, on the thread row the function has
# just locked (v_owner, v_left): refuse a write without the live lease's token,
# and one whose token is not the row's.
_LEASE_CHECK = (
    "IF v_owner IS DISTINCT FROM p_lease AND (p_lease IS NOT NULL OR v_left > 0) THEN\n"
    "RAISE EXCEPTION 'cpg_lease' USING DETAIL = "
    "json_build_array(p_t, v_left, p_lease IS NOT NULL)::text;\nEND IF;\n"
)
_LEASE_VARS = "DECLARE v_owner text; v_left float8;\n"


def _into(select: str, variables: str) -> str:
    """``SELECT a, b FROM ...`` as PL/pgSQL's ``SELECT a, b INTO x, y FROM ...``."""
    head, rest = select.split(" FROM ", 1)
    return f"{head} INTO {variables} FROM {rest};\n"


class Functions:
    """Names, calls and DDL of the hot-path functions for one prefix/schema."""

    def __init__(self, tables: Tables) -> None:
        quote = postgresql.dialect().identifier_preparer.quote
        schema = f"{quote(tables.schema)}." if tables.schema else ""
        self.names = {name: f"{schema}{quote(tables.prefix + name)}" for name in SIGNATURES}
        self.get_tuple = self.names["get_tuple"]
        self.list_thread = self.names["list_thread"]
        # built once: put and put_writes call these on every step
        self._calls = {
            name: "SELECT {}({})".format(
                self.names[name], ", ".join(f"%({a})s::{typ}" for a, typ in sig)
            )
            for name, sig in SIGNATURES.items()
        }

    def call(self, name: str) -> str:
        return self._calls[name]

    def ddl(self, sql: PostgresSQL) -> list[str]:
        """CREATE OR REPLACE FUNCTION statements for the current statements of ``sql``."""

        def args(name: str) -> str:
            return ", ".join(f"p_{a} {typ}" for a, typ in SIGNATURES[name])

        def body(text: str) -> str:
            return _PARAM.sub(lambda m: f"p_{m.group(1)}", text)

        get_tuple = (
            f"CREATE OR REPLACE FUNCTION {self.names['get_tuple']}({args('get_tuple')}) "
            f"RETURNS TABLE ({_GET_TUPLE_COLUMNS}) LANGUAGE plpgsql STABLE AS $fn$\n"
            "#variable_conflict use_column\nBEGIN\n"
            # nothing of the thread known here: chunks come with their elements
            # (a plan of its own, so the other calls pay nothing for it)
            "IF coalesce(length(p_known), 0) = 0 THEN\n"
            f"IF p_id IS NULL THEN RETURN QUERY {body(sql.get_tuple_sql(False, cold=True))};\n"
            f"ELSE RETURN QUERY {body(sql.get_tuple_sql(True, cold=True))};\nEND IF;\n"
            f"ELSIF p_id IS NULL THEN RETURN QUERY {body(sql.get_tuple_sql(False))};\n"
            f"ELSE RETURN QUERY {body(sql.get_tuple_sql(True))};\nEND IF;\nEND\n$fn$"
        )
        # three plans, each cached: the namespace given (with or without an upper
        # bound on ids, which walks the primary key backwards) or not (sorted)
        list_thread = (
            f"CREATE OR REPLACE FUNCTION {self.names['list_thread']}({args('list_thread')}) "
            f"RETURNS TABLE ({_LIST_THREAD_COLUMNS}) LANGUAGE plpgsql STABLE AS $fn$\n"
            "#variable_conflict use_column\nBEGIN\n"
            f"IF p_ns IS NULL THEN RETURN QUERY {body(sql.list_thread_sql('all'))};\n"
            f"ELSIF p_hi IS NULL THEN RETURN QUERY {body(sql.list_thread_sql('ns'))};\n"
            f"ELSE RETURN QUERY {body(sql.list_thread_sql('ns_hi'))};\nEND IF;\nEND\n$fn$"
        )
        # put's statements get the generic plan of their first calls: under the
        # default plan_cache_mode the server planned them anew on every call
        # (their custom plans looked cheaper than the generic one), ~0.09 ms of
        # the ~0.2 ms a put's statement takes on the server (revision 0011).
        put = (
            f"CREATE OR REPLACE FUNCTION {self.names['put']}({args('put')}) "
            "RETURNS void LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan "
            "AS $fn$\n#variable_conflict use_column\n"
            + _LEASE_VARS
            + "BEGIN\n"
            + f"{body(sql.put_sql()[0])} INTO v_owner, v_left;\n"
            + _LEASE_CHECK
            # Each check below is an IF on its flag alone, then one on its query: PL/pgSQL
            # runs a condition without a subquery on its fast path, while `flag AND
            # EXISTS (...)` went through the executor on every call (~6 us, measured).
            # single-writer mode: after taking the thread's row lock, refuse a loop
            # step whose parent is no longer the newest checkpoint of the thread
            + f"IF p_guard THEN IF EXISTS ({body(sql.newer_checkpoint_sql())}) THEN\n"
            + "RAISE EXCEPTION 'cpg_thread_busy: thread % is being run by another writer', p_t;\n"
            + "END IF; END IF;\n"
            # a DeltaChannel that replays from the parent (core/context.py LastPuts): the
            # thread row's lock is taken, so a delete has committed or waits for us
            + f"IF p_need_parent THEN IF NOT EXISTS ({body(sql.parent_stored_sql())}) THEN\n"
            + "RAISE EXCEPTION 'cpg_parent_gone' USING DETAIL = "
            + "json_build_array(p_t, p_ns, p_parent)::text;\nEND IF; END IF;\n"
            + f"{body(sql.put_sql()[1])};\n"
            + "END\n$fn$"
        )
        put_writes = (
            f"CREATE OR REPLACE FUNCTION {self.names['put_writes']}({args('put_writes')}) "
            "RETURNS void LANGUAGE plpgsql AS $fn$\n#variable_conflict use_column\n"
            + _LEASE_VARS
            + "BEGIN\n"
            + _into(body(sql.lock_thread_shared_sql()), "v_owner, v_left")
            + _LEASE_CHECK
            + f"{body(sql.touch_thread_sql())};\n"
            + f"IF p_special THEN {body(sql.insert_writes_sql(True))};\n"
            + f"ELSE {body(sql.insert_writes_sql(False))};\nEND IF;\nEND\n$fn$"
        )
        return [get_tuple, list_thread, put, put_writes]

    def signatures(self) -> dict[str, str]:
        """``name(type, ...)`` of each function, as ``to_regprocedure`` and DROP take it."""
        return {name: f"{self.names[name]}({', '.join(t for _, t in sig)})" for name, sig in SIGNATURES.items()}

    def drop(self) -> list[str]:
        return [f"DROP FUNCTION IF EXISTS {sig}" for sig in self.signatures().values()]
