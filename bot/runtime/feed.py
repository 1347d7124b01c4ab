"""Feeding the outbox from the store: what other processes queued, and what a dead one left.

A turn hands its replies to this process's outbox directly. Everything else
reaches it through here: messages queued by `python -m bot send` or by another
worker that died, and, at start, what was queued when the last process ended.
Each worker leases the rows it holds (`lease_owner`, `lease_until`) and renews
the lease while they wait, so two workers never send the same row; a worker
that dies lets its leases lapse and another one takes the rows over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import orjson

from bot.crypto import DataKey, open_sealed
from bot.privacy.person import People, pace_key
from bot.runtime.outbox import Outbox, OutItem
from bot.store import StoreUnavailable
from bot.store import messages as message_store
from bot.store.db import Database

log = logging.getLogger(__name__)


class OutboxFeed:
    def __init__(
        self,
        db: Database,
        people: People,
        outbox: Outbox,
        system_key: DataKey,
        owner: str,
        *,
        lone_worker: bool,
        poll: float = 1.0,
        clock: Callable[[], float],
    ) -> None:
        self._db = db
        self._people = people
        self._outbox = outbox
        self._system_key = system_key
        self._owner = owner
        self._lone = lone_worker
        self._poll = poll
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # A lone worker starting up knows nobody else holds anything: take it all now
        # rather than waiting for the leases of the process before it to lapse.
        await self._claim(takeover=self._lone)
        self._task = asyncio.create_task(self._run(), name="outbox-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self._db.write(message_store.release, self._owner)

    async def _run(self) -> None:
        renew_every = message_store.LEASE / 4
        last_renewal = self._clock()
        while True:
            await asyncio.sleep(self._poll)
            try:
                now = self._clock()
                if now - last_renewal >= renew_every:
                    held = self._outbox.held_ids()
                    if held:
                        await self._db.write(message_store.renew, self._owner, held, now)
                    last_renewal = now
                if await self._db.read(message_store.claimable, now):
                    await self._claim(takeover=False)
            except StoreUnavailable as exc:  # the store is away: try again next round
                log.error("outbox feed could not reach the store (%s)", type(exc).__name__)
            except Exception:  # broad: a bug must not end the feed (nothing would be sent)
                log.exception("outbox feed round failed; trying again next round")

    async def _claim(self, *, takeover: bool) -> None:
        rows = await self._db.write(
            message_store.claim, self._owner, self._clock(), takeover=takeover
        )
        opened = [await self._open(row) for row in rows]
        items = [item for item in opened if item is not None]
        if items:
            log.info("outbox took over %d queued messages", len(items))
            self._outbox.enqueue(items)

    async def _open(self, row: message_store.QueuedRow) -> OutItem | None:
        """The queued message, opened; None when its person's key is shredded (it is
        erased with them)."""
        if row.contact_id is None:
            dk, farewell = self._system_key, True
        else:
            found = await self._people.data_key(row.data_key_id) if row.data_key_id else None
            if found is None:
                return None
            dk, farewell = found, False
        body: dict[str, Any] = orjson.loads(open_sealed(dk, row.body, f"messages/body/{row.id}"))
        template = body.get("template", {}).get("name") if body.get("type") == "template" else None
        return OutItem(
            message_id=row.id,
            recipient=pace_key(row.contact_id) if row.contact_id else row.id,
            body=body,
            attempts=row.attempts,
            farewell=farewell,
            actor=self._people.pseudonym(row.contact_id) if row.contact_id else "system",
            category=row.category,
            template=template,
        )
