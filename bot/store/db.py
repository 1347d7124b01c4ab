"""Engines, durability settings, migrations, and the two ways in: `read` and `write`.

Writes go through one group-commit writer (see `writer.py`); reads use their
own pooled connections, which SQLite's WAL mode lets run beside the writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.store.writer import Writer

T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(engine: AsyncEngine, *, immediate: bool) -> None:
    """WAL with synchronous=FULL: an acknowledged commit survives a process kill
    and a power cut. The writer opens transactions with BEGIN IMMEDIATE so that a
    read-then-write unit never fails on a lock upgrade against another process."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str, *, writer: bool = False) -> AsyncEngine:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, pool_size=1 if writer else 4, max_overflow=0)
        _sqlite_pragmas(engine, immediate=writer)
        return engine
    return create_async_engine(url, pool_size=2 if writer else 8, pool_pre_ping=True)


def _upgrade(conn: Connection) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    if conn.dialect.name == "postgresql":
        # Several workers start at once; one migrates, the others wait for it.
        conn.execute(text("SELECT pg_advisory_xact_lock(7301240001)"))
    command.upgrade(cfg, "head")


class Database:
    """The store: a writer for group-committed units and a pool for reads."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
        self._write_engine = make_engine(url, writer=True)
        self._read_engine = make_engine(url)
        self.writer = Writer(self._write_engine)

    async def migrate(self) -> None:
        async with self._write_engine.connect() as conn:
            await conn.run_sync(_upgrade)
            await conn.commit()

    async def start(self) -> None:
        await self.migrate()
        await self.writer.start()

    async def stop(self) -> None:
        await self.writer.stop()
        await asyncio.gather(self._write_engine.dispose(), self._read_engine.dispose())

    async def write(self, unit: Callable[[Connection], T]) -> T:
        return await self.writer.submit(unit)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        async with self._read_engine.connect() as conn:
            return await conn.run_sync(fn)

    async def ping(self) -> bool:
        try:
            await self.read(lambda c: c.execute(text("SELECT 1")).scalar())
        except Exception:
            return False
        return True
