"""Turns: each contact's inbox events, one at a time, in Meta's timestamp order.

After the webhook commits a delivery it calls `notify` with the contacts that
have new events. Each such contact gets one worker task that takes their
oldest pending event, runs a turn and commits its effects (contact, stored
message, replies to send, inbox row done) in one transaction, then moves to
the next. Different contacts run in parallel. After a restart or a crash,
`start` finds every contact with pending events and resumes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from bot.crypto import DataKey, Index, Keyring
from bot.observers import NULL, TurnObserver
from bot.policy.limits import Limits, LimitsUnavailable
from bot.privacy.consent import QuietRevocation
from bot.privacy.person import indexes_of
from bot.runtime.conversation import ConversationTurn
from bot.runtime.inbox import open_event
from bot.runtime.outbox import UNDELIVERABLE, Outbox, OutItem
from bot.store import StoreUnavailable
from bot.store import contacts as contact_store
from bot.store import inbox as inbox_store
from bot.store import messages as message_store
from bot.store import policy as policy_store
from bot.store.db import Database
from bot.whatsapp.errors import safe_title
from bot.whatsapp.events import InboundMessage, PreferenceUpdate, StatusUpdate
from bot.whatsapp.messages import read_receipt

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
BATCH = 16  # pending events read at once for one contact
STATUS_WAIT_ROUNDS = 30  # a status waits up to ~60 s for its send to be recorded
TURN_LOCK_TTL = 30.0  # a worker that dies mid-turn frees its contact after this
ORPHAN_AFTER = 30.0  # pending this long with several workers: its worker is gone
LOCAL = "local"
# Failed statuses that speak of the number's standing, not of one message: 131048
# spam rate limit, 131049 marketing held back for ecosystem health, 368 blocked.
QUALITY_SIGNALS = {131048, 131049, 368}


class TurnRunner:
    def __init__(
        self,
        db: Database,
        keyring: Keyring,
        outbox: Outbox,
        conversation: ConversationTurn,
        *,
        inbox_key: DataKey,
        stops: QuietRevocation,
        mark_as_read: bool = True,
        max_active: int = 256,
        clock: Callable[[], float] = time.time,
        observer: TurnObserver = NULL,
        locks: Limits | None = None,
    ) -> None:
        self._db = db
        self._keyring = keyring
        self._outbox = outbox
        self._conversation = conversation
        self._stops = stops
        self._mark_as_read = mark_as_read
        self._slots = asyncio.Semaphore(max_active)
        self._clock = clock
        self._observer = observer
        self._locks = locks  # shared by every worker; None when this process is alone
        self._active: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._inbox_key = inbox_key  # opens what the webhook sealed
        self._stopping = False

    @property
    def active(self) -> int:
        return len(self._active)

    async def start(self, resume: bool = True) -> None:
        """`resume`: take up every pending event now (a turn worker's InboxWatch does
        that itself, for its own share of the contacts)."""
        if resume:
            self.notify(await self._db.read(inbox_store.pending_contacts))
        self._sweeper = asyncio.create_task(self._sweep_waiting(), name="turns-sweeper")

    async def stop(self, grace: float = 10.0) -> None:
        """Finish the turns under way; what is still pending resumes at next start."""
        self._stopping = True
        if self._sweeper:
            self._sweeper.cancel()
        tasks = list(self._active.values())
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    def notify(self, contact_indexes: Iterable[str]) -> None:
        for ci in contact_indexes:
            if self._stopping:
                return
            if ci in self._active:
                self._again.add(ci)
            else:
                task = asyncio.create_task(self._worker(ci))
                self._active[ci] = task

    async def _worker(self, ci: str) -> None:
        try:
            while not self._stopping:
                token = await self._lock(ci)
                if token is None:
                    return  # nothing left to do: another worker took it all
                try:
                    await self._drain(ci, token)
                finally:
                    await self._unlock(ci, token)
                if ci not in self._again:
                    return
        finally:
            self._active.pop(ci, None)
            self._again.discard(ci)

    async def _drain(self, ci: str, token: str) -> None:
        more = True
        while more and not self._stopping:
            self._again.discard(ci)
            try:
                events = await self._db.read(inbox_store.next_pending, ci, BATCH)
            except StoreUnavailable as exc:  # the store is unreachable: wait, then try again
                log.error("could not read pending events (%s)", type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            failed = False
            for event in events:
                if self._stopping or not await self._still_mine(ci, token):
                    return
                async with self._slots:
                    if not await self._run_one(event):
                        failed = True  # retry it before anything after it
                        break
            # Read again only if something arrived meanwhile, the batch was full or
            # a turn must be retried: the common case (one message) is one read.
            more = failed or ci in self._again or len(events) == BATCH

    # Per-contact locks, when several workers share the work -------------------------

    async def _lock(self, ci: str) -> str | None:
        """Hold the contact's lock, so every worker's turns for one person run one at
        a time. Alone, this process's task table is the lock (`LOCAL`). None when
        another worker finished the person's events while this one waited."""
        if self._locks is None:
            return LOCAL
        delay = 0.02
        while not self._stopping:
            try:
                token = await self._locks.acquire(f"turn:{ci}", TURN_LOCK_TTL)
            except LimitsUnavailable:
                log.error("shared locks unreachable; turns wait")
                token = None
            if token is not None:
                return token
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
            if not await self._db.read(inbox_store.next_pending, ci, 1):
                return None
        return None

    async def _still_mine(self, ci: str, token: str) -> bool:
        if self._locks is None:
            return True
        try:
            return await self._locks.extend(f"turn:{ci}", token, TURN_LOCK_TTL)
        except LimitsUnavailable:
            return False

    async def _unlock(self, ci: str, token: str) -> None:
        if self._locks is not None:
            with contextlib.suppress(LimitsUnavailable):
                await self._locks.release(f"turn:{ci}", token)

    async def _run_one(self, pending: inbox_store.PendingEvent) -> bool:
        """Process one event; False when it failed and stays pending for a retry."""
        try:
            await self._process(pending)
            return True
        except Exception:  # broad: a turn that failed for any reason is logged and retried
            log.exception("turn failed: inbox_id=%d attempt=%d", pending.id, pending.attempts + 1)
            self._observer.turn_ended("error")
            dropped = await self._db.write(
                inbox_store.give_up, pending.id, self._clock(), MAX_ATTEMPTS
            )
            if dropped:
                log.error("inbox event %d set aside after %d attempts", pending.id, MAX_ATTEMPTS)
                return True
            await asyncio.sleep(min(2.0**pending.attempts * 0.1, 5.0))
            return False

    async def _process(self, pending: inbox_store.PendingEvent) -> None:
        now = self._clock()
        event = (
            open_event(self._inbox_key, pending.event_key, pending.payload)
            if pending.payload
            else None
        )
        if isinstance(event, InboundMessage):
            await self._message_turn(pending, event, now)
        elif isinstance(event, StatusUpdate):
            await self._status(pending, event, now)
        elif isinstance(event, PreferenceUpdate) and event.value == "stop":
            await self._stops.for_party(event.party, "whatsapp_preferences", now, finish=pending.id)
        else:  # a "resume" or anything else: nothing to do but note it done
            await self._db.write(inbox_store.finish, pending.id, now)

    async def _status(
        self, pending: inbox_store.PendingEvent, status: StatusUpdate, now: float
    ) -> None:
        wamid_index = self._keyring.blind_index(Index.WAMID, status.id)
        recipient = indexes_of(self._keyring, status.recipient)
        error = status.errors[0] if status.errors else None

        def unit(conn: Any) -> None:
            matched = message_store.apply_status(
                conn,
                wamid_index,
                status.status,
                now,
                error.code if error else None,
                safe_title(error.title) if error else None,
            )
            if matched and error is not None and error.code == UNDELIVERABLE:
                policy_store.mark_unreachable(conn, now, wamid_index=wamid_index)
            if not matched and not contact_store.known(conn, *recipient):
                inbox_store.drop(conn, pending.id)  # erased meanwhile: keep nothing of theirs
                return
            waited_enough = pending.attempts >= STATUS_WAIT_ROUNDS
            state = inbox_store.DONE if matched or waited_enough else inbox_store.WAITING
            inbox_store.finish(conn, pending.id, now, state)

        await self._db.write(unit)
        if error is not None and error.code in QUALITY_SIGNALS:
            await self._outbox.quality_signal(error.code)

    async def _message_turn(
        self, pending: inbox_store.PendingEvent, msg: InboundMessage, now: float
    ) -> None:
        handled = await self._conversation.handle(pending, msg, now)
        items = handled.items
        self._observer.turn_ended("replied" if items else "quiet")
        if self._mark_as_read and msg.is_user_content:
            receipt = read_receipt(msg.id)
            items.append(OutItem("", recipient=handled.pace_key, body=receipt, durable=False))
        self._outbox.enqueue(items)

    async def _sweep_waiting(self) -> None:
        while True:
            await asyncio.sleep(2.0)
            try:
                again = await self._db.write(inbox_store.requeue_waiting, STATUS_WAIT_ROUNDS)
                if self._locks is not None:  # events a dead worker took in
                    before = self._clock() - ORPHAN_AFTER
                    again += await self._db.read(inbox_store.stale_contacts, before)
            except Exception:  # broad: the sweeper must outlive a bug as well as the store
                log.exception("could not requeue waiting status events")
                continue
            self.notify(again)
