"""MY DATA tells exactly what is held: nothing claimed that is not stored, nothing stored that
goes unmentioned, and every line in the person's language.

Each test is something a person reads in their summary (or in their JSON copy): a profile
name that was never stored, a do-not-contact entry that outlives an erasure, the country their
rights were decided by, the kinds of messages kept, and whether their language was their
choice or a guess.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.operator import erase_person, export_person
from bot.policy.business import TemplateSend, queue_template
from bot.whatsapp.messages import UPLOAD_KEY
from tests.conftest import fresh_sqlite
from tests.flowkit import GERMANY, UK, text_of
from tests.turnkit import TurnKit

LANGUAGES = ["en", "de", "fr", "es", "pt"]
NO_COUNTRY = "+80012345678"  # an international freephone number: no country, no guess

# What the person reads, in each language (the catalogs' words, checked here on purpose).
OUR_CHAT = {"en": "our chat", "de": "unser Chat", "fr": "notre conversation",
            "es": "nuestro chat", "pt": "nossa conversa"}  # fmt: skip
FRANCE = {"en": "France", "de": "Frankreich", "fr": "France", "es": "Francia", "pt": "França"}
GERMANY_NAME = {"en": "Germany", "de": "Deutschland", "fr": "Allemagne", "es": "Alemania",
                "pt": "Alemanha"}  # fmt: skip
CALIFORNIA_NAME = {"en": "California", "de": "Kalifornien", "fr": "Californie",
                   "es": "California", "pt": "Califórnia"}  # fmt: skip
STATED = {"en": "you told us", "de": "Sie haben es uns gesagt", "fr": "vous nous l'avez indiqué",
          "es": "nos lo dijiste", "pt": "você nos disse"}  # fmt: skip
GUESSED = {"en": "guessed from your number", "de": "aus Ihrer Nummer abgeleitet",
           "fr": "d'après votre numéro", "es": "según tu número",
           "pt": "com base no seu número"}  # fmt: skip
CHOSEN = {"en": "you chose it", "de": "von Ihnen gewählt", "fr": "vous l'avez choisie",
          "es": "lo elegiste", "pt": "escolhido por você"}  # fmt: skip
ONE_WAY_CODE = {"en": "one-way code", "de": "nicht umkehrbaren Code",
                "fr": "code à sens unique", "es": "código irreversible",
                "pt": "código irreversível"}  # fmt: skip
STOP_WORD = {"en": "STOP", "de": "STOPP", "fr": "ARRÊT", "es": "BAJA", "pt": "PARAR"}
DO_NOT_CONTACT = {"en": "Do-not-contact list", "de": "Sperrliste", "fr": "Liste d'opposition",
                  "es": "Lista de exclusión", "pt": "Lista de exclusão"}  # fmt: skip
PROFILE_NAME = "Profile name"


@pytest.fixture
async def kit(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[TurnKit]:
    async with TurnKit.open(fresh_sqlite(sqlite_template, tmp_path)) as opened:
        yield opened


async def summary(kit: TurnKit, who: str, name: str | None = None) -> str:
    """The MY DATA summary `who` reads (the first of its two replies)."""
    first, _next = await kit.say(who, "MY DATA", name)
    return text_of(first)


async def exported(kit: TurnKit, who: str) -> dict[str, Any]:
    """The JSON copy the person gets in chat after the summary."""
    (document,) = await kit.tap(who, "my_data.export")
    return json.loads(base64.b64decode(document[UPLOAD_KEY]["data"]))


def line_with(text: str, words: str) -> str:
    lines = [line for line in text.splitlines() if words in line]
    assert lines, f"{words!r} is not in the summary:\n{text}"
    return lines[0]


def day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


# 1. The profile name is mentioned only when one is held ------------------------------------


async def test_no_name_line_when_whatsapp_sent_no_profile_name(kit: TurnKit) -> None:
    await kit.say(UK, "hello")  # Meta's contact entry has an empty profile name
    text = await summary(kit, UK)
    assert PROFILE_NAME not in text
    assert (await exported(kit, UK))["contact"]["profile_name"] is None


async def test_no_name_line_for_someone_a_business_send_made_known(kit: TurnKit) -> None:
    send = TemplateSend(UK, "order_update", "utility", {"name": "Ann", "order": "A-17",
                                                         "status": "shipped"})  # fmt: skip
    await queue_template(kit.db, kit.people, kit.content.templates, send, tier=None, now=kit.now)
    kit.later(hours=1)
    text = await summary(kit, UK, name="Ann")  # the reply's name is not stored for them
    assert PROFILE_NAME not in text


async def test_the_name_line_when_a_name_is_held(kit: TurnKit) -> None:
    await kit.say(UK, "hello", name="Ann")
    assert PROFILE_NAME in await summary(kit, UK, name="Ann")
    assert (await exported(kit, UK))["contact"]["profile_name"] == "Ann"


# 2. An erased number that writes again learns it is on the do-not-contact list -------------


@pytest.mark.parametrize("via", ["chat", "cli"])
async def test_my_data_after_erasure_tells_of_the_do_not_contact_entry(
    kit: TurnKit, via: str
) -> None:
    await kit.say(UK, "JOIN")
    await kit.tap(UK, "optin.yes")
    erased_at = kit.now
    if via == "chat":
        await kit.say(UK, "DELETE MY DATA")
        await kit.tap(UK, "erase.yes")
    else:
        await erase_person(kit.settings, UK)
        erased_at = time.time()
    kit.later(hours=49)
    text = await summary(kit, UK)
    entry = line_with(text, DO_NOT_CONTACT["en"])
    assert day(erased_at) in entry
    assert ONE_WAY_CODE["en"] in entry and "STOP keeps working" in entry
    assert "by mistake" in entry
    copy = (await exported(kit, UK))["suppression"]
    assert copy["since"][:10] == day(erased_at) and copy["reason"] == "erased"


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_the_do_not_contact_entry_in_every_language(kit: TurnKit, lang: str) -> None:
    await kit.say(UK, "DELETE MY DATA")
    await kit.tap(UK, "erase.yes")
    await kit.speaking(UK, lang)
    entry = line_with(await summary(kit, UK), DO_NOT_CONTACT[lang])
    assert ONE_WAY_CODE[lang] in entry and STOP_WORD[lang] in entry


async def test_no_do_not_contact_line_for_a_number_never_suppressed(kit: TurnKit) -> None:
    await kit.say(UK, "hello")
    assert DO_NOT_CONTACT["en"] not in await summary(kit, UK)
    assert (await exported(kit, UK))["suppression"] is None


async def test_the_operators_export_of_an_erased_number_shows_the_entry(kit: TurnKit) -> None:
    await kit.say(UK, "hello")
    await erase_person(kit.settings, UK)
    doc = await export_person(kit.settings, UK)
    assert doc["contact"] is None
    assert doc["suppression"]["reason"] == "erased"
    assert doc["suppression"]["since"][:10] == day(time.time())


# 3. The place the rights were decided by, named in the person's language --------------------


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_a_stated_country_is_named_in_the_persons_language(kit: TurnKit, lang: str) -> None:
    await kit.speaking(UK, lang)
    await kit.say(UK, "RESIDENCE")
    await kit.tap(UK, "residence.FR")
    text = await summary(kit, UK)
    assert STATED[lang] in line_with(text, FRANCE[lang])
    assert kit.content.texts.get(lang, "gdpr", "law.gdpr") in text
    assert (await exported(kit, UK))["contact"]["stated_residence"] == ["FR", None]


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_california_is_named_by_its_own_text(kit: TurnKit, lang: str) -> None:
    await kit.speaking(UK, lang)
    await kit.say(UK, "RESIDENCE")
    await kit.tap(UK, "residence.US-CA")
    text = await summary(kit, UK)
    assert STATED[lang] in line_with(text, CALIFORNIA_NAME[lang])
    assert kit.content.texts.get(lang, "ccpa", "law.ccpa") in text


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_a_country_guessed_from_the_number_is_named_as_a_guess(
    kit: TurnKit, lang: str
) -> None:
    await kit.speaking(GERMANY, lang)
    text = await summary(kit, GERMANY)
    assert GUESSED[lang] in line_with(text, GERMANY_NAME[lang])


async def test_no_country_when_neither_said_nor_guessed(kit: TurnKit) -> None:
    await kit.say(NO_COUNTRY, "hello")
    text = await summary(kit, NO_COUNTRY)
    assert "Where you live" in text and "not told us" in text
    assert kit.content.texts.get("en", "strict", "law.strict") in text


# 4. Message kinds in the person's words; an unlabelled kind still reads sensibly -------------


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_message_categories_are_named_in_the_persons_language(
    kit: TurnKit, lang: str
) -> None:
    await kit.speaking(UK, lang)
    text = await summary(kit, UK)
    assert OUR_CHAT[lang] in text
    if lang != "en":
        assert "service" not in text.lower()


async def test_a_category_without_a_label_is_shown_by_its_name(kit: TurnKit) -> None:
    await kit.say(UK, "hello")
    await kit.db.write(lambda c: c.exec_driver_sql("UPDATE messages SET category='newsletter'"))
    text = await summary(kit, UK)
    assert "newsletter" in text and "category." not in text


# The language: the person's choice, or a guess ---------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_a_chosen_language_is_said_to_be_chosen(kit: TurnKit, lang: str) -> None:
    await kit.speaking(UK, lang)
    assert CHOSEN[lang] in await summary(kit, UK)


async def test_a_guessed_language_is_said_to_be_guessed(kit: TurnKit) -> None:
    await kit.say(GERMANY, "hallo")
    text = await summary(kit, GERMANY)
    assert GUESSED["de"] in line_with(text, "Deutsch (")
    assert CHOSEN["de"] not in text
