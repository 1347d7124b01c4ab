"""What the bot answers is what it does: safe confirmations, cancelling a question,
a no that withdraws, a STOP that says what stops, a handoff with a way back.

Each test reproduces something a person could do by accident or be told wrongly,
in every shipped language where it is about words (the words come from
flows/keywords.yaml, so a word added there is tested too).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.conversation.flowfile import load_keywords
from bot.policy.business import SendRefused, TemplateSend, queue_template
from tests.conftest import fresh_sqlite
from tests.flowkit import UK, options_of, text_of
from tests.turnkit import ROOT, TurnKit

KEYWORDS, _ = load_keywords(ROOT / "flows" / "keywords.yaml")
LANGUAGES = ["en", "de", "fr", "es", "pt"]
YES_WORDS = sorted({w for words in KEYWORDS["yes"].values() for w in words})
CANCEL_WORDS = sorted({w for words in KEYWORDS["cancel"].values() for w in words})
ERASE_WORD = {lang: KEYWORDS["erase"][lang][-1] for lang in LANGUAGES}  # DELETE, LÖSCHEN …
# Someone who has not chosen a language is answered in the language of their words
# (JA: German), so replies to a word are looked for in every language.
START_WORDS = sorted({w for words in KEYWORDS["start"].values() for w in words})
STOP_WORDS = sorted({w for words in KEYWORDS["stop"].values() for w in words})
ERASE_WORDS = sorted({w for words in KEYWORDS["erase"].values() for w in words})
MARKETING_WORD = {"en": "marketing", "de": "Werbe", "fr": "promotionnel", "es": "promocional",
                  "pt": "marketing"}  # fmt: skip
PROMO = {"name": "Ann", "offer": "10% off", "until": "Friday"}


@pytest.fixture
async def kit(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[TurnKit]:
    async with TurnKit.open(fresh_sqlite(sqlite_template, tmp_path)) as opened:
        yield opened


async def known(kit: TurnKit) -> bool:
    return bool(await kit.sql("SELECT id FROM contacts"))


# 1. An irreversible step needs an unmistakable yes -----------------------------------------


@pytest.mark.parametrize("word", YES_WORDS)
async def test_a_generic_yes_never_erases(kit: TurnKit, word: str) -> None:
    await kit.say(UK, "DELETE MY DATA")
    (again,) = await kit.say(UK, word)
    assert await known(kit), f"{word!r} erased the person"
    assert set(options_of(again)) == {"erase.yes", "erase.no"}  # asked again, with the buttons
    assert any(w in text_of(again) for w in ERASE_WORDS)  # and told what confirms it


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_the_erase_word_typed_again_confirms(kit: TurnKit, lang: str) -> None:
    await kit.speaking(UK, lang)
    await kit.say(UK, ERASE_WORD[lang])
    (farewell,) = await kit.say(UK, ERASE_WORD[lang])
    assert not await known(kit)
    assert farewell["type"] == "text"


# 2. CANCEL at an open question cancels the question -----------------------------------------


@pytest.mark.parametrize("word", CANCEL_WORDS)
async def test_cancel_at_the_erase_question_keeps_everything(kit: TurnKit, word: str) -> None:
    await kit.say(UK, "JOIN")
    await kit.say(UK, "YES")
    await kit.say(UK, "DELETE MY DATA")
    (kept,) = await kit.say(UK, word)
    assert await known(kit)
    assert await kit.consent(UK) == "granted", "cancelling a question withdrew consent"
    assert await kit.sql("SELECT * FROM suppressions") == []
    texts = kit.content.texts
    assert text_of(kept) in {texts.get(lang, "gdpr", "erase.kept") for lang in LANGUAGES}


@pytest.mark.parametrize("word", CANCEL_WORDS)
async def test_cancel_at_the_opt_in_question_changes_nothing(kit: TurnKit, word: str) -> None:
    await kit.say(UK, "JOIN")
    await kit.say(UK, "YES")
    await kit.say(UK, "JOIN")  # asked again
    (cancelled,) = await kit.say(UK, word)
    assert await kit.consent(UK) == "granted"
    assert any(w in text_of(cancelled) for w in STOP_WORDS)  # says how to stop everything


@pytest.mark.parametrize("word", CANCEL_WORDS)
async def test_cancel_with_no_question_open_opts_out(kit: TurnKit, word: str) -> None:
    await kit.say(UK, "JOIN")
    await kit.say(UK, "YES")
    await kit.say(UK, "hello")  # at the menu: nothing is asked
    await kit.say(UK, word)
    assert await kit.consent(UK) == "revoked"
    assert len(await kit.sql("SELECT * FROM suppressions")) == 1


# 3. No to the notice after an earlier yes ----------------------------------------------------


@pytest.mark.parametrize("answer", ["tap", "type"])
async def test_no_after_an_earlier_yes_withdraws_and_says_so(kit: TurnKit, answer: str) -> None:
    await kit.say(UK, "JOIN")
    await kit.say(UK, "YES")
    assert await kit.consent(UK) == "granted"
    await kit.say(UK, "JOIN")
    (reply,) = await (kit.tap(UK, "optin.no") if answer == "tap" else kit.say(UK, "NO"))
    assert await kit.consent(UK) == "declined"
    assert "withdrawn" in text_of(reply) and "nothing changes" not in text_of(reply)
    send = TemplateSend(UK, "promo_offer", "marketing", PROMO)
    with pytest.raises(SendRefused, match="no_consent"):
        await queue_template(
            kit.db, kit.people, kit.content.templates, send, tier=None, now=kit.now
        )
    events = await kit.sql("SELECT event FROM audit WHERE event LIKE 'consent_%' ORDER BY id")
    assert [e[0] for e in events] == ["consent_granted", "consent_revoked"]


# 7. The STOP reply says what stops ------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_the_stop_reply_says_every_business_message_stops(kit: TurnKit, lang: str) -> None:
    await kit.speaking(UK, lang)
    (reply,) = await kit.say(UK, KEYWORDS["stop"][lang][0])
    text = text_of(reply)
    assert MARKETING_WORD[lang] not in text, "STOP stops more than marketing"
    start_words = KEYWORDS["start"][lang]
    assert any(w in text for w in start_words), "says how to come back"


# 8. A handoff has a way back --------------------------------------------------------------


@pytest.mark.parametrize("how", ["MENU", "HELP", "tap Menu"])
async def test_menu_ends_a_wait_for_staff(kit: TurnKit, how: str) -> None:
    (waiting,) = await kit.say(UK, "AGENT")
    assert "menu.back" in options_of(waiting)  # the way back is offered at once
    (menu,) = await (kit.tap(UK, "menu.back") if how == "tap Menu" else kit.say(UK, how))
    assert "menu.join" in options_of(menu), "the person got silence"
    assert await kit.sql("SELECT handoff_at FROM contacts") == [(None,)]
    ended = await kit.sql("SELECT outcome FROM audit WHERE event = 'handoff_ended'")
    assert ended == [("person_left",)]
    (answer,) = await kit.say(UK, "hello")  # the assistant answers again
    assert "menu.join" in options_of(answer)


async def test_after_a_flow_during_a_wait_the_person_is_told_they_still_wait(
    kit: TurnKit,
) -> None:
    await kit.say(UK, "AGENT")
    await kit.say(UK, "STOP")
    await kit.say(UK, "START")
    replies = await kit.tap(UK, "optin.no")
    assert len(replies) == 2
    assert "still waiting" in text_of(replies[1])
    assert "menu.back" in options_of(replies[1])
    assert await kit.say(UK, "hello") == []  # still handed off: staff answer now


# 4. STOP as people type it ---------------------------------------------------------------

FILLER = {lang: KEYWORDS["filler"][lang][0] for lang in LANGUAGES}  # PLEASE, BITTE …
TYPED_STOPS = sorted(
    {
        variant
        for lang in LANGUAGES
        for word in KEYWORDS["stop"][lang]
        for variant in (
            f"{word.capitalize()}!!", f"{word.lower()}.", f"  {word} 🙏",
            f"{FILLER[lang].lower()} {word.lower()}", f"{word} {FILLER[lang]}!",
        )
    }
)  # fmt: skip


@pytest.mark.parametrize("typed", TYPED_STOPS)
@pytest.mark.parametrize("waiting_for_staff", [False, True])
async def test_stop_as_people_type_it_stops(
    kit: TurnKit, typed: str, waiting_for_staff: bool
) -> None:
    if waiting_for_staff:
        await kit.say(UK, "AGENT")
    else:
        await kit.say(UK, "hello")
    (confirmed, *_) = await kit.say(UK, typed)
    assert len(await kit.sql("SELECT * FROM suppressions")) == 1, f"{typed!r} did not stop"
    assert any(w in text_of(confirmed) for w in START_WORDS)  # says how to come back


async def test_a_sentence_that_only_contains_stop_is_not_taken_for_it(kit: TurnKit) -> None:
    await kit.say(UK, "hello")
    await kit.say(UK, "don't stop the offers, I like them")
    assert await kit.sql("SELECT * FROM suppressions") == []


async def test_a_late_no_still_withdraws(kit: TurnKit) -> None:
    """A yes after the notice lapsed never counts; a no always does."""
    await kit.say(UK, "JOIN")
    await kit.say(UK, "YES")
    await kit.say(UK, "JOIN")
    kit.later(hours=25)  # the notice's question lapsed
    (reply,) = await kit.tap(UK, "optin.no")
    assert await kit.consent(UK) == "declined"
    assert "withdrawn" in text_of(reply)
