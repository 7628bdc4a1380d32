"""Copy threads from one checkpoint_pg database into another: a SQLite file's into Postgres
(moving an app off the embedded default), one Postgres into another, a prefix into another.

The import's own loop does it (`importer.import_langgraph`), with a checkpoint_pg saver as
the source: one checkpoint read at a time through the source's ``get_tuple``, its writes
then the checkpoint written through the target's ``put_writes`` and ``put``, which store
every value once again. So it holds what the import holds: idempotent (what the target
has is skipped), resumable, the writes a source checkpoint gained since a first run
added, a thread the target holds with another history refused before anything is
written, and checkpoints pruned on the target since not brought back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langgraph.checkpoint.base import CheckpointTuple

from checkpoint_pg.errors import ConfigError
from checkpoint_pg.inspect.importer import ImportReport, _Source, import_langgraph, target_reads
from checkpoint_pg.sql.inspect import InspectSQL

__all__ = ["transfer", "source_of"]


class _OwnKeys:
    """The key reads the import makes of its source (`IncumbentSQL`'s), on our tables."""

    def __init__(self, sql: InspectSQL) -> None:
        self._sql = sql

    def threads(self) -> Any:
        return self._sql.checkpoint_counts()

    def checkpoint_keys(self, t: str) -> Any:
        return self._sql.thread_checkpoint_keys(t)

    def write_keys(self, t: str, with_task_path: bool = True) -> Any:
        return self._sql.thread_write_keys(t, None)


class _OwnSource(_Source):
    """The import's source on a saver of ours: an error reading it (a value the serializer
    or hash_key given cannot read, the file locked, the connection lost) is marked
    ``from_source``, so that the command says it of the source (--from), not of the
    target (--url): both savers' messages read alike."""

    def fetch(self, thread_id: str, ns: str, cid: str) -> CheckpointTuple | None:
        with _of_source():
            return super().fetch(thread_id, ns, cid)


@contextlib.contextmanager
def _of_source() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        exc.from_source = True  # type: ignore[attr-defined]
        raise


def source_of(saver: Any) -> _Source:
    """The import's source for a sync checkpoint_pg ``saver`` (opened read-only, say)."""
    from checkpoint_pg.inspect.inspector import Inspector

    if not callable(getattr(saver, "_run", None)) or not hasattr(saver, "ctx"):
        raise ConfigError(
            f"transfer reads a sync checkpoint_pg saver (PostgresSaver or SqliteSaver), got "
            f"{type(saver).__name__}: for a langgraph-checkpoint-postgres or -sqlite database use "
            "import_langgraph (`checkpoint-pg import-langgraph --from URL`)"
        )
    ins = Inspector(saver)

    def query(stmt: Any) -> list[tuple[Any, ...]]:
        with _of_source():
            return ins._read(ins._one(stmt))  # type: ignore[no-any-return]

    return _OwnSource(saver, _OwnKeys(ins.sql), query, True)


def transfer(
    source: Any,
    target: Any,
    *,
    thread_ids: Sequence[str] | None = None,
    dry_run: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
    skip_other_histories: bool = False,
) -> ImportReport:
    """Copy every checkpoint and write of ``source`` that ``target`` lacks (both sync
    checkpoint_pg savers; ``target`` None only for a dry run on a target without tables).

    ``thread_ids``: only these (`NotFoundError` naming any the source lacks). Values are
    decoded with the source's serializer and stored with the target's: give both the
    app's (an ``EncryptedSerializer``, its ``hash_key``). See `import_langgraph` for the
    rest: ``progress``, ``skip_other_histories``, what the report counts.
    """
    if target is None and not dry_run:
        raise ConfigError("transfer needs a target saver (None only with dry_run=True)")
    src = source_of(source)
    if target is not None:
        source_of(target)  # the same check, for the target
    existing, existing_writes = target_reads(target)
    return import_langgraph(
        src,
        target,
        existing,
        thread_ids=thread_ids,
        dry_run=dry_run,
        progress=progress,
        existing_writes=existing_writes,
        skip_other_histories=skip_other_histories,
    )
