"""Reading and checking the configs and metadata that LangGraph passes to a saver."""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointMetadata, get_checkpoint_metadata

from checkpoint_pg.errors import ConfigError, SerializationError

__all__ = [
    "Target",
    "target_of",
    "normalize_thread_id",
    "metadata_json",
    "checkpoint_config",
    "compact_json",
    "loads_json",
    "check_filter",
    "check_writes",
    "check_limit",
    "before_id_of",
]

# json.dumps(obj, separators=(",", ":")) without building an encoder per call.
compact_json = json.JSONEncoder(separators=(",", ":")).encode
_compact_json_text = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

try:  # comes with langchain_core (through langsmith) on CPython
    from orjson import JSONDecodeError as _OrjsonError
    from orjson import loads as _orjson_loads
except ImportError:  # pragma: no cover
    _orjson_loads = None


# A JSON number of 19 digits or more (after ":", "," or "[", as numbers stand in JSON
# text, the driver's included): possibly an integer beyond 64 bits, which orjson reads
# as a float (2**70 came back as 1.1805916207174113e+21, a channel version of it lost
# the channel's value). Inside a string (an incumbent's 32-digit version) it is
# preceded by a quote instead.
_LONG_NUMBER = re.compile(r"[:,\[]\s*-?[0-9]{19}")
_LONG_NUMBER_BYTES = re.compile(rb"[:,\[]\s*-?[0-9]{19}")


def loads_json(raw: str | bytes) -> Any:
    """json.loads, through orjson when it is there (several times faster).

    What orjson refuses (NaN) or reads otherwise (integers beyond 64 bits, which it
    makes floats) goes to json, which gives them back as they were written.
    """
    if _orjson_loads is not None:
        long = (_LONG_NUMBER_BYTES if isinstance(raw, (bytes, bytearray)) else _LONG_NUMBER).search(raw)
        if long is None:
            try:
                return _orjson_loads(raw)
            except _OrjsonError:
                pass
    return json.loads(raw)


class Target(tuple[str, str, "str | None"]):
    """(thread_id, checkpoint_ns, checkpoint_id or None) named for readability."""

    __slots__ = ()

    @property
    def thread_id(self) -> str:
        return self[0]

    @property
    def ns(self) -> str:
        return self[1]

    @property
    def checkpoint_id(self) -> str | None:
        return self[2]


def normalize_thread_id(value: Any) -> str:
    """A thread id is a str (a UUID is taken as its canonical string).

    Ints are refused rather than converted: with ``str(1) == "1"`` the threads
    ``1`` and ``"1"`` would silently become one thread.
    """
    if isinstance(value, str):
        return _text(value, "thread_id")
    if isinstance(value, uuid.UUID):
        return str(value)
    raise ConfigError(
        f"thread_id must be a str, got {type(value).__name__} {value!r}; "
        f"pass str({value!r}) explicitly if that is the thread you mean "
        "(ints are not converted so that 1 and '1' never alias)"
    )


def check_text(value: Any, what: str) -> str:
    """A str without NUL characters (neither backend stores them in text columns) that
    UTF-8 can encode."""
    return _text(value, what)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be a str, got {type(value).__name__} {value!r}")
    if "\x00" in value:
        raise ConfigError(f"{what} {value!r} contains a NUL character, which cannot be stored")
    if not value.isascii() and (bad := _surrogate(value)) is not None:
        raise ConfigError(f"{what} {value!r} {bad}")
    return value


def _surrogate(text: str) -> str | None:
    """Why UTF-8 cannot encode ``text`` (a lone surrogate), or None when it can."""
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        return (
            f"has a lone surrogate {text[exc.start]!r}, which UTF-8 "
            "cannot encode (often bytes decoded with errors='surrogateescape', as Python does "
            "for undecodable command-line arguments and file names): decode them properly first"
        )
    return None


def target_of(config: RunnableConfig | None, *, need_checkpoint_id: bool = False) -> Target:
    """Extract (thread_id, checkpoint_ns, checkpoint_id) or say what is missing."""
    if config is not None and type(config) is not dict and not isinstance(config, Mapping):
        raise ConfigError(
            f"a config must be a dict, got {type(config).__name__} {config!r:.100}; pass "
            "{'configurable': {'thread_id': '<your thread>'}}"
        )
    conf = (config or {}).get("configurable") or {}
    if type(conf) is not dict and not isinstance(conf, Mapping):
        raise ConfigError(
            f"config['configurable'] must be a dict, got {type(conf).__name__} {conf!r:.100}"
        )
    if "thread_id" not in conf or conf["thread_id"] is None:
        raise ConfigError(
            "the config has no configurable.thread_id: pass "
            "{'configurable': {'thread_id': '<your thread>'}} to invoke/stream/get_state"
        )
    thread_id = normalize_thread_id(conf["thread_id"])
    ns = _text(conf.get("checkpoint_ns") or "", "checkpoint_ns")
    cid = conf.get("checkpoint_id")
    if cid is not None:
        cid = _text(cid, "checkpoint_id")
    elif need_checkpoint_id:
        raise ConfigError(
            f"the config of thread {thread_id!r} has no configurable.checkpoint_id: "
            "writes belong to a checkpoint, pass the config that put() returned"
        )
    return Target((thread_id, ns, cid or None))


def checkpoint_config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
    }


def _check_json(value: Any, path: str) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise SerializationError(
                f"{path} contains a NUL character, which Postgres JSON cannot store"
            )
        if not value.isascii() and (bad := _surrogate(value)) is not None:
            raise SerializationError(f"{path} {value!r} {bad}")
    elif isinstance(value, bool) or value is None or isinstance(value, int):
        return
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise SerializationError(f"{path} is {value!r}, which JSON cannot store")
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise SerializationError(f"{path} has a non-str key {k!r}")
            _check_json(k, f"{path} key")
            _check_json(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_json(v, f"{path}[{i}]")
    else:
        raise SerializationError(
            f"{path} is a {type(value).__name__}, which is not JSON: "
            "metadata holds JSON values (str, int, float, bool, None, lists, dicts)"
        )


def _plain_json(value: Any) -> bool:
    """True when ``value`` surely passes `_check_json`: the common case, checked
    without building the path of every key. False sends it to `_check_json`."""
    t = type(value)
    if t is str:
        return "\x00" not in value
    if t is int or t is bool or value is None:
        return True
    if t is float:
        return math.isfinite(value)
    if t is dict:
        for k, v in value.items():
            if type(k) is not str or "\x00" in k or not _plain_json(v):
                return False
        return True
    if t is list or t is tuple:
        for v in value:
            if not _plain_json(v):
                return False
        return True
    return False


def metadata_json(config: RunnableConfig, metadata: CheckpointMetadata) -> tuple[dict[str, Any], str]:
    """The metadata LangGraph stores (config keys merged in), checked and as JSON text."""
    for key, value in (metadata or {}).items():
        # get_checkpoint_metadata would drop NULs from top-level strings silently
        if isinstance(value, str) and "\x00" in value:
            raise SerializationError(
                f"metadata {key!r} contains a NUL character, which cannot be stored; "
                "remove it before passing the metadata"
            )
    md = dict(get_checkpoint_metadata(config, metadata))
    md.pop("writes", None)
    try:
        if not _plain_json(md):
            _check_json(md, "metadata")
        text = _compact_json_text(md)
    except RecursionError:
        raise SerializationError(
            "metadata is nested too deeply to store (about a thousand levels or more)"
        ) from None
    if not text.isascii() and _surrogate(text) is not None:
        _check_json(md, "metadata")  # names the string that has it
    return md, text


def check_filter(filter: Any) -> dict[str, Any] | None:
    """A ``list(filter=...)`` as a dict, or a ConfigError saying why it can match nothing."""
    if filter is None:
        return None
    if not isinstance(filter, Mapping) or not all(isinstance(k, str) for k in filter):
        raise ConfigError(f"filter must be a dict with str keys, got {filter!r}")
    out: dict[str, Any] = {}
    for key, value in filter.items():
        if "\x00" in key:  # Postgres's JSONB refused it with a driver error
            raise ConfigError(
                f"filter key {key!r} contains a NUL character, which metadata cannot hold, "
                "so this filter could match nothing"
            )
        try:
            plain = _plain_json(value)
            if not plain:
                # a str or int subclass (a StrEnum, an IntEnum), a tuple, a Mapping: the
                # JSON metadata stores them as, and InMemorySaver's == matches them to
                _check_json(value, f"filter value of {key!r}")
        except RecursionError:
            raise ConfigError(f"filter value of {key!r} is nested too deeply to match") from None
        except SerializationError as exc:
            raise ConfigError(
                f"{exc}; filter value of {key!r} is {value!r} ({type(value).__name__}): "
                "metadata holds JSON values only (str without NUL characters, int, finite "
                "float, bool, None, and lists and dicts of them), so this filter could "
                "match nothing"
            ) from None
        text = _compact_json_text({key: value})
        if not text.isascii() and (bad := _surrogate(text)) is not None:
            raise ConfigError(f"filter {{{key!r}: {value!r}}} {bad}")
        if plain and type(key) is str:
            out[key] = value
        else:  # as plain JSON types, which the drivers bind
            out.update(loads_json(text))
    return out


def check_writes(writes: Any) -> list[tuple[str, Any]]:
    """``put_writes``'s writes as a list of (channel, value) pairs, or a ConfigError.

    Taken once as a list: a generator was read twice (channels checked, then values
    stored) and its writes were lost without an error; a dict, iterated by key, wrote
    {"ab": 1} as channel "a" with value "b"."""
    if type(writes) is list and all(type(p) is tuple and len(p) == 2 for p in writes):
        return writes  # what LangGraph passes: checked at no cost
    if isinstance(writes, (str, bytes, Mapping)) or not hasattr(writes, "__iter__"):
        raise ConfigError(
            f"writes must be a sequence of (channel, value) pairs, got {type(writes).__name__} "
            f"{writes!r:.200}; pass e.g. [('messages', value)]"
        )
    out = []
    for pair in writes:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ConfigError(
                f"each write must be a (channel, value) pair, got {pair!r:.200}; "
                "nothing was stored"
            )
        out.append((pair[0], pair[1]) if type(pair) is not tuple else pair)
    return out


def check_limit(limit: Any) -> int | None:
    """``list(limit=...)``: None or an int (not a bool), else a ConfigError."""
    if limit is not None and (type(limit) is not int):
        raise ConfigError(
            f"limit must be an int or None, got {type(limit).__name__} {limit!r}"
        )
    return limit


def before_id_of(before: Any) -> str | None:
    """The checkpoint id of ``list(before=...)``'s config, checked like any id."""
    if before is None:
        return None
    if not isinstance(before, Mapping):
        raise ConfigError(
            f"before must be a config ({{'configurable': {{'checkpoint_id': ...}}}}), got "
            f"{type(before).__name__} {before!r:.200}"
        )
    conf = before.get("configurable") or {}
    if not isinstance(conf, Mapping):
        raise ConfigError(
            f"before['configurable'] must be a dict, got {type(conf).__name__} {conf!r:.100}; "
            "pass a config list() or put() returned"
        )
    cid = conf.get("checkpoint_id")
    # an empty id bounds nothing, as in InMemorySaver (and as get_tuple reads it: the newest)
    return None if cid is None or cid == "" else _text(cid, "before's checkpoint_id")


def check_put(checkpoint: Any, metadata: Any, new_versions: Any) -> None:
    """The arguments of ``put`` have the shapes LangGraph gives them, or a ConfigError
    (not an AttributeError from deep inside), before anything is stored. On every put:
    dicts and str versions (what LangGraph passes) take the cheap path."""
    if not _is_mapping(checkpoint) or "id" not in checkpoint:
        raise ConfigError(
            f"checkpoint must be a dict with an 'id' (langgraph's Checkpoint), got "
            f"{type(checkpoint).__name__} {checkpoint!r:.100}"
        )
    for key in ("channel_values", "channel_versions", "versions_seen"):
        if checkpoint.get(key) is not None and not _is_mapping(checkpoint[key]):
            raise ConfigError(f"checkpoint[{key!r}] must be a dict, got {type(checkpoint[key]).__name__}")
    # stored, an entry that is not a dict made every read of the thread refuse it as edited
    for node, seen in (checkpoint.get("versions_seen") or {}).items():
        if not _is_mapping(seen):
            raise ConfigError(
                f"checkpoint['versions_seen'][{node!r}] must be a dict of channel -> version, "
                f"got {type(seen).__name__} {seen!r:.100}"
            )
    if metadata is not None and not _is_mapping(metadata):
        raise ConfigError(f"metadata must be a dict, got {type(metadata).__name__} {metadata!r:.100}")
    if not _is_mapping(new_versions):
        raise ConfigError(
            f"new_versions must be a dict of channel -> version, got {type(new_versions).__name__}"
        )
    for versions in (checkpoint.get("channel_versions") or {}, new_versions):
        for channel, version in versions.items():
            t = type(version)
            if t is str:
                if "\x00" in version or not version.isascii():
                    _text(version, f"version of channel {channel!r}")
            elif t is not int and t is not float:
                raise ConfigError(
                    f"the version of channel {channel!r} must be a str, int or float, got "
                    f"{t.__name__} {version!r:.100}"
                )


def _is_mapping(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)
