"""langgraph-checkpoint-conformance 0.0.2 run as pytest tests, for each saver class.

``validate()`` detects which capabilities a saver implements (by checking that
its async methods override `BaseCheckpointSaver`'s) and runs each capability's
spec on a fresh saver from the registered factory. Every test here asserts the
conformance level is FULL: all 8 capabilities (put, put_writes, get_tuple,
list, delete_thread, delete_for_runs, copy_thread, prune) detected, passed,
with at least one test run and 0 failures each.

Each factory call gets pristine storage: a new table prefix on the session's
Postgres database, or a new SQLite file, so one capability's spec never sees
another's rows. The encrypted variants run the whole suite again with an
`EncryptedSerializer` (AES via pycryptodome) and a keyed hash.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES
from langgraph.checkpoint.conformance.report import CapabilityReport

ALL_CAPS = sorted(c.value for c in ALL_CAPABILITIES)
AES_KEY = b"0123456789abcdef0123456789abcdef"  # 32 bytes: AES-256
HASH_KEY = b"conformance-hash-key-0123456789"


def encrypted_options() -> dict[str, Any]:
    from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

    return {
        "serde": EncryptedSerializer.from_pycryptodome_aes(key=AES_KEY),
        "hash_key": HASH_KEY,
    }


def assert_full(report: CapabilityReport, saver_type: type) -> None:
    """Every one of the 8 capabilities detected and passed, with tests and no failures."""
    problems = []
    assert sorted(report.results) == ALL_CAPS, report.results.keys()
    for cap in ALL_CAPS:
        r = report.results[cap]
        if not r.detected:
            problems.append(f"{cap}: not detected")
        elif r.passed is not True or r.tests_failed or not r.tests_passed:
            problems.append(
                f"{cap}: passed={r.passed} ok={r.tests_passed} failed={r.tests_failed}\n    "
                + "\n    ".join(r.failures)
            )
    assert not problems, f"{report.checkpointer_name}:\n" + "\n".join(problems)
    assert report.conformance_level() == "FULL"
    assert report.passed_all() and report.passed_all_base()
    # validate() really ran on the class under test (not a base-class fallback)
    assert report.checkpointer_name.startswith(saver_type.__name__)


_counter = itertools.count()


def _unique_name(cls_name: str) -> str:
    # the conformance registry is module-global and keyed by name
    return f"{cls_name}-{next(_counter)}-{secrets.token_hex(3)}"


def register_sync(
    cls: type, conn_string: Callable[[], str], **options: Any
) -> Any:
    name = _unique_name(cls.__name__)

    @checkpointer_test(name=name)
    async def factory() -> AsyncGenerator[BaseCheckpointSaver, None]:
        with cls.from_conn_string(conn_string(), **options) as saver:
            saver.setup()
            yield saver

    return factory


def register_async(
    cls: type, conn_string: Callable[[], str], **options: Any
) -> Any:
    name = _unique_name(cls.__name__)

    @checkpointer_test(name=name)
    async def factory() -> AsyncGenerator[BaseCheckpointSaver, None]:
        async with cls.from_conn_string(conn_string(), **options) as saver:
            await saver.asetup()
            yield saver

    return factory


def _pg_register(cls: type, url: str, is_async: bool, **options: Any) -> Any:
    name = _unique_name(cls.__name__)

    if is_async:

        @checkpointer_test(name=name)
        async def afactory() -> AsyncGenerator[BaseCheckpointSaver, None]:
            prefix = f"cf{secrets.token_hex(4)}_"
            async with cls.from_conn_string(url, prefix=prefix, **options) as saver:
                await saver.asetup()
                yield saver

        return afactory

    @checkpointer_test(name=name)
    async def factory() -> AsyncGenerator[BaseCheckpointSaver, None]:
        prefix = f"cf{secrets.token_hex(4)}_"
        with cls.from_conn_string(url, prefix=prefix, **options) as saver:
            saver.setup()
            yield saver

    return factory


def _sqlite_register(cls: type, directory: Path, is_async: bool, **options: Any) -> Any:
    files = (str(directory / f"conformance-{i}.db") for i in itertools.count())
    if is_async:
        return register_async(cls, lambda: next(files), **options)
    return register_sync(cls, lambda: next(files), **options)


CLASSES = [
    pytest.param("PostgresSaver", "postgres", False, id="PostgresSaver", marks=pytest.mark.postgres),
    pytest.param(
        "AsyncPostgresSaver", "postgres", True, id="AsyncPostgresSaver", marks=pytest.mark.postgres
    ),
    pytest.param("SqliteSaver", "sqlite", False, id="SqliteSaver"),
    pytest.param("AsyncSqliteSaver", "sqlite", True, id="AsyncSqliteSaver"),
]


def _registered(
    request: pytest.FixtureRequest, tmp_path: Path, cls_name: str, backend: str, is_async: bool,
    **options: Any,
) -> tuple[Any, type]:
    import checkpoint_pg

    cls = getattr(checkpoint_pg, cls_name)
    if backend == "postgres":
        url = request.getfixturevalue("pg_url")
        return _pg_register(cls, url, is_async, **options), cls
    return _sqlite_register(cls, tmp_path, is_async, **options), cls


@pytest.mark.parametrize(("cls_name", "backend", "is_async"), CLASSES)
async def test_conformance_full(
    request: pytest.FixtureRequest, tmp_path: Path, cls_name: str, backend: str, is_async: bool
) -> None:
    """The saver class reaches level FULL: all 8 capabilities detected and passing, 0 failures."""
    registered, cls = _registered(request, tmp_path, cls_name, backend, is_async)
    report = await validate(registered)
    assert_full(report, cls)


@pytest.mark.parametrize(("cls_name", "backend", "is_async"), CLASSES)
async def test_conformance_full_encrypted(
    request: pytest.FixtureRequest, tmp_path: Path, cls_name: str, backend: str, is_async: bool
) -> None:
    """With EncryptedSerializer (AES) and a keyed hash, the class still reaches FULL.

    Also checks that the values really went through the cipher: every stored
    object's type names the ``aes`` cipher.
    """
    opts = encrypted_options()
    registered, cls = _registered(request, tmp_path, cls_name, backend, is_async, **opts)
    report = await validate(registered)
    assert_full(report, cls)

    # One more saver from the same factory: write, then look at the raw rows.
    async with registered.create() as saver:
        assert saver.ctx.codec.encrypted
        config = {"configurable": {"thread_id": "enc-check", "checkpoint_ns": ""}}
        from langgraph.checkpoint.base import empty_checkpoint

        cp = empty_checkpoint()
        cp["channel_values"] = {"secret": "plaintext-marker-" * 4}
        cp["channel_versions"] = {"secret": saver.get_next_version(None, None)}
        saved = await saver.aput(config, cp, {"source": "input", "step": -1}, cp["channel_versions"])
        got = await saver.aget_tuple(saved)
        assert got is not None
        assert got.checkpoint["channel_values"] == {"secret": "plaintext-marker-" * 4}
        types = await _object_types(saver, backend)
        assert types and all(t.endswith("+aes") for t in types), types


async def _object_types(saver: Any, backend: str) -> list[str]:
    table = saver.ctx.sql.n.objects
    if backend == "postgres":
        import psycopg

        conninfo = saver._pool.conninfo
        async with await psycopg.AsyncConnection.connect(conninfo) as conn:
            cur = await conn.execute(f"SELECT type FROM {table}")
            return [r[0] for r in await cur.fetchall()]
    rows = saver.conn.execute(f"SELECT type FROM {table}").fetchall()
    return [r[0] for r in rows]
