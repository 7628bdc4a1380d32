"""Driver exceptions translated into checkpoint_pg's own, with what to do about them."""

from __future__ import annotations

import json

from checkpoint_pg.errors import (
    CheckpointPgError,
    ConfigError,
    DatabaseBusyError,
    IntegrityError,
    SaverClosedError,
    SchemaVersionError,
)


class ConnectionLost(Exception):
    """Internal: a pooled connection died under an operation (or the server broke a
    deadlock by aborting it); the shell runs it again once (`shells.base.Retry`).

    The pool discards the broken connection. Every operation is idempotent
    (puts upsert, writes keep the first, deletes delete), so running it again
    is safe even when the first attempt reached the server. Cloud databases
    close idle connections during long LLM calls: this is what keeps the next
    checkpoint from failing.
    """


class BaseGone(IntegrityError):
    """A put was refused because channel values it builds on are not stored.

    Either its thread was deleted or pruned while the run was writing (then
    nothing can save it), or it was planned on list states this process cached
    and another process has since deleted: the shells plan it again once from
    what is stored (`shells.base.Retry`).
    """


def closed_error(saver: object, what: str) -> SaverClosedError:
    """A call on a closed saver: the driver's "closed" says neither which nor what to do."""
    name = type(saver).__name__
    a = "a" if name.startswith("Async") else ""
    return SaverClosedError(
        f"this {name} is closed ({what}); nothing was sent. A saver serves only inside its "
        f"`{a and 'async '}with {name}.from_conn_string(...)` block (or until {a}close()): keep the "
        "graphs and tasks that use it inside the block, awaiting them before it ends, or create "
        "a new saver"
    )


def setup_in_transaction(saver: object, state: str) -> ConfigError:
    """setup() on the caller's connection while the caller's transaction is open: the
    migration commits its own transaction, and on that connection it would commit the
    caller's pending statements with it (their rollback then undoes nothing)."""
    name = type(saver).__name__
    call = "asetup()" if name.startswith("Async") else "setup()"
    return ConfigError(
        f"{name}.{call} was called while a transaction of yours is open on its connection "
        f"({state}): the migration commits, and would commit your pending statements with "
        f"it. Nothing was changed; commit or roll back first, then call {call} (or run it "
        "on a connection of its own)"
    )


def prepared_elsewhere(exc: BaseException) -> bool:
    """The server session does not hold a statement psycopg prepared as psycopg does: a
    name it lacks (26000) or holds already (42P05), or, by the server's ProtocolViolation
    (08P01, not a lost connection), another client's statement under the name, taking
    other parameters."""
    sqlstate = getattr(exc, "sqlstate", None)
    return sqlstate in ("26000", "42P05") or (
        sqlstate == "08P01" and "prepared statement" in str(exc)
    )


def translate(exc: BaseException, url_hint: str) -> CheckpointPgError | None:
    """Our error for a driver error, or None to let it through unchanged."""
    text = str(exc)
    if text.startswith("cpg_lease"):
        # raised by the put / put_writes functions: DETAIL is [thread, seconds left, had token]
        from checkpoint_pg.core import lease

        thread, left, had_token = json.loads(exc.diag.message_detail)  # type: ignore[attr-defined]
        return lease.lost_error(thread) if had_token else lease.held_error(thread, left or 0.0)
    if text.startswith("cpg_parent_gone"):
        from checkpoint_pg.core.writing import parent_gone

        return parent_gone(*json.loads(exc.diag.message_detail))  # type: ignore[attr-defined]
    if "cpg_thread_busy" in text:
        from checkpoint_pg.core.writing import _busy

        thread = text.split("thread ", 1)[1].split(" is being run", 1)[0]
        return _busy(thread)
    if "checkpoints_complete" in text or "CHECK constraint failed: complete" in text:
        return BaseGone(
            "the checkpoint builds on channel values that are no longer stored: its thread "
            "was deleted or pruned while the run was writing; nothing was saved. Load the "
            "thread's current state and run again"
        )
    if text.startswith("malformed JSON") or (  # SQLite's JSON functions, or Postgres's,
        getattr(exc, "sqlstate", None) in ("22P02", "22023")  # on a row edited by hand
        and any(w in text for w in ("type json", "deconstruct", "cannot call json"))
    ):
        return IntegrityError(
            "a stored checkpoint document or metadata is not JSON; its row was changed by hand"
        )
    if getattr(exc, "sqlstate", None) == "54000":  # program_limit_exceeded: an index key
        return ConfigError(
            f"a value is too long for Postgres to index ({text.splitlines()[0]}): keep thread "
            "ids, namespaces, checkpoint and task ids and channel names under ~2,000 bytes; "
            "nothing was stored"
        )
    if getattr(exc, "sqlstate", None) == "25001" or "VACUUM from within a transaction" in text:
        return ConfigError(
            "vacuum cannot run inside a transaction: the saver's connection is in one (or, on "
            "Postgres, is not in autocommit mode). Give it an autocommit connection or a pool "
            "(from_conn_string makes one), or run `checkpoint-pg vacuum`; nothing was changed"
        )
    if getattr(exc, "sqlstate", None) == "42501":  # insufficient_privilege
        # the saver's role, not the migrating one (migrate.py says what that one lacks)
        return CheckpointPgError(
            f"this database role may not use checkpoint_pg's tables as the call needs "
            f"({text.splitlines()[0]}); nothing was changed. A saver's role needs USAGE on "
            "the tables' schema, SELECT, INSERT, UPDATE and DELETE on the tables and EXECUTE "
            "on their functions (SELECT and EXECUTE to read only): grant them as the tables' "
            "owner, or connect as a role that has them"
        )
    if prepared_elsewhere(exc):
        # the saver was given prepare=True and psycopg prepared statements on this
        # connection, and the server session it reaches does not hold them as psycopg
        # does: a pooler moving the client between server sessions
        return ConfigError(
            f"the server session does not hold the statements psycopg prepared on this "
            f"connection as psycopg does ({text.splitlines()[0]}): the connection goes "
            "through a pooler in transaction mode (PgBouncer before 1.21, or without "
            "max_prepared_statements), which hands one server session to many clients. Drop "
            "the saver's prepare=True (the default prepares nothing), or open the connection "
            "or pool with prepare_threshold=None; the call was refused"
        )
    if getattr(exc, "sqlstate", None) == "0A000" and "cached plan" in text:
        # a statement prepared on this connection (prepare=True) whose result type a
        # migration changed since: Postgres refuses it for the connection's life
        return ConfigError(
            f"the database's tables or functions changed under the statements prepared on "
            f"this connection ({text.splitlines()[0]}): a migration ran while it was open. "
            "Nothing was changed. Open new connections (restart the process, or the pool's "
            "connections with pool.drain()), or drop the saver's prepare=True"
        )
    if text.startswith("database is locked"):  # SQLite's busy timeout ran out
        return DatabaseBusyError(
            f"the SQLite file {url_hint.split(' --', 1)[0]} is locked by another connection "
            "(waited for the busy timeout, 30 s by default): a process holds a long write "
            "transaction on it. Nothing was stored; try again once it is done"
        )
    if "no such table" in text or "no such column" in text or (
        "does not exist" in text and any(w in text for w in ("relation", "function", "column"))
    ):
        from checkpoint_pg.migrate import head  # noqa: PLC0415 - alembic, only when needed

        # a Postgres function too: a database restored from a dump of its tables alone,
        # which the advised upgrade installs again (migrate.restore_functions)
        what = "functions" if "function" in text else "tables"
        return SchemaVersionError(
            f"checkpoint_pg {what} are missing ({text.splitlines()[0]})",
            current=None,
            expected=head(),
            upgrade_url=url_hint,
        )
    return None
