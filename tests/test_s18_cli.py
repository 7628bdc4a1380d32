"""Session 18's review of the ``checkpoint-pg`` command as a demanding user runs it: the
defects it found, each on the real command against real databases."""

from __future__ import annotations

import json
import secrets
import time

import pytest

from clikit import cli, incumbent_file  # noqa: F401 - a fixture
from test_cli import db  # noqa: F401 - a fixture


def test_commands_that_write_first_name_a_missing_postgres_database_at_once(
    capsys: pytest.CaptureFixture[str], pg_admin_dsn: str, incumbent_file: str
) -> None:
    """vacuum and import-langgraph open a writing saver before anything reads: on a URL
    naming no database they waited out the pool's 30 s of retries, then said only "pool
    initialization incomplete". Now they fail at once, as the read commands do, with the
    server's error and how to create the database."""
    from fixtures.postgres import with_dbname

    name = f"cpg_test_missing_{secrets.token_hex(4)}"
    url = with_dbname(pg_admin_dsn, name)
    for argv in (["vacuum"], ["import-langgraph", "--from", incumbent_file, "--no-progress"]):
        started = time.monotonic()
        code, _, err = cli(capsys, *argv, "--url", url)
        assert time.monotonic() - started < 15, (argv, err)
        assert code == 1 and f'database "{name}" does not exist' in err, (argv, err)
        assert f"createdb {name}" in err and "PoolTimeout" not in err, (argv, err)


def test_a_full_last_page_of_threads_promises_no_next_page(
    capsys: pytest.CaptureFixture[str], db: list[str]
) -> None:
    """A page as long as --limit is the last one when no thread follows it: it printed a
    "more:" command (and a next_cursor) leading to an empty page, "no threads"."""
    code, out, _ = cli(capsys, "threads", "--json", "--no-sizes", *db)
    assert code == 0
    every = [t["thread_id"] for t in json.loads(out)["threads"]]
    assert len(every) == 2, every  # demo and chain
    for argv in (["--limit", "2"], ["--limit", "1", "--offset", "1"]):
        code, out, _ = cli(capsys, "threads", *argv, *db)
        assert code == 0 and "more:" not in out, (argv, out)
        code, out, _ = cli(capsys, "threads", "--json", *argv, *db)
        assert code == 0 and json.loads(out)["next_cursor"] is None, (argv, out)
    # a full page that is not the last still leads to the next one
    code, out, _ = cli(capsys, "threads", "--limit", "1", *db)
    assert code == 0 and "more:" in out, out
