"""Bad input: every refusal is a clear error from `CheckpointPgError`, and
nothing is half-written (the row counts of every table are unchanged).

Decisions tested here (see also core/config.py):

* thread ids are ``str`` (a ``uuid.UUID`` is taken as its canonical string);
  ints are refused, so ``1`` and ``"1"`` never silently become one thread;
* NUL characters in *values* round trip (values are stored as bytes); in
  metadata (stored as JSON / JSONB) and in identifiers they are refused;
* a value is checked against ``max_value_bytes`` one stored object at a time:
  a list is stored element by element, so the limit applies per element.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from faultkit import SimThread, ids_of, qualified, raw_connection, row_counts


class PickleOnly:
    """Instances serialize with pickle only (msgpack refuses a plain class)."""

    def __init__(self) -> None:
        self.x = 1


def simple_checkpoint(saver: Any, values: dict[str, Any]) -> tuple[dict, dict]:
    cp = empty_checkpoint()
    versions = {ch: saver.get_next_version(None, None) for ch in values}
    cp["channel_values"] = dict(values)
    cp["channel_versions"] = dict(versions)
    return cp, versions


# --------------------------------------------------------------------------
# Configs and thread ids
# --------------------------------------------------------------------------

NO_THREAD = [
    pytest.param({}, id="empty-config"),
    pytest.param({"configurable": {}}, id="no-thread_id"),
    pytest.param({"configurable": {"thread_id": None}}, id="thread_id-None"),
    pytest.param({"configurable": {"checkpoint_ns": "", "checkpoint_id": "x"}}, id="only-ns-and-id"),
]


@pytest.mark.parametrize("config", NO_THREAD)
def test_config_without_thread_id(counted, config: dict) -> None:
    from checkpoint_pg import CheckpointPgError, ConfigError  # noqa: PLC0415

    sim, unchanged = counted
    saver = sim.saver
    cp, versions = simple_checkpoint(saver, {"a": 1})
    calls = [
        lambda: saver.get_tuple(config),
        lambda: saver.put(config, cp, {}, versions),
        lambda: saver.put_writes(config, [("a", 1)], "task"),
        lambda: list(saver.list(config)),
    ]
    for call in calls:
        with pytest.raises(ConfigError, match="thread_id") as info:
            call()
        assert isinstance(info.value, CheckpointPgError)
    unchanged()


def test_put_writes_without_checkpoint_id(counted) -> None:
    from checkpoint_pg import ConfigError  # noqa: PLC0415

    sim, unchanged = counted
    with pytest.raises(ConfigError, match="checkpoint_id"):
        sim.saver.put_writes(sim.config(), [("a", 1)], "task")
    unchanged()


def test_writes_given_as_a_generator_are_stored(saver) -> None:
    """put_writes read its writes twice (channels checked, then values stored): a
    generator's writes were lost without an error."""
    sim = SimThread(saver, f"gen-{uuid.uuid4().hex[:8]}")
    sim.run_step()
    config = sim.config(sim.order[-1])
    saver.put_writes(config, ((ch, i) for i, ch in enumerate(["g1", "g2"])), "task")
    assert [(w[1], w[2]) for w in saver.get_tuple(config).pending_writes] == [("g1", 0), ("g2", 1)]


@pytest.mark.parametrize(
    "writes",
    [{"ab": 1}, "ab", 5, [("a", 1), ("b",)], [("a", 1), "xy"], [("a", 1, 2)]],
    ids=["dict", "str", "int", "short-pair", "str-pair", "triple"],
)
def test_writes_that_are_not_pairs(counted, writes: Any) -> None:
    """A dict was iterated by key ({"ab": 1} stored channel "a" with value "b"), a
    str likewise; other shapes raised TypeError/ValueError: a ConfigError, nothing stored."""
    from checkpoint_pg import ConfigError  # noqa: PLC0415

    sim, unchanged = counted
    with pytest.raises(ConfigError, match="pair"):
        sim.saver.put_writes(sim.config(sim.order[-1]), writes, "task")
    unchanged()


@pytest.mark.parametrize("bad", [1, 0, True, 1.0, b"1", ["1"]], ids=repr)
def test_non_str_thread_ids_are_refused(counted, bad: Any) -> None:
    """1 and "1" must not alias: a non-str thread id is refused, never converted."""
    from checkpoint_pg import ConfigError  # noqa: PLC0415

    sim, unchanged = counted
    saver = sim.saver
    config = {"configurable": {"thread_id": bad, "checkpoint_ns": ""}}
    cp, versions = simple_checkpoint(saver, {"a": 1})
    calls = [
        lambda: saver.put(config, cp, {}, versions),
        lambda: saver.get_tuple(config),
        lambda: list(saver.list(config)),
        lambda: saver.put_writes({**config, "configurable": {**config["configurable"], "checkpoint_id": "c"}}, [("a", 1)], "t"),
        lambda: saver.delete_thread(bad),
        lambda: saver.copy_thread(bad, "elsewhere"),
        lambda: saver.copy_thread(sim.thread_id, bad),
        lambda: saver.prune([bad]),
    ]
    for call in calls:
        with pytest.raises(ConfigError, match="thread_id|str") as info:
            call()
        assert "'1'" in str(info.value) or "str" in str(info.value)
    unchanged()


def test_thread_1_and_thread_str_1_never_alias(saver) -> None:
    from checkpoint_pg import ConfigError  # noqa: PLC0415

    sim = SimThread(saver, "1")
    sim.run_step()
    with pytest.raises(ConfigError):
        saver.get_tuple({"configurable": {"thread_id": 1}})
    assert saver.get_tuple({"configurable": {"thread_id": "1"}}) is not None
    assert saver.get_tuple({"configurable": {"thread_id": "01"}}) is None
    assert saver.get_tuple({"configurable": {"thread_id": " 1"}}) is None


def test_uuid_thread_id_is_its_canonical_string(saver) -> None:
    """Documented alias: uuid.UUID(x) and str(uuid.UUID(x)) are the same thread."""
    u = uuid.uuid4()
    cp, versions = simple_checkpoint(saver, {"a": 1})
    saver.put({"configurable": {"thread_id": u, "checkpoint_ns": ""}}, cp, {}, versions)
    tup = saver.get_tuple({"configurable": {"thread_id": str(u)}})
    assert tup is not None and tup.config["configurable"]["thread_id"] == str(u)
    assert saver.get_tuple({"configurable": {"thread_id": str(u).upper()}}) is None


# --------------------------------------------------------------------------
# Values the serializer cannot handle, values over the limit
# --------------------------------------------------------------------------

UNSERIALIZABLE = [
    pytest.param(PickleOnly(), id="plain-object"),
    pytest.param(lambda: 1, id="lambda"),
    pytest.param([1, 2, PickleOnly()], id="in-a-list"),
    pytest.param({"deep": {"er": PickleOnly()}}, id="nested-in-dict"),
    pytest.param(iter([1]), id="iterator"),
    pytest.param(complex(1, 2), id="complex"),
]


@pytest.mark.parametrize("value", UNSERIALIZABLE)
def test_unserializable_channel_value(counted, value: Any) -> None:
    from checkpoint_pg import CheckpointPgError, SerializationError  # noqa: PLC0415

    sim, unchanged = counted
    st = sim.prepare()
    st.checkpoint["channel_values"]["bad"] = value
    st.checkpoint["channel_versions"]["bad"] = st.new_versions["bad"] = sim.saver.get_next_version(None, None)
    with pytest.raises(SerializationError) as info:
        sim.send_put(st)
    assert isinstance(info.value, CheckpointPgError)
    assert "serialize" in str(info.value)
    unchanged()
    assert sim.verify() == 3


@pytest.mark.parametrize("value", UNSERIALIZABLE)
def test_unserializable_write(counted, value: Any) -> None:
    from checkpoint_pg import SerializationError  # noqa: PLC0415

    sim, unchanged = counted
    with pytest.raises(SerializationError):
        sim.saver.put_writes(sim.config(sim.order[-1]), [("ok", 1), ("bad", value)], "task")
    unchanged()
    assert sim.verify() == 3


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param({"obj": PickleOnly()}, id="object"),
        pytest.param({"nan": float("nan")}, id="nan"),
        pytest.param({"inf": [float("inf")]}, id="inf-in-list"),
        pytest.param({"k": {1: "int key"}}, id="int-key"),
        pytest.param({"b": b"bytes"}, id="bytes"),
    ],
)
def test_metadata_that_is_not_json(counted, metadata: dict) -> None:
    from checkpoint_pg import SerializationError  # noqa: PLC0415

    sim, unchanged = counted
    st = sim.prepare()
    st.metadata.update(metadata)
    with pytest.raises(SerializationError, match="metadata"):
        sim.send_put(st)
    unchanged()


def test_checkpoint_fields_that_are_not_json(counted) -> None:
    from checkpoint_pg import SerializationError  # noqa: PLC0415

    sim, unchanged = counted
    st = sim.prepare()
    st.checkpoint["versions_seen"] = {"node": {"a": PickleOnly()}}
    with pytest.raises(SerializationError):
        sim.send_put(st)
    unchanged()


def test_value_over_max_value_bytes(make_saver, saver_target, backend: str) -> None:
    from checkpoint_pg import CheckpointPgError, ValueTooLargeError  # noqa: PLC0415

    with make_saver(max_value_bytes=1000) as saver:
        sim = SimThread(saver, f"big-{uuid.uuid4().hex[:8]}")
        sim.run_step()  # the doc value of step 0 is well under 1000 bytes
        before = row_counts(backend, saver_target.conn_string, saver)
        st = sim.prepare()
        st.checkpoint["channel_values"]["big"] = "x" * 5000
        st.checkpoint["channel_versions"]["big"] = st.new_versions["big"] = saver.get_next_version(None, None)
        with pytest.raises(ValueTooLargeError) as info:
            sim.send_put(st)
        assert isinstance(info.value, CheckpointPgError)
        assert info.value.limit == 1000 and info.value.size > 1000
        assert "max_value_bytes" in str(info.value)
        with pytest.raises(ValueTooLargeError):
            saver.put_writes(sim.config(sim.order[-1]), [("small", 1), ("big", b"y" * 5000)], "t")
        assert row_counts(backend, saver_target.conn_string, saver) == before
        saver.get_tuple(sim.config())  # the next run loads the thread first
        # the limit is per stored object: a long list of small elements is fine
        st = sim.prepare()
        st.checkpoint["channel_values"]["many"] = [f"item {i}" for i in range(500)]
        st.checkpoint["channel_versions"]["many"] = st.new_versions["many"] = saver.get_next_version(None, None)
        sim.send_put(st)
        assert sim.verify() == 2


# --------------------------------------------------------------------------
# NUL characters
# --------------------------------------------------------------------------

NUL_VALUES = [
    "a\x00b",
    "\x00",
    {"key\x00": "va\x00lue", "nested": ["\x00", {"\x00": "\x00"}]},
    b"\x00\x01\x00",
    ["plain", "with\x00nul"],
]


def test_nul_in_values_round_trips(saver) -> None:
    sim = SimThread(saver, f"nul-{uuid.uuid4().hex[:8]}")
    sim.run_step()
    st = sim.prepare()
    for i, value in enumerate(NUL_VALUES):
        st.checkpoint["channel_values"][f"nul{i}"] = value
        st.checkpoint["channel_versions"][f"nul{i}"] = st.new_versions[f"nul{i}"] = saver.get_next_version(None, None)
    st.writes = [(f"nul{i}", v) for i, v in enumerate(NUL_VALUES)]
    sim.send_writes(st)
    sim.send_put(st)
    tup = saver.get_tuple(sim.config())
    for i, value in enumerate(NUL_VALUES):
        assert tup.checkpoint["channel_values"][f"nul{i}"] == value
    parent = saver.get_tuple(sim.config(sim.order[0]))
    assert [w[2] for w in parent.pending_writes] == NUL_VALUES
    assert sim.verify() == 2


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param({"note": "a\x00b"}, id="top-level-value"),
        pytest.param({"note\x00": "v"}, id="key"),
        pytest.param({"nested": {"note": "a\x00b"}}, id="nested-value"),
        pytest.param({"list": ["ok", "\x00"]}, id="in-list"),
    ],
)
def test_nul_in_metadata_is_a_clear_error(counted, metadata: dict) -> None:
    """JSONB cannot hold NUL: refused on both backends (the same rule everywhere),
    never silently altered (LangGraph's helper strips NULs from top-level
    values: the saver must refuse before that, or the stored metadata differs
    from what was given)."""
    from checkpoint_pg import CheckpointPgError, SerializationError  # noqa: PLC0415

    sim, unchanged = counted
    st = sim.prepare()
    st.metadata.update(metadata)
    with pytest.raises(SerializationError, match="NUL") as info:
        sim.send_put(st)
    assert isinstance(info.value, CheckpointPgError)
    unchanged()


@pytest.mark.parametrize("where", ["thread_id", "checkpoint_ns", "checkpoint_id"])
def test_nul_in_config_ids_is_a_clear_error(counted, where: str) -> None:
    from checkpoint_pg import ConfigError  # noqa: PLC0415

    sim, unchanged = counted
    st = sim.prepare()
    config = sim.config(st.parent)
    config["configurable"][where] = "x\x00y"
    if where == "checkpoint_id":
        st.checkpoint["id"] = "x\x00y"
        config["configurable"]["checkpoint_id"] = st.parent
    with pytest.raises(ConfigError):
        sim.saver.put(config, st.checkpoint, st.metadata, st.new_versions)
    with pytest.raises(ConfigError):
        sim.saver.get_tuple({"configurable": {"thread_id": sim.thread_id, where: "x\x00y"}})
    unchanged()


# A lone surrogate: what Python makes of bytes it cannot decode (undecodable
# command-line arguments and file names, errors="surrogateescape"). UTF-8
# cannot encode it, so no text column of either backend can hold it.
SURROGATE = "x\udcffy"


@pytest.mark.parametrize(
    "where",
    ["thread_id", "checkpoint_ns", "checkpoint_id", "md-value", "md-key", "md-nested",
     "task_id", "channel", "task_path", "filter"],
)
def test_lone_surrogates_in_text_are_a_clear_error(counted, where: str) -> None:
    """Ids, channel names, task paths, metadata and filters with a lone surrogate are
    refused with our error naming it, before anything is written: not the driver's
    UnicodeEncodeError (channel values are the serializer's, as in InMemorySaver)."""
    from checkpoint_pg import CheckpointPgError  # noqa: PLC0415

    sim, unchanged = counted
    saver = sim.saver
    st = sim.prepare()
    config = sim.config(st.parent)
    with pytest.raises(CheckpointPgError, match="surrogate"):
        if where in ("thread_id", "checkpoint_ns"):
            config["configurable"][where] = SURROGATE
            saver.put(config, st.checkpoint, st.metadata, st.new_versions)
        elif where == "checkpoint_id":
            st.checkpoint["id"] = SURROGATE
            saver.put(config, st.checkpoint, st.metadata, st.new_versions)
        elif where.startswith("md-"):
            st.metadata.update(
                {"md-value": {"k": SURROGATE}, "md-key": {SURROGATE: 1}, "md-nested": {"k": [{"j": SURROGATE}]}}[where]
            )
            sim.send_put(st)
        elif where == "filter":
            list(saver.list(None, filter={"k": [SURROGATE]}))
        else:
            args = {"task_id": (("ch", 1), SURROGATE, ""), "channel": ((SURROGATE, 1), "task", ""),
                    "task_path": (("ch", 1), "task", SURROGATE)}[where]
            saver.put_writes(sim.config(sim.order[-1]), [args[0]], args[1], args[2])
    unchanged()


@pytest.mark.parametrize("where", ["task_id", "channel", "task_path", "checkpoint_channel"])
def test_nul_in_write_identifiers(counted, where: str) -> None:
    """NUL in a task id, a channel name or a task path: stored and read back
    exactly, or refused with a CheckpointPgError (before anything is written)
    -- never a raw driver error, never accepted and then lost."""
    from checkpoint_pg import CheckpointPgError  # noqa: PLC0415

    sim, unchanged = counted
    saver = sim.saver
    cid = sim.order[-1]
    task, channel, path = "task", "chan", ""
    try:
        if where == "checkpoint_channel":
            st = sim.prepare()
            st.checkpoint["channel_values"]["ch\x00x"] = 1
            st.checkpoint["channel_versions"]["ch\x00x"] = st.new_versions["ch\x00x"] = saver.get_next_version(None, None)
            sim.send_put(st)
            assert saver.get_tuple(sim.config()).checkpoint["channel_values"]["ch\x00x"] == 1
            return
        if where == "task_id":
            task = "ta\x00sk"
        elif where == "channel":
            channel = "ch\x00an"
        else:
            path = "pa\x00th"
        saver.put_writes(sim.config(cid), [(channel, 1)], task, path)
    except CheckpointPgError:
        unchanged()
        return
    assert (task, channel, 1) in saver.get_tuple(sim.config(cid)).pending_writes


# --------------------------------------------------------------------------
# Metadata filters: keys and values are data, never SQL (or JSON paths)
# --------------------------------------------------------------------------

HOSTILE_KEYS = [
    "'; DROP TABLE cpg_checkpoints; --",
    "source') OR ('1'='1",
    'source" OR "1"="1',
    "source' OR 1=1 --",
    "step}') OR true --",
    "$.source",
    "$",
    "source.x",
    "parents.a",
    "tags[0]",
    "*",
    "%",
    "_",
    "\\",
    "source\\",
    "' UNION SELECT NULL, NULL, NULL, NULL, NULL, NULL --",
    "?",
    "%s",
    ":t",
    "%(t)s",
]


def test_filter_keys_trying_sql_injection_match_nothing(saver, saver_target, backend: str) -> None:
    sim = SimThread(saver, f"inject-{uuid.uuid4().hex[:8]}")
    for _ in range(3):
        sim.run_step()
    st = sim.prepare()
    # real metadata the hostile keys could reach by path tricks
    st.metadata.update({"parents": {"a": 1}, "tags": ["t0"], "weird'key\"": "v'al\"ue"})
    sim.send_writes(st)
    sim.send_put(st)
    before = row_counts(backend, saver_target.conn_string, saver)
    everything = list(saver.list(None))
    assert len(everything) == 4
    for key in HOSTILE_KEYS:
        for value in ["loop", 1, "x' OR '1'='1", True, {"a": 1}, ["t0"]]:
            found = list(saver.list(None, filter={key: value}))
            assert found == [], f"filter {{{key!r}: {value!r}}} matched {ids_of(found)}"
            found = list(saver.list(sim.config(), filter={key: value}))
            assert found == [], f"filter {{{key!r}: {value!r}}} matched {ids_of(found)}"
        # no checkpoint has the key: as metadata.get(key) == None, all match
        assert ids_of(saver.list(sim.config(), filter={key: None})) == ids_of(everything)
    # hostile *values* for a real key match nothing either
    for value in ["loop' OR '1'='1", "loop\" OR \"1\"=\"1", "%", "_", "loop%", "' OR 1=1 --"]:
        assert list(saver.list(None, filter={"source": value})) == []
    # the keys were compared as data: a key with quotes matches itself exactly
    assert ids_of(saver.list(None, filter={"weird'key\"": "v'al\"ue"})) == [sim.order[-1]]
    assert len(list(saver.list(None, filter={"source": "loop"}))) == 4
    # and nothing was changed by any of it
    assert row_counts(backend, saver_target.conn_string, saver) == before
    assert ids_of(saver.list(None)) == ids_of(everything)


def test_filter_that_is_not_a_mapping_of_str(counted) -> None:
    from checkpoint_pg import ConfigError  # noqa: PLC0415

    sim, unchanged = counted
    for bad in [{1: "x"}, [("source", "loop")], "source"]:
        with pytest.raises(ConfigError):
            list(sim.saver.list(None, filter=bad))  # type: ignore[arg-type]
    unchanged()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"filter": {"a\x00b": 1}},
        {"before": {"configurable": {"checkpoint_id": "a\x00"}}},
        {"before": {"configurable": {"checkpoint_id": 5}}},
        {"before": "checkpoint-id"},
        {"limit": "1"},
        {"limit": 1.5},
        {"limit": True},
    ],
    ids=["nul-filter-key", "nul-before-id", "int-before-id", "str-before", "str-limit", "float-limit", "bool-limit"],
)
def test_list_arguments_of_the_wrong_kind_are_config_errors(counted, kwargs: dict) -> None:
    """On Postgres a NUL in a filter key or before's id met the driver's error, a float
    or bool limit or an int before id a SchemaVersionError saying the tables are
    missing (the function was not found for those argument types); on SQLite a
    float limit met sqlite3's "datatype mismatch", a str limit or before a
    TypeError/AttributeError, and the NUL filter key silently matched nothing."""
    from checkpoint_pg import ConfigError  # noqa: PLC0415

    sim, unchanged = counted
    for config in (None, sim.config()):
        with pytest.raises(ConfigError):
            list(sim.saver.list(config, **kwargs))
    unchanged()


def test_filter_value_that_metadata_cannot_hold(counted) -> None:
    """Metadata is plain JSON: a filter value that is not (a datetime, NaN, a NUL in a
    string, a set) could match nothing, and says so before any query, for one thread and
    across threads, and in the inspector's thread listing."""
    import datetime  # noqa: PLC0415

    from checkpoint_pg import ConfigError  # noqa: PLC0415
    from checkpoint_pg.inspect import Inspector  # noqa: PLC0415

    sim, unchanged = counted
    for value in [datetime.datetime(2026, 1, 1), float("nan"), "a\x00b", {"x"}, {"k": object()}]:
        for config in (None, sim.config()):
            with pytest.raises(ConfigError, match="metadata holds JSON values only"):
                list(sim.saver.list(config, filter={"when": value}))
        with pytest.raises(ConfigError, match="metadata holds JSON values only"):
            Inspector(sim.saver).threads(filter={"when": value})
    unchanged()


# --------------------------------------------------------------------------
# Schema revisions
# --------------------------------------------------------------------------


def set_revision(backend: str, conn_string: str, saver: Any, revision: str) -> None:
    """Stamp the version table as if the database were at *revision*."""
    name = f'"{saver.tables.version_table}"'
    table = f'"{saver.tables.schema}".{name}' if saver.tables.schema else name
    with raw_connection(backend, conn_string) as conn:
        q = "?" if backend == "sqlite" else "%s"
        conn.execute(f"UPDATE {table} SET version_num = {q}", (revision,))


def older_revisions() -> list[str]:
    from checkpoint_pg import migrate  # noqa: PLC0415

    return [rev for rev, _, _ in migrate.history() if rev != migrate.head()]


def test_database_at_an_older_revision(make_saver, saver_target, backend: str) -> None:
    """A database stamped at each older revision: every call is refused with
    SchemaVersionError naming `checkpoint-pg migrate upgrade`, nothing is written."""
    from checkpoint_pg import CheckpointPgError, SchemaVersionError, migrate  # noqa: PLC0415

    olds = older_revisions()
    assert olds, "the history has a single revision: no older one to test"
    from checkpoint_pg import PostgresSaver, SqliteSaver  # noqa: PLC0415

    cls = SqliteSaver if backend == "sqlite" else PostgresSaver
    with make_saver() as saver:
        sim = SimThread(saver, f"old-{uuid.uuid4().hex[:8]}")
        sim.run_step()
    steps = 1
    for rev in olds:
        # the stamp says "older" while the tables are those of head: what a
        # saver may write then is exactly nothing
        set_revision(backend, saver_target.conn_string, saver, rev)
        with cls.from_conn_string(saver_target.conn_string, **saver_target.options) as stale:
            before = row_counts(backend, saver_target.conn_string, stale)
            sim.saver = stale
            for call in (lambda: stale.get_tuple(sim.config()), sim.run_step):
                with pytest.raises(SchemaVersionError) as info:
                    call()
                assert isinstance(info.value, CheckpointPgError)
                assert "checkpoint-pg migrate upgrade" in str(info.value)
                assert info.value.current == rev and info.value.expected == migrate.head()
            assert row_counts(backend, saver_target.conn_string, stale) == before
            # what the message says to do (stamp back: the tables are head's already)
            set_revision(backend, saver_target.conn_string, saver, migrate.head())
            sim.run_step()
            steps += 1
            assert sim.verify() == steps


def test_database_at_a_newer_revision(make_saver, saver_target, backend: str) -> None:
    """A revision this package does not know (a newer release migrated the
    database): refused, naming the revision and what to do; nothing written."""
    from checkpoint_pg import PostgresSaver, SchemaVersionError, SqliteSaver, migrate  # noqa: PLC0415

    with make_saver() as saver:
        sim = SimThread(saver, f"new-{uuid.uuid4().hex[:8]}")
        sim.run_step()
        set_revision(backend, saver_target.conn_string, saver, "9999_from_the_future")
    cls = SqliteSaver if backend == "sqlite" else PostgresSaver
    with cls.from_conn_string(saver_target.conn_string, **saver_target.options) as stale:
        before = row_counts(backend, saver_target.conn_string, stale)
        sim.saver = stale
        with pytest.raises(SchemaVersionError) as info:
            sim.run_step()
        message = str(info.value)
        assert "9999_from_the_future" in message and migrate.head() in message
        assert "checkpoint-pg" in message and "upgrade" in message
        with pytest.raises(SchemaVersionError):
            stale.setup()  # never "downgrades" a database it does not understand
        assert row_counts(backend, saver_target.conn_string, stale) == before


@pytest.mark.parametrize("target", ["previous", "base"])
def test_database_downgraded_under_a_running_saver(make_saver, saver_target, backend: str, target: str) -> None:
    """The saver checked the revision when it started; then someone migrates the
    database down (a rollback of a deploy) to the previous revision or to base
    (no tables). Each later call either still works (nothing it needs was
    removed) or fails with SchemaVersionError naming the upgrade command --
    never a raw driver error about a missing table or function."""
    import sqlalchemy as sa  # noqa: PLC0415

    from checkpoint_pg import SchemaVersionError, migrate  # noqa: PLC0415

    with make_saver() as saver:
        sim = SimThread(saver, f"down-{uuid.uuid4().hex[:8]}")
        for _ in range(2):
            sim.run_step()
        revision = older_revisions()[-1] if target == "previous" else "base"
        if backend == "sqlite":
            from checkpoint_pg.sqlite import path_of  # noqa: PLC0415

            engine = sa.create_engine(f"sqlite:///{path_of(saver_target.conn_string)}")
        else:
            engine = sa.create_engine(saver_target.conn_string.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            with engine.connect() as conn:
                migrate.downgrade(conn, saver.tables, revision)
        finally:
            engine.dispose()
        calls = {
            "put_writes+put": sim.run_step,
            "get_tuple": lambda: saver.get_tuple(sim.config()),
            "list": lambda: list(saver.list(sim.config())),
            "delete_thread": lambda: saver.delete_thread("another"),
        }
        refused = []
        for name, call in calls.items():
            try:
                call()
            except SchemaVersionError as exc:
                assert "checkpoint-pg migrate upgrade" in str(exc), str(exc)
                refused.append(name)
        if target == "base":
            assert sorted(refused) == sorted(calls)


# --------------------------------------------------------------------------
# URLs and drivers
# --------------------------------------------------------------------------


async def _enter(cls: Any, url: str) -> None:
    """Enter and leave ``cls.from_conn_string(url)``, sync or async as the class is."""
    if cls.__name__.startswith("Async"):
        async with cls.from_conn_string(url):
            pass
    else:
        with cls.from_conn_string(url):
            pass


@pytest.mark.parametrize(
    "cls_name, url",
    [
        ("PostgresSaver", "mysql://user@localhost/db"),
        ("PostgresSaver", "sqlite:///tmp/x.db"),
        ("PostgresSaver", "postgresql+asyncpg://u@h/db"),
        ("PostgresSaver", "redis://localhost"),
        ("AsyncPostgresSaver", "mysql://user@localhost/db"),
        ("SqliteSaver", "mysql://user@localhost/db"),
        ("SqliteSaver", "postgresql://postgres@127.0.0.1/postgres"),
        ("SqliteSaver", ""),
        ("AsyncSqliteSaver", "mysql://user@localhost/db"),
    ],
)
async def test_unknown_url_scheme(cls_name: str, url: str) -> None:
    import checkpoint_pg  # noqa: PLC0415
    from checkpoint_pg import CheckpointPgError, ConfigError  # noqa: PLC0415

    cls = getattr(checkpoint_pg, cls_name)
    with pytest.raises(ConfigError) as info:
        await _enter(cls, url)
    assert isinstance(info.value, CheckpointPgError)
    scheme = url.split("://", 1)[0]
    if scheme:
        assert scheme in str(info.value)


@pytest.mark.parametrize(
    "cls_name, url, other",
    [
        ("PostgresSaver", "agent.db", "SqliteSaver"),
        ("AsyncPostgresSaver", "sqlite:///agent.db", "AsyncSqliteSaver"),
        ("SqliteSaver", "postgresql://app@db/agents", "PostgresSaver"),
        ("AsyncSqliteSaver", "postgres://app@db/agents", "AsyncPostgresSaver"),
    ],
)
async def test_a_url_of_the_other_backend_names_the_saver_for_it(
    cls_name: str, url: str, other: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SQLite path given to a Postgres saver (or a postgresql:// URL to a SQLite one) was
    called an "unsupported database URL scheme", and the advice named the very form given:
    the message says which saver takes it."""
    import checkpoint_pg  # noqa: PLC0415
    from checkpoint_pg import ConfigError  # noqa: PLC0415

    monkeypatch.chdir(tmp_path)
    cls = getattr(checkpoint_pg, cls_name)
    with pytest.raises(ConfigError) as info:
        await _enter(cls, url)
    text = str(info.value)
    assert other in text and "unsupported" not in text, text
    assert list(tmp_path.iterdir()) == []


async def test_from_conn_string_takes_a_libpq_key_value_string(pg_url: str) -> None:
    """"host=db dbname=app" (what psycopg.connect and langgraph-checkpoint-postgres's
    from_conn_string take) was refused as an unsupported URL scheme."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo  # noqa: PLC0415

    from checkpoint_pg import AsyncPostgresSaver, PostgresSaver  # noqa: PLC0415

    dsn = make_conninfo("", **conninfo_to_dict(pg_url))
    assert "://" not in dsn
    config = {"configurable": {"thread_id": "kv", "checkpoint_ns": ""}}
    pfx = f"kv{uuid.uuid4().hex[:8]}_"
    with PostgresSaver.from_conn_string(dsn, prefix=pfx) as saver:
        saver.setup()
        saver.get_tuple(config)
    async with AsyncPostgresSaver.from_conn_string(dsn, prefix=pfx) as asaver:
        await asaver.asetup()
        await asaver.aget_tuple(config)


@pytest.mark.parametrize("cls_name", ["PostgresSaver", "AsyncPostgresSaver"])
async def test_from_conn_string_on_a_wrong_database_fails_at_once_saying_why(
    pg_url: str, cls_name: str
) -> None:
    """A URL naming a database (or role, or server) that is not there fails at once with the
    server's own error, as langgraph-checkpoint-postgres's does: it waited out the pool's 30 s
    of retries and raised psycopg_pool's PoolTimeout, "pool initialization incomplete",
    which does not say why (the reason went only to the log)."""
    import time  # noqa: PLC0415

    import psycopg  # noqa: PLC0415

    from fixtures.postgres import with_dbname  # noqa: PLC0415

    import checkpoint_pg  # noqa: PLC0415

    cls = getattr(checkpoint_pg, cls_name)
    missing = f"cpg_missing_{uuid.uuid4().hex[:8]}"
    url = with_dbname(pg_url, missing)
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError, match=f'database "{missing}" does not exist'):
        await _enter(cls, url)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("url", ["sqlite://agent.db", "sqlite://localhost/agent.db"])
def test_sqlite_url_with_two_slashes_names_the_three_slash_form(url: str) -> None:
    """sqlite://agent.db is SQLite's scheme with a host part, not an unsupported scheme: the error
    says how to write the path (sqlite:///relative or sqlite:////absolute) instead."""
    from checkpoint_pg import ConfigError, SqliteSaver  # noqa: PLC0415

    with pytest.raises(ConfigError) as info:
        with SqliteSaver.from_conn_string(url):
            pass
    text = str(info.value)
    assert "unsupported" not in text and "sqlite:///" in text and "sqlite:////" in text, text


def test_wrong_connection_object() -> None:
    from checkpoint_pg import ConfigError, PostgresSaver  # noqa: PLC0415

    for bad in (123, "postgresql://x@y/z", object()):
        with pytest.raises(ConfigError):
            PostgresSaver(bad)


MISSING_DRIVER_CHILD = textwrap.dedent(
    """
    import sys
    for name in sys.argv[1].split(","):
        sys.modules[name] = None  # "import psycopg" now raises ImportError
    import checkpoint_pg
    from checkpoint_pg import CheckpointPgError, MissingDriverError, SqliteSaver

    # SQLite needs no driver
    with SqliteSaver.from_conn_string(":memory:") as saver:
        saver.setup()
    for how in ("from", "attr", "module"):
        try:
            if how == "from":
                from checkpoint_pg import PostgresSaver
            elif how == "attr":
                checkpoint_pg.AsyncPostgresSaver
            else:
                import checkpoint_pg.postgres
        except MissingDriverError as exc:
            assert isinstance(exc, CheckpointPgError) and isinstance(exc, ImportError)
            print(how, "|", exc)
        else:
            print(how, "| NO ERROR")
    """
)


@pytest.mark.parametrize("hidden", ["psycopg", "psycopg_pool", "psycopg,psycopg_pool"])
def test_missing_driver_names_the_extra(hidden: str) -> None:
    from test_concurrency import subprocess_env  # noqa: PLC0415

    res = subprocess.run(
        [sys.executable, "-c", MISSING_DRIVER_CHILD, hidden],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [ln for ln in res.stdout.splitlines() if "|" in ln]
    assert len(lines) == 3, res.stdout
    for line in lines:
        assert "NO ERROR" not in line, line
        assert "checkpoint-pg[postgres]" in line, line
        assert "pip install" in line, line


def test_one_id_as_a_str_is_refused_not_read_as_its_characters(saver) -> None:
    """prune("ab") would prune threads "a" and "b"; delete_for_runs("run") runs
    "r", "u" and "n". A str where a list of ids belongs is a ConfigError."""
    from checkpoint_pg import ConfigError  # noqa: PLC0415

    with pytest.raises(ConfigError, match=r"thread_ids must be a list of ids, got 'ab'; pass \['ab'\]"):
        saver.prune("ab", strategy="delete")
    with pytest.raises(ConfigError, match="run_ids must be a list of ids"):
        saver.delete_for_runs("run")
    # get_delta_channel_history(channels="messages") answered for channels "m", "e", "s"...
    cp, versions = simple_checkpoint(saver, {"messages": ["hi"]})
    cfg = saver.put({"configurable": {"thread_id": "delta-str", "checkpoint_ns": ""}}, cp, {}, versions)
    with pytest.raises(ConfigError, match=r"channels must be a list of ids, got 'messages'"):
        saver.get_delta_channel_history(config=cfg, channels="messages")
    with pytest.raises(ConfigError, match="channel must be a str"):
        saver.get_delta_channel_history(config=cfg, channels=[1])
    assert set(saver.get_delta_channel_history(config=cfg, channels=["messages"])) == {"messages"}


# --------------------------------------------------------------------------
# Limits: nesting, key sizes, a file locked too long, options
# --------------------------------------------------------------------------


def _deep(n: int) -> Any:
    value: Any = "leaf"
    for _ in range(n):
        value = {"k": value}
    return value


def test_metadata_and_filters_nested_too_deeply_are_clear_errors(counted) -> None:
    """Not a bare RecursionError; nothing stored."""
    from checkpoint_pg import ConfigError, SerializationError  # noqa: PLC0415

    sim, unchanged = counted
    st = sim.prepare()
    st.metadata["deep"] = _deep(5000)
    with pytest.raises(SerializationError, match="nested too deeply"):
        sim.send_put(st)
    with pytest.raises(ConfigError, match="nested too deeply"):
        list(sim.saver.list(None, filter={"deep": _deep(5000)}))
    unchanged()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
@pytest.mark.parametrize("where", ["thread_id", "checkpoint_ns", "task_id"])
def test_ids_too_long_for_a_postgres_index_are_a_clear_error(counted, where: str) -> None:
    """Postgres indexes at most ~2,700 bytes per key: a longer id is our ConfigError
    naming the limit (not psycopg's ProgramLimitExceeded), and nothing is stored."""
    import random
    import string

    from checkpoint_pg import ConfigError  # noqa: PLC0415

    sim, unchanged = counted
    rng = random.Random(5)
    long_id = "".join(rng.choices(string.ascii_letters, k=4000))  # incompressible
    with pytest.raises(ConfigError, match="too long for Postgres to index"):
        if where == "task_id":
            sim.saver.put_writes(sim.config(sim.order[-1]), [("ch", 1)], long_id)
        else:  # a first checkpoint of a thread or namespace
            cp, versions = simple_checkpoint(sim.saver, {"x": 1})
            config = {"configurable": {"thread_id": sim.thread_id, "checkpoint_ns": "", where: long_id}}
            sim.saver.put(config, cp, {}, versions)
    unchanged()


def test_a_sqlite_file_locked_past_the_busy_timeout_is_a_clear_error(tmp_path) -> None:
    """Another connection holds the write lock past the busy timeout: DatabaseBusyError
    (ours, a TimeoutError) naming the file, nothing stored, and the saver works after."""
    import sqlite3

    from checkpoint_pg import DatabaseBusyError, SqliteSaver  # noqa: PLC0415

    path = str(tmp_path / "busy.db")
    with SqliteSaver.from_conn_string(path) as saver:
        saver.setup()
        saver.conn.execute("PRAGMA busy_timeout = 200")  # instead of 30 s, for the test
        cp, versions = simple_checkpoint(saver, {"x": 1})
        config = {"configurable": {"thread_id": "busy", "checkpoint_ns": ""}}
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(DatabaseBusyError, match="busy.db") as info:
            saver.put(config, cp, {}, versions)
        assert isinstance(info.value, TimeoutError)
        other.execute("ROLLBACK")
        other.close()
        assert saver.get_tuple(config) is None
        saver.put(config, cp, {}, versions)
        assert saver.get_tuple(config).checkpoint["channel_values"] == {"x": 1}


def test_a_lease_refused_by_a_busy_file_gives_nothing_back(tmp_path, caplog) -> None:
    """A lease whose take met a locked file took nothing: the error is the take's, with
    no second wait to give back a lease that never was, nor a warning about one."""
    import logging
    import sqlite3

    from checkpoint_pg import DatabaseBusyError, SqliteSaver  # noqa: PLC0415

    path = str(tmp_path / "lease-busy.db")
    with SqliteSaver.from_conn_string(path) as saver:
        saver.setup()
        saver.conn.execute("PRAGMA busy_timeout = 100")
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        calls: list[str] = []
        real_do = saver._do

        def counting(call: Any) -> Any:
            calls.append(call.make.func.__name__)
            return real_do(call)

        saver._do = counting
        with caplog.at_level(logging.WARNING), pytest.raises(DatabaseBusyError):
            with saver.lease("busy-thread"):
                pass
        other.execute("ROLLBACK")
        other.close()
    assert calls == ["take_lease"]
    assert not [r for r in caplog.records if "release" in r.getMessage()]


@pytest.mark.parametrize("value", ["1000", 0, -5, 1.5, True])
def test_max_value_bytes_must_be_a_positive_int(value: Any, tmp_path) -> None:
    from checkpoint_pg import ConfigError, SqliteSaver  # noqa: PLC0415

    with pytest.raises(ConfigError, match="max_value_bytes"):
        with SqliteSaver.from_conn_string(str(tmp_path / "x.db"), max_value_bytes=value):
            pass


@pytest.mark.parametrize("value", ["100", -1, 1.5, True, None])
def test_cache_items_must_be_an_int_of_zero_or_more(value: Any, tmp_path) -> None:
    from checkpoint_pg import ConfigError, SqliteSaver  # noqa: PLC0415

    with pytest.raises(ConfigError, match=r"cache_items must be an int >= 0 .* got " + repr(value)):
        with SqliteSaver.from_conn_string(str(tmp_path / "x.db"), cache_items=value):
            pass


@pytest.mark.parametrize(
    "call",
    [
        "get_tuple_str",
        "list_str",
        "configurable_str",
        "checkpoint_str",
        "checkpoint_without_id",
        "metadata_str",
        "new_versions_str",
        "channel_values_list",
        "version_with_nul",
        "version_of_a_list",
        "versions_seen_entry_int",
        "before_configurable_str",
    ],
)
def test_arguments_of_the_wrong_shape_are_config_errors(counted, call: str) -> None:
    """A config, checkpoint, metadata or versions of the wrong type met AttributeError,
    TypeError or KeyError from deep inside (a version with a NUL: the driver's error on
    Postgres, stored as it was on SQLite); now a ConfigError naming the argument, and
    nothing is stored. A versions_seen entry that is not a dict was stored, and every
    read of the thread then refused it as a row "changed by hand"."""
    from checkpoint_pg import ConfigError  # noqa: PLC0415

    sim, unchanged = counted
    saver = sim.saver
    st = sim.prepare()
    cfg = sim.config(st.parent)
    cp, md, nv = dict(st.checkpoint), st.metadata, dict(st.new_versions)
    first = next(iter(nv))
    calls: dict[str, Any] = {
        "get_tuple_str": lambda: saver.get_tuple("abc"),
        "list_str": lambda: list(saver.list("abc")),
        "configurable_str": lambda: saver.get_tuple({"configurable": "abc"}),
        "checkpoint_str": lambda: saver.put(cfg, "abc", md, nv),
        "checkpoint_without_id": lambda: saver.put(cfg, {k: v for k, v in cp.items() if k != "id"}, md, nv),
        "metadata_str": lambda: saver.put(cfg, cp, "abc", nv),
        "new_versions_str": lambda: saver.put(cfg, cp, md, "abc"),
        "channel_values_list": lambda: saver.put(cfg, {**cp, "channel_values": [1]}, md, nv),
        "version_with_nul": lambda: saver.put(cfg, cp, md, {**nv, first: "0000000009.0000\x000"}),
        "version_of_a_list": lambda: saver.put(cfg, cp, md, {**nv, first: [1]}),
        "versions_seen_entry_int": lambda: saver.put(cfg, {**cp, "versions_seen": {"node": 1}}, md, nv),
        "before_configurable_str": lambda: list(saver.list(cfg, before={"configurable": "abc"})),
    }
    with pytest.raises(ConfigError, match="versions_seen|before|config|checkpoint|metadata|version"):
        calls[call]()
    unchanged()
    assert saver.get_tuple(sim.config()) is not None  # the thread still reads


# --------------------------------------------------------------------------
# A saver used after it was closed
# --------------------------------------------------------------------------


async def test_a_saver_used_after_it_was_closed_says_so(make_saver, make_async_saver) -> None:
    """Each saver used after its ``from_conn_string`` block ended, by a task or a thread still
    writing when it ended and by calls made later: `SaverClosedError` naming the saver and what
    to do, not sqlite3's "closed database", the executor's "cannot schedule new futures" or
    psycopg_pool's PoolClosed; the writes before the end are stored."""
    import asyncio
    import threading

    from checkpoint_pg import SaverClosedError

    config = {"configurable": {"thread_id": "closed", "checkpoint_ns": ""}}
    written: list[Any] = []

    def put(saver: Any) -> Any:
        return saver.put(config, empty_checkpoint(), {"source": "loop"}, {})

    async def aput(saver: Any) -> Any:
        return await saver.aput(config, empty_checkpoint(), {"source": "loop"}, {})

    async def later_calls(saver: Any, name: str) -> None:
        calls = [lambda: aput(saver), lambda: saver.aget_tuple(config), lambda: saver.adelete_thread("closed")]
        if hasattr(saver, "asetup"):  # the async savers'
            calls.append(saver.asetup)
        for call in calls:
            with pytest.raises(SaverClosedError, match=f"this {name} is closed.*from_conn_string"):
                await call()
        with pytest.raises(SaverClosedError):
            [t async for t in saver.alist(None)]

    async def writing(saver: Any) -> None:  # a task the block did not wait for
        while True:
            written.append(await aput(saver))
            await asyncio.sleep(0)

    async with make_async_saver() as saver:
        task = asyncio.create_task(writing(saver))
        while not written:
            await asyncio.sleep(0.01)
    with pytest.raises(SaverClosedError):
        await asyncio.wait_for(task, 30)
    await later_calls(saver, type(saver).__name__)

    failed: list[BaseException] = []

    def writing_thread(saver: Any, started: threading.Event) -> None:
        try:
            while True:
                written.append(put(saver))
                started.set()
        except BaseException as exc:  # noqa: BLE001 - what the thread met, for the test
            failed.append(exc)
            started.set()

    started = threading.Event()
    with make_saver() as saver:
        thread = threading.Thread(target=writing_thread, args=(saver, started))
        thread.start()
        assert started.wait(30)
    thread.join(30)
    assert [type(e) for e in failed] == [SaverClosedError], failed
    name = type(saver).__name__
    for call in (lambda: put(saver), lambda: saver.get_tuple(config), saver.setup, lambda: list(saver.list(None))):
        with pytest.raises(SaverClosedError, match=f"this {name} is closed.*with {name}.from_conn_string"):
            call()
    await later_calls(saver, name)
    with make_saver() as saver:
        assert len(list(saver.list(config))) == len(written)


async def test_missing_tables_on_an_async_saver_name_asetup(tmp_path: Any) -> None:
    """An async saver used before its tables exist was told to "call saver.setup()", which on
    its own event loop raises AsyncMisuseError: the message names ``await saver.asetup()``."""
    from checkpoint_pg import AsyncSqliteSaver, SchemaVersionError  # noqa: PLC0415

    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "new.db")) as saver:
        with pytest.raises(SchemaVersionError, match=r"await saver\.asetup\(\)"):
            await saver.aget_tuple({"configurable": {"thread_id": "t", "checkpoint_ns": ""}})
        await saver.asetup()
        assert await saver.aget_tuple({"configurable": {"thread_id": "t", "checkpoint_ns": ""}}) is None


@pytest.mark.parametrize("cls_name", ["PostgresSaver", "AsyncPostgresSaver"])
async def test_from_conn_string_on_a_server_not_answering_says_what_it_met(
    cls_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server not answering (yet) is waited for; when the wait runs out, psycopg_pool's
    PoolTimeout said only "pool initialization incomplete": it now says what the first
    connection met (here, a refused connection)."""
    from psycopg_pool import PoolTimeout  # noqa: PLC0415

    import checkpoint_pg  # noqa: PLC0415
    from checkpoint_pg import postgres  # noqa: PLC0415

    monkeypatch.setattr(postgres, "_OPEN_TIMEOUT", 0.5)
    with pytest.raises(PoolTimeout, match=r"(?i)within 0.5 s .*the first attempt: .*refused"):
        await _enter(getattr(checkpoint_pg, cls_name), "postgresql://postgres@127.0.0.1:1/postgres")


async def test_a_saver_given_a_wrong_prefix_names_the_prefix_the_database_holds(
    saver_target: Any, request: pytest.FixtureRequest
) -> None:
    """A saver whose prefix= names no tables, on a database holding ours under another
    prefix: the error names that prefix, sync and async, instead of advising only setup(),
    which would create an empty second set and the app would look as if its threads were
    gone. A database holding none says only what to run (no prefix is made up)."""
    from checkpoint_pg import AsyncPostgresSaver, AsyncSqliteSaver, PostgresSaver, SqliteSaver
    from checkpoint_pg.errors import SchemaVersionError

    sqlite = saver_target.backend == "sqlite"
    sync_cls, async_cls = (SqliteSaver, AsyncSqliteSaver) if sqlite else (PostgresSaver, AsyncPostgresSaver)
    # a database of its own: the session's holds a set of tables per test, of which the
    # message names five
    url = saver_target.conn_string if sqlite else request.getfixturevalue("fresh_pg_url")
    held = "app_"
    with sync_cls.from_conn_string(url, prefix=held) as s:
        s.setup()
    config = {"configurable": {"thread_id": "t"}}
    with sync_cls.from_conn_string(url, prefix="wrong_") as s:
        with pytest.raises(SchemaVersionError) as caught:
            s.get_tuple(config)
    assert "checkpoint_pg tables with the prefix" in str(caught.value) and repr(held) in str(caught.value)
    assert "give the saver prefix=" in str(caught.value) and "not 'wrong_'" in str(caught.value)
    assert "checkpoint-pg migrate upgrade --url" in str(caught.value)  # the advice it had, kept
    async with async_cls.from_conn_string(url, prefix="wrong_") as s:
        with pytest.raises(SchemaVersionError) as caught:
            await s.aget_tuple(config)
    assert repr(held) in str(caught.value) and "not 'wrong_'" in str(caught.value)
    if sqlite:
        empty = saver_target.conn_string + ".empty.db"
        with sync_cls.from_conn_string(empty, prefix="wrong_") as s:
            with pytest.raises(SchemaVersionError) as caught:
                s.get_tuple(config)
        assert "holds checkpoint_pg tables" not in str(caught.value) and "setup()" in str(caught.value)
