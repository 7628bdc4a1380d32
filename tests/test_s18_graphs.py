"""Session 18 differential review of graphs against InMemorySaver: the defects it found.

Each test runs a real graph on our saver (both backends) and on InMemorySaver and
compares what a graph reads back, in the process that ran it and in a new one.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.message import add_messages
from langgraph.types import Overwrite
from typing_extensions import TypedDict

from graphs import in_order
from test_graphs import _matches_in_memory


class _Chat(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]


def _chat(s: BaseCheckpointSaver) -> Any:
    def answer(state: _Chat) -> _Chat:
        return {"messages": [AIMessage("draft", id="m-1"), AIMessage("other", id="m-2")]}

    return in_order(_Chat, ("answer", answer)).compile(checkpointer=s)


# The forms of an Overwrite LangGraph's channels take: the dataclass, its sentinel-keyed
# dict, and the dict JSON makes of the dataclass (an update through the API server).
_OVERWRITES = {
    "dataclass": Overwrite,
    "sentinel dict": lambda v: {"__overwrite__": v},
    "json dict": lambda v: {"value": v, "type": "__overwrite__"},
}


@pytest.mark.parametrize("form", list(_OVERWRITES))
def test_messages_edited_in_place_and_written_back_with_overwrite_are_stored_edited(
    make_saver: Any, form: str
) -> None:
    """A review that edits a message from get_state in place and writes the whole list
    back with an Overwrite (replacing the list, not merging by id): the update's
    checkpoint must store the edit, as one the list itself written back does. The
    Overwrite is stored whole, so the saver never looked at the messages inside it,
    took the list for unchanged objects it had stored, and kept their old content:
    this process read the edit into the checkpoint before too (it holds the edited
    objects), a new one read the text from before it."""

    def run(s: BaseCheckpointSaver, config: RunnableConfig) -> None:
        graph = _chat(s)
        graph.invoke({"messages": []}, config)
        messages = graph.get_state(config).values["messages"]
        messages[0].content = "edited"
        graph.update_state(config, {"messages": _OVERWRITES[form](messages)})

    history = _matches_in_memory(make_saver, _chat, run, "overwrite-edit")
    assert [m["content"] for m in history[0]["values"]["messages"]] == ["edited", "other"]
    assert [m["content"] for m in history[1]["values"]["messages"]] == ["draft", "other"]


class _Notes(TypedDict, total=False):
    notes: Annotated[list[AnyMessage], operator.add]


def _notes(s: BaseCheckpointSaver) -> Any:
    def write(state: _Notes) -> _Notes:
        # messages without ids: operator.add, unlike add_messages, gives them none
        return {"notes": [AIMessage("draft"), AIMessage("other")]}

    return in_order(_Notes, ("write", write)).compile(checkpointer=s)


def test_messages_without_ids_edited_in_place_and_written_back_with_overwrite_are_stored_edited(
    make_saver: Any,
) -> None:
    """The same review on a list of messages without ids, which the saver does not
    remember by their contents, so it cannot tell whether one was edited: an
    Overwrite holding one must make the next put check the list by hash."""

    def run(s: BaseCheckpointSaver, config: RunnableConfig) -> None:
        graph = _notes(s)
        graph.invoke({"notes": []}, config)
        notes = graph.get_state(config).values["notes"]
        notes[0].content = "edited"
        graph.update_state(config, {"notes": Overwrite(notes)})

    history = _matches_in_memory(make_saver, _notes, run, "overwrite-edit-no-id")
    assert [m["content"] for m in history[0]["values"]["notes"]] == ["edited", "other"]


class _Drafts(TypedDict, total=False):
    drafts: list[AnyMessage]
    done: bool


def _drafts(s: BaseCheckpointSaver) -> Any:
    def write(state: _Drafts) -> _Drafts:
        return {"drafts": [HumanMessage("draft"), HumanMessage("other")]}

    def finish(state: _Drafts) -> _Drafts:
        return {"done": True}

    return in_order(_Drafts, ("write", write), ("finish", finish)).compile(
        checkpointer=s, interrupt_before=["finish"]
    )


def test_a_message_without_id_edited_in_place_and_written_back_is_stored_edited(
    make_saver: Any,
) -> None:
    """A plain list channel of messages without ids: get_state, edit one in place,
    write the list back with update_state, resume. (The memo that tells an edit in
    place keeps only messages with ids: a list holding others is serialized again
    at each put and compared by hash, `known_by_identity`.)"""

    def run(s: BaseCheckpointSaver, config: RunnableConfig) -> None:
        graph = _drafts(s)
        graph.invoke({"done": False}, config)
        drafts = graph.get_state(config).values["drafts"]
        drafts[0].content = "edited"
        graph.update_state(config, {"drafts": drafts})
        graph.invoke(None, config)

    _matches_in_memory(make_saver, _drafts, run, "edit-no-id")


@pytest.mark.xfail(
    strict=True,
    reason="known gap (session 18): get_state returns the very message objects the stored "
    "list holds, so a message edited in place and appended again (operator.add) is edited in "
    "its first place too, and that is stored; InMemorySaver's get_state returns copies.",
)
def test_a_message_edited_in_place_and_appended_again_leaves_its_first_place_as_stored(
    make_saver: Any,
) -> None:
    """An operator.add list of messages with ids: get_state, edit the first in place,
    append it (the edited copy) with update_state."""

    def chat(s: BaseCheckpointSaver) -> Any:
        def write(state: _Notes) -> _Notes:
            return {"notes": [AIMessage("draft", id="n-1"), AIMessage("other", id="n-2")]}

        return in_order(_Notes, ("write", write)).compile(checkpointer=s)

    def run(s: BaseCheckpointSaver, config: RunnableConfig) -> None:
        graph = chat(s)
        graph.invoke({"notes": []}, config)
        first = graph.get_state(config).values["notes"][0]
        first.content = "edited"
        graph.update_state(config, {"notes": [first]})

    _matches_in_memory(make_saver, chat, run, "append-edited")


class _Todos(TypedDict, total=False):
    todos: list[dict[str, Any]]
    log: Annotated[list[dict[str, Any]], operator.add]


def _todos(s: BaseCheckpointSaver) -> Any:
    def add(state: _Todos) -> _Todos:
        n = len(state["todos"])
        return {"todos": [*state["todos"], {"task": f"t{n}", "done": False}], "log": [{"n": n}]}

    def mark(state: _Todos) -> _Todos:
        # edits in place what the checkpoint before stored, and writes the lists back
        state["todos"][0]["done"] = True
        state["log"][0]["seen"] = True
        return {"todos": state["todos"], "log": [{"marked": 0}]}

    return in_order(_Todos, ("add", add), ("mark", mark)).compile(checkpointer=s)


def test_dicts_of_a_list_edited_in_place_and_written_back_are_stored_edited(
    make_saver: Any,
) -> None:
    """A node edits a dict of a list in place and returns the list (a plain list channel),
    or returns anything to an operator.add list whose earlier dict it edited: each
    checkpoint stores the list as the graph held it then, as InMemorySaver does, in this
    process and in a new one. Before, a put recognized the stored dicts by identity and
    kept their old objects: the edit was lost. (durability="sync": under "async" the put
    of the step before may serialize the list after the next node edited it, with
    InMemorySaver too.)"""

    def run(s: BaseCheckpointSaver, config: RunnableConfig) -> None:
        graph = _todos(s)
        graph.invoke({"todos": [{"task": "a", "done": False}], "log": []}, config, durability="sync")
        state = graph.get_state(config).values
        graph.invoke({"todos": state["todos"]}, config, durability="sync")

    expected = _matches_in_memory(make_saver, _todos, run, "todo-edit")
    assert '"done": true' in str(expected).replace("'", '"').replace("True", "true")
