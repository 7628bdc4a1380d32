"""The saver's operations as I/O-free generators, in one namespace.

Each operation yields `Batch`es of statements and receives their rows back;
`checkpoint_pg.shells` drives the same generator on a sync or an async
connection, inside one transaction. So put, list, prune... are written once.
They live by kind: `writing` (put, put_writes, leases), `reading` (get_tuple,
list), `lifecycle` (delete, copy, prune); what they share is in `context` (the
batches, `Ctx`) and `written` (writes waiting for their message's id).
"""

from __future__ import annotations

from checkpoint_pg.core.context import SQL, Batch, Ctx, LastPuts, Op, StartPoints, Touches
from checkpoint_pg.core.lifecycle import (
    copy_thread,
    date_thread,
    delete_for_runs,
    delete_thread,
    plan_keep_latest,
    prune,
)
from checkpoint_pg.core.reading import (
    LIST_PAGE,
    Memo,
    get_delta_channel_history,
    get_tuple,
    list_in_one_statement,
    list_page,
)
from checkpoint_pg.core.writing import (
    break_lease,
    put,
    put_writes,
    release_lease,
    renew_lease,
    take_lease,
)
from checkpoint_pg.core.written import WrittenMessages

__all__ = [
    "LIST_PAGE",
    "SQL",
    "Batch",
    "Ctx",
    "LastPuts",
    "Memo",
    "Op",
    "StartPoints",
    "Touches",
    "WrittenMessages",
    "break_lease",
    "copy_thread",
    "date_thread",
    "delete_for_runs",
    "delete_thread",
    "get_delta_channel_history",
    "get_tuple",
    "list_in_one_statement",
    "list_page",
    "ops",
    "plan_keep_latest",
    "prune",
    "put",
    "put_writes",
    "release_lease",
    "renew_lease",
    "take_lease",
]


class ops:  # noqa: N801 - a namespace, read as ops.put(...)
    put = staticmethod(put)
    put_writes = staticmethod(put_writes)
    get_tuple = staticmethod(get_tuple)
    list_page = staticmethod(list_page)
    get_delta_channel_history = staticmethod(get_delta_channel_history)
    delete_thread = staticmethod(delete_thread)
    copy_thread = staticmethod(copy_thread)
    delete_for_runs = staticmethod(delete_for_runs)
    prune = staticmethod(prune)
