"""``checkpoint-pg migrate``: upgrade, downgrade, current, history and sql, over
`checkpoint_pg.migrate` (alembic run programmatically).
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from checkpoint_pg.cli.shared import (
    ENV_URL,
    AddCommand,
    UsageError,
    _confirm,
    _current,
    _db_options,
    _destructive,
    _display_url,
    _is_pg,
    _no_schema_on_sqlite,
    _print_json,
    _report,
    _sa_connection,
    _sqlite_path,
    _url,
)
from checkpoint_pg.errors import CheckpointPgError, NotFoundError
from checkpoint_pg.schema import build_tables


def cmd_migrate(args: argparse.Namespace) -> int:
    from checkpoint_pg import migrate

    tables = build_tables(args.prefix, args.schema or None)
    action = args.action
    if action == "history":
        head = migrate.head()
        revs = [
            {"revision": r, "down_revision": d, "message": (m or "").strip(), "head": r == head}
            for r, d, m in migrate.history()
        ]
        if args.json:
            _print_json(revs)
        else:
            for r in revs:
                print(
                    f"{r['down_revision'] or '<base>'} -> {r['revision']}{' (head)' if r['head'] else ''}, {r['message']}"
                )
        return 0
    if action == "sql":
        start, end = _revision_index(args.start), _revision_index(args.end)
        if start is not None and end is not None and start >= end:
            raise UsageError(
                f"--from {args.start} is not below --to {args.end}: the upgrade between them is empty "
                "(migrate sql prints upgrades only; see the order with `checkpoint-pg migrate history`)"
            )
        if args.dialect is None and args.url is None and not os.environ.get(ENV_URL):
            raise UsageError(
                "migrate sql needs the database kind: --dialect postgresql or --dialect sqlite "
                "(or --url, which also names it)"
            )
        dialect = args.dialect or ("postgresql" if _is_pg(_url(args)) else "sqlite")
        if dialect == "sqlite":
            _no_schema_on_sqlite(args)
        sql = migrate.offline_sql(tables, dialect, start=args.start, end=args.end)
        if args.json:
            _print_json({"dialect": dialect, "sql": sql})
        else:
            sys.stdout.write(sql)
        return 0
    if action == "current":
        with _sa_connection(args, write=False) as conn:
            cur = migrate.current(conn, tables)
            orphans = migrate.unversioned_tables(conn, tables) if cur is None else []
        head = migrate.head()
        at_head = cur == head
        # the database's options in the command: without them it would upgrade the default
        # database (or the default prefix's tables) instead of these
        upgrade = f"checkpoint-pg migrate upgrade {_db_options(args)}"
        if args.json:
            _print_json({"current": cur, "head": head, "at_head": at_head})
        else:
            if at_head:
                state = "at head"
            elif orphans:
                state = (
                    f"checkpoint_pg tables ({', '.join(orphans)}) without their version table "
                    f"{tables.version_table}: their revision is unknown, `{upgrade}` says what to do"
                )
            elif cur is None:
                state = f"no checkpoint_pg tables: run `{upgrade}`"
            elif not migrate.known(cur):
                state = (
                    f"migrated by a newer release: upgrade the checkpoint-pg package, this one "
                    f"cannot migrate from {cur}"
                )
            else:
                state = f"behind head: run `{upgrade}`"
            print(f"current: {cur or '<none>'}  head: {head}  ({state})")
        return 0 if at_head else 1
    if action == "upgrade":
        target = args.revision or "head"
        if args.dry_run:
            before = _current(args)
            if before is None and (_is_pg(_url(args)) or os.path.isfile(_sqlite_path(_url(args)))):
                with _sa_connection(args, write=False) as conn:
                    migrate.refuse_unversioned(conn, tables)  # as the upgrade would
            return _upgrade_plan(args, before, target)
        if not _RELATIVE_UP.fullmatch(target) and _revision_index(target) is None:
            # refused as the dry run refuses it, before a SQLite file is created for it
            raise _revision_error(target)
        with _sa_connection(args, write=True) as conn:
            # the functions the upgrade installs again at head (a dump of the tables alone
            # restored), asked first: upgrade() does it under its lock and says nothing
            lacking = migrate.missing_functions(conn, tables)
            # read under the migration's lock: a setup() or upgrade that ran meanwhile is
            # not reported as this one's
            before = migrate.upgrade(conn, tables, target)
            after = migrate.current(conn, tables)
        text = (
            f"already at {after or '<none>'}, at or past {target}: nothing to do"
            if after == before
            else f"upgraded {before or '<none>'} -> {after}"
        )
        if lacking and after == before:
            text = f"at {after}: installed its missing functions again ({', '.join(lacking)})"
        return _report(args, {"from": before, "to": after}, text)
    if action == "downgrade":
        before = _current(args)
        nothing, target = _downgrade_check(args, before, args.revision)
        if nothing is not None:
            return nothing
        what = f"downgrade {_display_url(args)} from {before} to {target}" + (
            " (drops every checkpoint_pg table and all their data)" if target == "<base>" else ""
        )
        if args.dry_run:
            to = "base" if target == "<base>" else target  # JSON: alembic's name, as before
            # "from" and "to" as every other migrate report (the upgrade's dry run, the run
            # itself: None at base), so that a script reads the same keys from each
            data = {"dry_run": True, "from": before, "to": None if target == "<base>" else target}
            return _report(args, {**data, "downgrade_to": to}, f"would {what}")
        if not _confirm(args, what + "?"):
            print("cancelled", file=sys.stderr)
            return 1
        with _sa_connection(args, write=True, create=False) as conn:
            # read under the migration's lock, as upgrade's: a migration that ran since the
            # question is not reported as this one's; and the revision confirmed, not "-1",
            # so that one run meanwhile is not stepped down from once more
            before = migrate.downgrade(conn, tables, "base" if target == "<base>" else target)
            after = migrate.current(conn, tables)
        text = (
            f"already at {after or '<base>'}: nothing to do"
            if after == before
            else f"downgraded {before or '<none>'} -> {after or '<base>'}"
        )
        return _report(args, {"from": before, "to": after}, text)
    raise UsageError(f"unknown migrate action {action!r}")  # pragma: no cover - argparse checks


def _revision_index(revision: str | None) -> int | None:
    """Where a revision stands from base (-1) to head; None when it names none of ours (or
    several: alembic then says what is wrong)."""
    from checkpoint_pg import migrate

    order = [r for r, _, _ in migrate.history()]
    if revision in (None, "base"):
        return -1
    if revision == "head":
        return len(order) - 1
    found = [i for i, r in enumerate(order) if r.startswith(revision)]
    return found[0] if len(found) == 1 else None


def _revision_error(target: str) -> UsageError:
    """Why ``target`` names no revision: none of ours, or several (a short prefix)."""
    from checkpoint_pg import migrate

    several = [r for r, _, _ in migrate.history() if target and r.startswith(target)]
    if len(several) > 1:
        return UsageError(
            f"revision {target!r} is ambiguous: it starts {', '.join(several)}; give the whole "
            "revision (see them with `checkpoint-pg migrate history`)"
        )
    return UsageError(f"unknown revision {target!r}: see them with `checkpoint-pg migrate history`")


def _positions(before: str | None, target: str, newer: str) -> tuple[list[str], int]:
    """The revisions in order and the index of ``target`` in them, once the database's
    revision ``before`` is one this release knows (``newer`` says what to do if not)."""
    from checkpoint_pg import migrate

    if before is not None and not migrate.known(before):
        raise CheckpointPgError(
            f"the database is at revision {before}, which this release does not know: it was migrated "
            f"by a newer release; {newer}"
        )
    to = _revision_index(target)
    if to is None:
        raise _revision_error(target)
    return [r for r, _, _ in migrate.history()], to


def _downgrade_check(
    args: argparse.Namespace, before: str | None, target: str
) -> tuple[int | None, str]:
    """Refuse a downgrade that cannot be one (no tables, an unknown or a higher
    revision), report one with nothing to do (its exit status first); else (None, the
    revision it goes to, "<base>" for base): -1 or a prefix named as the revision."""
    if before is None:
        raise NotFoundError(
            f"{_display_url(args)} has no checkpoint_pg tables (prefix {args.prefix!r}): nothing to downgrade"
        )
    steps = re.fullmatch(r"-(\d+)", target)  # alembic's relative form: -1 is one step down
    if steps is not None:
        order, _ = _positions(before, "base", "downgrade with that release")
        at, to = order.index(before), order.index(before) - int(steps.group(1))
        if to < -1:
            raise UsageError(
                f"{target} goes below base: the database is {at + 1} revisions above it ({before})"
            )
    else:
        order, to = _positions(before, target, "downgrade with that release")
        at = order.index(before)
    if to > at:
        raise UsageError(
            f"revision {order[to]} is above the database's revision {before}: to move up, run "
            f"`checkpoint-pg migrate upgrade {order[to]} {_db_options(args)}`"
        )
    if to == at:
        data = {"dry_run": bool(args.dry_run), "from": before, "to": before}
        return _report(args, data, f"already at {before}: nothing to do"), before
    return None, order[to] if to >= 0 else "<base>"


# alembic's relative form for an upgrade: +1 is one step up from the database's revision
_RELATIVE_UP = re.compile(r"\+(\d+)")


def _upgrade_plan(args: argparse.Namespace, before: str | None, target: str) -> int:
    """What ``migrate upgrade --dry-run`` reports: the step from the database's revision."""
    from checkpoint_pg import migrate

    steps = _RELATIVE_UP.fullmatch(target)
    newer = "upgrade the checkpoint-pg package instead of migrating"
    if steps is not None:
        order, _ = _positions(before, "head", newer)
        to = (order.index(before) if before is not None else -1) + int(steps.group(1))
        if to >= len(order):
            raise UsageError(
                f"{target} goes above head: the database is at {before or '<none>'}, head is {order[-1]}"
            )
        target = order[to]
    order, to = _positions(before, target, newer)
    if before is not None and order.index(before) >= to:
        where = f"{before} (head)" if target == "head" else f"{before}, at or past {target}"
        text = f"already at {where}: nothing to do"
        if _is_pg(_url(args)):
            with _sa_connection(args, write=False) as conn:
                lacking = migrate.missing_functions(conn, build_tables(args.prefix, args.schema or None))
            if lacking:  # as the upgrade will (migrate.restore_functions)
                text = f"at {before}: would install its missing functions again ({', '.join(lacking)})"
        return _report(args, {"dry_run": True, "from": before, "to": before}, text)
    end = order[to]
    sql = f"checkpoint-pg migrate sql{f' --from {before}' if before else ''} --to {end} {_db_options(args)}"
    return _report(
        args,
        {"dry_run": True, "from": before, "to": end},
        f"would upgrade {_display_url(args)} {before or '<none>'} -> {end}; see the SQL with `{sql}`",
    )


# -- command line --------------------------------------------------------------------


def add_parsers(add: AddCommand, common: argparse.ArgumentParser) -> None:
    """Add migrate and its actions (upgrade, downgrade, current, history, sql)."""
    p = add(
        "migrate",
        "schema migrations (alembic)",
        cmd_migrate,
        "upgrade [REV] | downgrade REV | current (exit 1 unless at head) | history | sql (offline SQL for review)",
    )
    msub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    m = msub.add_parser("upgrade", help="upgrade to head (or REV)", parents=[common])
    m.add_argument("revision", nargs="?", metavar="REV")
    m.add_argument("--dry-run", action="store_true", help="only say what would be done")
    m = msub.add_parser("downgrade", help="downgrade to REV ('base' drops every table)", parents=[common])
    m.add_argument("revision", metavar="REV")
    _destructive(m)
    msub.add_parser("current", help="the database's revision; exit 1 unless at head", parents=[common])
    msub.add_parser("history", help="the revisions this package knows", parents=[common])
    m = msub.add_parser(
        "sql", help="print the upgrade SQL for a DBA to review (no database needed)", parents=[common]
    )
    m.add_argument("--dialect", choices=["postgresql", "sqlite"], help="default: from --url")
    m.add_argument("--from", dest="start", metavar="REV", help="start revision (default: empty database)")
    m.add_argument("--to", dest="end", default="head", metavar="REV", help="end revision (default: head)")
