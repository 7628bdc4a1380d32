"""Shared fixtures for the checkpoint_pg tests.

Database provisioning lives in tests/fixtures/ (loaded below); this file holds
the backend-parametrized saver fixtures every behavioural test uses:

    def test_roundtrip(saver): ...              # runs as [sqlite] and [postgres]
    async def test_async(async_saver): ...      # same, with the async classes
    def test_serde(make_saver):
        with make_saver(serde=MySerde()) as s: ...

To run a test on one backend only:
    @pytest.mark.parametrize("backend", ["postgres"], indirect=True)

Tests that touch Postgres carry the ``postgres`` marker automatically (and
``pgbouncer`` for the pooler), so ``pytest -m "not postgres"`` runs the SQLite
part without any server.

The package under test is imported lazily (inside fixtures) so that collection
works even while it is broken, and so that .ci/run tests the installed wheel:
nothing here puts ``src/`` on sys.path.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

# pytest's default ("prepend") import mode puts tests/ on sys.path when it
# imports this conftest (tests/ has no __init__.py), so the plugins import as
# "fixtures.*". Keep the default import mode: --import-mode=importlib would
# not add tests/ and these imports would fail.
pytest_plugins = ["fixtures.postgres", "fixtures.pgbouncer"]

BACKENDS = ["sqlite", "postgres"]
POSTGRES_FIXTURES = {"pg_admin_dsn", "pg_url", "fresh_pg_url", "pgbouncer_url"}


def pytest_configure(config: pytest.Config) -> None:
    # Registered here (not in pyproject) because this file decides who gets them.
    config.addinivalue_line(
        "markers", "postgres: needs a Postgres server (added automatically)"
    )
    config.addinivalue_line(
        "markers", "pgbouncer: needs the pgbouncer binary (added automatically)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # fixturenames is the transitive closure of statically requested
    # fixtures, so a test depending on a helper fixture that uses pg_url is
    # marked too. The [postgres] backend param is marked by its pytest.param.
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & POSTGRES_FIXTURES:
            item.add_marker(pytest.mark.postgres)
        if "pgbouncer_url" in names:
            item.add_marker(pytest.mark.pgbouncer)


def pytest_report_header(config: pytest.Config) -> list[str]:
    # find_spec locates the package without executing it: shows at a glance
    # whether the run tests the installed wheel or a source checkout.
    try:
        spec = importlib.util.find_spec("checkpoint_pg")
        origin = spec.origin if spec else "NOT IMPORTABLE"
    except Exception as exc:  # noqa: BLE001
        origin = f"NOT IMPORTABLE ({exc})"
    dsn = os.environ.get("CHECKPOINT_PG_TEST_DSN")
    if dsn:
        from fixtures.postgres import redact  # noqa: PLC0415

        pg = f"$CHECKPOINT_PG_TEST_DSN={redact(dsn)}"
    else:
        pg = "CHECKPOINT_PG_TEST_DSN not set (testcontainers if Docker is reachable)"
    return [f"checkpoint_pg: {origin}", f"postgres: {pg}"]


# --------------------------------------------------------------------------
# Backend-parametrized savers
# --------------------------------------------------------------------------


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def backend(request: pytest.FixtureRequest) -> str:
    """The storage backend of this test instance: "sqlite" or "postgres"."""
    return request.param


@dataclass
class SaverTarget:
    """Where this test's savers store data.

    One per test, shared by ``saver``, ``async_saver``, ``make_saver`` and
    ``make_async_saver``: a test can write with one saver and reopen the same
    data with another (e.g. a different serde).
    """

    backend: str
    conn_string: str
    # Extra from_conn_string options: the per-test table prefix on Postgres.
    options: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def saver_target(
    backend: str, tmp_path, request: pytest.FixtureRequest
) -> SaverTarget:
    if backend == "sqlite":
        return SaverTarget("sqlite", str(tmp_path / "checkpoints.db"))
    # Resolved dynamically so [sqlite] instances never ask for a server.
    url = request.getfixturevalue("pg_url")
    # The session database is shared; a unique table prefix keeps tests from
    # seeing each other's rows without paying for a database per test.
    return SaverTarget("postgres", url, {"prefix": f"t{secrets.token_hex(4)}_"})


@pytest.fixture
def make_saver(saver_target: SaverTarget) -> Callable[..., contextlib.AbstractContextManager]:
    """``make_saver(conn_string=None, **options)`` -> context manager of a set-up sync saver.

    *options* go to ``from_conn_string`` and override the defaults (the
    per-test ``prefix`` on Postgres). *conn_string* overrides the target,
    e.g. ``make_saver(conn_string=fresh_pg_url)``; it must match the backend.
    """

    @contextlib.contextmanager
    def factory(conn_string: str | None = None, **options: Any) -> Iterator[Any]:
        from checkpoint_pg import PostgresSaver, SqliteSaver  # noqa: PLC0415

        cls = SqliteSaver if saver_target.backend == "sqlite" else PostgresSaver
        kwargs = {**saver_target.options, **options}
        with cls.from_conn_string(conn_string or saver_target.conn_string, **kwargs) as s:
            s.setup()
            yield s

    return factory


@pytest.fixture
def make_async_saver(
    saver_target: SaverTarget,
) -> Callable[..., contextlib.AbstractAsyncContextManager]:
    """``make_async_saver(conn_string=None, **options)`` -> async context manager.

    Same as ``make_saver`` with AsyncSqliteSaver / AsyncPostgresSaver and
    ``asetup()``; use as ``async with make_async_saver(...) as saver``.
    """

    @contextlib.asynccontextmanager
    async def factory(conn_string: str | None = None, **options: Any) -> AsyncIterator[Any]:
        from checkpoint_pg import AsyncPostgresSaver, AsyncSqliteSaver  # noqa: PLC0415

        cls = AsyncSqliteSaver if saver_target.backend == "sqlite" else AsyncPostgresSaver
        kwargs = {**saver_target.options, **options}
        async with cls.from_conn_string(
            conn_string or saver_target.conn_string, **kwargs
        ) as s:
            await s.asetup()
            yield s

    return factory


@pytest.fixture
def saver(make_saver) -> Iterator[Any]:
    """A set-up sync saver on this test's own storage, for each backend."""
    with make_saver() as s:
        yield s


@pytest.fixture
async def async_saver(make_async_saver) -> AsyncIterator[Any]:
    """A set-up async saver on this test's own storage, for each backend."""
    async with make_async_saver() as s:
        yield s


@pytest.fixture
def counted(saver, saver_target: SaverTarget, backend: str) -> tuple[Any, Callable[[], None]]:
    """(sim, unchanged()) -- a `faultkit.SimThread` of three steps on ``saver``;
    ``unchanged()`` asserts no table gained or lost a row since (bad input is refused
    before anything is written)."""
    from faultkit import SimThread, row_counts  # noqa: PLC0415

    sim = SimThread(saver, f"bad-{uuid.uuid4().hex[:8]}")
    for _ in range(3):
        sim.run_step()
    before = row_counts(backend, saver_target.conn_string, saver)

    def unchanged() -> None:
        assert row_counts(backend, saver_target.conn_string, saver) == before

    return sim, unchanged
