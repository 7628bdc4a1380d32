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
