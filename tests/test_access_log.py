"""The access log: one line per request with its fields, never a token, a query or a number."""

from __future__ import annotations

import io
import re

import orjson
import pytest

from tests.conftest import SQLITE_ONLY, Bot
from tests.test_logs import out, restore_logging  # noqa: F401 - fixtures

ALICE = "+447700900123"
LINE = re.compile(
    r"(?P<source>\S+) (?P<method>[A-Z]+) (?P<path>/\S*) (?P<status>\d{3}) (?P<size>\d+|-) "
    r"(?P<ms>\d+\.\d)ms"
)


def access_lines(buffer: io.StringIO) -> list[dict]:
    entries = [orjson.loads(line) for line in buffer.getvalue().splitlines()]
    return [e for e in entries if e["logger"] == "bot.access"]


@SQLITE_ONLY
async def test_one_line_per_request_with_its_fields_and_nothing_personal(
    out: io.StringIO,  # noqa: F811
    bot: Bot,
) -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "77"}
    assert (await bot.http.get(bot.url + "/webhook", params=params)).status_code == 200
    params["hub.verify_token"] = "wrong-token"
    assert (await bot.http.get(bot.url + "/webhook", params=params)).status_code == 403
    await bot.say(ALICE, "my number is +44 7700 900123")
    assert (await bot.http.get(bot.url + "/healthz?x=1")).status_code == 200
    await bot.replies(1)
    entries = access_lines(out)
    assert len(entries) == 4
    fields = [LINE.fullmatch(e["msg"]) for e in entries]
    assert all(fields), [e["msg"] for e in entries]
    seen = [(f["source"], f["method"], f["path"], f["status"], f["size"]) for f in fields if f]
    assert seen == [
        ("127.0.0.1", "GET", "/webhook", "200", "2"),
        ("127.0.0.1", "GET", "/webhook", "403", "19"),
        ("127.0.0.1", "POST", "/webhook", "200", "2"),
        ("127.0.0.1", "GET", "/healthz", "200", "2"),
    ]
    assert all(
        e["ts"].endswith("Z") and e["status"] == int(f["status"])
        for e, f in zip(entries, [f for f in fields if f], strict=True)
    )
    text = out.getvalue()
    for secret in ("verify-me", "wrong-token", "hub.", "?", "7700", "447700900123", "x=1"):
        assert not any(secret in e["msg"] for e in entries), secret
    assert "verify-me" not in text


@pytest.mark.parametrize(("db_url", "bot"), [("sqlite", {"BOT_ACCESS_LOG": False})], indirect=True)
async def test_it_can_be_turned_off(out: io.StringIO, bot: Bot) -> None:  # noqa: F811
    assert (await bot.http.get(bot.url + "/healthz")).status_code == 200
    assert access_lines(out) == []
