"""Factories that open each saver under test by name.

Names: ``ours-pg``, ``ours-sqlite`` (checkpoint_pg, when it imports),
``lg-pg`` (langgraph-checkpoint-postgres), ``lg-sqlite``
(langgraph-checkpoint-sqlite) and ``memory`` (InMemorySaver).

``target`` is a Postgres URL for the *-pg savers, a file path for the
*-sqlite savers and ignored for ``memory``.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any

from bench.common import OURS_PG_PREPARE, ours_class, ours_status

ALL = ("ours-pg", "ours-sqlite", "lg-pg", "lg-sqlite", "memory")


def backend(name: str) -> str:
    if name.endswith("-pg"):
        return "pg"
    if name.endswith("-sqlite"):
        return "sqlite"
    return "memory"


def family(name: str) -> str:
    """'ours' / 'lg' / 'memory' — which tables to count for a pg saver."""
    return name.split("-", 1)[0] if "-" in name else name


def _ours(cls_name: str) -> Any:
    cls, why = ours_class(cls_name)
    if cls is None:
        raise RuntimeError(why)
    return cls


async def _maybe_await(x: Any) -> Any:
    if inspect.isawaitable(x):
        return await x
    return x


# ---------------------------------------------------------------- sync


@contextlib.contextmanager
def open_sync(name: str, target: str | None, *, setup: bool = True) -> Iterator[Any]:
    if name == "memory":
        from langgraph.checkpoint.memory import InMemorySaver

        yield InMemorySaver()
        return
    if name == "lg-pg":
        from langgraph.checkpoint.postgres import PostgresSaver as cls
    elif name == "lg-sqlite":
        from langgraph.checkpoint.sqlite import SqliteSaver as cls
    elif name == "ours-pg":
        cls = _ours("PostgresSaver")
    elif name == "ours-sqlite":
        cls = _ours("SqliteSaver")
    else:
        raise ValueError(name)
    with cls.from_conn_string(target, **_options(name)) as saver:
        if setup:
            saver.setup()
        yield saver


def _options(name: str) -> dict[str, Any]:
    # bench/common.py OURS_PG_PREPARE: like the incumbent's own connections
    return {"prepare": OURS_PG_PREPARE} if name == "ours-pg" else {}


# ---------------------------------------------------------------- async


@contextlib.asynccontextmanager
async def open_async(name: str, target: str | None, *, setup: bool = True) -> AsyncIterator[Any]:
    if name == "memory":
        from langgraph.checkpoint.memory import InMemorySaver

        yield InMemorySaver()
        return
    if name == "lg-pg":
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver as cls
    elif name == "lg-sqlite":
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver as cls
    elif name == "ours-pg":
        cls = _ours("AsyncPostgresSaver")
    elif name == "ours-sqlite":
        cls = _ours("AsyncSqliteSaver")
    else:
        raise ValueError(name)
    async with cls.from_conn_string(target, **_options(name)) as saver:
        if setup:
            await async_setup(saver)
        yield saver


async def async_setup(saver: Any) -> None:
    # Incumbents name it ``setup`` (a coroutine); ours ``asetup``.
    fn = getattr(saver, "asetup", None) or saver.setup
    await _maybe_await(fn())


# ---------------------------------------------------------------- pools


def pool_kwargs(name: str) -> dict[str, Any]:
    """Connection kwargs for a psycopg pool handed to a saver.

    The incumbent requires autocommit + dict rows (its from_conn_string uses
    exactly these). Ours may publish its requirements as
    ``checkpoint_pg.POOL_KWARGS`` / ``pool_kwargs()``; otherwise the kwargs
    its own from_conn_string uses (``checkpoint_pg.postgres._CONN_KW``), preparing
    as ``OURS_PG_PREPARE`` says.
    """
    from psycopg.rows import dict_row

    if name == "lg-pg":
        return {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
    mod, _ = ours_status()
    if mod is not None:
        fn = getattr(mod, "pool_kwargs", None)
        if callable(fn):
            return dict(fn())
        kw = getattr(mod, "POOL_KWARGS", None)
        if isinstance(kw, dict):
            return dict(kw)
        try:
            kw = getattr(importlib.import_module("checkpoint_pg.postgres"), "_CONN_KW", None)
        except Exception:  # noqa: BLE001
            kw = None
        if isinstance(kw, dict):
            return {**kw, "prepare_threshold": 0 if OURS_PG_PREPARE else None}
    return {"autocommit": True}


@contextlib.contextmanager
def open_sync_pool(name: str, url: str, size: int) -> Iterator[Any]:
    from psycopg_pool import ConnectionPool

    if name == "lg-pg":
        from langgraph.checkpoint.postgres import PostgresSaver as cls
    elif name == "ours-pg":
        cls = _ours("PostgresSaver")
    else:
        raise ValueError(f"{name} takes no pool")
    with ConnectionPool(url, min_size=size, max_size=size, kwargs=pool_kwargs(name), open=True) as pool:
        pool.wait()
        saver = cls(pool, **_options(name))
        saver.setup()
        yield saver


@contextlib.asynccontextmanager
async def open_async_pool(name: str, url: str, size: int) -> AsyncIterator[Any]:
    from psycopg_pool import AsyncConnectionPool

    if name == "lg-pg":
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver as cls
    elif name == "ours-pg":
        cls = _ours("AsyncPostgresSaver")
    else:
        raise ValueError(f"{name} takes no pool")
    async with AsyncConnectionPool(
        url, min_size=size, max_size=size, kwargs=pool_kwargs(name), open=False
    ) as pool:
        await pool.wait()
        saver = cls(pool, **_options(name))
        await async_setup(saver)
        yield saver
