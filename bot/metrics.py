"""Prometheus metrics, one registry per app (no process-wide globals).

When `serve` runs several processes it gives them one `PROMETHEUS_MULTIPROC_DIR`
(prometheus-client's multiprocess mode): every process writes its samples
there, and `/metrics` on any web worker adds up the whole bot's, the turn
workers' sends included. Gauges are then set once a second from their
callbacks instead of at scrape time, since the scrape runs in another process.

`Metrics` is what hears the services' reports: it implements every observer
of `bot.observers` by counting, under the names and labels below.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.shared = bool(os.environ.get(MULTIPROC_ENV))
        self._gauges: list[tuple[Gauge, Callable[[], float]]] = []
        r = self.registry
        gauge_mode = {"multiprocess_mode": "livesum"} if self.shared else {}
        self.deliveries = Counter(
            "bot_webhook_deliveries", "Webhook POSTs by outcome", ["outcome"], registry=r
        )
        self.events = Counter("bot_webhook_events", "Webhook events by kind", ["kind"], registry=r)
        self.turns = Counter("bot_turns", "Turns by outcome", ["outcome"], registry=r)
        self.sends = Counter(
            "bot_sends",
            "Messages leaving the outbox by category and outcome (sent, retry, failed, refused)",
            ["category", "outcome"],
            registry=r,
        )
        self.refusals = Counter(
            "bot_policy_refusals", "Messages the send gate refused", ["reason", "category"],
            registry=r,
        )  # fmt: skip
        self.limit_hits = Counter(
            "bot_limit_hits", "Times a rate limit or the tier held something back", ["limit"],
            registry=r,
        )  # fmt: skip
        self.graph_errors = Counter(
            "bot_graph_errors", "Graph API errors by Meta's code", ["code"], registry=r
        )
        self.alerts = Counter("bot_alerts", "Alerts raised", ["event"], registry=r)
        self.writer_depth = Gauge(
            "bot_store_writer_queue", "Units waiting for commit", registry=r, **gauge_mode
        )
        self.outbox_depth = Gauge(
            "bot_outbox_queue", "Messages waiting to be sent", registry=r, **gauge_mode
        )
        self.outbox_age = Gauge(
            "bot_outbox_oldest_seconds", "Age of the oldest message waiting to be sent",
            registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        self.active_turns = Gauge(
            "bot_active_contacts", "Contacts with a turn under way", registry=r, **gauge_mode
        )

    # Observers (bot.observers) ----------------------------------------------------------

    def turn_ended(self, outcome: str) -> None:
        self.turns.labels(outcome).inc()

    def send_result(self, category: str, outcome: str) -> None:
        self.sends.labels(category, outcome).inc()

    def graph_error(self, code: str) -> None:
        self.graph_errors.labels(code).inc()

    def send_refused(self, reason: str, category: str) -> None:
        self.refusals.labels(reason, category).inc()

    def limit_hit(self, limit: str) -> None:
        self.limit_hits.labels(limit).inc()

    def alert_raised(self, event: str) -> None:
        self.alerts.labels(event).inc()

    def delivery_answered(self, outcome: str) -> None:
        self.deliveries.labels(outcome).inc()

    def events_seen(self, kind: str, count: int = 1) -> None:
        self.events.labels(kind).inc(count)

    # Gauges -------------------------------------------------------------------------------

    def bind_gauges(
        self,
        writer: Callable[[], float],
        outbox: Callable[[], float],
        outbox_age: Callable[[], float],
        turns: Callable[[], float],
    ) -> None:
        self._gauges = [
            (self.writer_depth, writer),
            (self.outbox_depth, outbox),
            (self.outbox_age, outbox_age),
            (self.active_turns, turns),
        ]
        if not self.shared:
            for gauge, read in self._gauges:
                gauge.set_function(read)

    def refresh(self) -> None:
        """Write the gauges' current values where the other processes can see them."""
        if self.shared:
            for gauge, read in self._gauges:
                gauge.set(read())

    def render(self) -> bytes:
        if not self.shared:
            return generate_latest(self.registry)
        self.refresh()
        everyone = CollectorRegistry()
        MultiProcessCollector(everyone)
        return generate_latest(everyone)
