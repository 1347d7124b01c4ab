"""POST /webhook end to end: signed deliveries in, Graph API requests out, rows in the store."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from sqlalchemy import text

from bot.crypto import Index
from bot.simulator import webhooks
from tests.conftest import APP_SECRET, PHONE_NUMBER_ID, SQLITE_ONLY, Bot, eventually

ALICE = "+447700900123"
# Input validation does not depend on the database: these run on SQLite only.
BOB = "+491713920042"


@SQLITE_ONLY
async def test_handshake(bot: Bot) -> None:
    ok = await bot.http.get(
        bot.url + "/webhook",
        params={"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "1158"},
    )
    assert (ok.status_code, ok.text) == (200, "1158")
    bad = await bot.http.get(
        bot.url + "/webhook",
        params={"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1158"},
    )
    assert bad.status_code == 403
    assert (await bot.http.get(bot.url + "/webhook")).status_code == 403


async def test_text_gets_menu_reply_and_read_receipt(bot: Bot) -> None:
    wamid = await bot.say(ALICE, "hello")
    (reply,) = await bot.replies(1)
    assert reply.to == ALICE.lstrip("+")
    assert reply.body["interactive"]["type"] == "list"
    rows = reply.body["interactive"]["action"]["sections"][0]["rows"]
    assert [r["id"] for r in rows][:2] == ["menu.join", "menu.my_data"]
    await bot.idle()
    reads = [r for r in bot.fake.requests if r.json and r.json.get("status") == "read"]
    assert [r.json["message_id"] for r in reads] == [wamid]
    rows = await bot.sql("SELECT direction, status FROM messages ORDER BY created_at, direction")
    assert sorted(map(tuple, rows)) == [("in", "received"), ("out", "sent")]


async def test_redelivery_makes_no_second_turn(bot: Bot) -> None:
    body, _ = webhooks.message(PHONE_NUMBER_ID, ALICE, webhooks.text("hi"))
    for _ in range(3):
        assert (await bot.post(body)).status_code == 200
    await bot.replies(1)
    await bot.idle()
    await asyncio.sleep(0.2)
    assert len(bot.fake.sent) == 1
    assert (await bot.sql("SELECT count(*) FROM inbox"))[0][0] == 1
    assert (await bot.sql("SELECT count(*) FROM messages WHERE direction='in'"))[0][0] == 1


async def test_concurrent_redeliveries_make_one_turn(bot: Bot) -> None:
    body, _ = webhooks.message(PHONE_NUMBER_ID, ALICE, webhooks.text("hi"))
    results = await asyncio.gather(*(bot.post(body) for _ in range(20)))
    assert {r.status_code for r in results} == {200}
    await bot.replies(1)
    await bot.idle()
    await asyncio.sleep(0.2)
    assert len(bot.fake.sent) == 1


async def test_batch_of_messages_and_statuses_in_one_post(bot: Bot) -> None:
    now = int(time.time())
    a, _ = webhooks.message(PHONE_NUMBER_ID, ALICE, webhooks.text("one"), timestamp=now - 1)
    b, _ = webhooks.message(PHONE_NUMBER_ID, BOB, webhooks.text("two"), timestamp=now - 1)
    c, _ = webhooks.message(PHONE_NUMBER_ID, ALICE, webhooks.text("three"), timestamp=now)
    st = webhooks.status(PHONE_NUMBER_ID, "wamid.unknownstatus", ALICE, "delivered")
    value = a["entry"][0]["changes"][0]["value"]
    value["messages"] += c["entry"][0]["changes"][0]["value"]["messages"]
    a["entry"].append(b["entry"][0])
    a["entry"][0]["changes"].append(st["entry"][0]["changes"][0])
    assert (await bot.post(a)).status_code == 200
    replies = await bot.replies(3)
    assert sorted(r.to for r in replies) == sorted(["447700900123"] * 2 + ["491713920042"])
    # The status is for a message the bot never sent to someone it did not know yet: not kept.
    assert (await bot.sql("SELECT count(*) FROM inbox"))[0][0] == 3


async def test_one_contact_in_meta_timestamp_order(bot: Bot) -> None:
    """Messages delivered out of order in one batch are answered in timestamp order."""
    now = int(time.time())
    later, w2 = webhooks.message(PHONE_NUMBER_ID, ALICE, webhooks.text("second"), timestamp=now)
    earlier, w1 = webhooks.message(
        PHONE_NUMBER_ID, ALICE, webhooks.text("first"), timestamp=now - 1
    )
    later["entry"][0]["changes"][0]["value"]["messages"].append(
        earlier["entry"][0]["changes"][0]["value"]["messages"][0]
    )
    assert (await bot.post(later)).status_code == 200
    await bot.replies(2)
    await bot.idle()
    reads = [r.json["message_id"] for r in bot.fake.requests if r.json and "status" in r.json]
    assert reads == [w1, w2]


@SQLITE_ONLY
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        {"X-Hub-Signature-256": "md5=abc"},
        {"X-Hub-Signature-256": "sha256=nothex"},
    ],
)
async def test_bad_signature_is_401_and_stores_nothing(bot: Bot, headers: dict[str, str]) -> None:
    body, _ = webhooks.message(PHONE_NUMBER_ID, ALICE, webhooks.text("hi"))
    resp = await bot.http.post(bot.url + "/webhook", content=orjson.dumps(body), headers=headers)
    assert resp.status_code == 401
    assert (await bot.sql("SELECT count(*) FROM inbox"))[0][0] == 0


@SQLITE_ONLY
async def test_signed_with_other_secret_is_401(bot: Bot) -> None:
    body, _ = webhooks.message(PHONE_NUMBER_ID, ALICE, webhooks.text("hi"))
    assert (await bot.post(body, secret="not-the-secret")).status_code == 401


@pytest.mark.parametrize(
    "bot", [{"WHATSAPP_APP_SECRET": "old-secret, " + APP_SECRET}], indirect=True
)
async def test_any_configured_secret_is_accepted(bot: Bot) -> None:
    body, _ = webhooks.message(PHONE_NUMBER_ID, ALICE, webhooks.text("hi"))
    assert (await bot.post(body, secret="old-secret")).status_code == 200
    body, _ = webhooks.message(PHONE_NUMBER_ID, BOB, webhooks.text("hi"))
    assert (await bot.post(body, secret=APP_SECRET)).status_code == 200


@SQLITE_ONLY
@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[]",
        b'"text"',
        b"{}",
        b'{"object": "page", "entry": []}',
        b'{"object": "whatsapp_business_account"}',
        b"\xff\xfe\x00garbage",
        b'{"object": "whatsapp_business_account", "entry": [1, "x", null]',
    ],
)
async def test_malformed_signed_bodies_are_400(bot: Bot, raw: bytes) -> None:
    resp = await bot.post(raw)
    assert resp.status_code == 400
    assert (await bot.sql("SELECT count(*) FROM inbox"))[0][0] == 0


@SQLITE_ONLY
async def test_tolerated_oddities_are_200(bot: Bot) -> None:
    odd = {
        "object": "whatsapp_business_account",
        "entry": [
            1,
            {"changes": None},
            {"changes": [{"field": "account_update", "value": {"x": 1}}]},
            {"changes": [{"field": "messages", "value": {"messages": [{"no": "id"}]}}]},
        ],
    }
    assert (await bot.post(odd)).status_code == 200


@SQLITE_ONLY
async def test_unknown_message_type_is_stored_and_answered_politely(bot: Bot) -> None:
    await bot.say(ALICE, {"type": "hologram", "hologram": {"depth": 3}})
    (reply,) = await bot.replies(1)
    assert reply.body["interactive"]["type"] == "list"  # the menu, no error
    await bot.idle()
    kinds = await bot.sql("SELECT kind FROM messages WHERE direction='in'")
    assert [k[0] for k in kinds] == ["hologram"]


@SQLITE_ONLY
async def test_unicode_oddities(bot: Bot) -> None:
    for words in ["\u202etxet", "emoji 👩🏽‍💻", "nul\x00byte", "🙂" * 1000, "\ud7ff"]:
        await bot.say(ALICE, words)
    await bot.replies(5)


@SQLITE_ONLY
async def test_body_limits(bot: Bot) -> None:
    # Meta sends up to 3 MB: that is accepted.
    big_text = "a" * (3 * 1024 * 1024)
    body, _ = webhooks.message(PHONE_NUMBER_ID, ALICE, webhooks.text(big_text))
    assert (await bot.post(body)).status_code == 200
    # Above 4 MiB: 413, whether signed or not.
    huge = b"{" + b" " * (4 * 1024 * 1024 + 10) + b"}"
    resp = await bot.post(huge)
    assert resp.status_code == 413


@SQLITE_ONLY
async def test_other_business_number_is_acknowledged_but_ignored(bot: Bot) -> None:
    body, _ = webhooks.message("999999999999", ALICE, webhooks.text("hi"))
    assert (await bot.post(body)).status_code == 200
    assert (await bot.sql("SELECT count(*) FROM inbox"))[0][0] == 0


async def test_status_webhooks_update_the_outbound_message(bot: Bot) -> None:
    await bot.say(ALICE, "hi")
    (reply,) = await bot.replies(1)
    await bot.idle()
    for state in ["delivered", "read", "delivered"]:  # a late "delivered" must not go back
        assert (
            await bot.post(webhooks.status(PHONE_NUMBER_ID, reply.wamid, ALICE, state))
        ).status_code == 200
    await bot.idle()
    rows = await bot.sql("SELECT status FROM messages WHERE direction='out'")
    assert [r[0] for r in rows] == ["read"]
    assert len(bot.fake.sent) == 1  # statuses never make a reply


async def test_failed_status_records_meta_reason(bot: Bot) -> None:
    await bot.say(ALICE, "hi")
    (reply,) = await bot.replies(1)
    await bot.idle()
    err = [{"code": 131026, "title": "Message undeliverable"}]
    body = webhooks.status(PHONE_NUMBER_ID, reply.wamid, ALICE, "failed", errors=err)
    assert (await bot.post(body)).status_code == 200
    await bot.idle()
    rows = await bot.sql(
        "SELECT status, error_code, error_title FROM messages WHERE direction='out'"
    )
    assert tuple(rows[0]) == ("failed", 131026, "Message undeliverable")


async def test_status_that_overtakes_its_send_is_applied_later(bot: Bot) -> None:
    """Meta can report a status before the send's response was recorded: it waits."""
    await bot.say(ALICE, "hi")
    (reply,) = await bot.replies(1)
    await bot.idle()
    # Make the send look not yet recorded, then let the status arrive first.
    real_index = bot.services.keyring.blind_index(Index.WAMID, reply.wamid)
    await bot.services.db.write(
        lambda c: c.execute(text("UPDATE messages SET wamid_index=NULL WHERE direction='out'"))
    )
    body = webhooks.status(PHONE_NUMBER_ID, reply.wamid, ALICE, "read")
    assert (await bot.post(body)).status_code == 200

    async def waiting() -> bool:
        rows = await bot.sql("SELECT state FROM inbox WHERE kind='status'")
        return [r[0] for r in rows] == ["waiting"]

    await eventually(waiting)
    await bot.services.db.write(
        lambda c: c.execute(
            text("UPDATE messages SET wamid_index=:w WHERE direction='out'"), {"w": real_index}
        )
    )

    async def applied() -> bool:
        rows = await bot.sql("SELECT status FROM messages WHERE direction='out'")
        return [r[0] for r in rows] == ["read"]

    await eventually(applied, timeout=10)


@SQLITE_ONLY
async def test_health_ready_metrics_and_headers(bot: Bot) -> None:
    h = await bot.http.get(bot.url + "/healthz")
    r = await bot.http.get(bot.url + "/readyz")
    m = await bot.http.get(bot.url + "/metrics")
    assert (h.status_code, r.status_code, m.status_code) == (200, 200, 200)
    assert "bot_webhook_deliveries" in m.text
    for resp in (h, r, m):
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert "max-age" in resp.headers["Strict-Transport-Security"]


@SQLITE_ONLY
async def test_lone_surrogates_and_huge_numbers_are_still_accepted(bot: Bot) -> None:
    """Meta's JSON may carry an escaped half of an emoji; the delivery is real, keep it."""
    body, _ = webhooks.message(PHONE_NUMBER_ID, ALICE, webhooks.text("PLACEHOLDER"))
    raw = (
        orjson.dumps(body)
        .replace(b"PLACEHOLDER", b"broken \\ud83d emoji")
        .replace(
            b'"timestamp":"', b'"big":1e999,"huge":123456789012345678901234567890,"timestamp":"'
        )
    )
    assert (await bot.post(raw)).status_code == 200
    (reply,) = await bot.replies(1)
    assert reply.to == ALICE[1:]


@SQLITE_ONLY
async def test_failed_status_title_quoting_a_number_is_not_stored(bot: Bot) -> None:
    await bot.say(ALICE, "hi")
    (reply,) = await bot.replies(1)
    await bot.idle()
    err = [{"code": 131026, "title": f"Receiver {ALICE} is incapable ({reply.wamid})"}]
    body = webhooks.status(PHONE_NUMBER_ID, reply.wamid, ALICE, "failed", errors=err)
    assert (await bot.post(body)).status_code == 200
    await bot.idle()
    rows = await bot.sql(
        "SELECT status, error_code, error_title FROM messages WHERE direction='out'"
    )
    assert tuple(rows[0]) == ("failed", 131026, "")
