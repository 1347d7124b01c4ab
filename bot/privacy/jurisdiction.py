"""Which privacy law applies to a person, and which language the bot speaks to them.

Order of evidence: the residence the person stated in chat wins over their WhatsApp number, and
the number wins over nothing; with no usable evidence the bot applies its own strictest policy
(``Law.STRICT``: GDPR-like rights for everyone). Every function here is pure and never raises on
bad input, because it runs on every turn with whatever Meta (or a person) sent.

Number facts come from libphonenumber's own data, not hand-written lists, with one twist:
WhatsApp delivers numbers that libphonenumber calls invalid (fictional 555 ranges, Ofcom drama
numbers, brand-new ranges). Such a number still keeps the country of its calling code, and a US
number keeps its area code, so neither is ever silently dropped to the default.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

import phonenumbers
from babel import Locale
from babel.languages import get_official_languages

__all__ = [
    "CALIFORNIA",
    "CALIFORNIA_AREA_CODES",
    "GDPR_COUNTRIES",
    "OTHER",
    "SHIPPED_LANGUAGES",
    "Jurisdiction",
    "Law",
    "country_choices",
    "country_of_number",
    "decide",
    "language_for",
    "law_for",
    "parse_residence",
    "region_of_number",
]


class Law(StrEnum):
    """The privacy regime whose texts (notices, rights, deadlines) a person gets."""

    GDPR = "gdpr"
    CCPA = "ccpa"
    PDPA = "pdpa"
    LGPD = "lgpd"
    STRICT = "strict"


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

# The 27 EU member states, the three EEA states (IS, LI, NO) and the UK (UK GDPR). EU outermost
# regions that libphonenumber reports under their own codes (Réunion, Guadeloupe, Martinique,
# French Guiana, Mayotte, Saint-Martin) and Åland are EU territory, so they are GDPR too.
# Crown dependencies (GG, JE, IM), Gibraltar, Faroe and Greenland have their own laws: STRICT.
_EU = "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE"
_EU_OUTERMOST = "RE GP MQ GF YT MF AX"
GDPR_COUNTRIES: frozenset[str] = frozenset(f"{_EU} {_EU_OUTERMOST} IS LI NO GB".split())
_LAW_BY_COUNTRY: dict[str, Law] = {"SG": Law.PDPA, "BR": Law.LGPD}
_EU_EXCEPTIONAL_CODES = {"UK": "GB", "EL": "GR"}  # the EU's own spellings, not ISO 3166

Residence = tuple[str, str | None]  # (country, region), e.g. ("US", "US-CA")

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


# California area codes as libphonenumber's geocoder data places them (phonenumbers 9.0.43).
# Kept as a constant rather than read at run time because loading the geocoder data costs about
# 100 MB of memory and 0.7 s (on the event loop, at the first US number) for 39 numbers. The
# list is not hand-made: tests/test_jurisdiction.py recomputes it from the installed geocoder
# (_geocoder_california_area_codes) and fails when a phonenumbers upgrade adds an overlay code.
_CALIFORNIA_AREA_CODES_TEXT = """
    209 213 279 310 323 341 350 369 408 415 424 442 510 530 559 562 619 626 628 650
    657 661 669 707 714 738 747 760 805 818 820 831 840 858 909 916 925 949 951
"""
CALIFORNIA_AREA_CODES: frozenset[str] = frozenset(_CALIFORNIA_AREA_CODES_TEXT.split())


def _geocoder_california_area_codes() -> frozenset[str]:
    """NANP area codes that libphonenumber's geocoder data places in California.

    The geocoder names a US prefix "California" or "<City>, CA"; some codes (310) only have
    city-level entries, so every "1NPA..." prefix is read. Reading the prefix data, rather than
    geocoding a number, also covers numbers libphonenumber calls invalid (geocoded as "").
    Used by the tests to keep CALIFORNIA_AREA_CODES in step with the library.
    """
    from phonenumbers.geodata import GEOCODE_DATA  # heavy: ~100 MB, see above

    codes: set[str] = set()
    for prefix, names in GEOCODE_DATA.items():
        if prefix.startswith("1") and len(prefix) >= 4:
            name = names.get("en", "")
            if name == "California" or name.endswith(", CA"):
                codes.add(prefix[1:4])
    return frozenset(codes)


def region_of_number(e164: str) -> str | None:
    """ "US-CA" when a US number's area code lies in California, else None.

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
    return CALIFORNIA if national[:3] in CALIFORNIA_AREA_CODES else None


# --- law -------------------------------------------------------------------------------------


def _clean_code(value: str | None) -> str | None:
    """Upper-cased, stripped code, or None for empty or non-string values."""
    if not isinstance(value, str):
        return None
    value = value.strip().upper().replace("_", "-")
    return value or None


def law_for(country: str | None, region: str | None) -> Law:
    """The law for a country (and region): anything not named here gets the strict default.

    Only California among US states has a law the bot models, so "US" alone is STRICT.
    """
    country, region = _clean_code(country), _clean_code(region)
    if region == CALIFORNIA and country in (None, "US"):
        return Law.CCPA
    if country in GDPR_COUNTRIES:
        return Law.GDPR
    return _LAW_BY_COUNTRY.get(country or "", Law.STRICT)


# --- stated residence ------------------------------------------------------------------------

_ALPHA2 = re.compile(r"[A-Z]{2}")
_SUBDIVISION = re.compile(r"([A-Za-z]{2})[-_]([A-Za-z0-9]{1,3})")
_NOT_COUNTRIES = frozenset({"EU", "EZ", "UN", "QO", "XA", "XB", "ZZ"})
_ENDONYM_COUNTRIES = sorted(GDPR_COUNTRIES - set(_EU_OUTERMOST.split()) | {"CH", "SG"})

# Names Babel does not carry but people type. Keys are folded (see _fold).
_ALIASES: dict[str, Residence] = {
    **dict.fromkeys(
        [
            "uk",
            "great britain",
            "britain",
            "england",
            "scotland",
            "wales",
            "northern ireland",
            "grossbritannien",
            "schottland",
            "grande bretagne",
            "angleterre",
            "ecosse",
            "pays de galles",
            "gran bretana",
            "inglaterra",
            "escocia",
            "gales",
            "gra bretanha",
        ],
        ("GB", None),
    ),
    **dict.fromkeys(
        [
            "usa",
            "us",
            "united states of america",
            "vereinigte staaten von amerika",
            "etats unis d amerique",
            "ee uu",
            "eeuu",
            "estados unidos de america",
            "eua",
            "estados unidos da america",
        ],
        ("US", None),
    ),
    **dict.fromkeys(("holland", "hollande", "holanda"), ("NL", None)),
    "turkey": ("TR", None),  # CLDR's English name is now "Türkiye"
    **dict.fromkeys(
        ("california", "kalifornien", "californie", "us ca", "ca usa"), ("US", CALIFORNIA)
    ),
    # US states whose names contain a country name: keep them from scanning as that country.
    "new mexico": ("US", "US-NM"),
    "new jersey": ("US", "US-NJ"),
    "rhode island": ("US", "US-RI"),
}
# Whole-answer only: common words that would misfire inside a sentence ("tell us", "island").
_NOT_IN_SENTENCES = frozenset(
    {
        "us",
        "island",
        "reunion",
        "jersey",
        "chad",
        "jordan",
        "georgia",
        "guinea",
        "maurice",
        "turkey",
    }
)


def _fold(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form: "Bosnia & Herzegovina" -> "bosnia ..."."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    return " ".join(re.sub(r"[\W_]+", " ", plain.replace(".", "")).split())


def _add_name(table: dict[str, Residence], name: str, code: str) -> None:
    """Add a name unless it is taken: first writer wins (shipped languages before endonyms)."""
    key = _fold(name)
    if key and key not in table:
        table[key] = (code, None)


def _own_name(code: str, language: str) -> str | None:
    """A country's name in one of its languages, or None where Babel lacks that locale."""
    try:
        return Locale.parse(language).territories.get(code)
    except Exception:  # the English name is in the table already
        return None


@lru_cache(maxsize=1)
def _residence_names() -> dict[str, Residence]:
    """Folded country name -> (country, region): Babel names in the shipped languages, the
    European countries' and Singapore's own names ("Polska", "Sverige"), then the aliases."""
    table: dict[str, Residence] = {}
    for language in SHIPPED_LANGUAGES:
        for code, name in Locale.parse(language).territories.items():
            if _ALPHA2.fullmatch(code) and code not in _NOT_COUNTRIES:
                _add_name(table, name, code)
    for code in _ENDONYM_COUNTRIES:
        for language in get_official_languages(code, de_facto=True):
            name = _own_name(code, language)
            if name:
                _add_name(table, name, code)
    table.update({key: value for key, value in _ALIASES.items() if key})
    return table


@lru_cache(maxsize=1)
def _known_countries() -> frozenset[str]:
    """Alpha-2 codes Babel knows as territories (CLDR's list, which includes XK, Kosovo)."""
    codes = {c for c in Locale.parse("en").territories if _ALPHA2.fullmatch(c)}
    return frozenset(codes - _NOT_COUNTRIES)


def _parse_code(raw: str) -> Residence | None:
    """ "DE" (upper case only: "no", "si", "de" are words) or "US-CA" (any case)."""
    if _ALPHA2.fullmatch(raw) and raw in _known_countries():
        return raw, None
    match = _SUBDIVISION.fullmatch(raw)
    if match and match.group(1).upper() in _known_countries():
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


def _scan(words: list[str], table: dict[str, Residence]) -> list[Residence]:
    """Greedy longest match of known names inside a sentence ("ich wohne in Deutschland")."""
    longest = max(len(key.split()) for key in table)
    found: list[Residence] = []
    i = 0
    while i < len(words):
        for size in range(min(longest, len(words) - i), 0, -1):
            key = " ".join(words[i : i + size])
            if key in table and key not in _NOT_IN_SENTENCES:
                found.append(table[key])
                i += size
                break
        else:
            i += 1
    return found


def parse_residence(text: str) -> Residence | None:
    """(country, region) from what a person typed or picked, or None if not understood.

    Accepts list ids ("DE", "US-CA"), country names in en/de/fr/es/pt and the European
    countries' own names, case- and accent-insensitively, alone or inside a short sentence.
    "CA" is Canada (ISO), not California: the misreading lands on STRICT, the safe side.
    "OTHER" is not understood on purpose: the caller then asks the person to type a country.
    """
    if not isinstance(text, str) or len(text) > _MAX_RESIDENCE_CHARS:
        return None
    raw = text.strip()
    coded = _parse_code(raw)
    if coded:
        return coded
    folded = _fold(raw)
    if not folded:
        return None
    table = _residence_names()
    if folded in table:
        return table[folded]
    return _merge(_scan(folded.split(), table))


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


def decide(stated: Residence | None, e164: str | None) -> Jurisdiction:
    """Stated residence, else the number, else the strict default. Cheap: numbers are cached."""
    residence = _stated(stated)
    if residence is not None:
        country, region = residence
        return Jurisdiction(law_for(country, region), country, region, "stated")
    country = country_of_number(e164) if isinstance(e164, str) else None
    if country is not None:
        region = region_of_number(e164) if isinstance(e164, str) else None
        return Jurisdiction(law_for(country, region), country, region, "number")
    return Jurisdiction(Law.STRICT, None, None, "default")


# --- language --------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _language_names() -> dict[str, str]:
    """Folded language name -> code, so "Deutsch", "português" or "English" work as a choice."""
    names: dict[str, str] = {}
    for display in SHIPPED_LANGUAGES:
        languages = Locale.parse(display).languages
        for code in SHIPPED_LANGUAGES:
            names.setdefault(_fold(languages[code]), code)
    return names


def _shipped_choice(choice: str | None) -> str | None:
    """The shipped language a choice names ("de", "pt-BR", "pt_BR", "Deutsch"), or None."""
    if not isinstance(choice, str) or len(choice) > 64:
        return None
    base = re.split(r"[-_@.]", choice.strip(), maxsplit=1)[0].casefold()
    if base in SHIPPED_LANGUAGES:
        return base
    return _language_names().get(_fold(choice))


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

# At most 10 rows (WhatsApp list limit), each law reachable and each shipped language's home:
# GB, DE, FR, ES, PT (GDPR, and the en/de/fr/es/pt homes), California (CCPA), the rest of the US
# (so non-Californians have an honest pick), BR (LGPD), SG (PDPA), and OTHER (type your
# country). IE, NL, IT and all others are reached by typing the name: parse_residence.
_CHOICE_CODES: tuple[str, ...] = ("GB", "DE", "FR", "ES", "PT", CALIFORNIA, "US", "BR", "SG")
_ROW_TITLE_MAX = 24  # WhatsApp list row title limit
_LABELS: dict[str, dict[str, str]] = {
    CALIFORNIA: {
        "en": "California",
        "de": "Kalifornien",
        "fr": "Californie",
        "es": "California",
        "pt": "Califórnia",
    },
    "US": {
        "en": "USA (other state)",
        "de": "USA (anderer Staat)",
        "fr": "États-Unis (autre État)",
        "es": "EE. UU. (otro estado)",
        "pt": "EUA (outro estado)",
    },
    OTHER: {
        "en": "Other country",
        "de": "Anderes Land",
        "fr": "Autre pays",
        "es": "Otro país",
        "pt": "Outro país",
    },
}


def _label(code: str, language: str) -> str:
    """Localized row title, clipped to WhatsApp's 24 characters."""
    name = _LABELS.get(code, {}).get(language) or Locale.parse(language).territories[code]
    return name if len(name) <= _ROW_TITLE_MAX else name[: _ROW_TITLE_MAX - 1] + "…"


@lru_cache(maxsize=len(SHIPPED_LANGUAGES))
def _choices(language: str) -> tuple[tuple[str, str], ...]:
    return tuple((code, _label(code, language)) for code in (*_CHOICE_CODES, OTHER))


def country_choices(locale: str) -> list[tuple[str, str]]:
    """(row id, localized title) for the residence list; ids round-trip via parse_residence."""
    language = _shipped_choice(locale) or DEFAULT_LANGUAGE
    return list(_choices(language))
