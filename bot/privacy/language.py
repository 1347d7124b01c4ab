"""Which language the bot speaks to a person: their choice, else what their words show,
else their number's country's.

Pure and never raising, like the rest of the jurisdiction decision: it runs on every turn with
whatever a person typed and whatever number Meta sent.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from functools import lru_cache

from babel import Locale
from babel.languages import get_official_languages

from bot.privacy.countries import fold
from bot.privacy.numbers import country_of_number

SHIPPED_LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es", "pt")
DEFAULT_LANGUAGE = "en"


@lru_cache(maxsize=1)
def _language_names() -> dict[str, str]:
    """Folded language name -> code, so "Deutsch", "português" or "English" work as a choice."""
    names: dict[str, str] = {}
    for display in SHIPPED_LANGUAGES:
        languages = Locale.parse(display).languages
        for code in SHIPPED_LANGUAGES:
            names.setdefault(fold(languages[code]), code)
    return names


def shipped_choice(choice: str | None) -> str | None:
    """The shipped language a choice names ("de", "pt-BR", "pt_BR", "Deutsch"), or None."""
    if not isinstance(choice, str) or len(choice) > 64:
        return None
    base = re.split(r"[-_@.]", choice.strip(), maxsplit=1)[0].casefold()
    if base in SHIPPED_LANGUAGES:
        return base
    return _language_names().get(fold(choice))


@lru_cache(maxsize=512)
def _country_language(country: str) -> str | None:
    """First shipped official language of a country, in Babel's order of popularity.

    So CH -> de, BE -> fr (nl is not shipped), CA -> en, US -> en (de facto); None when the
    country speaks none of them (JP) or Babel does not know it.
    """
    try:
        official = get_official_languages(country, de_facto=True)
    except Exception:  # unknown territory
        return None
    for language in official:
        base = language.split("_", 1)[0]
        if base in SHIPPED_LANGUAGES:
            return base
    return None


def decide_language(choice: str | None, e164: str | None) -> tuple[str, str]:
    """(language, basis): the person's shipped choice ("chosen"), else their number's country's
    language ("number"), else English ("default"). The basis is what MY DATA tells them."""
    chosen = shipped_choice(choice)
    if chosen:
        return chosen, "chosen"
    country = country_of_number(e164) if isinstance(e164, str) else None
    spoken = _country_language(country) if country else None
    return (spoken, "number") if spoken else (DEFAULT_LANGUAGE, "default")


def shown_language(languages: Collection[str]) -> str | None:
    """The one shipped language a message's words show, or None.

    English words do not count: STOP, OK and HELLO are typed by people everywhere,
    so they say nothing against the language of a person's number."""
    shown = set(languages) & set(SHIPPED_LANGUAGES) - {DEFAULT_LANGUAGE}
    return shown.pop() if len(shown) == 1 else None


def language_for(choice: str | None, e164: str | None) -> str:
    """The person's shipped choice, else the number's country language, else English."""
    return decide_language(choice, e164)[0]
