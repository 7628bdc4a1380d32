"""Comparing list values between checkpoints, and naming written messages by id.

Pure functions over decoded values, used by `Inspector.diff` and when a
thread is loaded.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from typing import Any

from checkpoint_pg.inspect.model import CheckpointRecord
from checkpoint_pg.inspect.render import is_message, to_jsonable

__all__ = ["list_diff", "content_key", "fill_message_ids", "changed_values"]


def _list_key(value: Any) -> Any:
    if is_message(value) and getattr(value, "id", None):
        return ("message", value.id)
    try:
        return ("value", json.dumps(to_jsonable(value), sort_keys=True, default=repr))
    except (TypeError, ValueError):
        return ("repr", repr(value))


def list_diff(before: list[Any], after: list[Any]) -> tuple[list[Any], list[Any], list[tuple[Any, Any]]]:
    """Elements only in ``after``, only in ``before``, and messages changed under one id."""
    remaining: dict[Any, deque[Any]] = defaultdict(deque)
    for v in before:
        remaining[_list_key(v)].append(v)
    added, changed = [], []
    for v in after:
        k = _list_key(v)
        if remaining.get(k):
            old = remaining[k].popleft()
            if k[0] == "message" and content_key(old) != content_key(v):
                changed.append((old, v))
        else:
            added.append(v)
    removed = [v for q in remaining.values() for v in q]
    return added, removed, changed


def changed_values(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """What a checkpoint's state channels gained over its parent's, as an update would
    carry it: a list's new and edited elements, any other value whole. LangGraph's own
    channels (``branch:...``, ``__start__``...) are left out."""
    out: dict[str, Any] = {}
    for ch, value in after.items():
        if ch.startswith(("__", "branch:", "join:")):
            continue
        old = before.get(ch, _ABSENT)
        if isinstance(value, list) and isinstance(old, list):
            added, _, edited = list_diff(old, value)
            if added or edited:
                out[ch] = added + [new for _, new in edited]
        elif old is _ABSENT or content_key(old) != content_key(value):
            out[ch] = value
    return out


_ABSENT = object()


def content_key(msg: Any) -> str:
    """A value's whole content, as comparable text."""
    return json.dumps(to_jsonable(msg), sort_keys=True, default=repr)


def _same_message(a: Any, b: Any) -> bool:
    return (
        type(a) is type(b)
        and a.content == b.content
        and getattr(a, "tool_call_id", None) == getattr(b, "tool_call_id", None)
        and getattr(a, "name", None) == getattr(b, "name", None)
    )


def _with_ids(value: Any, pool: list[Any]) -> Any:
    if is_message(value) and not value.id:
        for i, cand in enumerate(pool):
            if _same_message(value, cand):
                del pool[i]
                return value.model_copy(update={"id": cand.id})
        return value
    if isinstance(value, list) and any(is_message(v) and not v.id for v in value):
        return [_with_ids(v, pool) for v in value]
    return value


def fill_message_ids(cps: Sequence[CheckpointRecord]) -> None:
    """Give written messages the ids the reducer gave them when the step was applied.

    ``add_messages`` assigns missing ids to the written message objects in
    place, while LangGraph may serialize the write before or after that
    (``durability="async"`` saves writes in the background), so a stored write
    can lack the id the live stream shows. The id is in the next checkpoint:
    the message it appended, equal in everything else.
    """
    by_id = {(c.ns, c.checkpoint_id): c for c in cps}
    done: set[tuple[str, str]] = set()
    for child in cps:
        key = (child.ns, child.parent_id or "")
        if child.source != "loop" or key in done or key not in by_id:
            continue
        done.add(key)
        parent = by_id[key]
        before, after = parent.channel_values or {}, child.channel_values or {}
        pools: dict[str, list[Any]] = {}
        for task in parent.ran:
            for i, (ch, value) in enumerate(task.writes):
                if not (is_message(value) or isinstance(value, list)) or not isinstance(after.get(ch), list):
                    continue
                if ch not in pools:
                    old = before.get(ch) if isinstance(before.get(ch), list) else []
                    seen = {getattr(m, "id", None) for m in old}
                    pools[ch] = [m for m in after[ch] if is_message(m) and m.id and m.id not in seen]
                task.writes[i] = (ch, _with_ids(value, pools[ch]))
