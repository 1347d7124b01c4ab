"""Jurisdiction and language: sample numbers, stated residence, free text, and no crashes."""

from __future__ import annotations

import time

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.privacy.countries import shipped_countries
from bot.privacy.jurisdiction import (
    OTHER,
    SHIPPED_LANGUAGES,
    Jurisdiction,
    Law,
    country_of_number,
    decide,
    language_for,
    law_for,
    parse_residence,
    region_of_number,
    residence_choices,
)
from bot.privacy.numbers import geocoder_california_area_codes

# What flows/policy/countries.yaml says; test_countries_file.py shows the code reads the file.
GDPR_COUNTRIES = shipped_countries().places(Law.GDPR)
CALIFORNIA_AREA_CODES = shipped_countries().area_codes("US-CA")

_EEA_TEXT = (
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE IS LI NO"
)
EEA = _EEA_TEXT.split()  # the 27 EU states and the 3 EEA states

# The numbers of ../shared/meta-samples/README.md: (number, law, country, region, language).
SAMPLES = [
    ("+16505551234", Law.CCPA, "US", "US-CA", "en"),
    ("+14155550123", Law.CCPA, "US", "US-CA", "en"),
    ("+491713920042", Law.GDPR, "DE", None, "de"),
    ("+447700900123", Law.GDPR, "GB", None, "en"),
    ("+6581234567", Law.PDPA, "SG", None, "en"),
    ("+5511987654321", Law.LGPD, "BR", None, "pt"),
    ("+12195555358", Law.STRICT, "US", None, "en"),
    ("+13437772910", Law.STRICT, "CA", None, "en"),
]


@pytest.mark.parametrize(("number", "law", "country", "region", "language"), SAMPLES)
def test_sample_numbers(
    number: str, law: Law, country: str, region: str | None, language: str
) -> None:
    expected = Jurisdiction(law, country, region, "number")
    assert decide(None, number) == expected
    assert decide(None, number.lstrip("+")) == expected  # Meta's wa_id has no "+"
    assert country_of_number(number) == country
    assert region_of_number(number) == region
    assert language_for(None, number) == language


def test_invalid_numbers_keep_their_country() -> None:
    """The trap: libphonenumber rejects these, yet they are real WhatsApp senders."""
    uk = phonenumbers.parse("+447700900123")  # matches no +44 region: the main one, GB
    assert not phonenumbers.is_valid_number(uk)
    assert phonenumbers.region_code_for_number(uk) is None
    assert decide(None, "+447700900123").law is Law.GDPR
    # Exchange 055 is not a valid NANP number, but 650 is still a California area code.
    assert not phonenumbers.is_valid_number(phonenumbers.parse("+16500551234"))
    assert decide(None, "+16500551234") == Jurisdiction(Law.CCPA, "US", "US-CA", "number")
    # An invalid (short) +1 809 number is still the Dominican Republic, Spanish.
    assert not phonenumbers.is_valid_number(phonenumbers.parse("+1809123456"))
    assert country_of_number("+1809123456") == "DO"
    assert language_for(None, "+1809123456") == "es"


def test_california_area_codes_match_libphonenumber() -> None:
    """The file's codes are libphonenumber's data; an upgrade that adds an overlay fails here."""
    from_geocoder = geocoder_california_area_codes()
    assert from_geocoder == CALIFORNIA_AREA_CODES, (
        f"update area_codes.US-CA in flows/policy/countries.yaml: "
        f"add {sorted(from_geocoder - CALIFORNIA_AREA_CODES)}, "
        f"drop {sorted(CALIFORNIA_AREA_CODES - from_geocoder)}"
    )
    assert {"213", "310", "415", "650", "916"} <= CALIFORNIA_AREA_CODES
    assert not {"212", "219", "343", "503", "702"} & CALIFORNIA_AREA_CODES


@pytest.mark.parametrize("region", EEA)
def test_eea_numbers_are_gdpr(region: str) -> None:
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    number = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    assert decide(None, number) == Jurisdiction(Law.GDPR, region, None, "number")


@pytest.mark.parametrize(
    ("number", "country", "language"),
    [
        ("+43664123456", "AT", "de"),
        ("+33612345678", "FR", "fr"),
        ("+34612345678", "ES", "es"),
        ("+351912345678", "PT", "pt"),
        ("+32470123456", "BE", "fr"),  # nl first in Babel's order, but not shipped
        ("+353851234567", "IE", "en"),
        ("+393123456789", "IT", "en"),  # it is not shipped
        ("+5215512345678", "MX", "es"),
        ("+41791234567", "CH", "de"),
    ],
)
def test_language_from_number(number: str, country: str, language: str) -> None:
    assert country_of_number(number) == country
    assert language_for(None, number) == language


def test_switzerland_is_strict_and_german() -> None:
    assert decide(None, "+41791234567") == Jurisdiction(Law.STRICT, "CH", None, "number")
    assert language_for(None, "+41791234567") == "de"


def test_us_outside_california_is_strict() -> None:
    assert decide(None, "+12125550123") == Jurisdiction(Law.STRICT, "US", None, "number")


@pytest.mark.parametrize("number", ["", "   ", "abc", "+999123", "+", "+1", "+80012345678", None])
def test_unusable_numbers_get_the_strict_default(number: str | None) -> None:
    assert decide(None, number) == Jurisdiction(Law.STRICT, None, None, "default")
    assert language_for(None, number) == "en"


def test_stated_residence_wins_over_the_number() -> None:
    uk_in_germany = decide(parse_residence("Deutschland"), "+447700900123")
    assert uk_in_germany == Jurisdiction(Law.GDPR, "DE", None, "stated")
    german_in_california = decide(parse_residence("California"), "+491713920042")
    assert german_in_california == Jurisdiction(Law.CCPA, "US", "US-CA", "stated")
    californian_in_germany = decide(("DE", None), "+16505551234")
    assert californian_in_germany == Jurisdiction(Law.GDPR, "DE", None, "stated")


def test_stated_residence_forms() -> None:
    assert decide(("US", None), "+16505551234").law is Law.STRICT  # US but not California
    assert decide(("us", "us-ca"), None) == Jurisdiction(Law.CCPA, "US", "US-CA", "stated")
    assert decide(["SG", None], None).law is Law.PDPA  # as read back from JSON
    assert decide(("DE", "US-CA"), None) == Jurisdiction(Law.GDPR, "DE", None, "stated")
    assert decide(("", None), "+5511987654321").basis == "number"  # malformed: ignored
    assert decide(("UK", None), None) == Jurisdiction(Law.GDPR, "GB", None, "stated")


@pytest.mark.parametrize(
    ("country", "region", "law"),
    [
        ("DE", None, Law.GDPR),
        ("GB", None, Law.GDPR),
        ("NO", None, Law.GDPR),
        ("RE", None, Law.GDPR),  # Réunion is EU territory
        ("CH", None, Law.STRICT),
        ("JE", None, Law.STRICT),
        ("US", None, Law.STRICT),
        ("US", "US-NY", Law.STRICT),
        ("US", "US-CA", Law.CCPA),
        (None, "US-CA", Law.CCPA),
        ("sg", None, Law.PDPA),
        ("BR", None, Law.LGPD),
        (None, None, Law.STRICT),
    ],
)
def test_law_for(country: str | None, region: str | None, law: Law) -> None:
    assert law_for(country, region) is law


def test_gdpr_countries_cover_eu_eea_and_uk() -> None:
    assert {*EEA, "GB"} <= GDPR_COUNTRIES
    assert "CH" not in GDPR_COUNTRIES


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # en
        ("Germany", ("DE", None)),
        ("germany", ("DE", None)),
        ("UK", ("GB", None)),
        ("United Kingdom", ("GB", None)),
        ("England", ("GB", None)),
        ("U.S.A.", ("US", None)),
        ("California", ("US", "US-CA")),
        ("I live in San Francisco, California, USA", ("US", "US-CA")),
        ("Ireland", ("IE", None)),
        ("Türkiye", ("TR", None)),
        ("turkey", ("TR", None)),
        # de
        ("Deutschland", ("DE", None)),
        ("Ich wohne in Österreich", ("AT", None)),
        ("Vereinigtes Königreich", ("GB", None)),
        ("Kalifornien", ("US", "US-CA")),
        ("Schweiz", ("CH", None)),
        # fr
        ("Allemagne", ("DE", None)),
        ("Royaume-Uni", ("GB", None)),
        ("États-Unis", ("US", None)),
        ("etats unis", ("US", None)),
        ("Je vis en Belgique", ("BE", None)),
        ("Californie", ("US", "US-CA")),
        # es
        ("Alemania", ("DE", None)),
        ("España", ("ES", None)),
        ("EE. UU.", ("US", None)),
        ("Vivo en México", ("MX", None)),
        # pt
        ("Brasil", ("BR", None)),
        ("EUA", ("US", None)),
        ("Califórnia", ("US", "US-CA")),
        ("Moro no Brasil", ("BR", None)),
        ("Alemanha", ("DE", None)),
        # the countries' own names and codes
        ("Polska", ("PL", None)),
        ("Sverige", ("SE", None)),
        ("DE", ("DE", None)),
        ("US-CA", ("US", "US-CA")),
        ("us_ca", ("US", "US-CA")),
        ("CA", ("CA", None)),  # ISO Canada, not California
        ("Rhode Island", ("US", "US-RI")),
        ("Bosnia & Herzegovina", ("BA", None)),
        ("Papua New Guinea", ("PG", None)),
    ],
)
def test_parse_residence(text: str, expected: tuple[str, str | None]) -> None:
    assert parse_residence(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "   ", "no", "sí", "de", "maybe", "Germany or France", OTHER, "x" * 400, "Atlantis"],
)
def test_parse_residence_not_understood(text: str) -> None:
    assert parse_residence(text) is None


@pytest.mark.parametrize(
    ("choice", "number", "language"),
    [
        ("fr", "+491713920042", "fr"),
        ("PT-br", "+447700900123", "pt"),
        ("es_MX", None, "es"),
        ("Deutsch", "+5511987654321", "de"),
        ("português", None, "pt"),
        ("English", "+491713920042", "en"),
        ("it", "+491713920042", "de"),  # not shipped: the number decides
        ("", "+5511987654321", "pt"),
        (None, None, "en"),
    ],
)
def test_language_choice(choice: str | None, number: str | None, language: str) -> None:
    assert language_for(choice, number) == language


@pytest.mark.parametrize("locale", [*SHIPPED_LANGUAGES, "pt_BR", "de-AT", "xx", ""])
def test_country_choices(locale: str) -> None:
    """Titles that are texts (California, OTHER) are checked in test_countries_file.py."""
    rows = residence_choices(locale)
    assert 1 < len(rows) <= 10  # WhatsApp list limit
    assert all(0 < len(c.name) <= 24 for c in rows if not c.message_id)  # row title limit
    assert rows[-1].code == OTHER
    reached = {decide(parse_residence(c.code), None).law for c in rows[:-1]}
    assert {Law.GDPR, Law.CCPA, Law.PDPA, Law.LGPD, Law.STRICT} == reached
    assert parse_residence(OTHER) is None


def test_country_choices_are_localized() -> None:
    assert {c.code: c.name for c in residence_choices("de")}["DE"] == "Deutschland"
    assert {c.code: c.name for c in residence_choices("pt")}["BR"] == "Brasil"
    assert residence_choices("xx") == residence_choices("en")


def test_decide_is_cheap() -> None:
    started = time.perf_counter()
    for _ in range(10_000):
        decide(None, "+16505551234")
    assert time.perf_counter() - started < 0.5


numbers = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"\A(\+|00)?[0-9 ()-]{0,20}\Z"),
    st.integers(min_value=0, max_value=10**15).map(lambda n: f"+{n}"),
)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=60), number=numbers, choice=st.one_of(st.none(), st.text(max_size=8)))
def test_never_raises(text: str, number: str, choice: str | None) -> None:
    stated = parse_residence(text)
    result = decide(stated, number)
    assert isinstance(result.law, Law)
    assert result.basis in {"stated", "number", "default"}
    assert language_for(choice, number) in SHIPPED_LANGUAGES
    country = country_of_number(number)
    assert country is None or (len(country) == 2 and country.isupper())
    assert region_of_number(number) in {None, "US-CA"}
    assert decide(None, number).law is law_for(country, region_of_number(number))
