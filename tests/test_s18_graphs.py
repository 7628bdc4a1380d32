"""Session 18 differential review of graphs against InMemorySaver: the defects it found.

Each test runs a real graph on our saver (both backends) and on InMemorySaver and
compares what a graph reads back, in the process that ran it and in a new one.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage, AnyMessage
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
    back with an Overwrite (replacing the list, not merging by id): the update's checkpoint must store the
    edit, as one the list itself written back does. The Overwrite is stored whole, so
    the saver never looked at the messages inside it, took the list for unchanged
    objects it had stored, and kept their old content: this process read the edit
    (it holds the edited objects), a new one read the text from before it."""

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
