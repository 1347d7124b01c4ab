"""Whole turns below HTTP (tests/turnkit.py): flow files, store and texts, no server.

Each test is a conversation on a real SQLite file, checked on the replies'
Graph bodies and on the rows the turns committed. The pacing test adds a real
outbox and feed in front of the fake Graph API, to show that a person's
replies and the business's sends to them are held back by one pace.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.crypto import Index
from bot.observers import NullObserver
from bot.policy.business import TemplateSend, queue_template, queue_text
from bot.policy.limits import make_limits
from bot.privacy.consent import QuietRevocation
from bot.runtime.feed import OutboxFeed
from bot.runtime.outbox import Outbox
from bot.services import build_outbox
from bot.simulator import webhooks
from bot.simulator.fake_graph import FakeGraph
from bot.whatsapp.client import GraphClient
from tests.conftest import PHONE_NUMBER_ID, TOKEN, eventually, fresh_sqlite
from tests.flowkit import GERMANY, UK, options_of, text_of
from tests.turnkit import ROOT, TurnKit

HOUR = 3600.0
SHIPPED_EXPIRY = "expires: {after: 24h, to: menu.main}"
ORDER = {"name": "Ana", "order": "A-1", "status": "shipped"}


@pytest.fixture
async def kit(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[TurnKit]:
    async with TurnKit.open(fresh_sqlite(sqlite_template, tmp_path)) as opened:
        yield opened


# The flow files decide --------------------------------------------------------------------


def flows_with_notice_expiring(tmp_path: Path, hours: int) -> Path:
    """A copy of the shipped flows whose opt-in notice lapses after `hours`."""
    flows = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", flows)
    optin = flows / "optin.yaml"
    shipped = optin.read_text()
    assert shipped.count(SHIPPED_EXPIRY) == 1, "the notice's expiry is no longer written so"
    edited = SHIPPED_EXPIRY.replace("24h", f"{hours}h")
    optin.write_text(shipped.replace(SHIPPED_EXPIRY, edited))
    return flows


@pytest.mark.parametrize(
    ("expires", "answered_after", "granted"),
    [(24, 23, True), (24, 30, False), (48, 30, True), (48, 49, False)],
    ids=["24h-yes-at-23h", "24h-yes-at-30h", "48h-yes-at-30h", "48h-yes-at-49h"],
)
async def test_changing_expires_in_optin_changes_when_the_question_lapses(
    sqlite_template: Path, tmp_path: Path, expires: int, answered_after: int, granted: bool
) -> None:
    flows = None if expires == 24 else flows_with_notice_expiring(tmp_path, expires)
    url = fresh_sqlite(sqlite_template, tmp_path)
    async with TurnKit.open(url, flows_dir=flows) as kit:
        assert kit.content.flows.state("optin.notice").expires_after == expires * HOUR
        _, question = await kit.say(UK, "JOIN")
        assert "optin.yes" in options_of(question)
        kit.later(hours=answered_after)
        (answer,) = await kit.say(UK, "YES")
        if granted:
            assert await kit.consent(UK) == "granted"
            assert answer["type"] == "text"  # the thanks
        else:
            assert await kit.consent(UK) == "pending"
            assert "menu.join" in options_of(answer)  # the menu, as if nothing was asked


# One pace per person ----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def sending(
    kit: TurnKit, graph: tuple[FakeGraph, str]
) -> AsyncIterator[tuple[Outbox, list[str]]]:
    """A real outbox and feed, built as `bot.app` builds them, sending to the fake at the
    kit's time; yields the outbox and the names of the limits that held a message back."""
    _, url = graph
    settings, owner = kit.settings, "this-worker"
    hits: list[str] = []
    client = GraphClient(base_url=url, phone_number_id=PHONE_NUMBER_ID, token=TOKEN)

    class Hits(NullObserver):
        def limit_hit(self, limit: str) -> None:
            hits.append(limit)

    stops = QuietRevocation(kit.db, kit.people, settings.BOT_POLICY_VERSION)
    outbox: Outbox = build_outbox(
        settings, kit.db, kit.keyring, client, make_limits(None), owner, kit.content.templates,
        stops, kit.clock,  # frozen while the test looks: a held message stays held
        observer=Hits(),
    )  # fmt: skip
    feed = OutboxFeed(
        kit.db, kit.people, outbox, kit.keys.outbox, owner,
        lone_worker=True, poll=0.02, clock=kit.clock,
    )  # fmt: skip
    await outbox.start([])
    await feed.start()
    try:
        yield outbox, hits
    finally:
        await feed.stop()
        await outbox.stop(grace=1.0)
        await client.aclose()


async def business_send(kit: TurnKit, who: str) -> None:
    """A message the business starts: a utility template, picked up by the feed."""
    send = TemplateSend(who, "order_update", "utility", ORDER)
    await queue_template(kit.db, kit.people, kit.content.templates, send, tier=None, now=kit.now)


@pytest.mark.parametrize("first", ["reply", "business"])
async def test_a_persons_business_send_and_reply_share_one_pacing_bucket(
    sqlite_template: Path, tmp_path: Path, graph: tuple[FakeGraph, str], first: str
) -> None:
    """With a burst of one per person, the second message to one person waits for the
    per-person pace, whether the turn or the business queued it."""
    fake, _ = graph
    url = fresh_sqlite(sqlite_template, tmp_path)
    async with TurnKit.open(url, BOT_RECIPIENT_BURST=1) as kit, sending(kit, graph) as (out, hits):

        async def reply() -> None:
            out.enqueue((await kit.turn(UK, webhooks.text("hi"))).items)

        if first == "reply":
            await reply()
            await fake.wait_for_sent(1, timeout=5)
            await queue_text(kit.db, kit.people, UK, "Support here.", now=kit.now)
        else:
            await business_send(kit, UK)  # someone new: the template makes them known
            await fake.wait_for_sent(1, timeout=5)
            await reply()

        async def held() -> list[str]:
            return hits

        assert await eventually(held, timeout=5) == ["recipient"]
        assert len(fake.sent) == 1 and out.depth == 1  # the second one waits its turn
        assert fake.sent[0].body["type"] == ("interactive" if first == "reply" else "template")


async def test_two_people_are_not_held_back_by_each_other(
    sqlite_template: Path, tmp_path: Path, graph: tuple[FakeGraph, str]
) -> None:
    fake, _ = graph
    url = fresh_sqlite(sqlite_template, tmp_path)
    async with TurnKit.open(url, BOT_RECIPIENT_BURST=1) as kit, sending(kit, graph) as (out, hits):
        await business_send(kit, GERMANY)
        out.enqueue((await kit.turn(UK, webhooks.text("hi"))).items)
        sent = await fake.wait_for_sent(2, timeout=5)
        assert {m.to for m in sent} == {UK[1:], GERMANY[1:]}
        assert hits == []


# The flows end to end, as the webhook path runs them --------------------------------------


async def test_opt_in_yes_records_consent_with_its_evidence(kit: TurnKit) -> None:
    notice, question = await kit.say(UK, "JOIN")
    assert "Before you join" in text_of(notice) and "GDPR" in text_of(notice)
    assert set(options_of(question)) == {"optin.yes", "optin.no"}
    assert await kit.consent(UK) == "pending"
    kit.later(60)
    (thanks,) = await kit.tap(UK, "optin.yes", "Yes")
    assert thanks["type"] == "text" and thanks["to"] == UK[1:]
    assert await kit.consent(UK) == "granted"
    events = await kit.sql(
        "SELECT status, method, jurisdiction, locale, message_ref FROM consent_events ORDER BY at"
    )
    ref = kit.keyring.blind_index(Index.WAMID, kit.wamid)
    assert [tuple(e) for e in events] == [
        ("pending", "whatsapp_double_opt_in", "gdpr", "en", None),
        ("granted", "whatsapp_double_opt_in", "gdpr", "en", ref),
    ]
    # Every message went through the inbox and was finished there by its turn.
    assert await kit.sql("SELECT state, payload IS NULL FROM inbox") == [("done", 1)] * 2


async def test_opt_in_no_records_no_consent(kit: TurnKit) -> None:
    await kit.say(UK, "JOIN")
    (declined,) = await kit.tap(UK, "optin.no")
    assert "JOIN" in text_of(declined)
    assert await kit.consent(UK) == "declined"  # recorded as a no, never left pending


async def test_no_consent_without_a_notice(kit: TurnKit) -> None:
    await kit.say(UK, "YES")
    await kit.tap(UK, "optin.yes")
    assert await kit.consent(UK) is None


async def test_stop_revokes_and_is_confirmed_once(kit: TurnKit) -> None:
    await kit.say(GERMANY, "JOIN")
    await kit.say(GERMANY, "ja")
    assert await kit.consent(GERMANY) == "granted"
    (confirmation,) = await kit.say(GERMANY, "stopp")
    assert confirmation["type"] == "text" and "START" in text_of(confirmation)
    assert await kit.consent(GERMANY) == "revoked"
    methods = await kit.sql("SELECT method FROM consent_events WHERE status='revoked'")
    assert methods == [("whatsapp_stop",)]
    (again,) = await kit.say(GERMANY, "STOP")  # a second STOP: confirmed once more, no error
    assert again["type"] == "text"
    assert await kit.consent(GERMANY) == "revoked"


async def test_my_data_summary(kit: TurnKit) -> None:
    await kit.say(UK, "JOIN")
    await kit.tap(UK, "optin.yes")
    summary, menu = await kit.tap(UK, "menu.my_data")
    text = text_of(summary)
    assert "+44•••" in text and UK not in text  # the number masked
    assert "the GDPR" in text and "given" in text and "double opt-in" in text
    assert set(options_of(menu)) == {"my_data.export", "my_data.erase", "menu.back"}
    audit = await kit.sql("SELECT count(*) FROM audit WHERE event='data_access'")
    assert audit == [(1,)]


async def test_erasure_leaves_no_contact_row(kit: TurnKit) -> None:
    await kit.say(UK, "JOIN")
    await kit.tap(UK, "optin.yes")
    (explain,) = await kit.say(UK, "DELETE MY DATA")
    assert "cannot be undone" in text_of(explain)
    (farewell,) = await kit.tap(UK, "erase.yes")
    assert "erased" in text_of(farewell)
    for table in ["contacts", "consents", "consent_events", "inbox"]:
        assert await kit.sql(f"SELECT count(*) FROM {table}") == [(0,)], table
    # Only the farewell is left, queued under the bot's own key and no longer anyone's.
    assert await kit.sql("SELECT contact_id, status FROM messages") == [(None, "queued")]
    phone = kit.keyring.blind_index(Index.PHONE, UK)
    assert await kit.sql("SELECT phone_index FROM suppressions") == [(phone,)]

    (menu,) = await kit.say(UK, "hello")  # unknown again: a new person at the start
    assert "menu.join" in options_of(menu)
    assert await kit.sql("SELECT count(*) FROM contacts") == [(1,)]
