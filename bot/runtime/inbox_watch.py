"""How a turn worker learns of deliveries that a web worker stored.

With `BOT_TURN_WORKERS`, the web workers only verify, store and acknowledge;
turns run in processes of their own, which find new work by reading the
inbox's pending rows past the last one they saw (one indexed read, repeated at
once while there is work and every few milliseconds when idle). A full rescan
now and then catches rows that became visible out of id order (PostgreSQL
sequences do not commit in order) and events put back for a retry.

With several turn workers each takes the contacts of its own share (a hash of
the contact's blind index), so two workers rarely contend for one person's
lock; the shared lock still guards the order if they do, and a worker that is
gone has its contacts taken over by the orphan sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable

from bot.store import StoreUnavailable
from bot.store import inbox as inbox_store
from bot.store.db import Database

log = logging.getLogger(__name__)

BATCH = 1000
IDLE_POLL = 0.005  # seconds between reads when nothing was new
RESCAN = 5.0  # seconds between full rescans of the pending rows


def in_share(contact_index: str, index: int, count: int) -> bool:
    """Whether a contact belongs to worker `index` of `count` (blind indexes are
    uniformly distributed hex, so their first bytes spread contacts evenly)."""
    return count <= 1 or int(contact_index[:8], 16) % count == index


class InboxWatch:
    def __init__(
        self,
        db: Database,
        notify: Callable[[Iterable[str]], None],
        *,
        share: tuple[int, int] = (0, 1),
        idle_poll: float = IDLE_POLL,
    ) -> None:
        self._db = db
        self._notify = notify
        self._index, self._count = share
        self._idle_poll = idle_poll
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="inbox-watch")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None

    def _mine(self, contacts: Iterable[str | None]) -> list[str]:
        share = self._index, self._count
        return [ci for ci in dict.fromkeys(contacts) if ci and in_share(ci, *share)]

    async def _run(self) -> None:
        mark, rescanned = 0, time.monotonic()
        while not self._stop.is_set():
            rows: list[tuple[int, str | None]] = []
            try:
                if time.monotonic() - rescanned > RESCAN:
                    rescanned = time.monotonic()
                    self._notify(self._mine(await self._db.read(inbox_store.pending_contacts)))
                rows = await self._db.read(inbox_store.pending_after, mark, BATCH)
            except StoreUnavailable as exc:  # the store is away: try again shortly
                log.error("could not read the inbox (%s)", type(exc).__name__)
                await self._pause(1.0)
                continue
            except Exception:  # broad: a bug must not end the watch (no turn would run)
                log.exception("inbox watch round failed; trying again shortly")
                await self._pause(1.0)
                continue
            if rows:
                mark = rows[-1][0]
                self._notify(self._mine(ci for _, ci in rows))
            if len(rows) < BATCH:
                await self._pause(self._idle_poll)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
