"""checkpoint_pg's alembic migrations, shipped inside the package.

Revisions name tables through `current_tables()`, so one history serves every
prefix and Postgres schema.
"""

from __future__ import annotations

from checkpoint_pg.schema import Tables, build_tables


def current_tables() -> Tables:
    """The tables (prefix, schema) of the migration being run."""
    from alembic import context

    return context.config.attributes.get("tables") or build_tables()


def install_functions(frozen: list[str] | None = None) -> None:
    """Install the Postgres functions: ``frozen`` DDL (frozen.py, or any statement
    written with its placeholders) as an older revision wrote it, or the current
    code's (sql/functions.py) for the head. Nothing on SQLite, which has no functions."""
    from alembic import op

    if op.get_context().dialect.name != "postgresql":
        return
    tables = current_tables()
    if frozen is not None:
        from checkpoint_pg.migrations.frozen import render

        for ddl in frozen:
            op.execute(render(ddl, tables))
        return
    from checkpoint_pg.sql.postgres import PostgresSQL

    sql = PostgresSQL(tables)
    for ddl in sql.fn.ddl(sql):
        op.execute(ddl)
