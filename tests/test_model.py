"""A model check: random sequences of saver calls against ``InMemorySaver``.

A hypothesis state machine drives put / put_writes / get_tuple / list /
delete_thread / delete_for_runs / copy_thread / prune on the saver under test
and on a `ModelSaver` -- LangGraph's ``InMemorySaver`` plus the operations it
lacks and the saver's documented rules -- and requires the same result (or
the same error) from both, and the same state after every step.

The model's rules, which are the saver's documented contract:

* a put that carries a channel version over from an earlier checkpoint
  (in ``channel_versions`` but not in ``new_versions``) whose value is no
  longer stored (deleted, pruned, collected) is refused with IntegrityError
  and stores nothing. If the saver still has the value (it may keep a list
  version longer, as the base of a delta) it may accept the put; the model
  then accepts it too, and the checkpoint must read back whole;
* put_writes for a checkpoint that does not exist is accepted, invisible
  until a checkpoint with that id is put;
* delete_for_runs / prune remove checkpoints and their writes and then every
  value no remaining checkpoint of the thread refers to;
* copy_thread refuses a target that has checkpoints or equals the source; a
  target with writes only (put after its delete) gets the source's instead;
* list() orders by (checkpoint_id, checkpoint_ns, thread_id) descending; a
  metadata filter matches keys that are present with an equal value.

Runs each saver class (sync and async, SQLite and Postgres) with a fixed
seed (``derandomize``) on one set of tables per test, wiped between examples.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import os

from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from langgraph.checkpoint.base import WRITES_IDX_MAP, CheckpointTuple, empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver

from faultkit import TABLES, plain, qualified, raw_connection

THREADS = ["t1", "t2"]
NAMESPACES = ["", "sub:1"]
RUNS = ["run-a", "run-b", "run-c"]
TASKS = ["task-1", "task-2"]
SPECIAL = list(WRITES_IDX_MAP)  # __error__, __scheduled__, __interrupt__, __resume__

# sizes: the whole file (4 savers) runs in well under two minutes
MAX_EXAMPLES = 40
STEPS = 30
# Shrinking a failure can take minutes (every step talks to a database); the
# unshrunk steps printed on failure are a full reproduction. CPG_MODEL_SHRINK=1
# shrinks anyway (e.g. when debugging locally).
PHASES = [Phase.explicit, Phase.reuse, Phase.generate] + (
    [Phase.shrink] if os.environ.get("CPG_MODEL_SHRINK") else []
)


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------


class ModelSaver(InMemorySaver):
    """InMemorySaver with delete_for_runs, copy_thread, prune and refused late puts."""

    def missing_carried(self, config: dict, checkpoint: dict, new_versions: dict) -> list[tuple[str, str]]:
        t = config["configurable"]["thread_id"]
        ns = config["configurable"].get("checkpoint_ns", "")
        return [
            (ch, v)
            for ch, v in checkpoint["channel_versions"].items()
            if ch not in new_versions and (t, ns, ch, v) not in self.blobs
        ]

    def put_anyway(self, config: dict, checkpoint: dict, metadata: dict, new_versions: dict) -> dict:
        """Accept a put whose carried-over values the saver still had."""
        t = config["configurable"]["thread_id"]
        ns = config["configurable"].get("checkpoint_ns", "")
        values = checkpoint["channel_values"]
        for ch, v in self.missing_carried(config, checkpoint, new_versions):
            self.blobs[(t, ns, ch, v)] = self.serde.dumps_typed(values[ch]) if ch in values else ("empty", b"")
        return super().put(config, checkpoint, metadata, new_versions)

    def _metadata(self, t: str, ns: str, cid: str) -> dict:
        return self.serde.loads_typed(self.storage[t][ns][cid][1])

    def _checkpoint(self, t: str, ns: str, cid: str) -> dict:
        return self.serde.loads_typed(self.storage[t][ns][cid][0])

    def has_checkpoints(self, t: str) -> bool:
        return t in self.storage and any(self.storage[t].values())

    def collect(self, t: str) -> None:
        """Drop the values no remaining checkpoint of thread t refers to."""
        live = set()
        for ns, cps in self.storage.get(t, {}).items():
            for cid in cps:
                for ch, v in self._checkpoint(t, ns, cid)["channel_versions"].items():
                    live.add((t, ns, ch, v))
        for key in [k for k in self.blobs if k[0] == t and k not in live]:
            del self.blobs[key]

    def _drop(self, t: str, ns: str, cid: str) -> None:
        del self.storage[t][ns][cid]
        self.writes.pop((t, ns, cid), None)

    def delete_for_runs(self, run_ids: Any) -> None:
        runs = {str(r) for r in run_ids}
        for t in list(self.storage):
            hit = False
            for ns in list(self.storage[t]):
                for cid in list(self.storage[t][ns]):
                    run = self._metadata(t, ns, cid).get("run_id")
                    if run is not None and str(run) in runs:
                        self._drop(t, ns, cid)
                        hit = True
            if hit:
                self.collect(t)

    def copy_thread(self, source: str, target: str) -> None:
        from checkpoint_pg import ConfigError  # noqa: PLC0415

        if source == target or self.has_checkpoints(target):
            raise ConfigError("refused")
        # what the target holds without a checkpoint (writes put after its delete)
        # goes: the copy's writes are the source's
        for store in (self.writes, self.blobs):
            for key in [k for k in store if k[0] == target]:
                del store[key]
        for ns, cps in list(self.storage.get(source, {}).items()):
            for cid, saved in cps.items():
                self.storage[target][ns][cid] = saved
        for (t, ns, cid), writes in list(self.writes.items()):
            if t == source:
                dst = self.writes[(target, ns, cid)]
                for key, w in writes.items():
                    dst.setdefault(key, w)
        for (t, ns, ch, v), blob in list(self.blobs.items()):
            if t == source:
                self.blobs.setdefault((target, ns, ch, v), blob)

    def prune(self, thread_ids: Any, *, strategy: str = "keep_latest") -> None:
        for t in thread_ids:
            if strategy == "delete":
                self.delete_thread(t)
                continue
            for ns, cps in list(self.storage.get(t, {}).items()):
                if not cps:
                    continue
                keep = max(cps)
                for cid in list(cps):
                    if cid != keep:
                        self._drop(t, ns, cid)
            self.collect(t)


def norm_config(config: dict | None) -> tuple | None:
    if config is None:
        return None
    c = config["configurable"]
    return (c["thread_id"], c.get("checkpoint_ns", ""), c.get("checkpoint_id"))


def norm(tup: CheckpointTuple | None) -> Any:
    if tup is None:
        return None
    cp = {k: v for k, v in tup.checkpoint.items() if k != "channel_values"}
    return {
        "config": norm_config(tup.config),
        "parent": norm_config(tup.parent_config),
        "checkpoint": plain(cp),
        "values": plain(tup.checkpoint["channel_values"]),
        "metadata": plain(dict(tup.metadata)),
        "writes": plain([list(w) for w in tup.pending_writes]),
    }


def list_key(tup: CheckpointTuple) -> tuple[str, str, str]:
    t, ns, cid = norm_config(tup.config)
    return (cid, ns, t)


# --------------------------------------------------------------------------
# The savers under test
# --------------------------------------------------------------------------


class LoopThread:
    """An event loop in a thread, for the async savers' sync methods."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(120)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class SaverFactory:
    """Makes a fresh saver (empty tables, empty caches) for each example."""

    def __init__(self, kind: str, backend: str, conn_string: str, options: dict[str, Any]) -> None:
        self.kind, self.backend, self.conn_string, self.options = kind, backend, conn_string, options
        self.loop = LoopThread() if kind == "async" else None
        with self.open() as saver:  # creates the tables once
            if kind == "sync":
                saver.setup()
            else:
                self.loop.run(saver.asetup())
            self.tables = saver.tables
            self.names = {logical: qualified(saver, logical) for logical in TABLES}

    @contextlib.contextmanager
    def open(self) -> Iterator[Any]:
        from checkpoint_pg import (  # noqa: PLC0415
            AsyncPostgresSaver,
            AsyncSqliteSaver,
            PostgresSaver,
            SqliteSaver,
        )

        if self.kind == "sync":
            cls = SqliteSaver if self.backend == "sqlite" else PostgresSaver
            with cls.from_conn_string(self.conn_string, **self.options) as saver:
                yield saver
            return
        cls = AsyncSqliteSaver if self.backend == "sqlite" else AsyncPostgresSaver
        cm = cls.from_conn_string(self.conn_string, **self.options)
        saver = self.loop.run(cm.__aenter__())
        try:
            yield saver
        finally:
            self.loop.run(cm.__aexit__(None, None, None))

    @contextlib.contextmanager
    def fresh(self) -> Iterator[Any]:
        with raw_connection(self.backend, self.conn_string) as conn:
            for name in self.names.values():
                conn.execute(f"DELETE FROM {name}")
        with self.open() as saver:
            yield saver

    def close(self) -> None:
        if self.loop is not None:
            self.loop.close()


# --------------------------------------------------------------------------
# The state machine
# --------------------------------------------------------------------------

VALUES = st.one_of(
    st.integers(-5, 5),
    st.sampled_from(["a", "b", "", "nul\x00here", "ünï", None]),
    st.lists(st.sampled_from(["x", "y", "z"]), max_size=3),
    st.dictionaries(st.sampled_from(["k", "l"]), st.integers(0, 3), max_size=2),
)


def make_machine(factory: SaverFactory) -> type[RuleBasedStateMachine]:
    from checkpoint_pg import ConfigError, IntegrityError  # noqa: PLC0415

    class SaverMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self._cm = factory.fresh()
            self.ours = self._cm.__enter__()
            self.model = ModelSaver()
            self.counter = 0
            # every checkpoint ever put: cid -> (values, versions) -- parents may be deleted ones
            self.known: dict[str, tuple[dict, dict]] = {}
            self.history: dict[tuple[str, str], list[str]] = {(t, ns): [] for t in THREADS for ns in NAMESPACES}
            # every checkpoint ever put in (thread, ns), deleted ones included: late puts fork from them
            self.ever: dict[tuple[str, str], list[str]] = {}
            self.items = 0

        def teardown(self) -> None:
            self._cm.__exit__(None, None, None)

        # -- helpers ----------------------------------------------------------

        def next_id(self) -> str:
            self.counter += 1
            return f"{self.counter:08x}-0000-6000-8000-{uuid.uuid4().hex[:12]}"

        def pick(self, t: str, ns: str, n: int, *, any_thread: bool = False) -> str | None:
            ids = self.history[(t, ns)] if not any_thread else sorted(self.known)
            return ids[n % len(ids)] if ids else None

        def both(self, call: Any) -> Any:
            """Run call(saver) on both; same result or same error class."""
            try:
                expected = ("ok", call(self.model))
            except (ConfigError, IntegrityError) as exc:
                expected = ("error", type(exc))
            try:
                got = ("ok", call(self.ours))
            except (ConfigError, IntegrityError) as exc:
                got = ("error", type(exc))
            return expected, got

        # -- rules ------------------------------------------------------------

        @rule(
            t=st.sampled_from(THREADS),
            ns=st.sampled_from(NAMESPACES),
            parent_n=st.integers(0, 50),
            parent_kind=st.sampled_from(["latest", "latest", "any-of-thread", "ever-of-thread", "any-known", "none"]),
            list_op=st.sampled_from(["append", "append", "append", "keep", "replace", "shrink"]),
            count=st.one_of(st.none(), st.integers(0, 100)),
            obj=st.one_of(st.none(), VALUES),
            empty=st.booleans(),
            run=st.sampled_from(RUNS),
            tag=st.sampled_from(["x", "y"]),
        )
        def put(self, t, ns, parent_n, parent_kind, list_op, count, obj, empty, run, tag) -> None:
            self._put(t, ns, parent_n, parent_kind, list_op, count, obj, empty, run, tag)

        @rule(
            t=st.sampled_from(THREADS),
            ns=st.sampled_from(NAMESPACES),
            steps=st.integers(2, 5),
            run=st.sampled_from(RUNS),
            obj_every=st.integers(1, 3),
        )
        def run_steps(self, t, ns, steps, run, obj_every) -> None:
            """A run: several supersteps in a row from the thread's latest checkpoint."""
            for i in range(steps):
                obj = {"step": i} if i % obj_every == 0 else None
                self._put(t, ns, 0, "latest", "append", i, obj, False, run, "x" if i % 2 else "y")

        def _put(self, t, ns, parent_n, parent_kind, list_op, count, obj, empty, run, tag) -> None:
            if parent_kind == "latest":
                parent = self.history[(t, ns)][-1] if self.history[(t, ns)] else None
            elif parent_kind == "any-of-thread":
                parent = self.pick(t, ns, parent_n)
            elif parent_kind == "ever-of-thread":
                ever = self.ever.get((t, ns), [])
                parent = ever[parent_n % len(ever)] if ever else None
            elif parent_kind == "any-known":
                parent = self.pick(t, ns, parent_n, any_thread=True)
            else:
                parent = None
            values, versions = ({}, {}) if parent is None else (dict(self.known[parent][0]), dict(self.known[parent][1]))
            new_versions: dict[str, str] = {}

            def bump(ch: str) -> None:
                new_versions[ch] = versions[ch] = self.ours.get_next_version(versions.get(ch), None)

            if list_op != "keep" or "msgs" not in versions:
                old = values.get("msgs", [])
                self.items += 1
                item = f"m{self.items}"
                if list_op == "replace":
                    values["msgs"] = [item]
                elif list_op == "shrink":
                    values["msgs"] = list(old[:-1])
                else:
                    values["msgs"] = [*old, item]
                bump("msgs")
            if count is not None:
                values["count"] = count
                bump("count")
            if obj is not None:
                values["obj"] = obj
                bump("obj")
            if empty:
                values.pop("gone", None)
                bump("gone")
            cp = empty_checkpoint()
            cp["id"] = self.next_id()
            cp["channel_values"] = values
            cp["channel_versions"] = versions
            cp["versions_seen"] = {"node": {ch: v for ch, v in versions.items() if ch in new_versions}}
            config = {"configurable": {"thread_id": t, "checkpoint_ns": ns}}
            if parent is not None:
                config["configurable"]["checkpoint_id"] = parent
            metadata = {"source": "loop", "step": self.counter, "run_id": run, "tag": tag}

            missing = self.model.missing_carried(config, cp, new_versions)
            try:
                got = self.ours.put(config, dict(cp), dict(metadata), dict(new_versions))
            except IntegrityError:
                event("put refused: builds on deleted values")
                assert missing, (
                    f"put refused with IntegrityError although every value it carries over "
                    f"is stored (parent {parent})"
                )
                # nothing stored
                assert self.ours.get_tuple({"configurable": {**config["configurable"], "checkpoint_id": cp["id"]}}) is None
                return
            if missing:
                event("put accepted: saver still had the carried values")
                expected = self.model.put_anyway(config, dict(cp), dict(metadata), dict(new_versions))
            else:
                expected = self.model.put(config, dict(cp), dict(metadata), dict(new_versions))
            assert norm_config(got) == norm_config(expected)
            self.known[cp["id"]] = (values, versions)
            self.history[(t, ns)].append(cp["id"])
            self.ever.setdefault((t, ns), []).append(cp["id"])
            # the new checkpoint reads back whole, right away
            cfg = {"configurable": {"thread_id": t, "checkpoint_ns": ns, "checkpoint_id": cp["id"]}}
            assert norm(self.ours.get_tuple(cfg)) == norm(self.model.get_tuple(cfg))

        @rule(
            t=st.sampled_from(THREADS),
            ns=st.sampled_from(NAMESPACES),
            n=st.integers(0, 50),
            where=st.sampled_from(["existing", "existing", "unknown", "other-thread"]),
            task=st.sampled_from(TASKS),
            writes=st.lists(
                st.tuples(st.sampled_from(["msgs", "count", "w", *SPECIAL]), VALUES), min_size=1, max_size=4
            ),
            path=st.sampled_from(["", "~p1", "~p2"]),
        )
        def put_writes(self, t, ns, n, where, task, writes, path) -> None:
            if where == "existing":
                cid = self.pick(t, ns, n)
            elif where == "other-thread":
                cid = self.pick(t, ns, n, any_thread=True)
            else:
                cid = None
            cid = cid or self.next_id()
            config = {"configurable": {"thread_id": t, "checkpoint_ns": ns, "checkpoint_id": cid}}
            expected, got = self.both(lambda s: s.put_writes(config, list(writes), task, path))
            assert got == expected
            assert norm(self.ours.get_tuple(config)) == norm(self.model.get_tuple(config))

        @rule(t=st.sampled_from(THREADS), ns=st.sampled_from(NAMESPACES), n=st.integers(0, 50),
              which=st.sampled_from(["latest", "by-id", "unknown"]))
        def get_tuple(self, t, ns, n, which) -> None:
            conf: dict[str, Any] = {"thread_id": t, "checkpoint_ns": ns}
            if which == "by-id":
                cid = self.pick(t, ns, n, any_thread=True)
                if cid is not None:
                    conf["checkpoint_id"] = cid
            elif which == "unknown":
                conf["checkpoint_id"] = "ffffffff-unknown"
            config = {"configurable": conf}
            assert norm(self.ours.get_tuple(config)) == norm(self.model.get_tuple(config))

        @rule(
            scope=st.sampled_from(["all", "thread", "thread-ns"]),
            t=st.sampled_from(THREADS),
            ns=st.sampled_from(NAMESPACES),
            n=st.integers(0, 50),
            use_before=st.booleans(),
            limit=st.one_of(st.none(), st.integers(1, 4)),
            filt=st.one_of(
                st.none(),
                st.fixed_dictionaries({"run_id": st.sampled_from(RUNS)}),
                st.fixed_dictionaries({"tag": st.sampled_from(["x", "y"]), "source": st.just("loop")}),
                st.fixed_dictionaries({"missing": st.just("x")}),
            ),
        )
        def list_checkpoints(self, scope, t, ns, n, use_before, limit, filt) -> None:
            if scope == "all":
                config = None
            elif scope == "thread":
                config = {"configurable": {"thread_id": t}}
            else:
                config = {"configurable": {"thread_id": t, "checkpoint_ns": ns}}
            before = None
            if use_before and self.known:
                before = {"configurable": {"checkpoint_id": self.pick(t, ns, n, any_thread=True)}}
            got = [norm(x) for x in self.ours.list(config, filter=filt, before=before, limit=limit)]
            model_all = sorted(self.model.list(config, filter=filt, before=before), key=list_key, reverse=True)
            expected = [norm(x) for x in model_all][:limit]
            assert got == expected

        @rule(t=st.sampled_from(THREADS))
        def delete_thread(self, t) -> None:
            self.ours.delete_thread(t)
            self.model.delete_thread(t)
            for ns in NAMESPACES:
                self.history[(t, ns)] = []

        @rule(runs=st.lists(st.sampled_from(RUNS), min_size=1, max_size=2, unique=True))
        def delete_for_runs(self, runs) -> None:
            self.ours.delete_for_runs(runs)
            self.model.delete_for_runs(runs)
            self._sync_history()

        @rule(src=st.sampled_from(THREADS), dst=st.sampled_from([*THREADS, "t-copy"]))
        def copy_thread(self, src, dst) -> None:
            expected, got = self.both(lambda s: s.copy_thread(src, dst))
            assert got == expected
            event(f"copy_thread: {got[0]}")
            self.history.setdefault((dst, ""), [])
            self.history.setdefault((dst, "sub:1"), [])
            self._sync_history()

        @rule(threads=st.lists(st.sampled_from([*THREADS, "t-copy"]), min_size=1, max_size=2, unique=True),
              strategy=st.sampled_from(["keep_latest", "keep_latest", "delete"]))
        def prune(self, threads, strategy) -> None:
            self.ours.prune(threads, strategy=strategy)
            self.model.prune(threads, strategy=strategy)
            self._sync_history()

        def _sync_history(self) -> None:
            for (t, ns) in list(self.history):
                self.history[(t, ns)] = sorted(self.model.storage.get(t, {}).get(ns, {}))

        # -- invariants -------------------------------------------------------

        @invariant()
        def same_latest_everywhere(self) -> None:
            for (t, ns) in self.history:
                config = {"configurable": {"thread_id": t, "checkpoint_ns": ns}}
                assert norm(self.ours.get_tuple(config)) == norm(self.model.get_tuple(config)), (t, ns)

        @precondition(lambda self: self.counter % 5 == 0)
        @invariant()
        def same_everything(self) -> None:
            got = [norm(x) for x in self.ours.list(None)]
            expected = [norm(x) for x in sorted(self.model.list(None), key=list_key, reverse=True)]
            assert got == expected

    return SaverMachine


# --------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_saver_agrees_with_the_model(kind: str, backend: str, saver_target) -> None:
    factory = SaverFactory(kind, backend, saver_target.conn_string, dict(saver_target.options))
    try:
        machine = make_machine(factory)
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=MAX_EXAMPLES,
                stateful_step_count=STEPS,
                derandomize=True,
                database=None,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                print_blob=False,
                phases=PHASES,
            ),
        )
    finally:
        factory.close()


# --------------------------------------------------------------------------
# Cases the model found, pinned down
# --------------------------------------------------------------------------


def test_fork_from_an_older_checkpoint_reads_back(saver) -> None:
    """Found by the model check. After c3 is put, a fork from the older c1
    puts a list that starts with c3's very elements. Its channel version
    (c1's version + 1) sorts *before* c3's version, so it must not be stored
    as a delta on c3's version: list versions are read as a version range
    from a chain's root up to the version read, and a base that sorts after
    the version falls outside that range (IntegrityError "list version ...
    is missing from storage" on reading a checkpoint whose put was accepted)."""
    config = {"configurable": {"thread_id": f"fork-{uuid.uuid4().hex[:8]}", "checkpoint_ns": ""}}
    a, b, c, d = "a", "b", "c", "d"
    chain: list[dict] = []
    parent_cfg = config
    v = None
    for items in ([a], [a, b], [a, b, c]):
        cp = empty_checkpoint()
        v = saver.get_next_version(v, None)
        cp["channel_values"] = {"msgs": list(items)}
        cp["channel_versions"] = {"msgs": v}
        parent_cfg = saver.put(parent_cfg, cp, {}, {"msgs": v})
        chain.append({"config": parent_cfg, "version": v})
    first = chain[0]
    fork = empty_checkpoint()
    fork_version = saver.get_next_version(first["version"], None)
    fork["channel_values"] = {"msgs": [a, b, c, d]}
    fork["channel_versions"] = {"msgs": fork_version}
    forked = saver.put(first["config"], fork, {}, {"msgs": fork_version})
    tup = saver.get_tuple(forked)
    assert tup is not None and tup.checkpoint["channel_values"]["msgs"] == [a, b, c, d]
    # and the older checkpoints still read back
    for i, link in enumerate(chain):
        assert saver.get_tuple(link["config"]).checkpoint["channel_values"]["msgs"] == [a, b, c][: i + 1]
