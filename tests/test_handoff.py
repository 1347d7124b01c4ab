"""A handoff ends: support hands the conversation back, or nobody answered in time."""

from __future__ import annotations

import pytest

from tests.conftest import Bot
from tests.flowkit import UK, say, text_of
from tests.processes import run_cli

DAY = 24 * 3600.0


async def handoff_audit(bot: Bot) -> list[tuple[str, str]]:
    rows = await bot.sql("SELECT actor, outcome FROM audit WHERE event='handoff_ended' ORDER BY id")
    return [(r[0], r[1]) for r in rows]


async def test_an_unanswered_handoff_returns_to_the_bot(bot: Bot) -> None:
    await say(bot, UK, "AGENT")
    bot.clock.advance(DAY - 60)
    await bot.say(UK, "hello?")
    await bot.idle()
    assert len(bot.fake.sent) == 1  # still with staff: quiet
    bot.clock.advance(120)
    (menu,) = await say(bot, UK, "hello?")
    assert "privacy assistant" in text_of(menu)
    assert await handoff_audit(bot) == [("system", "timeout")]
    assert await bot.sql("SELECT count(*) FROM contacts WHERE handoff_at IS NOT NULL") == [(0,)]


@pytest.mark.parametrize("bot", [{"BOT_HANDOFF_TIMEOUT": 0}], indirect=True)
async def test_without_a_timeout_the_handoff_waits_for_staff(bot: Bot) -> None:
    await say(bot, UK, "AGENT")
    bot.clock.advance(30 * DAY)
    await bot.say(UK, "hello?")
    await bot.idle()
    assert len(bot.fake.sent) == 1
    assert await handoff_audit(bot) == []


async def test_the_operator_hands_a_conversation_back(bot: Bot) -> None:
    code, _, err = await run_cli(bot, "handoff", "end", UK)
    assert (code, err.strip()) == (1, "error: that conversation is not handed off")
    await say(bot, UK, "AGENT")
    await bot.idle()
    assert (await run_cli(bot, "handoff", "end", UK))[0] == 0
    (menu,) = await say(bot, UK, "hello")
    assert "privacy assistant" in text_of(menu)
    assert await handoff_audit(bot) == [("operator", "handed_back")]
