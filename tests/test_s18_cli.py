"""Session 18's review of the ``checkpoint-pg`` command as a demanding user runs it: the
defects it found, each on the real command against real databases."""

from __future__ import annotations

import json
import re
import secrets
import shlex
import time
from pathlib import Path

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


def test_the_commands_errors_advise_run_as_printed_on_the_same_database(
    capsys: pytest.CaptureFixture[str], db: list[str]
) -> None:
    """An error about a thread advises a command (`checkpoint-pg history THREAD`, `... replay
    THREAD --runs`, `... threads`): it named neither this database, so that run as printed
    it read the default file, nor quoted the thread id for the shell. Each, run as printed,
    now lists this database's thread."""
    odd = "it's a \"thread\" id"
    assert cli(capsys, "copy", "chain", odd, "--yes", *db)[0] == 0
    for argv in (
        ["show", odd, "zzzzzzzz"],
        ["diff", f"{odd}@zzzzzzzz", odd],
        ["replay", odd, "--run-id", "nope"],
        ["stats", "--thread", "nope"],
    ):
        code, _, err = cli(capsys, *argv, *db)
        advised = re.findall(r"`(checkpoint-pg [^`]*)`", err)
        assert code == 1 and len(advised) == 1, (argv, err)
        command = shlex.split(advised[0])
        code, out, err = cli(capsys, *command[1:], "--json")
        assert code == 0, (argv, advised, err)
        listed = json.loads(out)  # the odd thread's history or runs, or the threads
        if command[1] == "threads":
            listed = [t["thread_id"] for t in listed["threads"] if t["thread_id"] == odd]
        assert listed, (argv, advised, out)


def test_a_file_that_is_not_sqlite_is_the_same_usage_error_for_every_command(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """--url naming a text file: the commands that open it to write (vacuum, migrate upgrade)
    exited 2, the ones that read first (threads, migrate current, delete) exited 1 with only
    SQLite's "file is not a database". Every one now exits 2, says what to pass, and leaves
    the file as it was."""
    bad = tmp_path / "notes.txt"
    bad.write_text("not a database, just text " * 100)
    before = bad.read_bytes()
    for argv in (["threads"], ["history", "x"], ["migrate", "current"], ["delete", "x", "--yes"],
                 ["vacuum"], ["migrate", "upgrade"]):
        code, _, err = cli(capsys, *argv, "--url", str(bad))
        assert code == 2 and "notes.txt" in err and err.count("\n") == 1, (argv, err)
        assert "not a" in err and ("pass --url" in err or "point the saver" in err), (argv, err)
    assert bad.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_an_error_about_a_thread_id_holding_control_characters_shows_them_as_escapes(
    capsys: pytest.CaptureFixture[str], db: list[str]
) -> None:
    """The command an error advises names the thread as the shell takes it, not as repr()
    shows it: an ESC in the id reached the terminal as is (recoloring what follows)."""
    evil = "evil\x1b[31m"
    assert cli(capsys, "copy", "chain", evil, "--yes", *db)[0] == 0
    for argv in (["show", evil, "zzzzzzzz"], ["replay", evil, "--run-id", "nope"]):
        code, _, err = cli(capsys, *argv, *db)
        assert code == 1 and ("checkpoint-pg history" in err or "checkpoint-pg replay" in err), err
        assert "\x1b" not in err and "\\x1b[31m" in err, (argv, err)


def test_threads_page_options_out_of_range_name_the_option_and_its_range(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """threads --limit 0 / 1001 and --offset -1: the error spoke of the inspector's
    parameters ("limit must be an int from 1 to 1000"), and --help hid the cap. Now the
    option is named with its range, before any database is opened (this one does not exist)."""
    from checkpoint_pg.inspect.inspector import MAX_PAGE

    url = ["--url", str(tmp_path / "none.db")]
    for argv, option in ((["--limit", "0"], "--limit"), (["--limit", str(MAX_PAGE + 1)], "--limit"),
                         (["--offset", "-1"], "--offset")):
        code, _, err = cli(capsys, "threads", *argv, *url)
        assert code == 2 and f"{option} must be" in err and argv[1] in err, (argv, err)
    assert "--limit must be from 1 to 1000" in cli(capsys, "threads", "--limit", "0", *url)[2]
    code, out, _ = cli(capsys, "threads", "--help")
    assert code == 0 and f"1 to {MAX_PAGE}" in out


def test_advised_commands_stay_bare_where_no_database_was_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The options are added only where they name another database than the default:
    `migrate history` reads none, and a command run without --url advises one without it."""
    monkeypatch.delenv("CHECKPOINT_PG_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "migrate", "sql", "--dialect", "postgresql", "--from", "zzz")
    assert code == 2 and "`checkpoint-pg migrate history`" in err, err
    code, _, err = cli(capsys, "threads")
    assert code == 1 and "(run `checkpoint-pg demo` to create it)" in err, err


def test_stats_top_applies_to_json_when_given(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """stats --json lists every thread by default (the table's 20 is for the eye, and a
    script must not lose threads to it); --top N given cuts the JSON as it cuts the table,
    and says how many it left out."""
    from langgraph.checkpoint.base import empty_checkpoint

    from checkpoint_pg import SqliteSaver

    path = tmp_path / "s.db"
    with SqliteSaver.from_conn_string(str(path)) as saver:
        saver.setup()
        for i in range(23):
            cfg = {"configurable": {"thread_id": f"t{i:02d}", "checkpoint_ns": ""}}
            saver.put(cfg, empty_checkpoint(), {"source": "input", "step": -1}, {})
    code, out, _ = cli(capsys, "stats", "--json", "--url", str(path))
    assert code == 0
    everything = json.loads(out)
    assert len(everything["threads"]) == 23 and "threads_not_shown" not in everything
    code, out, _ = cli(capsys, "stats", "--json", "--top", "5", "--url", str(path))
    top = json.loads(out)
    assert code == 0 and top["threads"] == everything["threads"][:5]
    assert top["threads_not_shown"] == 18 and top["total"] == everything["total"]
    code, out, _ = cli(capsys, "stats", "--url", str(path))
    assert code == 0 and "(3 smaller threads not shown; --top 0 shows all)" in out
