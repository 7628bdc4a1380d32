"""Thread leases: a run holds a thread against every other writer (I/O-free part).

`saver.lease(thread_id)` writes a random token and an expiry into the thread's
row. While the block runs, every put and put_writes of that thread made through
the saver sends the token, and the database checks it under the thread's row
lock. The saver finds the token in a context variable (set by the block, and
copied by LangGraph into most of its background writers) or, failing that, in
the saver's own table of the leases its blocks hold: LangGraph commits the
writes of parallel tasks from a future's callback, in a thread that carries no
context of the run. A lease therefore guards a thread against every other
process and saver; inside one process, each run should take its own lease
(a second one is refused) rather than write to a leased thread without one.

- no token, and another run's lease has not lapsed: refused (`ThreadBusyError`);
- a token that is not the row's (the lease lapsed and another run took it, the
  thread was deleted, or the lease was broken): refused too, so the run that
  lost its lease cannot write over the one that holds it now;
- the holder's put renews the lease for another ``ttl`` seconds.

Times are the database's clock (seconds since the epoch), so the clocks of
the machines running the graphs do not matter.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from checkpoint_pg.errors import ConfigError, ThreadBusyError

__all__ = ["Lease", "DEFAULT_TTL", "held", "holding", "lease_params", "new_lease", "verdict"]

DEFAULT_TTL = 300.0

# (saver key, thread id) -> the lease this context holds. One variable for all
# savers: ContextVars are meant to live as long as the program.
_HELD: ContextVar[Mapping[tuple[int, str], Lease]] = ContextVar("checkpoint_pg_leases", default={})


@dataclass(frozen=True)
class Lease:
    """A run's hold on one thread: its random token and how long a put extends it."""

    thread_id: str
    token: str
    ttl: float


def new_lease(thread_id: str, ttl: float) -> Lease:
    if not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or not math.isfinite(ttl) or ttl <= 0:
        raise ConfigError(f"lease ttl must be a positive number of seconds, got {ttl!r}")
    return Lease(thread_id, secrets.token_hex(16), float(ttl))


def lease_params(lease: Lease | None) -> dict[str, object]:
    """The ``lease`` / ``ttl`` parameters of a put or put_writes statement."""
    if lease is None:
        return {"lease": None, "ttl": None}
    return {"lease": lease.token, "ttl": lease.ttl}


def held(saver_key: int, thread_id: str, saver_leases: Mapping[str, Lease]) -> Lease | None:
    """The lease the current context holds on ``thread_id`` through this saver, else
    the one a block of this saver holds on it (see the module's docstring)."""
    return _HELD.get().get((saver_key, thread_id)) or saver_leases.get(thread_id)


@contextmanager
def holding(saver_key: int, lease: Lease, saver_leases: dict[str, Lease]) -> Iterator[None]:
    """Make ``lease`` the current context's, and the saver's, for the block."""
    leases = dict(_HELD.get())
    leases[(saver_key, lease.thread_id)] = lease
    reset = _HELD.set(leases)
    saver_leases[lease.thread_id] = lease
    try:
        yield
    finally:
        if saver_leases.get(lease.thread_id) is lease:
            del saver_leases[lease.thread_id]
        _HELD.reset(reset)


def verdict(thread_id: str, owner: str | None, left: float | None, token: str | None) -> ThreadBusyError | None:
    """Whether a write with ``token`` may go on, given the thread row's lease.

    ``left`` is the seconds until the lease lapses (negative once it has).
    The same rule runs in the Postgres functions (sql/functions.py, `_LEASE_CHECK`) and
    as the condition of SQLite's write inserts (sql/sqlite.py, `lease_allows`): a change
    here changes them too.
    """
    if owner == token or (token is None and (owner is None or left is None or left <= 0)):
        return None
    if token is None:
        return held_error(thread_id, left or 0.0)
    return lost_error(thread_id)


def held_error(thread_id: str, left: float) -> ThreadBusyError:
    return ThreadBusyError(
        f"thread {thread_id!r} is leased by another run for {max(left, 0.0):.1f} more seconds "
        "(saver.lease): nothing was written. Wait for that run to finish; a lease of a "
        f"crashed run lapses by itself, or break it with saver.break_lease({thread_id!r})",
        thread_id=thread_id,
    )


def lost_error(thread_id: str) -> ThreadBusyError:
    return ThreadBusyError(
        f"this run's lease on thread {thread_id!r} is gone (it lapsed and another run took "
        "the thread, or the thread was deleted, or the lease was broken): nothing was "
        "written. Start a new run from the thread's latest state",
        thread_id=thread_id,
    )
