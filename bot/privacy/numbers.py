"""What a WhatsApp number says about where its owner lives: a country, and for US numbers a state.

Number facts come from libphonenumber's own data, not hand-written lists, with one twist:
WhatsApp delivers numbers that libphonenumber calls invalid (fictional 555 ranges, Ofcom drama
numbers, brand-new ranges). Such a number still keeps the country of its calling code, and a US
number keeps its area code, so neither is ever silently dropped to the default. Every function
here is pure and never raises on bad input.
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers

from bot.privacy.countries import Countries, shipped_countries

_NUMBER_CACHE = 4096


def normalize_number(e164: str | None) -> str | None:
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
    normalized = normalize_number(e164)
    return _number_facts(normalized)[0] if normalized else None


def region_of_number(e164: str, countries: Countries | None = None) -> str | None:
    """The US state whose `area_codes` list a US number's area code ("US-CA"), else None.

    A weak signal: people keep their numbers when they move, so a 415 number says where the
    number was issued, not where its owner lives. That is why stated residence wins. Works for
    numbers libphonenumber calls invalid (555 ranges), since only the area code is read.
    """
    normalized = normalize_number(e164)
    if not normalized:
        return None
    country, national = _number_facts(normalized)
    if country != "US" or national is None or len(national) < 3:
        return None
    facts = countries if countries is not None else shipped_countries()
    return facts.region_by_area_code.get(national[:3])


def geocoder_california_area_codes() -> frozenset[str]:
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
