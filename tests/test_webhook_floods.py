"""Unsigned floods: counted per source and window, one audit entry per burst, 429 past
the limit, and a correctly signed delivery in the middle of one still gets its turn."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from bot.simulator import webhooks
from tests.conftest import PHONE_NUMBER_ID, Bot
from tests.flowkit import UK

LIMIT = 10
FLOOD = 120
pytestmark = [
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
    pytest.mark.parametrize("bot", [{"BOT_WEBHOOK_FAILURE_LIMIT": LIMIT}], indirect=True),
]


async def signature_rows(bot: Bot) -> list[dict[str, int]]:
    rows = await bot.sql(
        "SELECT detail FROM audit WHERE event IN "
        "('webhook_signature_failed', 'webhook_validation_failed') ORDER BY id"
    )
    return [orjson.loads(r[0]) for r in rows]


async def test_a_flood_writes_one_entry_and_gets_429_while_signed_deliveries_pass(
    bot: Bot,
) -> None:
    forged, _ = webhooks.message(PHONE_NUMBER_ID, UK, webhooks.text("hi"))
    before = (await bot.sql("SELECT count(*) FROM audit"))[0][0]

    async def client(n: int) -> list[int]:
        return [(await bot.post(forged, secret="not-the-secret")).status_code for _ in range(n)]

    first = await asyncio.gather(*(client(FLOOD // 8) for _ in range(4)))
    await bot.say(UK, "hello")  # correctly signed, from the flooding address: 200
    (reply,) = await bot.replies(1)  # ...and its turn ran
    assert reply.to == UK.lstrip("+")
    second = await asyncio.gather(*(client(FLOOD // 8) for _ in range(4)))
    statuses = [code for batch in (*first, *second) for code in batch]
    assert statuses.count(401) == LIMIT and statuses.count(429) == FLOOD - LIMIT
    assert await signature_rows(bot) == []  # nothing written while the window is open

    bot.clock.advance(bot.settings.BOT_WEBHOOK_FAILURE_WINDOW)
    assert (await bot.post(forged, secret="not-the-secret")).status_code == 401  # a new window
    window = bot.settings.BOT_WEBHOOK_FAILURE_WINDOW
    assert await signature_rows(bot) == [
        {"count": FLOOD, "throttled": FLOOD - LIMIT, "window_s": window}
    ]
    await bot.idle()
    after = (await bot.sql("SELECT count(*) FROM audit"))[0][0]
    assert after - before < 10  # the turn's own entries and the one burst, not a row each
    metrics = (await bot.http.get(bot.url + "/metrics")).text
    assert 'outcome="throttled"} ' + f"{FLOOD - LIMIT}.0" in metrics
