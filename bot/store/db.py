"""Engines, durability settings, migrations, and the two ways in: `read` and `write`.

Every statement lives in a store module as a function of a connection (see
`bot.store`); `read(fn, *args)` runs one on a pooled read connection and
`write(fn, *args)` runs one in the next group commit of the one writer (see
`writer.py`). SQLite's WAL mode lets reads run beside the writer. The
statements every delivery and turn makes (`Query`) skip SQLAlchemy's execution
layer: compiled once per dialect, run straight through the driver; a read made
of them alone (`hot`) runs on SQLite without a pooled connection at all.

When the database is away, locked or full, the driver's error is translated
here, at the door, into `StoreUnavailable` (see `unavailable`), whichever path
failed: a hot read, a pooled read, a group commit, a connection.

PostgreSQL is reached through SQLAlchemy's async engine (asyncpg). SQLite is
reached through its standard driver from threads: the writer has a thread of
its own, reads a small pool, and each read or batch is one hop to its thread.
(`DATABASE_URL` still says `sqlite+aiosqlite://`; aiosqlite's one thread hop
per statement cost ~300 context switches per delivery on the hot path.)
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Dialect, Engine, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi as AsyncpgErrors
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql import Executable

from bot.errors import BotError
from bot.store.errors import StoreUnavailable
from bot.store.writer import (
    AUDIT_KEY,
    LOCK_RETRY,
    AsyncChannel,
    Channel,
    LoopChannel,
    ThreadChannel,
    Writer,
)

T = TypeVar("T")
P = ParamSpec("P")
MIGRATIONS = Path(__file__).parent / "migrations"
READ_THREADS = 4
BUSY_TIMEOUT_MS = 10_000
MMAP_BYTES = 256 * 1024 * 1024  # pages read from the mapping: see `_sqlite_pragmas`
NO_WAIT = "no_wait_for_lock"  # connection info flag: raise WriteLockBusy instead of waiting
# SQLite's primary result codes for a file that cannot be used just now: busy, locked,
# out of memory, read-only, an I/O error, damaged, full, cannot be opened, a WAL
# protocol failure, not a database. The rest (SQLITE_ERROR: a mistake in a statement,
# SQLITE_CONSTRAINT: a key clash …) are the caller's.
SQLITE_AWAY = frozenset({5, 6, 7, 8, 10, 11, 13, 14, 15, 26})
# PostgreSQL's SQLSTATE classes for the same: 08 connection exception, 53 insufficient
# resources (disk full, out of memory, too many connections), 57 operator intervention
# (shutdown, starting up, statement timeout), 58 system error (I/O) …
PG_AWAY_CLASSES = frozenset({"08", "53", "57", "58"})
# … and states: serialization failure, deadlock, lock not available, and a read-only
# transaction (a standby answering after a failover).
PG_AWAY_STATES = frozenset({"40001", "40P01", "55P03", "25006"})


class WriteLockBusy(BotError):
    """Another process holds SQLite's write lock (inline mode waits for it asynchronously)."""


def unavailable(exc: BaseException) -> str | None:
    """Why `exc` means the database cannot be used just now, as the driver error's type
    and code (never its text, which can quote a statement's parameters); None when it
    means something else: a unique key clash, a mistake in a statement, a bug."""
    if isinstance(exc, WriteLockBusy):  # the inline writer waited its whole timeout
        return "WriteLockBusy"
    if isinstance(exc, sa_exc.DBAPIError):  # SQLAlchemy's wrapper: judge the driver's error
        why = _driver_unavailable(exc.orig) if exc.orig is not None else None
        if why is None and exc.connection_invalidated:
            why = f"{type(exc.orig or exc).__name__} (connection lost)"
        return why
    if isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return type(exc).__name__  # no pooled connection came free in time, or it broke
    return _driver_unavailable(exc)


def _driver_unavailable(exc: BaseException) -> str | None:
    name = type(exc).__name__
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None:  # raised without SQLite's code: its class says it
            return name if isinstance(exc, sqlite3.OperationalError) else None
        return f"{name} ({exc.sqlite_errorname})" if code & 0xFF in SQLITE_AWAY else None
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str) and state:  # PostgreSQL's own answer
        away = state[:2] in PG_AWAY_CLASSES or state in PG_AWAY_STATES
        return f"{name} (SQLSTATE {state})" if away else None
    if isinstance(exc, AsyncpgErrors.InterfaceError | AsyncpgErrors.OperationalError):
        return name  # asyncpg lost its connection (closed, or closed under a statement)
    if isinstance(exc, OSError):  # refused, reset, unreachable, timed out (ConnectionError …)
        return name
    return None


def _gone(exc: Exception, operation: str) -> StoreUnavailable | None:
    """The `StoreUnavailable` to raise from `exc`, or None if `exc` is not unavailability."""
    why = unavailable(exc)
    return None if why is None else StoreUnavailable(f"store {operation} failed: {why}")


class Bare:
    """SQLite's own driver connection, handed to a `hot` read instead of SQLAlchemy's."""

    __slots__ = ("dialect", "raw")

    def __init__(self, raw: sqlite3.Connection, dialect: Dialect) -> None:
        self.raw = raw
        self.dialect = dialect


def hot(fn: Callable[P, T]) -> Callable[P, T]:
    """Mark a read that runs `Query.fetch` only: on SQLite `Database.read` then calls
    it on the calling thread with a `Bare` connection (an indexed WAL read takes no
    lock and a few microseconds, less than a pooled connection or a thread hop)."""
    fn.hot = True  # type: ignore[attr-defined]
    return fn


class Query:
    """A hot statement, compiled once per dialect and run through the driver itself.

    A pooled read costs ~150 µs of SQLAlchemy (pool checkout, BEGIN, execution
    context, rollback) around a statement SQLite runs in ~7 µs, and a statement in
    a unit ~50 µs; a turn makes three reads and half a dozen writes. The statement
    is still built with SQLAlchemy, so it is written once for both databases (or
    once for each, given as {dialect name: statement}); only its execution is bare.
    `fetch` reads (in a `hot` read, its own snapshot); `execute` writes inside a
    unit, in the writer's transaction."""

    def __init__(self, statement: Executable | dict[str, Executable]) -> None:
        self._statement = statement
        self._compiled: dict[str, tuple[str, tuple[str, ...], dict[str, Any]]] = {}

    def bind(self, dialect: Dialect, params: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
        """The statement's text for the driver and its parameters in order (the
        statement's own literals, such as a state it filters on, included)."""
        found = self._compiled.get(dialect.name)
        if found is None:
            statement = self._statement
            if isinstance(statement, dict):
                statement = statement[dialect.name]
            compiled = statement.compile(dialect=dialect)
            found = (compiled.string, tuple(compiled.positiontup or ()), dict(compiled.params))
            self._compiled[dialect.name] = found
        sql, order, literals = found
        return sql, tuple(params[n] if n in params else literals[n] for n in order)

    def execute(self, conn: Connection, params: dict[str, Any]) -> int:
        """Run in a unit; how many rows it changed."""
        return self._run(conn, [params])

    def execute_many(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Run in a unit, once for each row."""
        if rows:
            self._run(conn, rows)

    def fetch(self, conn: Connection | Bare, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The rows of a read."""
        sql, values = self.bind(conn.dialect, params)
        if isinstance(conn, Bare):
            return conn.raw.execute(sql, values).fetchall()
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql, values)
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def _run(self, conn: Connection, rows: list[dict[str, Any]]) -> int:
        sql, _ = self.bind(conn.dialect, rows[0])
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            if len(rows) == 1:
                cursor.execute(sql, self.bind(conn.dialect, rows[0])[1])
            else:
                cursor.executemany(sql, [self.bind(conn.dialect, row)[1] for row in rows])
            return int(cursor.rowcount)
        finally:
            cursor.close()


def _sqlite_pragmas(engine: Engine, *, immediate: bool) -> None:
    """WAL with synchronous=FULL: an acknowledged commit survives a process kill
    and a power cut. Memory-mapped reads: with web and turn workers writing to one
    file, each connection's page cache is dropped whenever another process commits,
    and re-reading pages through the mapping instead of read() calls took turns
    under load from ~430 to ~540 a second. The writer opens transactions with
    BEGIN IMMEDIATE so that a read-then-write unit never fails on a lock upgrade
    against another process. `secure_delete`: what a statement deletes is overwritten
    with zeros, so an erased person's sealed fields do not linger in free pages of the
    file (SQLite builds differ in their default; it is set on every connection)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute(f"PRAGMA busy_timeout={0 if immediate else BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        cur.execute("PRAGMA secure_delete=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if immediate:
            _begin_immediate(conn.connection.dbapi_connection, not conn.info.get(NO_WAIT))
        else:
            conn.exec_driver_sql("BEGIN")


def _begin_immediate(dbapi_conn: Any, wait: bool = True) -> None:
    """Take the write lock, retrying every LOCK_RETRY seconds while another process
    holds it. SQLite's own busy handler sleeps 1, 2, 5 … up to 100 ms between tries,
    so with several processes writing (web and turn workers) a waiter often slept
    long after the lock was free: acknowledgement p99 went past a second."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            dbapi_conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            if not wait:
                raise WriteLockBusy from None
            time.sleep(LOCK_RETRY)


def sqlite_engine(url: str, *, writer: bool) -> Engine:
    path = url.split(":///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        f"sqlite:///{path}",
        pool_size=1 if writer else READ_THREADS,
        max_overflow=0,
        connect_args={"check_same_thread": False},
    )
    _sqlite_pragmas(engine, immediate=writer)
    return engine


def make_engine(url: str, *, writer: bool = False) -> AsyncEngine:
    return create_async_engine(url, pool_size=2 if writer else 8, pool_pre_ping=True)


def _upgrade(
    conn: Connection, migrations: Path = MIGRATIONS, attributes: dict[str, Any] | None = None
) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations))
    cfg.attributes.update(attributes or {})
    cfg.attributes["connection"] = conn
    if conn.dialect.name == "postgresql":
        # Several workers start at once; one migrates, the others wait for it.
        conn.execute(text("SELECT pg_advisory_xact_lock(7301240001)"))
    command.upgrade(cfg, "head")


def _hand_key(engine: Engine, key: bytes) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(_dbapi_conn: Any, record: Any) -> None:
        record.info[AUDIT_KEY] = key


class Database:
    """The store: a writer for group-committed units and a pool for reads."""

    def __init__(
        self,
        url: str,
        hold: float | None = None,
        inline: bool = False,
        audit_key: bytes | None = None,
        migrations: Path = MIGRATIONS,
    ) -> None:
        """`hold`: how long one transaction may keep the write lock (see `Writer`).
        `inline`: SQLite is used from the event loop's own thread (see `LoopChannel`).
        `audit_key`: what audit entries are chained under (`bot.audit`), handed to each
        write connection; without it, appending an audit entry fails.
        `migrations`: the schema's Alembic scripts (the key store has its own)."""
        self.url = url
        self._migrations = migrations
        # What the migrations are told (`keys_moved`: see `bot.store.keystore`).
        self.migration_facts: dict[str, Any] = {}
        self.dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
        self._sync_write: Engine | None = None
        self._sync_read: Engine | None = None
        self._async_write: AsyncEngine | None = None
        self._async_read: AsyncEngine | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._bare = threading.local()  # SQLite: each calling thread's own driver connection
        self._bare_all: list[sqlite3.Connection] = []
        channel: Channel
        if self.dialect == "sqlite":
            self._sync_write = sqlite_engine(url, writer=True)
            self._sync_read = sqlite_engine(url, writer=False)
            if inline:
                channel = LoopChannel(
                    self._sync_write, WriteLockBusy, BUSY_TIMEOUT_MS / 1000, NO_WAIT
                )
            else:
                self._readers = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="store-read")
                channel = ThreadChannel(self._sync_write)
        else:
            self._async_write = make_engine(url, writer=True)
            self._async_read = make_engine(url)
            channel = AsyncChannel(self._async_write)
        if audit_key is not None:
            engine = self._sync_write
            if engine is None:
                assert self._async_write is not None
                engine = self._async_write.sync_engine
            _hand_key(engine, audit_key)
        self.writer = Writer(channel, hold=hold)

    async def migrate(self) -> None:
        try:
            if self._sync_write is not None:
                engine = self._sync_write

                def upgrade() -> None:
                    with engine.connect() as conn:
                        _upgrade(conn, self._migrations, self.migration_facts)
                        conn.commit()

                await asyncio.to_thread(upgrade)
                return
            assert self._async_write is not None
            async with self._async_write.connect() as conn:
                await conn.run_sync(_upgrade, self._migrations, self.migration_facts)
                await conn.commit()
        except Exception as exc:
            if (gone := _gone(exc, "migration")) is None:
                raise
            raise gone from exc

    async def start(self) -> None:
        await self.migrate()
        try:
            await self.writer.start()
        except Exception as exc:
            if (gone := _gone(exc, "start")) is None:
                raise
            raise gone from exc

    async def stop(self) -> None:
        await self.writer.stop()
        if self._readers is not None:
            self._readers.shutdown(wait=True)
        for conn in self._bare_all:
            conn.close()
        self._bare_all.clear()
        for engine in (self._sync_write, self._sync_read):
            if engine is not None:
                engine.dispose()
        for async_engine in (self._async_write, self._async_read):
            if async_engine is not None:
                await async_engine.dispose()

    async def write(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kw: P.kwargs
    ) -> T:
        """Run `fn(conn, *args)` in the next group commit; its result once committed.
        Raises `StoreUnavailable` when the database is away, locked or full."""
        try:
            if not args and not kw:
                return await self.writer.submit(fn)  # type: ignore[arg-type]
            return await self.writer.submit(lambda conn: fn(conn, *args, **kw))
        except Exception as exc:  # the writer hands on whatever failed: judged here, once
            if (gone := _gone(exc, "write")) is None:
                raise
            raise gone from exc

    async def read(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kw: P.kwargs
    ) -> T:
        """Run `fn(conn, *args)` on a read connection: its own snapshot, no writes.
        Raises `StoreUnavailable` when the database is away or locked."""
        try:
            if self._sync_read is not None:
                engine = self._sync_read
                if getattr(fn, "hot", False):
                    bare = Bare(self._bare_connection(), engine.dialect)
                    return fn(bare, *args, **kw)  # type: ignore[arg-type]

                def run() -> T:
                    with engine.connect() as conn:
                        return fn(conn, *args, **kw)

                if self._readers is None:  # inline: a WAL read takes no lock and never waits
                    return run()
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._readers, run)
            assert self._async_read is not None
            async with self._async_read.connect() as conn:
                return await conn.run_sync(fn, *args, **kw)
        except Exception as exc:
            if (gone := _gone(exc, "read")) is None:
                raise
            raise gone from exc

    def _bare_connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._bare, "conn", None)
        if conn is None:
            assert self._sync_read is not None
            path = self._sync_read.url.database or ":memory:"
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
            conn.execute("PRAGMA secure_delete=ON")
            self._bare.conn = conn
            self._bare_all.append(conn)
        return conn

    async def ping(self) -> bool:
        try:
            await self.read(_select_one)
        except StoreUnavailable:
            return False
        return True


def _select_one(conn: Connection) -> Any:
    return conn.execute(text("SELECT 1")).scalar()
