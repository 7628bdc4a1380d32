"""Pruning beyond the saver's ``prune``: keep the last N checkpoints, drop stale threads.

``saver.prune(ids, strategy="keep_latest")`` keeps one checkpoint per namespace.
`keep_last` keeps N, through the core's own garbage collection (the same code
``prune`` runs), so the checkpoints kept keep everything they need: their
channel values, the delta chains those grow from, the ancestors a
``DeltaChannel`` replays from, and the objects all of these refer to.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from checkpoint_pg.core.config import normalize_thread_id
from checkpoint_pg.errors import ConfigError

__all__ = ["parse_duration", "keep_last", "plan_keep_last", "PrunePlan"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> dt.timedelta:
    """``30d``, ``12h``, ``90m``, ``2w``, ``45s`` as a timedelta."""
    m = _DURATION.match(str(text))
    if not m:
        raise ConfigError(f"invalid duration {text!r}: use a number and a unit, s m h d or w (e.g. 30d, 12h)")
    try:
        delta = dt.timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
        dt.datetime.now(dt.timezone.utc) - delta  # a cutoff that is a date
    except (OverflowError, ValueError):
        raise ConfigError(
            f"duration {text!r} reaches back before the year 1: no thread is that old"
        ) from None
    return delta


@dataclass
class PrunePlan:
    """Per thread: how many checkpoints it has and how many `keep_last` would delete.

    Counted by the garbage collection ``prune`` runs, without writing: the
    ancestors a kept ``DeltaChannel`` replays from stay, a finished subgraph
    call goes whole. (``delete_at_most``: checkpoints a run adds meanwhile
    push older ones out too.)
    """

    thread_id: str
    checkpoints: int
    delete_at_most: int


def plan_keep_last(inspector: Any, thread_ids: Iterable[str], n: int) -> list[PrunePlan]:
    """What `keep_last` would delete, read without writing (for ``--dry-run``)."""
    _check_n(n)
    plans = []
    for t in thread_ids:
        total, drop = inspector.keep_last_plan(t, n)
        plans.append(PrunePlan(t, total, drop))
    return plans


def _check_n(n: Any) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"--keep-last must be an int >= 1, got {n!r}")


def keep_last(saver: Any, thread_ids: Sequence[str], n: int) -> None:
    """Keep the latest ``n`` checkpoints of every namespace of each thread; delete the rest.

    One transaction per thread, holding the thread's lock like ``prune`` does,
    so a run writing to the thread meanwhile waits instead of racing.
    """
    _check_n(n)
    saver.prune([normalize_thread_id(t) for t in thread_ids], keep_last=n)
