"""The privacy conversations end to end: signed webhooks in, Graph API requests out."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bot.conversation.flowfile import load_flows
from bot.crypto import Index
from bot.simulator import webhooks
from tests.conftest import PHONE_NUMBER_ID, SQLITE_ONLY, Bot
from tests.flowkit import (
    BRAZIL,
    CALIFORNIA,
    GERMANY,
    INDIANA,
    SINGAPORE,
    UK,
    consent,
    options_of,
    say,
    tap,
    text_of,
)

FLOWS = load_flows(Path(__file__).resolve().parents[1] / "flows")
STOP_WORDS = sorted({w for words in FLOWS.keywords["stop"].values() for w in words})

# How a person reaches each state where the bot waits for them (what they type, then the
# button or row they tap, if any), and how many replies the last step takes.
RESTING: dict[str, tuple[str | tuple[str, str], int]] = {
    "menu.main": ("hello", 1),
    "optin.notice": ("JOIN", 2),
    "my_data.summary": ("MY DATA", 2),
    "erase.confirm": ("DELETE MY DATA", 1),
    "residence.ask": ("RESIDENCE", 1),
    "language.ask": ("LANGUAGE", 1),
    "agent.waiting": ("AGENT", 1),
    "correct.ask": ("CORRECT MY DATA", 1),
    "correct.other": (("CORRECT MY DATA", "correct.other"), 1),
    "stop_ask.ask": ("can you stop the offers", 1),
}


# Tests of conversation logic run on SQLite only; storage on PostgreSQL is covered
# by the opt-in, erasure and export tests below and by test_operator.


def test_every_resting_state_is_covered() -> None:
    resting = {s.name for s in FLOWS.all_states if not (s.end or s.next or s.back)}
    assert resting == set(RESTING)


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("number", "lang_marker", "law_markers"),
    [
        (UK, "Before you join", ["GDPR", "supervisory authority", "Data Protection Officer"]),
        (
            CALIFORNIA,
            "offers and news",
            ["CCPA/CPRA", "do not sell or share", "no sensitive personal information"],
        ),
        (SINGAPORE, "Before you join", ["PDPA", "privacy-sg@example.com", "correct"]),
        (GERMANY, "DSGVO", ["DSGVO", "Aufsichtsbehörde"]),
        (BRAZIL, "LGPD", ["LGPD", "ANPD"]),
        (INDIANA, "Before you join", ["Privacy policy 2026-01"]),
    ],
)
async def test_double_opt_in_per_jurisdiction(
    bot: Bot, number: str, lang_marker: str, law_markers: list[str]
) -> None:
    notice, question = await say(bot, number, "JOIN", 2)
    body = text_of(notice)
    assert lang_marker in body
    for marker in law_markers:
        assert marker in body, marker
    assert set(options_of(question)) == {"optin.yes", "optin.no"}
    assert await consent(bot) == ["pending"]

    yes = await bot.say(number, webhooks.button_reply("optin.yes", "Yes"))
    (confirmed,) = [r.body for r in await bot.replies(1)]
    assert confirmed["type"] == "text"
    await bot.idle()
    assert await consent(bot) == ["granted"]
    events = await bot.sql(
        "SELECT status, method, source, policy_version, jurisdiction, locale, asked_at, at, "
        "message_ref FROM consent_events ORDER BY at"
    )
    assert [e[0] for e in events] == ["pending", "granted"]
    granted = events[1]
    assert granted[1:4] == ("whatsapp_double_opt_in", "chat", "2026-01")
    assert granted[6] is not None and granted[7] >= granted[6]
    assert granted[8] == bot.services.keyring.blind_index(Index.WAMID, yes)


async def test_opt_in_evidence_is_stored(bot: Bot) -> None:
    """The one opt-in test on every database: consent rows and their evidence."""
    await say(bot, GERMANY, "JOIN", 2)
    yes = await bot.say(GERMANY, webhooks.button_reply("optin.yes", "Ja"))
    await bot.replies(1)
    await bot.idle()
    assert await consent(bot) == ["granted"]
    rows = await bot.sql(
        "SELECT status, jurisdiction, locale, message_ref FROM consent_events ORDER BY at"
    )
    ref = bot.services.keyring.blind_index(Index.WAMID, yes)
    assert [tuple(r) for r in rows] == [
        ("pending", "gdpr", "de", None),
        ("granted", "gdpr", "de", ref),
    ]


async def test_typed_yes_in_any_language_confirms(bot: Bot) -> None:
    await say(bot, GERMANY, "JOIN", 2)
    await say(bot, GERMANY, "ja")
    await bot.idle()
    assert await consent(bot) == ["granted"]


async def test_no_consent_without_a_notice(bot: Bot) -> None:
    """YES out of the blue, or a forged tap on the Yes button, records nothing."""
    await say(bot, UK, "YES")
    await tap(bot, UK, "optin.yes")
    await bot.idle()
    assert await consent(bot) == []


async def test_declining_records_no_consent(bot: Bot) -> None:
    await say(bot, UK, "JOIN", 2)
    (declined,) = await tap(bot, UK, "optin.no")
    assert "JOIN" in text_of(declined)
    await bot.idle()
    assert await consent(bot) == ["declined"]  # a no is recorded as a no, not left pending


async def test_referral_starts_the_opt_in_and_is_kept_as_source(bot: Bot) -> None:
    referral = {"source_url": "https://fb.me/x", "source_id": "ad-123", "source_type": "ad"}
    content = {**webhooks.text("Hi, I saw your ad"), "referral": referral}
    await bot.say(UK, content)
    _notice, question = [r.body for r in await bot.replies(2)]
    assert "optin.yes" in options_of(question)
    await tap(bot, UK, "optin.yes")
    await bot.idle()
    sources = await bot.sql("SELECT source FROM consent_events WHERE status='granted'")
    assert sources == [("referral:ad-123",)]


async def test_opt_in_question_expires_after_24_hours(bot: Bot) -> None:
    await say(bot, UK, "JOIN", 2)
    bot.clock.advance(25 * 3600)
    (menu,) = await say(bot, UK, "YES")
    assert "menu.my_data" in options_of(menu)
    await bot.idle()
    assert await consent(bot) == ["pending"]


async def test_unknown_input_gets_a_short_reprompt_with_the_options(bot: Bot) -> None:
    await say(bot, UK, "JOIN", 2)
    (again,) = await say(bot, UK, "what is this?")
    assert text_of(again).startswith("Sorry")
    assert len(text_of(again)) < 120
    assert set(options_of(again)) == {"optin.yes", "optin.no"}


@SQLITE_ONLY
@pytest.mark.parametrize("state", sorted(RESTING))
async def test_stop_in_every_state_revokes_and_confirms(bot: Bot, state: str) -> None:
    await say(bot, UK, "JOIN", 2)
    await tap(bot, UK, "optin.yes")
    words, replies = RESTING[state]
    if isinstance(words, tuple):
        words, row = words
        await say(bot, UK, words)
        await tap(bot, UK, row, replies)
    else:
        await say(bot, UK, words, replies)
    (confirmation,) = await say(bot, UK, "stop")
    assert "START" in text_of(confirmation)
    await bot.idle()
    assert await consent(bot) == ["revoked"]
    methods = await bot.sql("SELECT method FROM consent_events WHERE status='revoked'")
    assert methods == [("whatsapp_stop",)]


@SQLITE_ONLY
@pytest.mark.parametrize("word", STOP_WORDS)
async def test_every_stop_word_works(bot: Bot, word: str) -> None:
    await say(bot, GERMANY, "JOIN", 2)
    await tap(bot, GERMANY, "optin.yes")
    (confirmation,) = await say(bot, GERMANY, f"  {word.lower()} ")
    assert confirmation["type"] == "text"
    await bot.idle()
    assert await consent(bot) == ["revoked"]


async def test_start_leads_back_through_the_notice(bot: Bot) -> None:
    await say(bot, UK, "JOIN", 2)
    await tap(bot, UK, "optin.yes")
    await say(bot, UK, "STOP")
    _notice, question = await say(bot, UK, "START", 2)
    assert "optin.yes" in options_of(question)
    await bot.idle()
    assert await consent(bot) == ["pending"]  # asked again, not silently re-consented
    await tap(bot, UK, "optin.yes")
    await bot.idle()
    assert await consent(bot) == ["granted"]


async def test_marketing_stop_from_whatsapp_settings_revokes_silently(bot: Bot) -> None:
    await say(bot, UK, "JOIN", 2)
    await tap(bot, UK, "optin.yes")
    body = webhooks.envelope(PHONE_NUMBER_ID, {})
    change = body["entry"][0]["changes"][0]
    change["field"] = "user_preferences"
    change["value"]["user_preferences"] = [
        {"wa_id": UK[1:], "detail": "User requested to stop marketing messages",
         "category": "marketing_messages", "value": "stop", "timestamp": int(time.time())}
    ]  # fmt: skip
    change["value"]["contacts"] = [{"wa_id": UK[1:], "profile": {"name": "A"}}]
    assert (await bot.post(body)).status_code == 200
    await bot.idle()
    assert await consent(bot) == ["revoked"]
    assert len(bot.fake.sent) == 3  # the notice, its question and the thanks; nothing for this


async def test_error_131050_revokes_marketing_consent(bot: Bot) -> None:
    await say(bot, UK, "JOIN", 2)
    await tap(bot, UK, "optin.yes")
    bot.fake.fail_next(131050)
    await bot.say(UK, "hello")
    await bot.idle()
    assert await consent(bot) == ["revoked"]


async def test_my_data_summary_and_export(bot: Bot) -> None:
    await say(bot, UK, "JOIN", 2)
    await tap(bot, UK, "optin.yes")
    summary, menu = await say(bot, UK, "MY DATA", 2)
    text = text_of(summary)
    assert "+44•••" in text and UK not in text  # masked
    assert "the GDPR" in text and "given" in text and "double opt-in" in text
    assert set(options_of(menu)) == {"my_data.export", "my_data.erase", "menu.back"}

    (document,) = await tap(bot, UK, "my_data.export")
    assert document["type"] == "document"
    media_id = document["document"]["id"]
    content, mime, filename = bot.fake.media[media_id]
    assert (mime, filename) == ("application/json", "my-data.json")
    doc = json.loads(content)
    assert doc["contact"]["phone"] == UK
    assert doc["contact"]["jurisdiction"]["law"] == "gdpr"
    (marketing,) = doc["consents"]
    assert marketing["purpose"] == "marketing" and marketing["status"] == "granted"
    assert [h["status"] for h in marketing["history"]] == ["pending", "granted"]
    assert any(m["direction"] == "in" for m in doc["messages"])
    events = {a["event"] for a in doc["audit"]}
    assert {"message_received", "consent_granted", "data_access"} <= events


async def test_erasure_leaves_only_suppression_and_pseudonymous_audit(bot: Bot) -> None:
    await say(bot, UK, "JOIN", 2)
    await tap(bot, UK, "optin.yes")
    (explain,) = await say(bot, UK, "DELETE MY DATA")
    assert "cannot be undone" in text_of(explain)
    (farewell,) = await say(bot, UK, "DELETE")  # the erase word again: never a bare yes
    assert "erased" in text_of(farewell)
    await bot.idle()
    kr = bot.services.keyring
    for table in ["contacts", "consents", "consent_events", "messages", "inbox"]:
        assert await bot.sql(f"SELECT count(*) FROM {table}") == [(0,)], table
    keys = await bot.keys_sql("SELECT id FROM data_keys")
    assert {k[0] for k in keys} == {"system-inbox", "system-outbox"}
    assert await bot.sql("SELECT phone_index FROM suppressions") == [
        (kr.blind_index(Index.PHONE, UK),)
    ]
    actors = {a[0] for a in await bot.sql("SELECT DISTINCT actor FROM audit")}
    assert len(actors) == 1 and UK not in next(iter(actors))
    events = [e[0] for e in await bot.sql("SELECT event FROM audit ORDER BY id")]
    assert events[-2:] == ["data_deletion", "message_sent"]  # the farewell went after

    # Afterwards the person is unknown: a new message starts from scratch.
    (menu,) = await say(bot, UK, "hello")
    assert "menu.join" in options_of(menu)
    await bot.idle()
    assert await consent(bot) == []


async def test_erasure_can_be_cancelled(bot: Bot) -> None:
    await say(bot, UK, "DELETE MY DATA")
    await tap(bot, UK, "erase.no")
    await bot.idle()
    assert await bot.sql("SELECT count(*) FROM contacts") == [(1,)]


async def test_stated_residence_overrides_the_number(bot: Bot) -> None:
    (ask,) = await say(bot, CALIFORNIA, "RESIDENCE")
    assert "residence.DE" in options_of(ask)
    (done,) = await tap(bot, CALIFORNIA, "residence.DE")
    assert "GDPR" in text_of(done)
    notice, _question = await say(bot, CALIFORNIA, "JOIN", 2)
    assert "GDPR" in text_of(notice) and "CCPA" not in text_of(notice)


async def test_residence_can_be_typed(bot: Bot) -> None:
    await say(bot, UK, "RESIDENCE")
    (done,) = await say(bot, UK, "I live in California")
    assert "CCPA" in text_of(done)
    notice, _question = await say(bot, UK, "JOIN", 2)
    assert "Notice at collection (CCPA/CPRA)" in text_of(notice)


async def test_residence_not_understood_asks_again(bot: Bot) -> None:
    await say(bot, UK, "RESIDENCE")
    (sorry, again) = await say(bot, UK, "somewhere nice", 2)
    assert "didn't understand" in text_of(sorry)
    assert "residence.DE" in options_of(again)


async def test_language_choice_sticks(bot: Bot) -> None:
    (ask,) = await say(bot, UK, "LANGUAGE")
    assert {"language.de", "language.pt"} <= set(options_of(ask))
    (done,) = await tap(bot, UK, "language.de")
    assert "Deutsch" in text_of(done)
    (menu,) = await say(bot, UK, "hallo")
    assert "Datenschutz" in text_of(menu)


async def test_handoff_keeps_the_bot_quiet_but_for_privacy_words(bot: Bot) -> None:
    (waiting,) = await say(bot, UK, "AGENT")
    assert "STOP" in text_of(waiting)
    await bot.say(UK, "hello, anyone there?")
    await bot.idle()
    assert len(bot.fake.sent) == 1
    await say(bot, UK, "MY DATA", 2)
    assert (await bot.sql("SELECT count(*) FROM contacts WHERE handoff_at IS NOT NULL")) == [(1,)]
    # Answering a privacy word does not end the handoff: the bot is quiet again.
    await bot.say(UK, "still there?")
    await bot.idle()
    assert len(bot.fake.sent) == 3
    stopped, reminder = await say(bot, UK, "STOP", 2)
    assert "START" in text_of(stopped)
    assert "still waiting" in text_of(reminder)  # and MENU is the way back (its own test)
    await bot.say(UK, "hello again")
    await bot.idle()
    assert len(bot.fake.sent) == 5


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("number", "menu_word", "notice_word", "stop_word"),
    [
        (UK, "privacy assistant", "GDPR", "START"),
        (GERMANY, "Datenschutz", "DSGVO", "START"),
        ("+33612345678", "confidentialité", "RGPD", "DÉMARRER"),
        ("+34612345678", "privacidad", "RGPD", "ALTA"),
        (BRAZIL, "privacidade", "LGPD", "VOLTAR"),
    ],
    ids=["en", "de", "fr", "es", "pt"],
)
async def test_each_language_through_menu_notice_and_stop(
    bot: Bot, number: str, menu_word: str, notice_word: str, stop_word: str
) -> None:
    """The number's region picks the language; every text of the path is in it."""
    (menu,) = await say(bot, number, "hello")
    assert menu_word in text_of(menu)
    notice, question = await say(bot, number, "JOIN", 2)
    assert notice_word in text_of(notice)
    assert len(options_of(question)) == 2
    (stopped,) = await say(bot, number, "STOP")
    assert stop_word in text_of(stopped)
