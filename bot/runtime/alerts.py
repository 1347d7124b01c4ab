"""Alerts: something a human should look at now.

An alert is an error-level log line (what an operator's log shipping pages
on), an `alert_raised` audit entry (so the record shows when the bot knew)
and a metric. `FailureWatch` raises one when too many sends fail within a
window — the early sign of a blocked number, an expired token or a broken
template. `InboundWatch` raises one when inbound volume spikes, and one when failed
webhook signatures burst (someone forging deliveries, or a wrong app secret).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from bot import audit
from bot.observers import NULL, Alarm, AlertObserver, WebhookObserver
from bot.store.db import Database

log = logging.getLogger(__name__)


class Alerts:
    """The bot's `Alarm` (see `bot.observers`): log, audit and count."""

    def __init__(self, db: Database | None, observer: AlertObserver = NULL) -> None:
        self._db = db
        self._observer = observer
        self._writes: set[asyncio.Task[Any]] = set()

    def raise_(self, event: str, fields: dict[str, Any]) -> None:
        """Log, count and audit an alert. `fields` hold codes and counts, never personal data."""
        self._observer.alert_raised(event)
        log.error("ALERT %s %s", event, " ".join(f"{k}={v}" for k, v in sorted(fields.items())))
        if self._db is None:
            return
        entry = audit.Event(audit.SYSTEM, "alert_raised", outcome=event, detail=fields)
        db = self._db
        task = asyncio.get_running_loop().create_task(db.write(audit.append, [entry]))
        self._writes.add(task)
        task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[Any]) -> None:
        self._writes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("could not audit an alert (%s)", type(task.exception()).__name__)

    async def drain(self) -> None:
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)


class FailureWatch:
    """The share of failed sends over the last `window` seconds, and one alert per window."""

    def __init__(
        self,
        alerts: Alarm,
        *,
        threshold: float,
        window: float,
        min_sends: int,
        clock: Callable[[], float],
    ) -> None:
        self._alerts = alerts
        self._threshold = threshold
        self._window = window
        self._min = min_sends
        self._clock = clock
        self._results: deque[tuple[float, bool]] = deque()
        self._failures = 0
        self._quiet_until = float("-inf")

    def record(self, ok: bool) -> None:
        now = self._clock()
        self._results.append((now, ok))
        self._failures += not ok
        while self._results and self._results[0][0] < now - self._window:
            _, was_ok = self._results.popleft()
            self._failures -= not was_ok
        total = len(self._results)
        if total < self._min or now < self._quiet_until:
            return
        rate = self._failures / total
        if rate >= self._threshold:
            self._quiet_until = now + self._window
            self._alerts.raise_(
                "send_failure_rate",
                {"failed": self._failures, "sends": total, "window_s": int(self._window)},
            )


class InboundWatch:
    """Alerts when inbound volume spikes: more stored deliveries, or more messages, in one
    window than their thresholds (`BOT_ALERT_INBOUND_DELIVERIES`, `…_MESSAGES` per
    `BOT_ALERT_WINDOW` seconds; 0 turns one off), once per window and kind.

    It is the webhook route's observer: every report is passed on to `inner` (the
    metrics) and counted here, so the route itself knows nothing of alerts. Windows are
    fixed and counted per process (the hot path pays an addition); a spike is an
    operator's question (a campaign, a loop, an attack), never a reason to refuse.
    """

    def __init__(
        self,
        inner: WebhookObserver,
        alerts: Alarm,
        *,
        deliveries: int,
        messages: int,
        window: float,
        clock: Callable[[], float],
        bad_signatures: int = 0,
    ) -> None:
        self._inner = inner
        self._alerts = alerts
        self._limits = {
            "deliveries": deliveries, "messages": messages, "bad_signatures": bad_signatures
        }  # fmt: skip
        self._window = window
        self._clock = clock
        self._start = float("-inf")
        self._counts = dict.fromkeys(self._limits, 0)
        self._raised: set[str] = set()

    def delivery_answered(self, outcome: str) -> None:
        self._inner.delivery_answered(outcome)
        if outcome == "stored":
            self._count("deliveries", 1)
        elif outcome in {"bad_signature", "throttled"}:
            self._count("bad_signatures", 1)

    def events_seen(self, kind: str, count: int = 1) -> None:
        self._inner.events_seen(kind, count)
        if kind == "InboundMessage":
            self._count("messages", count)

    def _count(self, kind: str, n: int) -> None:
        limit = self._limits[kind]
        if not limit:
            return
        now = self._clock()
        if now >= self._start + self._window:
            self._start, self._raised = now, set()
            self._counts = dict.fromkeys(self._limits, 0)
        self._counts[kind] += n
        if self._counts[kind] > limit and kind not in self._raised:
            self._raised.add(kind)
            self._alerts.raise_(
                "signature_failures" if kind == "bad_signatures" else "inbound_spike",
                {"kind": kind, "count": self._counts[kind], "threshold": limit,
                 "window_s": int(self._window)},
            )  # fmt: skip
