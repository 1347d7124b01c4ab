"""The outbox sender: the one way out to Meta.

Rows are queued in the turn's transaction and handed here after commit (or
claimed from the store by `feed.py`). Before each send the gate is asked again
(`bot.policy.sending`) and the pacing waits its turn (`pacing.py`). Messages to
one person leave in order (a retry holds back the ones behind it); different
people are served in parallel. Failures are handled the way Meta's error table
asks (see `bot.whatsapp.errors`): transient errors back off exponentially with
jitter, throttling pauses the whole number or just that recipient, quality
signals pause every worker and alert, permanent errors mark the message failed
with Meta's reason.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot import audit
from bot.crypto import Index, Keyring
from bot.observers import NULL, Alarm, OutboxObserver
from bot.policy.sending import SendGate
from bot.privacy.consent import QuietRevocation
from bot.runtime.alerts import FailureWatch
from bot.runtime.pacing import PAUSE_ALL, PAUSE_MARKETING, Pacing
from bot.store import Conn, StoreUnavailable
from bot.store import messages as store
from bot.store import policy as policy_store
from bot.store.db import Database
from bot.whatsapp.client import GraphClient
from bot.whatsapp.errors import Action, GraphError
from bot.whatsapp.messages import UPLOAD_KEY

log = logging.getLogger(__name__)
MARKETING_STOPPED = 131050  # the person stopped marketing messages in WhatsApp
UNDELIVERABLE = 131026  # the number is not on WhatsApp, or cannot receive: sends pause
MARKETING_HELD = {131049}  # a marketing message held back for ecosystem health
STORE_RETRY = 1.0  # seconds before a send (or its bookkeeping) that the store failed is retried


@dataclass
class Timing:
    """How long to wait after each kind of failure (tests shorten these)."""

    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    throttle_pause: float = 5.0
    recipient_pause: float = 6.0  # Meta paces one person at about one message every 6 s
    quality_pause: float = 300.0


@dataclass(slots=True)
class OutItem:
    """One queued message, its Graph body already opened (kept only in memory)."""

    message_id: str
    recipient: str  # pacing key: blind index of the person, never their number
    body: dict[str, Any]
    attempts: int = 0
    durable: bool = True  # read receipts are best effort and have no row
    farewell: bool = False  # the message after an erasure: its row goes once sent
    actor: str = audit.SYSTEM  # the person's pseudonym, for the audit trail
    category: str = "service"
    template: str | None = None  # a template's name, checked against the registry
    not_before: float = field(default=0.0)
    since: float = 0.0  # when this process took it on (for the queue-age metric)


def backoff(attempts: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter (AWS architecture blog's variant)."""
    return random.uniform(0, min(cap, base * 2**attempts))


class Outbox:
    def __init__(
        self,
        db: Database,
        client: GraphClient,
        pacing: Pacing,
        *,
        stops: QuietRevocation,
        keyring: Keyring,
        concurrency: int = 32,
        max_attempts: int = 8,
        clock: Callable[[], float] = time.time,
        alarm: Alarm = NULL,
        observer: OutboxObserver = NULL,
        failures: FailureWatch | None = None,
        gate: SendGate | None = None,
    ) -> None:
        self.timing = Timing()
        self._db = db
        self._client = client
        self.pacing = pacing
        self._stops = stops  # Meta's 131050: the person stopped marketing in WhatsApp
        self._kr = keyring  # Meta's message ids are stored as blind indexes only
        self._concurrency = concurrency
        self._max_attempts = max_attempts
        self._clock = clock
        self._alarm = alarm
        self._observer = observer
        self._failures = failures
        self._gate = gate
        self._lines: dict[str, deque[OutItem]] = {}
        self._known: set[str] = set()  # message ids of durable items held in memory
        self._settling: dict[str, asyncio.Task[None]] = {}  # sent, not yet recorded as sent
        self._ready: asyncio.Queue[str] = asyncio.Queue()
        self._held: set[str] = set()  # recipients waiting on a timer
        self._paused_until = 0.0
        self._recipient_until: dict[str, float] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._stopping = False

    # Feeding ----------------------------------------------------------------

    def enqueue(self, items: list[OutItem]) -> None:
        now = self._clock()
        for item in items:
            item.since = item.since or now
            if item.durable:
                if item.message_id in self._known:
                    continue  # claimed again from the store while still held here
                self._known.add(item.message_id)
            line = self._lines.get(item.recipient)
            if line is None:
                line = self._lines[item.recipient] = deque()
            line.append(item)
            if len(line) == 1 and item.recipient not in self._held:
                self._ready.put_nowait(item.recipient)

    @property
    def depth(self) -> int:
        return sum(len(line) for line in self._lines.values())

    @property
    def settling(self) -> int:
        """Sends Meta accepted whose record is still being written (see `_record_sent`)."""
        return len(self._settling)

    def oldest_age(self) -> float:
        """Seconds the longest-waiting message has been held here (0 when empty)."""
        heads = [line[0].since for line in self._lines.values() if line]
        return max(0.0, self._clock() - min(heads)) if heads else 0.0

    def held_ids(self) -> list[str]:
        """Rows this worker holds in memory (their leases must be kept alive)."""
        return list(self._known)

    # Lifecycle --------------------------------------------------------------

    async def start(self, recovered: list[OutItem]) -> None:
        self.enqueue(recovered)
        self._workers = [
            asyncio.create_task(self._work(), name=f"outbox-{i}") for i in range(self._concurrency)
        ]

    async def stop(self, grace: float = 5.0) -> None:
        """Let sends already under way finish; queued rows stay queued for next start."""
        self._stopping = True
        if self.in_flight:
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace)
        for timer in self._timers:
            timer.cancel()
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self._settling:  # what Meta accepted is recorded before the store closes
            _, late = await asyncio.wait(list(self._settling.values()), timeout=grace)
            for task in late:
                task.cancel()

    # Sending ----------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            recipient = await self._ready.get()
            if self._stopping:
                return
            line = self._lines.get(recipient)
            if not line:
                continue
            wait = (
                max(
                    self._paused_until,
                    self._recipient_until.get(recipient, 0.0),
                    line[0].not_before,
                )
                - self._clock()
            )
            item = line[0]
            if wait <= 0 and item.durable:
                wait = await self.pacing.wait(recipient, item.category, self._clock())
            if wait > 0:
                self._hold(recipient, wait)
                continue
            self.in_flight += 1
            try:
                done = await self._attempt(item)
            except StoreUnavailable as exc:  # the store is away: keep the message, try again soon
                log.error("send postponed: the store failed (%s)", type(exc).__name__)
                item.not_before = self._clock() + STORE_RETRY
                done = False
            except Exception:  # broad: a bug must not end this send worker; keep the message
                log.exception("send postponed: the attempt failed")
                item.not_before = self._clock() + STORE_RETRY
                done = False
            finally:
                self.in_flight -= 1
                if not self.in_flight:
                    self._idle.set()
            if done:
                sent = line.popleft().message_id
                if sent not in self._settling:
                    self._known.discard(sent)
            if not line:
                del self._lines[recipient]
            elif done:
                self._ready.put_nowait(recipient)
            else:
                self._hold(recipient, max(0.0, item.not_before - self._clock()))

    def _hold(self, recipient: str, delay: float) -> None:
        self._held.add(recipient)

        def release() -> None:
            self._timers.discard(handle)
            self._held.discard(recipient)
            if self._lines.get(recipient):
                self._ready.put_nowait(recipient)

        handle = asyncio.get_running_loop().call_later(delay, release)
        self._timers.add(handle)

    async def _attempt(self, item: OutItem) -> bool:
        """One try. True when the item is finished (sent, refused or failed for good)."""
        label = item.category if item.durable else "read_receipt"
        if item.durable and self._gate is not None:
            now = self._clock()
            verdict = await self._gate.check(
                item.message_id, item.category, item.template, item.farewell, now
            )
            if verdict.drop:
                return True
            if verdict.reason is not None:
                refuse = self._gate.refuse(
                    item.message_id, verdict.reason, item.category, item.actor, now
                )
                await self._db.write(refuse)
                self._observer.send_result(label, "refused")
                return True
        try:
            sent = await self._client.send(await self._with_upload(item.body))
        except GraphError as err:
            return await self._failed(item, err, label)
        if item.durable:
            mid, wamid, at = item.message_id, self._wamid(sent.wamid), self._clock()
            event = audit.Event(
                item.actor, "message_sent",
                detail={"type": item.body.get("type"), "category": item.category},
            )  # fmt: skip

            def settle(conn: Conn) -> None:
                if item.farewell:
                    store.forget(conn, mid)
                else:
                    store.mark_sent(conn, mid, wamid, at)
                audit.append(conn, [event])

            self._record_sent(mid, settle)
            if self._failures:
                self._failures.record(True)
        self._observer.send_result(label, "sent")
        return True

    def _record_sent(self, message_id: str, unit: Callable[[Conn], None]) -> None:
        """Commit what Meta accepted without holding a send slot meanwhile: under load a
        group commit can take a while, and the slot would sit idle for it. The row stays
        leased to this worker (and is not claimed again) until it is recorded."""

        async def record() -> None:
            try:
                while True:
                    try:
                        await self._db.write(unit)
                        return
                    except StoreUnavailable as exc:  # never send it again: record it again
                        log.error("recording a send failed (%s); retrying", type(exc).__name__)
                        await asyncio.sleep(STORE_RETRY)
            finally:
                self._settling.pop(message_id, None)
                self._known.discard(message_id)

        self._settling[message_id] = asyncio.create_task(record())

    async def _with_upload(self, body: dict[str, Any]) -> dict[str, Any]:
        """Upload a queued file (an export) and put its media id in the message."""
        upload = body.get(UPLOAD_KEY)
        if not upload:
            return body
        media_id = await self._client.upload_media(
            base64.b64decode(upload["data"]), upload["mime_type"], upload["filename"]
        )
        sendable = {k: v for k, v in body.items() if k != UPLOAD_KEY}
        sendable["document"] = {**sendable["document"], "id": media_id}
        return sendable

    def _wamid(self, wamid: str | None) -> str | None:
        return self._kr.blind_index(Index.WAMID, wamid) if wamid else None

    async def quality_signal(self, code: int | None) -> None:
        """Meta says the number's quality is at risk: pause for every worker and alert.

        131049 (a marketing message held back for ecosystem health) pauses
        marketing only; 131048 (spam rate limit) and 368 (blocked for policy
        violations) pause everything."""
        until = self._clock() + self.timing.quality_pause
        scope = PAUSE_MARKETING if code in MARKETING_HELD else PAUSE_ALL
        if scope == PAUSE_ALL:
            self._paused_until = max(self._paused_until, until)
        await self.pacing.pause(scope, until)
        what = "marketing" if scope == PAUSE_MARKETING else "sending"
        log.error("Meta reported a quality or policy problem (code %s); %s paused", code, what)
        self._alarm.raise_(f"{what}_paused", {"code": code})

    async def _failed(self, item: OutItem, err: GraphError, label: str) -> bool:
        action = err.action
        now = self._clock()
        item.attempts += 1
        self._observer.graph_error(str(err.code or err.http_status or "network"))
        if err.code in MARKETING_HELD:
            await self.quality_signal(err.code)
        if action is Action.FAIL or item.attempts >= self._max_attempts or not item.durable:
            log.warning(
                "send failed for good: code=%s attempts=%d action=%s",
                err.code,
                item.attempts,
                action.value,
            )
            self._observer.send_result(label, "failed")
            if item.durable:
                if self._failures:
                    self._failures.record(False)
                title = err.title or f"gave up after {item.attempts} attempts"
                event = audit.Event(
                    item.actor, "message_failed", outcome=f"code_{err.code or 'none'}",
                    detail={"code": err.code, "attempts": item.attempts},
                )  # fmt: skip

                def failed(conn: Conn) -> None:
                    store.mark_failed(conn, item.message_id, err.code, title, now)
                    if err.code == UNDELIVERABLE:
                        policy_store.mark_unreachable(conn, now, message_id=item.message_id)
                    audit.append(conn, [event])

                await self._db.write(failed)
                if err.code == MARKETING_STOPPED:
                    await self._stops.for_message(item.message_id, self._clock())
            return True
        self._observer.send_result(label, "retry")
        t = self.timing
        delay = backoff(item.attempts, t.backoff_base, t.backoff_cap)
        if action is Action.THROTTLE:
            self._paused_until = max(self._paused_until, now + t.throttle_pause)
            await self.pacing.pause(PAUSE_ALL, now + t.throttle_pause)
            delay = max(delay, t.throttle_pause)
        elif action is Action.THROTTLE_RECIPIENT:
            pause = t.recipient_pause * 2 ** min(item.attempts - 1, 5)
            self._recipient_until[item.recipient] = now + pause
            delay = max(delay, pause)
        elif action is Action.PAUSE:
            await self.quality_signal(err.code)
            delay = max(delay, t.quality_pause)
        elif action is Action.AUTH:
            log.error("the Graph API refuses our access token (code %s)", err.code)
            self._alarm.raise_("access_token_refused", {"code": err.code})
        item.not_before = now + delay
        await self._db.write(store.schedule_retry, item.message_id, item.not_before, err.code, now)
        log.info(
            "send will be retried: code=%s attempt=%d in %.1fs", err.code, item.attempts, delay
        )
        return False
