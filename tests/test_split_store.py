"""The store's side of running turns in a process of their own, on a real SQLite file.

A turn worker's transactions keep SQLite's write lock only briefly (the web
workers wait for it to acknowledge deliveries): a batch longer than its hold
budget is committed in parts, and every unit is still run exactly once. Turn
workers split the contacts between them without gaps or overlaps.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Connection, text

from bot.runtime.inbox_watch import InboxWatch, in_share
from bot.store.db import Database


async def test_a_long_batch_is_committed_in_parts_and_every_unit_runs_once(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", hold=0.01, inline=True)
    await db.start()
    try:
        await db.write(lambda c: c.execute(text("CREATE TABLE t (n INTEGER UNIQUE)")))

        def unit(n: int):
            def run(conn: Connection) -> int:
                time.sleep(0.002)  # a unit that takes a while
                conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
                return n

            return run

        results = await asyncio.gather(*(db.write(unit(n)) for n in range(60)))
        assert results == list(range(60))
        rows = await db.read(lambda c: [r[0] for r in c.execute(text("SELECT n FROM t"))])
        assert sorted(rows) == list(range(60))
        # 60 units of 2 ms with a 10 ms budget: several commits, not one.
        assert db.writer.batches >= 6
        assert db.writer.units == 61  # and the CREATE TABLE before them
    finally:
        await db.stop()


async def test_the_inline_writer_waits_for_a_lock_held_by_another_process(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    other, turn = Database(url), Database(url, inline=True)
    await other.start()
    await turn.start()
    try:
        await other.write(lambda c: c.execute(text("CREATE TABLE t (n INTEGER)")))
        holding = asyncio.Event()

        def hold_lock(conn: Connection) -> None:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            holding_loop.call_soon_threadsafe(holding.set)
            time.sleep(0.3)  # the other writer keeps the lock for 300 ms

        holding_loop = asyncio.get_running_loop()
        first = asyncio.create_task(other.write(hold_lock))
        await holding.wait()
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while not first.done():
                ticks += 1
                await asyncio.sleep(0.01)

        tick_task = asyncio.create_task(ticker())
        await turn.write(lambda c: c.execute(text("INSERT INTO t VALUES (2)")))
        assert first.done()  # it got the lock only once the other let go
        await tick_task
        assert ticks >= 10  # and the event loop went on meanwhile
        rows = await turn.read(lambda c: [r[0] for r in c.execute(text("SELECT n FROM t"))])
        assert rows == [1, 2]
    finally:
        await turn.stop()
        await other.stop()


@given(
    st.lists(st.text("0123456789abcdef", min_size=8, max_size=64), max_size=50), st.integers(1, 8)
)
def test_turn_workers_share_the_contacts_without_gaps_or_overlaps(
    contacts: list[str], count: int
) -> None:
    for ci in contacts:
        assert sum(in_share(ci, i, count) for i in range(count)) == 1


async def test_the_watch_finds_what_another_process_stored(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    web, turn = Database(url), Database(url, inline=True)
    await web.start()
    await turn.start()
    seen: list[str] = []
    watch = InboxWatch(turn, seen.extend, share=(1, 2))
    await watch.start()
    try:
        rows = [
            {"event_key": f"k{n}", "kind": "message", "contact_index": f"{n:08x}" + "0" * 56,
             "meta_ts": n, "payload": b"x", "state": "pending", "attempts": 0,
             "received_at": 0.0}
            for n in range(10)
        ]  # fmt: skip
        from bot.store import inbox as inbox_store

        await web.write(inbox_store.accept, rows)
        for _ in range(100):
            if len(seen) >= 5:
                break
            await asyncio.sleep(0.01)
        assert seen == [f"{n:08x}" + "0" * 56 for n in range(1, 10, 2)]  # its share, oldest first
    finally:
        await watch.stop()
        await turn.stop()
        await web.stop()
