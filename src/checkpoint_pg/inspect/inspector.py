"""`Inspector`: read what a saver stored, thread by thread, without writing anything.

What it returns is declared in `checkpoint_pg.inspect.views`; how list values
are compared, in `checkpoint_pg.inspect.diffing`; what a thread's steps mean
(tasks, updates), in `checkpoint_pg.inspect.model`, `naming` and `runs`.

Every read runs as one operation in one transaction (on Postgres a
``REPEATABLE READ, READ ONLY`` one), so a listing is a consistent snapshot
even while graphs are running, and nothing can be written by mistake.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import shlex
from collections import defaultdict, deque
from collections.abc import Generator, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple

try:  # DeltaChannel's snapshot blob (langgraph >= the release that added DeltaChannel)
    from langgraph.checkpoint.serde.types import _DeltaSnapshot
except ImportError:  # pragma: no cover - an older langgraph stores none
    _DeltaSnapshot = None  # type: ignore[assignment,misc]

from checkpoint_pg.core import ops as core_ops
from checkpoint_pg.core.reading import _loads_md, _parse_doc
from checkpoint_pg.core.config import check_filter, normalize_thread_id
from checkpoint_pg.core.ops import Batch, Memo, Op
from checkpoint_pg.errors import ConfigError, IntegrityError, NotFoundError
from checkpoint_pg.inspect.model import (
    EDIT,
    ERROR,
    INPUT,
    INTERRUPT,
    NULL_TASK_ID,
    RESUME,
    TASKS,
    CheckpointRecord,
    Run,
    TaskRecord,
    ThreadRecord,
    group_updates,
    output_keys,
    task_name,
)
from checkpoint_pg.inspect.naming import annotate, edit_task_id
from checkpoint_pg.inspect.runs import split_runs
from checkpoint_pg.inspect.diffing import changed_values, content_key, fill_message_ids, list_diff
from checkpoint_pg.inspect.views import (
    ChannelDiff,
    CheckpointView,
    Diff,
    HistoryEntry,
    LeaseInfo,
    Stats,
    ThreadInfo,
    ThreadPage,
    ThreadStats,
)
from checkpoint_pg.sql.inspect import InspectSQL, inspect_sql_for

__all__ = ["Inspector"]

# characters of an id that `Inspector.resolve` matches as a prefix or suffix
_MIN_ID_PART = 6

MAX_PAGE = 1000


# -- helpers ---------------------------------------------------------------------------


def thread_filter(filter: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A thread metadata filter checked (a dict with str keys and JSON values), or None."""
    return check_filter(filter) or None


def thread_ids_op(sql: InspectSQL, filter: dict[str, Any] | None, after: str | None) -> Op:
    """One page (MAX_PAGE) of thread ids after ``after``, in id order."""
    (rows,) = yield Batch([sql.thread_ids_page(filter, after, MAX_PAGE)])
    return [r[0] for r in rows]


def _json(raw: Any) -> dict[str, Any]:
    """Metadata as stored (IntegrityError for a row edited into something else)."""
    if raw is None:
        return {}
    return _loads_md(bytes(raw) if isinstance(raw, bytearray) else raw)


def _thread_metadata(thread_id: str, raw: Any) -> dict[str, Any]:
    try:
        return _json(raw)
    except IntegrityError:
        raise IntegrityError(
            f"thread {thread_id!r} has metadata that is not a JSON object ({str(raw)[:60]!r}): "
            "it was changed by hand; set it to valid JSON or NULL, or delete the thread"
        ) from None


def _ts(raw: Any) -> dt.datetime | None:
    if raw is None or isinstance(raw, dt.datetime):
        return raw
    return dt.datetime.fromisoformat(str(raw))


def _encode_cursor(updated_at: Any, thread_id: str) -> str:
    raw = updated_at.isoformat() if isinstance(updated_at, dt.datetime) else str(updated_at)
    return base64.urlsafe_b64encode(json.dumps([raw, thread_id]).encode()).decode()


def _decode_cursor(cursor: str, backend: str) -> tuple[Any, str]:
    try:
        raw, thread_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        value: Any = dt.datetime.fromisoformat(raw) if backend == "postgresql" else raw
        return value, str(thread_id)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"invalid threads cursor {cursor!r} ({exc}): pass the next_cursor of a previous page"
        ) from None


def _check_thread_id(thread_id: Any) -> str:
    # the savers' rule, so that every thread they store can be inspected (even "")
    return normalize_thread_id(thread_id)


def _listed(items: Sequence[str], most: int = 10) -> str:
    """``'a', 'b' and 3 more``: a list in an error message, kept short."""
    shown = ", ".join(repr(i) for i in items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")


def _pending_tasks(cp: CheckpointRecord) -> list[TaskRecord]:
    """The tasks whose writes wait on ``cp``: update_state's edits are applied in its child."""
    return cp.ran if cp.edit_child else cp.tasks


def _null_input(writes: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """A checkpoint's Command(update=...) writes by channel (resume values left out).

    Several Commands sent to one checkpoint (those that ran nothing made no checkpoint
    of their own) all store their writes there, and LangGraph applies each: a channel
    written more than once holds the list of its writes, in order, as `group_updates`
    lists the updates of several tasks of one node (a dict would keep the last only).
    """
    out: dict[str, list[Any]] = defaultdict(list)
    for ch, v in writes:
        if ch != RESUME:
            out[ch].append(v)
    return {ch: vs[0] if len(vs) == 1 else vs for ch, vs in out.items()}


def _plain(value: Any) -> Any:
    """A channel's stored value as LangGraph's state gives it: a ``DeltaChannel`` stores a
    ``_DeltaSnapshot(value)`` at its snapshot steps (get_state unwraps it; diff must compare
    the lists). At its other steps it stores no value (get_state replays ancestors' writes
    through the graph's reducer, which storage does not have), so it stays left out."""
    if _DeltaSnapshot is not None and isinstance(value, _DeltaSnapshot):
        return value.value
    return value


def _internal_channel(ch: str) -> bool:
    return ch.startswith(("branch:", "join:")) or ch in (TASKS, "__start__")


# -- the inspector ---------------------------------------------------------------------


class Inspector:
    """Read-only views of what a sync checkpoint_pg saver (Postgres or SQLite) stored.

    >>> with SqliteSaver.from_conn_string("app.db") as saver:
    ...     ins = Inspector(saver)
    ...     for t in ins.threads(limit=10): print(t.thread_id, t.checkpoints)
    ...     for e in ins.history("thread-1"): print(e.step, e.updates)
    """

    def __init__(self, saver: Any) -> None:
        if not callable(getattr(saver, "_run", None)):
            raise ConfigError(
                f"Inspector takes a sync checkpoint_pg saver (PostgresSaver or SqliteSaver), got "
                f"{type(saver).__name__}; for an async saver open a sync one on the same database"
            )
        self.saver = saver
        self.sql: InspectSQL = inspect_sql_for(saver)

    # -- running ----------------------------------------------------------------------

    def _read(self, op: Op) -> Any:
        """Run ``op`` in one read-only transaction (after the schema check)."""
        ensure = getattr(self.saver, "_ensure_schema", None)
        if callable(ensure):
            ensure()
        pre = self.sql.read_only()

        def wrapped() -> Generator[Batch, list[Any], Any]:
            if pre:
                yield Batch(pre)
            return (yield from op)

        return self.saver._run(wrapped(), txn=True, write=False)

    def _one(self, stmt: Any) -> Op:
        (rows,) = yield Batch([stmt])
        return rows

    # -- threads ------------------------------------------------------------------------

    def threads(
        self,
        filter: Mapping[str, Any] | None = None,
        limit: int = 50,
        offset: int = 0,
        cursor: str | None = None,
        *,
        sizes: bool = True,
    ) -> ThreadPage:
        """Threads newest first, from the threads table (never a scan of all checkpoints).

        ``filter`` matches the metadata of each thread's root checkpoint put last,
        the newest unless puts arrived out of id order (top-level keys, equal values). Page with ``offset`` or, cheaper on big
        tables, with the ``next_cursor`` of the previous page (not both). ``sizes=False``
        skips the per-thread checkpoint count and byte size.
        """
        if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise ConfigError(f"limit must be an int from 1 to {MAX_PAGE}, got {limit!r}")
        if not isinstance(offset, int) or offset < 0:
            raise ConfigError(f"offset must be an int >= 0, got {offset!r}")
        if offset and cursor:
            raise ConfigError(
                f"offset {offset} and a cursor: page with one of them (the cursor already says "
                "where the previous page ended)"
            )
        checked = thread_filter(filter)
        cur = _decode_cursor(cursor, self.sql.name) if cursor else None
        stmt = self.sql.list_threads(
            filter=checked, limit=limit, offset=offset, cursor=cur, sizes=sizes
        )
        rows, more = self._read(self._page_and_more(stmt, checked, limit))
        items = [
            ThreadInfo(
                thread_id=r[0],
                created_at=_ts(r[1]),
                updated_at=_ts(r[2]),
                metadata=_thread_metadata(r[0], r[3]),
                checkpoints=None if r[4] is None else int(r[4]),
                bytes=None if r[5] is None else int(r[5]),
            )
            for r in rows
        ]
        nxt = _encode_cursor(rows[-1][2], rows[-1][0]) if more else None
        return ThreadPage(items, nxt)

    def _page_and_more(self, stmt: Any, filter: dict[str, Any] | None, limit: int) -> Op:
        """A page's rows, and whether a thread follows them: a full page may be the last
        one, and its cursor would then promise a page that is empty."""
        (rows,) = yield Batch([stmt])
        if len(rows) < limit:
            return rows, False
        # one row more, without sizes: the page's own query would count a thread's bytes
        after = self.sql.list_threads(
            filter=filter, limit=1, offset=0, cursor=(rows[-1][2], rows[-1][0]), sizes=False
        )
        (following,) = yield Batch([after])
        return rows, bool(following)

    def iter_threads(
        self, filter: Mapping[str, Any] | None = None, *, sizes: bool = False
    ) -> Iterator[ThreadInfo]:
        """Every thread, newest first, page by page."""
        cursor = None
        while True:
            page = self.threads(filter, limit=MAX_PAGE, cursor=cursor, sizes=sizes)
            yield from page.threads
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def lease(self, thread_id: str) -> LeaseInfo | None:
        """The live lease a run holds on a thread (saver.lease), or None."""
        from checkpoint_pg.core.config import normalize_thread_id  # noqa: PLC0415

        t = normalize_thread_id(thread_id)
        rows = self._read(self._one(self.saver.ctx.sql.lease.check(t)))
        if not rows or rows[0][0] is None or rows[0][1] is None or rows[0][1] <= 0:
            return None
        return LeaseInfo(thread_id=t, seconds_left=float(rows[0][1]))

    def iter_thread_ids(self, filter: Mapping[str, Any] | None = None) -> Iterator[str]:
        """Every thread id in id order, page by page along the primary key (cheap at
        any size, unlike `iter_threads`' newest-first order, which sorts)."""
        f, after = thread_filter(filter), None
        while True:
            ids = self._read(thread_ids_op(self.sql, f, after))
            yield from ids
            if len(ids) < MAX_PAGE:
                return
            after = ids[-1]

    # -- loading a thread ---------------------------------------------------------------

    def _load_op(self, thread_id: str, checkpoint_ns: str | None) -> Op:
        ctx = self.saver.ctx
        cp_rows, key_rows = yield Batch(
            [
                self.sql.thread_checkpoints(thread_id, checkpoint_ns),
                self.sql.thread_write_keys(thread_id, checkpoint_ns),
            ]
        )
        conf: dict[str, Any] = {"thread_id": thread_id}
        if checkpoint_ns is not None:
            conf["checkpoint_ns"] = checkpoint_ns
        tuples: dict[tuple[str, str], CheckpointTuple] = {}
        if cp_rows:
            memo = Memo()
            after = None
            while True:
                items, after = yield from core_ops.list_page(
                    ctx, memo, {"configurable": conf}, filter=None, before=None, limit=None, after=after
                )
                for tup in items:
                    c = tup.config["configurable"]
                    tuples[(c["checkpoint_ns"], c["checkpoint_id"])] = tup
                if after is None:
                    break
        return cp_rows, key_rows, tuples

    def load(self, thread_id: str, checkpoint_ns: str | None = None) -> ThreadRecord:
        """Every checkpoint of a thread (one namespace, or all when None), tasks and writes decoded.

        Raises `NotFoundError` when the thread has no checkpoints.
        """
        thread_id = _check_thread_id(thread_id)
        cp_rows, key_rows, tuples = self._read(self._load_op(thread_id, checkpoint_ns))
        if not cp_rows:
            where = "" if checkpoint_ns is None else f" in namespace {checkpoint_ns!r}"
            raise NotFoundError(
                f"thread {thread_id!r} has no checkpoints{where}: list the stored threads with "
                "`checkpoint-pg threads` (or Inspector.threads())"
            )
        keys: dict[tuple[str, str, str], list[tuple[int, str, str]]] = defaultdict(list)
        for ns, cid, task_id, idx, channel, path in key_rows:
            keys[(ns, cid, task_id)].append((int(idx), channel, path or ""))
        records = []
        for ns, cid, parent, run_id, raw_doc, raw_md in cp_rows:
            tup = tuples.get((ns, cid))
            channel_values = dict(tup.checkpoint.get("channel_values") or {}) if tup else None
            rec = CheckpointRecord(
                ns, cid, parent, run_id, _parse_doc(raw_doc), _json(raw_md), channel_values=channel_values
            )
            self._attach_tasks(rec, tup, keys)
            records.append(rec)
        annotate(records)
        fill_message_ids(records)
        return ThreadRecord(thread_id, records)

    @staticmethod
    def _attach_tasks(
        rec: CheckpointRecord,
        tup: CheckpointTuple | None,
        keys: Mapping[tuple[str, str, str], list[tuple[int, str, str]]],
    ) -> None:
        by_task: dict[str, list[tuple[str, Any]]] = defaultdict(list)
        for task_id, channel, value in (tup.pending_writes or []) if tup else []:
            by_task[task_id].append((channel, value))
        sends = (rec.channel_values or {}).get(TASKS)
        # update_state(as_node="__input__") stores its writes under this id, with no path
        input_edit = edit_task_id(rec.checkpoint_id, INPUT)
        for task_id, values in by_task.items():
            rows = sorted(keys.get((rec.ns, rec.checkpoint_id, task_id), []))
            if [r[1] for r in rows] == [c for c, _ in values]:
                pairs = [(r[0], c, v, r[2]) for r, (c, v) in zip(rows, values)]
            else:  # rows and values read apart: match channel by channel
                queues: dict[str, deque[tuple[int, str]]] = defaultdict(deque)
                for idx, ch, path in rows:
                    queues[ch].append((idx, path))
                pairs = []
                for c, v in values:
                    idx, path = queues[c].popleft() if queues[c] else (0, rows[0][2] if rows else "")
                    pairs.append((idx, c, v, path))
            if task_id == NULL_TASK_ID:
                rec.null_writes.extend((c, v) for _, c, v, _ in pairs)
                continue
            # update_state(as_node=N) reuses the id of N's pending task, which may
            # have written (an interrupt) under that id: one record per path
            by_path: dict[str, list[tuple[int, str, Any]]] = defaultdict(list)
            for idx, ch, v, path in pairs:
                by_path[path].append((idx, ch, v))
            for path, writes in by_path.items():
                task = TaskRecord(task_id, path, task_name(path, sends))
                task.edit = task.name == EDIT or (path == "" and task_id == input_edit)
                for idx, ch, v in writes:
                    if ch == INTERRUPT:
                        task.interrupts.append(v)
                    elif ch == ERROR:
                        task.error = v
                    elif ch == RESUME:
                        task.resumes.extend(v if isinstance(v, list) else [v])
                    elif idx >= 0:
                        task.writes.append((ch, v))
                rec.tasks.append(task)
        rec.tasks.sort(key=lambda t: (t.path, t.task_id))

    # -- history ---------------------------------------------------------------------

    def history(
        self, thread_id: str, checkpoint_ns: str | None = None, limit: int | None = None
    ) -> list[HistoryEntry]:
        """One entry per superstep, oldest first, every namespace unless ``checkpoint_ns`` is given.

        Subgraph checkpoints live in namespaces like ``child:<task id>``. With
        ``limit``, the newest ``limit`` entries.
        """
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise ConfigError(f"limit must be a positive int or None, got {limit!r}")
        thread = self.load(thread_id, checkpoint_ns)
        entries = self._entries(thread)
        return entries[-limit:] if limit else entries

    def _entries(self, thread: ThreadRecord) -> list[HistoryEntry]:
        out: list[HistoryEntry] = []
        for ns in thread.namespaces():
            cps = thread.of_ns(ns)
            keys = output_keys(
                {ch for c in cps for ch in c.doc.get("channel_versions", {})}
                | {ch for c in cps for t in c.tasks for ch, _ in t.writes}
            )
            by_id = {c.checkpoint_id: c for c in cps}
            has_child = {c.parent_id for c in cps if c.parent_id and c.source == "loop"}
            for c in cps:
                parent = by_id.get(c.parent_id or "")
                entry = HistoryEntry(
                    checkpoint_ns=c.ns,
                    checkpoint_id=c.checkpoint_id,
                    parent_checkpoint_id=c.parent_id,
                    step=c.step,
                    source=c.source,
                    run_id=c.metadata.get("run_id") or c.run_id,
                    created_at=c.doc.get("ts"),
                    metadata=c.metadata,
                )
                if parent is not None and c.source == "loop":
                    entry.updates = group_updates(parent.ran, keys)
                    entry.input = _null_input(parent.null_writes)
                elif parent is not None and parent.edit_child == c.checkpoint_id:
                    # update_state stored its writes on the checkpoint it updated
                    entry.updates = group_updates([t for t in parent.edits if t.path], keys)
                    entry.input = {ch: v for t in parent.edits if not t.path for ch, v in t.writes}
                elif parent is not None and c.source == "update":
                    # an update of a checkpoint that already had a child (or another
                    # update): LangGraph kept no writes of its own, so show what changed
                    changed = changed_values(parent.channel_values or {}, c.channel_values or {})
                    if changed:
                        entry.updates = {EDIT: changed}
                for t in c.ran:
                    if t.interrupts:
                        vals = []
                        for v in t.interrupts:
                            vals.extend(v if isinstance(v, (list, tuple)) else [v])
                        entry.interrupts[t.name] = vals
                    if t.error is not None:
                        entry.errors[t.name] = t.error
                    if t.resumes:
                        entry.resumes[t.name] = t.resumes if len(t.resumes) > 1 else t.resumes[0]
                if not entry.resumes:  # a resume no task has taken up (yet)
                    for ch, v in c.null_writes:
                        if ch == RESUME:
                            entry.resumes["(command)"] = v
                if c.checkpoint_id not in has_child:
                    entry.pending = group_updates(_pending_tasks(c), keys)
                    if c.null_writes:
                        entry.input = {**entry.input, **_null_input(c.null_writes)}
                entry.next = list(c.next)
                out.append(entry)
        out.sort(key=lambda e: (e.checkpoint_id, e.checkpoint_ns))
        return out

    # -- replay ------------------------------------------------------------------------

    def runs(self, thread_id: str, checkpoint_ns: str = "") -> list[Run]:
        """The thread's runs, oldest first, each with the ``updates`` chunks it streamed."""
        thread = self.load(thread_id, checkpoint_ns)
        cps = thread.checkpoints
        keys = output_keys(
            {ch for c in cps for ch in c.doc.get("channel_versions", {})}
            | {ch for c in cps for t in c.tasks for ch, _ in t.writes}
        )
        return split_runs(cps, keys)

    def replay_updates(
        self, thread_id: str, run_id: str | None = None, *, checkpoint_ns: str = ""
    ) -> Iterator[dict[str, Any]]:
        """Yield, from storage, the chunks ``graph.stream(..., stream_mode="updates")`` produced.

        Without ``run_id``: every run of the thread, in order. With it: the runs
        whose checkpoints carry that metadata ``run_id`` (set when the caller
        passes ``config["metadata"]["run_id"]``, as LangGraph Platform does).

        What storage cannot tell: parallel tasks of one step (``Send``s,
        functional-API ``@task`` calls) are yielded in task order, not in the
        order they finished; a node that called ``interrupt()`` several times
        keeps only its latest interrupt (see `Run.complete`); a ``@task`` called
        from another ``@task`` is named ``<caller>/call[<i>]``, not after its
        function.
        """
        runs = self.runs(thread_id, checkpoint_ns)
        if run_id is not None:
            runs = [r for r in runs if r.run_id == str(run_id)]
            if not runs:
                raise NotFoundError(
                    f"no run {run_id!r} in thread {thread_id!r}: run ids are stored when the "
                    "graph is called with config={'metadata': {'run_id': ...}}; list the "
                    f"thread's runs with `checkpoint-pg replay {shlex.quote(thread_id)} --runs`"
                )
        for run in runs:
            yield from run.chunks

    # -- single checkpoints ---------------------------------------------------------------

    def resolve(
        self, thread_id: str, checkpoint: str | None = None, checkpoint_ns: str = ""
    ) -> RunnableConfig:
        """The config of a checkpoint: its id, ``"-N"`` (N steps before the latest), or None (latest).

        Any unique prefix or suffix of an id of at least 6 characters works too,
        such as the 12 characters ``checkpoint-pg history`` prints (shorter ones
        would match by chance: one id in 16 ends with a given hex digit).
        """
        thread_id = _check_thread_id(thread_id)
        rows = self.checkpoint_keys(thread_id)
        ids = sorted((cid for ns, cid in rows if ns == checkpoint_ns), reverse=True)
        if not ids:
            raise NotFoundError(
                f"thread {thread_id!r} has no checkpoints in namespace {checkpoint_ns!r}: list the "
                "stored threads with `checkpoint-pg threads`"
            )
        if checkpoint is None or checkpoint in ("", "latest"):
            cid = ids[0]
        elif checkpoint.startswith("-") and checkpoint[1:].isdigit():
            back = int(checkpoint[1:])
            if back >= len(ids):
                raise NotFoundError(
                    f"thread {thread_id!r} has {len(ids)} checkpoints, so {checkpoint} goes back too "
                    f"far: use -0 to -{len(ids) - 1}"
                )
            cid = ids[back]
        elif checkpoint in ids:
            cid = checkpoint
        elif len(checkpoint) < _MIN_ID_PART:
            raise NotFoundError(
                f"thread {thread_id!r} has no checkpoint {checkpoint!r} in namespace "
                f"{checkpoint_ns!r}; a part of an id must be at least {_MIN_ID_PART} characters: "
                f"see its ids with `checkpoint-pg history {shlex.quote(thread_id)}`"
            )
        else:
            found = [i for i in ids if i.startswith(checkpoint) or i.endswith(checkpoint)]
            elsewhere = sorted(
                {
                    ns
                    for ns, cid in rows
                    if ns != checkpoint_ns and (cid.startswith(checkpoint) or cid.endswith(checkpoint))
                }
            )
            if not found and elsewhere:
                # an id history printed on a subgraph's row: say where it is, not "see history" again
                raise NotFoundError(
                    f"thread {thread_id!r} has checkpoint {checkpoint!r} in namespace "
                    f"{_listed(elsewhere)}, not in {checkpoint_ns!r}: pass that namespace "
                    f"(checkpoint-pg: --ns {shlex.quote(elsewhere[0])})"
                )
            if len(found) > 1:
                raise ConfigError(
                    f"{checkpoint!r} matches {len(found)} checkpoints of thread {thread_id!r} in "
                    f"namespace {checkpoint_ns!r} ({_listed(found)}): give more of the id"
                )
            if not found:
                raise NotFoundError(
                    f"thread {thread_id!r} has no checkpoint {checkpoint!r} (nor one whose id starts "
                    f"or ends with it) in namespace {checkpoint_ns!r}: see its ids with "
                    f"`checkpoint-pg history {shlex.quote(thread_id)}`"
                )
            cid = found[0]
        return {
            "configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns, "checkpoint_id": cid}
        }

    def namespaces(self, thread_id: str) -> list[str]:
        """The checkpoint namespaces of a thread, sorted ("" is the root graph)."""
        return sorted({ns for ns, _ in self.checkpoint_keys(_check_thread_id(thread_id))})

    def resolve_ns(self, thread_id: str, checkpoint_ns: str) -> str:
        """The thread's namespace that is ``checkpoint_ns``, or the only one starting with it
        (``child`` or ``child:1f0a`` for ``child:1f0a...``; history prints such prefixes)."""
        namespaces = self.namespaces(thread_id)
        if checkpoint_ns in namespaces or not namespaces:
            return checkpoint_ns  # no checkpoints at all: the read says so
        found = [ns for ns in namespaces if ns.startswith(checkpoint_ns)]
        if len(found) == 1:
            return found[0]
        if found:
            raise ConfigError(
                f"namespace {checkpoint_ns!r} matches {len(found)} namespaces of thread {thread_id!r} "
                f"({_listed(found)}): give more of it"
            )
        raise NotFoundError(
            f"thread {thread_id!r} has no namespace {checkpoint_ns!r} (nor one starting with it): "
            f"its namespaces are {_listed(namespaces)}"
        )

    def get(self, config: RunnableConfig) -> CheckpointTuple:
        """The stored checkpoint of ``config`` (latest of its thread without checkpoint_id)."""
        tup = self._read(core_ops.get_tuple(self.saver.ctx, config))
        if tup is None:
            conf = config.get("configurable") or {}
            raise NotFoundError(
                f"no checkpoint {conf.get('checkpoint_id') or '(latest)'} in thread "
                f"{conf.get('thread_id')!r} namespace {conf.get('checkpoint_ns') or ''!r}: "
                "list the thread's checkpoints with `checkpoint-pg history THREAD`"
            )
        return tup

    def show(self, thread_id: str, checkpoint: str | None = None, checkpoint_ns: str = "") -> CheckpointView:
        """A checkpoint's values, next nodes, interrupts, errors and pending writes (by node name).

        ``next`` is LangGraph's ``get_state(config).next`` for this checkpoint's
        config: tasks that already wrote are in it and in ``pending_writes``.
        """
        config = self.resolve(thread_id, checkpoint, checkpoint_ns)
        cid = config["configurable"]["checkpoint_id"]
        thread = self.load(thread_id, checkpoint_ns)
        entries = {e.checkpoint_id: e for e in self._entries(thread)}
        rec = next(c for c in thread.checkpoints if c.checkpoint_id == cid)
        entry = entries[cid]
        values = {k: _plain(v) for k, v in (rec.channel_values or {}).items() if not _internal_channel(k)}
        pending = [(t.name, ch, v) for t in _pending_tasks(rec) for ch, v in t.writes] + [
            ("(input)", ch, v) for ch, v in rec.null_writes
        ]
        return CheckpointView(
            thread_id=thread_id,
            checkpoint_ns=checkpoint_ns,
            checkpoint_id=cid,
            parent_checkpoint_id=rec.parent_id,
            step=rec.step,
            source=rec.source,
            run_id=entry.run_id,
            created_at=rec.doc.get("ts"),
            metadata=rec.metadata,
            values=values,
            next=list(rec.next),
            interrupts=entry.interrupts,
            pending_writes=pending,
            errors=entry.errors,
        )

    # -- diff -------------------------------------------------------------------------------

    def diff(self, config_a: RunnableConfig, config_b: RunnableConfig, *, internal: bool = False) -> Diff:
        """Channel by channel, how checkpoint ``b`` differs from ``a``.

        Lists report the elements added and removed (messages matched by id).
        LangGraph's control channels (``branch:...``) are left out unless ``internal``.
        """
        a, b = self.get(config_a), self.get(config_b)
        va = {k: _plain(v) for k, v in (a.checkpoint.get("channel_values") or {}).items()}
        vb = {k: _plain(v) for k, v in (b.checkpoint.get("channel_values") or {}).items()}
        out = []
        for ch in sorted(set(va) | set(vb)):
            if not internal and _internal_channel(ch):
                continue
            if ch not in vb:
                d = ChannelDiff(ch, "removed", before=va[ch])
                if isinstance(va[ch], list):  # as an added list: every element, not the first
                    d.added, d.removed, d.changed = [], list(va[ch]), []
                out.append(d)
                continue
            if ch not in va:
                d = ChannelDiff(ch, "added", after=vb[ch])
                if isinstance(vb[ch], list):
                    d.added, d.removed, d.changed = list(vb[ch]), [], []
                out.append(d)
                continue
            x, y = va[ch], vb[ch]
            if isinstance(x, list) and isinstance(y, list):
                added, removed, changed = list_diff(x, y)
                same = (
                    not added and not removed and not changed and content_key(x) == content_key(y)
                )
                out.append(
                    ChannelDiff(
                        ch, "same" if same else "changed", x, y, added=added, removed=removed, changed=changed
                    )
                )
            else:
                try:
                    same = bool(x == y)
                except Exception:  # noqa: BLE001 - incomparable values
                    same = False
                out.append(ChannelDiff(ch, "same" if same else "changed", x, y))
        return Diff(a.config, b.config, out)

    # -- stats -------------------------------------------------------------------------------

    def stats(self, thread_ids: Sequence[str] | None = None) -> Stats:
        """Checkpoints, writes, channel values, objects and bytes per thread and in total.

        This reads every row's size (not the values): on a big database prefer
        ``thread_ids``, or `threads` for counts of a page of threads.
        """
        stmts = self.sql.stats(list(thread_ids) if thread_ids is not None else None)

        def op() -> Op:
            res = yield Batch(stmts)
            return res

        cps, writes, values, objects = self._read(op())
        per: dict[str, ThreadStats] = {}

        def get(t: str) -> ThreadStats:
            return per.setdefault(t, ThreadStats(t))

        for t, n, size, _, _, _ in cps:
            s = get(t)
            s.checkpoints, s.checkpoint_bytes = int(n), int(size)
        for t, n, size, refs, _, _ in writes:
            s = get(t)
            s.writes, s.ref_bytes, s.references = int(n), s.ref_bytes + int(size), s.references + int(refs)
        for t, n, size, refs, _, _ in values:
            s = get(t)
            s.channel_values, s.ref_bytes, s.references = (
                int(n),
                s.ref_bytes + int(size),
                s.references + int(refs),
            )
        for t, n, size, _, n_chunks, chunk_bytes in objects:
            # chunks hold references (core/chunks.py): their bytes count as such
            s = get(t)
            s.objects, s.object_bytes = int(n) - int(n_chunks), int(size)
            s.ref_bytes += int(chunk_bytes)
        total = ThreadStats(None)
        for s in per.values():
            total.add(s)
        return Stats(sorted(per.values(), key=lambda s: (-s.bytes, s.thread_id or "")), total)

    # -- for maintenance ------------------------------------------------------------------------

    def thread_ids_updated_before(self, cutoff: dt.datetime) -> list[str]:
        """Threads whose latest write is older than ``cutoff`` (an aware datetime)."""
        value: Any = cutoff
        if self.sql.name == "sqlite":
            value = cutoff.astimezone(dt.timezone.utc).isoformat(sep=" ")
        return [r[0] for r in self._read(self._one(self.sql.threads_updated_before(value)))]

    def all_thread_ids(self) -> list[str]:
        return [r[0] for r in self._read(self._one(self.sql.all_thread_ids()))]

    def keep_last_plan(self, thread_id: str, n: int) -> tuple[int, int]:
        """(checkpoints, how many ``prune(keep_last=n)`` would delete now): read only,
        by the same garbage collection prune runs."""
        t = normalize_thread_id(thread_id)
        return tuple(self._read(core_ops.plan_keep_latest(self.saver.ctx, t, n)))  # type: ignore[return-value]

    def checkpoint_keys(self, thread_id: str) -> list[tuple[str, str]]:
        """(namespace, checkpoint id) of every checkpoint of a thread."""
        return [(r[0], r[1]) for r in self._read(self._one(self.sql.thread_checkpoint_keys(thread_id)))]

    def write_channels(self, thread_id: str) -> set[tuple[str, str, str, str]]:
        """(namespace, checkpoint id, task id, channel) of every stored write of a thread."""
        rows = self._read(self._one(self.sql.thread_write_keys(thread_id, None)))
        return {(r[0], r[1], r[2], r[4]) for r in rows}
