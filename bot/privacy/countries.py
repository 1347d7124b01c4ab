"""Which law applies where, and the words people type for a place: `flows/policy/countries.yaml`.

These are facts the privacy team answers for (which countries are under GDPR, which US area
codes count as California, what "Holland" means), so they are a file the team reads and
edits, not Python. This module reads that file into `Countries` and refuses anything it
cannot use with one `file:line: reason` line (`bot.datafile.DataFileError`), the way the
flow files and the template registry are read.

Where the loaded file lives: the pure functions that use it (`decide`, `parse_residence`,
`region_of_number` ..., all importable from `bot.privacy.jurisdiction`) run on every turn
and keep the signatures their callers know, with one more optional argument, `countries`.
Whoever loaded a file passes it there (`flows check` and `locales extract` read the one in
the flows folder they are given; tests pass their own). Without it they use
`shipped_countries()`: the file in this checkout's `flows/`, read once on first use and
kept. The renderer asks for it while the app is built, so a broken file stops start-up
rather than a turn. Until the app factory and the turn runner pass a loaded file down,
`BOT_FLOWS_DIR` changes what `flows check` reads, not what the running bot reads.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel import Locale

from bot.config import PROJECT
from bot.datafile import META, DataFileError, line_of, read_yaml, shown_path
from bot.whatsapp.messages import LIST_ROWS_MAX

COUNTRIES_FILE = "policy/countries.yaml"  # in the flows folder
LIST_MAX = LIST_ROWS_MAX - 1  # the bot adds "another country" to the rows the file names

Residence = tuple[str, str | None]  # (country, region), e.g. ("US", "US-CA")


class Law(StrEnum):
    """The privacy regime whose texts (notices, rights, deadlines) a person gets."""

    GDPR = "gdpr"
    CCPA = "ccpa"
    PDPA = "pdpa"
    LGPD = "lgpd"
    STRICT = "strict"


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: caches key on it
class Countries:
    """The file's facts, checked. Every key is a code, every word folded (`fold`)."""

    file: str  # as shown in messages, e.g. "flows/policy/countries.yaml"
    law_by_country: Mapping[str, Law]  # "DE" -> GDPR; a country not here is STRICT
    law_by_region: Mapping[str, Law]  # "US-CA" -> CCPA
    region_by_area_code: Mapping[str, str]  # "415" -> "US-CA"
    residence_list: tuple[tuple[str, str | None], ...]  # (code, message id of its title)
    own_names: tuple[str, ...]  # countries also named in their own languages, sorted
    aliases: Mapping[str, Residence]  # "holland" -> ("NL", None)
    whole_answer_only: frozenset[str]  # "us", "island": never read inside a sentence

    def places(self, law: Law) -> frozenset[str]:
        """The countries and regions the file puts under `law`."""
        found = {**self.law_by_country, **self.law_by_region}
        return frozenset(code for code, listed in found.items() if listed is law)

    def area_codes(self, region: str) -> frozenset[str]:
        return frozenset(c for c, listed in self.region_by_area_code.items() if listed == region)


def fold(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form: "Bosnia & Herzegovina" -> "bosnia ..."."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    return " ".join(re.sub(r"[\W_]+", " ", plain.replace(".", "")).split())


_COUNTRY = re.compile(r"[A-Z]{2}")
_REGION = re.compile(r"([A-Z]{2})-[A-Z0-9]{1,3}")
_AREA_CODE = re.compile(r"[2-9][0-9]{2}")
_MESSAGE_ID = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)+")
NOT_COUNTRIES = frozenset({"EU", "EZ", "UN", "QO", "XA", "XB", "ZZ"})  # CLDR's groupings
_SECTIONS = ("laws", "area_codes", "residence_list", "own_names", "aliases", "whole_answer_only")


@lru_cache(maxsize=1)
def known_countries() -> frozenset[str]:
    """Alpha-2 codes Babel knows as territories (CLDR's list, which includes XK, Kosovo)."""
    codes = {c for c in Locale.parse("en").territories if _COUNTRY.fullmatch(c)}
    return frozenset(codes - NOT_COUNTRIES)


@lru_cache(maxsize=1)
def shipped_countries() -> Countries:
    """The file in this checkout's `flows/`, read on first use."""
    return load_countries(PROJECT / "flows" / COUNTRIES_FILE)


def load_countries(path: Path) -> Countries:
    """The file at `path`, or `DataFileError` naming the first thing wrong and its line."""
    data = read_yaml(path, f"sections: {', '.join(_SECTIONS)}")
    file = shown_path(path)
    for key in data:
        if key not in META and key not in _SECTIONS:
            known = ", ".join(_SECTIONS)
            raise DataFileError(file, line_of(data, key), f"unknown section '{key}' ({known})")
    laws = _laws(file, data)
    return Countries(
        file=file,
        law_by_country={code: law for code, law in laws.items() if "-" not in code},
        law_by_region={code: law for code, law in laws.items() if "-" in code},
        region_by_area_code=_area_codes(file, data),
        residence_list=_residence_list(file, data),
        own_names=tuple(sorted(set(_codes(file, data, "own_names", regions=False)))),
        aliases=_aliases(file, data),
        whole_answer_only=frozenset(_words(file, data, "whole_answer_only")),
    )


def _residence_of(code: str) -> Residence:
    """("US", "US-CA") for a region, ("DE", None) for a country."""
    return (code.split("-", 1)[0], code) if "-" in code else (code, None)


# --- sections ----------------------------------------------------------------------------


def _laws(file: str, data: dict[str, Any]) -> dict[str, Law]:
    laws = _section(file, data, "laws", dict, "each law with its list of places", required=True)
    named = {law.value: law for law in Law if law is not Law.STRICT}
    found: dict[str, Law] = {}
    for name, _ in _entries(laws):
        line = line_of(laws, name)
        if name not in named:
            hint = "every place not listed gets it" if name == "strict" else ", ".join(named)
            raise DataFileError(file, line, f"laws: '{name}' is not a law to list here ({hint})")
        for code in _codes(file, laws, name, regions=True, what=f"laws.{name}"):
            if code in found and found[code] is not named[name]:
                message = f"laws: {code} is under both {found[code]} and {name}"
                raise DataFileError(file, line, message)
            found[code] = named[name]
    return found


def _area_codes(file: str, data: dict[str, Any]) -> dict[str, str]:
    section = _section(file, data, "area_codes", dict, "each US state with its area codes")
    found: dict[str, str] = {}
    for region, codes in _entries(section):
        line = line_of(section, region)
        if not (isinstance(region, str) and _REGION.fullmatch(region) and region[:3] == "US-"):
            reason = f"area_codes: '{region}' is not a US state like US-CA (only US numbers)"
            raise DataFileError(file, line, reason)
        if not isinstance(codes, list):
            reason = f"area_codes.{region} must be a list of area codes, like [415, 650]"
            raise DataFileError(file, line, reason)
        for code in codes:
            text = str(code) if isinstance(code, int) and not isinstance(code, bool) else code
            if not isinstance(text, str) or not _AREA_CODE.fullmatch(text):
                reason = f"area_codes.{region}: '{code}' is not a 3-digit area code"
                raise DataFileError(file, line, reason)
            if text in found:
                reason = f"area_codes: {text} is listed under {found[text]} already"
                raise DataFileError(file, line, reason)
            found[text] = region
    return found


def _residence_list(file: str, data: dict[str, Any]) -> tuple[tuple[str, str | None], ...]:
    rows = _section(file, data, "residence_list", list, "the codes of the rows", required=True)
    line = line_of(data, "residence_list")
    if not rows or len(rows) > LIST_MAX:
        reason = (
            f"residence_list has {len(rows)} rows; it needs 1 to {LIST_MAX} (the bot adds "
            f"'another country', and WhatsApp shows {LIST_ROWS_MAX})"
        )
        raise DataFileError(file, line, reason)
    found: dict[str, str | None] = {}
    for row in rows:
        at, title = line, None
        if isinstance(row, dict):
            at = row.get("__line__", line)
            pairs = _entries(row)
            if len(pairs) != 1:
                raise DataFileError(file, at, "residence_list: write a row as CODE or CODE: id")
            (row, title), *_ = pairs
            if not isinstance(title, str) or not _MESSAGE_ID.fullmatch(title):
                reason = f"residence_list: '{title}' is not a message id like residence.other"
                raise DataFileError(file, at, reason)
        code = _place(file, at, "residence_list", row, regions=True)
        if "-" in code and title is None:
            reason = f"residence_list: {code} needs a title, e.g. {code}: residence.my_region"
            raise DataFileError(file, at, reason)
        if code in found:
            raise DataFileError(file, at, f"residence_list: {code} is listed twice")
        found[code] = title
    return tuple(found.items())


def _aliases(file: str, data: dict[str, Any]) -> dict[str, Residence]:
    section = _section(file, data, "aliases", dict, "each place with the words for it")
    found: dict[str, Residence] = {}
    for place, _ in _entries(section):
        line = line_of(section, place)
        code = _place(file, line, "aliases", place, regions=True)
        for word in _words(file, section, place, what=f"aliases.{code}"):
            if found.get(word, _residence_of(code)) != _residence_of(code):
                other = found[word][1] or found[word][0]
                reason = f"aliases: '{word}' names both {other} and {code}"
                raise DataFileError(file, line, reason)
            found[word] = _residence_of(code)
    return found


# --- values ------------------------------------------------------------------------------


def _entries(mapping: dict[Any, Any]) -> list[tuple[Any, Any]]:
    return [(key, value) for key, value in mapping.items() if key not in META]


def _section(
    file: str, data: dict[str, Any], key: str, kind: type, shape: str, required: bool = False
) -> Any:
    value = data.get(key)
    if value is None and not required:
        return kind()
    if not isinstance(value, kind):
        line = line_of(data, key) if key in data else data["__line__"]
        missing = "is missing" if value is None else "is malformed"
        raise DataFileError(file, line, f"{key} {missing}: it lists {shape}")
    return value


def _codes(
    file: str, data: dict[str, Any], key: str, regions: bool, what: str | None = None
) -> list[str]:
    value, line, what = data.get(key), line_of(data, key), what or key
    if value is None:
        return []
    if not isinstance(value, list):
        raise DataFileError(file, line, f"{what} must be a list of codes, like [DE, FR]")
    return [_place(file, line, what, code, regions) for code in value]


def _place(file: str, line: int, what: str, code: Any, regions: bool) -> str:
    """A country code Babel knows ("DE"), or with `regions` a region of one ("US-CA")."""
    shape = "a country code like DE" + (" or a region like US-CA" if regions else "")
    match = _REGION.fullmatch(code) if regions and isinstance(code, str) else None
    country = match.group(1) if match else code
    if not isinstance(country, str) or not _COUNTRY.fullmatch(country):
        raise DataFileError(file, line, f"{what}: '{code}' is not {shape}")
    if country not in known_countries():
        raise DataFileError(file, line, f"{what}: {country} is not a country code")
    return str(code)


def _words(file: str, data: dict[str, Any], key: Any, what: str | None = None) -> list[str]:
    """The folded words of a list; an entry that folds to nothing is a mistake."""
    value, line, what = data.get(key), line_of(data, key), what or str(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise DataFileError(file, line, f"{what} must be a list of words, like [Holland]")
    words = [fold(word) if isinstance(word, str) else "" for word in value]
    for word, raw in zip(words, value, strict=True):
        if not word:
            raise DataFileError(file, line, f"{what}: '{raw}' is not a word")
    return words
