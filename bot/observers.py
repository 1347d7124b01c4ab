"""What the services report while they work, and who hears it.

Each service that reports something takes one small observer, named for what
it reports, and defaults to `NULL`, which hears everything and does nothing
(a service built alone, in a test or by a command, reports to nobody). The
app factory hands every one of them `bot.metrics.Metrics`, which implements
them all with its Prometheus counters.

| protocol          | reported by                             | implemented by  |
| ----------------- | --------------------------------------- | --------------- |
| `TurnObserver`    | `TurnRunner`                            | `Metrics`, NULL |
| `OutboxObserver`  | `Outbox`                                | `Metrics`, NULL |
| `GateObserver`    | `SendGate`                              | `Metrics`, NULL |
| `LimitObserver`   | `Pacing`, `InboundLimiter`              | `Metrics`, NULL |
| `AlertObserver`   | `Alerts`                                | `Metrics`, NULL |
| `WebhookObserver` | the `/webhook` route                    | `InboundWatch`, `Metrics`, NULL |
| `Alarm`           | `GraphClient`, `Outbox`, `FailureWatch` | `Alerts`, NULL  |

The app gives the `/webhook` route `InboundWatch` (`bot.runtime.alerts`), which counts
for spike alerts and passes every report on to `Metrics`.

`Alarm` is the one collaborator here rather than a counter: what hears an
alarm (`bot.runtime.alerts.Alerts`) logs it at error level, audits it and
counts it (through its own `AlertObserver`). It is still a protocol, not a
callable, for the same reasons as the rest: the reporter only says what
happened and does not care what follows, it is given once when the service is
built, and leaving it out means nobody is told, as with `NULL`.

Observers are called on the hot paths (every turn, every send): they must
return at once and never raise.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class TurnObserver(Protocol):
    def turn_ended(self, outcome: str) -> None:
        """A turn finished: "replied", "quiet" (nothing to send) or "error"."""


@runtime_checkable
class OutboxObserver(Protocol):
    def send_result(self, category: str, outcome: str) -> None:
        """A message left or gave up: "sent", "retry", "failed" or "refused"; read
        receipts come as the category "read_receipt"."""

    def graph_error(self, code: str) -> None:
        """The Graph API answered with an error: Meta's code, the HTTP status, or "network"."""


@runtime_checkable
class GateObserver(Protocol):
    def send_refused(self, reason: str, category: str) -> None:
        """The send gate held a message back (`bot.policy.gate.Reason`)."""


@runtime_checkable
class LimitObserver(Protocol):
    def limit_hit(self, limit: str) -> None:
        """A rate limit held something back: "inbound", "throughput" or "recipient"."""


@runtime_checkable
class AlertObserver(Protocol):
    def alert_raised(self, event: str) -> None:
        """An alert went out (`bot.runtime.alerts`)."""


@runtime_checkable
class WebhookObserver(Protocol):
    def delivery_answered(self, outcome: str) -> None:
        """A POST to /webhook was answered: "stored", "source_refused" (outside the
        allow-list), "bad_signature", "throttled" (429 to a source past its failed-signature
        limit), "bad_payload" or "store_unavailable"."""

    def events_seen(self, kind: str, count: int = 1) -> None:
        """Events of one kind in a delivery (an event class name, "other_number", "skipped")."""


@runtime_checkable
class Alarm(Protocol):
    def raise_(self, event: str, fields: dict[str, Any]) -> None:
        """Something a human should look at now. `fields` hold codes and counts, never
        personal data."""


class NullObserver:
    """Hears everything and does nothing: the default of every service that reports."""

    def turn_ended(self, outcome: str) -> None:
        pass

    def send_result(self, category: str, outcome: str) -> None:
        pass

    def graph_error(self, code: str) -> None:
        pass

    def send_refused(self, reason: str, category: str) -> None:
        pass

    def limit_hit(self, limit: str) -> None:
        pass

    def alert_raised(self, event: str) -> None:
        pass

    def delivery_answered(self, outcome: str) -> None:
        pass

    def events_seen(self, kind: str, count: int = 1) -> None:
        pass

    def raise_(self, event: str, fields: dict[str, Any]) -> None:
        pass


NULL = NullObserver()
