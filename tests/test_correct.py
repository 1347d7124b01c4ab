"""The right to correction in chat: what a person can correct themselves, and what they ask for.

The language and where they live are corrected at once (the next reply is in the new
language, their law changes); the name follows their WhatsApp profile; anything else
is typed, kept sealed as one of their messages (in their export, erased with them),
and audited without its text. CANCEL leaves the question and STOP opts out, as at
every open question.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.conversation.flowfile import load_keywords
from bot.crypto import open_sealed
from bot.operator import erase_person, export_person
from tests.conftest import fresh_sqlite
from tests.flowkit import UK, options_of, text_of
from tests.turnkit import ROOT, TurnKit

KEYWORDS, _ = load_keywords(ROOT / "flows" / "keywords.yaml")
LANGUAGES = ["en", "de", "fr", "es", "pt"]
CORRECT_WORDS = sorted({w for lang in LANGUAGES for w in KEYWORDS["correct"][lang]})
CANCEL_WORDS = sorted({w for words in KEYWORDS["cancel"].values() for w in words})
WHAT_IS_WRONG = {"correct.language", "correct.residence", "correct.name", "correct.other"}
# What a person types as their correction: personal, and found nowhere in clear.
CORRECTION = "My birthday is 14 March 1987, not 1978 (ref 55213)"


@pytest.fixture
async def kit(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[TurnKit]:
    async with TurnKit.open(fresh_sqlite(sqlite_template, tmp_path)) as opened:
        yield opened


async def audit_of(kit: TurnKit, event: str) -> list[tuple[str, str]]:
    """(actor, detail) of each audit entry of `event`."""
    rows = await kit.sql("SELECT actor, detail FROM audit WHERE event = :e", e=event)
    return [(actor, detail) for actor, detail in rows]


async def pseudonym(kit: TurnKit) -> str:
    person = await kit.people.find(e164=UK)
    assert person is not None
    return person.pseudonym


async def recorded(kit: TurnKit) -> list[Any]:
    return await kit.sql("SELECT id, category, body FROM messages WHERE kind = 'correction'")


async def typed_correction(kit: TurnKit, text: str = CORRECTION) -> dict[str, Any]:
    await kit.say(UK, "CORRECT MY DATA")
    (question,) = await kit.tap(UK, "correct.other")
    assert options_of(question) == {}, "the person types their answer"
    (reply,) = await kit.say(UK, text)
    return reply


async def open_question(kit: TurnKit, at: str) -> None:
    """Leave the person at the list of what is wrong, or at typing it."""
    (question,) = await kit.say(UK, "CORRECT MY DATA")
    assert set(options_of(question)) == WHAT_IS_WRONG
    if at == "typing":
        (question,) = await kit.tap(UK, "correct.other")
        assert "CANCEL" in text_of(question)


def raw_database(kit: TurnKit) -> bytes:
    """The SQLite file as a backup would copy it, with its write-ahead log."""
    path = Path(kit.settings.DATABASE_URL.split("///", 1)[1])
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


# Starting it ---------------------------------------------------------------------------------


@pytest.mark.parametrize("word", CORRECT_WORDS)
async def test_the_correct_words_ask_what_is_wrong(kit: TurnKit, word: str) -> None:
    await kit.say(UK, "hello")
    (question,) = await kit.say(UK, word)
    assert set(options_of(question)) == WHAT_IS_WRONG, f"{word!r} did not start the correction"


async def test_the_menu_offers_the_correction(kit: TurnKit) -> None:
    (menu,) = await kit.say(UK, "hello")
    assert "menu.correct" in options_of(menu)
    (question,) = await kit.tap(UK, "menu.correct")
    assert set(options_of(question)) == WHAT_IS_WRONG


@pytest.mark.parametrize("word", ["correct", "Correct!", "correcto", "richtig"])
async def test_an_agreeing_correct_does_not_start_a_correction(kit: TurnKit, word: str) -> None:
    """People type CORRECT to mean yes; it never opens the correction question."""
    await kit.say(UK, "hello")
    (reply,) = await kit.say(UK, word)
    assert not set(options_of(reply)) & WHAT_IS_WRONG


# Corrected at once ----------------------------------------------------------------------------


async def test_a_corrected_language_is_used_from_the_next_reply(kit: TurnKit) -> None:
    await kit.say(UK, "CORRECT MY DATA")
    (languages,) = await kit.tap(UK, "correct.language")
    assert "language.de" in options_of(languages)
    (done,) = await kit.tap(UK, "language.de")
    assert "Deutsch" in text_of(done)
    (menu,) = await kit.say(UK, "hello")
    assert text_of(menu).startswith("Hallo!")
    ((actor, detail),) = await audit_of(kit, "data_corrected")
    assert actor == await pseudonym(kit)
    assert json.loads(detail) == {"field": "language", "via": "chat"}  # never the language


async def test_a_corrected_residence_changes_the_law(kit: TurnKit) -> None:
    notice, _ = await kit.say(UK, "JOIN")
    assert "GDPR" in text_of(notice)
    await kit.say(UK, "CORRECT MY DATA")
    await kit.tap(UK, "correct.residence")
    (done,) = await kit.tap(UK, "residence.US-CA")
    assert "CCPA/CPRA" in text_of(done)
    notice, _ = await kit.say(UK, "JOIN")
    assert "CCPA/CPRA" in text_of(notice) and "GDPR" not in text_of(notice)
    ((actor, detail),) = await audit_of(kit, "data_corrected")
    assert actor == await pseudonym(kit)
    assert json.loads(detail) == {"field": "residence", "via": "chat"}  # never the place


# The name -------------------------------------------------------------------------------------


async def test_the_name_is_explained_as_the_whatsapp_profile_name(kit: TurnKit) -> None:
    await kit.say(UK, "CORRECT MY DATA")
    (answer,) = await kit.tap(UK, "correct.name")
    assert "WhatsApp profile" in text_of(answer) and "next message" in text_of(answer)
    assert await recorded(kit) == []


async def test_a_name_changed_in_whatsapp_is_held_from_the_next_message(kit: TurnKit) -> None:
    await kit.say(UK, "hello", name="Alice Liddel")
    await kit.say(UK, "hello", name="Alice Liddell")
    doc = await export_person(kit.settings, UK)
    assert doc["contact"]["profile_name"] == "Alice Liddell"
    assert b"Alice Liddell" not in raw_database(kit)  # sealed like before


# Something else: typed ------------------------------------------------------------------------


async def test_a_typed_correction_is_recorded_and_the_answer_is_honest(kit: TurnKit) -> None:
    reply = await typed_correction(kit)
    text = text_of(reply)
    assert "privacy team" in text and kit.settings.BOT_DPO_CONTACT in text
    for promise in ("within", "days", "hours", "get back to you", "reply to you"):
        assert promise not in text, f"the answer promises {promise!r}"
    (menu,) = await kit.say(UK, "hello")  # the flow is over: back at the menu
    assert "menu.correct" in options_of(menu)


async def test_a_typed_correction_is_stored_sealed_with_the_persons_key(kit: TurnKit) -> None:
    await typed_correction(kit)
    ((mid, category, body),) = await recorded(kit)
    assert category == "support"
    person = await kit.people.find(e164=UK)
    assert person is not None
    content = json.loads(open_sealed(person.dk, body, f"messages/body/{mid}"))
    assert content["text"]["body"] == CORRECTION
    assert CORRECTION.encode() not in raw_database(kit)
    assert b"55213" not in raw_database(kit)


async def test_a_typed_correction_is_in_the_export_and_gone_after_erasure(kit: TurnKit) -> None:
    await typed_correction(kit)
    doc = await export_person(kit.settings, UK)
    (kept,) = [m for m in doc["messages"] if m["kind"] == "correction"]
    assert kept["category"] == "support" and kept["content"]["text"]["body"] == CORRECTION
    await erase_person(kit.settings, UK)
    assert await recorded(kit) == []
    doc = await export_person(kit.settings, UK)
    assert doc["contact"] is None and CORRECTION not in json.dumps(doc)


async def test_a_typed_correction_is_audited_without_its_text(kit: TurnKit) -> None:
    await typed_correction(kit)
    ((actor, detail),) = await audit_of(kit, "correction_requested")
    assert actor == await pseudonym(kit)
    assert json.loads(detail) == {"field": "other", "via": "chat"}
    everything = json.dumps([list(r) for r in await kit.sql("SELECT * FROM audit")])
    assert "55213" not in everything and "birthday" not in everything


async def test_a_sentence_with_a_keyword_in_it_is_the_correction(kit: TurnKit) -> None:
    """Only the whole message is a keyword: "please stop using my old address" is text."""
    await kit.say(UK, "JOIN")
    await kit.say(UK, "YES")
    await typed_correction(kit, "please stop using my old address, I moved")
    assert len(await recorded(kit)) == 1
    assert await kit.consent(UK) == "granted"


@pytest.mark.parametrize("word", ["YES", "no"])
async def test_a_bare_yes_or_no_is_asked_again(kit: TurnKit, word: str) -> None:
    await kit.say(UK, "CORRECTION")
    (question,) = await kit.tap(UK, "correct.other")
    assert "CANCEL" in text_of(question)
    (again,) = await kit.say(UK, word)
    assert text_of(again) == text_of(question)
    assert await recorded(kit) == []


# Leaving --------------------------------------------------------------------------------------


@pytest.mark.parametrize("word", CANCEL_WORDS)
@pytest.mark.parametrize("at", ["list", "typing"])
async def test_cancel_leaves_the_correction_and_changes_nothing(
    kit: TurnKit, word: str, at: str
) -> None:
    await kit.say(UK, "JOIN")
    await kit.say(UK, "YES")
    await open_question(kit, at)
    (cancelled,) = await kit.say(UK, word)
    # Said in the word's own language when only one language has it (ABBRECHEN: German).
    said = {kit.content.texts.get(lang, "gdpr", "common.cancelled") for lang in LANGUAGES}
    assert text_of(cancelled) in said
    assert await kit.consent(UK) == "granted", "cancelling the question opted out"
    assert await recorded(kit) == [] and await audit_of(kit, "correction_requested") == []


@pytest.mark.parametrize("at", ["list", "typing"])
async def test_stop_during_the_correction_opts_out(kit: TurnKit, at: str) -> None:
    await kit.say(UK, "JOIN")
    await kit.say(UK, "YES")
    await open_question(kit, at)
    (confirmed,) = await kit.say(UK, "STOP")
    assert "START" in text_of(confirmed)
    assert await kit.consent(UK) == "revoked"
    assert len(await kit.sql("SELECT * FROM suppressions")) == 1
    assert await recorded(kit) == []


async def test_a_correction_works_while_waiting_for_staff(kit: TurnKit) -> None:
    """A right, like MY DATA and erasure: it answers during a handoff, then the wait goes on."""
    await kit.say(UK, "AGENT")
    (question,) = await kit.say(UK, "CORRECTION")
    assert set(options_of(question)) == WHAT_IS_WRONG
    await kit.tap(UK, "correct.other")
    answer, reminder = await kit.say(UK, CORRECTION)
    assert "privacy team" in text_of(answer) and "still waiting" in text_of(reminder)
    assert len(await recorded(kit)) == 1
    assert await kit.say(UK, "hello") == []  # still handed off: staff answer now
