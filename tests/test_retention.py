"""Retention through the real bot: real conversations, then a purge at a chosen time.

Ages and categories are set with SQL on rows the conversations made, and each
period is probed one second before and one second after it ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest
from sqlalchemy import select, text

from bot import audit
from bot.crypto import Index
from bot.privacy import retention
from bot.privacy.retention import purge
from bot.simulator import webhooks
from bot.store import StoreUnavailable
from bot.store.tables import AuditEntry
from tests.conftest import PHONE_NUMBER_ID, Bot, eventually
from tests.flowkit import BRAZIL, CALIFORNIA, GERMANY, INDIANA, SINGAPORE, UK, say, tap

DAY = 86_400
KEPT_TABLES = ("contacts", "consents", "consent_events", "suppressions")


async def execute(bot: Bot, query: str, **params: Any) -> None:
    """Change rows through the writer (read connections roll back)."""
    await bot.services.db.write(lambda c: c.execute(text(query), params))


async def snapshot(bot: Bot) -> dict[str, list[Any]]:
    kept = {t: await bot.sql(f"SELECT * FROM {t} ORDER BY 1") for t in KEPT_TABLES}
    return {**kept, "data_keys": await bot.keys_sql("SELECT * FROM data_keys ORDER BY 1")}


async def purges(bot: Bot) -> list[dict[str, int]]:
    rows = await bot.sql(
        "SELECT actor, detail FROM audit WHERE event='retention_purge' ORDER BY id"
    )
    assert all(actor == audit.SYSTEM for actor, _ in rows)
    return [json.loads(detail) for _, detail in rows]


async def chain_verifies(bot: Bot) -> bool:
    table = AuditEntry.__table__

    def run(conn: Any) -> audit.Verdict:
        rows = (dict(r._mapping) for r in conn.execute(select(table).order_by(table.c.id)))
        return audit.verify_rows(rows, bot.settings.audit_key)

    verdict = await bot.services.db.read(run)
    assert verdict.ok, verdict.problem
    return verdict.ok


async def run_purge(bot: Bot, now: float, **kw: Any) -> dict[str, int]:
    s = bot.settings
    return await purge(bot.services.db, s.retention_days, s.BOT_INBOX_KEEP_DAYS, now=now, **kw)


def counts(messages: int = 0, inbox: int = 0, payloads: int = 0) -> dict[str, int]:
    return {
        "messages_deleted": messages,
        "inbox_deleted": inbox,
        "inbox_payloads_cleared": payloads,
    }


async def join_and_confirm(bot: Bot, *people: str) -> None:
    """JOIN, notice, question, Yes, thanks: five messages and two inbox rows per person."""
    for who in people:
        await say(bot, who, "JOIN", 2)
        await tap(bot, who, "optin.yes")
    await bot.idle()


# (category, age in seconds, expected to be purged); retention is the default
# otp:1, marketing:30, transactional/service/utility:90, support:180.
MESSAGE_CASES = [
    ("otp", 1 * DAY - 1, False),
    ("otp", 1 * DAY + 1, True),
    ("marketing", 30 * DAY - 1, False),
    ("marketing", 30 * DAY + 1, True),
    ("service", 90 * DAY - 1, False),
    ("service", 90 * DAY + 1, True),
    ("support", 180 * DAY - 1, False),
    ("support", 180 * DAY + 1, True),
    ("promo-2026", 180 * DAY - 1, False),  # unknown: the longest period, 180 days
    ("promo-2026", 180 * DAY + 1, True),
]


async def test_messages_go_when_their_categorys_period_ends(bot: Bot) -> None:
    await join_and_confirm(bot, UK, GERMANY, CALIFORNIA)
    rows = await bot.sql("SELECT id, direction FROM messages ORDER BY id")
    assert len(rows) == 15
    inbound = [mid for mid, d in rows if d == "in"]
    outbound = [mid for mid, d in rows if d == "out"]
    now = time.time() + 60
    gone: set[str] = set()
    for mid, (category, age, expired) in zip(inbound + outbound, MESSAGE_CASES, strict=False):
        await execute(bot, "UPDATE messages SET category=:c, created_at=:t WHERE id=:id",
                      c=category, t=now - age, id=mid)  # fmt: skip
        if expired:
            gone.add(mid)
    # Not sent yet: stays however old, whatever its category.
    queued, failed = outbound[-2:]
    await execute(bot, "UPDATE messages SET status='queued', category='otp', created_at=:t "
                  "WHERE id=:id", t=now - 400 * DAY, id=queued)  # fmt: skip
    # Sent, or failed for good: past its period it goes like any other.
    await execute(bot, "UPDATE messages SET status='failed', category='otp', created_at=:t "
                  "WHERE id=:id", t=now - 2 * DAY, id=failed)  # fmt: skip
    gone.add(failed)
    kept_before = await snapshot(bot)
    inbox_before = await bot.sql("SELECT * FROM inbox ORDER BY id")

    assert await run_purge(bot, now) == counts(messages=6)

    left = {r[0] for r in await bot.sql("SELECT id FROM messages")}
    assert left == {mid for mid, _ in rows} - gone
    assert queued in left
    assert await snapshot(bot) == kept_before  # consent evidence and contacts stay
    assert await bot.sql("SELECT * FROM inbox ORDER BY id") == inbox_before
    assert await purges(bot) == [counts(messages=6)]
    assert await chain_verifies(bot)
    # The conversation carries on as before.
    assert len(await say(bot, UK, "hello")) == 1


async def deliver(bot: Bot, who: str, words: str) -> tuple[str, dict[str, Any]]:
    """A person writes; returns the inbox key of the delivery and its body."""
    body, wamid = webhooks.message(PHONE_NUMBER_ID, who, webhooks.text(words))
    assert (await bot.post(body)).status_code == 200
    await bot.replies(1)
    return bot.services.keyring.blind_index(Index.EVENT, f"message:{wamid}"), body


async def test_inbox_keys_outlive_retries_and_failed_payloads_are_dropped(bot: Bot) -> None:
    keys: dict[str, str] = {}
    bodies: dict[str, dict[str, Any]] = {}
    people = {"old": UK, "young": GERMANY, "failed_old_clear": CALIFORNIA,
              "failed_young": SINGAPORE, "failed_gone": BRAZIL, "pending": INDIANA}  # fmt: skip
    for name, who in people.items():
        keys[name], bodies[name] = await deliver(bot, who, "JOIN")
    keys["waiting"], _ = await deliver(bot, UK, "hello")
    await bot.idle()
    now = time.time() + 60
    keep = bot.settings.BOT_INBOX_KEEP_DAYS * DAY

    async def age(name: str, received: float, **values: Any) -> None:
        sets = "".join(f", {column}=:{column}" for column in values)
        query = f"UPDATE inbox SET received_at=:received{sets} WHERE event_key=:key"
        await execute(bot, query, received=now - received, key=keys[name], **values)

    sealed = b"\x01sealed-poison-delivery"
    await age("old", keep + 1)
    await age("young", keep - 1)
    await age("failed_old_clear", 2 * DAY, state="failed", payload=sealed,
              processed_at=now - DAY - 1)  # fmt: skip
    await age("failed_young", 2 * DAY, state="failed", payload=sealed,
              processed_at=now - DAY + 1)  # fmt: skip
    await age("failed_gone", keep + 1, state="failed", payload=sealed,
              processed_at=now - keep)  # fmt: skip
    # Work not done yet (no contact, so no worker picks it up): never removed.
    await age("pending", 400 * DAY, state="pending", contact_index=None)
    await age("waiting", 400 * DAY, state="waiting", contact_index=None)
    messages_before = await bot.sql("SELECT id FROM messages ORDER BY id")

    assert await run_purge(bot, now) == counts(inbox=2, payloads=1)

    rows = await bot.sql("SELECT event_key, state, payload FROM inbox")
    left = {key: (state, payload) for key, state, payload in rows}
    name_of = {key: name for name, key in keys.items()}
    assert {name_of[k] for k in left} == set(keys) - {"old", "failed_gone"}
    assert left[keys["failed_old_clear"]] == ("failed", None)
    assert bytes(left[keys["failed_young"]][1]) == sealed
    assert left[keys["pending"]][0] == "pending"
    assert left[keys["waiting"]][0] in ("waiting", "pending")  # the sweeper may requeue it
    assert await bot.sql("SELECT id FROM messages ORDER BY id") == messages_before
    assert await purges(bot) == [counts(inbox=2, payloads=1)]
    assert await chain_verifies(bot)

    # Meta redelivers a message whose key is still kept: no second turn.
    turns_before = await bot.sql("SELECT count(*) FROM audit WHERE event='message_received'")
    sent_before = len(bot.fake.sent)
    assert (await bot.post(bodies["young"])).status_code == 200
    await eventually(lambda: settled(bot))
    assert await bot.sql("SELECT count(*) FROM inbox") == [(len(left),)]
    assert await bot.sql("SELECT id FROM messages ORDER BY id") == messages_before
    assert await bot.sql("SELECT count(*) FROM audit WHERE event='message_received'") == (
        turns_before
    )
    assert len(bot.fake.sent) == sent_before


async def settled(bot: Bot) -> bool:
    """No turn under way and nothing waiting for the writer (pending rows may remain)."""
    return not bot.services.turns.active and not bot.services.db.writer.depth


async def test_a_backlog_goes_in_batches_each_audited_with_its_counts(bot: Bot) -> None:
    await join_and_confirm(bot, UK, GERMANY)
    now = time.time() + 60
    await execute(bot, "UPDATE messages SET created_at=:t", t=now - 91 * DAY)
    await execute(bot, "UPDATE inbox SET received_at=:t", t=now - 8 * DAY)
    audit_before = await bot.sql("SELECT count(*) FROM audit")

    assert await run_purge(bot, now, batch_size=5) == counts(messages=10, inbox=4)

    assert await purges(bot) == [counts(5, 0), counts(5, 0), counts(0, 4)]
    assert await bot.sql("SELECT count(*) FROM messages") == [(0,)]
    assert await bot.sql("SELECT count(*) FROM inbox") == [(0,)]
    assert await chain_verifies(bot)

    # Nothing left: a purge that removes nothing writes no audit entry.
    assert await run_purge(bot, now, batch_size=5) == counts()
    assert await bot.sql("SELECT count(*) FROM audit") == [(audit_before[0][0] + 3,)]
    assert await bot.sql("SELECT count(*) FROM contacts") == [(2,)]


async def test_the_timer_logs_each_run_and_survives_a_failing_one(
    bot: Bot, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await join_and_confirm(bot, UK)
    now = time.time() + 60
    await execute(bot, "UPDATE messages SET created_at=:t", t=now - 200 * DAY)
    stop = asyncio.Event()
    real, calls = retention.purge, []

    async def flaky(*args: Any, **kw: Any) -> dict[str, int]:
        calls.append(kw["now"])
        if len(calls) == 1:
            raise StoreUnavailable("database went away")
        result = await real(*args, **kw)
        stop.set()
        return result

    monkeypatch.setattr(retention, "purge", flaky)
    caplog.set_level(logging.INFO, logger=retention.__name__)
    db = bot.services.db
    await asyncio.wait_for(
        retention.purge_forever(db, bot.settings, stop, interval=0.05, clock=lambda: now), 5
    )

    assert calls == [now, now]
    records = [r for r in caplog.records if r.name == retention.__name__]
    logged = [(r.levelname, r.getMessage()) for r in records]
    assert [level for level, _ in logged] == ["ERROR", "INFO"]
    assert logged[0][1].startswith("retention purge failed")
    assert records[0].exc_info is not None
    assert logged[1][1].startswith(
        "retention purge: messages_deleted=5 inbox_deleted=0 inbox_payloads_cleared=0 "
    )
    assert not any(UK.lstrip("+") in m for _, m in logged)
    assert await purges(bot) == [counts(messages=5)]

    # BOT_PURGE_INTERVAL=0 turns the timer off: it returns at once.
    off = bot.settings.model_copy(update={"BOT_PURGE_INTERVAL": 0})
    await asyncio.wait_for(retention.purge_forever(db, off, asyncio.Event()), 1)
    assert len(calls) == 2
