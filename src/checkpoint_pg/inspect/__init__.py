"""Inspect what a checkpoint_pg saver stored: threads, history, replay, diff, stats.

The Python API behind the ``checkpoint-pg`` command; every call here only reads.

>>> from checkpoint_pg import SqliteSaver
>>> from checkpoint_pg.inspect import Inspector
>>> with SqliteSaver.from_conn_string("app.db") as saver:
...     ins = Inspector(saver)
...     page = ins.threads(limit=20)
...     steps = ins.history(page.threads[0].thread_id)
"""

from __future__ import annotations

from checkpoint_pg.inspect.inspector import Inspector
from checkpoint_pg.inspect.model import Run
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

__all__ = [
    "Inspector",
    "ThreadInfo",
    "ThreadPage",
    "HistoryEntry",
    "LeaseInfo",
    "CheckpointView",
    "ChannelDiff",
    "Diff",
    "ThreadStats",
    "Stats",
    "Run",
]
