"""Helpers to talk to the bot's flows like a person: type, tap, read the answer."""

from __future__ import annotations

from typing import Any

from bot.simulator import webhooks
from tests.conftest import Bot

UK = "+447700900123"  # GDPR, English
CALIFORNIA = "+16505551234"  # CCPA/CPRA, English
SINGAPORE = "+6581234567"  # PDPA, English
GERMANY = "+491713920042"  # GDPR, German
BRAZIL = "+5511987654321"  # LGPD, Portuguese
INDIANA = "+12195555358"  # strict default, English


def text_of(body: dict[str, Any]) -> str:
    if body["type"] == "text":
        return body["text"]["body"]
    if body["type"] == "interactive":
        return body["interactive"]["body"]["text"]
    if body["type"] == "document":
        return body["document"].get("caption", "")
    return ""


def options_of(body: dict[str, Any]) -> dict[str, str]:
    """id → title of the buttons or list rows a message offers."""
    if body["type"] != "interactive":
        return {}
    inter = body["interactive"]
    if inter["type"] == "button":
        return {b["reply"]["id"]: b["reply"]["title"] for b in inter["action"]["buttons"]}
    return {r["id"]: r["title"] for s in inter["action"]["sections"] for r in s["rows"]}


async def say(bot: Bot, who: str, words: str, count: int = 1) -> list[dict[str, Any]]:
    """Type `words` and return the bodies of the `count` replies."""
    await bot.say(who, words)
    return [r.body for r in await bot.replies(count)] if count else []


async def tap(bot: Bot, who: str, reply_id: str, count: int = 1, title: str = "x") -> list[dict]:
    kind = (
        webhooks.list_reply
        if reply_id.startswith(("menu.", "residence.", "language.", "correct."))
        else (webhooks.button_reply)
    )
    await bot.say(who, kind(reply_id, title))
    return [r.body for r in await bot.replies(count)] if count else []


async def consent(bot: Bot) -> list[str]:
    rows = await bot.sql("SELECT status FROM consents WHERE purpose='marketing'")
    return [r[0] for r in rows]
