"""Review probes of the migrations: data that older releases wrote reads back identically
after ``migrate upgrade`` by today's code, and the commands a saver's error advises run as
written.

The old releases are the package's own source at the last commit of each chosen revision,
taken from this repository's git history (``git archive``) and run in a subprocess with
tests/migration_workload.py, which runs real LangGraph graphs (tool calls, interrupts,
subgraph namespaces, Send packets, errors as pending writes, a DeltaChannel, lists longer
than a chunk, a dict holding lists, small scalars of every kind) and dumps everything the
saver gives back of them. Today's code must give back the same, and the graphs must go on
from there as they do on ``InMemorySaver``.
"""

from __future__ import annotations

import os
import pickle
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


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


def _sa_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1) if "://" in url else f"sqlite:///{url}"


def _revision(url: str, prefix: str = "cpg_", schema: str | None = None) -> str | None:
    from checkpoint_pg import migrate
    from checkpoint_pg.schema import build_tables

    engine = sa.create_engine(_sa_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return migrate.current(conn, build_tables(prefix, schema))
    finally:
        engine.dispose()


def _advised_upgrade(message: str) -> list[str]:
    """The argv of the ``checkpoint-pg migrate upgrade`` an error message advises, split as a
    shell splits it: a ``&`` or ``;`` outside quotes ends the command there."""
    (command,) = re.findall(r"`checkpoint-pg (migrate upgrade [^`]+)`", message)
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = list(lexer)
    operators = [w for w in words if w and set(w) <= set(lexer.punctuation_chars)]
    assert not operators, f"the shell would not run {command!r} as one command: {operators}"
    return words


# -- the saver's advice ----------------------------------------------------------------------


def test_the_upgrade_a_saver_advises_runs_as_written_for_a_path_a_shell_would_split(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SQLite file whose path has a space and a shell's ``&`` in it, behind head: the saver's
    error names the upgrade with the path quoted, and run as a shell would split it, the
    command upgrades that file's tables.

    Before the fix the path went in bare: the shell cut the command at the space (an
    argparse error) or at ``&`` (a background upgrade of the default database)."""
    from checkpoint_pg import SchemaVersionError, SqliteSaver, migrate

    monkeypatch.chdir(tmp_path)  # where a command that lost its --url would go
    monkeypatch.delenv("CHECKPOINT_PG_URL", raising=False)
    folder = tmp_path / "my agents"
    folder.mkdir()
    path = str(folder / "a&b.db")
    older = [rev for rev, _, _ in migrate.history()][-2]
    assert cli(capsys, "migrate", "upgrade", older, "--url", path, "--prefix", "app_")[0] == 0
    with SqliteSaver.from_conn_string(path, prefix="app_") as saver:
        with pytest.raises(SchemaVersionError) as info:
            saver.get_tuple({"configurable": {"thread_id": "t"}})
    argv = _advised_upgrade(str(info.value))
    assert argv[argv.index("--url") + 1] == path
    assert cli(capsys, *argv)[0] == 0
    assert _revision(path, "app_") == migrate.head()
    assert not (tmp_path / "checkpoint_pg_demo.db").exists()


def test_the_upgrade_a_postgres_saver_advises_keeps_the_urls_parameters(
    capsys: pytest.CaptureFixture[str], fresh_pg_url: str
) -> None:
    """A Postgres URL with several query parameters (``?a=1&b=2``): the advised command keeps
    them in one shell word, so that the upgrade runs on that URL with the saver's prefix and
    schema (bare, a shell ran ``... --url URL?a=1`` in the background, without them)."""
    from checkpoint_pg import PostgresSaver, SchemaVersionError, migrate

    url = f"{fresh_pg_url}?application_name=cpg_review&connect_timeout=10"
    older = [rev for rev, _, _ in migrate.history()][-2]
    options = ["--prefix", "app_", "--schema", "agents"]
    assert cli(capsys, "migrate", "upgrade", older, "--url", url, *options)[0] == 0
    with PostgresSaver.from_conn_string(url, prefix="app_", schema="agents") as saver:
        with pytest.raises(SchemaVersionError) as info:
            saver.get_tuple({"configurable": {"thread_id": "t"}})
    argv = _advised_upgrade(str(info.value))
    assert argv[argv.index("--url") + 1] == url and argv[-4:] == options
    assert cli(capsys, *argv)[0] == 0
    assert _revision(fresh_pg_url, "app_", "agents") == migrate.head()
