"""Turning stored values into JSON and into short human-readable lines."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

__all__ = ["to_jsonable", "message_line", "value_line", "cut_pair", "is_message"]


def is_message(value: Any) -> bool:
    """A LangChain message (has a ``type`` and ``content``, e.g. HumanMessage, AIMessage)."""
    try:
        from langchain_core.messages import BaseMessage
    except ImportError:  # pragma: no cover - langchain_core comes with langgraph
        return False
    return isinstance(value, BaseMessage)


def _message_json(msg: Any) -> dict[str, Any]:
    """Every field of a message that holds something: scripts must not lose a ToolMessage's
    ``status`` or ``artifact``, an AIMessage's ``usage_metadata``..."""
    out: dict[str, Any] = {"type": msg.type, "content": to_jsonable(msg.content), "id": msg.id}
    for name in type(msg).model_fields:
        value = getattr(msg, name, None)
        empty = value is None or value is False or (isinstance(value, (str, Mapping, list)) and not value)
        if name not in out and not empty:  # False: the default of `example`
            out[name] = to_jsonable(value)
    return out


def to_jsonable(value: Any) -> Any:
    """Plain JSON data for any stored value: messages as dicts, Interrupt and Send by fields."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if is_message(value):
        return _message_json(value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [to_jsonable(v) for v in items]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"base64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, BaseException):
        return {"error": type(value).__name__, "message": str(value)}
    cls = type(value).__name__
    if cls == "Send":
        return {"send": value.node, "arg": to_jsonable(value.arg)}
    if cls == "Interrupt":
        return {"interrupt": to_jsonable(value.value), "id": getattr(value, "id", None)}
    if cls == "Command":
        return {
            "command": {
                k: to_jsonable(getattr(value, k, None))
                for k in ("update", "goto", "resume", "graph")
                if getattr(value, k, None) is not None
            }
        }
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return to_jsonable(dump())
        except Exception:  # noqa: BLE001 - fall back to repr
            pass
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "value") and cls.startswith("_"):
        return to_jsonable(value.value)  # e.g. a DeltaChannel snapshot
    return repr(value)


def cut(text: str, width: int) -> str:
    """One line of at most ``width`` characters (whitespace collapsed, "…" when cut)."""
    text = " ".join(str(text).split())
    width = max(width, 8)
    return text if len(text) <= width else text[: width - 1] + "…"


def cut_pair(before: Any, after: Any, width: int) -> tuple[str, str]:
    """Two values as lines of at most ``width``, both cut around their first difference.

    Cutting each at the end would often show two equal lines for values that
    differ only further on.
    """
    a, b = (value_line(v, 1 << 30) for v in (before, after))
    width = max(width, 8)
    same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    if same < width - 1 - width // 4:  # the difference shows within the usual cut
        return cut(a, width), cut(b, width)
    start = same - width // 3
    return cut("…" + a[start:], width), cut("…" + b[start:], width)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        parts = []
        for block in content:
            if isinstance(block, Mapping):
                parts.append(str(block.get("text") or f"[{block.get('type', 'block')}]"))
            else:
                parts.append(str(block))
        return " ".join(parts)
    return str(content)


def message_line(msg: Any, width: int = 100) -> str:
    """``role: content`` cut to ``width``, tool calls as ``name(arg=...)``."""
    role = msg.type
    if role == "tool":
        role = f"tool[{getattr(msg, 'name', None) or getattr(msg, 'tool_call_id', '')}]"
    calls = getattr(msg, "tool_calls", None) or []
    rendered = ", ".join(
        f"{c.get('name')}({', '.join(f'{k}={v!r}' for k, v in (c.get('args') or {}).items())})" for c in calls
    )
    text = _content_text(msg.content)
    if rendered:
        text = f"{text} -> {rendered}" if text.strip() else f"-> {rendered}"
    return cut(f"{role}: {text}", width)


def value_line(value: Any, width: int = 100) -> str:
    """A short rendering of any value: messages by :func:`message_line`, others as JSON-ish text."""
    if is_message(value):
        return message_line(value, width)
    if isinstance(value, list) and value and all(is_message(v) for v in value):
        return cut(" | ".join(message_line(v, width) for v in value), width)
    import json

    try:
        text = json.dumps(to_jsonable(value), ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return cut(text, width)
