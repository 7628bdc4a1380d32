"""Reading back the checkpoint this process put last.

On SQLite such a read takes only the checkpoint's row and its writes from the
database, and the values from the process's cache (`ops.get_tuple`, `Head`), as
long as the row is still the one put. These tests change the row, its writes and
the thread from another saver, and change what the reader was given, and check
that every read returns what a fresh process reads. On Postgres the same reads
take the usual path and must agree just the same.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import empty_checkpoint


class Chain:
    """Puts checkpoints of one thread through one saver, each with the given changes."""

    def __init__(self, saver: Any, thread_id: str) -> None:
        self.saver = saver
        self.config: dict[str, Any] = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        self.versions: dict[str, Any] = {}
        self.values: dict[str, Any] = {}
        self.step = 0

    def put(self, **changes: Any) -> dict[str, Any]:
        cp = empty_checkpoint()
        new_versions = {}
        for ch, value in changes.items():
            self.versions[ch] = new_versions[ch] = self.saver.get_next_version(self.versions.get(ch), None)
            self.values[ch] = value
        cp["channel_values"] = dict(self.values)
        cp["channel_versions"] = dict(self.versions)
        self.config = self.saver.put(self.config, cp, {"source": "loop", "step": self.step}, new_versions)
        self.step += 1
        return self.config


def _same(got: Any, want: Any) -> None:
    assert got is not None and want is not None
    assert got.config == want.config
    assert got.checkpoint == want.checkpoint
    assert got.metadata == want.metadata
    assert got.parent_config == want.parent_config
    assert got.pending_writes == want.pending_writes


def _thread() -> str:
    return f"held-{uuid.uuid4().hex[:8]}"


def _fill(chain: Chain) -> dict[str, Any]:
    chain.put(messages=[HumanMessage("hi", id="h1")], step=0)
    cfg = chain.put(
        messages=[HumanMessage("hi", id="h1"), AIMessage("hello", id="a1")],
        step=1,
        state={"notes": ["a", "b"], "n": 1},
    )
    chain.saver.put_writes(cfg, [("messages", [AIMessage("next", id="a2")]), ("step", 2)], "task-1")
    return cfg


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_read_of_the_checkpoint_just_put_sends_its_row_and_writes_only(
    saver: Any, make_saver: Any
) -> None:
    """The step after a put (and the next run of the thread) reads back what it put:
    one statement, which reads neither the values nor the objects, outside a
    transaction, and returns what a fresh process reads."""
    cfg = _fill(Chain(saver, _thread()))
    sent: list[str] = []
    saver.conn.set_trace_callback(sent.append)
    try:
        by_id = saver.get_tuple(cfg)
        latest = saver.get_tuple({"configurable": {**cfg["configurable"], "checkpoint_id": None}})
    finally:
        saver.conn.set_trace_callback(None)
    reads = [s for s in sent if s.lstrip().upper().startswith(("WITH", "SELECT"))]
    assert len(reads) == 2 and len(sent) == 2, sent
    assert not any("channel_values" in s or "objects" in s for s in reads), reads
    with make_saver() as cold:
        want = cold.get_tuple(cfg)
    _same(by_id, want)
    _same(latest, want)
    assert want.pending_writes and want.checkpoint["channel_values"]["state"] == {"notes": ["a", "b"], "n": 1}


@pytest.mark.parametrize("change", ["values", "one more channel"])
def test_a_checkpoint_put_again_by_another_saver_reads_as_it_put_it(
    saver: Any, make_saver: Any, change: str
) -> None:
    """Another process puts the same checkpoint id again, with other values, or with
    the same ones and one channel more: the reader returns the row as it is now."""
    thread = _thread()
    mine = Chain(saver, thread)
    cfg = _fill(mine)
    cp = empty_checkpoint()
    cp["id"] = cfg["configurable"]["checkpoint_id"]
    with make_saver() as other:
        if change == "values":
            cp["channel_values"] = {"messages": [HumanMessage("other", id="o1")], "step": 7}
            cp["channel_versions"] = {ch: other.get_next_version(None, None) for ch in ("messages", "step")}
            new_versions = dict(cp["channel_versions"])
        else:
            new_versions = {"extra": other.get_next_version(None, None)}
            cp["channel_values"] = {**mine.values, "extra": {"x": [1]}}
            cp["channel_versions"] = {**mine.versions, **new_versions}
        parent = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        other.put(parent, cp, {"source": "update", "step": 9}, new_versions)
        want = other.get_tuple(cfg)
    got = saver.get_tuple(cfg)
    _same(got, want)
    assert got.metadata["step"] == 9
    if change == "values":
        assert got.checkpoint["channel_values"]["messages"] == [HumanMessage("other", id="o1")]
    else:
        assert got.checkpoint["channel_values"]["extra"] == {"x": [1]}


def test_writes_another_saver_adds_are_read_with_their_values(saver: Any, make_saver: Any) -> None:
    cfg = _fill(Chain(saver, _thread()))
    big = {"text": "x" * 5000}  # an object too large for the cache of small ones
    with make_saver() as other:
        other.put_writes(cfg, [("messages", [AIMessage("theirs", id="t9")]), ("state", big)], "task-2")
        want = other.get_tuple(cfg)
    got = saver.get_tuple(cfg)
    _same(got, want)
    assert ("task-2", "state", big) in got.pending_writes


def test_what_a_read_returns_is_the_callers_to_change(saver: Any) -> None:
    """Changing the lists and dicts a read returned changes nothing the next read returns."""
    cfg = _fill(Chain(saver, _thread()))
    first = saver.get_tuple(cfg)
    values = first.checkpoint["channel_values"]
    values["messages"].append(AIMessage("mine", id="m9"))
    values["state"]["notes"].append("c")
    values["state"]["n"] = 99
    first.pending_writes[0][2].clear()  # the messages written: a list
    first.checkpoint["channel_versions"]["messages"] = "changed"
    again = saver.get_tuple(cfg)
    assert again.checkpoint["channel_values"]["state"] == {"notes": ["a", "b"], "n": 1}
    assert [m.id for m in again.checkpoint["channel_values"]["messages"]] == ["h1", "a1"]
    assert again.checkpoint["channel_versions"]["messages"] != "changed"
    assert [w[1] for w in again.pending_writes] == ["messages", "step"]
    assert again.pending_writes[0][2] == [AIMessage("next", id="a2")]


def test_a_thread_deleted_or_moved_on_elsewhere_reads_as_it_is(saver: Any, make_saver: Any) -> None:
    """Another process deletes the thread: no checkpoint. It starts the thread again
    with a newer checkpoint: the latest read returns that one."""
    thread = _thread()
    cfg = _fill(Chain(saver, thread))
    latest = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    assert saver.get_tuple(latest).config == cfg
    with make_saver() as other:
        other.delete_thread(thread)
        assert saver.get_tuple(cfg) is None
        assert saver.get_tuple(latest) is None
        theirs = Chain(other, thread)
        new_cfg = theirs.put(messages=[HumanMessage("again", id="g1")])
        want = other.get_tuple(latest)
    got = saver.get_tuple(latest)
    assert got.config == new_cfg
    _same(got, want)
    assert saver.get_tuple(cfg) is None


def test_a_thread_pruned_elsewhere_reads_and_grows_as_stored(saver: Any, make_saver: Any) -> None:
    """Another saver prunes the thread down to its newest checkpoint: the reader reads
    it as a fresh process does, and the checkpoint it puts next reads back whole."""
    thread = _thread()
    mine = Chain(saver, thread)
    cfg = _fill(mine)
    with make_saver() as other:
        other.prune([thread], strategy="keep_latest")
        want = other.get_tuple(cfg)
    _same(saver.get_tuple(cfg), want)
    cfg2 = mine.put(messages=[*mine.values["messages"], AIMessage("more", id="a3")])
    with make_saver() as cold:
        _same(saver.get_tuple(cfg2), cold.get_tuple(cfg2))
