"""The schema: every table of checkpoint_pg, declared once for both backends.

The savers take table names from here and alembic's migrations are checked
against it (tests/test_migrations.py compares the migrated database with this
metadata). Values are content-addressed:

- ``objects`` holds each distinct serialized value once per thread, keyed by a
  16-byte hash of its bytes (a keyed hash when the serializer encrypts).
- ``channel_values`` holds one row per (channel, version). A list value (the
  messages list) is a sequence of object hashes; a version that only appends
  stores the appended hashes and points at the version it grew from. A dict
  holding lists is its shape's hash and its values' hashes. A long list of
  messages names each run of 64 hashes from its start by a chunk object (type
  ``#refs``, core/chunks.py) that every row holding the same list shares.
- ``checkpoints`` holds each checkpoint's document (its versions, without the
  values) and, as its ``channel_values``, the small scalars it holds (a str of
  up to 64 characters, an int, a finite float, a bool, None: core/codec.py
  `inlinable`), which have no value row nor object (revision 0014; not when
  encrypting).
- ``writes`` holds a task's pending writes, by reference into ``objects`` too,
  so a ToolMessage written by a node and the same message inside every later
  checkpoint are one stored object.

Every primary key starts with ``thread_id`` and no constraint crosses threads,
so the tables can be distributed by thread.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from checkpoint_pg.errors import ConfigError

# core/chunks.py's object type for chunks of hashes (not imported from there: the
# schema imports nothing of the core)
CHUNK_TYPE = "#refs"

__all__ = ["Tables", "build_tables", "store_options", "other_prefixes", "DEFAULT_PREFIX", "PG_SCHEMES", "KIND"]

DEFAULT_PREFIX = "cpg_"
# The URL schemes that name a Postgres database for our tables (anything else is a SQLite
# file): one list for the savers, the CLI and the import, which must agree.
PG_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}")  # fullmatch: "$" allows a final "\n"


class KIND:
    """How a channel value or a write refers to its objects (``kind`` column)."""

    EMPTY = 0  # the channel has a version but no value
    SCALAR = 1  # refs is one hash
    LIST = 2  # refs is the hashes of every element, in order
    DELTA = 3  # refs is the hashes appended to base_version's list
    # A dict holding lists, stored key by key (core/codec.py): refs is the hash of
    # its shape ([key, n] per key: n elements of a list, or -1 for a value stored
    # whole), then the hashes of the values in key order, lists element by element.
    DICT = 4


# A JSON column: JSONB on Postgres (containment filters, GIN index), TEXT JSON on SQLite.
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


# SQLite: the primary key is the table (no rowid copy of every key).
_TABLE_KW = {"sqlite_with_rowid": False}


@dataclass(frozen=True)
class Tables:
    """The Core tables for one prefix / Postgres schema."""

    metadata: sa.MetaData
    prefix: str
    schema: str | None
    threads: sa.Table
    checkpoints: sa.Table
    channel_values: sa.Table
    writes: sa.Table
    objects: sa.Table

    @property
    def version_table(self) -> str:
        """Name of alembic's version table for this prefix (not shared with the user's)."""
        return f"{self.prefix}alembic_version"


def check_identifier(value: str, what: str) -> str:
    if not isinstance(value, str) or not _IDENT.fullmatch(value):
        raise ConfigError(
            f"invalid {what} {value!r}: use letters, digits and underscores, "
            "starting with a letter or underscore, at most 41 characters"
        )
    return value


def store_options(prefix: str, schema: str | None) -> str:
    """`` --prefix P --schema S`` for a ``checkpoint-pg`` command (each only when not the
    default), so that a command a message advises acts on these tables, not the default ones."""
    out = f" --prefix {shlex.quote(prefix)}" if prefix != DEFAULT_PREFIX else ""
    return out + (f" --schema {shlex.quote(schema)}" if schema else "")


def other_prefixes(table_names: Iterable[str], prefix: str) -> list[str]:
    """The prefixes of the sets of checkpoint_pg tables among ``table_names`` (one schema's
    or file's), besides ``prefix``: each with its version table, checkpoints, channel values
    and objects (an app's own ``alembic_version`` beside the incumbent's ``checkpoints`` is
    not one). A saver or command given a wrong prefix names them."""
    names = set(table_names)
    ours = ("alembic_version", "checkpoints", "channel_values", "objects")
    return sorted(
        p
        for p in (n[: -len("alembic_version")] for n in names if n.endswith("alembic_version"))
        if p != prefix and all(f"{p}{table}" in names for table in ours)
    )


def build_tables(prefix: str = DEFAULT_PREFIX, schema: str | None = None) -> Tables:
    """Declare the tables with names ``{prefix}threads`` ... in ``schema``."""
    check_identifier(prefix, "table prefix")
    if schema is not None:
        check_identifier(schema, "schema name")
    md = sa.MetaData(schema=schema)
    p = prefix
    threads = sa.Table(
        f"{p}threads",
        md,
        sa.Column("thread_id", sa.Text, primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        # metadata of the root-namespace checkpoint put last (the newest while puts
        # come in id order), for filtering threads
        sa.Column("metadata", _JSON, nullable=True),
        # A run's lease on the thread (saver.lease): its random token and when it
        # lapses, in seconds since the epoch by the database's clock.
        sa.Column("lease_owner", sa.Text, nullable=True),
        sa.Column("lease_until", sa.Float, nullable=True),
        **_TABLE_KW,
    )
    checkpoints = sa.Table(
        f"{p}checkpoints",
        md,
        sa.Column("thread_id", sa.Text, primary_key=True),
        sa.Column("checkpoint_ns", sa.Text, primary_key=True),
        sa.Column("checkpoint_id", sa.Text, primary_key=True),
        sa.Column("parent_checkpoint_id", sa.Text, nullable=True),
        sa.Column("run_id", sa.Text, nullable=True),
        # the checkpoint without its channel values, as JSON text
        sa.Column("checkpoint", sa.Text, nullable=False),
        sa.Column("metadata", _JSON, nullable=False),
        # Computed at insert: every channel version the checkpoint carries over
        # from earlier ones, and every base its list deltas grow from, was
        # present. A late put after delete_thread fails here instead of
        # leaving a checkpoint whose values are gone.
        sa.Column(
            "complete",
            sa.Boolean(create_constraint=False),
            sa.CheckConstraint("complete", name=f"{p}checkpoints_complete"),
            nullable=False,
        ),
        # delete_for_runs looks checkpoints up by run id; most checkpoints have
        # none (LangGraph records one only when the caller's config has it), and
        # indexing their NULLs would cost every put an index entry for nothing
        sa.Index(
            f"{p}checkpoints_run_id_idx",
            "run_id",
            postgresql_where=sa.text("run_id IS NOT NULL"),
            sqlite_where=sa.text("run_id IS NOT NULL"),
        ),
        # list(None, filter=...) across threads, newest first: the query walks
        # this index from the newest checkpoint and stops at its limit, testing
        # the filter on each row. (A GIN index on metadata answered a filter
        # with a common key, like source=loop, 6x slower, and was bigger.)
        sa.Index(f"{p}checkpoints_recent_idx", "checkpoint_id", "checkpoint_ns", "thread_id"),
        **_TABLE_KW,
    )
    channel_values = sa.Table(
        f"{p}channel_values",
        md,
        sa.Column("thread_id", sa.Text, primary_key=True),
        sa.Column("checkpoint_ns", sa.Text, primary_key=True),
        sa.Column("channel", sa.Text, primary_key=True),
        sa.Column("version", sa.Text, primary_key=True),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        # DELTA rows: the version this one appends to, and the LIST version the
        # chain starts from (rows of one chain share it, so one query reads a chain)
        sa.Column("base_version", sa.Text, nullable=True),
        sa.Column("root_version", sa.Text, nullable=True),
        sa.Column("refs", sa.LargeBinary, nullable=False),
        **_TABLE_KW,
    )
    writes = sa.Table(
        f"{p}writes",
        md,
        sa.Column("thread_id", sa.Text, primary_key=True),
        sa.Column("checkpoint_ns", sa.Text, primary_key=True),
        sa.Column("checkpoint_id", sa.Text, primary_key=True),
        sa.Column("task_id", sa.Text, primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("task_path", sa.Text, nullable=False),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("refs", sa.LargeBinary, nullable=False),
        **_TABLE_KW,
    )
    objects = sa.Table(
        f"{p}objects",
        md,
        sa.Column("thread_id", sa.Text, primary_key=True),
        sa.Column("hash", sa.LargeBinary, primary_key=True),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        # A repoint deletes an object only when no chunk of a long list (core/chunks.py)
        # holds its hash: this finds a thread's chunks without reading its other objects.
        sa.Index(
            f"{p}objects_chunks_idx",
            "thread_id",
            postgresql_where=sa.text(f"type = '{CHUNK_TYPE}'"),
            sqlite_where=sa.text(f"type = '{CHUNK_TYPE}'"),
        ),
        **_TABLE_KW,
    )
    return Tables(md, prefix, schema, threads, checkpoints, channel_values, writes, objects)
