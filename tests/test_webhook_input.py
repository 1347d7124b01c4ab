"""Bad input at POST /webhook never costs a message: one absurd event, a replay, a delivery
for another number or a status for someone the bot does not know is set aside on its own,
and the rest of the delivery is stored and answered 200."""

from __future__ import annotations

import json
import time
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from bot.simulator import webhooks
from tests.conftest import PHONE_NUMBER_ID, Bot, eventually

ALICE = "+447700900123"
BOB = "+491713920042"
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
DAY = 86400


def batch(*bodies: dict[str, Any]) -> dict[str, Any]:
    """One delivery holding the entries of several."""
    first = bodies[0]
    for other in bodies[1:]:
        first["entry"] += other["entry"]
    return first


async def audited(bot: Bot, event: str) -> list[dict[str, Any]]:
    rows = await bot.sql("SELECT actor, detail FROM audit WHERE event = :e", e=event)
    return [{"actor": r[0], **orjson.loads(r[1] or "{}")} for r in rows]


async def inbox_count(bot: Bot) -> int:
    return int((await bot.sql("SELECT count(*) FROM inbox"))[0][0])


@pytest.mark.parametrize("stamp", [str(2**64), 2**64 + 7, 2**40, "-5", "1e300"])
async def test_absurd_timestamp_costs_no_message(bot: Bot, stamp: Any) -> None:
    odd, _ = webhooks.message(PHONE_NUMBER_ID, ALICE, webhooks.text("odd"))
    odd["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = stamp
    fine, _ = webhooks.message(PHONE_NUMBER_ID, BOB, webhooks.text("fine"))
    resp = await bot.post(json.dumps(batch(odd, fine)).encode())  # orjson stops at 64 bits
    assert resp.status_code == 200, resp.text
    replies = await bot.replies(2)
    assert sorted(r.to for r in replies) == sorted([ALICE[1:], BOB[1:]])
    (entry,) = await audited(bot, "webhook_timestamp_clamped")
    assert entry == {"actor": "system", "count": 1}
    metrics = (await bot.http.get(bot.url + "/metrics")).text
    assert 'bot_webhook_events_total{kind="timestamp_clamped"} 1.0' in metrics


@SQLITE_ONLY
async def test_an_event_nested_too_deeply_to_store_costs_no_other_message(bot: Bot) -> None:
    deep, _ = webhooks.message(PHONE_NUMBER_ID, ALICE, webhooks.text("deep"))
    fine, _ = webhooks.message(PHONE_NUMBER_ID, BOB, webhooks.text("fine"))
    raw = orjson.dumps(batch(deep, fine)).replace(
        b'"type":"text"', b'"odd":' + b"[" * 600 + b"]" * 600 + b',"type":"text"', 1
    )  # readable (orjson reads 1,024 levels) but not writable as a slice (255)
    assert (await bot.post(raw)).status_code == 200
    (reply,) = await bot.replies(1)
    assert reply.to == BOB[1:]
    (entry,) = await audited(bot, "webhook_event_dropped")
    assert entry == {"actor": "system", "count": 1}


@SQLITE_ONLY
@pytest.mark.parametrize(
    "raw",
    [
        b'{"object":"whatsapp_business_account","entry":' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"object":"whatsapp_business_account","entry":[],"n":1' + b"0" * 330 + b"}",
        b'{"object":"whatsapp_business_account","entry":[],"n":-1' + b"0" * 400 + b"}",
    ],
    ids=["deep", "huge", "huge-negative"],
)
async def test_deep_nesting_and_huge_numbers_are_400(bot: Bot, raw: bytes) -> None:
    resp = await bot.post(raw)
    assert resp.status_code == 400
    assert "not a WhatsApp webhook payload" in resp.text
    assert await inbox_count(bot) == 0


async def test_replayed_messages_make_no_turn(bot: Bot) -> None:
    old = int(time.time()) - 8 * DAY
    stale, _ = webhooks.message(PHONE_NUMBER_ID, ALICE, webhooks.text("old"), timestamp=old)
    fresh, _ = webhooks.message(PHONE_NUMBER_ID, BOB, webhooks.text("new"))
    assert (await bot.post(batch(stale, fresh))).status_code == 200
    (reply,) = await bot.replies(1)
    assert reply.to == BOB[1:]
    await bot.idle()
    assert (await bot.post(stale)).status_code == 200  # alone: still acknowledged
    await bot.idle()
    assert len(bot.fake.sent) == 1
    assert await inbox_count(bot) == 1
    counts = [e["count"] for e in await audited(bot, "webhook_replay_ignored")]
    assert counts == [1, 1]


@SQLITE_ONLY
async def test_a_day_old_message_is_still_answered(bot: Bot) -> None:
    """Meta retries for up to 7 days: a late retry is a real message."""
    await bot.say(ALICE, "late", timestamp=int(time.time()) - 6 * DAY)
    await bot.replies(1)


@SQLITE_ONLY
async def test_events_without_our_number_are_ignored(bot: Bot) -> None:
    ours, _ = webhooks.message(PHONE_NUMBER_ID, ALICE, webhooks.text("ours"))
    nameless, _ = webhooks.message(PHONE_NUMBER_ID, BOB, webhooks.text("no metadata"))
    del nameless["entry"][0]["changes"][0]["value"]["metadata"]
    other, _ = webhooks.message("999999999999", BOB, webhooks.text("other"))
    assert (await bot.post(batch(ours, nameless, other))).status_code == 200
    (reply,) = await bot.replies(1)
    assert reply.to == ALICE[1:]
    await bot.idle()
    assert await inbox_count(bot) == 1
    metrics = (await bot.http.get(bot.url + "/metrics")).text
    assert 'bot_webhook_events_total{kind="other_number"} 2.0' in metrics


@SQLITE_ONLY
async def test_verify_token_is_compared_in_constant_time(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hmac

    seen: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    for token, expected in [("verify-me", 200), ("wrong", 403), ("vérifier ✓", 403)]:
        params = {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "7"}
        resp = await bot.http.get(bot.url + "/webhook", params=params)
        assert resp.status_code == expected
    assert len(seen) == 3
    assert all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in seen)


async def test_status_for_an_unknown_recipient_is_not_stored(bot: Bot) -> None:
    body = webhooks.status(PHONE_NUMBER_ID, "wamid.nobodyknows", ALICE, "delivered")
    assert (await bot.post(body)).status_code == 200
    assert await inbox_count(bot) == 0
    metrics = (await bot.http.get(bot.url + "/metrics")).text
    assert 'bot_webhook_events_total{kind="status_unknown_recipient"} 1.0' in metrics


async def test_statuses_after_an_erasure_are_dropped_at_once(bot: Bot) -> None:
    await bot.say(ALICE, "hi")
    (menu,) = await bot.replies(1)
    await bot.idle()
    await bot.say(ALICE, "DELETE MY DATA")
    await bot.replies(1)
    await bot.say(ALICE, "DELETE")
    (farewell,) = await bot.replies(1)
    await bot.idle()
    assert await inbox_count(bot) == 0
    for wamid in (menu.wamid, farewell.wamid):  # before and after the erasure
        for state in ("delivered", "read"):
            body = webhooks.status(PHONE_NUMBER_ID, wamid, ALICE, state)
            assert (await bot.post(body)).status_code == 200
    await bot.idle()
    assert await inbox_count(bot) == 0


async def test_a_waiting_status_goes_once_its_recipient_is_erased(bot: Bot) -> None:
    """A status kept while its recipient was known, whose person is erased before it is
    applied (by another worker, in between), is removed at its next round, not kept."""
    from bot.store import privacy as privacy_store

    await bot.say(ALICE, "hi")
    (reply,) = await bot.replies(1)
    await bot.idle()
    await bot.services.db.write(
        lambda c: c.execute(text("UPDATE messages SET wamid_index=NULL WHERE direction='out'"))
    )  # its send not recorded yet: the status waits
    assert (await bot.post(webhooks.status(PHONE_NUMBER_ID, reply.wamid, ALICE, "read"))).is_success

    async def waiting() -> bool:
        return await bot.sql("SELECT state FROM inbox WHERE kind='status'") == [("waiting",)]

    await eventually(waiting)
    (contact_id,) = (await bot.sql("SELECT id FROM contacts"))[0]
    await bot.services.db.write(privacy_store.erase_contact, contact_id, [])

    async def gone() -> bool:
        return await bot.sql("SELECT count(*) FROM inbox WHERE kind='status'") == [(0,)]

    await eventually(gone, timeout=8)


async def test_an_absurd_error_code_still_fails_the_message(bot: Bot) -> None:
    await bot.say(ALICE, "hi")
    (reply,) = await bot.replies(1)
    await bot.idle()
    err = [{"code": 2**63, "title": "Message undeliverable"}]
    body = webhooks.status(PHONE_NUMBER_ID, reply.wamid, ALICE, "failed", errors=err)
    assert (await bot.post(body)).status_code == 200
    await bot.idle()

    async def failed() -> bool:
        rows = await bot.sql("SELECT status, error_code FROM messages WHERE direction='out'")
        return [tuple(r) for r in rows] == [("failed", None)]

    await eventually(failed, timeout=5)
