"""Helpers the CLI and migration tests share: run the command in-process, and read
a store's revision from outside the savers."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa


# Every command that only reads, and every --dry-run: they must work on a read-only
# file or role and write nothing (thread "demo", with two checkpoints or more).
READ_COMMANDS = [
    ["threads"],
    ["threads", "--json"],
    ["history", "demo"],
    ["history", "demo", "--json"],
    ["show", "demo"],
    ["show", "demo", "-2", "--json"],
    ["diff", "demo@-2", "demo"],
    ["stats"],
    ["stats", "--json"],
    ["replay", "demo", "--runs"],
    ["replay", "demo", "--json"],
    ["migrate", "current"],
    ["migrate", "history"],
    ["migrate", "upgrade", "--dry-run"],
    ["migrate", "downgrade", "0007", "--dry-run"],
    ["delete", "demo", "--dry-run"],
    ["prune", "--keep-last", "1", "--dry-run"],
    ["prune", "--older-than", "0s", "--dry-run"],
    ["copy", "demo", "x", "--dry-run"],
    ["unlock", "demo", "--dry-run"],  # the file test gives the thread a live lease first
]


@pytest.fixture
def incumbent_file(tmp_path: Path) -> str:
    """A langgraph-checkpoint-sqlite file holding one thread, "old"."""
    from langgraph.checkpoint.sqlite import SqliteSaver as Incumbent

    from graphs import build_chain

    path = str(tmp_path / "incumbent.db")
    with Incumbent.from_conn_string(path) as saver:
        build_chain(saver).invoke({"log": []}, {"configurable": {"thread_id": "old"}})
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``checkpoint-pg ARGV`` in-process: (exit status, stdout, stderr)."""
    from checkpoint_pg.cli import main

    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse: --help, usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def sa_url(url: str) -> str:
    """A Postgres URL or a SQLite path as the SQLAlchemy URL of its driver."""
    return url.replace("postgresql://", "postgresql+psycopg://", 1) if "://" in url else f"sqlite:///{url}"


def stored_revision(url: str, prefix: str = "cpg_", schema: str | None = None) -> str | None:
    """The revision the version table of ``prefix``/``schema`` at ``url`` records."""
    from checkpoint_pg import migrate
    from checkpoint_pg.schema import build_tables

    engine = sa.create_engine(sa_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return migrate.current(conn, build_tables(prefix, schema))
    finally:
        engine.dispose()
