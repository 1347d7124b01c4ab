"""Inbound volume spikes raise an alert: an error log line, an `alert_raised` audit entry
and a metric, once per window and kind."""

from __future__ import annotations

import orjson
import pytest

from bot.simulator import webhooks
from tests.conftest import PHONE_NUMBER_ID, Bot, eventually


async def alerts(bot: Bot) -> list[tuple[str, dict]]:
    rows = await bot.sql("SELECT outcome, detail FROM audit WHERE event='alert_raised'")
    return [(r[0], orjson.loads(r[1])) for r in rows]


@pytest.mark.parametrize(
    ("db_url", "bot"),
    [("sqlite", {"BOT_ALERT_INBOUND_MESSAGES": 5, "BOT_MARK_AS_READ": False})],
    indirect=True,
)
async def test_more_messages_in_a_window_than_the_threshold_alert_once(bot: Bot) -> None:
    for n in range(5):
        await bot.say(f"+4477009005{n:02d}", "hello")
    await bot.idle()
    assert await alerts(bot) == []
    for n in range(5, 12):
        await bot.say(f"+4477009005{n:02d}", "hello")
    await bot.idle()
    found = await eventually(lambda: alerts(bot))
    assert found == [
        ("inbound_spike", {"kind": "messages", "count": 6, "threshold": 5, "window_s": 300})
    ]
    text = (await bot.http.get(bot.url + "/metrics")).text
    assert 'bot_alerts_total{event="inbound_spike"} 1.0' in text
    assert 'bot_webhook_deliveries_total{outcome="stored"} 12.0' in text  # still counted
    bot.clock.advance(301)  # a new window: another spike alerts again
    for n in range(6):
        await bot.say(f"+4477009006{n:02d}", "hello")
    await bot.idle()
    assert len(await eventually(lambda: _two(bot))) == 2


async def _two(bot: Bot) -> list:
    found = await alerts(bot)
    return found if len(found) == 2 else []


@pytest.mark.parametrize(
    ("db_url", "bot"),
    [("sqlite", {"BOT_ALERT_INBOUND_DELIVERIES": 2, "BOT_MARK_AS_READ": False})],
    indirect=True,
)
async def test_deliveries_have_their_own_threshold(bot: Bot) -> None:
    for n in range(3):
        body, _ = webhooks.message(PHONE_NUMBER_ID, f"+4477009007{n:02d}", webhooks.text("hi"))
        assert (await bot.post(body)).status_code == 200
    await bot.idle()
    found = await eventually(lambda: alerts(bot))
    assert [(e, d["kind"], d["count"]) for e, d in found] == [("inbound_spike", "deliveries", 3)]


@pytest.mark.parametrize(
    ("db_url", "bot"),
    [("sqlite", {"BOT_ALERT_BAD_SIGNATURES": 3, "BOT_WEBHOOK_FAILURE_LIMIT": 2})],
    indirect=True,
)
async def test_a_burst_of_failed_signatures_alerts_once(bot: Bot) -> None:
    body, _ = webhooks.message(PHONE_NUMBER_ID, "+447700900999", webhooks.text("hi"))
    forged = {"X-Hub-Signature-256": "sha256=" + "0" * 64}
    for _ in range(3):
        answer = await bot.http.post(bot.url + "/webhook", json=body, headers=forged)
        assert answer.status_code in {401, 429}
    assert await alerts(bot) == []
    for _ in range(3):  # the 4th failure crosses the threshold, 429s count too
        await bot.http.post(bot.url + "/webhook", json=body, headers=forged)
    found = await eventually(lambda: alerts(bot))
    assert found == [
        ("signature_failures",
         {"kind": "bad_signatures", "count": 4, "threshold": 3, "window_s": 300})
    ]  # fmt: skip
    text = (await bot.http.get(bot.url + "/metrics")).text
    assert 'bot_alerts_total{event="signature_failures"} 1.0' in text
