"""People type rather than tap: the bot understands what they mean, and never guesses
where a guess would act for them.

1. A longer message that mentions an opt-out word gets a one-tap question (yes does what
   STOP does, no changes nothing); a message that is exactly the word still stops at once.
2. The title of a button or menu row, typed, does what tapping it does; an irreversible
   step is confirmed only by its own button's title, typed at its question.
3. A near-miss ("delet my data", "stpo") gets a suggestion with the options, and nothing
   else happens.
4. A place the bot does not know is answered with "I didn't understand", then the list.
5. Someone who has not chosen a language is answered in the language of their words.

The words are the privacy team's (flows/keywords.yaml) and the texts come from locales/,
so the tests follow a change of wording; every word-related rule runs in each language.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.conversation.flowfile import load_keywords
from tests.conftest import fresh_sqlite
from tests.flowkit import BRAZIL, GERMANY, UK, options_of, text_of
from tests.turnkit import ROOT, TurnKit

KEYWORDS, _ = load_keywords(ROOT / "flows" / "keywords.yaml")
LANGUAGES = ["en", "de", "fr", "es", "pt"]
QUESTION = {"stop_ask.yes", "stop_ask.no"}  # the buttons of "Stop all messages from us?"


@pytest.fixture
async def kit(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[TurnKit]:
    async with TurnKit.open(fresh_sqlite(sqlite_template, tmp_path)) as opened:
        yield opened


@pytest.fixture
async def limited(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[TurnKit]:
    """A bot that answers one message a minute: anything more is held back."""
    url = fresh_sqlite(sqlite_template, tmp_path)
    async with TurnKit.open(url, BOT_INBOUND_BURST=1, BOT_INBOUND_PER_MINUTE=1) as opened:
        yield opened


def text(kit: TurnKit, lang: str, message_id: str, **params: Any) -> str:
    """A text as the bot writes it in `lang` (UK numbers are under the GDPR)."""
    return kit.conversation.renderer.text(lang, "gdpr", message_id, lives_in="GB", **params)


async def opted_in(kit: TurnKit, lang: str) -> None:
    await kit.speaking(UK, lang)
    await kit.say(UK, "JOIN")
    await kit.tap(UK, "optin.yes")
    assert await kit.consent(UK) == "granted"


async def known(kit: TurnKit) -> bool:
    return bool(await kit.sql("SELECT id FROM contacts"))


async def stopped(kit: TurnKit) -> bool:
    return bool(await kit.sql("SELECT * FROM suppressions"))


# 1. A sentence that mentions an opt-out word: a one-tap question -----------------------------

MENTIONS = {
    "en": "Can you stop sending me these offers?",
    "de": "bitte keine Nachrichten mehr, stopp",
    "fr": "Arrêt de tous ces messages, j'en reçois trop",
    "es": "quiero darme de baja de estos mensajes",
    "pt": "quero parar de receber essas mensagens",
}


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_a_sentence_with_an_opt_out_word_asks_and_yes_stops(kit: TurnKit, lang: str) -> None:
    await opted_in(kit, lang)
    (question,) = await kit.say(UK, MENTIONS[lang])
    assert set(options_of(question)) == QUESTION, "no one-tap question"
    assert text_of(question) == text(kit, lang, "stop_ask.question")
    assert options_of(question)["stop_ask.yes"] == text(kit, lang, "stop_ask.yes")
    assert await kit.consent(UK) == "granted" and not await stopped(kit), "acted on a guess"
    (confirmed,) = await kit.tap(UK, "stop_ask.yes")
    assert text_of(confirmed) == text(kit, lang, "stop.confirmed")  # exactly what STOP says
    assert await kit.consent(UK) == "revoked"
    assert await stopped(kit)


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_no_to_the_question_changes_nothing_and_says_so(kit: TurnKit, lang: str) -> None:
    await opted_in(kit, lang)
    await kit.say(UK, MENTIONS[lang])
    (kept,) = await kit.say(UK, KEYWORDS["no"][lang][0])
    assert text_of(kept) == text(kit, lang, "stop_ask.kept")
    assert await kit.consent(UK) == "granted"
    assert not await stopped(kit)


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_a_typed_yes_to_the_question_stops(kit: TurnKit, lang: str) -> None:
    await opted_in(kit, lang)
    await kit.say(UK, MENTIONS[lang].lower())
    await kit.say(UK, KEYWORDS["yes"][lang][0])
    assert await kit.consent(UK) == "revoked"


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_exactly_an_opt_out_word_still_stops_at_once(kit: TurnKit, lang: str) -> None:
    await opted_in(kit, lang)
    (confirmed,) = await kit.say(UK, f"{KEYWORDS['stop'][lang][0].lower()}!")
    assert text_of(confirmed) == text(kit, lang, "stop.confirmed")
    assert await kit.consent(UK) == "revoked"


@pytest.mark.parametrize(
    "ordinary", ["El precio es muy alto", "Vou sair agora, falo depois", "I'll stopover in Paris"]
)
async def test_ordinary_words_that_are_opt_out_words_alone_ask_nothing(
    kit: TurnKit, ordinary: str
) -> None:
    """ALTO ("tall") and SAIR ("to go out") stop only on their own, never inside a sentence."""
    await kit.say(UK, "hello")
    (reply,) = await kit.say(UK, ordinary)
    assert not set(options_of(reply)) & QUESTION
    assert not await stopped(kit)


async def test_yes_to_the_question_stops_even_after_it_lapsed(kit: TurnKit) -> None:
    """A stop always counts, like the opt-in's no: only a yes to marketing can be late."""
    await opted_in(kit, "en")
    await kit.say(UK, MENTIONS["en"])
    kit.later(hours=25)
    await kit.tap(UK, "stop_ask.yes")
    assert await kit.consent(UK) == "revoked"


async def test_the_question_works_during_a_wait_for_staff(kit: TurnKit) -> None:
    await kit.say(UK, "AGENT")
    (question,) = await kit.say(UK, MENTIONS["en"])
    assert set(options_of(question)) == QUESTION
    replies = await kit.tap(UK, "stop_ask.yes")
    assert await stopped(kit)
    assert "still waiting" in text_of(replies[-1])  # the wait goes on


async def test_the_question_is_never_held_back_by_the_inbound_limit(limited: TurnKit) -> None:
    for n in range(3):
        await limited.say(UK, f"hello {n}")  # over the limit: paused
    (question,) = await limited.say(UK, MENTIONS["en"])
    assert set(options_of(question)) == QUESTION
    (confirmed,) = await limited.tap(UK, "stop_ask.yes")
    assert "START" in text_of(confirmed)
    assert await stopped(limited)


async def test_at_the_erase_question_a_sentence_with_stop_never_erases(kit: TurnKit) -> None:
    await kit.say(UK, "DELETE MY DATA")
    (question,) = await kit.say(UK, "yes delete, and stop everything")
    assert set(options_of(question)) == QUESTION
    assert await known(kit)
    await kit.tap(UK, "stop_ask.no")
    assert await known(kit) and not await stopped(kit)


async def test_at_the_opt_in_a_sentence_with_stop_never_consents(kit: TurnKit) -> None:
    await kit.say(UK, "JOIN")
    (question,) = await kit.say(UK, "yes, but stop the daily offers")
    assert set(options_of(question)) == QUESTION
    assert await kit.consent(UK) == "pending"
    await kit.say(UK, "NO")
    assert await kit.consent(UK) == "pending"
    assert not await stopped(kit)


# 2. Typed titles do what tapping them does ----------------------------------------------------

TALK = {"en": "talk to a person", "de": "Mit einem Menschen reden!", "fr": "parler a une personne",
        "es": "Hablar con una persona", "pt": "Falar com uma pessoa."}  # fmt: skip
STOP_TITLE = {"en": "Stop messages", "de": "nachrichten stoppen", "fr": "Arrêter les messages",
              "es": "Detener mensajes", "pt": "parar mensagens"}  # fmt: skip
WHERE = {"en": "Where I live", "de": "Mein Wohnort", "fr": "Mon lieu de résidence",
         "es": "dónde vivo", "pt": "Onde eu moro?"}  # fmt: skip
YES_DELETE = {"en": "yes, delete", "de": "Ja, löschen", "fr": "Oui, supprimer",
              "es": "Si, borrar", "pt": "Sim, apagar!"}  # fmt: skip


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_a_typed_menu_title_does_what_tapping_it_does(kit: TurnKit, lang: str) -> None:
    await kit.speaking(UK, lang)
    (where,) = await kit.say(UK, WHERE[lang])
    assert text_of(where) == text(kit, lang, "residence.ask")
    assert "residence.DE" in options_of(where)
    (waiting,) = await kit.say(UK, TALK[lang])
    assert text_of(waiting) == text(kit, lang, "agent.waiting")
    assert await kit.sql("SELECT count(*) FROM contacts WHERE handoff_at IS NOT NULL") == [(1,)]


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_a_typed_stop_title_stops_at_once(kit: TurnKit, lang: str) -> None:
    await opted_in(kit, lang)
    (confirmed,) = await kit.say(UK, STOP_TITLE[lang])
    assert text_of(confirmed) == text(kit, lang, "stop.confirmed")
    assert await kit.consent(UK) == "revoked"


async def test_a_title_works_in_any_shipped_language(kit: TurnKit) -> None:
    await kit.speaking(UK, "en")
    (waiting,) = await kit.say(UK, TALK["de"])
    assert text_of(waiting) == text(kit, "en", "agent.waiting")


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_the_typed_confirm_title_at_the_erase_question_erases(
    kit: TurnKit, lang: str
) -> None:
    await kit.speaking(UK, lang)
    await kit.say(UK, "DELETE MY DATA")
    (farewell,) = await kit.say(UK, YES_DELETE[lang])
    assert text_of(farewell) == text(kit, lang, "erase.done")
    assert not await known(kit)


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_the_confirm_title_typed_elsewhere_erases_nothing(kit: TurnKit, lang: str) -> None:
    await kit.speaking(UK, lang)
    await kit.say(UK, "MY DATA")  # the data summary, whose buttons are not the erase question
    await kit.say(UK, YES_DELETE[lang])
    await kit.say(UK, "hello")
    await kit.say(UK, YES_DELETE[lang])
    assert await known(kit)


async def test_a_typed_erase_title_asks_before_erasing(kit: TurnKit) -> None:
    await kit.speaking(UK, "fr")
    await kit.say(UK, "MES DONNÉES")
    (question,) = await kit.say(UK, "Effacer mes données")  # the summary's own button title
    assert set(options_of(question)) == {"erase.yes", "erase.no"}
    assert await known(kit)


# 3. Near-misses get a suggestion, never an action ---------------------------------------------

NEAR = {
    "en": ("delet my data", "DELETE MY DATA"),
    "de": ("meine datn löschen", "MEINE DATEN LÖSCHEN"),
    "fr": ("suprimer mes données", "SUPPRIMER MES DONNÉES"),
    "es": ("borar mis datos", "BORRAR MIS DATOS"),
    "pt": ("apagar meus dado", "APAGAR MEUS DADOS"),
}


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_a_near_miss_gets_a_suggestion_with_the_menu(kit: TurnKit, lang: str) -> None:
    await kit.speaking(UK, lang)
    typed, meant = NEAR[lang]
    (reply,) = await kit.say(UK, typed)
    assert text_of(reply) == text(kit, lang, "common.did_you_mean", suggestion=meant)
    assert "menu.erase" in options_of(reply)  # with the menu
    assert await known(kit)


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_a_near_miss_of_stop_only_suggests(kit: TurnKit, lang: str) -> None:
    await opted_in(kit, lang)
    (reply,) = await kit.say(UK, "stpo")
    assert text_of(reply) == text(kit, lang, "common.did_you_mean", suggestion="STOP")
    assert await kit.consent(UK) == "granted"
    assert not await stopped(kit)


async def test_a_near_miss_of_my_data_only_suggests(kit: TurnKit) -> None:
    (reply,) = await kit.say(UK, "my dta")
    assert "MY DATA" in text_of(reply)
    assert await kit.sql("SELECT * FROM audit WHERE event = 'data_access'") == []


async def test_a_near_miss_at_the_erase_question_erases_nothing(kit: TurnKit) -> None:
    await kit.say(UK, "DELETE MY DATA")
    (reply,) = await kit.say(UK, "delet")
    assert "DELETE" in text_of(reply)
    assert set(options_of(reply)) == {"erase.yes", "erase.no"}
    assert await known(kit)


# 4. A place the bot does not know -------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_an_unknown_place_is_said_to_be_not_understood(kit: TurnKit, lang: str) -> None:
    await kit.speaking(UK, lang)
    await kit.say(UK, "RESIDENCE")
    (sorry, again) = await kit.say(UK, "Atlantis")
    assert text_of(sorry) == text(kit, lang, "residence.unknown")
    assert text_of(again) == text(kit, lang, "residence.ask")
    assert "residence.DE" in options_of(again)
    (done,) = await kit.tap(UK, "residence.DE")
    assert "residence.DE" not in options_of(done)


# 5. The language of someone who has not chosen one --------------------------------------------

MENU_WORD = {"en": "privacy assistant", "de": "Datenschutz", "fr": "confidentialité",
             "es": "privacidad", "pt": "privacidade"}  # fmt: skip
GREETING = {"de": "Hallo!", "fr": "bonjour", "es": "Hola", "pt": "Olá"}


async def erased(kit: TurnKit, who: str = UK) -> None:
    await kit.say(who, "DELETE MY DATA")
    await kit.say(who, "DELETE")
    assert not await known(kit)


@pytest.mark.parametrize("lang", sorted(GREETING))
async def test_after_erasure_a_greeting_is_answered_in_its_language(
    kit: TurnKit, lang: str
) -> None:
    await erased(kit)
    (menu,) = await kit.say(UK, GREETING[lang])
    assert MENU_WORD[lang] in text_of(menu)
    _, question = await kit.say(UK, "JOIN")  # and the guess holds for the next turns
    assert set(options_of(question)) == {"optin.yes", "optin.no"}
    assert options_of(question)["optin.yes"] == text(kit, lang, "button.yes")


async def test_a_word_of_one_language_only_shows_the_language(kit: TurnKit) -> None:
    (menu,) = await kit.say(UK, "ayuda")  # HELP in Spanish only
    assert MENU_WORD["es"] in text_of(menu)


@pytest.mark.parametrize("who", [GERMANY, BRAZIL])
async def test_english_words_leave_the_numbers_language(kit: TurnKit, who: str) -> None:
    """STOP, OK, HELLO are typed everywhere: they say nothing about a person's language."""
    (menu,) = await kit.say(who, "hello")
    assert MENU_WORD["en"] not in text_of(menu)


async def test_a_chosen_language_is_kept_whatever_the_words(kit: TurnKit) -> None:
    await kit.speaking(UK, "en")
    (menu,) = await kit.say(UK, "hola")
    assert MENU_WORD["en"] in text_of(menu)


@pytest.mark.parametrize("lang", sorted(GREETING))
async def test_my_data_says_a_language_guessed_from_the_words_is_a_guess(
    kit: TurnKit, lang: str
) -> None:
    await erased(kit)
    await kit.say(UK, GREETING[lang])
    summary, _ = await kit.say(UK, KEYWORDS["my_data"][lang][0])
    assert text(kit, lang, "data.basis.words") in text_of(summary)
