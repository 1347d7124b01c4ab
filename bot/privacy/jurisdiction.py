"""Which privacy law applies to a person, and which language the bot speaks to them.

Order of evidence: the residence the person stated in chat wins over their WhatsApp number, and
the number wins over nothing; with no usable evidence the bot applies its own strictest policy
(``Law.STRICT``: GDPR-like rights for everyone). Every function here is pure and never raises on
bad input, because it runs on every turn with whatever Meta (or a person) sent.

Which places fall under which law, which US area codes count as California and the words people
type for a place are the privacy team's: `flows/policy/countries.yaml`, read by `countries`
(which also says where the loaded file comes from). The rest is split by concern, and every
name is importable from here:

- `numbers`: what a number says (its country, and a US number's state);
- `residence`: reading what a person typed or picked as where they live, the list rows, and a
  place's name in a person's language;
- `language`: the language to write in, and whether the person chose it;
- this module: the `Jurisdiction` decision and the law of a place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.privacy.countries import Countries, Law, Residence, shipped_countries
from bot.privacy.language import (
    DEFAULT_LANGUAGE,
    SHIPPED_LANGUAGES,
    decide_language,
    language_for,
)
from bot.privacy.numbers import country_of_number, region_of_number
from bot.privacy.residence import OTHER, Choice, parse_residence, place_of, residence_choices

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
    "decide_language",
    "language_for",
    "law_for",
    "parse_residence",
    "place_of",
    "region_of_number",
    "residence_choices",
]

CALIFORNIA = "US-CA"

_ALPHA2 = re.compile(r"[A-Z]{2}")
_EU_EXCEPTIONAL_CODES = {"UK": "GB", "EL": "GR"}  # the EU's own spellings, not ISO 3166


@dataclass(frozen=True, slots=True)
class Jurisdiction:
    """The decision plus the evidence it rests on, so notices and audits can say why."""

    law: Law
    country: str | None  # ISO 3166-1 alpha-2, e.g. "DE"; None when unknown
    region: str | None  # ISO 3166-2, e.g. "US-CA", when known
    basis: str  # "stated" | "number" | "default"


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
