"""Outbound limits like Meta's, quality pauses, the failure-rate alert and /metrics."""

from __future__ import annotations

import logging
import time

import pytest

from bot.runtime.outbox import Timing
from bot.simulator import webhooks
from tests.conftest import PHONE_NUMBER_ID, Bot, eventually
from tests.flowkit import UK

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
FAST = Timing(
    backoff_base=0.02, backoff_cap=0.1, throttle_pause=0.6, recipient_pause=0.6, quality_pause=1.0
)


async def audit_rows(bot: Bot, event: str) -> list[str]:
    rows = await bot.sql("SELECT outcome FROM audit WHERE event=:e ORDER BY id", e=event)
    return [r[0] for r in rows]


async def metrics(bot: Bot) -> str:
    return (await bot.http.get(bot.url + "/metrics")).text


@SQLITE
@pytest.mark.parametrize(
    "bot",
    [{"BOT_RECIPIENT_BURST": 2, "BOT_RECIPIENT_PER_MINUTE": 60, "BOT_MARK_AS_READ": False}],
    indirect=True,
)
async def test_one_person_gets_a_burst_then_the_average_pace(bot: Bot) -> None:
    for n in range(4):
        await bot.say(UK, f"hello {n}")
    sent = await bot.fake.wait_for_sent(4, timeout=15)
    times = [m.at for m in sent[:4]]
    # Two at once, then one a second: the fourth leaves about 2 s after the first.
    assert times[3] - times[0] >= 1.7
    assert 'bot_limit_hits_total{limit="recipient"}' in await metrics(bot)


@SQLITE
@pytest.mark.parametrize(
    "bot", [{"BOT_SEND_PER_SECOND": 2, "BOT_MARK_AS_READ": False}], indirect=True
)
async def test_the_number_never_sends_faster_than_its_throughput(bot: Bot) -> None:
    people = [f"+4477009003{i:02d}" for i in range(6)]
    for person in people:
        await bot.say(person, "hello")
    sent = await bot.fake.wait_for_sent(6, timeout=15)
    times = sorted(m.at for m in sent[:6])
    assert times[-1] - times[0] >= (6 - 2) / 2 - 0.25  # a burst of 2, then 2 a second
    assert 'bot_limit_hits_total{limit="throughput"}' in await metrics(bot)


@SQLITE
@pytest.mark.parametrize("bot", [{"BOT_MARK_AS_READ": False}], indirect=True)
async def test_a_quality_signal_pauses_sending_and_alerts(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    bot.services.outbox.timing = FAST
    bot.fake.fail_next(131048)  # spam rate limit on the first reply
    caplog.set_level(logging.ERROR)
    await bot.say(UK, "hello")

    async def refused_once() -> list:
        return [r for r in bot.fake.requests if r.status >= 400]

    (refused,) = await eventually(refused_once)
    await bot.say("+6581234567", "hello")  # written during the pause
    sent = await bot.fake.wait_for_sent(2, timeout=15)
    # Both replies, the refused one and the other person's, waited out the pause.
    assert all(m.at - refused.at >= 0.9 for m in sent[:2])
    assert await audit_rows(bot, "alert_raised") == ["sending_paused"]
    assert any("sending_paused" in r.getMessage() for r in caplog.records)


@SQLITE
@pytest.mark.parametrize("bot", [{"BOT_MARK_AS_READ": False}], indirect=True)
async def test_131049_in_a_status_pauses_marketing_only(bot: Bot) -> None:
    bot.services.outbox.timing = Timing(quality_pause=60.0)
    await bot.say(UK, "hello")
    (reply,) = await bot.replies(1)
    held = {"code": 131049, "title": "Message not delivered to maintain healthy ecosystem"}
    failed = webhooks.status(PHONE_NUMBER_ID, reply.wamid, UK, "failed", errors=[held])
    assert (await bot.post(failed)).status_code == 200
    assert await eventually(lambda: audit_rows(bot, "alert_raised")) == ["marketing_paused"]
    pacing = bot.services.outbox.pacing
    assert await pacing.wait("someone", "marketing", time.time()) > 0
    assert await pacing.wait("someone", "service", time.time()) == 0


@SQLITE
@pytest.mark.parametrize(
    "bot",
    [{"BOT_ALERT_MIN_SENDS": 3, "BOT_ALERT_FAILURE_RATE": 0.5, "BOT_MARK_AS_READ": False}],
    indirect=True,
)
async def test_many_failed_sends_raise_one_alert(bot: Bot) -> None:
    bot.fake.fail_next(131026, times=3)  # undeliverable: permanent
    for i in range(3):
        await bot.say(f"+4477009004{i:02d}", "hello")
    await bot.idle()
    assert await eventually(lambda: audit_rows(bot, "alert_raised")) == ["send_failure_rate"]
    text = await metrics(bot)
    assert 'bot_graph_errors_total{code="131026"} 3.0' in text
    assert 'bot_sends_total{category="service",outcome="failed"} 3.0' in text
    assert 'bot_alerts_total{event="send_failure_rate"} 1.0' in text
    assert "bot_outbox_oldest_seconds" in text
