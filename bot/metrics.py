"""Prometheus metrics, one registry per app (no process-wide globals).

When `serve` runs several processes it gives them one `PROMETHEUS_MULTIPROC_DIR`
(prometheus-client's multiprocess mode): every process writes its samples
there, and `/metrics` on any web worker adds up the whole bot's, the turn
workers' sends included. Gauges are then set once a second from their
callbacks instead of at scrape time, since the scrape runs in another process.
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
