"""Realistic checkpoint sequences for saver-level benchmarks (no graph).

A short thread looks like what a small chat graph produces: an input
checkpoint, then one loop checkpoint per superstep; channel ``messages`` (a
list of langchain messages growing by one small message per step), two scalar
channels (``counter`` int, ``status`` str) and the ``branch:to:agent`` trigger
channel. Checkpoints are built with langgraph's ``empty_checkpoint`` /
``create_checkpoint``; versions come from ``saver.get_next_version`` so each
saver sees its own version format. Metadata is what langgraph writes
(source/step/parents) plus a ``user`` key, as when an app passes
``config["metadata"]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import create_checkpoint, empty_checkpoint

from bench.text import prose

_TEXTS = [prose(f"short{i}", 60 + (i * 37) % 80) for i in range(512)]
N_USERS = 100


def user_of(thread_index: int) -> str:
    return f"u{thread_index % N_USERS}"


def thread_id(prefix: str, i: int) -> str:
    return f"{prefix}-{i:06d}"


@dataclass
class Step:
    config: dict[str, Any]          # config to pass to put (parent checkpoint id, if any)
    checkpoint: dict[str, Any]
    metadata: dict[str, Any]
    new_versions: dict[str, Any]
    writes: list[tuple[str, Any]]   # 2 pending writes for the next task
    task_id: str


def steps(saver: Any, tid: str, index: int, n_steps: int) -> Iterator[Step]:
    """Yield ``n_steps`` consecutive steps for one thread.

    The caller must feed back the config returned by ``put`` via
    ``gen.send(new_config)``; ``next()`` works too (the parent id is then taken
    from the previous checkpoint, which is what ``put`` returns anyway).
    """
    gv = saver.get_next_version
    user = user_of(index)
    versions: dict[str, Any] = {}
    messages: list[Any] = []
    prev = empty_checkpoint()
    parent_id: str | None = None
    for step in range(n_steps):
        text = _TEXTS[(index * 7 + step) % len(_TEXTS)]
        if step == 0:
            msg = HumanMessage(content=text, id=f"{tid}-m{step}")
        else:
            msg = AIMessage(content=text, id=f"{tid}-m{step}")
        messages = messages + [msg]
        updated = ["messages", "counter", "status"] + (["branch:to:agent"] if step > 0 else [])
        new_versions = {}
        for ch in updated:
            versions[ch] = gv(versions.get(ch), None)
            new_versions[ch] = versions[ch]
        values: dict[str, Any] = {
            "messages": messages,
            "counter": step,
            "status": "running" if step < n_steps - 1 else "done",
        }
        if step > 0:
            values["branch:to:agent"] = None
        base = dict(prev)
        base["channel_values"] = values
        base["channel_versions"] = dict(versions)
        base["versions_seen"] = {
            "__input__": {},
            "agent": {"branch:to:agent": versions.get("branch:to:agent", versions["messages"])},
        }
        ckpt = create_checkpoint(base, None, step)
        ckpt["updated_channels"] = sorted(updated)
        cfg: dict[str, Any] = {"configurable": {"thread_id": tid, "checkpoint_ns": ""}}
        if parent_id is not None:
            cfg["configurable"]["checkpoint_id"] = parent_id
        meta = {
            "source": "input" if step == 0 else "loop",
            "step": step - 1,
            "parents": {},
            "user": user,
        }
        task_id = f"{tid}-task{step}"
        reply = AIMessage(content=_TEXTS[(index * 11 + step) % len(_TEXTS)], id=f"{tid}-w{step}")
        writes = [("messages", [reply]), ("counter", step + 1)]
        got = yield Step(cfg, ckpt, meta, new_versions, writes, task_id)
        if got is not None:
            parent_id = got["configurable"]["checkpoint_id"]
        else:
            parent_id = ckpt["id"]
        prev = ckpt


def latest(tid: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": tid, "checkpoint_ns": ""}}
