"""Notices from facts: what a privacy notice must contain, and the facts filled into it.

A notice in locales/ is written with placeholders (`{retention}`, `{rights}`,
`{authority}` …). `NoticeFacts` fills each from the settings and
`flows/policy/notices.yaml`, in the person's language, for their law and their
place, so a notice cannot state a retention other than `BOT_RETENTION`, or a
right without the way to use it. The same file lists each law's required
elements; `flows check` (`bot.conversation.check_notices`) holds every notice to them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babel import Locale
from babel.lists import format_list

from bot.datafile import META, DataFileError, line_of, read_yaml, shown_path
from bot.privacy.countries import Law

NOTICES_FILE = "policy/notices.yaml"  # in the flows folder
_SECTIONS = ("required", "first_contact", "rights", "how", "processors", "authorities")
HOW_KINDS = ("keyword", "contact", "none")
CONTACTS = ("dpo_contact", "local_contact")  # the settings a right may send people to

# Placeholders the bot computes; `TEXT_PARTS` are filled from the text `notice.<name>`.
COMPUTED = frozenset({"retention", "chat_days", "recipients", "rights", "authority"})
TEXT_PARTS = frozenset(
    {"purpose", "basis", "categories", "transfers", "withdrawal", "sale", "sensitive"}
)
FACTS = COMPUTED | TEXT_PARTS
CHAT = "service"  # the category a conversation's messages are stored under

# `text(message_id, **params)`: a text in the person's language and law.
TextOf = Callable[..., str]


@dataclass(frozen=True, slots=True)
class Checklist:
    """What one notice must contain: each element and the placeholder that carries it."""

    law: str | None  # None: every law (the first-contact notice)
    source: str  # where the duty comes from, named in `flows check`'s findings
    notice: str  # the message id
    elements: tuple[tuple[str, str], ...]  # (element, placeholder)
    line: int


@dataclass(frozen=True, slots=True)
class How:
    """How a person uses a right: a keyword group, or a contact setting; `none`: the
    right's own text says it all."""

    kind: str
    value: str


@dataclass(frozen=True)
class Notices:
    file: str
    required: Mapping[str, Checklist]
    first_contact: Checklist
    rights: Mapping[str, tuple[str, ...]]
    how: Mapping[str, How]
    processors: tuple[tuple[str, str], ...]  # (name, what it does)
    authorities: Mapping[str, str]  # place code -> authority
    lines: Mapping[str, int]  # "rights.gdpr", "how.access" … -> line, for findings

    @property
    def message_ids(self) -> tuple[str, ...]:
        """Every text the facts are made of, so `flows check` asks each language for it."""
        rights = sorted({r for names in self.rights.values() for r in names})
        return (
            *(f"right.{name}" for name in rights),
            *(f"processor.{does}" for does in sorted({does for _, does in self.processors})),
            *(f"notice.{part}" for part in sorted(TEXT_PARTS)),
            "notice.retention", "notice.retention_item", "notice.processor", "notice.separator",
            "days.one", "days.other", "processor.unnamed",
            "authority.unknown", self.first_contact.notice,
        )  # fmt: skip


def load_notices(path: Path) -> Notices:
    """The file at `path`, or `DataFileError` naming the first thing wrong and its line."""
    data = read_yaml(path, f"sections: {', '.join(_SECTIONS)}")
    file = shown_path(path)
    for key in data:
        if key not in META and key not in _SECTIONS:
            raise DataFileError(file, line_of(data, key), f"unknown section '{key}'")
        if key not in META and not isinstance(data[key], dict | list):
            raise DataFileError(file, line_of(data, key), f"{key} is malformed")
    for key in _SECTIONS:
        if key not in data:
            raise DataFileError(file, data["__line__"], f"{key} is missing")
    required = {
        law: _checklist(file, law, raw, data["required"]) for law, raw in _items(data["required"])
    }
    for law in Law:
        if law.value not in required:
            raise DataFileError(file, line_of(data, "required"), f"required: {law} is missing")
    lines: dict[str, int] = {}
    rights: dict[str, tuple[str, ...]] = {}
    for law, names in _items(data["rights"]):
        lines[f"rights.{law}"] = line_of(data["rights"], law)
        if law not in required or not isinstance(names, list) or not names:
            raise DataFileError(file, lines[f"rights.{law}"], f"rights: {law} needs a list")
        rights[law] = tuple(str(n) for n in names)
    how = {}
    for name, raw in _items(data["how"]):
        lines[f"how.{name}"] = line_of(data["how"], name)
        how[name] = _how(file, lines[f"how.{name}"], name, raw)
    for law, names in rights.items():
        for name in names:
            if name not in how:
                problem = f"rights: {law} lists '{name}', which `how` does not explain"
                raise DataFileError(file, lines[f"rights.{law}"], problem)
    return Notices(
        file=file,
        required=required,
        first_contact=_checklist(file, None, data["first_contact"], data),
        rights=rights,
        how=how,
        processors=tuple(_processor(file, p) for p in data["processors"]),
        authorities={str(code): str(name) for code, name in _items(data["authorities"])},
        lines=lines,
    )


def _items(mapping: Any) -> list[tuple[str, Any]]:
    return [(str(k), v) for k, v in mapping.items() if k not in META]


def _checklist(file: str, law: str | None, raw: Any, parent: dict[str, Any]) -> Checklist:
    line = line_of(parent, law or "first_contact")
    what = f"required: {law}" if law else "first_contact"
    if not isinstance(raw, dict) or not isinstance(raw.get("elements"), dict):
        raise DataFileError(file, line, f"{what} needs source, notice and elements")
    for key in ("source", "notice"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise DataFileError(file, line, f"{what}: {key} is missing")
    elements = tuple((element, str(ph)) for element, ph in _items(raw["elements"]))
    return Checklist(law, raw["source"], raw["notice"], elements, line)


def _how(file: str, line: int, name: str, raw: Any) -> How:
    if not isinstance(raw, dict) or len(_items(raw)) != 1 or _items(raw)[0][0] not in HOW_KINDS:
        raise DataFileError(file, line, f"how: {name} needs one of {', '.join(HOW_KINDS)}")
    kind, value = _items(raw)[0]
    if kind == "contact" and value not in CONTACTS:
        raise DataFileError(file, line, f"how: {name}: contact is one of {', '.join(CONTACTS)}")
    return How(kind, str(value))


def _processor(file: str, raw: Any) -> tuple[str, str]:
    """(name, does); a processor not yet named is "" (shown as the text `processor.unnamed`)."""
    if not isinstance(raw, dict) or not raw.get("does"):
        line = raw.get("__line__") if isinstance(raw, dict) else None
        raise DataFileError(file, line, "processors: each needs what it does (and its name)")
    return str(raw.get("name") or ""), str(raw["does"])


class NoticeFacts:
    """The facts a notice states, rendered for one person on demand."""

    def __init__(
        self,
        notices: Notices,
        retention_days: Mapping[str, int],
        inbox_keep_days: int,
        keywords: Mapping[str, Mapping[str, tuple[str, ...]]],
        params: Mapping[str, str],
    ) -> None:
        self.notices = notices
        self._periods = dict(retention_days)
        self._inbox_days = inbox_keep_days
        self._keywords = keywords
        self._params = params

    def fill(
        self, names: set[str], lang: str, law: str, place: str | None, text: TextOf
    ) -> dict[str, str]:
        """The named facts as text; `text` renders the parts they are made of."""
        filled: dict[str, str] = {}
        for name in names & FACTS:
            if name in TEXT_PARTS:
                filled[name] = text(f"notice.{name}")
            else:
                filled[name] = getattr(self, f"_{name}")(lang, law, place, text)
        return filled

    @staticmethod
    def days(lang: str, days: int, text: TextOf) -> str:
        """ "90 days", "1 Tag": the catalog's words, by the language's plural rule (Babel's
        unit data lacks days in some languages)."""
        form = "one" if Locale.parse(lang).plural_form(days) == "one" else "other"
        return text(f"days.{form}", n=days)

    def _chat_days(self, lang: str, law: str, place: str | None, text: TextOf) -> str:
        return self.days(lang, self.keep_days(CHAT), text)

    def keep_days(self, category: str) -> int:
        """As `purge` enforces it: an unlisted category is kept as long as the longest."""
        return self._periods.get(category, max(self._periods.values(), default=90))

    def _retention(self, lang: str, law: str, place: str | None, text: TextOf) -> str:
        """Each category with its period, the chat first; equal labels and periods once."""
        seen: list[tuple[str, int]] = []
        for category in sorted(self._periods, key=lambda c: (c != CHAT, c)):
            item = (text(f"category.{category}"), self._periods[category])
            if item not in seen:
                seen.append(item)
        items = [text("notice.retention_item", label=label, days=self.days(lang, days, text))
                 for label, days in seen]  # fmt: skip
        return text(
            "notice.retention", messages=text("notice.separator").join(items),
            inbox_days=self.days(lang, self._inbox_days, text),
        )  # fmt: skip

    def _recipients(self, lang: str, law: str, place: str | None, text: TextOf) -> str:
        named = [
            text("notice.processor", name=name or text("processor.unnamed"),
                 does=text(f"processor.{does}"))
            for name, does in self.notices.processors
        ]  # fmt: skip
        return text("notice.separator").join(named)

    def _rights(self, lang: str, law: str, place: str | None, text: TextOf) -> str:
        names = self.notices.rights.get(law) or self.notices.rights[Law.STRICT.value]
        return format_list([self._right(name, lang, text) for name in names], locale=lang)

    def _right(self, name: str, lang: str, text: TextOf) -> str:
        how = self.notices.how[name]
        if how.kind == "keyword":
            words = self._keywords.get(how.value, {})
            shown = (words.get(lang) or words.get("en") or (how.value,))[0]
        elif how.kind == "contact":
            shown = self._params.get(how.value, "")
        else:
            shown = ""
        return text(f"right.{name}", how=shown)

    def _authority(self, lang: str, law: str, place: str | None, text: TextOf) -> str:
        for code in (place, place.split("-", 1)[0] if place else None):
            if code and code in self.notices.authorities:
                return self.notices.authorities[code]
        return text("authority.unknown")
