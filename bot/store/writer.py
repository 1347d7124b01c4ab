"""Group commit: one writer task turns many small units of work into few commits.

Measured on a 2-core machine, one ORM session and commit per request tops out
at a few hundred writes per second with multi-second tails, because every
commit is an fsync and pooled SQLite connections fight over the lock. Here a
single task takes every unit that is waiting, runs them in one transaction and
commits once; each caller awaits its own unit's result, so nothing is
acknowledged before it is durable.

A unit is a plain function of a synchronous SQLAlchemy `Connection` (it runs
inside `AsyncConnection.run_sync`), so the same code serves aiosqlite and
asyncpg. If a batch fails, it is rolled back and its units are retried one by
one, so one bad unit fails alone.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.errors import BotError

T = TypeVar("T")
Unit = Callable[[Connection], Any]
LOCK_RETRY = 0.0005  # seconds between tries for SQLite's write lock held by another process

log = logging.getLogger(__name__)


class WriterClosed(BotError, RuntimeError):
    """The writer is shutting down and takes no more work."""


class Channel(Protocol):
    """How the writer reaches its one connection: asyncpg through SQLAlchemy's async
    engine, SQLite's driver in a thread of its own (one hop per batch), or SQLite's
    driver on the event loop's own thread (a turn worker, see `LoopChannel`)."""

    async def open(self) -> None: ...
    async def run(self, units: list[Unit], budget: float | None = None) -> list[Any]: ...
    async def reset(self) -> None: ...
    async def close(self) -> None: ...


class AsyncChannel:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None

    async def open(self) -> None:
        self._conn = await self._engine.connect()

    async def run(self, units: list[Unit], budget: float | None = None) -> list[Any]:
        assert self._conn is not None
        return await self._conn.run_sync(_run_in_transaction, units, budget)

    async def reset(self) -> None:
        try:
            assert self._conn is not None
            await self._conn.rollback()
        except Exception:  # broad: whatever failed, the connection is not to be trusted
            if self._conn is not None:
                await self._conn.invalidate()
                await self._conn.close()
            self._conn = await self._engine.connect()

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


class ThreadChannel:
    """A synchronous connection used from one dedicated thread.

    aiosqlite hops between threads for every statement (~300 context switches
    per delivery were measured); here a whole batch is one hop.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._conn: Connection | None = None

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def open(self) -> None:
        self._conn = await self._call(self._engine.connect)

    async def run(self, units: list[Unit], budget: float | None = None) -> list[Any]:
        assert self._conn is not None
        return await self._call(_run_in_transaction, self._conn, units, budget)

    async def reset(self) -> None:
        def fresh() -> None:
            if self._conn is not None:
                self._conn.invalidate()
                self._conn.close()
            self._conn = self._engine.connect()

        await self._call(fresh)

    async def close(self) -> None:
        if self._conn is not None:
            await self._call(self._conn.close)
            self._conn = None
        self._thread.shutdown(wait=True)


Item = tuple[Unit, asyncio.Future[Any]]


class LoopChannel:
    """SQLite used from the event loop's own thread, for a turn worker.

    There the writer thread's transactions kept the write lock (which the web
    workers wait for) for tens of milliseconds, waiting for the GIL behind a
    busy event loop. Inline, a transaction holds the lock only for its own
    work; waiting for the lock is an asynchronous retry, so the loop goes on.
    """

    def __init__(self, engine: Engine, busy: type[Exception], timeout: float, flag: str) -> None:
        self._engine = engine
        self._busy = busy  # what BEGIN raises on this connection when the lock is taken
        self._timeout = timeout
        self._flag = flag  # connection info key that makes BEGIN raise instead of wait
        self._conn: Connection | None = None

    def _connect(self) -> Connection:
        conn = self._engine.connect()
        conn.info[self._flag] = True
        return conn

    async def open(self) -> None:
        self._conn = self._connect()

    async def run(self, units: list[Unit], budget: float | None = None) -> list[Any]:
        assert self._conn is not None
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                return _run_in_transaction(self._conn, units, budget)
            except self._busy:
                if time.monotonic() > deadline:
                    raise
                self._conn.rollback()  # nothing ran: the lock was not taken
                await asyncio.sleep(LOCK_RETRY)

    async def reset(self) -> None:
        if self._conn is not None:
            self._conn.invalidate()
            self._conn.close()
        self._conn = self._connect()

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class Writer:
    """`hold`: at most this many seconds of units per transaction, then commit and
    pause `pause` seconds before the next, so that other processes waiting for
    SQLite's one write lock (web workers acknowledging deliveries) get it soon.
    None: a batch runs whole, for a process whose writes are the latency-critical ones."""

    def __init__(
        self,
        channel: Channel,
        max_batch: int = 512,
        hold: float | None = None,
        pause: float = 0.001,
    ) -> None:
        self._channel = channel
        self._max_batch = max_batch
        self._hold = hold
        self._pause = pause
        self._queue: asyncio.Queue[Item | None] = asyncio.Queue()
        self._carry: deque[Item] = deque()  # taken from the queue, not yet run
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0
        self.units = 0

    async def start(self) -> None:
        await self._channel.open()
        self._task = asyncio.create_task(self._run(), name="store-writer")

    async def submit(self, unit: Callable[[Connection], T]) -> T:
        """Run `unit` in the next group commit and return its result once committed."""
        if self._closing:
            raise WriterClosed("the store is shutting down")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((unit, fut))
        # Shielded: a caller that goes away (client disconnect) must not cancel a
        # unit other callers share a transaction with; the work still commits.
        return await asyncio.shield(fut)

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    async def stop(self) -> None:
        """Drain: every unit already submitted is committed before this returns."""
        self._closing = True
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
            self._task = None
        await self._channel.close()

    async def _run(self) -> None:
        stopping = False
        while self._carry or not stopping:
            if not self._carry:
                item = await self._queue.get()
                if item is None:
                    stopping = True
                    continue
                self._carry.append(item)
            while len(self._carry) < self._max_batch and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    stopping = True
                    continue
                self._carry.append(nxt)
            batch = [self._carry.popleft() for _ in range(min(self._max_batch, len(self._carry)))]
            done = await self._commit(batch)
            if done < len(batch):  # the hold budget ran out: the rest go next, after a pause
                self._carry.extendleft(reversed(batch[done:]))
                await asyncio.sleep(self._pause)

    async def _commit(self, batch: list[Item]) -> int:
        """Run a batch in one transaction; returns how many of its units were run (all,
        unless the hold budget cut it short)."""
        units = [u for u, _ in batch]
        try:
            results = await self._channel.run(units, self._hold)
        except Exception:  # broad: any unit may fail any way; each is retried alone below
            log.warning("group commit of %d units failed; retrying them one by one", len(units))
            await self._channel.reset()
            for unit, fut in batch:
                try:
                    (result,) = await self._channel.run([unit])
                except Exception as exc:  # broad: handed on as it is; Database.write judges it
                    await self._channel.reset()
                    if not fut.done():
                        fut.set_exception(exc)
                else:
                    if not fut.done():
                        fut.set_result(result)
            return len(batch)
        self.batches += 1
        self.units += len(results)
        for (_, fut), result in zip(batch, results, strict=False):
            if not fut.done():
                fut.set_result(result)
        return len(results)


DEFERRED = "deferred_writes"
AUDIT_KEY = "audit_key"  # connection info: the key the audit chain is appended under


def _run_in_transaction(
    conn: Connection, units: list[Unit], budget: float | None = None
) -> list[Any]:
    """Run the units (those that fit in `budget` seconds, at least one), then
    whatever they deferred to the end of the transaction.

    A unit may register work under `conn.info[DEFERRED]` (name → flush function)
    to be done once per transaction instead of once per unit: the audit log
    appends a whole batch's entries with one read of the chain head and one
    insert. It is still the same transaction, so it commits or not with them.
    """
    conn.info[DEFERRED] = {}
    deadline = time.perf_counter() + budget if budget is not None else math.inf
    try:
        with conn.begin():
            results = []
            for unit in units:
                results.append(unit(conn))
                if time.perf_counter() > deadline:
                    break
            for flush in conn.info[DEFERRED].values():
                flush(conn)
            return results
    finally:
        conn.info.pop(DEFERRED, None)
