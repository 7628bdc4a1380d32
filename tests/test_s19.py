"""Session 19: what CI and reviews found after session 18."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from clikit import cli, incumbent_file  # noqa: F401 - a fixture
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.base import empty_checkpoint


def _new_config(tag: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": f"s19-{tag}-{uuid.uuid4().hex[:10]}", "checkpoint_ns": ""}}


def _put(
    saver: Any, config: Any, values: dict[str, Any], versions: dict[str, Any], step: int, run: str | None = None
) -> Any:
    cp = empty_checkpoint()
    new = {}
    for ch, value in values.items():
        versions[ch] = new[ch] = saver.get_next_version(versions.get(ch), None)
        cp["channel_values"][ch] = value
    cp["channel_versions"] = dict(versions)
    metadata = {"source": "loop", "step": step, **({"run_id": run} if run else {})}
    return saver.put(config, cp, metadata, new)


def _listed_first(saver: Any, tag: str, channel: str, messages: list[Any]) -> tuple[Any, ...]:
    """(config, versions, first, second): a thread's first checkpoint, then the put of
    the next one, holding ``messages`` in ``channel``, before the node's write of them
    (to ``first``) is stored."""
    config = _new_config(tag)
    versions: dict[str, Any] = {}
    first = _put(saver, config, {}, versions, -1)
    return config, versions, first, _put(saver, first, {channel: messages}, versions, 0)


def test_a_write_stored_after_its_put_is_not_repointed_at_a_later_edit(make_saver: Any) -> None:
    """LangGraph saves a step's writes and the next checkpoint on background threads, so
    a put may store a node's messages (without ids: a plain list channel) before the
    put_writes of the node that wrote them. A later put of one of them edited in place
    (get_state, edit, update_state) must store the edit in its own checkpoint and leave
    the write as the node made it: the write was repointed at the edited message, so
    the step's task showed the edit too (CI, session 18: test_s18_graphs' drafts case)."""
    draft, other = HumanMessage("draft"), HumanMessage("other")
    with make_saver() as saver:
        config, versions, first, second = _listed_first(saver, "late-write", "drafts", [draft, other])
        # the node's write, stored after the put of the checkpoint that holds its list
        saver.put_writes(first, [("drafts", [draft, other])], "write-task")
        draft.content = "edited"
        _put(saver, second, {"drafts": [draft, other]}, versions, 1)
    with make_saver() as fresh:
        writes = fresh.get_tuple(first).pending_writes
        latest = fresh.get_tuple(config).checkpoint["channel_values"]["drafts"]
    assert [(task, ch, [m.content for m in v]) for task, ch, v in writes] == [
        ("write-task", "drafts", ["draft", "other"])
    ]
    assert [m.content for m in latest] == ["edited", "other"]


def test_a_write_read_back_is_not_repointed_at_its_message_edited_in_place(make_saver: Any) -> None:
    """A process reads a step's writes back (a resume) and a node edits one of their
    messages (without an id) in place before the list holding it is put: the put stores
    the edit, and the write stays as stored. Only a message given its id since (by
    add_messages) is the write's message stored once, at the list's object."""
    config = _new_config("read-write")
    versions: dict[str, Any] = {}
    with make_saver() as saver:
        first = _put(saver, config, {}, versions, -1)
        saver.put_writes(first, [("drafts", [HumanMessage("draft"), HumanMessage("other")])], "w")
    with make_saver() as resumed:
        (_, _, written), = resumed.get_tuple(first).pending_writes
        written[0].content = "edited"
        _put(resumed, first, {"drafts": written}, versions, 0)
    with make_saver() as fresh:
        writes = fresh.get_tuple(first).pending_writes
        latest = fresh.get_tuple(config).checkpoint["channel_values"]["drafts"]
    assert [[m.content for m in v] for _, _, v in writes] == [["draft", "other"]]
    assert [m.content for m in latest] == ["edited", "other"]


def test_a_write_serialized_after_its_message_got_its_id_is_not_repointed_at_a_later_edit(
    make_saver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """put_writes finds a message without an id and registers it, add_messages gives it
    its id before it is serialized, and the put storing the list went in first: the
    write holds the message as the list does, so nothing is left to repoint, and a later
    edit in place put again must not be taken for its id (the write kept the edit)."""
    draft = HumanMessage("draft")
    with make_saver() as saver:
        _, versions, first, second = _listed_first(saver, "id-meanwhile", "messages", [draft])
        encode = saver.ctx.codec.encode

        def id_given_meanwhile(value: Any) -> Any:
            draft.id = "m-1"  # by add_messages, on the loop's thread
            return encode(value)

        monkeypatch.setattr(saver.ctx.codec, "encode", id_given_meanwhile)
        saver.put_writes(first, [("messages", [draft])], "w")
        monkeypatch.undo()
        draft.content = "edited"
        _put(saver, second, {"messages": [draft]}, versions, 1)
    with make_saver() as fresh:
        writes = fresh.get_tuple(first).pending_writes
    assert [[(m.content, m.id) for m in v] for _, _, v in writes] == [[("draft", "m-1")]]


def test_an_import_of_a_thread_the_source_lacks_names_the_near_ones_and_the_next_step(
    capsys: pytest.CaptureFixture[str], incumbent_file: str, tmp_path: Any
) -> None:
    """`import-langgraph --thread` naming a thread the source lacks (a typo) says how many
    threads the source holds, those whose ids are close, and what to run instead; it
    creates nothing."""
    target = tmp_path / "ours.db"
    code, out, err = cli(
        capsys, "import-langgraph", "--from", incumbent_file, "--url", str(target),
        "--thread", "olf", "--no-progress",
    )
    assert code == 1 and out == ""
    assert "no thread(s) ['olf']; it holds 1 thread(s), among them ['old']" in err
    assert "leave --thread out to import them all, with --dry-run to count them first" in err
    assert not target.exists()
