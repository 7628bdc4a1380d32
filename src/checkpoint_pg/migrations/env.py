"""Alembic environment of checkpoint_pg: runs on the caller's connection.

The connection and the tables (prefix, Postgres schema) come from
``config.attributes``, set by `checkpoint_pg.migrate`; offline mode (``sql``)
renders the DDL for the dialect named in ``config.attributes["dialect"]``.
"""

from __future__ import annotations

from alembic import context

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
    _configure(dialect_name=config.attributes.get("dialect", "postgresql"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes["connection"]
    _configure(connection=connection, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()
