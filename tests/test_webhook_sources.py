"""The webhook source allow-list: who may POST /webhook, as seen through trusted proxies."""

from __future__ import annotations

import ipaddress

import pytest

from bot.config import parse_networks
from bot.simulator import webhooks
from bot.webhook.sources import allowed, source_of
from tests.conftest import PHONE_NUMBER_ID, Bot

ALICE = "+447700900123"


def _only(**overrides: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize(("db_url", "bot"), [("sqlite", overrides)], indirect=True)


async def _deliver(bot: Bot, forwarded: str | None = None, size: int = 0) -> int:
    body, _ = webhooks.message(PHONE_NUMBER_ID, ALICE, webhooks.text("hi" + "x" * size))
    raw, headers = webhooks.signed(body, bot.settings.WHATSAPP_APP_SECRET)
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    resp = await bot.http.post(bot.url + "/webhook", content=raw, headers=headers)
    return resp.status_code


async def _refusals(bot: Bot) -> str:
    text = (await bot.http.get(bot.url + "/metrics")).text
    lines = [x for x in text.splitlines() if 'outcome="source_refused"' in x]
    return lines[0].rsplit(" ", 1)[1] if lines else "0"


@_only(BOT_WEBHOOK_ALLOW_FROM="10.0.0.0/8")
async def test_a_source_outside_the_list_is_refused_counted_and_not_audited(bot: Bot) -> None:
    assert await _deliver(bot) == 403
    # refused before the body is read: a body over the size limit gets 403, not 413
    assert await _deliver(bot, size=bot.settings.BOT_MAX_BODY_BYTES) == 403
    assert await _refusals(bot) == "2.0"
    assert await bot.sql("SELECT count(*) FROM inbox") == [(0,)]
    assert await bot.sql("SELECT count(*) FROM audit") == [(0,)]


@_only(BOT_WEBHOOK_ALLOW_FROM="127.0.0.1/32, 10.0.0.0/8")
async def test_a_source_inside_the_list_is_served(bot: Bot) -> None:
    assert await _deliver(bot) == 200
    # without a trusted proxy, X-Forwarded-For is the client's word and counts for nothing
    assert await _deliver(bot, forwarded="198.51.100.7") == 200


@_only(BOT_WEBHOOK_ALLOW_FROM="203.0.113.0/24", BOT_TRUSTED_PROXIES="127.0.0.0/8")
async def test_behind_a_trusted_proxy_the_forwarded_source_counts(bot: Bot) -> None:
    assert await _deliver(bot, forwarded="203.0.113.5") == 200
    assert await _deliver(bot, forwarded="198.51.100.7") == 403
    # a client writing an allowed address on the left does not get through
    assert await _deliver(bot, forwarded="203.0.113.5, 198.51.100.7") == 403
    assert await _deliver(bot) == 403  # the proxy itself is not an allowed source


@_only(BOT_WEBHOOK_ALLOW_FROM="198.51.100.0/24")
async def test_without_a_trusted_proxy_forwarded_headers_are_ignored(bot: Bot) -> None:
    assert await _deliver(bot, forwarded="198.51.100.7") == 403


def test_source_resolution() -> None:
    proxies = parse_networks("10.0.0.0/8,::1")
    ip = ipaddress.ip_address
    assert source_of("192.0.2.1", {"X-Forwarded-For": "203.0.113.5"}, proxies) == ip("192.0.2.1")
    assert source_of("10.1.1.1", {"X-Forwarded-For": "203.0.113.5"}, proxies) == ip("203.0.113.5")
    hops = {"X-Forwarded-For": "198.51.100.1, 203.0.113.5, 10.2.2.2"}
    assert source_of("10.1.1.1", hops, proxies) == ip("203.0.113.5")
    assert source_of("::1", {"X-Forwarded-For": "garbage"}, proxies) == ip("::1")
    assert source_of("::ffff:192.0.2.9", {}, proxies) == ip("192.0.2.9")
    assert source_of("unix-socket", {}, proxies) is None
    assert allowed(None, ())
    assert not allowed(None, proxies)


def test_a_bad_range_is_named() -> None:
    from bot.config import SettingsError
    from tests.conftest import make_settings

    with pytest.raises(SettingsError, match="BOT_WEBHOOK_ALLOW_FROM: 'meta' is not"):
        make_settings("sqlite+aiosqlite:///x.db", "http://x", BOT_WEBHOOK_ALLOW_FROM="meta")
