"""A person flooding the bot: every delivery acknowledged, few replies, STOP still works."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.policy.inbound import InboundLimiter
from bot.policy.limits import LocalLimits, RedisLimits
from bot.simulator import webhooks
from tests.conftest import PHONE_NUMBER_ID, Bot
from tests.flowkit import UK, consent, say, tap, text_of

LIMITED = pytest.mark.parametrize(
    "bot", [{"BOT_INBOUND_BURST": 5, "BOT_INBOUND_PER_MINUTE": 20}], indirect=True
)


@LIMITED
async def test_a_flood_is_acknowledged_answered_boundedly_and_stop_still_works(bot: Bot) -> None:
    await say(bot, UK, "JOIN")
    await tap(bot, UK, "optin.yes")
    await bot.idle()
    sent_before = len(bot.fake.sent)

    bodies = [
        webhooks.message(PHONE_NUMBER_ID, UK, webhooks.text(f"spam {i}"))[0] for i in range(80)
    ]
    start = time.monotonic()
    statuses = await asyncio.gather(*(bot.post(b) for b in bodies))
    assert time.monotonic() - start < 5
    assert {r.status_code for r in statuses} == {200}
    await bot.idle(timeout=60)
    elapsed = time.monotonic() - start
    flood_replies = [m.body for m in bot.fake.sent[sent_before:]]
    # At most a burst of answers plus what refilled meanwhile, and a pause note
    # each time the person went over the limit again.
    refilled = int(elapsed * bot.settings.BOT_INBOUND_PER_MINUTE / 60) + 1
    notes = [b for b in flood_replies if "pause" in text_of(b)]
    assert 1 <= len(notes) <= refilled
    assert len(flood_replies) - len(notes) <= bot.settings.BOT_INBOUND_BURST + refilled
    stored = await bot.sql("SELECT count(*) FROM messages WHERE direction='in'")
    assert stored[0][0] == 80 + 2  # nothing lost: every message is stored
    limited = await bot.sql("SELECT count(*) FROM audit WHERE event='rate_limit_exceeded'")
    assert limited[0][0] >= 80 - bot.settings.BOT_INBOUND_BURST - 1
    metrics = (await bot.http.get(bot.url + "/metrics")).text
    assert f'bot_limit_hits_total{{limit="inbound"}} {float(limited[0][0])}' in metrics

    bot.sent_before = len(bot.fake.sent)
    (stopped,) = await say(bot, UK, "STOP")
    assert "START" in text_of(stopped)
    await bot.idle()
    assert await consent(bot) == ["revoked"]


@LIMITED
async def test_erasure_is_never_limited(bot: Bot) -> None:
    for i in range(12):
        await bot.say(UK, f"hello {i}")
    await bot.idle()
    bot.sent_before = len(bot.fake.sent)
    (explain,) = await say(bot, UK, "DELETE MY DATA")
    assert "cannot be undone" in text_of(explain)
    (farewell,) = await say(bot, UK, "DELETE")
    assert "erased" in text_of(farewell)


async def test_token_bucket_refills_over_time() -> None:
    limiter = InboundLimiter(LocalLimits(), per_minute=20, burst=3)
    assert [await limiter.allow("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert await limiter.allow("b", 0.0)  # another person has their own bucket
    assert not await limiter.allow("a", 1.0)  # 1 s refills a third of a token
    assert await limiter.allow("a", 3.1)  # 20 a minute: one token every 3 s
    assert not await limiter.allow("a", 3.2)


async def test_unreachable_shared_limits_let_the_message_through() -> None:
    limiter = InboundLimiter(RedisLimits("redis://127.0.0.1:1/0"), per_minute=20, burst=1)
    assert await limiter.allow("a", 0.0)
    assert await limiter.allow("a", 0.0)
