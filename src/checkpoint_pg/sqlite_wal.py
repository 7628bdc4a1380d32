"""WAL checkpoints of a SQLite saver's file, on a thread of their own.

SQLite copies the WAL back into the database file inside the commit that takes
it past ``wal_autocheckpoint`` pages (1,000 by default), and syncs the file
there: that commit waits for it. A step of ours commits ~11 pages (the
incumbent's ~6), so the copy fell on more than 1% of our puts and made their
p99 ~3x the incumbent's, and its time was the caller's. A saver that opened
its file itself runs the checkpoints here instead, every `BATCH_WRITES` of its
commits and when its writes pause, in PASSIVE mode (which neither waits for nor
blocks readers and writers); the connection's automatic checkpoint stays as a
bound, at `FALLBACK_PAGES`, for when this thread falls behind or is gone (a
forked child).
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from typing import Any

__all__ = ["WalCheckpointer"]

# WAL pages after which the writing connection checkpoints by itself (SQLite's
# default is 1,000): only reached when the thread falls behind, or when commits
# never leave the checkpoint a moment to finish (the WAL then restarts there).
FALLBACK_PAGES = 4000


class WalCheckpointer:
    """Checkpoints the WAL of ``path`` every `BATCH_WRITES` commits, and once writes
    pause for `IDLE` seconds.

    `wrote` is what a commit costs the caller (a count, and setting an event every
    `BATCH_WRITES`). The thread stops with `close`, or when ``owner`` is garbage
    collected without it.
    """

    # commits between checkpoints: ~700 WAL pages at a step's two commits of ~11 pages,
    # about SQLite's own cadence (1,000 pages), so as many syncs of the file as before
    BATCH_WRITES = 128
    IDLE = 1.0  # a pause in the writes checkpoints what they left in the WAL
    JOIN_TIMEOUT = 2.0

    def __init__(self, path: str, owner: Any) -> None:
        self._path = path
        self._due = threading.Event()
        self._stopping = threading.Event()
        self._writes = 0  # since the last checkpoint (approximate: not locked)
        self.checkpoints = 0  # completed, for tests
        self._thread = threading.Thread(
            target=self._run, name="checkpoint-pg-wal", daemon=True
        )
        self._thread.start()
        weakref.finalize(owner, self._stop)

    def wrote(self) -> None:
        self._writes += 1
        if self._writes >= self.BATCH_WRITES:
            self._due.set()

    def close(self) -> None:
        """Stop the thread, waiting a moment for the checkpoint it is running if any.

        Not for ever: the garbage collector runs other objects' finalizers on
        whichever thread allocates, this one too, and one of them may wait for
        something the closing thread holds. The thread then ends by itself."""
        self._stop()
        if self._thread is not threading.current_thread():
            self._thread.join(self.JOIN_TIMEOUT)

    def _stop(self) -> None:
        self._stopping.set()
        self._due.set()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            return  # the connection's own automatic checkpoint goes on
        try:
            while True:
                self._due.wait(self.IDLE)
                if self._stopping.is_set():
                    return
                self._due.clear()
                if not self._writes:
                    continue  # idle, and nothing left in the WAL by us
                self._writes = 0
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error:
                    pass  # busy, or the file went: the fallback bounds the WAL
        finally:
            conn.close()
