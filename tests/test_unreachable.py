"""Numbers Meta calls undeliverable (131026): business sends to them pause, saving quota,
until the person writes again or `BOT_UNREACHABLE_DAYS` pass."""

from __future__ import annotations

import pytest

from bot.policy.business import SendRefused, TemplateSend, queue_template
from bot.policy.gate import UNKNOWN, Category, Facts, Reason, Request, decide, unreachable_until
from bot.simulator import webhooks
from tests.conftest import PHONE_NUMBER_ID, Bot

ALICE = "+447700900123"
ORDER = {"name": "Ada", "order": "A-17", "status": "shipped"}
DAY = 86400.0


async def order_update(bot: Bot) -> str:
    s = bot.services
    send = TemplateSend(ALICE, "order_update", "utility", ORDER)
    queued = await queue_template(
        s.db, s.people, s.templates, send, tier=None, now=bot.clock(),
        unreachable_days=bot.settings.BOT_UNREACHABLE_DAYS,
    )  # fmt: skip
    return queued.message_id


async def refused_reason(bot: Bot) -> Reason:
    with pytest.raises(SendRefused) as caught:
        await order_update(bot)
    return caught.value.reason


async def marked(bot: Bot) -> list[tuple]:
    return [tuple(r) for r in await bot.sql("SELECT unreachable_at IS NOT NULL FROM contacts")]


async def test_a_send_meta_refuses_with_131026_pauses_business_sends(bot: Bot) -> None:
    bot.fake.fail_next(131026)
    await bot.say(ALICE, "hi")
    await bot.idle()
    assert await marked(bot) == [(True,)]
    requests_before = len(bot.fake.requests)
    assert await refused_reason(bot) is Reason.UNREACHABLE
    await bot.idle()
    assert len(bot.fake.requests) == requests_before  # Meta never asked: no quota spent
    audit = await bot.sql("SELECT event, outcome FROM audit WHERE event='policy_refused'")
    assert [tuple(r) for r in audit] == [("policy_refused", "unreachable")]
    rows = await bot.sql("SELECT * FROM contacts")
    assert ALICE[1:] not in repr(rows) and ALICE not in repr(rows)  # keyed, never the number


async def test_a_failed_status_with_131026_pauses_and_the_persons_message_clears_it(
    bot: Bot,
) -> None:
    await bot.say(ALICE, "hi")
    (reply,) = await bot.replies(1)
    await bot.idle()
    err = [{"code": 131026, "title": "Message undeliverable"}]
    body = webhooks.status(PHONE_NUMBER_ID, reply.wamid, ALICE, "failed", errors=err)
    assert (await bot.post(body)).status_code == 200
    await bot.idle()
    assert await marked(bot) == [(True,)]
    assert await refused_reason(bot) is Reason.UNREACHABLE
    bot.clock.advance(60)
    await bot.say(ALICE, "I am back")
    await bot.replies(1)
    await bot.idle()
    await order_update(bot)  # accepted: the person wrote since


@pytest.mark.parametrize(
    ("db_url", "bot"), [("sqlite", {"BOT_UNREACHABLE_DAYS": 2})], indirect=True
)
async def test_the_pause_ends_after_the_set_days(bot: Bot) -> None:
    bot.fake.fail_next(131026)
    await bot.say(ALICE, "hi")
    await bot.idle()
    bot.clock.advance(1.9 * DAY)
    assert await refused_reason(bot) is Reason.UNREACHABLE
    bot.clock.advance(0.2 * DAY)
    await order_update(bot)


def test_the_rule_in_the_gate() -> None:
    now = 1_000_000.0
    utility = Request(Category.UTILITY, "order_update")
    assert unreachable_until(None, None, 30) is None
    assert unreachable_until(now, now + 1, 30) is None  # wrote since
    assert unreachable_until(now, now - 1, 30) == now + 30 * DAY
    paused = Facts(True, None, None, False, unreachable_until=now + DAY)
    assert decide(utility, paused, now) is Reason.UNREACHABLE
    assert decide(Request(Category.SERVICE, confirmation=True), paused, now) is None
    assert decide(utility, UNKNOWN, now, erased_if_unknown=True) is Reason.ERASED
