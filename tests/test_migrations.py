"""checkpoint_pg's alembic migrations, on real Postgres and SQLite databases.

In the style of prefect's and optuna's migration tests: the history has one
head; upgrading from base to head and downgrading back works with data
present; the migrated database is exactly what ``schema.py`` declares
(alembic's autogenerate comparison finds nothing, indexes included); our
version table is our own, so a user's alembic history in the same database is
left alone; ``setup()`` is idempotent and safe when several processes call it
at once; a database at another revision is refused with an error naming the
command to run; and the migrations ship inside the installed package.

Postgres tests use ``fresh_pg_url`` (a database of their own) so that they can
look at every table of the database.
"""

from __future__ import annotations

import importlib.resources
import itertools
import multiprocessing
import secrets
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from graphs import build_chain
from langchain_core.runnables import RunnableConfig

TABLE_SUFFIXES = ("threads", "checkpoints", "channel_values", "writes", "objects")


@dataclass
class Db:
    """An empty database of this test's own."""

    backend: str
    url: str  # what from_conn_string takes

    @property
    def sa_url(self) -> str:
        if self.backend == "postgres":
            return self.url.replace("postgresql://", "postgresql+psycopg://", 1)
        return f"sqlite:///{self.url}"

    def saver_cls(self) -> type:
        from checkpoint_pg import PostgresSaver, SqliteSaver

        return PostgresSaver if self.backend == "postgres" else SqliteSaver

    @contextmanager
    def saver(self, *, setup: bool = True, **options: Any) -> Iterator[Any]:
        with self.saver_cls().from_conn_string(self.url, **options) as s:
            if setup:
                s.setup()
            yield s

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        engine = sa.create_engine(self.sa_url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            engine.dispose()

    def table_names(self, schema: str | None = None) -> set[str]:
        with self.connect() as conn:
            return set(sa.inspect(conn).get_table_names(schema=schema))


@pytest.fixture
def db(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Db:
    if backend == "postgres":
        return Db("postgres", request.getfixturevalue("fresh_pg_url"))
    return Db("sqlite", str(tmp_path / "migrations.db"))


def new_thread() -> RunnableConfig:
    return {"configurable": {"thread_id": f"mig-{secrets.token_hex(6)}"}}


def write_thread(saver: Any) -> RunnableConfig:
    """Run a small real graph on ``saver``; return the thread's config."""
    config = new_thread()
    build_chain(saver).invoke({"log": []}, config)
    state = build_chain(saver).get_state(config)
    assert state.values == {"log": ["a", "b", "c"]}
    return config


def our_tables(prefix: str) -> set[str]:
    return {f"{prefix}{s}" for s in TABLE_SUFFIXES}


def count_rows(db: Db, table: str, schema: str | None = None) -> int:
    with db.connect() as conn:
        t = sa.table(table, schema=schema)
        return conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()


# -- the history ------------------------------------------------------------------


def test_history_has_a_single_head() -> None:
    """The migration history has exactly one head and one base, linked without gaps."""
    from checkpoint_pg import migrate

    script = migrate._script()
    heads = script.get_heads()
    bases = script.get_bases()
    assert len(heads) == 1, heads
    assert len(bases) == 1, bases
    assert migrate.head() == heads[0]
    history = migrate.history()
    assert history[0][1] is None  # the first revision revises nothing
    assert history[-1][0] == heads[0]
    for (rev, _, _), (_, down, _) in itertools.pairwise(history):
        assert down == rev, history


def test_migrations_ship_inside_the_package() -> None:
    """The installed package holds env.py, the template and every revision file."""
    from checkpoint_pg import migrate

    root = importlib.resources.files("checkpoint_pg") / "migrations"
    assert (root / "env.py").is_file()
    assert (root / "script.py.mako").is_file()
    versions = [p for p in (root / "versions").iterdir() if p.name.endswith(".py")]
    assert versions, "no revision files in checkpoint_pg/migrations/versions"
    texts = "\n".join(p.read_text() for p in versions)
    for rev, _, _ in migrate.history():
        assert f'revision = "{rev}"' in texts, rev


def declared_indexes(tables: Any, dialect: str) -> list[str]:
    """The schema's indexes that exist on ``dialect`` (some are for one backend only)."""
    out = []
    for table in tables.metadata.tables.values():
        for ix in table.indexes:
            only = getattr(ix, "_ddl_if", None)
            if only is None or only.dialect in (None, dialect):
                out.append(ix.name)
    return out


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_offline_sql_creates_every_table(dialect: str) -> None:
    """``migrate.offline_sql`` renders CREATE TABLE for every table, the indexes and the version row."""
    from checkpoint_pg import migrate
    from checkpoint_pg.schema import build_tables

    tables = build_tables("offl_")
    sql = migrate.offline_sql(tables, dialect)
    for name in our_tables("offl_"):
        assert f"CREATE TABLE {name} " in sql or f"CREATE TABLE {name}(" in sql or (
            f"CREATE TABLE {name}\n" in sql
        ), (name, sql)
    assert "CREATE TABLE offl_alembic_version" in sql
    indexes = declared_indexes(tables, dialect)
    assert indexes
    for name in indexes:
        assert f"CREATE INDEX {name} " in sql, name
    # the last revision's statement leaves the version table at head
    head = migrate.head()
    assert (
        f"VALUES ('{head}')" in sql or f"SET version_num='{head}'" in sql
    ), sql[-500:]
    assert sql.count("CREATE TABLE ") == len(TABLE_SUFFIXES) + 1
    if dialect == "postgresql":
        assert "JSONB" in sql
        assert "BYTEA" in sql
    else:
        assert "WITHOUT ROWID" in sql
        assert "JSONB" not in sql


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_offline_sql_applied_with_psql_gives_a_working_database(db: Db, tmp_path: Path) -> None:
    """The offline SQL (``checkpoint-pg migrate sql --schema S``), applied by psql with
    ON_ERROR_STOP to an empty database, creates schema S and a store a saver works on.

    It used to double every '%' (psycopg's paramstyle) so that psql refused the
    RAISE statements, and to leave out the CREATE SCHEMA the online upgrade runs.
    """
    import shutil
    import subprocess

    from fixtures.faults import find_pg_bindir

    from checkpoint_pg import migrate
    from checkpoint_pg.schema import build_tables

    psql = shutil.which("psql") or (find_pg_bindir() or "") + "/psql"
    if not Path(psql).is_file():
        pytest.fail("psql not found: install the PostgreSQL client", pytrace=False)
    sql = migrate.offline_sql(build_tables(schema="offline_app"), "postgresql")
    assert "%%" not in sql
    script = tmp_path / "upgrade.sql"
    script.write_text(sql)
    res = subprocess.run(
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(script), db.url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    with db.saver(schema="offline_app", setup=False) as saver:
        config = write_thread(saver)
        assert saver.get_tuple(config) is not None
    assert count_rows(db, "cpg_checkpoints", schema="offline_app") > 0


# -- upgrade and downgrade --------------------------------------------------------


def test_upgrade_from_base_and_downgrade_to_base_with_data(db: Db) -> None:
    """base -> head -> (write a thread) -> base drops every table -> head is empty and works."""
    from checkpoint_pg import migrate
    from checkpoint_pg.schema import build_tables

    tables = build_tables()
    with db.connect() as conn:
        assert migrate.current(conn, tables) is None
        migrate.upgrade(conn, tables)
        assert migrate.current(conn, tables) == migrate.head()
    assert our_tables("cpg_") <= db.table_names()

    with db.saver() as saver:
        config = write_thread(saver)
        assert saver.get_tuple(config) is not None
    assert count_rows(db, "cpg_checkpoints") > 0
    assert count_rows(db, "cpg_objects") > 0

    with db.connect() as conn:
        migrate.downgrade(conn, tables, "base")
        assert migrate.current(conn, tables) is None
    left = db.table_names()
    assert not (our_tables("cpg_") & left), left
    assert tables.version_table not in left  # nothing of ours stays behind

    with db.connect() as conn:
        migrate.upgrade(conn, tables)
        assert migrate.current(conn, tables) == migrate.head()
    for name in our_tables("cpg_"):
        assert count_rows(db, name) == 0, name
    with db.saver(setup=False) as saver:
        assert saver.get_tuple(config) is None
        assert list(saver.list(None)) == []
        again = write_thread(saver)
        assert saver.get_tuple(again) is not None


def test_migrated_database_matches_schema_metadata(db: Db) -> None:
    """alembic's autogenerate comparison of the migrated database with schema.py finds no diffs.

    Types, nullability, indexes and unique constraints are compared; the
    version table is ours and is not part of the metadata.
    """
    from checkpoint_pg.schema import build_tables

    prefix = "cmp_"
    with db.saver(prefix=prefix):
        pass
    tables = build_tables(prefix)
    with db.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "version_table": tables.version_table,
                "include_name": lambda name, type_, parent: (
                    type_ != "table" or name.startswith(prefix)
                ),
                # indexes declared for the other backend only (Index.ddl_if)
                "include_object": lambda obj, name, type_, reflected, other: (
                    type_ != "index" or reflected or name in for_this_backend
                ),
            },
        )
        for_this_backend = set(declared_indexes(tables, conn.dialect.name))
        diffs = compare_metadata(ctx, tables.metadata)
        insp = sa.inspect(conn)
        index_names = {
            ix["name"] for t in our_tables(prefix) for ix in insp.get_indexes(t)
        }
        pk_cols = {t: insp.get_pk_constraint(t)["constrained_columns"] for t in our_tables(prefix)}
    assert diffs == [], diffs
    # the comparison did look at indexes: every declared index exists
    declared = set(declared_indexes(tables, conn.dialect.name))
    assert declared and declared <= index_names, (declared, index_names)
    # every primary key starts with thread_id (distributable by thread)
    for table, cols in pk_cols.items():
        assert cols[0] == "thread_id", (table, cols)
        assert cols == [c.name for c in tables.metadata.tables[table].primary_key.columns]


def test_comparison_detects_a_missing_index(db: Db) -> None:
    """The metadata comparison is not vacuous: dropping an index shows up as a diff."""
    from checkpoint_pg.schema import build_tables

    prefix = "drp_"
    with db.saver(prefix=prefix):
        pass
    tables = build_tables(prefix)
    with db.connect() as conn:
        conn.execute(sa.text(f"DROP INDEX {prefix}checkpoints_run_id_idx"))
        conn.commit()
        ctx = MigrationContext.configure(
            conn,
            opts={
                "version_table": tables.version_table,
                "include_name": lambda name, type_, parent: (
                    type_ != "table" or name.startswith(prefix)
                ),
                # indexes declared for the other backend only (Index.ddl_if)
                "include_object": lambda obj, name, type_, reflected, other: (
                    type_ != "index" or reflected or name in for_this_backend
                ),
            },
        )
        for_this_backend = set(declared_indexes(tables, conn.dialect.name))
        diffs = compare_metadata(ctx, tables.metadata)
    assert [d[0] for d in diffs] == ["add_index"], diffs
    assert diffs[0][1].name == f"{prefix}checkpoints_run_id_idx"


def test_run_id_index_skips_checkpoints_without_a_run_and_serves_delete_for_runs(db: Db) -> None:
    """Revision 0007: the run id index holds only checkpoints with a run id, and the
    lookup delete_for_runs makes (run_id in a list) still uses it."""
    prefix = "rid_"
    with db.saver(prefix=prefix) as saver:
        stmt = saver.ctx.sql.select_threads_of_runs(["run-1", "run-2"])
    name = f"{prefix}checkpoints_run_id_idx"
    with db.connect() as conn:
        if db.backend == "postgres":
            ddl = conn.execute(sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": name})
            assert "WHERE (run_id IS NOT NULL)" in ddl.scalar_one()
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + stmt.sql, stmt.params))
        else:
            ddl = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE name = :n"), {"n": name})
            assert "WHERE run_id IS NOT NULL" in ddl.scalar_one()
            plan = "\n".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + stmt.sql, stmt.params))
    assert name in plan, plan


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_0011_puts_on_generic_plans_and_downgrade_restores_the_put_of_0010(db: Db) -> None:
    """Revision 0011: the put function runs its statements on generic plans (the
    server re-planned them on every call); a downgrade to 0010 installs 0010's put
    again, and a thread put then reads back."""
    from checkpoint_pg import migrate
    from checkpoint_pg.schema import build_tables

    def put_settings(conn: sa.Connection) -> list[str] | None:
        # the newest put: from 0015 on, 0013's (one argument fewer) stays beside it
        return conn.exec_driver_sql(
            "SELECT proconfig FROM pg_proc WHERE proname = 'cpg_put' ORDER BY pronargs DESC LIMIT 1"
        ).scalar_one()

    tables = build_tables()
    with db.connect() as conn:  # 0010 installs its own functions, not the head's
        migrate.upgrade(conn, tables, "0010")
        assert put_settings(conn) is None
        migrate.upgrade(conn, tables)
    with db.saver() as saver:
        write_thread(saver)
    with db.connect() as conn:
        assert put_settings(conn) == ["plan_cache_mode=force_generic_plan"]
        migrate.downgrade(conn, tables, "0010")
        assert put_settings(conn) is None
        migrate.upgrade(conn, tables)
        assert put_settings(conn) == ["plan_cache_mode=force_generic_plan"]
    with db.saver(setup=False) as saver:
        config = write_thread(saver)
        assert build_chain(saver).get_state(config).values == {"log": ["a", "b", "c"]}


def test_downgrade_below_0008_rewrites_dictionary_compressed_objects(db: Db) -> None:
    """Revision 0008: on downgrade, objects compressed against dictionary zd1 are
    rewritten as releases before it store them (plain zlib, or uncompressed) under the
    same hashes; they decode to the values put, and read back equal after upgrading."""
    import zlib

    from checkpoint_pg import migrate
    from checkpoint_pg.schema import build_tables
    from langchain_core.messages import AIMessage
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    tables = build_tables()
    msgs = [AIMessage(f"reply {i}: " + "light rain over Oslo, " * (i + 2), id=f"a{i}") for i in range(6)]
    with db.saver() as saver:
        cp = empty_checkpoint()
        cp["channel_values"] = {"messages": msgs}
        cp["channel_versions"] = {"messages": saver.get_next_version(None, None)}
        cfg = saver.put(new_thread(), cp, {"source": "loop", "step": 0}, cp["channel_versions"])

    def objects() -> dict[bytes, tuple[str, bytes]]:
        with db.connect() as conn:
            rows = conn.execute(sa.text("SELECT hash, type, data FROM cpg_objects")).all()
        return {bytes(h): (typ, bytes(d)) for h, typ, d in rows}

    before = objects()
    assert len(before) == len(msgs) and all(t.startswith("zd1:") for t, _ in before.values())
    with db.connect() as conn:
        migrate.downgrade(conn, tables, "0007")
    after = objects()
    assert after.keys() == before.keys()
    serde = JsonPlusSerializer()
    decoded = []
    for typ, data in after.values():
        assert not typ.startswith("zd"), typ
        if typ.startswith("z:"):
            typ, data = typ[2:], zlib.decompress(data)
        decoded.append(serde.loads_typed((typ, data)))
    assert sorted(decoded, key=lambda m: m.id) == msgs
    with db.connect() as conn:
        migrate.upgrade(conn, tables)
    with db.saver(setup=False) as saver:
        assert saver.get_tuple(cfg).checkpoint["channel_values"]["messages"] == msgs


def _put_dicts(saver: Any) -> tuple[RunnableConfig, dict[str, Any], dict[str, Any]]:
    """A checkpoint whose channel value and pending write are dicts stored key by key."""
    from langchain_core.messages import AIMessage
    from langgraph.checkpoint.base import empty_checkpoint

    msgs = [AIMessage(f"reply {i}: " + "light rain over Oslo, " * (i % 9 + 2), id=f"a{i}") for i in range(70)]
    value = {"messages": msgs, "n": None, "empty": [], "tail": ["x", None, 3]}
    write = {"other": {"k": [1]}, "messages": msgs[:66]}
    cp = empty_checkpoint()
    # lists of 64 elements or more name chunks of their hashes (core/chunks.py)
    cp["channel_values"] = {"__start__": value, "messages": msgs}
    version = saver.get_next_version(None, None)
    cp["channel_versions"] = {"__start__": version, "messages": version}
    cfg = saver.put(new_thread(), cp, {"source": "input", "step": -1}, cp["channel_versions"])
    saver.put_writes(cfg, [("__start__", write)], "task-1")
    return cfg, value, write


def test_downgrade_below_0012_stores_dicts_whole(db: Db) -> None:
    """Revision 0012: on downgrade, rows naming chunks of their hashes hold the hashes
    again and the chunks are gone; dicts stored key by key (kind 4) are rewritten as one
    object each, put together from their parts, which the serializer decodes to the dict
    put; after upgrading again they read back equal."""
    from checkpoint_pg import migrate
    from checkpoint_pg.core.codec import inflate
    from checkpoint_pg.schema import build_tables
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    tables = build_tables()
    with db.saver() as saver:
        cfg, value, write = _put_dicts(saver)

    def rows() -> list[tuple[str, int, bytes]]:
        with db.connect() as conn:
            return [
                (ch, k, bytes(r))
                for q in (
                    "SELECT channel, kind, refs FROM cpg_channel_values ORDER BY channel",
                    "SELECT channel, kind, refs FROM cpg_writes",
                )
                for ch, k, r in conn.execute(sa.text(q)).all()
            ]

    def objects() -> dict[bytes, tuple[str, bytes]]:
        with db.connect() as conn:
            return {
                bytes(h): (t, bytes(d))
                for h, t, d in conn.execute(sa.text("SELECT hash, type, data FROM cpg_objects")).all()
            }

    assert [(ch, k, len(r) // 16) for ch, k, r in rows()] == [
        ("__start__", 4, 1 + 1 + 6 + 1 + 1 + 1), ("messages", 2, 1 + 6), ("__start__", 4, 1 + 1 + 1 + 2),
    ]
    assert sum(typ == "#refs" for typ, _ in objects().values()) == 1
    with db.connect() as conn:
        migrate.downgrade(conn, tables, "0011")
    after = objects()
    assert all(typ != "#refs" for typ, _ in after.values())
    serde = JsonPlusSerializer()
    (_, kind, refs), (_, list_kind, list_refs), (_, write_kind, write_refs) = rows()
    assert kind == write_kind == 1 and len(refs) == len(write_refs) == 16
    assert [serde.loads_typed(inflate(*after[r])) for r in (refs, write_refs)] == [value, write]
    assert list_kind == 2 and [
        serde.loads_typed(inflate(*after[list_refs[i : i + 16]])) for i in range(0, len(list_refs), 16)
    ] == value["messages"]
    with db.connect() as conn:
        migrate.upgrade(conn, tables)
    with db.saver(setup=False) as saver:
        tup = saver.get_tuple(cfg)
        assert tup.checkpoint["channel_values"] == {"__start__": value, "messages": value["messages"]}
        assert tup.pending_writes == [("task-1", "__start__", write)]


def test_downgrade_below_0014_stores_the_row_scalars_as_objects(db: Db) -> None:
    """Revision 0014: on downgrade, the small scalars a checkpoint's row holds become an
    object and a value row each, as an older release stores them (the default
    serializer's bytes, hashed unkeyed), and leave the document; shared by the
    checkpoints that carried them over. Upgraded again, the thread reads back the same."""
    import json

    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    from checkpoint_pg import migrate
    from checkpoint_pg.core.codec import object_hash
    from checkpoint_pg.schema import build_tables

    tables = build_tables()
    cfg = new_thread()
    values = {"status": "running", "n": 3, "flag": None, "ratio": -0.5, "ok": True}
    with db.saver() as saver:
        versions = {ch: saver.get_next_version(None, None) for ch in values}
        cp = empty_checkpoint()
        cp["channel_values"], cp["channel_versions"] = dict(values), dict(versions)
        first = saver.put(cfg, cp, {"source": "input", "step": -1}, versions)
        cp2 = empty_checkpoint()
        versions2 = {**versions, "n": saver.get_next_version(versions["n"], None)}
        cp2["channel_values"], cp2["channel_versions"] = {**values, "n": 4}, dict(versions2)
        saver.put(first, cp2, {"source": "loop", "step": 0}, {"n": versions2["n"]})
        before = [t.checkpoint for t in saver.list(cfg)]
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM cpg_channel_values")).scalar_one() == 0
        migrate.downgrade(conn, tables, "0013")
        docs = [json.loads(d) for (d,) in conn.execute(sa.text("SELECT checkpoint FROM cpg_checkpoints"))]
        assert docs and all("channel_values" not in d for d in docs)
        rows = conn.execute(sa.text("SELECT channel, version, kind, refs FROM cpg_channel_values")).all()
        objects = {bytes(h): (t, bytes(d)) for h, t, d in conn.execute(sa.text("SELECT hash, type, data FROM cpg_objects"))}
    serde = JsonPlusSerializer()
    got = {}
    for ch, ver, kind, refs in rows:
        typ, data = objects[bytes(refs)]
        assert kind == 1 and object_hash(typ, data) == bytes(refs)
        got[(ch, ver)] = serde.loads_typed((typ, data))
    want = {(ch, versions[ch]): v for ch, v in values.items()}
    want[("n", versions2["n"])] = 4
    assert got == want  # one row per version, the carried-over ones shared
    with db.connect() as conn:
        migrate.upgrade(conn, tables)
    with db.saver(setup=False) as saver:
        after = [t.checkpoint for t in saver.list(cfg)]
    assert after == before and [type(c["channel_values"]["ratio"]) for c in after] == [float, float]


def test_database_brought_to_0012_without_the_chunks_index_upgrades_and_downgrades(db: Db) -> None:
    """Revision 0012 as released from 82ab8eb to 1d20d95 did not create the partial index
    on chunks (1d20d95 added it to that revision): a database such a release brought to
    0012 gets the index at 0013, and downgrades below 0012 whether it has it or not."""
    from checkpoint_pg import migrate
    from checkpoint_pg.schema import build_tables

    tables = build_tables()
    with db.saver() as saver:
        cfg, value, write = _put_dicts(saver)

    def indexes() -> set[str]:
        with db.connect() as conn:
            return {i["name"] for i in sa.inspect(conn).get_indexes("cpg_objects")}

    with db.connect() as conn:
        migrate.downgrade(conn, tables, "0012")
        conn.execute(sa.text("DROP INDEX cpg_objects_chunks_idx"))  # as those releases left it
        conn.commit()
    assert "cpg_objects_chunks_idx" not in indexes()
    with db.connect() as conn:
        migrate.upgrade(conn, tables)
    assert "cpg_objects_chunks_idx" in indexes()
    with db.connect() as conn:
        migrate.downgrade(conn, tables, "0012")
        conn.execute(sa.text("DROP INDEX cpg_objects_chunks_idx"))
        conn.commit()
        migrate.downgrade(conn, tables, "0011")
        assert migrate.current(conn, tables) == "0011"
        migrate.upgrade(conn, tables)
    assert "cpg_objects_chunks_idx" in indexes()
    with db.saver(setup=False) as saver:
        tup = saver.get_tuple(cfg)
        assert tup.checkpoint["channel_values"]["__start__"] == value
        assert tup.pending_writes == [("task-1", "__start__", write)]


@pytest.mark.parametrize("part_type", ["bytes", "bytearray"])
def test_downgrade_below_0012_puts_bytes_back_as_msgpack_bin(db: Db, part_type: str) -> None:
    """bytes alone are typed "bytes" (not msgpack), inside a dict they are msgpack bin:
    a dict holding bytes, stored key by key, downgrades to the object an older release
    would have stored for it (same bytes, same hash), bin8, bin16 and bin32 alike. So
    does a bytearray, typed "bytearray" alone and bin inside a dict, which the first
    releases of 0012 (before 6f15b9e) stored key by key."""
    from checkpoint_pg import migrate
    from checkpoint_pg.core.codec import ValueCodec, inflate
    from checkpoint_pg.schema import build_tables
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    # a list of short bytes stays whole: these are 64 bytes or more (bin8, bin16, bin32)
    value = {"blobs": [b"x" * 64, b"w" * 255, b"y" * 300, b"z" * 70_000] * 2, "one": b"", "two": b"x"}
    tables = build_tables()
    with db.saver() as saver:
        cp = empty_checkpoint()
        cp["channel_values"] = {"__start__": value}
        cp["channel_versions"] = {"__start__": saver.get_next_version(None, None)}
        cfg = saver.put(new_thread(), cp, {"source": "input", "step": -1}, cp["channel_versions"])
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT kind FROM cpg_channel_values")).scalar_one() == 4
        if part_type == "bytearray":  # as those releases typed a bytearray's parts
            conn.execute(sa.text("UPDATE cpg_objects SET type = 'bytearray' WHERE type = 'bytes'"))
        migrate.downgrade(conn, tables, "0011")
        kind, refs = conn.execute(sa.text("SELECT kind, refs FROM cpg_channel_values")).one()
        typ, data = conn.execute(
            sa.text("SELECT type, data FROM cpg_objects WHERE hash = :h"), {"h": bytes(refs)}
        ).one()
    serde = JsonPlusSerializer()
    assert kind == 1
    assert inflate(typ, bytes(data)) == serde.dumps_typed(value)
    assert bytes(refs) == ValueCodec(serde).dump(value).hash
    with db.connect() as conn:
        migrate.upgrade(conn, tables)
    with db.saver(setup=False) as saver:
        assert saver.get_tuple(cfg).checkpoint["channel_values"]["__start__"] == value



def test_a_dict_the_0012_downgrade_stored_whole_reads_back_with_a_hash_key(db: Db) -> None:
    """A saver with hash_key= and no encryption: the 0012 downgrade stores each dict
    whole under an unkeyed hash (a migration has no key), and after upgrading again the
    dict reads back; every object read is checked against its hash, keyed or, for
    such a saver, not."""
    from langchain_core.messages import AIMessage
    from langgraph.checkpoint.base import empty_checkpoint

    from checkpoint_pg import migrate
    from checkpoint_pg.schema import build_tables

    key = b"k" * 32
    value = {"messages": [AIMessage(f"reply {i}", id=f"a{i}") for i in range(10)], "n": 1}
    with db.saver(hash_key=key) as saver:
        cp = empty_checkpoint()
        cp["channel_values"] = {"d": value}
        cp["channel_versions"] = {"d": saver.get_next_version(None, None)}
        cfg = saver.put(new_thread(), cp, {"source": "loop", "step": 1}, cp["channel_versions"])
    tables = build_tables()
    with db.connect() as conn:
        migrate.downgrade(conn, tables, "0011")
    with db.connect() as conn:
        migrate.upgrade(conn, tables)
    with db.saver(setup=False, hash_key=key) as saver:
        assert saver.get_tuple(cfg).checkpoint["channel_values"]["d"] == value


def test_downgrade_below_0012_refuses_encrypted_dicts_and_changes_nothing(db: Db) -> None:
    """Encrypted parts cannot be put together without the key: the downgrade stops,
    saying how many dicts and what to do, and the database stays at 0012, readable."""
    from checkpoint_pg import CheckpointPgError, migrate
    from checkpoint_pg.schema import build_tables
    from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

    serde = EncryptedSerializer.from_pycryptodome_aes(key=b"migration-test-aes-key-32-bytes!")
    options = {"serde": serde, "hash_key": b"migration-test-hash-key"}
    with db.saver(**options) as saver:
        cfg, value, write = _put_dicts(saver)
    tables = build_tables()
    with db.connect() as conn, pytest.raises(CheckpointPgError, match="2 stored dicts are encrypted"):
        migrate.downgrade(conn, tables, "0011")
    with db.connect() as conn:
        assert migrate.current(conn, tables) == migrate.head()
    with db.saver(setup=False, **options) as saver:
        assert saver.get_tuple(cfg).checkpoint["channel_values"]["__start__"] == value


# -- version table, coexistence ---------------------------------------------------


def test_own_version_table_coexists_with_users_alembic_version(db: Db) -> None:
    """Our revision lives in ``{prefix}alembic_version``; the user's ``alembic_version`` is untouched."""
    from checkpoint_pg import migrate

    with db.connect() as conn:
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES ('users_rev_42')"))
        conn.commit()
    with db.saver() as saver:
        config = write_thread(saver)
        assert saver.tables.version_table == "cpg_alembic_version"
    with db.connect() as conn:
        users = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
        ours = conn.execute(sa.text("SELECT version_num FROM cpg_alembic_version")).scalars().all()
    assert users == ["users_rev_42"]
    assert ours == [migrate.head()]
    # and our downgrade leaves the user's history alone too
    from checkpoint_pg.schema import build_tables

    with db.connect() as conn:
        migrate.downgrade(conn, build_tables(), "base")
        users = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    assert users == ["users_rev_42"]
    assert "alembic_version" in db.table_names()
    del config


def test_setup_is_idempotent(db: Db) -> None:
    """Calling setup() again (same or another saver) changes nothing and keeps the data."""
    from checkpoint_pg import migrate
    from checkpoint_pg.schema import build_tables

    with db.saver() as saver:
        config = write_thread(saver)
        before = saver.get_tuple(config)
        saver.setup()
        saver.setup()
        after = saver.get_tuple(config)
        assert after is not None and before is not None
        assert after.checkpoint == before.checkpoint
    with db.saver() as saver:  # a new process would do this
        saver.setup()
        assert saver.get_tuple(config).checkpoint == before.checkpoint
    with db.connect() as conn:
        assert migrate.current(conn, build_tables()) == migrate.head()
        rows = conn.execute(sa.text("SELECT count(*) FROM cpg_alembic_version")).scalar_one()
    assert rows == 1


def test_two_prefixes_coexist_in_one_database(db: Db) -> None:
    """Two prefixes are two independent stores, each with its own version table."""
    from checkpoint_pg import migrate
    from checkpoint_pg.schema import build_tables

    with db.saver(prefix="one_") as one, db.saver(prefix="two_") as two:
        c1 = write_thread(one)
        c2 = write_thread(two)
        assert one.get_tuple(c2) is None
        assert two.get_tuple(c1) is None
        assert [t.config["configurable"]["thread_id"] for t in one.list(None)][:1] == [
            c1["configurable"]["thread_id"]
        ]
        assert {t.config["configurable"]["thread_id"] for t in two.list(None)} == {
            c2["configurable"]["thread_id"]
        }
    names = db.table_names()
    assert our_tables("one_") | our_tables("two_") <= names
    assert {"one_alembic_version", "two_alembic_version"} <= names
    with db.connect() as conn:
        assert migrate.current(conn, build_tables("one_")) == migrate.head()
        assert migrate.current(conn, build_tables("two_")) == migrate.head()
        # downgrading one prefix leaves the other intact
        migrate.downgrade(conn, build_tables("one_"), "base")
    names = db.table_names()
    assert not (our_tables("one_") & names)
    assert our_tables("two_") <= names
    with db.saver(prefix="two_", setup=False) as two:
        assert two.get_tuple(c2) is not None


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_postgres_schema_option_puts_every_table_there(db: Db) -> None:
    """``schema="myschema"`` creates the schema and puts every table (and the version table) in it."""
    with db.saver(schema="myschema") as saver:
        config = write_thread(saver)
        assert saver.get_tuple(config) is not None
    with db.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
            )
        ).all()
    by_schema: dict[str, set[str]] = {}
    for schema, name in rows:
        by_schema.setdefault(schema, set()).add(name)
    assert by_schema == {"myschema": our_tables("cpg_") | {"cpg_alembic_version"}}, by_schema
    assert count_rows(db, "cpg_checkpoints", schema="myschema") > 0
    # the same prefix without schema= is a different, empty store in public
    with db.saver() as public:
        assert public.get_tuple(config) is None
        other = write_thread(public)
    assert our_tables("cpg_") <= db.table_names(schema="public")
    # and setting it up did not take over the schema'd store (nor the reverse)
    with db.saver(schema="myschema", setup=False) as saver:
        assert saver.get_tuple(config) is not None
        assert saver.get_tuple(other) is None
    with db.saver(setup=False) as public:
        assert public.get_tuple(other) is not None
        assert public.get_tuple(config) is None


# -- concurrent setup -------------------------------------------------------------


def _setup_worker(url: str, barrier: Any, results: Any, n: int) -> None:
    try:
        from checkpoint_pg import PostgresSaver

        with PostgresSaver.from_conn_string(url) as saver:
            barrier.wait(timeout=60)
            saver.setup()
            config = {"configurable": {"thread_id": f"proc-{n}"}}
            build_chain(saver).invoke({"log": []}, config)
            values = build_chain(saver).get_state(config).values
        results.put((n, "ok", values["log"]))
    except BaseException:  # noqa: BLE001 - reported to the parent
        results.put((n, "error", traceback.format_exc()))


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_concurrent_setup_from_four_processes(db: Db) -> None:
    """Four processes calling setup() at once on a fresh database all succeed (advisory lock)."""
    from checkpoint_pg import migrate
    from checkpoint_pg.schema import build_tables

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    results = ctx.Queue()
    procs = [ctx.Process(target=_setup_worker, args=(db.url, barrier, results, n)) for n in range(4)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [o for o in outcomes if o[1] != "ok"]
    assert not errors, "\n".join(o[2] for o in errors)
    assert sorted(o[0] for o in outcomes) == [0, 1, 2, 3]
    assert all(o[2] == ["a", "b", "c"] for o in outcomes)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with db.connect() as conn:
        assert migrate.current(conn, build_tables()) == migrate.head()
        assert conn.execute(sa.text("SELECT count(*) FROM cpg_alembic_version")).scalar_one() == 1
        threads = conn.execute(sa.text("SELECT count(*) FROM cpg_threads")).scalar_one()
    assert threads == 4


# -- a database at another revision -----------------------------------------------


def _older_revisions() -> list[str]:
    """Every revision before head, newest first, then base (read at collection time)."""
    try:
        from checkpoint_pg import migrate

        return [rev for rev, _, _ in migrate.history()][:-1][::-1] + ["base"]
    except Exception:  # noqa: BLE001 - a broken package must not break collection
        return ["base"]


@pytest.mark.parametrize("older", _older_revisions())
def test_database_behind_head_is_refused_naming_the_upgrade_command(db: Db, older: str) -> None:
    """A database downgraded to an older revision gives SchemaVersionError on first use.

    Every revision before head is tried, and base (no table of ours left). The error names ``checkpoint-pg migrate upgrade``;
    after setup() the saver works again, and data that survived the
    downgrade reads back.
    """
    from checkpoint_pg import SchemaVersionError, migrate
    from checkpoint_pg.schema import build_tables

    with db.saver() as saver:
        config = write_thread(saver)
    with db.connect() as conn:
        migrate.downgrade(conn, build_tables(), older)
        assert migrate.current(conn, build_tables()) == (None if older == "base" else older)
    # at base nothing of ours is left, not even the version table
    assert ("cpg_alembic_version" in db.table_names()) == (older != "base")
    with db.saver(setup=False) as saver:
        with pytest.raises(SchemaVersionError) as info:
            saver.get_tuple(config)
        assert "checkpoint-pg migrate upgrade" in str(info.value)
        assert info.value.current == (None if older == "base" else older)
        assert info.value.expected == migrate.head()
        with pytest.raises(SchemaVersionError, match="checkpoint-pg migrate upgrade"):
            saver.put(config, {}, {}, {})  # refused before it looks at its arguments
        saver.setup()
        if older == "base":
            assert saver.get_tuple(config) is None  # the downgrade dropped the data
        else:
            tup = saver.get_tuple(config)
            assert tup is not None
            assert build_chain(saver).get_state(config).values == {"log": ["a", "b", "c"]}
        write_thread(saver)


def test_each_revision_steps_down_and_up_with_data(db: Db) -> None:
    """Each revision above base is downgraded one step and upgraded again with a thread
    stored: the data survives every step and the thread reads back at head."""
    from checkpoint_pg import migrate
    from checkpoint_pg.schema import build_tables

    tables = build_tables()
    with db.saver() as saver:
        config = write_thread(saver)
    stored = count_rows(db, "cpg_checkpoints")
    assert stored > 0
    revisions = [rev for rev, _, _ in migrate.history()]
    for rev, down, _ in reversed(migrate.history()):
        if down is None:
            break
        with db.connect() as conn:
            migrate.downgrade(conn, tables, rev)
            assert migrate.current(conn, tables) == rev
            migrate.downgrade(conn, tables, down)
            assert migrate.current(conn, tables) == down
            assert count_rows(db, "cpg_checkpoints") == stored
            migrate.upgrade(conn, tables, rev)
            assert migrate.current(conn, tables) == rev
            migrate.upgrade(conn, tables)
            assert migrate.current(conn, tables) == migrate.head()
        with db.saver(setup=False) as saver:
            assert build_chain(saver).get_state(config).values == {"log": ["a", "b", "c"]}
    assert revisions[-1] == migrate.head()


def test_upgrade_commits_the_transaction_it_runs_in(db: Db) -> None:
    """As the README says: upgrade() runs as one transaction and commits it, so on a
    connection that had a transaction open (SQLAlchemy opens one at the first
    statement), the statements before it are committed too."""
    from checkpoint_pg import migrate
    from checkpoint_pg.schema import build_tables

    with db.connect() as conn:
        conn.execute(sa.text("CREATE TABLE users_own (x int)"))
        assert conn.in_transaction()
        migrate.upgrade(conn, build_tables())
    assert {"users_own", "cpg_checkpoints"} <= db.table_names()


def test_the_advised_upgrade_command_migrates_the_savers_own_tables(db: Db) -> None:
    """A saver with its own prefix (and Postgres schema) on a database behind head names
    the upgrade command with those options: run as written, it migrates that saver's
    tables (without them it would set up a new default store and leave these behind)."""
    import re
    import shlex

    from checkpoint_pg import SchemaVersionError, migrate
    from checkpoint_pg.cli import main
    from checkpoint_pg.schema import build_tables

    options = {"prefix": "app_", **({"schema": "agents"} if db.backend == "postgres" else {})}
    tables = build_tables(options["prefix"], options.get("schema"))
    with db.saver(**options) as saver:
        config = write_thread(saver)
    older = [rev for rev, _, _ in migrate.history()][-2]
    with db.connect() as conn:
        migrate.downgrade(conn, tables, older)
    for to_base in (False, True):
        with db.saver(setup=False, **options) as saver:
            if to_base:  # the same for a database that has none of these tables
                with db.connect() as conn:
                    migrate.downgrade(conn, tables, "base")
            with pytest.raises(SchemaVersionError) as info:
                saver.get_tuple(config)
        (command,) = re.findall(r"run `checkpoint-pg (migrate upgrade [^`]+)`", str(info.value))
        assert "--prefix app_" in command and ("--schema agents" in command) == (db.backend == "postgres")
        assert main(shlex.split(command)) == 0
        with db.connect() as conn:
            assert migrate.current(conn, tables) == migrate.head()
            assert migrate.current(conn, build_tables()) is None  # no default store made
    with db.saver(setup=False, **options) as saver:
        assert saver.get_tuple(config) is None  # the downgrade to base dropped the thread
        write_thread(saver)


def test_tables_without_their_version_table_are_refused_saying_how_to_record_it(
    db: Db, capsys: pytest.CaptureFixture[str]
) -> None:
    """Our tables are there but their version table is not (dropped, or left out of a
    restore): setup() and ``migrate upgrade`` (and its dry run) refuse with
    SchemaVersionError saying so and how to record the revision, instead of the driver's
    "table already exists" from creating them again after advising that very upgrade;
    nothing changes, and once recorded as the message says, the data reads back."""
    import re

    from checkpoint_pg import SchemaVersionError, migrate
    from checkpoint_pg.cli import main
    from checkpoint_pg.schema import build_tables

    options = {"prefix": "App_", **({"schema": "Agents"} if db.backend == "postgres" else {})}
    tables = build_tables(options["prefix"], options.get("schema"))
    with db.saver(**options) as saver:
        config = write_thread(saver)
    with db.connect() as conn:
        sa.Table(tables.version_table, sa.MetaData(), schema=tables.schema).drop(conn)
        conn.commit()
    cli_options = ["--url", db.url, "--prefix", "App_", *(["--schema", "Agents"] if db.backend == "postgres" else [])]
    with db.saver(setup=False, **options) as saver:
        with pytest.raises(SchemaVersionError) as info:
            saver.setup()
    message = str(info.value)
    assert "App_threads" in message and "App_alembic_version" in message, message
    assert "migrate upgrade" not in message, message  # running it again cannot help
    capsys.readouterr()
    assert main(["migrate", "upgrade", *cli_options]) == 1
    assert "App_alembic_version" in capsys.readouterr().err
    assert main(["migrate", "upgrade", "--dry-run", *cli_options]) == 1
    assert "App_alembic_version" in capsys.readouterr().err
    assert main(["migrate", "current", *cli_options]) == 1
    out = capsys.readouterr().out
    assert "without their version table" in out and "no checkpoint_pg tables" not in out, out
    assert count_rows(db, "App_checkpoints", schema=tables.schema) > 0  # nothing was dropped
    # the advice, followed as written, with the revision the tables are at
    statements = re.search(r": (CREATE TABLE .*)$", message).group(1).replace("<revision>", migrate.head())
    with db.connect() as conn:
        for statement in statements.split("; "):
            conn.execute(sa.text(statement))
        conn.commit()
    with db.saver(**options) as saver:
        assert build_chain(saver).get_state(config).values == {"log": ["a", "b", "c"]}


def test_database_without_tables_is_refused_naming_the_upgrade_command(db: Db) -> None:
    """A saver on a database that was never set up says to run setup() / the upgrade command."""
    from checkpoint_pg import SchemaVersionError

    with (
        db.saver(setup=False) as saver,
        pytest.raises(SchemaVersionError, match="checkpoint-pg migrate upgrade"),
    ):
        saver.get_tuple(new_thread())


@pytest.mark.parametrize("revision", ["0000", "9999_from_the_future"])
def test_database_at_an_unknown_revision_is_refused(db: Db, revision: str) -> None:
    """A version table edited to a revision this package does not know gives SchemaVersionError.

    The message names the revision found and the one needed, and says what to
    do. An unknown revision cannot be upgraded from (alembic cannot locate it),
    so the advice is to upgrade the checkpoint-pg package, not to migrate.
    """
    from checkpoint_pg import SchemaVersionError, migrate

    with db.saver() as saver:
        config = write_thread(saver)
    with db.connect() as conn:
        conn.execute(sa.text("UPDATE cpg_alembic_version SET version_num = :v"), {"v": revision})
        conn.commit()
    with db.saver(setup=False) as saver:
        with pytest.raises(SchemaVersionError) as info:
            saver.get_tuple(config)
        with pytest.raises(SchemaVersionError):
            saver.put(config, {}, {}, {})
    message = str(info.value)
    assert info.value.current == revision
    assert info.value.expected == migrate.head()
    assert revision in message and migrate.head() in message
    assert "upgrade" in message and "checkpoint-pg" in message, message


def test_setup_on_an_unknown_revision_raises_schema_version_error(db: Db) -> None:
    """setup() on a database migrated by a newer release raises SchemaVersionError, not alembic's error.

    Every error of the package derives from CheckpointPgError (errors.py), and
    the message must say what to do (upgrade the package).
    """
    from checkpoint_pg import SchemaVersionError

    with db.saver():
        pass
    with db.connect() as conn:
        conn.execute(sa.text("UPDATE cpg_alembic_version SET version_num = '9999_newer'"))
        conn.commit()
    with db.saver(setup=False) as saver, pytest.raises(SchemaVersionError) as info:
        saver.setup()
    assert "9999_newer" in str(info.value)
    assert "upgrade" in str(info.value)
    # the database was left as it was
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM cpg_alembic_version")).scalar_one() == (
            "9999_newer"
        )


def test_migrate_api_raises_our_errors_for_revisions_it_cannot_move_to(db: Db) -> None:
    """upgrade(), downgrade() and offline_sql() from Python raise errors of the package's one
    root (errors.py) saying what to do, never alembic's CommandError: a revision this release
    does not know, or a downgrade of a database migrated by a newer release (which says to
    downgrade with that release); the database is left as it was."""
    from alembic.util import CommandError

    from checkpoint_pg import CheckpointPgError, SchemaVersionError, migrate
    from checkpoint_pg.schema import build_tables

    tables = build_tables()
    with db.saver():
        pass
    for call in (
        lambda conn: migrate.upgrade(conn, tables, "nope"),
        lambda conn: migrate.downgrade(conn, tables, "nope"),
    ):
        with db.connect() as conn, pytest.raises(CheckpointPgError, match="migrate history") as info:
            call(conn)
        assert not isinstance(info.value, CommandError)
    with pytest.raises(CheckpointPgError, match="migrate history"):
        migrate.offline_sql(tables, "sqlite", start="nope")
    with db.connect() as conn:
        conn.execute(sa.text("UPDATE cpg_alembic_version SET version_num = '9999_newer'"))
        conn.commit()
    for target in (migrate.head(), "base"):
        with db.connect() as conn, pytest.raises(SchemaVersionError) as info:
            migrate.downgrade(conn, tables, target)
        assert "9999_newer" in str(info.value) and "downgrade with that release" in str(info.value)
        assert info.value.current == "9999_newer"
    with db.connect() as conn:
        assert migrate.current(conn, tables) == "9999_newer"
    assert our_tables("cpg_") <= db.table_names()


def test_only_the_head_revision_installs_the_current_codes_functions() -> None:
    """Every revision but the head installs frozen DDL (migrations/frozen.py): one that
    installed the current code's functions would install whatever a later release's
    code holds, and stop doing what it did when it was written."""
    import pathlib

    from checkpoint_pg import migrate

    versions = pathlib.Path(migrate.__file__).parent / "migrations" / "versions"
    head = migrate.head()
    bare = [
        f.name
        for f in sorted(versions.glob("*.py"))
        if "install_functions()" in f.read_text() and not f.name.startswith(head)
    ]
    assert bare == [], "freeze their DDL in migrations/frozen.py and install that"


def test_head_installs_the_functions_of_the_current_code(pg_url: str) -> None:
    """The put / put_writes / get_tuple functions the head revision installs are
    the ones the current code calls (sql/functions.py), and the code still
    matches what the head revision was written to install: a change to a
    function without a new revision that installs it fails here. Helpers that
    older revisions installed (split_refs) are gone; the put of revision 0013's
    signature stays beside the new one, for older releases' running processes."""
    import hashlib  # noqa: PLC0415

    from checkpoint_pg.migrations.frozen import (  # noqa: PLC0415
        FUNCTIONS_SHA256_HEAD,
        LEGACY_PUT_0013,
        render,
    )
    from checkpoint_pg.schema import build_tables  # noqa: PLC0415
    from checkpoint_pg.sql.postgres import PostgresSQL  # noqa: PLC0415

    default = PostgresSQL(build_tables())
    assert hashlib.sha256("\n".join(default.fn.ddl(default)).encode()).hexdigest() == (
        FUNCTIONS_SHA256_HEAD
    ), "sql/functions.py changed: freeze the head's DDL in migrations/frozen.py and add a revision"
    import psycopg  # noqa: PLC0415

    from checkpoint_pg import PostgresSaver  # noqa: PLC0415

    prefix = f"f{secrets.token_hex(4)}_"
    with PostgresSaver.from_conn_string(pg_url, prefix=prefix) as saver:
        saver.setup()
        sql = saver.ctx.sql
        expected = {}
        for ddl in sql.fn.ddl(sql):
            name = ddl.split("FUNCTION ", 1)[1].split("(", 1)[0].strip('"')
            expected[name] = ddl.split("$fn$", 2)[1]
        legacy = render(LEGACY_PUT_0013, saver.tables)
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT proname, prosrc FROM pg_proc WHERE starts_with(proname, %s) "
            "AND oid IS DISTINCT FROM to_regprocedure(%s)",
            (prefix, legacy),
        ).fetchall()
        assert conn.execute("SELECT to_regprocedure(%s)", (legacy,)).fetchone()[0] is not None
    assert dict(rows) == expected
