"""Retention: forget messages and delivery records once their time is up.

`purge` is what `python -m bot purge` runs and `purge_forever` is the server's
timer around it. Decisions, so an auditor can follow them:

- Work goes in batches of at most `BATCH` rows, each its own write unit, so a
  large backlog never holds the shared writer (and every live turn) for long.
- Each batch that removed something appends one `retention_purge` audit entry
  with that batch's counts, in the batch's own transaction: the audit rule is
  that an entry commits with what it records, and a crash between batches
  leaves every committed deletion audited. Summing a run's entries gives totals.
- A batch that removed nothing writes no entry, so an idle hourly timer does
  not fill the audit log with empty records; the timer's log line shows it ran.
- Counts only, never ids or content: what went is gone, and its ids would say
  nothing to anyone but hint at who wrote when.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from bot import audit
from bot.config import Settings
from bot.store import Conn
from bot.store import retention as store
from bot.store.db import Database
from bot.store.writer import WriterClosed

BATCH = 5_000
KEYS = ("messages_deleted", "inbox_deleted", "inbox_payloads_cleared")

log = logging.getLogger(__name__)


def _batch(
    conn: Conn, retention_days: dict[str, int], inbox_keep_days: int, now: float, limit: int
) -> dict[str, int]:
    """One write unit: up to `limit` rows in all, plus its audit entry."""
    left = limit
    messages = store.delete_expired_messages(conn, retention_days, now, left)
    left -= messages
    # Delete before clearing, so a row is never counted twice.
    deleted = store.delete_old_inbox(conn, inbox_keep_days, now, left)
    left -= deleted
    cleared = store.clear_failed_payloads(conn, now, left)
    counts = dict(zip(KEYS, (messages, deleted, cleared), strict=True))
    if any(counts.values()):
        event = audit.Event(actor=audit.SYSTEM, event="retention_purge", detail=counts)
        audit.append(conn, [event])
    return counts


async def purge(
    db: Database,
    retention_days: dict[str, int],
    inbox_keep_days: int,
    now: float | None = None,
    *,
    batch_size: int = BATCH,
    stop: asyncio.Event | None = None,
) -> dict[str, int]:
    """Remove everything past its retention period; returns totals per kind.

    One `now` serves every batch, so the cutoffs do not drift during a long run.
    `stop` (shutdown) ends the run between batches; the rest waits for the next.
    """
    if not retention_days:
        raise ValueError("retention_days is empty: no retention period is configured")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    at = time.time() if now is None else now
    totals = dict.fromkeys(KEYS, 0)
    while stop is None or not stop.is_set():
        counts = await db.write(_batch, retention_days, inbox_keep_days, at, batch_size)
        for key, n in counts.items():
            totals[key] += n
        if sum(counts.values()) < batch_size:
            break  # every query came up short of its budget: nothing is left
    return totals


async def purge_forever(
    db: Database,
    settings: Settings,
    stop: asyncio.Event,
    *,
    interval: float | None = None,
    clock: Callable[[], float] = time.time,
) -> None:
    """The server's timer: purge at start, then every `BOT_PURGE_INTERVAL` seconds.

    A failing run (the store away, or anything else) is logged and retried at the next
    interval; the timer itself only ends when `stop` is set (or the task is cancelled).
    Interval 0 is off; `interval` overrides the setting (tests use fractions of a second).
    """
    interval = settings.BOT_PURGE_INTERVAL if interval is None else interval
    if interval <= 0:
        log.info("retention timer off (BOT_PURGE_INTERVAL=0)")
        return
    while not stop.is_set():
        await _run_once(db, settings, stop, clock, interval)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def _run_once(
    db: Database,
    settings: Settings,
    stop: asyncio.Event,
    clock: Callable[[], float],
    interval: float,
) -> None:
    """One logged run; a store that is away is logged (type and place only), not raised."""
    started = time.monotonic()
    try:
        counts = await purge(
            db, settings.retention_days, settings.BOT_INBOX_KEEP_DAYS, now=clock(), stop=stop
        )
    except WriterClosed:
        return  # shutting down
    except Exception:  # broad: whatever failed, retention must run again next interval
        log.exception("retention purge failed; trying again in %gs", interval)
        return
    log.info(
        "retention purge: messages_deleted=%d inbox_deleted=%d inbox_payloads_cleared=%d "
        "seconds=%.2f",
        counts["messages_deleted"],
        counts["inbox_deleted"],
        counts["inbox_payloads_cleared"],
        time.monotonic() - started,
    )
