"""Deleting, copying, dating and pruning threads: the lifecycle operations, as I/O-free generators."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Generator, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any


from checkpoint_pg.core import lease as leases
from checkpoint_pg.core.codec import (
    split_refs,
)
from checkpoint_pg.core.config import (
    check_text,
)
from checkpoint_pg.core.context import Batch, Ctx, Op, _ids
from checkpoint_pg.core.reading import _loads_md, _parse_doc
from checkpoint_pg.core.writing import _check_lease
from checkpoint_pg.errors import (
    ConfigError,
)
from checkpoint_pg.schema import KIND

__all__ = ["copy_thread", "date_thread", "delete_for_runs", "delete_thread", "plan_keep_latest", "prune"]


# -- deleting and copying -----------------------------------------------------------


def delete_thread(ctx: Ctx, thread_id: str) -> Op:
    from checkpoint_pg.core.config import normalize_thread_id

    t = normalize_thread_id(thread_id)
    ctx.cache.forget_thread(t)
    yield Batch([ctx.sql.lock_thread(t), *ctx.sql.delete_thread(t)], fetch=False)
    ctx.cache.forget_thread(t)


def copy_thread(ctx: Ctx, source: str, target: str) -> Op:
    from checkpoint_pg.core.config import normalize_thread_id

    s, d = normalize_thread_id(source), normalize_thread_id(target)
    if s == d:
        raise ConfigError(f"cannot copy thread {s!r} onto itself")
    *_, exists, lease_row = yield Batch(
        [*ctx.sql.claim_thread(d), ctx.sql.thread_exists(d), ctx.sql.lease.check(d)]
    )
    if exists:
        # Done already (the saver's retry of a copy whose commit it did not
        # see, or the caller's): the target holds exactly the source's
        # checkpoints and pending writes.
        src, dst, src_writes, dst_writes = yield Batch(
            [
                ctx.sql.select_thread_checkpoints(s),
                ctx.sql.select_thread_checkpoints(d),
                ctx.sql.select_thread_writes(s),
                ctx.sql.select_thread_writes(d),
            ]
        )
        same_writes = {(*w[:5], bytes(w[5])) for w in src_writes} == {
            (*w[:5], bytes(w[5])) for w in dst_writes
        }
        if same_writes and _checkpoint_set(src) == _checkpoint_set(dst):
            return None
        raise ConfigError(
            f"target thread {d!r} already has checkpoints; delete it first "
            "(delete_thread) or copy to a new thread id"
        )
    # a run may hold the (still empty) target: copying is writing to it
    _check_lease(d, lease_row, leases.held(ctx.lease_key, d, ctx.leases))
    yield Batch([ctx.sql.lock_thread(s), *ctx.sql.copy_thread(s, d), *ctx.sql.drop_claim(d)], fetch=False)


def date_thread(ctx: Ctx, thread_id: str, created: Any, updated: Any) -> Op:
    """Set when a thread was created and last written (aware datetimes): an imported
    thread's, from its checkpoints, rather than the import's."""
    yield Batch([ctx.sql.lock_thread(thread_id), ctx.sql.date_thread(thread_id, created, updated)], fetch=False)
    return None


def _checkpoint_set(rows: Iterable[Sequence[Any]]) -> set[tuple[Any, ...]]:
    """(ns, id, parent, document, metadata) of select_thread_checkpoints' rows, comparable."""
    return {
        (ns, cid, parent, json.dumps(_parse_doc(doc), sort_keys=True), json.dumps(_loads_md(md), sort_keys=True))
        for ns, cid, parent, doc, md in rows
    }


def delete_for_runs(ctx: Ctx, run_ids: Sequence[str]) -> Op:
    # checked as every id is: a NUL or a lone surrogate reached the driver (Postgres:
    # "text fields cannot contain NUL", UnicodeEncodeError)
    run_ids = [check_text(str(r), "run id") for r in _ids(run_ids, "run_ids")]
    if not run_ids:
        return None
    (threads,) = yield Batch([ctx.sql.select_threads_of_runs(run_ids)])
    for (t,) in threads:
        ctx.cache.forget_thread(t)
        if not (yield from _locked(ctx, t)):
            continue
        docs, vals, _, _ = yield from _thread_rows(ctx, t)
        runs = set(run_ids)
        dead = {
            k for k, (_, _, md) in docs.items()
            if md.get("run_id") is not None and str(md["run_id"]) in runs
        }
        # A checkpoint that stays keeps the ancestors its DeltaChannels replay from,
        # as prune(keep_latest) does: deleting them (and their writes) would make it
        # read back an empty or shortened channel, silently.
        needed: set[tuple[str, str]] = set()
        walked: dict[tuple[str, str], set[str]] = {}
        for ns, cid in set(docs) - dead:
            _keep_delta_ancestors(ns, cid, docs, vals, needed, walked)
        if dead - needed:
            yield Batch(ctx.sql.delete_checkpoints(t, sorted(dead - needed)), fetch=False)
        yield from _collect_garbage(ctx, t, keep=None)
        # the newest checkpoint may have gone: the thread's listing metadata with it
        yield Batch(ctx.sql.refresh_thread_row(t), fetch=False)
    return None


def _locked(ctx: Ctx, t: str) -> Generator[Batch, list[Any], bool]:
    """Take the thread's row lock for a garbage collection; False when it has no row.

    A thread without its row has no checkpoint (a put upserts the row first, in the
    same transaction as the rest), so there is nothing to collect. A first put of the
    thread may be committing meanwhile (after delete_thread, say): with no row to lock
    it does not wait for us, and reads of the thread in several statements could see
    its objects without its checkpoint and delete them. Leave it alone."""
    (row,) = yield Batch([ctx.sql.lock_thread(t)])
    return bool(row)


def prune(
    ctx: Ctx,
    thread_ids: Sequence[str],
    strategy: str,
    keep_last: int = 1,
    updated_before: datetime | None = None,
) -> Op:
    """``keep_latest``: keep the ``keep_last`` newest checkpoints per namespace
    (and what they need to be read); ``delete``: delete the threads. With
    ``updated_before``, a thread written since then is left alone: checked under
    the thread's lock, so a run writing it while the list was drawn up keeps it."""
    from checkpoint_pg.core.config import normalize_thread_id

    if strategy not in ("keep_latest", "delete"):
        raise ConfigError(f"unknown prune strategy {strategy!r}: use 'keep_latest' or 'delete'")
    if not isinstance(keep_last, int) or isinstance(keep_last, bool) or keep_last < 1:
        raise ConfigError(f"keep_last must be an int >= 1, got {keep_last!r}")
    thread_ids = _ids(thread_ids, "thread_ids")
    if updated_before is not None and (
        not isinstance(updated_before, datetime) or updated_before.tzinfo is None
    ):
        raise ConfigError(
            f"updated_before must be a timezone-aware datetime, got {updated_before!r}; "
            "e.g. datetime.now(timezone.utc) - timedelta(days=30)"
        )
    for raw in thread_ids:
        t = normalize_thread_id(raw)
        ctx.cache.forget_thread(t)
        if updated_before is not None:
            _, stale = yield Batch([ctx.sql.lock_thread(t), ctx.sql.thread_is_stale(t, updated_before)])
            if not stale:
                continue
        if strategy == "delete":
            yield Batch([ctx.sql.lock_thread(t), *ctx.sql.delete_thread(t)], fetch=False)
        elif (yield from _locked(ctx, t)):
            yield from _collect_garbage(ctx, t, keep=keep_last)
            ctx.cache.forget_thread(t)
    return None


def _thread_rows(ctx: Ctx, t: str) -> Generator[Batch, list[Any], tuple[Any, ...]]:
    """Every checkpoint (parsed), value, write reference and object hash of a thread."""
    cps, values, write_refs, hashes = yield Batch(
        [
            ctx.sql.select_thread_checkpoints(t),
            ctx.sql.select_thread_values(t),
            ctx.sql.select_thread_write_refs(t),
            ctx.sql.select_thread_objects(t),
        ]
    )
    vals: dict[tuple[str, str, str], tuple[int, str | None, bytes]] = {
        (ns, ch, ver): (kind, base, bytes(refs)) for ns, ch, ver, kind, base, refs in values
    }
    docs = {(c[0], c[1]): (c[2], _parse_doc(c[3]), _loads_md(c[4])) for c in cps}
    return docs, vals, write_refs, hashes


def _keep_latest(
    docs: Mapping[tuple[str, str], tuple[str | None, dict[str, Any], dict[str, Any]]],
    vals: Mapping[tuple[str, str, str], tuple[int, str | None, bytes]],
    write_refs: Sequence[Sequence[Any]],
    keep: int,
) -> tuple[set[tuple[str, str]], list[tuple[str, str]]]:
    """(checkpoints kept, checkpoints and unstored write keys to delete) when keeping
    the latest ``keep`` per namespace, with what those need (I/O-free)."""
    live_cps: set[tuple[str, str]] = set()
    by_ns: dict[str, list[str]] = defaultdict(list)
    for ns, cid in docs:
        by_ns[ns].append(cid)
    walked: dict[tuple[str, str], set[str]] = {}
    for ns, ids in by_ns.items():
        for cid in sorted(ids, reverse=True)[:keep]:
            live_cps.add((ns, cid))
            _keep_delta_ancestors(ns, cid, docs, vals, live_cps, walked)
    calls = _finished_calls(docs, by_ns, live_cps)
    live_cps -= {(ns, cid) for ns in calls for cid in by_ns[ns]}
    dead = [k for k in docs if k not in live_cps]
    # Writes of a checkpoint that is not stored (a late put_writes after another
    # process pruned it, in-flight writes a copy took along) and older than every
    # checkpoint kept in its namespace: had it been stored it would go now, and
    # its writes keep objects alive. Newer ones may await their put (async
    # durability), and stay. A finished call's namespace goes whole.
    oldest = {ns: min(cid for n, cid in live_cps if n == ns) for ns in by_ns if ns not in calls}
    dead += sorted(
        {
            (ns, cid)
            for ns, cid, _ in write_refs
            if (ns, cid) not in docs
            and (ns in calls or (ns in oldest and cid < oldest[ns]))
        }
    )
    return live_cps, dead


def plan_keep_latest(ctx: Ctx, thread_id: str, keep: int) -> Op:
    """(checkpoints, of them the ones prune(keep_latest=keep) would delete now): reads only."""
    docs, vals, write_refs, _ = yield from _thread_rows(ctx, thread_id)
    _, dead = _keep_latest(docs, vals, write_refs, keep)
    return len(docs), sum(1 for k in dead if k in docs)


def _collect_garbage(ctx: Ctx, t: str, keep: int | None) -> Generator[Batch, list[Any], None]:
    """Delete what no remaining checkpoint needs; with ``keep``, keep only the latest N per ns.

    Kept checkpoints keep the ancestors their `DeltaChannel`s replay from: the
    walk goes back until each delta channel has a stored value, and an ancestor
    kept adds the channels it replays itself (it is listed and read as well).
    """
    docs, vals, write_refs, hashes = yield from _thread_rows(ctx, t)
    live_cps = set(docs)
    if keep is not None:
        live_cps, dead = _keep_latest(docs, vals, write_refs, keep)
        if dead:
            yield Batch(ctx.sql.delete_checkpoints(t, dead), fetch=False)
            if write_refs:
                # writes of the dead checkpoints are gone: read what is left
                (write_refs,) = yield Batch([ctx.sql.select_thread_write_refs(t)])
    live_vals: set[tuple[str, str, str]] = set()
    for ns, cid in live_cps:
        for ch, ver in docs[(ns, cid)][1].get("channel_versions", {}).items():
            key: tuple[str, str, str] | None = (ns, ch, str(ver))
            while key is not None and key in vals and key not in live_vals:
                live_vals.add(key)
                kind, base, _ = vals[key]
                key = (ns, ch, base) if kind == KIND.DELTA and base is not None else None
    dead_vals = [k for k in vals if k not in live_vals]
    live_hashes: set[bytes] = set()
    for k in live_vals:
        live_hashes.update(split_refs(vals[k][2]))
    for _, _, refs in write_refs:
        live_hashes.update(split_refs(bytes(refs)))
    # a chunk a live row names keeps the elements it holds (core/chunks.py)
    chunks = {bytes(h): bytes(data) for h, data in hashes if data is not None}
    for h in [h for h in live_hashes if h in chunks]:
        live_hashes.update(split_refs(chunks[h]))
    dead_hashes = [bytes(h) for (h, _) in hashes if bytes(h) not in live_hashes]
    stmts = [*ctx.sql.delete_values(t, dead_vals), *ctx.sql.delete_objects(t, dead_hashes)]
    if stmts:
        yield Batch(stmts, fetch=False)


def _finished_calls(
    docs: Mapping[tuple[str, str], tuple[str | None, dict[str, Any], dict[str, Any]]],
    by_ns: Mapping[str, Sequence[str]],
    live: set[tuple[str, str]],
) -> set[str]:
    """Namespaces of subgraph calls whose root checkpoint goes (keep_latest).

    Each call of a subgraph checkpoints under a namespace of its own (its task id
    after a ":"), started from a root checkpoint (``metadata["parents"][""]``).
    Kept N per namespace, every call the thread ever made would stay: a call goes
    with the root checkpoint it started from, as in langgraph-checkpoint-postgres.
    A root checkpoint not stored goes too when it is older than every root
    checkpoint kept (pruned before, or never stored: ``durability="exit"``); a
    newer one may be awaiting its put (``durability="async"``), and keeps its call.
    A ``checkpointer=True`` subgraph's namespace (no ":") outlives its calls: kept.
    """
    kept_roots = [cid for ns, cid in live if ns == ""]
    if not kept_roots:
        return set()
    oldest_root = min(kept_roots)
    out = set()
    for ns, ids in by_ns.items():
        if ":" not in ns:
            continue
        parents = docs[(ns, max(ids))][2].get("parents")
        root = parents.get("") if isinstance(parents, dict) else None
        if not isinstance(root, str):
            continue
        if ("", root) in live:
            continue
        if ("", root) in docs or root < oldest_root:
            out.add(ns)
    return out


def _keep_delta_ancestors(
    ns: str,
    cid: str,
    docs: Mapping[tuple[str, str], tuple[str | None, dict[str, Any], dict[str, Any]]],
    vals: Mapping[tuple[str, str, str], tuple[int, str | None, bytes]],
    live: set[tuple[str, str]],
    walked: dict[tuple[str, str], set[str]],
) -> None:
    """Add to ``live`` the ancestors the `DeltaChannel`s of checkpoint ``cid`` replay
    from, and those that these replay from in turn. ``walked``, shared by the calls of
    one operation: per checkpoint, the channels already walked back from it."""
    parent, doc, md = docs[(ns, cid)]
    pending = _replayed(ns, doc, md, vals)
    node = cid
    seen = 0
    while pending and parent is not None and (ns, parent) in docs and seen <= len(docs):
        # A walk from a checkpoint goes as far as any with fewer channels pending:
        # one done from here already keeps all this one would. (Without this, each
        # remaining checkpoint's walk could go to the root: quadratic in the thread.)
        done = walked.setdefault((ns, node), set())
        if pending <= done:
            break
        done |= pending
        live.add((ns, parent))
        seen += 1
        node = parent
        parent, doc, md = docs[(ns, parent)]
        versions = doc.get("channel_versions", {})
        # an ancestor without a version of the channel holds its first writes,
        # if any: none older than it are replayed
        pending = {ch for ch in pending if ch in versions and not _has_value(vals, ns, ch, doc)}
        # The ancestor stays, so it is listed and read too: what it replays itself
        # must stay as well. A channel that snapshots more often than another may
        # have its seed above this ancestor for the checkpoint kept, and below it
        # for the ancestor, which would read back with that channel cut short.
        pending |= _replayed(ns, doc, md, vals)


def _replayed(
    ns: str,
    doc: dict[str, Any],
    md: dict[str, Any],
    vals: Mapping[tuple[str, str, str], tuple[int, str | None, bytes]],
) -> set[str]:
    """The `DeltaChannel`s a checkpoint's read rebuilds from its ancestors: those
    counted since their last snapshot that it stores no value of."""
    versions = doc.get("channel_versions", {})
    # A channel without a version was never written on this branch (LangGraph
    # counts its supersteps all the same, and never snapshots it): there is
    # nothing to replay, and walking to the root for it would keep every
    # checkpoint of the thread.
    return {
        ch
        for ch in (md.get("counters_since_delta_snapshot") or {})
        if ch in versions and not _has_value(vals, ns, ch, doc)
    }


def _has_value(
    vals: Mapping[tuple[str, str, str], tuple[int, Any, Any]], ns: str, ch: str, doc: dict[str, Any]
) -> bool:
    """Whether the checkpoint ``doc`` stores a value of ``ch``: in its row, or a value row."""
    if ch in (doc.get("channel_values") or ()):
        return True
    ver = doc.get("channel_versions", {}).get(ch)
    row = vals.get((ns, ch, str(ver))) if ver is not None else None
    return row is not None and row[0] != KIND.EMPTY
