"""Observers: NULL and Metrics hear everything the services report, by the same names."""

from __future__ import annotations

import inspect

import pytest

from bot import observers
from bot.metrics import Metrics
from bot.observers import (
    NULL,
    Alarm,
    AlertObserver,
    GateObserver,
    LimitObserver,
    OutboxObserver,
    TurnObserver,
    WebhookObserver,
)
from bot.runtime.alerts import Alerts

COUNTED = [
    TurnObserver,
    OutboxObserver,
    GateObserver,
    LimitObserver,
    AlertObserver,
    WebhookObserver,
]


def members(protocol: type) -> list[str]:
    return [
        name
        for name, value in vars(protocol).items()
        if inspect.isfunction(value) and not name.startswith("_")
    ]


def same_signature(protocol: type, implementation: object) -> None:
    for name in members(protocol):
        wanted = inspect.signature(getattr(protocol, name))
        got = inspect.signature(getattr(type(implementation), name))
        assert got == wanted, f"{type(implementation).__name__}.{name}{got} != {wanted}"


def test_every_protocol_is_listed() -> None:
    declared = {
        value
        for value in vars(observers).values()
        if isinstance(value, type)
        and value.__module__ == observers.__name__
        and getattr(value, "_is_protocol", False)
    }
    assert declared == {*COUNTED, Alarm}


@pytest.mark.parametrize("protocol", [*COUNTED, Alarm], ids=lambda p: p.__name__)
def test_null_hears_everything(protocol: type) -> None:
    assert members(protocol)
    assert isinstance(NULL, protocol)
    same_signature(protocol, NULL)


@pytest.mark.parametrize("protocol", COUNTED, ids=lambda p: p.__name__)
def test_metrics_hear_every_report(protocol: type) -> None:
    metrics = Metrics()
    assert isinstance(metrics, protocol)
    same_signature(protocol, metrics)


def test_alerts_are_the_alarm() -> None:
    alerts = Alerts(None)
    assert isinstance(alerts, Alarm)
    same_signature(Alarm, alerts)


def test_metrics_count_under_the_names_the_scrapes_read() -> None:
    metrics = Metrics()
    metrics.turn_ended("replied")
    metrics.send_result("service", "sent")
    metrics.graph_error("131056")
    metrics.send_refused("window_closed", "marketing")
    metrics.limit_hit("inbound")
    metrics.alert_raised("send_failure_rate")
    metrics.delivery_answered("stored")
    metrics.events_seen("skipped", 3)
    text = metrics.render().decode()
    for sample in [
        'bot_turns_total{outcome="replied"} 1.0',
        'bot_sends_total{category="service",outcome="sent"} 1.0',
        'bot_graph_errors_total{code="131056"} 1.0',
        'bot_policy_refusals_total{category="marketing",reason="window_closed"} 1.0',
        'bot_limit_hits_total{limit="inbound"} 1.0',
        'bot_alerts_total{event="send_failure_rate"} 1.0',
        'bot_webhook_deliveries_total{outcome="stored"} 1.0',
        'bot_webhook_events_total{kind="skipped"} 3.0',
    ]:
        assert sample in text, sample


def test_alerts_count_through_their_observer() -> None:
    metrics = Metrics()
    Alerts(None, metrics).raise_("access_token_refused", {"code": 190})
    assert 'bot_alerts_total{event="access_token_refused"} 1.0' in metrics.render().decode()
