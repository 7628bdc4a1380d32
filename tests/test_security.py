"""Security: no pickle (nor any other way for stored bytes to run code) by
default, encryption at rest that keeps deduplication, SQL with bound
parameters only, and a saver that runs with DML rights only.
"""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from faultkit import SimThread, ids_of, qualified, raw_connection, row_counts


class PickleOnly:
    """Serializable by pickle only."""

    def __init__(self) -> None:
        self.secret = "pickled"


class RunsCodeWhenUnpickled:
    """Unpickling this calls os.mkdir(path): proof that pickle.loads ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (os.mkdir, (self.path,))


# --------------------------------------------------------------------------
# No pickle
# --------------------------------------------------------------------------


def test_package_source_never_uses_pickle() -> None:
    """Nothing in the package imports pickle (or its cousins) or turns the
    serializer's pickle fallback on."""
    import checkpoint_pg  # noqa: PLC0415

    root = Path(checkpoint_pg.__file__).resolve().parent
    pattern = re.compile(
        r"^\s*(import|from)\s+(c?pickle|dill|cloudpickle|shelve|marshal|jsonpickle)\b"
        r"|pickle_fallback\s*=\s*True|\bpickle\.loads?\(|\bmarshal\.loads?\(",
        re.MULTILINE,
    )
    offenders = []
    for path in root.rglob("*.py"):
        for match in pattern.finditer(path.read_text()):
            offenders.append(f"{path.relative_to(root)}: {match.group(0).strip()}")
    assert offenders == []


def test_default_serializer_has_no_pickle_fallback(saver) -> None:
    assert isinstance(saver.serde, JsonPlusSerializer)
    assert saver.serde.pickle_fallback is False
    codec_serde = saver.ctx.codec.serde
    assert getattr(codec_serde, "pickle_fallback", False) is False


async def test_async_default_serializer_has_no_pickle_fallback(async_saver) -> None:
    assert isinstance(async_saver.serde, JsonPlusSerializer)
    assert async_saver.serde.pickle_fallback is False


def test_pickle_only_value_is_refused(saver, saver_target, backend: str) -> None:
    from checkpoint_pg import SerializationError  # noqa: PLC0415

    sim = SimThread(saver, f"nopickle-{uuid.uuid4().hex[:8]}")
    sim.run_step()
    before = row_counts(backend, saver_target.conn_string, saver)
    st = sim.prepare()
    st.checkpoint["channel_values"]["obj"] = PickleOnly()
    st.checkpoint["channel_versions"]["obj"] = st.new_versions["obj"] = saver.get_next_version(None, None)
    with pytest.raises(SerializationError, match="PickleOnly"):
        sim.send_put(st)
    with pytest.raises(SerializationError, match="PickleOnly"):
        saver.put_writes(sim.config(sim.order[-1]), [("obj", PickleOnly())], "task")
    assert row_counts(backend, saver_target.conn_string, saver) == before


def plant_object(backend: str, conn_string: str, saver: Any, thread_id: str, placeholder: str, typ: str, data: bytes) -> None:
    """Replace the stored object of *placeholder* (a str value) by (typ, data), under the
    hash of what it now holds, and point the rows that named it (a scalar channel value
    and a write) at that hash: all that whoever can write the database and knows the
    hashing can do, so that a read reaches the serializer with it."""
    _, plain_bytes = JsonPlusSerializer().dumps_typed(stored_whole(placeholder))
    new = saver.ctx.codec.digest(typ, data)
    with raw_connection(backend, conn_string) as conn:
        q = "?" if backend == "sqlite" else "%s"
        (old,) = conn.execute(
            f"SELECT hash FROM {qualified(saver, 'objects')} WHERE thread_id = {q} AND data = {q}",
            (thread_id, plain_bytes),
        ).fetchone()
        cur = conn.execute(
            f"UPDATE {qualified(saver, 'objects')} SET hash = {q}, type = {q}, data = {q} "
            f"WHERE thread_id = {q} AND hash = {q}",
            (new, typ, data, thread_id, old),
        )
        assert cur.rowcount == 1
        for table in ("channel_values", "writes"):
            cur = conn.execute(
                f"UPDATE {qualified(saver, table)} SET refs = {q} WHERE thread_id = {q} AND refs = {q}",
                (new, thread_id, old),
            )
            assert cur.rowcount == 1, table


def stored_whole(placeholder: str) -> str:
    """The placeholder as a value stored as an object (a short str would live in its
    checkpoint's row, revision 0014)."""
    return placeholder.ljust(80, ".")


def planted_thread(saver: Any, placeholder: str) -> SimThread:
    placeholder = stored_whole(placeholder)
    sim = SimThread(saver, f"planted-{uuid.uuid4().hex[:8]}")
    sim.run_step()
    st = sim.prepare()
    st.checkpoint["channel_values"]["payload"] = placeholder
    st.checkpoint["channel_versions"]["payload"] = st.new_versions["payload"] = saver.get_next_version(None, None)
    st.writes = [("payload", placeholder)]
    sim.send_writes(st)
    sim.send_put(st)
    return sim


def read_everything(saver: Any, sim: SimThread) -> list[BaseException]:
    """Read the thread every way there is; return the errors raised."""
    errors = []
    for call in (
        lambda: saver.get_tuple(sim.config()),
        lambda: saver.get_tuple(sim.config(sim.order[0])),  # its writes hold the payload
        lambda: list(saver.list(sim.config())),
        lambda: list(saver.list(None)),
    ):
        try:
            call()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    return errors


def test_stored_pickle_is_never_unpickled(saver, saver_target, backend: str, tmp_path) -> None:
    """A row that says "pickle" (planted by whoever can write to the database)
    is refused on every read path, and its code does not run."""
    import pickle  # noqa: PLC0415 - to build the hostile payload only

    from checkpoint_pg import SerializationError  # noqa: PLC0415

    marker = tmp_path / "pickle-ran"
    sim = planted_thread(saver, "placeholder-pickle")
    plant_object(
        backend, saver_target.conn_string, saver, sim.thread_id, "placeholder-pickle",
        "pickle", pickle.dumps(RunsCodeWhenUnpickled(str(marker))),
    )
    errors = read_everything(saver, sim)
    assert not marker.exists(), "a stored pickle was unpickled"
    assert errors and all(isinstance(e, SerializationError) for e in errors), errors


def test_stored_object_cannot_call_arbitrary_functions(
    make_saver, saver_target, backend: str, tmp_path
) -> None:
    """The msgpack format can name a constructor (module, name, args) that
    JsonPlusSerializer imports and calls on load -- code execution from a
    database row unless the allowlist is strict. With the hardened serializer
    (what LANGGRAPH_STRICT_MSGPACK=true selects; the README's advice for a
    database others can write to) the saver must not call ``os.mkdir``
    because a row says so. The default follows LangGraph's own policy
    (permissive, with a warning), like the incumbent savers."""
    import ormsgpack  # noqa: PLC0415
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer  # noqa: PLC0415

    marker = tmp_path / "msgpack-ran"
    with make_saver(serde=JsonPlusSerializer(allowed_msgpack_modules=None)) as saver:
        sim = planted_thread(saver, "placeholder-ext")
        payload = ormsgpack.packb(ormsgpack.Ext(0, ormsgpack.packb(("os", "mkdir", str(marker)))))
        plant_object(
            backend, saver_target.conn_string, saver, sim.thread_id, "placeholder-ext", "msgpack", payload
        )
        read_everything(saver, sim)
    assert not marker.exists(), "loading a stored object called os.mkdir"


STRICT_CHILD = textwrap.dedent(
    """
    import sys
    from dataclasses import dataclass
    from typing import TypedDict
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph
    from checkpoint_pg import SqliteSaver

    @dataclass
    class Item:
        name: str

    class State(TypedDict):
        item: Item

    def build(checkpointer):
        b = StateGraph(State)
        b.add_node("n", lambda s: {"item": Item("after")})
        b.add_edge(START, "n")
        b.add_edge("n", END)
        return b.compile(checkpointer=checkpointer)

    config = {"configurable": {"thread_id": "t"}}
    ref = build(InMemorySaver())
    ref.invoke({"item": Item("before")}, config)
    with SqliteSaver.from_conn_string(sys.argv[1]) as saver:
        saver.setup()
        ours = build(saver)
        ours.invoke({"item": Item("before")}, config)
        print(repr(ref.get_state(config).values))
        print(repr(ours.get_state(config).values))
    """
)


def test_strict_msgpack_mode_honours_the_graphs_allowlist(tmp_path) -> None:
    """LANGGRAPH_STRICT_MSGPACK=true (the hardened setting) blocks unknown
    types on load; a compiled graph allows its own state types through
    ``checkpointer.with_allowlist``. The saver must apply that allowlist to
    what it decodes, or custom state types come back as plain dicts."""
    from test_concurrency import subprocess_env  # noqa: PLC0415

    env = {**subprocess_env(), "LANGGRAPH_STRICT_MSGPACK": "true"}
    res = subprocess.run(
        [sys.executable, "-c", STRICT_CHILD, str(tmp_path / "strict.db")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    ref, ours = res.stdout.strip().splitlines()[-2:]
    assert "Item(name='after')" in ref
    assert ours == ref


# --------------------------------------------------------------------------
# Encryption at rest
# --------------------------------------------------------------------------

AES_KEY = b"0123456789abcdef0123456789abcdef"
HASH_KEY = b"hash-key-kept-with-the-aes-key!!"
SECRET = "TOP-SECRET-PLAINTEXT-9f3b"


def encrypted_serde() -> EncryptedSerializer:
    pytest.importorskip("Crypto", reason="EncryptedSerializer needs pycryptodome (test extra)")
    return EncryptedSerializer.from_pycryptodome_aes(key=AES_KEY)


def all_stored_bytes(backend: str, conn_string: str, saver: Any) -> bytes:
    """Every value column of every table, concatenated."""
    out = []
    with raw_connection(backend, conn_string) as conn:
        for logical, cols in {
            "objects": ("type", "data"),
            "channel_values": ("channel", "refs"),
            "writes": ("channel", "refs"),
            "checkpoints": ("checkpoint",),
        }.items():
            for row in conn.execute(f"SELECT {', '.join(cols)} FROM {qualified(saver, logical)}"):
                for v in row:
                    out.append(bytes(v) if isinstance(v, (bytes, bytearray, memoryview)) else str(v).encode())
    return b"\n".join(out)


def test_encrypted_serializer_round_trips(make_saver, saver_target, backend: str) -> None:
    with make_saver(serde=encrypted_serde(), hash_key=HASH_KEY) as saver:
        sim = SimThread(saver, f"enc-{uuid.uuid4().hex[:8]}")
        for _ in range(6):
            sim.run_step()
        st = sim.prepare()
        st.checkpoint["channel_values"]["secret"] = {"text": SECRET, "items": [SECRET, 1]}
        st.checkpoint["channel_versions"]["secret"] = st.new_versions["secret"] = saver.get_next_version(None, None)
        st.writes = [("secret", SECRET)]
        sim.send_writes(st)
        sim.send_put(st)
        assert sim.verify() == 7
        assert saver.get_tuple(sim.config()).checkpoint["channel_values"]["secret"]["text"] == SECRET

        stored = all_stored_bytes(backend, saver_target.conn_string, saver)
        assert SECRET.encode() not in stored
        assert b"message 3 of" not in stored  # the messages are encrypted too
        types = {r for r in stored.split(b"\n") if r.startswith(b"msgpack")}
        assert types and all(b"+aes" in t for t in types), types

    # without the key the data is unreadable, with a clear error
    from checkpoint_pg import SerializationError  # noqa: PLC0415

    with make_saver() as plain:
        with pytest.raises(SerializationError):
            plain.get_tuple(sim.config())


def test_encryption_keeps_deduplication(make_saver, saver_target, backend: str) -> None:
    """The same value stored many times is one object (keyed hash of the
    plaintext), although each encryption of it differs."""
    with make_saver(serde=encrypted_serde(), hash_key=HASH_KEY) as saver:
        sim = SimThread(saver, f"encdedup-{uuid.uuid4().hex[:8]}")
        for _ in range(10):
            sim.run_step()
        counts = row_counts(backend, saver_target.conn_string, saver, sim.thread_id)
        # the same accounting as unencrypted: messages, step ints, two docs
        assert counts["objects"] == 10 + 10 + 2
        # a value seen before adds no object
        big = {"blob": SECRET * 100}
        for i in range(3):
            st = sim.prepare()
            st.checkpoint["channel_values"][f"copy{i}"] = big
            st.checkpoint["channel_versions"][f"copy{i}"] = st.new_versions[f"copy{i}"] = saver.get_next_version(None, None)
            sim.send_writes(st)
            sim.send_put(st)
        after = row_counts(backend, saver_target.conn_string, saver, sim.thread_id)
        # 3 messages, 3 step ints, the doc of step 10, and the blob once
        assert after["objects"] == counts["objects"] + 3 + 3 + 1 + 1
        # and the hashes are keyed: not a plain hash of the plaintext a reader could confirm
        import hashlib  # noqa: PLC0415

        typ, data = JsonPlusSerializer().dumps_typed(big)
        guess = hashlib.blake2b(typ.encode() + b"\0" + data, digest_size=16).digest()
        with raw_connection(backend, saver_target.conn_string) as conn:
            hashes = {bytes(r[0]) for r in conn.execute(f"SELECT hash FROM {qualified(saver, 'objects')}")}
        assert guess not in hashes


def test_encrypted_serializer_needs_a_hash_key(make_saver, monkeypatch) -> None:
    from checkpoint_pg import ConfigError  # noqa: PLC0415

    monkeypatch.delenv("LANGGRAPH_AES_KEY", raising=False)
    with pytest.raises(ConfigError, match="hash_key"):
        with make_saver(serde=encrypted_serde()):
            pass


@pytest.mark.parametrize("bad", [b"", b"short", b"k" * 65, "a-str-key-of-sixteen-chars", 12345])
def test_a_hash_key_that_keys_nothing_is_refused(make_saver, saver_target, backend: str, bad: Any) -> None:
    """hash_key=b"" with an EncryptedSerializer left the hash unkeyed: the stored
    hashes were plain BLAKE2b of the plaintext, so anyone reading the table could
    confirm a guess of a value. A key too short, or not bytes, is a ConfigError
    naming hash_key, not a TypeError at the first put."""
    from checkpoint_pg import ConfigError  # noqa: PLC0415

    with pytest.raises(ConfigError, match="hash_key"):
        with make_saver(serde=encrypted_serde(), hash_key=bad):
            pass
    with pytest.raises(ConfigError, match="hash_key"):
        with make_saver(hash_key=bad):
            pass


# --------------------------------------------------------------------------
# SQL with bound parameters only
# --------------------------------------------------------------------------

MARK = "ZQX"  # in every user-supplied string below; must never reach SQL text


@contextmanager
def recording_saver(backend: str, conn_string: str, options: dict[str, Any]) -> Iterator[tuple[Any, list[str]]]:
    """A sync saver whose driver records the text of every statement."""
    seen: list[str] = []
    if backend == "sqlite":
        from checkpoint_pg import SqliteSaver  # noqa: PLC0415

        class Recording(sqlite3.Connection):
            def execute(self, sql: str, *a: Any) -> Any:  # type: ignore[override]
                seen.append(sql)
                return super().execute(sql, *a)

            def executemany(self, sql: str, *a: Any) -> Any:  # type: ignore[override]
                seen.append(sql)
                return super().executemany(sql, *a)

        conn = sqlite3.connect(conn_string, factory=Recording, check_same_thread=False, isolation_level=None)
        try:
            saver = SqliteSaver(conn, **options)
            saver.setup()
            seen.clear()
            yield saver, seen
        finally:
            conn.close()
    else:
        import psycopg  # noqa: PLC0415

        from checkpoint_pg import PostgresSaver  # noqa: PLC0415

        class RecordingCursor(psycopg.Cursor):
            def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:  # type: ignore[override]
                seen.append(query.as_string(self) if hasattr(query, "as_string") else str(query))
                return super().execute(query, params, **kw)

        with psycopg.connect(conn_string, autocommit=True, prepare_threshold=None, cursor_factory=RecordingCursor) as conn:
            saver = PostgresSaver(conn, **options)
            saver.setup()
            seen.clear()
            yield saver, seen


def test_user_data_never_reaches_sql_text(backend: str, saver_target) -> None:
    """Every operation, fed strings marked ZQX (with quotes) in every place a
    user controls: no executed statement contains the mark."""
    q = "'\"; --"
    with recording_saver(backend, saver_target.conn_string, saver_target.options) as (saver, seen):
        for ns in ("", f"{MARK}{q}ns"):
            sim = SimThread(saver, f"{MARK}{q}thread", ns=ns, run_id=f"{MARK}{q}run")
            for _ in range(3):
                st = sim.prepare()
                st.metadata[f"{MARK}{q}key"] = f"{MARK}{q}value"
                st.checkpoint["channel_values"][f"{MARK}{q}chan"] = f"{MARK}{q}v"
                st.checkpoint["channel_versions"][f"{MARK}{q}chan"] = st.new_versions[f"{MARK}{q}chan"] = (
                    saver.get_next_version(None, None)
                )
                st.task_id = f"{MARK}{q}task"
                st.writes = [(f"{MARK}{q}chan", f"{MARK}{q}w"), ("__error__", f"{MARK}{q}err")]
                if st.parent is not None:
                    saver.put_writes(sim.config(st.parent), st.writes, st.task_id, f"{MARK}{q}path")
                    sim.expected[st.parent].writes = [(st.task_id, c, v) for c, v in st.writes]
                sim.send_put(st)
            sim.verify()
        assert list(saver.list(None, filter={f"{MARK}{q}key": f"{MARK}{q}value"}))
        list(saver.list(None, filter={f"{MARK}{q}other": 1, "source": f"{MARK}{q}"}))
        list(saver.list(sim.config(), before=sim.config(f"{MARK}{q}id"), limit=2))
        saver.get_tuple(sim.config(f"{MARK}{q}missing"))
        saver.get_delta_channel_history(config=sim.config(), channels=[f"{MARK}{q}chan"])
        saver.copy_thread(sim.thread_id, f"{MARK}{q}copy")
        saver.prune([f"{MARK}{q}copy"], strategy="keep_latest")
        saver.delete_for_runs([f"{MARK}{q}run", f"{MARK}{q}other-run"])
        saver.prune([sim.thread_id], strategy="delete")
        saver.delete_thread(f"{MARK}{q}copy")
        assert seen, "nothing was recorded"
        leaked = [s for s in seen if MARK in s]
        assert leaked == []


# --------------------------------------------------------------------------
# A role with DML rights only
# --------------------------------------------------------------------------


@pytest.fixture
def split_roles(fresh_pg_url: str, pg_admin_dsn: str) -> Iterator[dict[str, Any]]:
    """A DDL role that owns the schema objects and a DML-only role, on a fresh database."""
    import psycopg  # noqa: PLC0415
    from psycopg import sql  # noqa: PLC0415
    from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415

    from fixtures.postgres import _params_to_url  # noqa: PLC0415

    tag = secrets.token_hex(4)
    ddl, dml = f"cpg_ddl_{tag}", f"cpg_dml_{tag}"
    params = conninfo_to_dict(fresh_pg_url)
    dbname = params["dbname"]
    with psycopg.connect(fresh_pg_url, autocommit=True) as conn:
        for role in (ddl, dml):
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}, {}").format(
            sql.Identifier(dbname), sql.Identifier(ddl), sql.Identifier(dml)))
        # Postgres 15: nobody may create in public by default; the DDL role may
        conn.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(sql.Identifier(dbname), sql.Identifier(ddl)))
        conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(sql.Identifier(ddl)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(dml)))

    def url_for(role: str) -> str:
        return _params_to_url({**params, "user": role, "password": None})

    def grant_dml(schema: str) -> None:
        with psycopg.connect(fresh_pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), sql.Identifier(dml)))
            conn.execute(
                sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}").format(
                    sql.Identifier(schema), sql.Identifier(dml)
                )
            )

    try:
        yield {"ddl": url_for(ddl), "dml": url_for(dml), "grant_dml": grant_dml, "dml_role": dml}
    finally:
        with psycopg.connect(fresh_pg_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY(%s)", [[ddl, dml]]
            )
            conn.execute(sql.SQL("DROP OWNED BY {}, {}").format(sql.Identifier(ddl), sql.Identifier(dml)))
        with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
            for role in (dml, ddl):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.mark.parametrize("schema", [None, "cpg_app"])
def test_saver_runs_with_dml_rights_only(split_roles: dict[str, Any], schema: str | None) -> None:
    """Migrations run as the DDL role; the application's role may only SELECT,
    INSERT, UPDATE and DELETE. Every operation works, and setup() at head is
    a no-op the DML role may call at startup."""
    import psycopg  # noqa: PLC0415

    from checkpoint_pg import PostgresSaver  # noqa: PLC0415

    options = {"schema": schema} if schema else {}
    with PostgresSaver.from_conn_string(split_roles["ddl"], **options) as admin:
        admin.setup()
    split_roles["grant_dml"](schema or "public")

    # the role really is restricted
    with psycopg.connect(split_roles["dml"], autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f'CREATE TABLE "{schema or "public"}".cpg_probe (x int)')

    with PostgresSaver.from_conn_string(split_roles["dml"], **options) as saver:
        sims = [SimThread(saver, f"dml-{i}", run_id=f"run-{i}") for i in range(3)]
        for sim in sims:
            for _ in range(4):
                sim.run_step()
            assert sim.verify() == 4
        assert len(list(saver.list(None, filter={"source": "loop"}))) == 12
        saver.get_delta_channel_history(config=sims[0].config(), channels=["messages"])
        saver.copy_thread("dml-0", "dml-copy")
        assert len(list(saver.list({"configurable": {"thread_id": "dml-copy"}}))) == 4
        saver.prune(["dml-copy"], strategy="keep_latest")
        assert len(list(saver.list({"configurable": {"thread_id": "dml-copy"}}))) == 1
        saver.delete_for_runs(["run-1"])
        assert list(saver.list(sims[1].config())) == []
        saver.delete_thread("dml-0")
        assert ids_of(list(saver.list(sims[2].config()))) == list(reversed(sims[2].order))
        saver.setup()  # at head: nothing to do, and no DDL right needed
        sims[2].run_step()
        assert sims[2].verify() == 5


def test_setup_by_a_role_that_may_not_create_says_who_should_run_it(split_roles: dict[str, Any]) -> None:
    """setup() by the DML-only role on a database without our tables: our error naming
    the privilege and the command to run as the owner (not SQLAlchemy's ProgrammingError
    with the DDL in it), and nothing half-created."""
    from checkpoint_pg import CheckpointPgError, PostgresSaver  # noqa: PLC0415

    with PostgresSaver.from_conn_string(split_roles["dml"], prefix="own_") as saver:
        with pytest.raises(CheckpointPgError, match="may not change checkpoint_pg's tables") as info:
            saver.setup()
    assert "checkpoint-pg migrate upgrade --url" in str(info.value) and "--prefix own_" in str(info.value)
    with PostgresSaver.from_conn_string(split_roles["ddl"], prefix="own_") as admin:
        admin.setup()  # the owner can, from scratch: nothing was left behind


def test_vacuum_by_a_role_that_may_not_says_so(split_roles: dict[str, Any]) -> None:
    """Postgres skips a table the role may not vacuum with a warning only: the DML role's
    vacuum (plain or FULL) is refused with what to do, not reported as done; the owner's runs."""
    from checkpoint_pg import CheckpointPgError, PostgresSaver  # noqa: PLC0415

    with PostgresSaver.from_conn_string(split_roles["ddl"]) as admin:
        admin.setup()
    split_roles["grant_dml"]("public")
    with PostgresSaver.from_conn_string(split_roles["dml"]) as saver:
        for full in (False, True):
            with pytest.raises(CheckpointPgError, match="may not vacuum checkpoint_pg's tables") as info:
                saver.vacuum(full=full)
            assert "(cpg_threads, cpg_checkpoints, cpg_channel_values, cpg_writes, cpg_objects)" in str(info.value)
            assert "role that owns the tables" in str(info.value)
    with PostgresSaver.from_conn_string(split_roles["ddl"]) as admin:
        assert admin.vacuum(full=True).full


# --------------------------------------------------------------------------
# Identifiers and stored rows tampered with
# --------------------------------------------------------------------------


@pytest.mark.parametrize("what", ["prefix", "schema"])
@pytest.mark.parametrize("bad", ["cpg_\n", "public\n", "a\nb"])
def test_identifier_with_a_newline_is_refused(what: str, bad: str) -> None:
    """``$`` also matches before a trailing newline: ``prefix="cpg_\\n"`` or
    ``schema="public\\n"`` must be refused like any other character outside
    [A-Za-z0-9_] (SQLAlchemy leaves a name ending in a newline unquoted)."""
    from checkpoint_pg import ConfigError  # noqa: PLC0415
    from checkpoint_pg.schema import build_tables  # noqa: PLC0415

    with pytest.raises(ConfigError, match="invalid"):
        build_tables(**{what: bad})


def test_a_delta_chain_that_loops_is_an_error_not_a_hang() -> None:
    """A channel_values row edited to be its own base (or two rows each other's):
    reading the list must raise IntegrityError, not walk the loop forever while
    its stack of versions eats the memory."""
    from checkpoint_pg import IntegrityError  # noqa: PLC0415
    from checkpoint_pg.core.values import resolve_hashes  # noqa: PLC0415
    from checkpoint_pg.schema import KIND  # noqa: PLC0415

    class Watched(dict):
        looked_up = 0

        def get(self, key: Any, default: Any = None) -> Any:
            Watched.looked_up += 1
            if Watched.looked_up > 10_000:
                raise RuntimeError("resolve_hashes went round the loop")
            return super().get(key, default)

    h = b"\x01" * 16
    for rows in (
        {"v2": (KIND.DELTA, "v2", h)},
        {"v2": (KIND.DELTA, "v3", h), "v3": (KIND.DELTA, "v2", h)},
        {"v2": (KIND.DELTA, None, h)},
    ):
        Watched.looked_up = 0
        with pytest.raises(IntegrityError, match="changed by hand"):
            resolve_hashes(Watched(rows), "v2", {}, "thread 't' channel 'messages'")


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE {values} SET base_version = NULL WHERE kind = 3",
        "UPDATE {writes} SET kind = 1, refs = {concat}",
        "UPDATE {values} SET kind = 99 WHERE kind = 3",
        "UPDATE {writes} SET kind = -1",
        # a dict stored key by key whose first object is not its shape
        "UPDATE {writes} SET kind = 4",
        "UPDATE {values} SET kind = 4 WHERE kind = 2",
        "UPDATE {checkpoints} SET checkpoint = '[1, 2]'",
        "UPDATE {checkpoints} SET checkpoint = '[[\"channel_versions\", {{}}]]'",
        "UPDATE {checkpoints} SET metadata = '[[\"source\", \"loop\"], [\"step\", 7]]'",
        "UPDATE {checkpoints} SET checkpoint = 'not json'",
        "UPDATE {checkpoints} SET checkpoint = '{{\"channel_versions\": [1], \"versions_seen\": {{}}}}'",
        "UPDATE {checkpoints} SET checkpoint = '{{\"channel_versions\": {{}}, \"versions_seen\": \"x\"}}'",
        "UPDATE {checkpoints} SET checkpoint = '{{\"channel_versions\": {{}}, \"versions_seen\": {{\"a\": 1}}}}'",
    ],
)
def test_value_rows_tampered_with_meet_integrity_error(
    make_saver, saver_target, backend: str, tamper: str
) -> None:
    """A delta without a base, a scalar value or write naming two objects, a kind no
    release writes, a dict whose shape does not match its objects, a checkpoint document that is not a JSON object or whose maps
    are not: the reads raise IntegrityError (a CheckpointPgError), not
    TypeError/ValueError/AttributeError or the driver's error."""
    from checkpoint_pg import IntegrityError  # noqa: PLC0415

    with make_saver() as saver:
        sim = SimThread(saver, f"tampered-{uuid.uuid4().hex[:8]}")
        for _ in range(4):
            sim.run_step()
    concat = "CAST(refs || refs AS BLOB)" if backend == "sqlite" else "refs || refs"
    with raw_connection(backend, saver_target.conn_string) as conn:
        conn.execute(
            tamper.format(
                values=qualified(saver, "channel_values"),
                writes=qualified(saver, "writes"),
                checkpoints=qualified(saver, "checkpoints"),
                concat=concat,
            )
        )
    with make_saver() as fresh:  # nothing cached
        with pytest.raises(IntegrityError):
            list(fresh.list(sim.config()))
        if "{writes}" not in tamper:  # the latest checkpoint has none to read
            with pytest.raises(IntegrityError):
                fresh.get_tuple(sim.config())
            with pytest.raises(IntegrityError):
                list(fresh.list(None, limit=5))
    from checkpoint_pg.inspect import Inspector  # noqa: PLC0415

    with make_saver() as fresh, pytest.raises(IntegrityError):
        Inspector(fresh).history(sim.thread_id)


def test_a_compressed_object_inflating_past_max_value_bytes_is_refused(
    make_saver, saver_target, backend: str
) -> None:
    """A row planted as "zd1:msgpack" (or "z:msgpack") whose ~300 kB inflate to
    300 MiB of zeros: a saver with max_value_bytes stops inflating at the limit
    and raises SerializationError, instead of allocating them."""
    import resource  # noqa: PLC0415
    import zlib  # noqa: PLC0415

    from checkpoint_pg import SerializationError  # noqa: PLC0415
    from checkpoint_pg.core.zdict import DICTIONARIES  # noqa: PLC0415

    chunk = b"\0" * (1 << 20)
    for tag in ("zd1", "z"):
        z = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, DICTIONARIES["zd1"]) if tag == "zd1" else zlib.compressobj(9)
        bomb = b"".join(z.compress(chunk) for _ in range(300)) + z.flush()
        placeholder = f"placeholder-bomb-{tag}"
        with make_saver(max_value_bytes=1 << 20) as saver:
            sim = planted_thread(saver, placeholder)
            plant_object(
                backend, saver_target.conn_string, saver, sim.thread_id, placeholder, f"{tag}:msgpack", bomb
            )
        with make_saver(max_value_bytes=1 << 20) as saver:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            with pytest.raises(SerializationError, match="max_value_bytes"):
                saver.get_tuple(sim.config())
            grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        assert grown_kib < 200_000, f"reading the row took {grown_kib} KiB more"


@pytest.mark.parametrize("value", [{"ü": 1}, {"日本": {"é": "x"}}, [{"ü": None}]])
def test_filter_on_a_dict_with_non_ascii_keys_matches(saver, value: Any) -> None:
    """SQLite compares json_tree paths, which spell keys as the JSON text does:
    the filter's JSON must escape non-ASCII as the stored metadata does (not at all)."""
    sim = SimThread(saver, f"uni-{uuid.uuid4().hex[:8]}")
    st = sim.prepare()
    st.metadata["k"] = value
    sim.send_put(st)
    assert len(list(saver.list(sim.config(), filter={"k": value}))) == 1


def test_a_chunk_of_the_wrong_size_meets_integrity_error(make_saver, saver_target, backend: str) -> None:
    """A chunk of a long list's hashes (core/chunks.py) cut short by hand: reading the
    list raises IntegrityError naming the chunk, instead of returning a shorter list."""
    from langgraph.checkpoint.base import empty_checkpoint  # noqa: PLC0415

    from checkpoint_pg import IntegrityError  # noqa: PLC0415

    with make_saver() as saver:
        cp = empty_checkpoint()
        cp["channel_values"] = {"log": [f"entry {i}" for i in range(70)]}
        cp["channel_versions"] = {"log": saver.get_next_version(None, None)}
        config = saver.put(
            {"configurable": {"thread_id": f"chunk-{uuid.uuid4().hex[:8]}", "checkpoint_ns": ""}},
            cp, {"source": "loop", "step": 0}, cp["channel_versions"],
        )
    cut = "CAST(substr(data, 1, 32) AS BLOB)" if backend == "sqlite" else "substring(data FROM 1 FOR 32)"
    with raw_connection(backend, saver_target.conn_string) as conn:
        conn.execute(f"UPDATE {qualified(saver, 'objects')} SET data = {cut} WHERE type = '#refs'")
    with make_saver() as fresh, pytest.raises(IntegrityError, match="chunk .* holds 32 bytes|does not hold what its hash names"):
        fresh.get_tuple(config)


@pytest.mark.parametrize("tamper", ["swap", "plant", "retype"])
def test_an_object_that_is_not_what_its_hash_names_is_refused(
    make_saver, saver_target, backend: str, tamper: str
) -> None:
    """Every object read is checked against its (keyed) hash: ciphertexts swapped between
    two objects of a thread, a row planted unencrypted in an encrypted saver's table, an
    object's type changed: IntegrityError, never the wrong value. (Before, the swap read
    {'role': '100', 'balance': 'user'}.)"""
    from langgraph.checkpoint.base import empty_checkpoint  # noqa: PLC0415

    from checkpoint_pg import IntegrityError  # noqa: PLC0415

    cfg = {"configurable": {"thread_id": f"tamper-{uuid.uuid4().hex[:8]}", "checkpoint_ns": ""}}
    with make_saver(serde=encrypted_serde(), hash_key=HASH_KEY) as saver:
        cp = empty_checkpoint()
        cp["channel_values"] = {"role": "user", "balance": "100"}
        cp["channel_versions"] = {ch: saver.get_next_version(None, None) for ch in ("role", "balance")}
        saver.put(cfg, cp, {"source": "input", "step": -1}, cp["channel_versions"])
        assert saver.get_tuple(cfg).checkpoint["channel_values"] == {"role": "user", "balance": "100"}
    thread = cfg["configurable"]["thread_id"]
    with raw_connection(backend, saver_target.conn_string) as conn:
        q = "?" if backend == "sqlite" else "%s"
        table = qualified(saver, "objects")
        (h1, t1, d1), (h2, t2, d2) = [
            (bytes(h), t, bytes(d))
            for h, t, d in conn.execute(
                f"SELECT hash, type, data FROM {table} WHERE thread_id = {q}", (thread,)
            ).fetchall()
        ]
        update = f"UPDATE {table} SET type = {q}, data = {q} WHERE thread_id = {q} AND hash = {q}"
        if tamper == "swap":
            conn.execute(update, (t2, d2, thread, h1))
            conn.execute(update, (t1, d1, thread, h2))
        elif tamper == "plant":
            conn.execute(update, (*JsonPlusSerializer().dumps_typed("admin"), thread, h1))
        else:
            conn.execute(update, ("null", b"", thread, h1))
    with make_saver(serde=encrypted_serde(), hash_key=HASH_KEY) as fresh:
        with pytest.raises(IntegrityError, match="does not hold what its hash names"):
            fresh.get_tuple(cfg)
        with pytest.raises(IntegrityError, match="does not hold what its hash names"):
            list(fresh.list(cfg))


def test_a_thread_from_before_encryption_is_refused_with_what_it_is(make_saver) -> None:
    """A thread written by a saver without encryption, then read by an encrypted one:
    its rows are refused (a row planted in the clear is the same thing), and the error
    says they are unencrypted and how to read them, not that they were changed by hand.
    A saver without encryption still reads the thread."""
    from langgraph.checkpoint.base import empty_checkpoint  # noqa: PLC0415

    from checkpoint_pg import IntegrityError  # noqa: PLC0415

    cfg = {"configurable": {"thread_id": f"before-{uuid.uuid4().hex[:8]}", "checkpoint_ns": ""}}
    cp = empty_checkpoint()
    cp["channel_values"] = {"note": "written in the clear"}
    cp["channel_versions"] = {"note": "00000000000000000000000000000001.0"}
    with make_saver() as plain:
        plain.put(cfg, cp, {"source": "input", "step": -1}, cp["channel_versions"])
    with make_saver(serde=encrypted_serde(), hash_key=HASH_KEY) as encrypted:
        with pytest.raises(IntegrityError, match="is not encrypted: a saver without encryption wrote it"):
            encrypted.get_tuple(cfg)
    with make_saver() as plain:
        assert plain.get_tuple(cfg).checkpoint["channel_values"] == {"note": "written in the clear"}


# --------------------------------------------------------------------------
# Connection passwords never shown
# --------------------------------------------------------------------------

PASSWORD = "pw-Qx7-never-shown"  # trust authentication: the server ignores it


def url_with_query(pg_url: str, **query: str) -> str:
    import sqlalchemy as sa  # noqa: PLC0415

    return sa.engine.make_url(pg_url).update_query_dict(query).render_as_string(hide_password=False)


@pytest.mark.parametrize("param", ["password", "sslpassword"])
def test_a_password_in_the_url_query_is_never_shown(pg_url: str, capsys: pytest.CaptureFixture[str], param: str) -> None:
    """libpq reads ``?password=`` as the password: the saver's error naming the command
    to run, and every CLI header and message, mask it as they mask ``user:password@``.
    (They printed it: mask() hid only the password before the host.)"""
    from checkpoint_pg import PostgresSaver, SchemaVersionError  # noqa: PLC0415
    from checkpoint_pg.cli import main  # noqa: PLC0415

    prefix = f"pw{secrets.token_hex(4)}_"
    url = url_with_query(pg_url, **{param: PASSWORD})
    with PostgresSaver.from_conn_string(url, prefix=prefix) as saver:
        with pytest.raises(SchemaVersionError) as info:
            saver.get_tuple({"configurable": {"thread_id": "t"}})
        assert PASSWORD not in str(info.value) and f"{param}=***" in str(info.value)
        assert PASSWORD not in repr(saver) and PASSWORD not in saver._url_hint
    shown = []
    for argv in (["threads"], ["stats", "--json"], ["migrate", "upgrade"], ["threads"], ["stats"],
                 ["threads", "--json"], ["demo", "--thread", "pw"], ["migrate", "current"]):
        capsys.readouterr()
        try:
            main([*argv, "--url", url, "--prefix", prefix])
        except SystemExit:
            pass
        out, err = capsys.readouterr()
        shown.append(out + err)
    # a table title folds a long URL at the table's width (anywhere, "***" included):
    # read each output with its lines joined back too
    joined = ["".join(line.rstrip() for line in s.splitlines()) for s in shown]
    assert "***" in joined[0] and "***" in joined[3], shown  # the error's advice, the header
    assert [s for s in shown + joined if PASSWORD in s] == []


@pytest.mark.parametrize(
    "netloc, query",
    [
        # a password with a stray "%" (50%off) or a space: libpq quoted it in its error
        (f"{PASSWORD}%zz", None),
        (f"{PASSWORD} x", None),
        (None, f"{PASSWORD}%zz"),
        # an unclosed IPv6 bracket: libpq quoted the whole URL
        (PASSWORD, None),
    ],
)
def test_a_url_libpq_cannot_parse_is_refused_without_its_password(
    capsys: pytest.CaptureFixture[str], netloc: str | None, query: str | None
) -> None:
    """The saver's error (and what the CLI prints) for a URL libpq cannot parse names the
    problem with the password masked, and chains no driver error that quotes it."""
    from checkpoint_pg import AsyncPostgresSaver, ConfigError, PostgresSaver  # noqa: PLC0415
    from checkpoint_pg.cli import main  # noqa: PLC0415

    user = "postgres" if netloc is None else f"postgres:{netloc}"
    host = "[::1" if netloc == PASSWORD else "127.0.0.1:1"
    url = f"postgresql://{user}@{host}/db" + (f"?password={query}" if query else "")

    def chain(exc: BaseException | None) -> str:
        out = ""
        while exc is not None:
            out += f"{type(exc).__name__}: {exc}\n"
            exc = exc.__cause__ or exc.__context__
        return out

    with pytest.raises(ConfigError) as info:
        with PostgresSaver.from_conn_string(url):
            pass
    assert "invalid database URL" in str(info.value)
    assert PASSWORD not in chain(info.value)

    async def aopen() -> None:
        async with AsyncPostgresSaver.from_conn_string(url):
            pass

    import asyncio  # noqa: PLC0415

    with pytest.raises(ConfigError) as info:
        asyncio.run(aopen())
    assert PASSWORD not in chain(info.value)
    for argv in (["threads"], ["migrate", "current"], ["migrate", "upgrade"], ["import-langgraph", "--from", url, "--url", url]):
        capsys.readouterr()
        code = main([*argv, "--url", url]) if argv[0] != "import-langgraph" else main(argv)
        out, err = capsys.readouterr()
        assert code == 2 and "invalid database URL" in err, (argv, err)
        assert PASSWORD not in out + err
