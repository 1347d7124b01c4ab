"""Where a person says they live: free text or a list row into (country, region).

People type "Deutschland", "I live in San Francisco, California, USA" or "EE. UU."; they tap
a row of the residence list. Country names come from Babel (CLDR) in every shipped language,
plus the names `flows/policy/countries.yaml` adds: its countries' own names ("Polska"), its
aliases ("Holland", "UK") and the words it allows only as a whole answer ("US"). The list's
rows are the file's too. Pure and never raising, like the rest of the jurisdiction decision.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from babel import Locale
from babel.languages import get_official_languages

from bot.privacy.countries import (
    NOT_COUNTRIES,
    Countries,
    Residence,
    fold,
    known_countries,
    shipped_countries,
)
from bot.privacy.language import DEFAULT_LANGUAGE, SHIPPED_LANGUAGES, shipped_choice

OTHER = "OTHER"  # list row id for "my country is not listed": the caller asks for free text
OTHER_TITLE = "residence.other"  # its title, a message id in locales/

_ALPHA2 = re.compile(r"[A-Z]{2}")
_SUBDIVISION = re.compile(r"([A-Za-z]{2})[-_]([A-Za-z0-9]{1,3})")
_MAX_RESIDENCE_CHARS = 300  # a residence answer is short; longer text is not one
_ROW_TITLE_MAX = 24  # WhatsApp list row title limit


# --- the names the bot understands ---------------------------------------------------------


def _add_name(table: dict[str, Residence], name: str, code: str) -> None:
    """Add a name unless it is taken: first writer wins (shipped languages before endonyms)."""
    key = fold(name)
    if key and key not in table:
        table[key] = (code, None)


def _own_name(code: str, language: str) -> str | None:
    """A country's name in one of its languages, or None where Babel lacks that locale."""
    try:
        return Locale.parse(language).territories.get(code)
    except Exception:  # the English name is in the table already
        return None


@lru_cache(maxsize=1)
def _babel_names() -> dict[str, Residence]:
    """Folded country name -> (country, None), in every shipped language."""
    table: dict[str, Residence] = {}
    for language in SHIPPED_LANGUAGES:
        for code, name in Locale.parse(language).territories.items():
            if _ALPHA2.fullmatch(code) and code not in NOT_COUNTRIES:
                _add_name(table, name, code)
    return table


@dataclass(frozen=True, slots=True)
class _Names:
    table: dict[str, Residence]  # folded name -> (country, region)
    longest: int  # words in the longest name, for scanning sentences


@lru_cache(maxsize=8)
def _names(countries: Countries) -> _Names:
    """Babel's names, then the file's countries' own names ("Polska", "Sverige"), then its
    aliases, which win over both."""
    table = dict(_babel_names())
    for code in countries.own_names:
        for language in get_official_languages(code, de_facto=True):
            name = _own_name(code, language)
            if name:
                _add_name(table, name, code)
    table.update(countries.aliases)
    return _Names(table, max(len(key.split()) for key in table))


# --- reading an answer ----------------------------------------------------------------------


def _parse_code(raw: str) -> Residence | None:
    """ "DE" (upper case only: "no", "si", "de" are words) or "US-CA" (any case)."""
    if _ALPHA2.fullmatch(raw) and raw in known_countries():
        return raw, None
    match = _SUBDIVISION.fullmatch(raw)
    if match and match.group(1).upper() in known_countries():
        country = match.group(1).upper()
        return country, f"{country}-{match.group(2).upper()}"
    return None


def _merge(found: list[Residence]) -> Residence | None:
    """One answer from several mentions: same country only; the most specific region wins."""
    countries = {country for country, _ in found}
    regions = {region for _, region in found if region}
    if len(countries) != 1 or len(regions) > 1:
        return None  # "Germany or France?" is not an answer
    return countries.pop(), (regions.pop() if regions else None)


def _scan(words: list[str], names: _Names, whole_only: frozenset[str]) -> list[Residence]:
    """Greedy longest match of known names inside a sentence ("ich wohne in Deutschland")."""
    table = names.table
    found: list[Residence] = []
    i = 0
    while i < len(words):
        for size in range(min(names.longest, len(words) - i), 0, -1):
            key = " ".join(words[i : i + size])
            if key in table and key not in whole_only:
                found.append(table[key])
                i += size
                break
        else:
            i += 1
    return found


def parse_residence(text: str, countries: Countries | None = None) -> Residence | None:
    """(country, region) from what a person typed or picked, or None if not understood.

    Accepts list ids ("DE", "US-CA"), country names in en/de/fr/es/pt and the names the
    countries file adds, case- and accent-insensitively, alone or inside a short sentence.
    "CA" is Canada (ISO), not California: the misreading lands on STRICT, the safe side.
    "OTHER" is not understood on purpose: the caller then asks the person to type a country.
    """
    if not isinstance(text, str) or len(text) > _MAX_RESIDENCE_CHARS:
        return None
    raw = text.strip()
    coded = _parse_code(raw)
    if coded:
        return coded
    folded = fold(raw)
    if not folded:
        return None
    facts = countries if countries is not None else shipped_countries()
    names = _names(facts)
    if folded in names.table:
        return names.table[folded]
    return _merge(_scan(folded.split(), names, facts.whole_answer_only))


# --- the residence list ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Choice:
    """A row of the residence list: its id is `residence.<code>`, which `parse_residence` reads
    back. Its title is `name`, the country's name in the list's language, unless `message_id`
    names a text in locales/ to show instead (the countries file says which)."""

    code: str
    name: str  # "" when `message_id` gives the title
    message_id: str | None = None


def _name(code: str, language: str) -> str:
    """A country's name in the language, clipped to WhatsApp's 24 characters."""
    name = Locale.parse(language).territories[code]
    return name if len(name) <= _ROW_TITLE_MAX else name[: _ROW_TITLE_MAX - 1] + "…"


@lru_cache(maxsize=32)
def _choices(language: str, countries: Countries) -> tuple[Choice, ...]:
    rows = [
        Choice(code, "", title) if title else Choice(code, _name(code, language))
        for code, title in countries.residence_list
    ]
    return (*rows, Choice(OTHER, "", OTHER_TITLE))


def place_of(
    country: str, region: str | None, locale: str, countries: Countries | None = None
) -> Choice:
    """A place as a person reads it in their language: a region the list titles with a text by
    that text (US-CA: residence.california), else the country's whole name."""
    facts = countries if countries is not None else shipped_countries()
    title = dict(facts.residence_list).get(region) if region else None
    if title:
        return Choice(region or country, "", title)
    language = shipped_choice(locale) or DEFAULT_LANGUAGE
    return Choice(country, Locale.parse(language).territories.get(country, country))


def residence_choices(locale: str, countries: Countries | None = None) -> tuple[Choice, ...]:
    """The residence list in a language: the countries file's rows, then OTHER."""
    language = shipped_choice(locale) or DEFAULT_LANGUAGE
    return _choices(language, countries if countries is not None else shipped_countries())
