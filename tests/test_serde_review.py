"""Serializers and bad input, reviewed adversarially (both backends).

* a serializer's own type names that read as ours (a compressed object's "zd1:" /
  "z:", a chunk's "#refs", a "+" under encryption) are stored and read back;
* a serializer that returns what cannot be stored (a str, a non-str type name, a NUL)
  is refused with a SerializationError before anything is written;
* an encrypted thread opened with another key says which key is wrong;
* integers beyond 64 bits in metadata and channel versions read back as ints.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

from faultkit import SimThread, row_counts

HASH_KEY = b"review-hash-key-0123456789abcdef"


class JsonTyped:
    """A serializer of its own: JSON, under the type name (and byte kind) it is given."""

    def __init__(self, typ: Any, data: Any = bytes) -> None:
        self.typ, self.data = typ, data

    def dumps_typed(self, obj: Any) -> tuple[Any, Any]:
        return self.typ, self.data(json.dumps(obj).encode())

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        return json.loads(bytes(data[1]))


def aes(inner: Any, key: bytes = b"k" * 16) -> EncryptedSerializer:
    serde = EncryptedSerializer.from_pycryptodome_aes(key=key)
    serde.serde = inner
    return serde


# a scalar, a long str (compressed when it may be), a list stored element by element,
# a dict stored key by key
VALUES = {
    "n": 5,
    "text": "x" * 300,
    "items": [{"k": i} for i in range(3)],
    "doc": {"m": ["y" * 70] * 9, "z": 1},
}


def put_values(saver: Any, thread_id: str, values: dict[str, Any]) -> dict:
    cp = empty_checkpoint()
    cp["channel_values"] = dict(values)
    cp["channel_versions"] = {ch: saver.get_next_version(None, None) for ch in values}
    config = saver.put(
        {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}},
        cp,
        {"source": "input", "step": -1},
        dict(cp["channel_versions"]),
    )
    saver.put_writes(config, [("text", "w" * 200), ("n", 7)], "task-1", "")
    return config


def read_back(saver: Any, config: dict) -> tuple[dict, list]:
    tup = saver.get_tuple(config)
    return tup.checkpoint["channel_values"], tup.pending_writes


@pytest.mark.parametrize(
    "serde",
    [
        pytest.param(lambda: JsonTyped("zd1:json"), id="zd1-prefix"),
        pytest.param(lambda: JsonTyped("z:json"), id="z-prefix"),
        pytest.param(lambda: JsonTyped("#refs"), id="chunk-type"),
        pytest.param(lambda: aes(JsonTyped("z:json")), id="aes-z-prefix"),
        pytest.param(lambda: aes(JsonTyped("js+on")), id="aes-plus"),
        pytest.param(lambda: JsonTyped("json", memoryview), id="memoryview-data"),
        pytest.param(lambda: JsonTyped("json", type("Blob", (bytes,), {})), id="bytes-subclass-data"),
    ],
)
def test_a_serializers_type_that_reads_as_ours_round_trips(make_saver, serde: Any, monkeypatch) -> None:
    """A custom serializer whose type name starts like a compressed object's ("zd1:",
    "z:") or is a chunk's was stored as is and then read as one of ours: the put
    succeeded and every read of the thread failed (zlib: incorrect header check).
    Under encryption, a "z...:" type was inflated before decrypting, and a "+" in the
    type was split at the first one. Now each reads back, also by a saver that holds
    nothing of the thread (and so do bytes given as a memoryview or a bytes subclass)."""
    monkeypatch.setenv("LANGGRAPH_AES_KEY", "k" * 16)
    expected = (dict(VALUES), [("task-1", "text", "w" * 200), ("task-1", "n", 7)])
    with make_saver(serde=serde()) as saver:
        config = put_values(saver, "custom", VALUES)
        assert read_back(saver, config) == expected
    with make_saver(serde=serde()) as cold:
        assert read_back(cold, config) == expected
        assert [t.checkpoint["channel_values"] for t in cold.list(None)] == [VALUES]


BAD_OUTPUT = [
    pytest.param(lambda: JsonTyped("json", lambda b: b.decode()), "bytes", id="str-data"),
    pytest.param(lambda: JsonTyped("json", lambda b: None), "bytes", id="none-data"),
    pytest.param(lambda: JsonTyped(None), "str type name", id="none-type"),
    pytest.param(lambda: JsonTyped(b"json"), "str type name", id="bytes-type"),
    pytest.param(lambda: JsonTyped("js\x00on"), "NUL", id="nul-in-type"),
    pytest.param(lambda: JsonTyped("js\udcffon"), "surrogate", id="surrogate-in-type"),
]


@pytest.mark.parametrize(("serde", "says"), BAD_OUTPUT)
def test_a_serializer_giving_what_cannot_be_stored_is_refused_before_writing(
    make_saver, saver_target, backend: str, serde: Any, says: str
) -> None:
    """dumps_typed returning a str, a type name that is not a str, or one with a NUL
    or a lone surrogate: a SerializationError naming it (it was a raw TypeError,
    AttributeError, UnicodeEncodeError, or psycopg's DataError on Postgres), nothing
    written, and the saver still works."""
    from checkpoint_pg import SerializationError  # noqa: PLC0415

    with make_saver() as good:
        sim = SimThread(good, f"bad-serde-{uuid.uuid4().hex[:8]}")
        for _ in range(2):
            sim.run_step()
    with make_saver(serde=serde()) as saver:
        before = row_counts(backend, saver_target.conn_string, saver)
        with pytest.raises(SerializationError, match=says):
            put_values(saver, "bad", {"text": "x" * 300})
        cfg = sim.config(sim.order[-1])
        with pytest.raises(SerializationError, match=says):
            saver.put_writes(cfg, [("messages", ["a" * 100])], "task-x", "")
        assert row_counts(backend, saver_target.conn_string, saver) == before
    with make_saver() as good:
        sim.saver = good
        sim.run_step()
        assert sim.verify() == 3


def test_an_encrypted_thread_opened_with_another_key_says_so(make_saver) -> None:
    """AES key B on a thread written with key A (same hash key): the error was
    "cannot deserialize ... 'msgpack+aes': MAC check failed", which says nothing of
    the key. It now names the object and says the key is not the one it was written
    with; key A still reads everything."""
    from checkpoint_pg import SerializationError  # noqa: PLC0415

    inner = EncryptedSerializer.from_pycryptodome_aes(key=b"a" * 16).serde
    with make_saver(serde=aes(inner, b"a" * 16), hash_key=HASH_KEY) as a:
        sim = SimThread(a, "enc-keys")
        for _ in range(3):
            sim.run_step()
    with make_saver(serde=aes(inner, b"b" * 16), hash_key=HASH_KEY) as b:
        for read in (lambda: b.get_tuple(sim.config()), lambda: list(b.list(sim.config()))):
            with pytest.raises(SerializationError, match="encryption key is not the one it was written with"):
                read()
    with make_saver(serde=aes(inner, b"a" * 16), hash_key=HASH_KEY) as a:
        sim.saver = a
        assert sim.verify() == 3


BIG = 2**70


@pytest.mark.parametrize("version", [BIG, -(2**64)], ids=["2**70", "-2**64"])
def test_ints_beyond_64_bits_in_versions_and_metadata_read_back_as_ints(saver, version: int) -> None:
    """orjson reads an integer beyond 64 bits as a float: metadata {"n": 2**70} came
    back as 1.1805916207174113e+21, and a channel version of 2**70 came back a float
    whose str named no stored value, so the channel's value was silently missing
    (InMemorySaver refuses both; stored, they must read back as given)."""
    md = {"source": "input", "step": -1, "n": BIG, "nested": {"v": [version]}}
    values = {"a": "x", "b": [1, 2], "c": {"k": "v" * 100}}
    cp = empty_checkpoint()
    cp["channel_values"] = dict(values)
    cp["channel_versions"] = {ch: version for ch in values}
    config = saver.put({"configurable": {"thread_id": "big", "checkpoint_ns": ""}}, cp, md, dict(cp["channel_versions"]))
    child = empty_checkpoint()
    child["channel_values"] = dict(values)
    child["channel_versions"] = dict(cp["channel_versions"])
    config2 = saver.put(config, child, {"source": "loop", "step": 0}, {})
    for cfg in (config, config2):
        tup = saver.get_tuple(cfg)
        assert tup.checkpoint["channel_values"] == values
        assert tup.checkpoint["channel_versions"] == {ch: version for ch in values}
        assert all(type(v) is int for v in tup.checkpoint["channel_versions"].values())
    listed = {t.config["configurable"]["checkpoint_id"]: t for t in saver.list(None)}
    first = listed[config["configurable"]["checkpoint_id"]]
    assert first.metadata["n"] == BIG and type(first.metadata["n"]) is int
    assert first.metadata["nested"] == {"v": [version]}
    assert saver.get_tuple(config).metadata["n"] == BIG
    assert [t.config for t in saver.list(None, filter={"n": BIG})] == [first.config]
    with pytest.raises(TypeError, match="64-bit"):  # the oracle refuses them
        InMemorySaver().put(config, cp, md, dict(cp["channel_versions"]))


@pytest.mark.parametrize("run_id", ["run\x00x", "run\udcffx"], ids=["nul", "surrogate"])
def test_delete_for_runs_with_a_run_id_no_text_column_holds(counted, run_id: str) -> None:
    """delete_for_runs(["a\\x00b"]) raised psycopg's DataError on Postgres, and a lone
    surrogate a UnicodeEncodeError: now a ConfigError naming it, nothing deleted, and
    the call with the real run id still works."""
    from checkpoint_pg import ConfigError  # noqa: PLC0415

    sim, unchanged = counted
    with pytest.raises(ConfigError, match="run id"):
        sim.saver.delete_for_runs([sim.run_id, run_id])
    unchanged()
    sim.saver.delete_for_runs([sim.run_id])
    assert list(sim.saver.list(sim.config())) == []


class PickleOnly:
    """msgpack refuses it: JsonPlusSerializer(pickle_fallback=True) pickles it."""

    def __init__(self, x: int = 1) -> None:
        self.x = x

    def __eq__(self, other: object) -> bool:
        return type(other) is PickleOnly and other.x == self.x


def typed(value: Any) -> Any:
    """``value`` with the type of every container and element spelled out (== takes
    an OrderedDict for a dict, and bytes for a bytearray)."""
    if isinstance(value, dict):
        return (type(value).__name__, [(k, typed(v)) for k, v in value.items()])
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [typed(v) for v in value])
    return (type(value).__name__, value)


def test_a_list_holding_a_pickled_element_reads_back_as_pickle_stored_it(make_saver) -> None:
    """With pickle_fallback, LangGraph pickles a list whole when one element needs it,
    so its tuples, bytearrays and OrderedDicts come back as they were (InMemorySaver).
    Stored element by element, the other elements went through msgpack alone and came
    back as lists, bytes and dicts: (1, 2) != [1, 2]. Such a list is now one object,
    as a channel value (new, or grown from a list stored element by element) and as a
    write, and reads back as InMemorySaver reads it."""
    from collections import OrderedDict  # noqa: PLC0415

    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer  # noqa: PLC0415

    serde = JsonPlusSerializer(pickle_fallback=True)
    start = ["m" * 80, (1, 2)]
    grown = [*start, PickleOnly(), bytearray(b"ba"), OrderedDict(a=1)]
    first, second = empty_checkpoint(), empty_checkpoint()
    first["channel_values"], first["channel_versions"] = {"items": start}, {"items": "1"}
    second["channel_values"], second["channel_versions"] = {"items": grown}, {"items": "2"}
    memory = InMemorySaver(serde=serde)
    with make_saver(serde=serde) as saver:
        for s in (memory, saver):
            config = s.put({"configurable": {"thread_id": "pickled", "checkpoint_ns": ""}}, first, {}, {"items": "1"})
            config = s.put(config, second, {}, {"items": "2"})
            s.put_writes(config, [("items", grown)], "task-2", "")
        expected = read_back(memory, config)
        assert typed(expected[0]["items"]) == typed(grown)
        assert typed(read_back(saver, config)) == typed(expected)
    with make_saver(serde=serde) as cold:
        assert typed(read_back(cold, config)) == typed(expected)


def test_a_filter_of_str_and_int_subclasses_matches_as_in_memory(saver) -> None:
    """Metadata took a StrEnum / IntEnum value (stored as its JSON str / int), but
    list(filter=...) and threads(filter=...) refused the same value with "metadata
    holds JSON values only (str ...)": a str subclass is a str. InMemorySaver matches
    it with ==; now so do both backends, a str subclass as a key too."""
    import enum  # noqa: PLC0415

    class Source(str, enum.Enum):
        LOOP = "loop"

    class Level(enum.IntEnum):
        HIGH = 3

    class Key(str):
        pass

    memory = InMemorySaver()
    cp = empty_checkpoint()
    for s in (memory, saver):
        s.put({"configurable": {"thread_id": "enum", "checkpoint_ns": ""}}, cp, {"source": Source.LOOP, "level": 3}, {})
    for flt in ({"source": Source.LOOP}, {"level": Level.HIGH}, {Key("source"): "loop"}, {"source": Key("loop")},
                {"source": Source.LOOP, "level": Level.HIGH}):
        assert [t.config for t in memory.list(None, filter=flt)] == [t.config for t in saver.list(None, filter=flt)] != []
        assert list(saver.threads(filter=flt)) == ["enum"]
    assert list(saver.list(None, filter={"level": Level.HIGH, "source": "other"})) == []


def test_list_before_an_empty_checkpoint_id_bounds_nothing(counted) -> None:
    """list(before={'configurable': {'checkpoint_id': ''}}) listed nothing: InMemorySaver
    takes an empty id as no bound (as get_tuple takes it as the newest checkpoint)."""
    sim, _ = counted
    memory = InMemorySaver()
    for tup in reversed(list(sim.saver.list(sim.config()))):
        memory.put(tup.parent_config or sim.config(), tup.checkpoint, tup.metadata, tup.checkpoint["channel_versions"])
    empty = {"configurable": {"checkpoint_id": ""}}
    ours = [t.config for t in sim.saver.list(sim.config(), before=empty)]
    assert ours == [t.config for t in memory.list(sim.config(), before=empty)]
    assert len(ours) == 3


HOSTILE_TEXT = "[/w] \x1b[2J\x1b]0;title\x07\x1b[31mred\x9b"


def test_the_cli_shows_stored_markup_and_control_characters_as_text(saver, saver_target, capsys) -> None:
    """Stored text is data: `history` of a thread whose metadata "source" held "[/w]"
    crashed with rich's MarkupError (so did the title for a thread id like "[/x]"), and
    every command wrote stored ESC sequences to the terminal as they were (clear the
    screen, set the window title, recolor). They are now shown as escapes."""
    from langchain_core.messages import HumanMessage  # noqa: PLC0415

    from clikit import cli  # noqa: PLC0415

    thread = "[/x]" + HOSTILE_TEXT
    first = empty_checkpoint()
    first["channel_values"] = {"messages": [HumanMessage(HOSTILE_TEXT, id="1")], "s": HOSTILE_TEXT}
    first["channel_versions"] = {"messages": "1", "s": "1"}
    config = saver.put({"configurable": {"thread_id": thread, "checkpoint_ns": ""}}, first,
                       {"source": HOSTILE_TEXT, "step": 0, HOSTILE_TEXT: 1}, {"messages": "1", "s": "1"})
    saver.put_writes(config, [("messages", [HumanMessage(HOSTILE_TEXT, id="2")])], "task" + HOSTILE_TEXT, "")
    second = empty_checkpoint()
    second["channel_values"] = {"messages": [HumanMessage(HOSTILE_TEXT, id="1")], "s": "[/v]" + HOSTILE_TEXT}
    second["channel_versions"] = {"messages": "1", "s": "2"}
    saver.put(config, second, {"source": "loop", "step": 1}, {"s": "2"})
    where = ["--url", saver_target.conn_string, *(["--prefix", saver_target.options["prefix"]] if saver_target.options else [])]
    for command in (["threads"], ["history", thread], ["show", thread], ["show", thread, "-1"],
                    ["diff", f"{thread}@-1", thread, "--all"], ["replay", thread, "--runs"], ["stats"],
                    ["copy", thread, "copy" + HOSTILE_TEXT, "--yes"]):
        code, out, err = cli(capsys, *command, *where)
        assert code == 0, (command, err)
        assert not any(c in out for c in "\x1b\x07\x9b"), (command, out)
        assert "\\x1b[2J" in out or command[0] in ("stats", "replay"), (command, out)


@pytest.mark.parametrize("where", [0, 1], ids=["message-first", "message-second"])
def test_a_write_stored_whole_is_not_repointed_at_its_message(make_saver, where: int) -> None:
    """A write holding a message without an id (add_messages gives it one later, in
    place) is repointed at the message object the next put stores. A write list with a
    pickled element is stored whole (one hash): the message at position 0 was paired
    with the whole list's hash, and the put then repointed the write at the message,
    which read back as that one message instead of the list; at position 1 put_writes
    raised IndexError. The write now reads back as written, as in InMemorySaver."""
    from langchain_core.messages import HumanMessage  # noqa: PLC0415
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer  # noqa: PLC0415

    serde = JsonPlusSerializer(pickle_fallback=True)
    memory = InMemorySaver(serde=serde)
    first, second = empty_checkpoint(), empty_checkpoint()
    first["channel_values"], first["channel_versions"] = {"messages": []}, {"messages": "1"}
    results = []
    with make_saver(serde=serde) as saver:
        for s in (memory, saver):
            msg = HumanMessage("hi")
            written = [PickleOnly(), PickleOnly(2)]
            written.insert(where, msg)
            config = s.put({"configurable": {"thread_id": "w", "checkpoint_ns": ""}}, first, {}, {"messages": "1"})
            s.put_writes(config, [("messages", written)], "task-1", "")
            msg.id = "m-1"  # as add_messages does, in place
            second["channel_values"], second["channel_versions"] = {"messages": [msg]}, {"messages": "2"}
            s.put(config, second, {}, {"messages": "2"})
            results.append(typed(s.get_tuple(config).pending_writes))
    with make_saver(serde=serde) as cold:
        results.append(typed(cold.get_tuple(config).pending_writes))
    assert results[0] == results[1] == results[2]
    assert results[0][1][0][1][2][0] == "list"


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
@pytest.mark.xfail(
    strict=True,
    reason="known gap: Postgres keeps metadata as jsonb, whose numeric prints 1e16 as "
    "10000000000000000 (read back an int) and -0.0 as 0; keeping float-ness needs metadata "
    "stored as text beside the jsonb (a migration of the table and the functions)",
)
def test_float_metadata_reads_back_as_a_float_on_postgres(saver) -> None:
    md = {"source": "input", "step": -1, "big": 1e16, "neg": -0.0}
    config = saver.put({"configurable": {"thread_id": "f", "checkpoint_ns": ""}}, empty_checkpoint(), md, {})
    got = saver.get_tuple(config).metadata
    assert type(got["big"]) is float and repr(got["neg"]) == "-0.0"
