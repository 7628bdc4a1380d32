"""Run checkpoint_pg's alembic migrations programmatically, on the caller's connection.

Our history has its own version table (``{prefix}alembic_version``), so it
lives beside the user's own alembic history in one database.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from checkpoint_pg.errors import CheckpointPgError, ConfigError, SchemaVersionError
from checkpoint_pg.schema import Tables, store_options

__all__ = [
    "head",
    "upgrade",
    "downgrade",
    "current",
    "history",
    "known",
    "offline_sql",
    "check",
    "unversioned_tables",
    "refuse_unversioned",
    "create_schema_ddl",
    "missing_functions",
    "restore_functions",
    "ADVISORY_LOCK_KEY",
]

SCRIPT_LOCATION = "checkpoint_pg:migrations"
# pg_advisory_xact_lock key: serializes setup() across processes.
ADVISORY_LOCK_KEY = 0x2C0FFEE5


def _config(tables: Tables, connection: sa.Connection | None = None, **attrs: object) -> Config:
    cfg = Config(stdout=io.StringIO())
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    cfg.attributes["tables"] = tables
    if connection is not None:
        cfg.attributes["connection"] = connection
    cfg.attributes.update(attrs)
    return cfg


@lru_cache(maxsize=1)
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config(_default_tables()))


def _default_tables() -> Tables:
    from checkpoint_pg.schema import build_tables

    return build_tables()


def head() -> str:
    """The revision this version of the package needs."""
    heads = _script().get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"checkpoint_pg migrations have {len(heads)} heads: {heads}")
    return heads[0]


def history() -> list[tuple[str, str | None, str]]:
    """(revision, down_revision, message) from base to head."""
    revs = list(_script().walk_revisions())
    return [(r.revision, r.down_revision, r.doc) for r in reversed(revs)]  # type: ignore[misc]


def known(revision: str) -> bool:
    """Whether this release has ``revision`` (an unknown one was written by a newer release)."""
    return revision in {r for r, _, _ in history()}


@contextmanager
def _migration_transaction(connection: sa.Connection) -> Iterator[None]:
    """One transaction for the whole migration, serialized across processes.

    The advisory lock is transaction-scoped: a session lock taken through
    PgBouncer in transaction mode could be released on another server
    connection than the one holding it, and every later setup() would hang.
    """
    trans = None if connection.in_transaction() else connection.begin()
    try:
        if connection.dialect.name == "postgresql":
            # Several processes may call setup() at once; one migrates, the
            # others wait and then find the database at head.
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
        elif connection.dialect.name == "sqlite":
            # The driver starts no transaction before DDL: without the write
            # lock taken up front, two processes setting up a new file both
            # find no version table and the second CREATE TABLE fails.
            # A connection already in a transaction (the caller's, or a driver
            # that always opens one) keeps it: its first write takes the lock.
            raw = connection.connection.dbapi_connection
            if raw is not None and not raw.in_transaction:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield
    except BaseException:
        if trans is not None:
            trans.rollback()
        else:
            connection.rollback()
        raise
    if trans is not None:
        trans.commit()
    else:
        connection.commit()


def _ensure_schema(connection: sa.Connection, tables: Tables) -> None:
    if tables.schema and connection.dialect.name == "postgresql":
        exists = connection.execute(
            sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": tables.schema}
        ).first()
        if exists is None:  # asking only when needed: a DML-only role may run setup() at head
            connection.execute(sa.text(create_schema_ddl(tables.schema)))


def create_schema_ddl(schema: str) -> str:
    """The statement creating a Postgres schema (online upgrade and offline SQL alike)."""
    return f'CREATE SCHEMA IF NOT EXISTS "{schema}"'


def upgrade(connection: sa.Connection, tables: Tables, revision: str = "head") -> str | None:
    """Upgrade to ``revision`` (head by default); idempotent. Returns the revision the
    database was at (None: no tables), read under the lock: another process's upgrade that
    ran meanwhile is in it.

    Runs as one transaction and commits it: a transaction already open on
    ``connection`` (SQLAlchemy opens one at the first statement) is committed with it.
    """
    with _privileges_explained(tables, "upgrade"), _migration_transaction(connection):
        _ensure_schema(connection, tables)
        found = current(connection, tables)
        _refuse_unknown(found)
        if found is None:
            refuse_unversioned(connection, tables)
        with _revision_explained(f"upgrade to {revision}"):
            command.upgrade(_config(tables, connection), revision)
        restore_functions(connection, tables)
    return found


def missing_functions(connection: sa.Connection, tables: Tables) -> list[str]:
    """The head's Postgres functions that a database at head lacks (none below head, where
    the revisions install their own, nor on SQLite).

    A database restored from a dump of its tables alone (``pg_dump -t 'cpg_*'``) has the
    tables and the version table at head but none of the functions: every call of a saver
    fails, and no revision is left to run that would install them. `upgrade` installs
    them again (`restore_functions`)."""
    if connection.dialect.name != "postgresql" or current(connection, tables) != head():
        return []
    from checkpoint_pg.sql.postgres import PostgresSQL

    signatures = PostgresSQL(tables).fn.signatures()
    return [
        name
        for name, signature in signatures.items()
        if connection.execute(sa.text("SELECT to_regprocedure(:s)"), {"s": signature}).scalar() is None
    ]


def restore_functions(connection: sa.Connection, tables: Tables) -> list[str]:
    """Install the head's functions again where `missing_functions` finds any; their names.

    `upgrade` (``setup()``, ``checkpoint-pg migrate upgrade``, what the saver's error
    advises) runs it; a database that has them is asked nothing more, so a role that may not
    create functions can still run setup() at head."""
    missing = missing_functions(connection, tables)
    if missing:
        from checkpoint_pg.sql.postgres import PostgresSQL

        sql = PostgresSQL(tables)
        for ddl in sql.fn.ddl(sql):  # the head installs the current code's (test_migrations)
            connection.execute(sa.text(ddl))
    return missing


@contextmanager
def _revision_explained(what: str) -> Iterator[None]:
    """alembic's complaint about a revision (one it cannot locate, a downgrade target above
    the database's) as ours, saying where the revisions are listed."""
    try:
        yield
    except CommandError as exc:
        raise ConfigError(
            f"cannot {what}: {exc}; see the revisions with `checkpoint-pg migrate history`"
        ) from exc


@contextmanager
def _privileges_explained(tables: Tables, command: str) -> Iterator[None]:
    """A role that may not create or alter our tables gets what to do, not the driver's text:
    the same ``migrate`` command (``upgrade``, ``downgrade REV``) run as another role."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != "42501":  # insufficient_privilege
            raise
        where = f"schema {tables.schema!r}" if tables.schema else "its schema"
        raise CheckpointPgError(
            f"this role may not change checkpoint_pg's tables ({str(exc.orig).splitlines()[0]}): "
            f"migrate as the role that owns them, or one that may create tables in {where}: "
            f"checkpoint-pg migrate {command} --url <that role's url>{store_options(tables.prefix, tables.schema)}"
        ) from exc


def _refuse_unknown(
    revision: str | None, advice: str = "upgrade the checkpoint-pg package instead of migrating"
) -> None:
    if revision is not None and not known(revision):
        raise SchemaVersionError(
            f"the database schema is at revision {revision}, which this checkpoint_pg "
            f"(needing {head()}) does not know: it was migrated by a newer release; {advice}",
            current=revision,
            expected=head(),
        )


def unversioned_tables(connection: sa.Connection, tables: Tables) -> list[str]:
    """Our tables that are there although the version table is not (dropped, or not restored
    with them): nothing says which revision they are at."""
    if current(connection, tables) is not None:
        return []
    insp = sa.inspect(connection)
    return [t.name for t in tables.metadata.sorted_tables if insp.has_table(t.name, schema=tables.schema)]


def refuse_unversioned(connection: sa.Connection, tables: Tables) -> None:
    """Raise `SchemaVersionError` saying what to do when `unversioned_tables` finds any."""
    names = unversioned_tables(connection, tables)
    if not names:
        return
    prep = connection.dialect.identifier_preparer
    version = prep.quote(tables.version_table)
    if tables.schema:
        version = f"{prep.quote_schema(tables.schema)}.{version}"
    raise SchemaVersionError(
        f"the database has checkpoint_pg's tables ({', '.join(names)}) but not their version "
        f"table {tables.version_table}, so the revision they are at is unknown and they cannot be "
        "migrated (creating them again would fail); nothing was changed. Restore the version "
        "table with them from the backup, or record the revision the tables are at (see them "
        f"with `checkpoint-pg migrate history`): CREATE TABLE {version} (version_num "
        f"VARCHAR(32) NOT NULL PRIMARY KEY); INSERT INTO {version} VALUES ('<revision>')",
        current=None,
        expected=head(),
    )


def downgrade(connection: sa.Connection, tables: Tables, revision: str = "base") -> str | None:
    """Downgrade to ``revision`` ("base" drops every table of ours, the version table too).
    Returns the revision the database was at, read under the lock, as `upgrade` does."""
    with _privileges_explained(tables, f"downgrade {revision}"), _migration_transaction(connection):
        found = current(connection, tables)
        _refuse_unknown(found, "downgrade with that release")
        with _revision_explained(f"downgrade to {revision}"):
            command.downgrade(_config(tables, connection), revision)
        if current(connection, tables) is None:
            # at base alembic leaves its version table behind, empty: ours is
            # namespaced and holds nothing else, so nothing of checkpoint_pg stays
            sa.Table(tables.version_table, sa.MetaData(), schema=tables.schema).drop(
                connection, checkfirst=True
            )
    return found


def current(connection: sa.Connection, tables: Tables) -> str | None:
    """The revision the database is at, or None when our tables are not there."""
    ctx = MigrationContext.configure(
        connection,
        opts={"version_table": tables.version_table, "version_table_schema": tables.schema},
    )
    try:
        return ctx.get_current_revision()
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != "42501":  # insufficient_privilege
            raise
        raise CheckpointPgError(_read_refused(connection, tables, exc.orig)) from exc


def _read_refused(connection: sa.Connection, tables: Tables, error: BaseException) -> str:
    """What a role that may not read the version table lacks, and the GRANTs giving it:
    every migrate command (current, upgrade, downgrade) starts by reading it."""
    quote = connection.dialect.identifier_preparer.quote_identifier
    info = getattr(connection.connection.dbapi_connection, "info", None)
    role = getattr(info, "user", None)  # psycopg's: the role the session logged in as
    who = quote(role) if role else "<this role>"
    table = quote(tables.version_table)
    if tables.schema:
        table = f"{quote(tables.schema)}.{table}"
    grant_select = f"GRANT SELECT ON {table} TO {who}"
    text = str(error).splitlines()[0]
    if tables.schema and "schema" in text:
        missing = f"USAGE on schema {tables.schema!r} (and SELECT on {tables.version_table})"
        grants = f"GRANT USAGE ON SCHEMA {quote(tables.schema)} TO {who}; {grant_select}"
    else:
        missing = f"SELECT on {tables.version_table}"
        grants = grant_select
    return (
        f"this role ({role or 'unknown'}) may not read which revision checkpoint_pg's tables are at "
        f"({text}): it needs {missing}; as the tables' owner run: {grants}"
    )


def offline_sql(tables: Tables, dialect: str, start: str | None = None, end: str = "head") -> str:
    """The SQL of an upgrade, for a DBA to review (alembic's offline mode)."""
    out = io.StringIO()
    cfg = _config(tables, dialect=dialect)
    cfg.output_buffer = out
    rng = f"{start}:{end}" if start else end
    with _revision_explained(f"print the SQL of the upgrade {rng}"):
        command.upgrade(cfg, rng, sql=True)
    return out.getvalue()


def check(revision: str | None, url_hint: str) -> None:
    """Raise `SchemaVersionError` naming the command to run unless ``revision`` is head."""
    expected = head()
    if revision == expected:
        return
    if revision is None:
        msg, fix = "the database has no checkpoint_pg tables yet", url_hint
    elif known(revision):
        msg = f"the database schema is at revision {revision}, this checkpoint_pg needs {expected}"
        fix = url_hint
    else:
        msg = (
            f"the database schema is at revision {revision}, which this checkpoint_pg "
            f"(needing {expected}) does not know: it was migrated by a newer release; "
            "upgrade the checkpoint-pg package"
        )
        fix = None
    raise SchemaVersionError(msg, current=revision, expected=expected, upgrade_url=fix)
