"""The ``checkpoint-pg`` command, on real databases of both backends.

Most tests call ``checkpoint_pg.cli.main(argv)`` in-process (fast); the
read-only tests open a chmod-0444 SQLite file and a Postgres role that may only
SELECT; one end-to-end test runs the installed ``checkpoint-pg`` executable in
a subprocess against real Postgres.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from clikit import READ_COMMANDS, cli, incumbent_file  # noqa: F401 - a fixture
from faultkit import paused_on, wait_for_blocked, wait_until
from graphs import build_chain

COMMANDS = [
    ["threads"],
    ["history"],
    ["show"],
    ["diff"],
    ["stats"],
    ["replay"],
    ["prune"],
    ["delete"],
    ["copy"],
    ["vacuum"],
    ["migrate"],
    ["migrate", "upgrade"],
    ["migrate", "downgrade"],
    ["migrate", "current"],
    ["migrate", "history"],
    ["migrate", "sql"],
    ["import-langgraph"],
    ["transfer"],
    ["unlock"],
    ["demo"],
]



def _saver_cls(url: str) -> Any:
    from checkpoint_pg import PostgresSaver, SqliteSaver

    return PostgresSaver if url.startswith("postgresql") else SqliteSaver


def populate(url: str, prefix: str) -> None:
    """The demo thread ("demo", paused and resumed) and a three-node chain ("chain")."""
    from checkpoint_pg.demo import run_demo

    with _saver_cls(url).from_conn_string(url, prefix=prefix) as saver:
        saver.setup()
        run_demo(saver, thread_id="demo", out=lambda _: None)
        build_chain(saver).invoke({"log": []}, {"configurable": {"thread_id": "chain"}})


def execute_sql(url: str, sql: str) -> None:
    """Run one statement on the database of ``url`` behind the saver's back (to damage it on purpose)."""
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql)
    else:
        import sqlite3

        with contextlib.closing(sqlite3.connect(url)) as conn:
            conn.execute(sql)
            conn.commit()


@pytest.fixture
def db(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> list[str]:
    """``--url URL --prefix P`` of a database holding the demo and chain threads."""
    if backend == "sqlite":
        url, prefix = str(tmp_path / "cli.db"), "cpg_"
    else:
        url, prefix = request.getfixturevalue("pg_url"), f"c{secrets.token_hex(4)}_"
    populate(url, prefix)
    return ["--url", url, "--prefix", prefix]


# -- help and usage --------------------------------------------------------------------


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: "-".join(a))
def test_every_command_has_help(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    """``checkpoint-pg CMD --help`` prints a usage and exits 0, for every command and migrate action."""
    code, out, _ = cli(capsys, *argv, "--help")
    assert code == 0
    assert out.startswith(f"usage: checkpoint-pg {' '.join(argv)}")
    assert "--url" in out and "--json" in out


def test_the_help_test_covers_every_command() -> None:
    """COMMANDS above lists every command the parser has (a new one gets its help checked)."""
    import argparse

    from checkpoint_pg.cli import build_parser

    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert sorted(sub.choices) == sorted({argv[0] for argv in COMMANDS})


def test_help_and_the_errors_load_neither_langgraph_nor_a_driver() -> None:
    """``checkpoint-pg --help`` and ``import checkpoint_pg`` (for its errors, say) do not load
    langgraph, langchain or psycopg: the savers load them when first asked for (it took
    ~2.5 s before each --help)."""
    code = (
        "import sys, checkpoint_pg, checkpoint_pg.cli\n"
        "from checkpoint_pg import CheckpointPgError\n"
        "loaded = [m for m in ('langgraph', 'langchain_core', 'psycopg') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "assert checkpoint_pg.SqliteSaver.__module__ == 'checkpoint_pg.sqlite'\n"
        "assert 'langgraph' in sys.modules\n"
        "from checkpoint_pg import *\n"
        "assert Lease.__name__ == 'Lease' and 'AsyncSqliteSaver' in dir(checkpoint_pg)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """``checkpoint-pg --version`` prints the package's version and exits 0 (for bug reports)."""
    import checkpoint_pg

    code, out, _ = cli(capsys, "--version")
    assert code == 0 and out.strip() == f"checkpoint-pg {checkpoint_pg.__version__}"


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """No command, unknown options, bad values: exit 2 with one line on stderr."""
    assert cli(capsys)[0] == 2
    assert cli(capsys, "threads", "--bogus")[0] == 2
    # the option is checked first, as stats --top and history --limit are (session 18)
    code, _, err = cli(capsys, "threads", "--limit", "0", "--url", str(tmp_path / "x.db"))
    assert code == 2 and "--limit must be from 1 to 1000" in err
    db = tmp_path / "empty.db"
    populate(str(db), "cpg_")
    code, _, err = cli(capsys, "threads", "--limit", "0", "--url", str(db))
    assert code == 2 and err.count("\n") == 1 and "--limit must be from 1 to 1000 (threads per page), got 0" in err
    for bad in ("=x", "x"):  # an empty key is a slip, not a filter on metadata key ""
        code, _, err = cli(capsys, "threads", "--filter", bad, "--url", str(db))
        assert code == 2 and f"invalid --filter {bad!r}" in err, err


def test_database_options_count_wherever_they_stand(
    capsys: pytest.CaptureFixture[str], db: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--url/--prefix/--json before the command, between migrate and its action, or after it all
    name the same database: none is overwritten by a later level's default (that once sent
    `migrate --url B downgrade base` to $CHECKPOINT_PG_URL)."""
    other = tmp_path / "other.db"
    populate(str(other), "cpg_")
    monkeypatch.setenv("CHECKPOINT_PG_URL", str(other))
    url, prefix = db[1], db[3]
    for argv in (
        ["--url", url, "--prefix", prefix, "--json", "threads"],
        ["threads", "--url", url, "--prefix", prefix, "--json"],
    ):
        code, out, _ = cli(capsys, *argv)
        assert code == 0 and {t["thread_id"] for t in json.loads(out)["threads"]} == {"demo", "chain"}
    for argv in (
        ["migrate", "--url", url, "--prefix", prefix, "current"],
        ["--url", url, "--prefix", prefix, "migrate", "current"],
        ["migrate", "current", "--url", url, "--prefix", prefix],
    ):
        code, out, err = cli(capsys, *argv)
        assert code == 0, (argv, err)
    before = _digest(other)
    code, _, err = cli(capsys, "migrate", "--url", url, "--prefix", prefix, "downgrade", "base", "--yes")
    assert code == 0, err
    assert _digest(other) == before  # $CHECKPOINT_PG_URL's database untouched
    code, _, err = cli(capsys, "threads", "--url", url, "--prefix", prefix)
    assert code == 1 and "migrate upgrade" in err  # the named database lost its tables


def test_default_database_is_the_demo_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --url or $CHECKPOINT_PG_URL the command reads ./checkpoint_pg_demo.db, and says how to create it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHECKPOINT_PG_URL", raising=False)
    code, _, err = cli(capsys, "threads")
    assert code == 1 and "checkpoint_pg_demo.db" in err and "checkpoint-pg demo" in err
    code, out, _ = cli(capsys, "demo")
    assert code == 0 and "paused for approval" in out and "checkpoint-pg history demo" in out
    assert (tmp_path / "checkpoint_pg_demo.db").is_file()
    code, out, _ = cli(capsys, "threads", "--json")
    assert [t["thread_id"] for t in json.loads(out)["threads"]] == ["demo"]
    monkeypatch.setenv("CHECKPOINT_PG_URL", str(tmp_path / "other.db"))
    assert "other.db" in cli(capsys, "threads")[2]


def test_demo_refuses_an_existing_thread_unless_replace(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``demo`` on an existing thread exits 2 naming --thread/--replace; --replace runs it afresh."""
    url = ["--url", str(tmp_path / "d.db")]
    code, out, _ = cli(capsys, "demo", *url)
    # the approval node's empty update is a write, as `history` shows it
    assert code == 0 and "approval after an interrupt -> messages (empty)" in out, out
    code, _, err = cli(capsys, "demo", *url)
    assert code == 2 and "--replace" in err
    assert cli(capsys, "demo", "--replace", "--reject", *url)[0] == 0
    code, out, _ = cli(capsys, "show", "demo", "--json", *url)
    assert "refund rejected by a human" in out


def test_demo_without_langgraph_says_what_to_install(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pip install 'checkpoint-pg[postgres,cli]'`` brings no langgraph: ``demo`` names the package to install."""
    monkeypatch.delitem(sys.modules, "checkpoint_pg.demo", raising=False)
    monkeypatch.setitem(sys.modules, "langgraph.graph", None)  # import fails as if not installed
    code, out, err = cli(capsys, "demo", "--url", str(tmp_path / "d.db"))
    assert code == 1 and out == ""
    assert "pip install" in err and "langgraph" in err, err


def test_an_encrypted_database_is_read_with_langgraph_aes_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread an app stored with EncryptedSerializer.from_pycryptodome_aes() (key in
    LANGGRAPH_AES_KEY): the CLI reads it with the variable set, and without it says why not."""
    pytest.importorskip("Crypto", reason="EncryptedSerializer needs pycryptodome (test extra)")
    from langchain_core.messages import HumanMessage
    from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

    from checkpoint_pg import SqliteSaver

    monkeypatch.setenv("LANGGRAPH_AES_KEY", "0123456789abcdef")
    path = str(tmp_path / "enc.db")
    with SqliteSaver.from_conn_string(path, serde=EncryptedSerializer.from_pycryptodome_aes()) as saver:
        saver.setup()
        cp = empty_checkpoint()
        cp["channel_values"] = {"messages": [HumanMessage("secret question", id="h1")]}
        cp["channel_versions"] = {"messages": saver.get_next_version(None, None)}
        saver.put({"configurable": {"thread_id": "enc", "checkpoint_ns": ""}}, cp, {}, cp["channel_versions"])
    code, out, err = cli(capsys, "show", "enc", "--json", "--url", path)
    assert code == 0 and "secret question" in out, err
    monkeypatch.delenv("LANGGRAPH_AES_KEY")
    code, out, err = cli(capsys, "show", "enc", "--json", "--url", path)
    assert code == 1 and "LANGGRAPH_AES_KEY" in err and "encrypted" in err, err
    monkeypatch.setenv("LANGGRAPH_AES_KEY", "short")
    code, out, err = cli(capsys, "show", "enc", "--url", path)
    assert code != 0 and "LANGGRAPH_AES_KEY is set but unusable" in err, err


def test_a_database_written_with_a_hash_key_is_read_with_checkpoint_pg_hash_key(
    capsys: pytest.CaptureFixture[str], db: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread an app stored with hash_key=...: every read checks each object against
    its keyed hash, which the CLI could not compute, so `show` and `history` called the
    rows "changed by hand". With the key in CHECKPOINT_PG_HASH_KEY (hex) it reads them;
    without it the error says so; a key that is not hex is a usage error."""
    from langchain_core.messages import HumanMessage

    url, prefix = db[1], db[3]
    key = bytes(range(32))
    monkeypatch.delenv("CHECKPOINT_PG_HASH_KEY", raising=False)
    with _saver_cls(url).from_conn_string(url, prefix=prefix, hash_key=key) as saver:
        cp = empty_checkpoint()
        cp["channel_values"] = {"messages": [HumanMessage("keyed question", id="k1")]}
        cp["channel_versions"] = {"messages": saver.get_next_version(None, None)}
        saver.put({"configurable": {"thread_id": "keyed", "checkpoint_ns": ""}}, cp, {}, cp["channel_versions"])
    code, out, err = cli(capsys, "show", "keyed", *db)
    assert code == 1 and "CHECKPOINT_PG_HASH_KEY" in err, err
    monkeypatch.setenv("CHECKPOINT_PG_HASH_KEY", key.hex())
    code, out, err = cli(capsys, "show", "keyed", "--json", *db)
    assert code == 0 and "keyed question" in out, err
    code, out, err = cli(capsys, "history", "keyed", "--json", *db)
    assert code == 0 and len(json.loads(out)) == 1, err
    monkeypatch.setenv("CHECKPOINT_PG_HASH_KEY", "not hex")
    code, out, err = cli(capsys, "show", "keyed", *db)
    assert code == 2 and "CHECKPOINT_PG_HASH_KEY" in err and "hex" in err, err


def test_an_encrypted_database_with_a_hash_key_read_without_it_names_checkpoint_pg_hash_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An app with EncryptedSerializer and hash_key=: the CLI given LANGGRAPH_AES_KEY alone
    hashes with a key derived from it, every object fails its check, and the error names
    the variable that gives the CLI the app's key (it named none)."""
    pytest.importorskip("Crypto", reason="EncryptedSerializer needs pycryptodome (test extra)")
    from langchain_core.messages import HumanMessage
    from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

    from checkpoint_pg import SqliteSaver

    monkeypatch.setenv("LANGGRAPH_AES_KEY", "0123456789abcdef")
    monkeypatch.delenv("CHECKPOINT_PG_HASH_KEY", raising=False)
    path, key = str(tmp_path / "enc.db"), bytes(range(32))
    serde = EncryptedSerializer.from_pycryptodome_aes()
    with SqliteSaver.from_conn_string(path, serde=serde, hash_key=key) as saver:
        saver.setup()
        cp = empty_checkpoint()
        cp["channel_values"] = {"messages": [HumanMessage("secret question", id="h1")]}
        cp["channel_versions"] = {"messages": saver.get_next_version(None, None)}
        saver.put({"configurable": {"thread_id": "enc", "checkpoint_ns": ""}}, cp, {}, cp["channel_versions"])
    code, out, err = cli(capsys, "show", "enc", "--url", path)
    assert code == 1 and "CHECKPOINT_PG_HASH_KEY" in err, err
    monkeypatch.setenv("CHECKPOINT_PG_HASH_KEY", key.hex())
    code, out, err = cli(capsys, "show", "enc", "--json", "--url", path)
    assert code == 0 and "secret question" in out, err


# -- read commands -----------------------------------------------------------------------


def test_threads_history_show_json_and_tables(capsys: pytest.CaptureFixture[str], db: list[str]) -> None:
    """threads/history/show: JSON for scripts, tables for people, messages as role: content."""
    code, out, _ = cli(capsys, "threads", "--json", *db)
    page = json.loads(out)
    assert code == 0 and [t["thread_id"] for t in page["threads"]] == ["chain", "demo"]
    assert page["threads"][1]["checkpoints"] == 6 and page["threads"][1]["bytes"] > 0
    code, out, _ = cli(capsys, "threads", "--filter", "step=4", "--json", *db)
    assert [t["thread_id"] for t in json.loads(out)["threads"]] == ["demo"]
    code, out, _ = cli(capsys, "threads", "--limit", "1", *db)
    assert code == 0 and "chain" in out and "--cursor" in out

    code, out, _ = cli(capsys, "history", "demo", "--json", *db)
    entries = json.loads(out)
    assert [e["step"] for e in entries] == [-1, 0, 1, 2, 3, 4]
    assert list(entries[2]["updates"]) == ["agent"]
    assert entries[2]["updates"]["agent"]["messages"][0]["tool_calls"][1]["name"] == "refund"
    assert entries[2]["interrupts"]["approval"][0]["interrupt"]["question"] == "Approve this refund?"
    code, out, _ = cli(capsys, "history", "demo", *db)
    assert code == 0
    assert "ai: Let me check" in out and "tool[lookup_order]" in out
    assert "approval" in out and "interrupt" in out and "resumed with: true" in out

    code, out, _ = cli(capsys, "show", "demo", *db)
    assert code == 0 and "human: My order A-1001 arrived broken" in out and "tool[refund]" in out
    code, out, _ = cli(capsys, "show", "demo", "-3", "--json", *db)
    view = json.loads(out)
    assert view["step"] == 1 and view["next"] == ["approval"] and "approval" in view["interrupts"]


def test_messages_are_cut_to_the_terminal_width(
    capsys: pytest.CaptureFixture[str], db: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Human output fits the terminal: with COLUMNS=70 no line is wider, long contents end in '…'."""
    monkeypatch.setenv("COLUMNS", "70")
    for argv in (["history", "demo"], ["show", "demo"], ["replay", "demo"], ["threads"], ["stats"]):
        code, out, _ = cli(capsys, *argv, *db)
        assert code == 0
        assert max(len(line) for line in out.splitlines()) <= 70, argv
    assert "…" in cli(capsys, "show", "demo", *db)[1]


def test_diff_stats_replay(capsys: pytest.CaptureFixture[str], db: list[str], saver_target: Any) -> None:
    """diff by THREAD@-N refs, stats totals, replay chunks equal the API's (JSON)."""
    code, out, _ = cli(capsys, "diff", "demo@-3", "demo", "--json", *db)
    d = json.loads(out)
    (msgs,) = [c for c in d["channels"] if c["channel"] == "messages"]
    assert code == 0 and [m["type"] for m in msgs["added"]] == ["tool", "tool", "ai"]
    code, out, _ = cli(capsys, "diff", "demo", "demo", *db)
    assert code == 0 and "no differences" in out
    code, _, err = cli(capsys, "diff", "demo@-99", "demo", *db)
    assert code == 1 and "goes back too far" in err

    code, out, _ = cli(capsys, "stats", "--json", *db)
    st = json.loads(out)
    assert code == 0 and {t["thread_id"] for t in st["threads"]} == {"demo", "chain"}
    assert st["total"]["checkpoints"] == 6 + 5 and st["total"]["objects"] < st["total"]["references"]

    code, out, _ = cli(capsys, "replay", "demo", "--runs", "--json", *db)
    runs = json.loads(out)
    assert [list(c) for r in runs for c in r["chunks"]] == [
        ["agent"],
        ["__interrupt__"],
        ["approval"],
        ["tools"],
        ["agent"],
    ]
    code, out, _ = cli(capsys, "replay", "demo", "--runs", *db)
    assert "run 2" in out and "tool[lookup_order]" in out
    code, _, err = cli(capsys, "replay", "demo", "--run-id", "nope", *db)
    assert code == 1 and "nope" in err


def test_diff_a_thread_id_containing_at(capsys: pytest.CaptureFixture[str], db: list[str]) -> None:
    """diff reads alice@example.com as a thread id, alice@example.com@-N and @latest as refs into it."""
    assert cli(capsys, "copy", "demo", "alice@example.com", "--yes", *db)[0] == 0
    code, out, err = cli(capsys, "diff", "alice@example.com@-3", "alice@example.com", "--json", *db)
    assert code == 0, err
    (msgs,) = [c for c in json.loads(out)["channels"] if c["channel"] == "messages"]
    assert [m["type"] for m in msgs["added"]] == ["tool", "tool", "ai"]
    code, out, err = cli(capsys, "diff", "alice@example.com@latest", "demo", *db)
    assert code == 0 and "no differences" in out, err
    code, _, err = cli(capsys, "diff", "alice@example.com@-99", "demo", *db)
    assert code == 1 and "goes back too far" in err
    assert "alice@example.com@latest" in cli(capsys, "diff", "--help")[1]
    # "chain@1" is a thread of its own: "1" is no (6-character) part of an id of thread "chain",
    # whose ids may start or end with 1; nor is an ambiguous part read as one
    assert cli(capsys, "copy", "demo", "chain@1", "--yes", *db)[0] == 0
    code, out, err = cli(capsys, "diff", "chain@1", "demo", *db)
    assert code == 0 and "no differences" in out, err
    code, _, err = cli(capsys, "show", "chain", "1", *db)
    assert code == 1 and "at least 6 characters" in err


def test_json_output_is_valid_json_with_nan_and_infinity(
    capsys: pytest.CaptureFixture[str], db: list[str]
) -> None:
    """--json prints float NaN and infinities as the strings "NaN", "Infinity", "-Infinity" (JSON has
    no such numbers), and --help says so."""
    from langgraph.graph import END, START, StateGraph
    from typing_extensions import TypedDict

    class Floats(TypedDict, total=False):
        x: float
        y: float
        z: float

    builder = StateGraph(Floats)
    builder.add_node("n", lambda _: {"x": float("nan"), "y": float("inf"), "z": float("-inf")})
    builder.add_edge(START, "n")
    builder.add_edge("n", END)
    with _saver_cls(db[1]).from_conn_string(db[1], prefix=db[3]) as saver:
        builder.compile(checkpointer=saver).invoke({}, {"configurable": {"thread_id": "floats"}})

    def strict(text: str) -> Any:
        def refuse(token: str) -> Any:
            raise AssertionError(f"{token} is not JSON")

        return json.loads(text, parse_constant=refuse)

    code, out, err = cli(capsys, "show", "floats", "--json", *db)
    assert code == 0, err
    assert strict(out)["values"] == {"x": "NaN", "y": "Infinity", "z": "-Infinity"}
    for argv in (["history", "floats"], ["replay", "floats"], ["diff", "floats@-1", "floats"]):
        code, out, err = cli(capsys, *argv, "--json", *db)
        assert code == 0, (argv, err)
        strict(out)
    assert '"NaN"' in cli(capsys, "show", "--help")[1]


def test_threads_names_the_thread_whose_metadata_is_malformed(
    capsys: pytest.CaptureFixture[str], db: list[str], backend: str
) -> None:
    """Thread metadata that is not a JSON object (edited by hand) gives one line naming the thread, exit 1."""
    bad = "'[1, 2]'" if backend == "postgres" else "'{bad'"  # JSONB holds only valid JSON
    execute_sql(db[1], f"UPDATE {db[3]}threads SET metadata = {bad} WHERE thread_id = 'chain'")
    for argv in (["threads"], ["threads", "--json"]):
        code, _, err = cli(capsys, *argv, *db)
        assert code == 1, err
        assert err.startswith("checkpoint-pg: error: thread 'chain'") and err.count("\n") == 1, err
        assert "not a JSON object" in err


def test_stats_top_must_not_be_negative(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """stats --top -1 is a usage error (exit 2) naming the option, before any database is opened."""
    code, _, err = cli(capsys, "stats", "--top", "-1", "--url", str(tmp_path / "x.db"))
    assert code == 2 and "--top" in err and "-1" in err and err.count("\n") == 1


def test_read_commands_keep_the_urls_options_and_pgoptions(
    capsys: pytest.CaptureFixture[str], pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read-only sessions add their option to the user's: a search_path set by the URL's options= or
    by $PGOPTIONS still applies to threads, show, migrate current and import-langgraph --from."""
    import argparse

    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver as Incumbent

    from checkpoint_pg.cli import open_saver

    schema = f"app_{secrets.token_hex(4)}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        url = f"{pg_url}{'&' if '?' in pg_url else '?'}options=-csearch_path%3D{schema}"
        populate(url, "cpg_")  # our tables, found through the search_path
        with Incumbent.from_conn_string(url) as incumbent:  # and the incumbent's
            incumbent.setup()
            build_chain(incumbent).invoke({"log": []}, {"configurable": {"thread_id": "old"}})
        for argv in (["threads", "--json"], ["show", "demo", "--json"], ["migrate", "current"]):
            code, _, err = cli(capsys, *argv, "--url", url)
            assert code == 0, (argv, err)
        code, out, err = cli(capsys, "import-langgraph", "--from", url, "--dry-run", "--json", "--url", url)
        assert code == 0 and json.loads(out)["thread_ids"] == ["old"], err
        with open_saver(argparse.Namespace(url=url, prefix="cpg_", schema=None), write=False) as saver:
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):  # and still read-only
                saver.delete_thread("demo")
        monkeypatch.setenv("PGOPTIONS", f"-csearch_path={schema}")
        code, out, err = cli(capsys, "threads", "--json", "--url", pg_url)
        assert code == 0, err
        assert [t["thread_id"] for t in json.loads(out)["threads"]] == ["chain", "demo"]
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_read_commands_work_through_pgbouncer(
    capsys: pytest.CaptureFixture[str], pgbouncer_url: str
) -> None:
    """PgBouncer refuses the `options` startup parameter read-only sessions send: every read
    command falls back to a plain session (migrate current, the upgrade's dry run and
    import-langgraph's check read the revision through SQLAlchemy, not through a saver)."""
    prefix = f"bq{secrets.token_hex(3)}_"
    populate(pgbouncer_url, prefix)
    for argv in (
        ["threads", "--json"],
        ["migrate", "current"],
        ["migrate", "upgrade", "--dry-run"],
    ):
        code, _, err = cli(capsys, *argv, "--url", pgbouncer_url, "--prefix", prefix)
        assert code == 0, (argv, err)


def test_unknown_thread_is_one_line_exit_1(capsys: pytest.CaptureFixture[str], db: list[str]) -> None:
    """An unknown thread or checkpoint: exit 1, one line naming it and what to do."""
    for argv in (
        ["history", "nope"],
        ["show", "nope"],
        ["show", "demo", "no-such-id"],
        ["replay", "nope"],
        ["delete", "nope", "--yes"],
    ):
        code, out, err = cli(capsys, *argv, *db)
        assert code == 1, argv
        assert err.startswith("checkpoint-pg: error: ") and err.count("\n") == 1, err
        assert "nope" in err or "no-such-id" in err


# -- destructive commands -------------------------------------------------------------------


def _thread_ids(capsys: pytest.CaptureFixture[str], db: list[str]) -> list[str]:
    return [t["thread_id"] for t in json.loads(cli(capsys, "threads", "--json", *db)[1])["threads"]]


def test_delete_dry_run_confirmation_and_yes(
    capsys: pytest.CaptureFixture[str], db: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """delete: --dry-run changes nothing; without --yes it asks (and refuses without a terminal); --yes deletes."""
    code, out, _ = cli(capsys, "delete", "demo", "--dry-run", *db)
    assert code == 0 and "would delete thread 'demo': 6 checkpoints" in out
    code, _, err = cli(capsys, "delete", "demo", *db)  # stdin is not a terminal under pytest
    assert code == 2 and "--yes" in err
    assert "demo" in _thread_ids(capsys, db)

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    # the question goes to stderr: stdout is the result's (--json stays JSON)
    monkeypatch.setattr(sys, "stdin", Tty("n\n"))
    code, out, err = cli(capsys, "delete", "demo", *db)
    assert code == 1 and "cancelled" in err and "Delete thread 'demo'" in err and "[y/N]" in err
    assert out == ""
    monkeypatch.setattr(sys, "stdin", Tty(""))  # Ctrl-D: no, without a traceback
    code, out, err = cli(capsys, "delete", "demo", *db)
    assert code == 1 and "cancelled" in err and out == ""
    monkeypatch.setattr(sys, "stdin", Tty("y\n"))
    code, out, err = cli(capsys, "delete", "demo", "--json", *db)
    assert code == 0 and json.loads(out) == {"deleted": "demo", "checkpoints": 6} and "[y/N]" in err
    assert _thread_ids(capsys, db) == ["chain"]
    code, out, _ = cli(capsys, "delete", "chain", "--yes", "--json", *db)
    assert code == 0 and json.loads(out) == {"deleted": "chain", "checkpoints": 5}


def test_questions_name_threads_exactly(
    capsys: pytest.CaptureFixture[str], db: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A question shows the thread ids as they are (not case-folded: 'Demo-B' and 'demo-b' are
    two threads), and a pasted value of thousands of characters is cut short in it."""
    monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
    code, _, err = cli(capsys, "copy", "demo", "Demo-B", *db)
    assert code == 1 and "Copy thread 'demo' (6 checkpoints) to 'Demo-B'?" in err
    monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
    code, out, err = cli(capsys, "copy", "demo", "x" * 5000, *db)
    assert code == 1 and "characters)" in err and len(err) < 500 and out == ""
    code, out, _ = cli(capsys, "copy", "demo", "x" * 5000, "--dry-run", *db)
    assert code == 0 and "characters)" in out and len(out) < 500


def test_copy_makes_an_equal_thread(capsys: pytest.CaptureFixture[str], db: list[str]) -> None:
    """copy SRC DST --yes: DST has the same latest state; copying onto an existing thread exits 2."""
    assert "would copy" in cli(capsys, "copy", "demo", "demo2", "--dry-run", *db)[1]
    assert "demo2" not in _thread_ids(capsys, db)
    assert cli(capsys, "copy", "demo", "demo2", "--yes", *db)[0] == 0
    code, out, _ = cli(capsys, "diff", "demo", "demo2", "--json", *db)
    assert all(c["status"] == "same" for c in json.loads(out)["channels"])
    code, _, err = cli(capsys, "copy", "chain", "demo2", "--yes", *db)
    assert code == 2 and "already has" in err


def test_copy_onto_a_thread_names_the_delete_for_this_database(
    capsys: pytest.CaptureFixture[str], db: list[str]
) -> None:
    """The delete a refused copy suggests runs as printed on the same database and tables (not on
    the default one), the thread id quoted: afterwards the copy goes through."""
    assert cli(capsys, "copy", "demo", "my copy", "--yes", *db)[0] == 0
    code, _, err = cli(capsys, "copy", "chain", "my copy", "--yes", *db)
    assert code == 2, err
    suggested = re.search(r"`(checkpoint-pg delete [^`]+)`", err)
    assert suggested, err
    argv = shlex.split(suggested.group(1))[1:]
    code, out, err = cli(capsys, *argv, "--yes")
    assert code == 0 and "deleted thread 'my copy'" in out, err
    assert cli(capsys, "copy", "chain", "my copy", "--yes", *db)[0] == 0


def test_prune_keep_last_and_older_than(capsys: pytest.CaptureFixture[str], db: list[str]) -> None:
    """prune --keep-last N trims every thread to N checkpoints; --older-than deletes stale threads."""
    assert cli(capsys, "prune", *db)[0] == 2
    code, out, _ = cli(capsys, "prune", "--keep-last", "2", "--dry-run", "--json", *db)
    plan = json.loads(out)
    assert code == 0 and {p["thread_id"]: p["delete_at_most"] for p in plan["trim_threads"]} == {
        "demo": 4,
        "chain": 3,
    }
    assert cli(capsys, "prune", "--keep-last", "2", *db)[0] == 2  # asks, no terminal
    assert cli(capsys, "prune", "--keep-last", "2", "--yes", *db)[0] == 0
    threads = json.loads(cli(capsys, "threads", "--json", *db)[1])["threads"]
    assert {t["thread_id"]: t["checkpoints"] for t in threads} == {"demo": 2, "chain": 2}
    code, out, _ = cli(capsys, "show", "demo", "--json", *db)
    assert code == 0 and len(json.loads(out)["values"]["messages"]) == 5  # state intact

    code, out, _ = cli(capsys, "prune", "--older-than", "1h", "--yes", *db)
    assert code == 0 and "nothing to prune" in out
    code, _, err = cli(capsys, "prune", "--older-than", "soon", "--yes", *db)
    assert code == 2 and "invalid duration 'soon'" in err
    assert cli(capsys, "prune", "--older-than", "0s", "--thread", "chain", "--yes", *db)[0] == 0
    assert _thread_ids(capsys, db) == ["demo"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_prune_older_than_keeps_a_thread_written_while_the_prompt_waits(
    capsys: pytest.CaptureFixture[str], db: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """prune --older-than lists stale threads, then asks. A thread a run writes while
    the operator reads the question is kept: the age is checked again as each
    thread is deleted, under its lock. The other stale thread is deleted."""
    import time

    url, prefix = db[1], db[3]
    time.sleep(1.2)  # both threads are now older than 1s

    class Operator(_Terminal):
        def readline(self, *_: object) -> str:  # reads the question, meanwhile a run writes
            with _saver_cls(url).from_conn_string(url, prefix=prefix) as saver:
                build_chain(saver).invoke({"log": []}, {"configurable": {"thread_id": "chain"}})
            return "y\n"

    monkeypatch.setattr(sys, "stdin", Operator())
    code, out, err = cli(capsys, "prune", "--older-than", "1s", *db)
    assert "Delete 2 threads" in err
    assert code == 0 and "kept 1 of them, written since the plan" in out, out
    assert _thread_ids(capsys, db) == ["chain"]


# -- migrate -------------------------------------------------------------------------------


def test_migrate_current_upgrade_history_sql_downgrade(
    capsys: pytest.CaptureFixture[str], backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """migrate: current exits 1 until upgraded; sql prints offline DDL; downgrade base asks, then drops."""
    if backend == "sqlite":
        url = ["--url", str(tmp_path / "m.db"), "--prefix", "mig_"]
        (tmp_path / "m.db").touch()
    else:
        url = ["--url", request.getfixturevalue("pg_url"), "--prefix", f"m{secrets.token_hex(4)}_"]
    code, out, _ = cli(capsys, "migrate", "current", *url)
    assert code == 1 and "no checkpoint_pg tables" in out
    code, out, _ = cli(capsys, "migrate", "upgrade", "--dry-run", *url)
    assert code == 0 and "would upgrade" in out
    assert cli(capsys, "migrate", "current", *url)[0] == 1
    from checkpoint_pg import migrate

    head = migrate.head()
    code, out, _ = cli(capsys, "migrate", "upgrade", *url)
    assert code == 0 and f"-> {head}" in out
    code, out, _ = cli(capsys, "migrate", "current", "--json", *url)
    assert code == 0 and json.loads(out) == {"current": head, "head": head, "at_head": True}
    code, out, _ = cli(capsys, "migrate", "history", "--json", *url)
    assert code == 0 and json.loads(out)[-1]["head"] is True
    code, out, _ = cli(capsys, "migrate", "sql", *url)
    assert code == 0 and "CREATE TABLE" in out and f"{url[3]}threads" in out
    code, out, _ = cli(capsys, "migrate", "sql", "--dialect", "postgresql", "--prefix", "dba_")
    assert code == 0 and "CREATE TABLE dba_checkpoints" in out and "JSONB" in out
    assert cli(capsys, "migrate", "downgrade", "base", *url)[0] == 2
    code, out, _ = cli(capsys, "migrate", "downgrade", "base", "--yes", *url)
    assert code == 0 and f"{head} -> <base>" in out
    assert cli(capsys, "migrate", "current", *url)[0] == 1


def test_migrate_takes_postgres_scheme_urls(capsys: pytest.CaptureFixture[str], pg_url: str) -> None:
    """Every migrate action accepts postgres://, as the other commands do."""
    url = ["--url", "postgres://" + pg_url.split("://", 1)[1], "--prefix", f"p{secrets.token_hex(4)}_"]
    for argv, status in (
        (["current"], 1),
        (["upgrade"], 0),
        (["current"], 0),
        (["downgrade", "base", "--yes"], 0),
    ):
        code, _, err = cli(capsys, "migrate", *argv, *url)
        assert code == status and "NoSuchModuleError" not in err, (argv, err)


def test_a_missing_postgres_database_is_named_with_how_to_create_it(
    capsys: pytest.CaptureFixture[str], pg_admin_dsn: str
) -> None:
    """A URL naming a database that does not exist (a typo, or not created yet): read commands and
    migrate upgrade exit 1 saying to create it, instead of only the server's FATAL."""
    from fixtures.postgres import with_dbname

    name = f"cpg_test_missing_{secrets.token_hex(4)}"
    url = ["--url", with_dbname(pg_admin_dsn, name)]
    for argv in (["threads"], ["migrate", "current"], ["migrate", "upgrade"]):
        code, _, err = cli(capsys, *argv, *url)
        assert code == 1 and "does not exist" in err, (argv, err)
        assert f"createdb {name}" in err and "CREATE DATABASE" in err, (argv, err)


def test_migrate_current_on_a_newer_release_says_to_upgrade_the_package(
    capsys: pytest.CaptureFixture[str], db: list[str]
) -> None:
    """A database at a revision this release does not know: migrate current exits 1 saying it was
    migrated by a newer release and to upgrade the package (migrate upgrade would refuse)."""
    execute_sql(db[1], f"UPDATE {db[3]}alembic_version SET version_num = '9999_newer'")
    code, out, _ = cli(capsys, "migrate", "current", *db)
    assert code == 1 and "9999_newer" in out
    assert "newer release" in out and "upgrade the checkpoint-pg package" in out
    assert "migrate upgrade" not in out
    code, _, err = cli(capsys, "migrate", "upgrade", *db)
    assert code == 1 and "upgrade the checkpoint-pg package" in err


def _migration_race(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, str, Any, str]:
    """A database (url, prefix) for a CLI migrate command to race, an engine on it for "the
    other process", and the statement by which that one holds the migration lock."""
    import sqlite3

    import sqlalchemy as sa

    from checkpoint_pg import migrate

    if backend == "sqlite":
        url = str(tmp_path / "race.db")
        # in WAL mode, as a saver leaves it: else the command waited for the lock to
        # switch the file to WAL, before it read the revision, and there was no race
        with contextlib.closing(sqlite3.connect(url)) as made:
            made.execute("PRAGMA journal_mode=WAL")
        engine = sa.create_engine(
            "sqlite://", creator=lambda: sqlite3.connect(url, isolation_level=None), poolclass=sa.pool.StaticPool
        )
        return url, "cpg_", engine, "BEGIN IMMEDIATE"
    url = request.getfixturevalue("pg_url")
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), poolclass=sa.pool.NullPool)
    return url, f"r{secrets.token_hex(4)}_", engine, f"SELECT pg_advisory_xact_lock({migrate.ADVISORY_LOCK_KEY})"


def _until_waiting(backend: str, url: str, conn: Any, waiting: Any) -> None:
    """Until the migrate command in the thread ``waiting`` waits for the migration lock
    ``conn`` holds: on Postgres, its session is seen waiting on conn's; on SQLite, the thread
    is in its BEGIN IMMEDIATE (SQLite's busy wait). A fixed pause let a loaded machine's
    command read the revision only after the other migrated, passing without the race."""
    if backend == "sqlite":
        wait_until(lambda: paused_on(waiting, 'exec_driver_sql("BEGIN IMMEDIATE")'), "the command waiting")
    else:
        wait_for_blocked(url, conn.exec_driver_sql("SELECT pg_backend_pid()").scalar())
    assert waiting.is_alive()


def test_migrate_upgrade_does_not_report_an_upgrade_another_process_ran_meanwhile(
    capsys: pytest.CaptureFixture[str], backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """migrate upgrade waiting on the migration lock (a setup() of an app starting, another
    upgrade) while that one migrates the database: it reports nothing to do, from the head,
    not an upgrade from <none> that it did not run."""
    import threading

    from checkpoint_pg import migrate
    from checkpoint_pg.schema import build_tables

    url, prefix, engine, hold = _migration_race(backend, tmp_path, request)
    tables = build_tables(prefix)
    results: list[tuple[int, str, str]] = []
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(hold)  # the other process, migrating
            waiting = threading.Thread(
                target=lambda: results.append(cli(capsys, "migrate", "upgrade", "--json", "--url", url, "--prefix", prefix))
            )
            waiting.start()
            _until_waiting(backend, url, conn, waiting)  # it reads the revision, then waits for the lock
            migrate.upgrade(conn, tables)  # in the transaction holding the lock; commits it
        waiting.join(timeout=60)
    finally:
        engine.dispose()
    ((code, out, err),) = results
    head = migrate.head()
    assert code == 0 and json.loads(out) == {"from": head, "to": head}, (out, err)


@pytest.mark.parametrize("revision", ["-1", "older"])
def test_migrate_downgrade_does_not_report_a_downgrade_another_process_ran_meanwhile(
    capsys: pytest.CaptureFixture[str], backend: str, tmp_path: Path, request: pytest.FixtureRequest, revision: str
) -> None:
    """migrate downgrade waiting on the migration lock while another process downgrades the
    database to the same revision: it reports nothing to do, from that revision, not a downgrade
    from head it did not run; and -1 is the revision it named, not one step below the other's."""
    import threading

    from checkpoint_pg import migrate
    from checkpoint_pg.schema import build_tables

    older = [r for r, _, _ in migrate.history()][-2]
    url, prefix, engine, hold = _migration_race(backend, tmp_path, request)
    tables = build_tables(prefix)
    argv = ("migrate", "downgrade", older if revision == "older" else revision, "--yes", "--json")
    results: list[tuple[int, str, str]] = []
    try:
        with engine.connect() as conn:
            migrate.upgrade(conn, tables)
            conn.exec_driver_sql(hold)  # the other process, migrating
            waiting = threading.Thread(
                target=lambda: results.append(cli(capsys, *argv, "--url", url, "--prefix", prefix))
            )
            waiting.start()
            _until_waiting(backend, url, conn, waiting)  # it reads the revision, then waits for the lock
            migrate.downgrade(conn, tables, older)  # in the transaction holding the lock; commits it
        waiting.join(timeout=60)
        with engine.connect() as conn:
            assert migrate.current(conn, tables) == older
            migrate.downgrade(conn, tables, "base")
    finally:
        engine.dispose()
    ((code, out, err),) = results
    assert code == 0 and json.loads(out) == {"from": older, "to": older}, (out, err)


def test_migrate_upgrade_to_a_revision_already_passed(capsys: pytest.CaptureFixture[str], db: list[str]) -> None:
    """migrate upgrade REV (or head) on a database at or past REV says so and changes nothing."""
    from checkpoint_pg import migrate

    head = migrate.head()
    old = migrate.history()[0][0]
    code, out, _ = cli(capsys, "migrate", "upgrade", old, *db)
    assert code == 0 and out == f"already at {head}, at or past {old}: nothing to do\n"
    code, out, _ = cli(capsys, "migrate", "upgrade", *db)
    assert code == 0 and "already at" in out and "upgraded" not in out
    assert cli(capsys, "migrate", "current", *db)[0] == 0


# -- import-langgraph ----------------------------------------------------------------------------


def test_import_dry_run_and_failures_create_nothing(
    capsys: pytest.CaptureFixture[str],
    backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    incumbent_file: str,
) -> None:
    """import-langgraph --dry-run counts into a target not created yet (no file, no tables) without
    creating it; an unknown --thread, and migrate downgrade of a missing file, fail creating nothing."""
    if backend == "sqlite":
        target = ["--url", str(tmp_path / "new.db"), "--prefix", "cpg_"]
    else:
        target = ["--url", request.getfixturevalue("pg_url"), "--prefix", f"i{secrets.token_hex(4)}_"]

    def nothing_created() -> bool:
        if backend == "sqlite":
            return not list(tmp_path.glob("new.db*"))
        code, out, _ = cli(capsys, "migrate", "current", *target)
        return code == 1 and "no checkpoint_pg tables" in out

    imp = ["import-langgraph", "--from", incumbent_file, "--no-progress", *target]
    code, out, err = cli(capsys, *imp, "--dry-run")
    assert code == 0, err
    (n,) = re.findall(r"would import (\d+) checkpoints", out)
    assert int(n) > 0 and nothing_created()
    code, _, err = cli(capsys, *imp, "--thread", "nosuch")
    assert code == 1 and "nosuch" in err and nothing_created()
    if backend == "sqlite":
        code, _, err = cli(capsys, "import-langgraph", "--no-setup", *imp[1:])
        assert code == 1 and "no SQLite database" in err and nothing_created()
    # a downgrade of a database without our tables has nothing to do, and creates nothing
    for dry in ([], ["--dry-run"]):
        code, _, err = cli(capsys, "migrate", "downgrade", "base", "--yes", *dry, *target)
        assert code == 1 and "no checkpoint_pg tables" in err and nothing_created()
    code, out, err = cli(capsys, *imp)
    assert code == 0 and f"imported {n} checkpoints" in out, err
    assert "of 1 thread;" in out, out  # incumbent_file holds one thread ("of 1 threads" before)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_langgraph_database_is_met_with_the_import_command(
    capsys: pytest.CaptureFixture[str], kind: str, request: pytest.FixtureRequest, incumbent_file: str
) -> None:
    """Pointed at the database of the saver being replaced (langgraph-checkpoint's tables,
    none of ours), a command names import-langgraph for it, and that command as advised
    brings its threads in."""
    if kind == "sqlite":
        url = incumbent_file
    else:
        from langgraph.checkpoint.postgres import PostgresSaver as Incumbent

        url = request.getfixturevalue("fresh_pg_url")
        with Incumbent.from_conn_string(url) as saver:
            saver.setup()
            build_chain(saver).invoke({"log": []}, {"configurable": {"thread_id": "old"}})
    code, _, err = cli(capsys, "threads", "--url", url)
    assert code == 1 and "holds langgraph-checkpoint's tables" in err, err
    advised = shlex.split(re.findall(r"`(checkpoint-pg import-langgraph [^`]+)`", err)[0])
    assert cli(capsys, *advised[1:], "--no-progress")[0] == 0
    code, out, err = cli(capsys, "threads", "--json", "--url", url)
    assert code == 0 and [t["thread_id"] for t in json.loads(out)["threads"]] == ["old"], err


# -- what a typo or a bad value gets ------------------------------------------------------------


def test_unknown_threads_are_named_not_taken_for_nothing_to_do(
    capsys: pytest.CaptureFixture[str], db: list[str]
) -> None:
    """stats, prune and unlock on a thread id that is not stored say so (exit 1), as
    delete and history do, instead of reporting zeros or "nothing to do"."""
    for argv in (
        ["stats", "--thread", "nosuch"],
        ["prune", "--keep-last", "1", "--thread", "demo", "--thread", "nosuch", "--dry-run"],
        ["prune", "--older-than", "1s", "--thread", "nosuch", "--yes"],
        ["unlock", "nosuch", "--yes"],
    ):
        code, out, err = cli(capsys, *argv, *db)
        assert code == 1 and "no thread 'nosuch'" in err and out == "", (argv, err)
    assert sorted(_thread_ids(capsys, db)) == ["chain", "demo"]


def test_values_that_cannot_be_used_get_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], db: list[str]
) -> None:
    """A duration reaching back before the year 1, a thread id with a lone surrogate (an
    undecodable argument), and a cursor with an offset: one line each, no traceback."""
    for argv, says in (
        (["prune", "--older-than", "99999999999d", "--dry-run"], "before the year 1"),
        (["prune", "--older-than", "1000000d", "--dry-run"], "before the year 1"),
        (["history", "x\udcffy"], "lone surrogate"),
        (["show", "x\udcffy"], "lone surrogate"),
        (["threads", "--cursor", "abc", "--offset", "2"], "page with one of them"),
    ):
        code, out, err = cli(capsys, *argv, *db)
        assert code == 2 and says in err and err.count("\n") == 1 and out == "", (argv, err)


def test_the_empty_thread_id_can_be_inspected(capsys: pytest.CaptureFixture[str], db: list[str]) -> None:
    """The savers store thread "" (as LangGraph's do), so the inspector reads it too."""
    url, prefix = db[1], db[3]
    with _saver_cls(url).from_conn_string(url, prefix=prefix) as saver:
        build_chain(saver).invoke({"log": []}, {"configurable": {"thread_id": ""}})
    for argv in (["history", ""], ["show", ""], ["replay", "", "--json"], ["stats", "--thread", ""]):
        code, _, err = cli(capsys, *argv, *db)
        assert code == 0, (argv, err)


def test_downgrade_says_when_it_cannot_be_one(capsys: pytest.CaptureFixture[str], db: list[str]) -> None:
    """migrate downgrade to the current revision has nothing to do; to a higher one it
    names the upgrade command; neither changes the database."""
    from checkpoint_pg import migrate

    head = migrate.head()
    older = [r for r, _, _ in migrate.history()][-2]
    code, out, _ = cli(capsys, "migrate", "downgrade", head, "--yes", *db)
    assert code == 0 and f"already at {head}: nothing to do" in out
    assert cli(capsys, "migrate", "downgrade", older, "--yes", *db)[0] == 0
    code, _, err = cli(capsys, "migrate", "downgrade", head, "--yes", *db)
    assert code == 2 and f"above the database's revision {older}" in err and "migrate upgrade" in err
    code, out, _ = cli(capsys, "migrate", "current", "--json", *db)
    assert json.loads(out)["current"] == older
    # alembic's relative form counts down from the database's revision
    code, _, err = cli(capsys, "migrate", "downgrade", "-99", "--yes", *db)
    assert code == 2 and "goes below base" in err
    assert cli(capsys, "migrate", "upgrade", *db)[0] == 0
    assert cli(capsys, "migrate", "downgrade", "-1", "--yes", *db)[0] == 0
    code, out, _ = cli(capsys, "migrate", "current", "--json", *db)
    assert json.loads(out)["current"] == older
    # nor does the demo migrate a database that holds data: that is its owner's call
    code, _, err = cli(capsys, "demo", "--thread", "fresh", *db)
    assert code == 1 and f"at schema revision {older}" in err and "checkpoint-pg migrate upgrade" in err
    code, out, _ = cli(capsys, "migrate", "current", "--json", *db)
    assert json.loads(out)["current"] == older


def test_migrate_downgrade_relative_names_the_revision_it_goes_to(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``migrate downgrade -1 --dry-run`` (and its confirmation) say which revision -1 is, not "to -1"."""
    from checkpoint_pg import migrate

    head = migrate.head()
    older = [r for r, _, _ in migrate.history()][-2]
    url = ["--url", str(tmp_path / "m.db")]
    assert cli(capsys, "migrate", "upgrade", *url)[0] == 0
    code, out, _ = cli(capsys, "migrate", "downgrade", "-1", "--dry-run", *url)
    assert code == 0 and f"from {head} to {older}" in out, out
    code, out, _ = cli(capsys, "migrate", "downgrade", "-1", "--dry-run", "--json", *url)
    assert json.loads(out)["downgrade_to"] == older
    code, out, _ = cli(capsys, "migrate", "downgrade", f"-{len(migrate.history())}", "--dry-run", *url)
    assert code == 0 and f"from {head} to <base>" in out and "drops every" in out, out


def test_prune_interrupted_says_how_far_it_got(
    capsys: pytest.CaptureFixture[str], db: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C between two batches of prune --older-than: exit 130, and the message says
    how many stale threads were done (each batch of 100 is its own transaction)."""
    import time

    url, prefix = db[1], db[3]
    cls = _saver_cls(url)
    with cls.from_conn_string(url, prefix=prefix) as saver:
        graph = build_chain(saver)
        for i in range(130):
            graph.invoke({"log": []}, {"configurable": {"thread_id": f"old-{i:03d}"}})
    time.sleep(1.2)
    real_prune, calls = cls.prune, []

    def prune_then_interrupt(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_prune(self, *args, **kwargs)

    monkeypatch.setattr(cls, "prune", prune_then_interrupt)
    code, _, err = cli(capsys, "prune", "--older-than", "1s", "--yes", *db)
    assert code == 130 and "interrupted: 100 of 132 stale threads deleted" in err and "again" in err
    assert len(_thread_ids(capsys, db)) == 32


def test_import_names_the_file_that_is_not_a_database(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """import-langgraph --from a file that is not SQLite blames that file, not --url."""
    bad = tmp_path / "notes.txt"
    bad.write_text("not a database, just text " * 100)
    target = str(tmp_path / "ours.db")
    code, _, err = cli(capsys, "import-langgraph", "--from", str(bad), "--url", target)
    assert code == 2 and "--from" in err and "notes.txt" in err and "ours.db" not in err, err
    assert not Path(target).exists()


# -- read-only databases ---------------------------------------------------------------------

def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_read_commands_on_a_read_only_sqlite_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Every read command (and every --dry-run) works on a 0444 file in a 0555 directory and
    changes no byte, with a run's live lease on the thread for ``unlock --dry-run`` to leave."""
    import sqlite3

    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "app.db"
    populate(str(path), "cpg_")
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(  # an hour from now, in the seconds since the epoch leases use
            "UPDATE cpg_threads SET lease_owner = 'a-run', "
            "lease_until = (julianday('now') - 2440587.5) * 86400.0 + 3600 WHERE thread_id = 'demo'"
        )
    conn.close()
    assert sorted(p.name for p in folder.iterdir()) == ["app.db"]  # closed cleanly: no -wal/-shm
    before = _digest(path)
    path.chmod(0o444)
    folder.chmod(0o555)
    try:
        for argv in READ_COMMANDS:
            code, out, err = cli(capsys, *argv, "--url", str(path))
            assert code == 0, (argv, err)
            if argv[0] == "unlock":
                assert "would break the lease" in out, out
        # root may still create WAL readers' index files (-shm, an empty -wal); nothing is written to them
        extra = [p for p in folder.iterdir() if p.name != "app.db"]
        assert all(p.name in ("app.db-shm", "app.db-wal") for p in extra)
        assert all(p.stat().st_size == 0 for p in extra if p.name.endswith("-wal"))
        assert _digest(path) == before
        # the connection read commands use refuses writes even to root, who ignores chmod
        import argparse

        from checkpoint_pg.cli import open_saver

        args = argparse.Namespace(url=str(path), prefix="cpg_", schema=None)
        with open_saver(args, write=False) as saver:
            with pytest.raises(Exception, match="readonly"):
                saver.delete_thread("demo")
        assert _digest(path) == before
    finally:
        folder.chmod(0o755)
        path.chmod(0o644)


@contextlib.contextmanager
def _without_root() -> Iterator[None]:
    """Run the block with nobody's effective uid when root, who ignores file modes, so that a 0555
    directory is read-only to it as to any user. Modules it needs must be imported beforehand."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


def test_read_commands_on_a_wal_file_in_a_read_only_directory(capsys: pytest.CaptureFixture[str]) -> None:
    """A WAL database copied without its -wal/-shm into a directory the reader cannot write (as on a
    read-only filesystem) is read through SQLite's immutable mode, and the connection stays read-only."""
    import argparse

    from checkpoint_pg.cli import open_saver

    folder = Path(tempfile.mkdtemp(prefix="cpg_ro_"))  # pytest's tmp root is 0700: nobody could not reach it
    path = folder / "app.db"
    argvs = (["threads", "--json"], ["show", "demo", "--json"], ["migrate", "current"])
    args = argparse.Namespace(url=str(path), prefix="cpg_", schema=None)
    try:
        populate(str(path), "cpg_")
        for argv in argvs:  # once as ourselves: imports everything the commands need
            assert cli(capsys, *argv, "--url", str(path))[0] == 0
        with open_saver(args, write=False) as saver, pytest.raises(Exception, match="readonly"):
            saver.delete_thread("demo")
        for extra in folder.glob("app.db-*"):  # the index files a reader made: a copy has none
            assert extra.name == "app.db-shm" or extra.stat().st_size == 0
            extra.unlink()
        before = _digest(path)
        path.chmod(0o444)
        folder.chmod(0o555)
        with _without_root():
            for argv in argvs:
                code, _, err = cli(capsys, *argv, "--url", str(path))
                assert code == 0, (argv, err)
            with open_saver(args, write=False) as saver, pytest.raises(Exception, match="readonly"):
                saver.delete_thread("demo")
        assert sorted(p.name for p in folder.iterdir()) == ["app.db"] and _digest(path) == before
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


@pytest.fixture
def readonly_role(pg_admin_dsn: str, pg_url: str) -> Iterator[str]:
    """A LOGIN role that may only SELECT in the test database; yields its URL."""
    import psycopg
    import sqlalchemy as sa

    role = f"cpg_ro_{secrets.token_hex(4)}"
    dbname = sa.engine.make_url(pg_url).database
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT CONNECT ON DATABASE "{dbname}" TO "{role}"')
        conn.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
    try:
        yield (
            sa.engine.make_url(pg_url).set(username=role, password=None).render_as_string(hide_password=False)
        )
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')


def test_read_commands_as_a_read_only_postgres_role(
    capsys: pytest.CaptureFixture[str], pg_url: str, readonly_role: str
) -> None:
    """Every read command works for a role with SELECT only; a write command fails with one line, exit 1.

    Also: the sessions read commands open are read-only even for a role that could write.
    """
    import psycopg

    prefix = f"r{secrets.token_hex(4)}_"
    populate(pg_url, prefix)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        role = readonly_role.split("://", 1)[1].split("@", 1)[0]
        for table in ("threads", "checkpoints", "channel_values", "writes", "objects", "alembic_version"):
            conn.execute(f'GRANT SELECT ON "{prefix}{table}" TO "{role}"')
    for argv in READ_COMMANDS:
        code, out, err = cli(capsys, *argv, "--url", readonly_role, "--prefix", prefix)
        assert code == 0, (argv, err)
    code, _, err = cli(capsys, "delete", "demo", "--yes", "--url", readonly_role, "--prefix", prefix)
    assert code == 1 and err.count("\n") == 1 and "permission denied" in err
    # a migration refused through SQLAlchemy: the driver's one line, not SQLAlchemy's
    # text with the whole statement in it
    code, _, err = cli(capsys, "migrate", "downgrade", "0010", "--yes", "--url", readonly_role, "--prefix", prefix)
    assert code == 1 and err.count("\n") == 1 and "[SQL:" not in err and len(err) < 400, err

    import argparse

    from checkpoint_pg.cli import open_saver

    args = argparse.Namespace(url=pg_url, prefix=prefix, schema=None)  # the superuser
    with open_saver(args, write=False) as saver:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            saver.delete_thread("demo")
    code, out, _ = cli(capsys, "threads", "--json", "--url", pg_url, "--prefix", prefix)
    assert "demo" in out


def test_a_saver_whose_role_lacks_rights_raises_our_error_saying_what_to_grant(
    capsys: pytest.CaptureFixture[str], pg_url: str, readonly_role: str
) -> None:
    """A saver (and the CLI's commands that open one) on a role that may not read the tables,
    or only read them: the package's error, naming the driver's refusal and the rights a
    saver's role needs, not psycopg's InsufficientPrivilege; nothing is changed."""
    import psycopg

    from checkpoint_pg import CheckpointPgError, PostgresSaver

    prefix = f"r{secrets.token_hex(4)}_"
    populate(pg_url, prefix)
    config = {"configurable": {"thread_id": "demo", "checkpoint_ns": ""}}
    with PostgresSaver.from_conn_string(readonly_role, prefix=prefix) as saver:
        with pytest.raises(CheckpointPgError, match="permission denied") as refused:
            saver.get_tuple(config)
    assert not isinstance(refused.value, psycopg.Error)
    assert "SELECT, INSERT, UPDATE and DELETE on the tables" in str(refused.value)
    code, _, err = cli(capsys, "threads", "--url", readonly_role, "--prefix", prefix)
    assert code == 1 and err.count("\n") == 1 and "InsufficientPrivilege" not in err, err
    assert "may not use checkpoint_pg's tables" in err, err
    role = readonly_role.split("://", 1)[1].split("@", 1)[0]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for table in ("threads", "checkpoints", "channel_values", "writes", "objects", "alembic_version"):
            conn.execute(f'GRANT SELECT ON "{prefix}{table}" TO "{role}"')
    with PostgresSaver.from_conn_string(readonly_role, prefix=prefix) as saver:
        assert saver.get_tuple(config) is not None  # reads now
        with pytest.raises(CheckpointPgError, match="may not use checkpoint_pg's tables"):
            saver.delete_thread("demo")
    with PostgresSaver.from_conn_string(pg_url, prefix=prefix) as owner:
        assert owner.get_tuple(config) is not None  # nothing was deleted


def test_a_refused_downgrade_advises_the_downgrade_as_another_role(
    capsys: pytest.CaptureFixture[str], pg_url: str, readonly_role: str
) -> None:
    """A role that may not alter the tables, refused a downgrade: the command it is told to run
    as another role is that downgrade, not an upgrade (which would move the other way)."""
    import psycopg

    prefix = f"r{secrets.token_hex(4)}_"
    populate(pg_url, prefix)
    role = readonly_role.split("://", 1)[1].split("@", 1)[0]
    with psycopg.connect(pg_url, autocommit=True) as conn:  # it may read which revision it is at
        conn.execute(f'GRANT SELECT ON "{prefix}alembic_version" TO "{role}"')
    code, _, err = cli(capsys, "migrate", "downgrade", "0010", "--yes", "--url", readonly_role, "--prefix", prefix)
    assert code == 1 and "may not change checkpoint_pg's tables" in err, err
    assert f"checkpoint-pg migrate downgrade 0010 --url <that role's url> --prefix {prefix}" in err, err
    assert "migrate upgrade" not in err, err


def test_migrate_commands_by_a_role_that_may_not_read_the_revision_say_what_to_grant(
    capsys: pytest.CaptureFixture[str], pg_url: str, readonly_role: str
) -> None:
    """migrate current / upgrade / downgrade by a role without USAGE on the tables' schema, then
    without SELECT on the version table: our one-line error naming the right it lacks and the
    GRANT giving it, not the driver's InsufficientPrivilege; granted, the commands work."""
    import psycopg

    schema, role = f"s{secrets.token_hex(4)}", readonly_role.split("://", 1)[1].split("@", 1)[0]
    assert cli(capsys, "migrate", "upgrade", "--url", pg_url, "--schema", schema)[0] == 0
    commands = (["current"], ["upgrade"], ["upgrade", "--dry-run"], ["downgrade", "base", "--yes"])
    try:
        for grant, missing in (
            (f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"', f"needs USAGE on schema '{schema}'"),
            (f'GRANT SELECT ON "{schema}"."cpg_alembic_version" TO "{role}"', "needs SELECT on cpg_alembic_version"),
        ):
            for argv in commands:
                code, _, err = cli(capsys, "migrate", *argv, "--url", readonly_role, "--schema", schema)
                assert code == 1 and err.count("\n") == 1 and "InsufficientPrivilege" not in err, (argv, err)
                assert f"this role ({role}) may not read" in err and missing in err and grant in err, (argv, err)
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(grant)
        code, out, err = cli(capsys, "migrate", "current", "--url", readonly_role, "--schema", schema)
        assert code == 0 and "at head" in out, err
        assert cli(capsys, "migrate", "upgrade", "--url", readonly_role, "--schema", schema)[0] == 0
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


# -- the installed command ---------------------------------------------------------------------


def _installed() -> Path:
    exe = Path(sys.executable).parent / ("checkpoint-pg.exe" if os.name == "nt" else "checkpoint-pg")
    if not exe.exists():
        pytest.fail(
            f"the checkpoint-pg command is not installed next to {sys.executable}: "
            "pip install the package (its [project.scripts] entry creates it)"
        )
    return exe


def test_installed_command_end_to_end_on_postgres(pg_url: str) -> None:
    """The installed ``checkpoint-pg`` in a subprocess, database from $CHECKPOINT_PG_URL: migrate, demo, history, replay, delete."""
    exe = _installed()
    prefix = f"e{secrets.token_hex(4)}_"
    env = {**os.environ, "CHECKPOINT_PG_URL": pg_url}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(exe), *argv, "--prefix", prefix],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    # few calls: each one pays the interpreter's and LangGraph's start-up
    assert run("migrate", "current").returncode == 1  # no tables yet
    demo = run("demo")  # creates the tables (setup) and runs the demo thread
    assert demo.returncode == 0, demo.stderr
    assert "paused for approval" in demo.stdout
    assert run("migrate", "current").returncode == 0
    history = run("history", "demo")
    assert history.returncode == 0 and "approval" in history.stdout and "interrupt" in history.stdout
    replay = json.loads(run("replay", "demo", "--json").stdout)
    assert [list(c) for c in replay] == [["agent"], ["__interrupt__"], ["approval"], ["tools"], ["agent"]]
    deleted = run("delete", "demo", "--yes", "--json")
    assert deleted.returncode == 0 and json.loads(deleted.stdout) == {"deleted": "demo", "checkpoints": 6}


def test_output_cut_short_by_its_reader_ends_without_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``checkpoint-pg show demo --json | head -1``: the reader closes the pipe early. The
    command stops quietly with status 1 (its output was cut short) instead of printing
    Python's BrokenPipeError traceback."""
    url = str(tmp_path / "d.db")
    assert cli(capsys, "demo", "--url", url)[0] == 0
    proc = subprocess.Popen(
        [str(_installed()), "show", "demo", "--json", "--url", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read().decode()
    assert proc.wait(120) == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_unlock_breaks_a_live_lease(capsys: pytest.CaptureFixture[str], db: list[str]) -> None:
    """unlock THREAD: says when there is nothing to do, --dry-run shows the lease and
    keeps it, --yes breaks it and the run that held it is refused at its next write."""
    from checkpoint_pg import ThreadBusyError

    url, prefix = db[1], db[3]
    code, out, _ = cli(capsys, "unlock", "chain", "--json", *db)
    assert code == 0 and json.loads(out) == {"thread_id": "chain", "lease": None}
    with _saver_cls(url).from_conn_string(url, prefix=prefix) as saver:
        chain = build_chain(saver)
        config = {"configurable": {"thread_id": "chain"}}
        with saver.lease(config, ttl=3600):
            code, out, _ = cli(capsys, "unlock", "chain", "--dry-run", *db)
            assert code == 0 and "would break the lease on thread 'chain'" in out
            assert cli(capsys, "unlock", "chain", *db)[0] == 2  # asks, no terminal
            chain.invoke({"log": []}, config)  # the lease still holds: the run goes on
            code, out, _ = cli(capsys, "unlock", "chain", "--yes", "--json", *db)
            assert code == 0 and json.loads(out) == {"thread_id": "chain", "broken": True}
            with pytest.raises(ThreadBusyError, match="is gone"):
                chain.invoke({"log": []}, config)


# -- reviewer's UX findings --------------------------------------------------------------------


class Chat(TypedDict, total=False):
    messages: Annotated[list[Any], add_messages]
    note: str


def _chat_graph(saver: Any, reply: Any) -> Any:
    """START -> reply -> END over `Chat` (messages by add_messages, a plain str note)."""
    from langgraph.graph import END, START, StateGraph

    builder = StateGraph(Chat)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    return builder.compile(checkpointer=saver)


def test_json_messages_keep_every_non_empty_field(capsys: pytest.CaptureFixture[str], db: list[str]) -> None:
    """--json of show/history/replay/diff keeps every non-empty message field (status, artifact,
    response_metadata, usage_metadata, additional_kwargs, tool_call_id, name), not just role and content."""
    from langchain_core.messages import AIMessage, ToolMessage

    def reply(_: Chat) -> Chat:
        return {
            "messages": [
                AIMessage(
                    "checking",
                    id="ai-1",
                    name="bot",
                    tool_calls=[{"name": "lookup", "args": {"q": 1}, "id": "call-1"}],
                    additional_kwargs={"refusal": "no"},
                    response_metadata={"model_name": "m-1", "finish_reason": "tool_calls"},
                    usage_metadata={"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
                ),
                ToolMessage("boom", id="tool-1", tool_call_id="call-1", name="lookup", status="error",
                            artifact={"rows": [1, 2]}),
            ]
        }

    with _saver_cls(db[1]).from_conn_string(db[1], prefix=db[3]) as saver:
        _chat_graph(saver, reply).invoke({"note": "x"}, {"configurable": {"thread_id": "rich"}})

    def check(msgs: list[dict[str, Any]]) -> None:
        ai, tool = msgs
        assert ai["name"] == "bot" and ai["additional_kwargs"] == {"refusal": "no"}
        assert ai["response_metadata"] == {"model_name": "m-1", "finish_reason": "tool_calls"}
        assert ai["usage_metadata"] == {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}
        assert ai["tool_calls"][0]["args"] == {"q": 1} and "status" not in ai
        assert tool["status"] == "error" and tool["artifact"] == {"rows": [1, 2]}
        assert tool["tool_call_id"] == "call-1" and tool["name"] == "lookup"
        assert "additional_kwargs" not in tool  # empty fields stay out

    code, out, err = cli(capsys, "show", "rich", "--json", *db)
    assert code == 0, err
    check(json.loads(out)["values"]["messages"])
    code, out, _ = cli(capsys, "history", "rich", "--json", *db)
    check(json.loads(out)[-1]["updates"]["reply"]["messages"])
    code, out, _ = cli(capsys, "replay", "rich", "--json", *db)
    check(json.loads(out)[-1]["reply"]["messages"])
    code, out, _ = cli(capsys, "diff", "rich@-1", "rich", "--json", *db)
    (msgs,) = [c for c in json.loads(out)["channels"] if c["channel"] == "messages"]
    check(msgs["added"])
    code, out, _ = cli(capsys, "show", "rich", *db)
    assert "usage_metadata" not in out and "tool[lookup]: boom" in out  # tables stay compact


def test_diff_shows_where_long_values_differ(
    capsys: pytest.CaptureFixture[str], db: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message changed under one id (~) and a changed str (-/+) that differ only past the
    terminal width: diff cuts both sides around the first difference, so the change shows."""
    from langchain_core.messages import AIMessage

    monkeypatch.setenv("COLUMNS", "80")
    long = "lorem ipsum " * 20
    with _saver_cls(db[1]).from_conn_string(db[1], prefix=db[3]) as saver:
        graph = _chat_graph(saver, lambda s: {"note": s["note"]})
        for end in ("ALPHA", "OMEGA"):
            text = f"{long}ends {end} here"
            graph.invoke(
                {"messages": [AIMessage(text, id="m1")], "note": text},
                {"configurable": {"thread_id": "long"}},
            )
    code, out, err = cli(capsys, "diff", "long@-2", "long", *db)
    assert code == 0, err
    lines = out.splitlines()
    (i,) = [i for i, line in enumerate(lines) if "~ " in line]
    assert "ALPHA" in lines[i] and "-> " in lines[i + 1] and "OMEGA" in lines[i + 1], out
    assert sum("ALPHA" in line for line in lines) == 2 and sum("OMEGA" in line for line in lines) == 2  # note
    assert max(len(line) for line in out.splitlines()) <= 80


def test_history_limit_below_one_is_a_usage_error_naming_the_option(
    capsys: pytest.CaptureFixture[str], db: list[str]
) -> None:
    """history --limit 0 (or -1) exits 2 naming --limit and what it takes, not the inspector's
    'positive int or None' (a Python value no command line can pass)."""
    for bad in ("0", "-1"):
        code, out, err = cli(capsys, "history", "demo", "--limit", bad, *db)
        assert code == 2 and out == "", err
        assert f"--limit must be 1 or more (leave it out for every entry), got {bad}" in err
        assert "None" not in err
    code, out, _ = cli(capsys, "history", "demo", "--limit", "1", "--json", *db)
    assert code == 0 and len(json.loads(out)) == 1


def test_ns_takes_a_unique_prefix_and_history_prints_one(
    capsys: pytest.CaptureFixture[str], db: list[str]
) -> None:
    """--ns takes a unique prefix of a subgraph namespace (history, show, replay, diff); an ambiguous or
    unknown one is an error listing the candidates; history prints a prefix --ns accepts."""
    from graphs import build_subgraph_graph
    from langgraph.types import Command

    with _saver_cls(db[1]).from_conn_string(db[1], prefix=db[3]) as saver:
        graph = build_subgraph_graph(saver)
        config = {"configurable": {"thread_id": "sub"}}
        graph.invoke({"topic": "Tea"}, config)
        graph.invoke(Command(resume="hint"), config)
        graph.invoke({"topic": "Two"}, config)  # a second child namespace
    code, out, _ = cli(capsys, "history", "sub", "--json", *db)
    namespaces = sorted({e["checkpoint_ns"] for e in json.loads(out)} - {""})
    assert len(namespaces) == 2 and all(ns.startswith("child:") for ns in namespaces)

    code, _, err = cli(capsys, "history", "sub", "--ns", "child", *db)
    assert code == 2 and all(ns in err for ns in namespaces) and err.count("\n") == 1, err
    code, _, err = cli(capsys, "history", "sub", "--ns", "nope", *db)
    assert code == 1 and "nope" in err and all(ns in err for ns in namespaces), err

    code, out, _ = cli(capsys, "history", "sub", *db)
    assert code == 0
    for ns in namespaces:
        (shown,) = {m for m in re.findall(r"child:\w+", out) if ns.startswith(m)}
        assert shown != "child:" and not any(o.startswith(shown) for o in namespaces if o != ns)
        code, out_ns, err = cli(capsys, "history", "sub", "--ns", shown, "--json", *db)
        assert code == 0 and {e["checkpoint_ns"] for e in json.loads(out_ns)} == {ns}, err
        for argv in (["show", "sub"], ["replay", "sub"], ["diff", "sub@-1", "sub"]):
            code, _, err = cli(capsys, *argv, "--ns", shown, *db)
            assert code == 0, (argv, err)
        code, out_show, _ = cli(capsys, "show", "sub", "--ns", shown, "--json", *db)
        assert json.loads(out_show)["checkpoint_ns"] == ns


def test_migrate_sql_refuses_a_backward_range(capsys: pytest.CaptureFixture[str]) -> None:
    """migrate sql --from A --to B with A not below B is a usage error naming both (it printed nothing)."""
    for start, end in (("0005", "0003"), ("0003", "0003"), ("head", "0003")):
        code, out, err = cli(capsys, "migrate", "sql", "--dialect", "sqlite", "--from", start, "--to", end)
        assert code == 2 and out == "" and start in err and end in err and err.count("\n") == 1, err
    code, out, _ = cli(capsys, "migrate", "sql", "--dialect", "sqlite", "--from", "0003", "--to", "0004")
    assert code == 0 and "0004" in out


def test_migrate_upgrade_dry_run_says_what_from_the_current_revision(
    capsys: pytest.CaptureFixture[str], db: list[str], tmp_path: Path
) -> None:
    """migrate upgrade --dry-run reads the database's revision: "would upgrade OLD -> HEAD", or
    "already at head", or from <none> on a database without our tables; it changes nothing."""
    from checkpoint_pg import migrate

    head = migrate.head()
    code, out, _ = cli(capsys, "migrate", "upgrade", "--dry-run", *db)
    assert code == 0 and f"already at {head}" in out and "would upgrade" not in out
    assert cli(capsys, "migrate", "downgrade", "0007", "--yes", *db)[0] == 0
    code, out, _ = cli(capsys, "migrate", "upgrade", "--dry-run", *db)
    assert code == 0 and "would upgrade" in out and f"0007 -> {head}" in out
    code, out, _ = cli(capsys, "migrate", "upgrade", "0008", "--dry-run", "--json", *db)
    assert code == 0 and json.loads(out) == {"dry_run": True, "from": "0007", "to": "0008"}
    code, out, _ = cli(capsys, "migrate", "upgrade", "0005", "--dry-run", *db)
    assert code == 0 and "already at 0007, at or past 0005" in out
    assert cli(capsys, "migrate", "current", *db)[0] == 1  # still 0007
    code, _, err = cli(capsys, "threads", *db)
    assert code == 1 and f"at revision 0007, this checkpoint_pg needs {head}: run `checkpoint-pg migrate" in err
    assert "saver.setup" not in err and "<your" not in err
    code, out, _ = cli(capsys, "migrate", "upgrade", "--dry-run", "--url", str(tmp_path / "none.db"))
    assert code == 0 and f"<none> -> {head}" in out and not (tmp_path / "none.db").exists()


def test_delete_and_prune_warn_about_a_live_lease(capsys: pytest.CaptureFixture[str], db: list[str]) -> None:
    """delete and prune of a thread a running run holds (saver.lease) warn on stderr that the run will
    fail, and still ask for confirmation (--yes proceeds)."""
    url, prefix = db[1], db[3]
    with _saver_cls(url).from_conn_string(url, prefix=prefix) as saver:
        with saver.lease({"configurable": {"thread_id": "chain"}}, ttl=3600):
            for argv in (["delete", "chain", "--dry-run"], ["prune", "--older-than", "0s", "--dry-run"]):
                code, _, err = cli(capsys, *argv, *db)
                assert code == 0 and "thread 'chain' is leased by a running run" in err, (argv, err)
                assert "fail" in err and "'demo'" not in err
            code, _, err = cli(capsys, "prune", "--keep-last", "1", "--dry-run", *db)
            assert code == 0 and err == ""  # trimming leaves the run going (checked below)
            assert cli(capsys, "prune", "--keep-last", "1", "--yes", *db)[0] == 0
            build_chain(saver).invoke({"log": []}, {"configurable": {"thread_id": "chain"}})
            code, _, err = cli(capsys, "delete", "chain", *db)  # asks, no terminal
            assert code == 2 and "leased by a running run" in err and "--yes" in err
            code, _, err = cli(capsys, "delete", "demo", "--dry-run", *db)
            assert code == 0 and "leased" not in err
            code, out, err = cli(capsys, "delete", "chain", "--yes", *db)
            assert code == 0 and "leased by a running run" in err and "deleted thread 'chain'" in out


def test_errors_name_the_cli_command_to_run(
    capsys: pytest.CaptureFixture[str], backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A database without our tables: the error names `checkpoint-pg migrate upgrade` with the URL
    (password masked) and the --prefix/--schema given, not saver.setup() nor a placeholder URL."""
    if backend == "sqlite":
        path = tmp_path / "empty dir" / "e.db"
        path.parent.mkdir()
        path.touch()
        url, shown, extra = str(path), str(path), []
    else:
        import sqlalchemy as sa

        pg = sa.engine.make_url(request.getfixturevalue("pg_url"))
        url = pg.set(password="s3cret").render_as_string(hide_password=False)  # trust: ignored
        shown, extra = sa.engine.make_url(url).render_as_string(hide_password=True), ["--schema", "nosuch"]
    prefix = f"e{secrets.token_hex(4)}_"
    for argv in (["threads"], ["history", "x"], ["stats", "--json"], ["delete", "x", "--yes"]):
        code, _, err = cli(capsys, *argv, "--url", url, "--prefix", prefix, *extra)
        assert code == 1 and err.count("\n") == 1, (argv, err)
        options = f"--url {shlex.quote(shown)} --prefix {prefix}{' --schema nosuch' if extra else ''}"
        assert f"`checkpoint-pg migrate upgrade {options}`" in err, (argv, err)
        assert "saver.setup" not in err and "<your" not in err and "s3cret" not in err


def test_threads_size_is_the_stats_bytes(capsys: pytest.CaptureFixture[str], db: list[str]) -> None:
    """threads and stats report one size per thread (one computation), in JSON and in the tables."""
    code, out, _ = cli(capsys, "threads", "--json", *db)
    sizes = {t["thread_id"]: t["bytes"] for t in json.loads(out)["threads"]}
    code, out, _ = cli(capsys, "stats", "--json", *db)
    assert sizes == {t["thread_id"]: t["bytes"] for t in json.loads(out)["threads"]}
    threads_table, stats_table = cli(capsys, "threads", *db)[1], cli(capsys, "stats", *db)[1]
    for line in threads_table.splitlines():
        if line.strip().startswith("demo"):
            size = re.findall(r"\d+\.\d (?:KiB|MiB)|\d+ B", line)[0]
            assert size in [ln for ln in stats_table.splitlines() if ln.strip().startswith("demo")][0]


def test_migrate_sql_needs_to_know_the_database_kind(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --url, $CHECKPOINT_PG_URL or --dialect, migrate sql asks which DDL to print;
    --schema with SQLite is refused (SQLite has no schemas)."""
    monkeypatch.delenv("CHECKPOINT_PG_URL", raising=False)
    code, out, err = cli(capsys, "migrate", "sql")
    assert code == 2 and "--dialect" in err and out == ""
    code, out, _ = cli(capsys, "migrate", "sql", "--dialect", "postgresql")
    assert code == 0 and "CREATE TABLE" in out
    code, out, err = cli(capsys, "migrate", "sql", "--dialect", "sqlite", "--schema", "app")
    assert code == 2 and "SQLite has no schemas" in err and out == ""


def test_migrate_upgrade_with_a_schema_on_sqlite_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = str(tmp_path / "s.db")
    code, _, err = cli(capsys, "migrate", "upgrade", "--url", path, "--schema", "app")
    assert code == 2 and "SQLite has no schemas" in err
    assert not Path(path).exists()


# -- found in review: hints to copy, counts, what show and diff leave out ------------------------


def test_threads_next_page_command_keeps_filter_size_and_database(
    capsys: pytest.CaptureFixture[str], db: list[str]
) -> None:
    """The "more:" line of a filtered page, run as printed, prints the next page of the same listing,
    on the same database (not the unfiltered threads of the default file)."""
    for t in ("c2", "c3"):
        assert cli(capsys, "copy", "chain", t, "--yes", *db)[0] == 0
    # chain, c2 and c3 ended at step 3; demo at step 4
    code, out, _ = cli(capsys, "threads", "--filter", "step=3", "--limit", "2", "--no-sizes", *db)
    more = [line for line in out.splitlines() if line.startswith("more: ")]
    assert code == 0 and len(more) == 1, out
    argv = shlex.split(more[0][len("more: ") :])
    assert argv[0] == "checkpoint-pg"
    code, out, err = cli(capsys, *argv[1:], "--json")
    assert code == 0, err
    page = json.loads(out)["threads"]
    first = json.loads(cli(capsys, "threads", "--filter", "step=3", "--limit", "2", "--json", *db)[1])["threads"]
    assert len(page) == 1 and page[0]["metadata"]["step"] == 3, page
    assert {t["thread_id"] for t in first + page} == {"chain", "c2", "c3"}
    assert page[0]["checkpoints"] is None  # --no-sizes kept


def test_prune_counts_a_thread_named_twice_once(capsys: pytest.CaptureFixture[str], db: list[str]) -> None:
    """--thread T --thread T: the dry run and the run say what is done to T once."""
    argv = ("prune", "--keep-last", "1", "--thread", "demo", "--thread", "demo", "--json", *db)
    code, out, _ = cli(capsys, *argv, "--dry-run")
    plan = json.loads(out)["trim_threads"]
    assert code == 0 and [(p["thread_id"], p["delete_at_most"]) for p in plan] == [("demo", 5)], plan
    code, out, _ = cli(capsys, *argv, "--yes")
    assert code == 0 and len(json.loads(out)["trim_threads"]) == 1


def test_diff_lists_every_element_of_a_removed_list(capsys: pytest.CaptureFixture[str], db: list[str]) -> None:
    """A list channel B lacks shows all of A's elements as removed, as an added one shows all of B's."""
    code, out, _ = cli(capsys, "diff", "chain", "demo", *db)
    assert code == 0 and all(f'- "{n}"' in out for n in "abc"), out
    code, out, _ = cli(capsys, "diff", "chain", "demo", "--json", *db)
    log = next(c for c in json.loads(out)["channels"] if c["channel"] == "log")
    assert log["status"] == "removed" and log["removed"] == ["a", "b", "c"]


def test_show_prints_the_error_a_node_stored(
    capsys: pytest.CaptureFixture[str], db: list[str], saver_target: Any
) -> None:
    """A run that failed stops at a checkpoint whose pending write is the node's error: show says it."""
    from langgraph.graph import END, START, StateGraph

    class S(TypedDict, total=False):
        x: int

    def boom(state: S) -> S:
        raise ValueError("kaput")

    url, prefix = db[1], db[3]
    b = StateGraph(S)
    b.add_node("boom", boom)
    b.add_edge(START, "boom")
    b.add_edge("boom", END)
    with _saver_cls(url).from_conn_string(url, prefix=prefix) as saver:
        with pytest.raises(ValueError):
            b.compile(checkpointer=saver).invoke({"x": 1}, {"configurable": {"thread_id": "failed"}})
    code, out, _ = cli(capsys, "show", "failed", *db)
    assert code == 0 and "boom" in out and "kaput" in out, out
    code, out, _ = cli(capsys, "show", "failed", "--json", *db)
    assert "kaput" in str(json.loads(out)["errors"]["boom"])


def test_demo_says_how_to_read_its_thread_on_these_tables(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The command demo suggests runs as printed: on its database, prefix included, quoted."""
    url = str(tmp_path / "a dir.db")
    code, out, _ = cli(capsys, "demo", "--url", url, "--prefix", "mine_", "--thread", "my thread")
    hint = next(line for line in out.splitlines() if line.startswith("now try: "))
    argv = shlex.split(hint[len("now try: ") :])
    code, out, err = cli(capsys, *argv[1:], "--json")
    assert code == 0 and json.loads(out), err


def test_migrate_upgrade_dry_run_and_run_agree_on_the_revision(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An unknown revision is refused alike with and without --dry-run (exit 2, no SQLite file made
    for it); +N, which alembic takes, is planned by the dry run as the run then does it."""
    path = tmp_path / "m.db"
    url = ["--url", str(path)]
    for dry in (["--dry-run"], []):
        code, _, err = cli(capsys, "migrate", "upgrade", "nosuch", *dry, *url)
        assert code == 2 and "unknown revision 'nosuch'" in err, err
    assert not path.exists()
    assert cli(capsys, "migrate", "upgrade", "0003", *url)[0] == 0
    code, out, err = cli(capsys, "migrate", "upgrade", "+1", "--dry-run", "--json", *url)
    assert code == 0 and json.loads(out)["to"] == "0004", err
    code, out, _ = cli(capsys, "migrate", "upgrade", "+1", "--json", *url)
    assert code == 0 and json.loads(out) == {"from": "0003", "to": "0004"}
    # a prefix of several revisions is named as such, with what it starts
    for action in ("upgrade", "downgrade"):
        code, _, err = cli(capsys, "migrate", action, "00", "--dry-run", *url)
        assert code == 2 and "revision '00' is ambiguous: it starts 0001, 0002," in err, err


def test_a_subgraph_checkpoint_id_is_named_with_its_namespace(
    capsys: pytest.CaptureFixture[str], db: list[str]
) -> None:
    """An id history printed on a subgraph's row, given to show without --ns: the error names the
    --ns to pass (it said "see its ids with `checkpoint-pg history`", where the id came from)."""
    from langgraph.types import Command

    from graphs import build_subgraph_graph

    url, prefix = db[1], db[3]
    with _saver_cls(url).from_conn_string(url, prefix=prefix) as saver:
        g = build_subgraph_graph(saver)
        config = {"configurable": {"thread_id": "nested"}}
        g.invoke({"topic": "x"}, config)
        g.invoke(Command(resume="h"), config)
    entries = json.loads(cli(capsys, "history", "nested", "--json", *db)[1])
    child = next(e for e in entries if e["checkpoint_ns"])
    code, _, err = cli(capsys, "show", "nested", child["checkpoint_id"][-12:], *db)
    assert code == 1 and "--ns " in err and child["checkpoint_ns"] in err, err
    argv = shlex.split(err.split("--ns ", 1)[1].rstrip(")\n"))
    code, out, err = cli(capsys, "show", "nested", child["checkpoint_id"][-12:], "--ns", argv[0], "--json", *db)
    assert code == 0 and json.loads(out)["checkpoint_id"] == child["checkpoint_id"], err


def test_vacuum_gives_a_deleted_threads_space_back(
    capsys: pytest.CaptureFixture[str], db: list[str], backend: str
) -> None:
    """vacuum after delete: the SQLite file shrinks (its WAL cut to nothing); on Postgres
    the space is marked free, and --full shrinks the tables. No thread changes."""
    from graphs import build_tool_agent, weather_question

    url, prefix = db[1], db[3]
    with _saver_cls(url).from_conn_string(url, prefix=prefix) as saver:
        agent = build_tool_agent(saver)
        for city in ("Paris", "Rome", "Oslo", "Lima") * 5:
            agent.invoke(weather_question(city), {"configurable": {"thread_id": "big"}})
    _, before, _ = cli(capsys, "history", "chain", "--json", *db)
    assert cli(capsys, "delete", "big", "--yes", *db)[0] == 0
    code, out, _ = cli(capsys, "vacuum", "--json", *db)
    assert code == 0, out
    report = json.loads(out)
    if backend == "sqlite":
        assert report["full"] and report["bytes_after"] < report["bytes_before"], report
        assert not report["wal_pending"]
        assert os.path.getsize(url) == report["bytes_after"]
        assert not os.path.exists(f"{url}-wal") or os.path.getsize(f"{url}-wal") == 0
    else:
        assert not report["full"] and report["bytes_after"] > 0, report
        code, out, _ = cli(capsys, "vacuum", "--full", *db)
        assert code == 0 and out.startswith("vacuumed (rewrote the tables): "), out
        code, out, _ = cli(capsys, "vacuum", "--full", "--json", *db)
        assert json.loads(out)["freed"] == 0  # nothing left to give back
    _, after, _ = cli(capsys, "history", "chain", "--json", *db)
    assert after == before


def test_a_wrong_prefix_names_the_prefix_the_database_holds(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A command given the wrong --prefix (or none, for an app's prefix=) was told to run
    `migrate upgrade` with it, which would create a second, empty set of tables beside the
    app's: it names the prefix the database holds. An app's own alembic_version beside
    tables of other names is not taken for ours."""
    import sqlite3

    from checkpoint_pg import SqliteSaver

    path = str(tmp_path / "app.db")
    with SqliteSaver.from_conn_string(path, prefix="app_") as saver:
        saver.setup()
    with sqlite3.connect(path) as conn:  # an app's alembic and the incumbent's checkpoints
        conn.execute("CREATE TABLE alembic_version (version_num TEXT)")
        conn.execute("CREATE TABLE checkpoints (thread_id TEXT)")
    code, _, err = cli(capsys, "threads", "--url", path)
    assert code == 1 and "with the prefix app_: pass --prefix app_" in err, err
    assert "prefix ," not in err and "prefix cpg_" not in err, err
    code, out, err = cli(capsys, "threads", "--url", path, "--prefix", "app_")
    assert code == 0, err
