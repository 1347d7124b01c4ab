"""Prometheus metrics, one registry per app (no process-wide globals)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
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
        self.writer_depth = Gauge("bot_store_writer_queue", "Units waiting for commit", registry=r)
        self.outbox_depth = Gauge("bot_outbox_queue", "Messages waiting to be sent", registry=r)
        self.outbox_age = Gauge(
            "bot_outbox_oldest_seconds", "Age of the oldest message waiting to be sent", registry=r
        )
        self.active_turns = Gauge(
            "bot_active_contacts", "Contacts with a turn under way", registry=r
        )

    def bind_gauges(
        self,
        writer: Callable[[], float],
        outbox: Callable[[], float],
        outbox_age: Callable[[], float],
        turns: Callable[[], float],
    ) -> None:
        self.writer_depth.set_function(writer)
        self.outbox_depth.set_function(outbox)
        self.outbox_age.set_function(outbox_age)
        self.active_turns.set_function(turns)

    def render(self) -> bytes:
        return generate_latest(self.registry)
