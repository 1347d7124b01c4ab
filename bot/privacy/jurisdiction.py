"""Which privacy law applies to a person, and which language the bot speaks to them.

Order of evidence: the residence the person stated in chat wins over their WhatsApp number, and
the number wins over nothing; with no usable evidence the bot applies its own strictest policy
(``Law.STRICT``: GDPR-like rights for everyone). Every function here is pure and never raises on
bad input, because it runs on every turn with whatever Meta (or a person) sent.

Which places fall under which law, which US area codes count as California, the rows of the
residence list and the words people type for a place are the privacy team's:
`flows/policy/countries.yaml`, read by `bot.privacy.countries` (which also says where the
loaded file comes from; each function here takes it as an optional `countries`).

Number facts come from libphonenumber's own data, not hand-written lists, with one twist:
WhatsApp delivers numbers that libphonenumber calls invalid (fictional 555 ranges, Ofcom drama
numbers, brand-new ranges). Such a number still keeps the country of its calling code, and a US
number keeps its area code, so neither is ever silently dropped to the default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from babel import Locale
from babel.languages import get_official_languages

from bot.privacy.countries import (
    NOT_COUNTRIES,
    Countries,
    Law,
    Residence,
    fold,
    known_countries,
    shipped_countries,
)

__all__ = [
    "CALIFORNIA",
    "DEFAULT_LANGUAGE",
    "OTHER",
    "SHIPPED_LANGUAGES",
    "Choice",
    "Countries",
    "Jurisdiction",
    "Law",
    "Residence",
    "country_of_number",
    "decide",
    "language_for",
    "law_for",
    "parse_residence",
    "region_of_number",
    "residence_choices",
]


@dataclass(frozen=True, slots=True)
class Jurisdiction:
    """The decision plus the evidence it rests on, so notices and audits can say why."""

    law: Law
    country: str | None  # ISO 3166-1 alpha-2, e.g. "DE"; None when unknown
    region: str | None  # ISO 3166-2, e.g. "US-CA", when known
    basis: str  # "stated" | "number" | "default"


SHIPPED_LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es", "pt")
DEFAULT_LANGUAGE = "en"
CALIFORNIA = "US-CA"
OTHER = "OTHER"  # list row id for "my country is not listed": the caller asks for free text
OTHER_TITLE = "residence.other"  # its title, a message id in locales/
_EU_EXCEPTIONAL_CODES = {"UK": "GB", "EL": "GR"}  # the EU's own spellings, not ISO 3166

_NUMBER_CACHE = 4096
_MAX_RESIDENCE_CHARS = 300  # a residence answer is short; longer text is not one


# --- numbers ---------------------------------------------------------------------------------


def _normalize_number(e164: str | None) -> str | None:
    """Accept E.164 with or without "+" (Meta's wa_id has none) and the "00" exit prefix."""
    if not isinstance(e164, str):
        return None
    text = e164.strip()
    if not text:
        return None
    if text.startswith("00"):
        return "+" + text[2:]
    return text if text.startswith("+") else "+" + text


@lru_cache(maxsize=_NUMBER_CACHE)
def _number_facts(number: str) -> tuple[str | None, str | None]:
    """(country, national significant number) of a normalized number, or (None, None)."""
    try:
        parsed = phonenumbers.parse(number, None)
        national = phonenumbers.national_significant_number(parsed)
        # Shared calling codes (+1, +44, +7) are narrowed by leading digits (+1 809 is DO even
        # when invalid); a number that matches no region keeps the code's main country (GB, US).
        region = phonenumbers.region_code_for_number(parsed)
        country = region or phonenumbers.region_code_for_country_code(parsed.country_code)
    except Exception:  # "never raises": any parser surprise means "unknown number"
        return None, None
    if not country or country in ("001", "ZZ"):  # non-geographic (+800, +882) or unknown
        return None, None
    return country, national


def country_of_number(e164: str) -> str | None:
    """ISO country of a WhatsApp number, or None; never raises.

    Invalid-but-real numbers (e.g. +44 7700 900123) keep the country of their calling code.
    """
    normalized = _normalize_number(e164)
    return _number_facts(normalized)[0] if normalized else None


def _geocoder_california_area_codes() -> frozenset[str]:
    """NANP area codes that libphonenumber's geocoder data places in California.

    They are written in `flows/policy/countries.yaml` rather than read from here at run time,
    because loading the geocoder data costs about 100 MB of memory and 0.7 s (on the event
    loop, at the first US number) for 39 numbers. The list is not hand-made: the tests compare
    the file with this and fail when a phonenumbers upgrade adds an overlay code.

    The geocoder names a US prefix "California" or "<City>, CA"; some codes (310) only have
    city-level entries, so every "1NPA..." prefix is read. Reading the prefix data, rather than
    geocoding a number, also covers numbers libphonenumber calls invalid (geocoded as "").
    """
    from phonenumbers.geodata import GEOCODE_DATA  # heavy: ~100 MB, see above

    codes: set[str] = set()
    for prefix, names in GEOCODE_DATA.items():
        if prefix.startswith("1") and len(prefix) >= 4:
            name = names.get("en", "")
            if name == "California" or name.endswith(", CA"):
                codes.add(prefix[1:4])
    return frozenset(codes)


def region_of_number(e164: str, countries: Countries | None = None) -> str | None:
    """The US state whose `area_codes` list a US number's area code ("US-CA"), else None.

    A weak signal: people keep their numbers when they move, so a 415 number says where the
    number was issued, not where its owner lives. That is why stated residence wins. Works for
    numbers libphonenumber calls invalid (555 ranges), since only the area code is read.
    """
    normalized = _normalize_number(e164)
    if not normalized:
        return None
    country, national = _number_facts(normalized)
    if country != "US" or national is None or len(national) < 3:
        return None
    facts = countries if countries is not None else shipped_countries()
    return facts.region_by_area_code.get(national[:3])


# --- law -------------------------------------------------------------------------------------


def _clean_code(value: str | None) -> str | None:
    """Upper-cased, stripped code, or None for empty or non-string values."""
    if not isinstance(value, str):
        return None
    value = value.strip().upper().replace("_", "-")
    return value or None


def law_for(country: str | None, region: str | None, countries: Countries | None = None) -> Law:
    """The law for a country (and region): anything the countries file does not list gets the
    strict default.

    A region's law (California's CCPA) applies in its own country only, so "US" alone is STRICT.
    """
    facts = countries if countries is not None else shipped_countries()
    country, region = _clean_code(country), _clean_code(region)
    if region in facts.law_by_region and country in (None, region.split("-", 1)[0]):
        return facts.law_by_region[region]
    return facts.law_by_country.get(country or "", Law.STRICT)


# --- stated residence ------------------------------------------------------------------------

_ALPHA2 = re.compile(r"[A-Z]{2}")
_SUBDIVISION = re.compile(r"([A-Za-z]{2})[-_]([A-Za-z0-9]{1,3})")


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


# --- decision --------------------------------------------------------------------------------


def _stated(stated: Residence | None) -> Residence | None:
    """A well-formed stated residence, or None; a region outside its country is dropped.

    Lists are accepted too, because a tuple stored as JSON comes back as one.
    """
    if not isinstance(stated, tuple | list) or len(stated) != 2:
        return None
    country, region = _clean_code(stated[0]), _clean_code(stated[1])
    country = _EU_EXCEPTIONAL_CODES.get(country or "", country)
    if country is None or not _ALPHA2.fullmatch(country):
        return None
    if region is not None and not region.startswith(f"{country}-"):
        region = None
    return country, region


def decide(
    stated: Residence | None, e164: str | None, countries: Countries | None = None
) -> Jurisdiction:
    """Stated residence, else the number, else the strict default. Cheap: numbers are cached."""
    residence = _stated(stated)
    if residence is not None:
        country, region = residence
        return Jurisdiction(law_for(country, region, countries), country, region, "stated")
    country = country_of_number(e164) if isinstance(e164, str) else None
    if country is not None:
        region = region_of_number(e164, countries) if isinstance(e164, str) else None
        return Jurisdiction(law_for(country, region, countries), country, region, "number")
    return Jurisdiction(Law.STRICT, None, None, "default")


# --- language --------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _language_names() -> dict[str, str]:
    """Folded language name -> code, so "Deutsch", "português" or "English" work as a choice."""
    names: dict[str, str] = {}
    for display in SHIPPED_LANGUAGES:
        languages = Locale.parse(display).languages
        for code in SHIPPED_LANGUAGES:
            names.setdefault(fold(languages[code]), code)
    return names


def _shipped_choice(choice: str | None) -> str | None:
    """The shipped language a choice names ("de", "pt-BR", "pt_BR", "Deutsch"), or None."""
    if not isinstance(choice, str) or len(choice) > 64:
        return None
    base = re.split(r"[-_@.]", choice.strip(), maxsplit=1)[0].casefold()
    if base in SHIPPED_LANGUAGES:
        return base
    return _language_names().get(fold(choice))


@lru_cache(maxsize=512)
def _country_language(country: str) -> str:
    """First shipped official language of a country, in Babel's order of popularity.

    So CH -> de, BE -> fr (nl is not shipped), CA -> en, US -> en (de facto), else en.
    """
    try:
        official = get_official_languages(country, de_facto=True)
    except Exception:  # unknown territory
        return DEFAULT_LANGUAGE
    for language in official:
        base = language.split("_", 1)[0]
        if base in SHIPPED_LANGUAGES:
            return base
    return DEFAULT_LANGUAGE


def language_for(choice: str | None, e164: str | None) -> str:
    """The person's shipped choice, else the number's country language, else English."""
    chosen = _shipped_choice(choice)
    if chosen:
        return chosen
    country = country_of_number(e164) if isinstance(e164, str) else None
    return _country_language(country) if country else DEFAULT_LANGUAGE


# --- residence list --------------------------------------------------------------------------

_ROW_TITLE_MAX = 24  # WhatsApp list row title limit


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


def residence_choices(locale: str, countries: Countries | None = None) -> tuple[Choice, ...]:
    """The residence list in a language: the countries file's rows, then OTHER."""
    language = _shipped_choice(locale) or DEFAULT_LANGUAGE
    return _choices(language, countries if countries is not None else shipped_countries())
