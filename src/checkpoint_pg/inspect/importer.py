"""Copy threads written by ``langgraph-checkpoint-postgres`` / ``-sqlite`` into our tables.

The source is read through the incumbent saver itself (so its serializer and
its own reading logic decode the values), one checkpoint at a time with its
``get_tuple``, plus reads of its tables' keys: a thread's checkpoint ids and
parents (the order to import them in) and its writes' task paths, which the
saver does not return. The incumbents store the whole state again in every
checkpoint, so a long thread decoded at once (its ``list()``) takes gigabytes:
the import holds one checkpoint, and of the others only their keys and what
their children need (the channel versions of the parent). Everything is
written through our saver's ``put_writes`` / ``put``, which deduplicates values
on the way. Per checkpoint the writes go first and the checkpoint last, so a
checkpoint present in our tables has its writes too: a second import skips
what is there (idempotent) and an interrupted one resumes where it stopped.
Checkpoints removed here since (``prune``) are not brought back (`_pruned_here`).
"""

from __future__ import annotations

import difflib
import importlib
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import WRITES_IDX_MAP, CheckpointTuple

from checkpoint_pg.errors import (
    CheckpointPgError,
    ConfigError,
    IntegrityError,
    MissingDriverError,
    NotFoundError,
    SchemaVersionError,
    SerializationError,
)
from checkpoint_pg.schema import PG_SCHEMES
from checkpoint_pg.sql.inspect import IncumbentSQL

__all__ = ["ImportReport", "import_langgraph", "open_incumbent", "target_reads"]


Key = tuple[str, str]  # (namespace, checkpoint id)


@dataclass
class ImportReport:
    """What one import did (or, with ``dry_run``, would do)."""

    threads: int = 0
    checkpoints: int = 0
    imported: int = 0
    skipped: int = 0
    writes: int = 0
    # of the checkpoints already present: those given writes the source made since
    completed: int = 0
    # checkpoints of the source removed from our tables since an import (prune): not brought
    # back; deleting the thread here and importing again does
    pruned_here: int = 0
    pruned_threads: list[str] = field(default_factory=list)
    # with skip_other_histories: threads our tables hold with another history, left as they are
    other_histories: list[str] = field(default_factory=list)
    # threads our tables ran on with checkpoints of their own that this import added the
    # source's new ones to: two branches now, the latest by id the thread's current state
    diverged: list[str] = field(default_factory=list)
    thread_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _Source:
    """A saver to read checkpoints through, plus reads of its tables' keys (``sql``:
    `IncumbentSQL` for an incumbent's, transfer.py's for ours)."""

    def __init__(
        self, saver: Any, sql: Any, query: Callable[[Any], list[tuple[Any, ...]]], has_path: bool
    ):
        self.saver = saver
        self.sql = sql
        self._query = query
        self.has_path = has_path
        self._threads: list[tuple[str, int]] | None = None

    def threads(self, only: Sequence[str] | None = None, *, fresh: bool = False) -> list[tuple[str, int]]:
        """(thread id, checkpoints) of every thread, or of ``only`` (NotFoundError naming any missing).

        Read once (the CLI checks --thread before opening the target) unless ``fresh``: each
        import reads it again, as the app may have started threads since the last one."""
        if self._threads is None or fresh:
            self._threads = [(r[0], int(r[1])) for r in self._query(self.sql.threads())]
        if only is None:
            return self._threads
        wanted = set(only)
        missing = wanted - {t for t, _ in self._threads}
        if missing:
            held = [t for t, _ in self._threads]
            near = sorted({m for t in missing for m in difflib.get_close_matches(t, held, n=3)})
            raise NotFoundError(
                f"the source has no thread(s) {sorted(missing)!r}; it holds {len(held)} "
                f"thread(s){f', among them {near!r}' if near else ''}: leave --thread out to "
                "import them all, with --dry-run to count them first"
            )
        return [(t, n) for t, n in self._threads if t in wanted]

    def checkpoint_keys(self, thread_id: str) -> dict[Key, str | None]:
        """(ns, checkpoint id) -> parent checkpoint id of each checkpoint of a thread (keys only)."""
        return {(r[0], r[1]): r[2] or None for r in self._query(self.sql.checkpoint_keys(thread_id))}

    def write_paths(self, thread_id: str) -> dict[tuple[str, str, str], str]:
        rows = self._query(self.sql.write_keys(thread_id, self.has_path))
        return {(r[0], r[1], r[2]): r[5] or "" for r in rows}

    def fetch(self, thread_id: str, ns: str, cid: str) -> CheckpointTuple | None:
        """One checkpoint with its writes, decoded; None when the source deleted it since."""
        config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": cid}}
        try:
            return self.saver.get_tuple(config)
        except CheckpointPgError:
            raise  # a checkpoint_pg source's own, which says what to do
        except (NotImplementedError, ValueError) as exc:  # the serializer's: unknown type, bad key
            hint = (
                "it was written with an EncryptedSerializer: set LANGGRAPH_AES_KEY to the app's key "
                "(the CLI) or pass open_incumbent(url, serde=...) the app's serializer"
                if "+aes" in str(exc) or "MAC check" in str(exc)
                else "pass open_incumbent(url, serde=...) the serializer the app wrote it with"
            )
            raise SerializationError(
                f"cannot decode thread {thread_id!r} of the source ({exc}): {hint}"
            ) from None


def _incumbent(backend: str, name: str) -> Any:
    """The incumbent's saver class, which reads the source: its package is not one of ours."""
    package = f"langgraph-checkpoint-{backend}"
    try:
        return getattr(importlib.import_module(f"langgraph.checkpoint.{backend}"), name)
    except ImportError as exc:
        raise MissingDriverError(
            f"reading a {package} database needs that package, which is not installed ({exc}): "
            f"pip install {package}, then run the import again; nothing was changed"
        ) from None


@contextmanager
def open_incumbent(url: str, serde: Any = None) -> Iterator[_Source]:
    """Open a langgraph-checkpoint-postgres URL or -sqlite file, read-only.

    ``serde``: the serializer the app gave the incumbent saver (e.g. an ``EncryptedSerializer``);
    the incumbent's default when None.
    """
    if url.startswith(PG_SCHEMES):
        import psycopg
        from psycopg.rows import dict_row, tuple_row

        IncumbentPostgres = _incumbent("postgres", "PostgresSaver")

        from checkpoint_pg.postgres import conninfo_of, connect_read_only

        # read-only where the server side takes the session option (PgBouncer refuses it)
        with connect_read_only(
            conninfo_of(url), autocommit=True, prepare_threshold=None, row_factory=dict_row
        ) as conn:

            def query(stmt: Any) -> list[tuple[Any, ...]]:
                with conn.cursor(row_factory=tuple_row) as cur:
                    cur.execute(stmt.sql, stmt.params)
                    return list(cur.fetchall())

            try:
                query(IncumbentSQL("postgresql").threads())
            except psycopg.errors.UndefinedTable:
                raise NotFoundError(
                    f"no langgraph-checkpoint-postgres tables (checkpoints, checkpoint_writes) at "
                    f"{_mask(url)}: check --from, and the search_path of that database"
                ) from None
            _check_incumbent_version(query, url)
            yield _Source(IncumbentPostgres(conn, serde=serde), IncumbentSQL("postgresql"), query, True)
        return
    from checkpoint_pg.sqlite import connect_sqlite

    IncumbentSqlite = _incumbent("sqlite", "SqliteSaver")

    path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else url
    if "://" in path:
        raise ConfigError(
            f"unsupported --from URL {url!r}: use postgresql://... for langgraph-checkpoint-postgres "
            "or a file path for langgraph-checkpoint-sqlite"
        )
    if not Path(path).is_file():
        raise NotFoundError(f"no SQLite file at {path!r}: pass the file langgraph-checkpoint-sqlite wrote")
    # read-only, also from a directory it cannot write (a copied backup): as our read commands
    try:
        conn = connect_sqlite(path, read_only=True)
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot open --from {path!r} ({exc}): pass the file langgraph-checkpoint-sqlite wrote") from None
    try:
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            # said here: the CLI would name the target database (--url) for a bare sqlite3 error
            raise ConfigError(
                f"--from {path!r} is not a SQLite database ({exc}): pass the file "
                "langgraph-checkpoint-sqlite wrote"
            ) from None
        if not {"checkpoints", "writes"} <= tables:
            raise NotFoundError(f"{path!r} has no langgraph-checkpoint-sqlite tables (checkpoints, writes)")
        cols = {r[1] for r in conn.execute("PRAGMA table_info(writes)")}
        src = IncumbentSqlite(conn, serde=serde)
        src.is_setup = True  # its setup() writes (WAL pragma, CREATE TABLE): the tables exist

        def query(stmt: Any) -> list[tuple[Any, ...]]:
            return list(conn.execute(stmt.sql, stmt.params).fetchall())

        yield _Source(src, IncumbentSQL("sqlite"), query, "task_path" in cols)
    finally:
        conn.close()


def target_reads(
    saver: Any,
) -> tuple[Callable[[str], set[Key]], Callable[[str], set[tuple[str, str, str, str]]]]:
    """`import_langgraph`'s ``existing`` and ``existing_writes``, read from a sync
    checkpoint_pg ``saver`` (None: a dry run's target not created yet, which holds nothing)."""
    if saver is None:
        return (lambda t: set()), (lambda t: set())
    from checkpoint_pg.inspect.inspector import Inspector

    ins = Inspector(saver)
    return (lambda t: set(ins.checkpoint_keys(t))), ins.write_channels


def _check_incumbent_version(query: Callable[[Any], list[tuple[Any, ...]]], url: str) -> None:
    """Refuse tables at another migration of langgraph-checkpoint-postgres than the installed one
    reads (it would fail midway on a missing column, or misread a layout it does not know)."""
    import psycopg
    from langgraph.checkpoint.postgres.base import MIGRATIONS

    from checkpoint_pg.sql import Stmt

    try:
        rows = query(Stmt("SELECT max(v) FROM checkpoint_migrations", {}))
    except psycopg.errors.UndefinedTable:
        return  # tables made by hand: read what is there
    found, expected = rows[0][0], len(MIGRATIONS) - 1
    if found == expected:
        return
    if found is None or found < expected:
        fix = (
            "an older langgraph-checkpoint-postgres wrote it: upgrade its tables first (the installed "
            "langgraph-checkpoint-postgres's PostgresSaver.setup() on it, which migrates them)"
        )
    else:
        fix = "a newer langgraph-checkpoint-postgres wrote it: upgrade langgraph-checkpoint-postgres here"
    raise SchemaVersionError(
        f"the langgraph-checkpoint-postgres tables at {_mask(url)} are at migration {found}, the "
        f"installed langgraph-checkpoint-postgres reads migration {expected}: {fix}",
        current=None if found is None else str(found),
        expected=str(expected),
    )


def _mask(url: str) -> str:
    from checkpoint_pg.postgres import mask

    shown = mask(url)
    return "<the --from url>" if shown == "<your database url>" else shown


def _new_versions(tup: CheckpointTuple, before: Mapping[str, Any] | None) -> dict[str, Any]:
    """The channels ``tup`` changed since its parent's ``before`` versions; every one
    without them (no parent the source holds, or one pruned here: its values may be gone)."""
    versions = dict(tup.checkpoint.get("channel_versions") or {})
    if before is None:
        return versions
    return {ch: v for ch, v in versions.items() if before.get(ch) != v}


def import_langgraph(
    source: _Source,
    saver: Any,
    existing: Callable[[str], set[tuple[str, str]]],
    *,
    thread_ids: Sequence[str] | None = None,
    dry_run: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
    existing_writes: Callable[[str], set[tuple[str, str, str, str]]] | None = None,
    skip_other_histories: bool = False,
) -> ImportReport:
    """Copy every checkpoint and write of ``source`` missing from ``saver``.

    ``existing(thread_id)`` returns the (namespace, checkpoint id) pairs our
    tables already hold. ``progress(done, total, thread_id)`` is called after
    each checkpoint. ``existing_writes(thread_id)``, the (namespace, checkpoint
    id, task id, channel) of the writes our tables hold: given, a checkpoint
    imported before also gets the writes the source added to it since (a run
    that went on on the incumbent between two imports: its resume values, the
    writes of a step that failed), so it resumes on our saver as it would there.
    A thread our tables hold with another history (no checkpoint in common, none of
    ours the parent of one of the source's: `_shares_history`) is refused before
    anything is written (`IntegrityError`), or with ``skip_other_histories`` left as
    it is and named in the report. One that ran on here since an earlier import and
    gains the source's new steps is named in ``diverged``.
    """
    saver = _unguarded(saver)
    threads = source.threads(thread_ids, fresh=True)
    report = ImportReport(threads=len(threads), checkpoints=sum(n for _, n in threads))
    # A thread our tables hold without any checkpoint of the source's is another history (an app
    # ran that thread id on our saver, or another source was imported): merging would mix the two
    # in one thread. Sharing a checkpoint, it is this one: imported before (perhaps interrupted,
    # perhaps run on since on our saver), and the import goes on.
    haves: dict[str, set[tuple[str, str]]] = {}
    clashes: list[tuple[str, int]] = []
    for t, _ in threads:
        have = haves[t] = existing(t)
        if have and not _shares_history(have, source.checkpoint_keys(t)):
            clashes.append((t, len(have)))
    if clashes and skip_other_histories:
        # a thread imported, run on here and pruned past what it shared with the source
        # looks the same as another app's thread: neither is touched, the others go on
        skipped = {t for t, _ in clashes}
        report.other_histories = [t for t, _ in clashes]
        threads = [(t, n) for t, n in threads if t not in skipped]
        report.threads, report.checkpoints = len(threads), sum(n for _, n in threads)
    elif clashes:
        listed = ", ".join(f"{t!r} ({n} checkpoints)" for t, n in clashes[:10])
        if len(clashes) > 10:
            listed += f" and {len(clashes) - 10} more"
        raise IntegrityError(
            f"the target already holds thread(s) {listed} with another history: none of their "
            "checkpoints is in the source, nor the parent of one (another app's thread, or the "
            "source pruned since an earlier copy all that the copy holds). Refusing to merge two "
            "histories into one thread; nothing was imported. Delete them from the target (checkpoint-pg delete THREAD), or import the "
            "other threads with --thread, or leave them as they are with --skip-other-histories"
        )
    done = 0
    for t, counted in threads:
        report.thread_ids.append(t)
        have = haves[t]
        parents = source.checkpoint_keys(t)
        order = _parents_first(parents)
        # the app may have added (or deleted) checkpoints since the count: the total the
        # report and the progress give is what this import goes through
        report.checkpoints += len(order) - counted
        gone = _pruned_here(order, have)
        if gone:
            report.pruned_here += len(gone)
            report.pruned_threads.append(t)
        paths = _WritePaths(source, t, read=not dry_run)
        # (ns, checkpoint id, task id) -> channels of the writes our tables hold
        ours_w: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        if existing_writes is not None and have:
            for w_ns, w_cid, w_task, w_ch in existing_writes(t):
                ours_w[(w_ns, w_cid, w_task)].add(w_ch)
        # The source replaces a special write (an interrupt raised again by a node resumed
        # once, a new resume value) where it stands: so does the import, unless the thread
        # holds checkpoints of its own here (it ran on on our saver, whose writes are newer).
        own = _own_here(have, parents)
        replaces = saver is not None and not own
        wrote_before = (report.imported, report.writes)
        # what later checkpoints need of the earlier ones, not the checkpoints: the channel
        # versions of a parent until its last child is imported, and every one's time
        children = Counter((ns, p) for (ns, _), p in parents.items() if p)
        versions: dict[Key, dict[str, Any]] = {}
        times: list[Any] = []
        for ns, cid in order:
            done += 1
            parent = (ns, parents[(ns, cid)] or "")
            if (ns, cid) not in gone:
                tup = source.fetch(t, ns, cid)
                if tup is not None:  # else deleted on the source since its keys were read
                    times.append(_ts(tup))
                    if children[(ns, cid)]:
                        versions[(ns, cid)] = dict(tup.checkpoint.get("channel_versions") or {})
                    _copy_one(
                        saver, t, ns, cid, tup, versions.get(parent), have, report, paths,
                        dry_run=dry_run,
                        replaces=replaces,
                        ours_w=ours_w if existing_writes is not None else None,
                    )
                del tup  # not held while the next one is read
            if children[parent] > 0:
                children[parent] -= 1
                if not children[parent]:
                    versions.pop(parent, None)
            if progress is not None:
                progress(done, report.checkpoints, t)
        if own and report.imported > wrote_before[0]:
            report.diverged.append(t)
        if replaces and not dry_run and (report.imported, report.writes) != wrote_before:
            # created at its first checkpoint, which may be one pruned here since: the
            # first of them in the import's order (the thread's root), read alone, not
            # every one pruned (each read decodes a whole checkpoint)
            first_gone = next((key for key in order if key in gone), None)
            if first_gone is not None:
                times.append(_ts(source.fetch(t, *first_gone)))
            _date_thread(saver, t, times)
    return report


def _copy_one(
    saver: Any,
    t: str,
    ns: str,
    cid: str,
    tup: CheckpointTuple,
    before: Mapping[str, Any] | None,
    have: set[Key],
    report: ImportReport,
    paths: _WritePaths,
    *,
    dry_run: bool,
    replaces: bool,
    ours_w: Mapping[tuple[str, str, str], set[str]] | None,
) -> None:
    """Import one checkpoint of the source (``before``: its parent's channel versions),
    its writes first, or give one imported before the writes the source made to it since
    (``ours_w``, the channels of our writes: None, not looked for)."""
    target = {"configurable": {"thread_id": t, "checkpoint_ns": ns, "checkpoint_id": cid}}
    if (ns, cid) not in have:
        report.imported += 1
        report.writes += len(tup.pending_writes or [])
        if dry_run:
            return
        grouped: dict[str, list[tuple[str, Any]]] = defaultdict(list)
        for task_id, channel, value in tup.pending_writes or []:
            grouped[task_id].append((channel, value))
        for task_id, writes in grouped.items():
            saver.put_writes(target, writes, task_id, paths(ns, cid, task_id))
        parent_id = (tup.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        config: dict[str, Any] = {"configurable": {"thread_id": t, "checkpoint_ns": ns}}
        if parent_id:
            config["configurable"]["checkpoint_id"] = parent_id
        saver.put(config, tup.checkpoint, tup.metadata, _new_versions(tup, before))
        return
    report.skipped += 1
    if ours_w is None:
        return
    ours_now = _pending_of(saver, t, ns, cid) if replaces else None
    later = _writes_made_since(ns, cid, tup, ours_w, ours_now)
    if later:
        report.completed += 1
        report.writes += sum(len(w) for _, w in later)
        if not dry_run:
            for task_id, writes in later:
                saver.put_writes(target, writes, task_id, paths(ns, cid, task_id))


class _WritePaths:
    """The task path of each write of a source's thread (its keys' read, none for a dry
    run): read again for a write made since (the import of a long thread takes a while)."""

    def __init__(self, source: _Source, t: str, read: bool) -> None:
        self.source, self.t = source, t
        self.paths = source.write_paths(t) if read else {}

    def __call__(self, ns: str, cid: str, task_id: str) -> str:
        if (ns, cid, task_id) not in self.paths:
            self.paths = self.source.write_paths(self.t)
        return self.paths.get((ns, cid, task_id), "")


def _ts(tup: CheckpointTuple | None) -> Any:
    return tup.checkpoint.get("ts") if tup is not None else None


def _date_thread(saver: Any, t: str, stamps: Sequence[Any]) -> None:
    """Date a thread this import wrote by its checkpoints (created at the first, written at
    the last), not by the import: `prune --older-than` and the listings see its age."""
    import datetime as dt

    from checkpoint_pg.core import ops

    times = []
    for ts in stamps:
        try:
            when = dt.datetime.fromisoformat(str(ts))
        except ValueError:
            continue
        times.append(when if when.tzinfo is not None else when.replace(tzinfo=dt.timezone.utc))
    if not times or not callable(getattr(saver, "_write_call", None)):
        return
    call = saver._write_call(ops.date_thread, t, min(times), max(times))
    if callable(getattr(saver, "_do", None)):
        saver._do(call)
    else:  # an async saver, called from another thread than its loop (as its put is)
        saver._sync("import_langgraph", lambda: saver._ado(call))


def _pending_of(saver: Any, t: str, ns: str, cid: str) -> Callable[[], dict[tuple[str, str], Any]]:
    """The (task id, channel) -> value of the writes our tables hold for a checkpoint, read
    when first asked for (only checkpoints whose source holds special writes need it)."""
    memo: list[dict[tuple[str, str], Any]] = []

    def read() -> dict[tuple[str, str], Any]:
        if not memo:
            target = {"configurable": {"thread_id": t, "checkpoint_ns": ns, "checkpoint_id": cid}}
            tup = saver.get_tuple(target)
            memo.append({(w[0], w[1]): w[2] for w in (tup.pending_writes if tup else None) or []})
        return memo[0]

    return read


def _same_value(a: Any, b: Any) -> bool:
    """Whether two decoded write values are the same value (an exception or an Interrupt
    read twice are two objects): compared by their bytes under LangGraph's serializer."""
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    serde = JsonPlusSerializer()
    try:
        return bool(serde.dumps_typed(a) == serde.dumps_typed(b))
    except Exception:  # noqa: BLE001  (a value it cannot serialize: compare what it shows)
        return repr(a) == repr(b)


def _parents_first(parents: Mapping[Key, str | None]) -> list[Key]:
    """A thread's checkpoints (key -> parent id) by id, each after its parent: a checkpoint
    builds on the values its parent stored. Ids are times, from the clock of the machine
    that ran the step: a step continued on a machine whose clock is behind has an id below
    its parent's, and was put first, refused as building on values no longer stored."""
    out: list[Key] = []
    placed: set[Key] = set()
    for start in sorted(parents, key=lambda k: (k[1], k[0])):
        chain: list[Key] = []
        key: Key | None = start
        while key is not None and key in parents and key not in placed:
            placed.add(key)
            chain.append(key)
            parent = parents[key]
            key = (key[0], parent) if parent else None
        out.extend(reversed(chain))
    return out


def _shares_history(have: set[Key], parents: Mapping[Key, str | None]) -> bool:
    """Whether our thread (``have``) is the source's (``parents``: key -> parent id): a
    checkpoint in common, or one of ours that a checkpoint of the source has for parent.
    The source may have pruned since an earlier import every checkpoint it gave us (a
    run went on there, then a prune kept its new steps only): the oldest it kept still
    names as parent the one it last gave us, and ids are unique, so it is this history
    going on."""
    return bool(have & parents.keys()) or any((ns, p) in have for (ns, _), p in parents.items() if p)


def _own_here(have: set[Key], parents: Mapping[Key, str | None]) -> set[Key]:
    """The checkpoints of our thread (``have``) the source lacks that a run here made:
    not those up to the last one a checkpoint of the source has for parent (the source
    went on from it, then pruned them since an earlier import). Ids are times, compared
    across namespaces as in `_pruned_here`."""
    lacking = have - parents.keys()
    links = [p for (ns, _), p in parents.items() if p and (ns, p) in lacking]
    return {key for key in lacking if key[1] > max(links)} if links else lacking


def _pruned_here(order: Sequence[Key], have: set[Key]) -> set[Key]:
    """The checkpoints of the source removed from our tables since an import (`prune`,
    `delete_for_runs`): those our tables lack that come, in the import's ``order``,
    before one they hold.

    An import puts a thread's checkpoints in this order, parents first: an interrupted
    one holds a leading part of it and lacks only what comes after, which the next one
    resumes with. A prune keeps the newest checkpoints of each namespace (by id) and
    removes older ones, which come before a kept one in this order (by id, but for a
    parent pulled before a child whose id sorts below its own), as any ancestor of a
    kept one does, whatever its id. A subgraph call's namespace, removed whole with the
    root checkpoint it started from, holds nothing here to compare with, but its ids are
    older than the root checkpoints kept: namespaces are compared together. What the
    source wrote since has newer ids and comes after, and is imported: new steps, a fork
    from an old checkpoint, even from one pruned here (put with all its values then). A
    new step whose id sorts below its parent's (a clock behind) comes after all its
    ancestors, so after all that a thread without forks holds. Taken for pruned, wrongly
    (counted, and the report says how to get them back): a new step whose id sorts below
    a checkpoint held on another branch or in a subgraph call (a clock behind by more
    than the time between them), and, after an interrupted import of a thread that went
    on since, such a step on a branch the import had not reached."""
    # nothing held: nothing pruned (an empty slice)
    last = max((i for i, key in enumerate(order) if key in have), default=0)
    return {key for key in order[:last] if key not in have}


def _unguarded(saver: Any) -> Any:
    """``saver`` without single-writer mode (sharing its connections and caches): the
    import puts a thread's checkpoints in id order, and a fork's step, whose parent is
    not the newest checkpoint by then, was refused as another writer's."""
    ctx = getattr(saver, "ctx", None)
    if ctx is None or not ctx.single_writer:
        return saver
    import copy
    import dataclasses

    clone = copy.copy(saver)
    clone.ctx = dataclasses.replace(ctx, single_writer=False)
    return clone


def _writes_made_since(
    ns: str,
    cid: str,
    tup: CheckpointTuple,
    ours: Mapping[tuple[str, str, str], set[str]],
    ours_now: Callable[[], dict[tuple[str, str], Any]] | None = None,
) -> list[tuple[str, list[tuple[str, Any]]]]:
    """(task id, writes) of a checkpoint already imported that our tables lack.

    A task's regular writes are stored by one put_writes call, all or none: sent
    again when none of them is here. Each special write (an error, an interrupt,
    a resume value) has an index of its own: sent alone when its channel is not
    here, or, given ``ours_now`` (our writes' values), when the source replaced it
    since (a node resumed once that interrupts again); it then replaces ours, as
    the source's did. Regular writes here are never replaced.
    """
    grouped: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for task_id, channel, value in tup.pending_writes or []:
        grouped[task_id].append((channel, value))
    out: list[tuple[str, list[tuple[str, Any]]]] = []
    for task_id, writes in grouped.items():
        have = ours.get((ns, cid, task_id), set())
        regular = [(ch, v) for ch, v in writes if ch not in WRITES_IDX_MAP]
        if regular and not any(ch not in WRITES_IDX_MAP for ch in have):
            out.append((task_id, regular))
        for ch, v in writes:
            if ch not in WRITES_IDX_MAP:
                continue
            if ch not in have or (
                ours_now is not None and not _same_value(ours_now().get((task_id, ch)), v)
            ):
                out.append((task_id, [(ch, v)]))
    return out
