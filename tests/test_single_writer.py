"""Opt-in single-writer mode: a second concurrent run of a thread is refused."""

from __future__ import annotations

import operator
from typing import Annotated, Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict


def _step(saver: Any, parent_cfg: dict[str, Any], step: int, source: str = "loop") -> dict[str, Any]:
    cp = empty_checkpoint()
    ver = saver.get_next_version(None, None)
    cp["channel_values"] = {"n": step}
    cp["channel_versions"] = {"n": ver}
    return saver.put(parent_cfg, cp, {"source": source, "step": step, "parents": {}}, {"n": ver})


def test_second_writer_from_the_same_parent_is_refused(make_saver) -> None:
    """Two runs continue a thread from the same checkpoint: the first one's step
    is stored, the second one's is refused with ThreadBusyError naming the
    thread, and nothing of it is stored."""
    from checkpoint_pg import ThreadBusyError

    with make_saver(single_writer=True) as saver:
        root = _step(saver, {"configurable": {"thread_id": "sw", "checkpoint_ns": ""}}, -1, "input")
        first = _step(saver, root, 0)
        with pytest.raises(ThreadBusyError, match="'sw'") as info:
            _step(saver, root, 0)
        assert info.value.thread_id == "sw"
        ids = [t.config["configurable"]["checkpoint_id"] for t in saver.list({"configurable": {"thread_id": "sw"}})]
        assert ids == [first["configurable"]["checkpoint_id"], root["configurable"]["checkpoint_id"]]
        # the first run goes on undisturbed
        _step(saver, first, 1)


def test_without_the_option_both_writers_commit(make_saver) -> None:
    """The default keeps LangGraph's semantics: both steps are stored (a fork)."""
    with make_saver() as saver:
        root = _step(saver, {"configurable": {"thread_id": "mw", "checkpoint_ns": ""}}, -1, "input")
        _step(saver, root, 0)
        _step(saver, root, 0)
        assert len(list(saver.list({"configurable": {"thread_id": "mw"}}))) == 3


class S(TypedDict):
    log: Annotated[list[str], operator.add]


def _graph(saver: Any) -> Any:
    b = StateGraph(S)
    b.add_node("a", lambda s: {"log": ["a"]})
    b.add_node("b", lambda s: {"log": ["b"]})
    b.add_edge(START, "a")
    b.add_edge("a", "b")
    b.add_edge("b", END)
    return b.compile(checkpointer=saver)


def test_graph_runs_forks_and_update_state_work_in_single_writer_mode(make_saver) -> None:
    """Sequential runs, replay from an older checkpoint and update_state (which
    start from an older checkpoint on purpose) are not refused."""
    with make_saver(single_writer=True) as saver:
        g = _graph(saver)
        cfg = {"configurable": {"thread_id": "g"}}
        g.invoke({"log": ["x"]}, cfg)
        g.invoke({"log": ["y"]}, cfg)
        assert g.get_state(cfg).values["log"] == ["x", "a", "b", "y", "a", "b"]
        old = list(g.get_state_history(cfg))[-2].config
        g.invoke(None, old)  # replay from an old checkpoint: a fork
        forked = g.update_state(old, {"log": ["edit"]})
        assert g.get_state(forked).values["log"][-1] == "edit"


def _interrupting_graph(saver: Any) -> Any:
    from langgraph.types import interrupt

    def ask(s: S) -> dict[str, Any]:
        if s["log"][-1] == "ask":
            return {"log": [interrupt("which?")]}
        return {"log": ["a"]}

    b = StateGraph(S)
    b.add_node("a", ask)
    b.add_edge(START, "a")
    b.add_edge("a", END)
    return b.compile(checkpointer=saver)


def _time_travel(saver: Any) -> list[list[str]]:
    """New input from an older checkpoint, and resuming an older interrupt: both
    start from a checkpoint the caller names, with newer ones in the thread."""
    from langgraph.types import Command

    g = _interrupting_graph(saver)
    cfg = {"configurable": {"thread_id": "tt"}}
    g.invoke({"log": ["1"]}, cfg)
    g.invoke({"log": ["2"]}, cfg)
    after_first = list(g.get_state_history(cfg))[2].config
    out = [g.invoke({"log": ["fork"]}, after_first)["log"]]
    g.invoke({"log": ["ask"]}, cfg)
    paused = g.get_state(cfg).config
    out.append(g.invoke(Command(resume="x"), cfg)["log"])
    out.append(g.invoke(Command(resume="y"), paused)["log"])  # the older interrupt, again
    out.append(g.get_state(cfg).values["log"])
    return out


def test_runs_from_a_named_older_checkpoint_work_in_single_writer_mode(make_saver) -> None:
    """A run that names an older checkpoint to start from (new input there, or
    resuming an interrupt that was resumed already) branches on purpose: it is
    not refused, and the thread ends as with InMemorySaver."""
    from langgraph.checkpoint.memory import InMemorySaver

    with make_saver(single_writer=True) as saver:
        assert _time_travel(saver) == _time_travel(InMemorySaver())


def test_naming_the_start_lets_only_the_first_put_through(make_saver) -> None:
    """Reading a checkpoint by id lets one put from it through though newer ones
    exist; a second put from it (another run, racing) is still refused."""
    from checkpoint_pg import ThreadBusyError

    with make_saver(single_writer=True) as saver:
        root = _step(saver, {"configurable": {"thread_id": "nm", "checkpoint_ns": ""}}, -1, "input")
        _step(saver, root, 0)
        assert saver.get_tuple(root) is not None  # a run names root as its start
        branch = _step(saver, root, 0)
        _step(saver, branch, 1)  # its next step continues its own branch
        with pytest.raises(ThreadBusyError):
            _step(saver, root, 0)


def test_a_named_start_survives_the_savers_retry(fresh_pg_url: str) -> None:
    """The put let through from a named start is let through again when the saver
    runs it once more after finding its pooled connection dead."""
    from faultkit import pg_terminate

    from checkpoint_pg import PostgresSaver

    with PostgresSaver.from_conn_string(fresh_pg_url, pool_size=1, single_writer=True) as saver:
        saver.setup()
        root = _step(saver, {"configurable": {"thread_id": "retry", "checkpoint_ns": ""}}, -1, "input")
        _step(saver, root, 0)
        assert saver.get_tuple(root) is not None  # a run names root as its start
        assert pg_terminate(fresh_pg_url) == 1  # the pool's one connection dies
        branch = _step(saver, root, 0)  # the first attempt fails, the retry is let through
        assert saver.get_tuple(branch) is not None


def test_of_puts_racing_from_a_named_start_one_goes_through(make_saver, backend: str) -> None:
    """Eight puts from one named start at once (eight racing runs, released together,
    each on its own pooled connection on Postgres): exactly one is stored, the
    others are refused. Five rounds."""
    import threading

    from checkpoint_pg import ThreadBusyError

    options = {"pool_size": 8} if backend == "postgres" else {}
    with make_saver(single_writer=True, **options) as saver:
        for r in range(5):
            cfg = {"configurable": {"thread_id": f"race-{r}", "checkpoint_ns": ""}}
            root = _step(saver, cfg, -1, "input")
            _step(saver, root, 0)
            assert saver.get_tuple(root) is not None  # named as a start
            gate = threading.Barrier(8)
            outcomes: list[str] = []

            def attempt() -> None:
                gate.wait()
                try:
                    _step(saver, root, 0)
                    outcomes.append("stored")
                except ThreadBusyError:
                    outcomes.append("refused")

            workers = [threading.Thread(target=attempt) for _ in range(8)]
            for w in workers:
                w.start()
            for w in workers:
                w.join(60)
            assert sorted(outcomes) == ["refused"] * 7 + ["stored"], r
