"""Alembic environment of checkpoint_pg: runs on the caller's connection.

The connection and the tables (prefix, Postgres schema) come from
``config.attributes``, set by `checkpoint_pg.migrate`; offline mode (``sql``)
renders the DDL for the dialect named in ``config.attributes["dialect"]``.
"""

from __future__ import annotations

from alembic import context

from checkpoint_pg.migrate import create_schema_ddl
from checkpoint_pg.schema import build_tables

config = context.config
tables = config.attributes.get("tables") or build_tables()


def _configure(**kw: object) -> None:
    context.configure(
        target_metadata=tables.metadata,
        version_table=tables.version_table,
        version_table_schema=tables.schema,
        # SQLite cannot ALTER most things in place: batch mode rebuilds tables.
        render_as_batch=True,
        **kw,  # type: ignore[arg-type]
    )


if context.is_offline_mode():
    dialect = config.attributes.get("dialect", "postgresql")
    _configure(
        dialect_name=dialect,
        literal_binds=True,
        # "named", not psycopg's pyformat: the script goes to psql, which must see
        # the '%' of RAISE EXCEPTION as written, not doubled.
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        # The online upgrade creates the schema (migrate._ensure_schema); a script
        # starting from an empty database must too.
        if tables.schema and dialect == "postgresql" and context.get_starting_revision_argument() is None:
            context.execute(create_schema_ddl(tables.schema))
        context.run_migrations()
else:
    connection = config.attributes["connection"]
    _configure(connection=connection, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()
