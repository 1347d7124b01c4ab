"""Texts in the person's language and for their jurisdiction (Babel, gettext catalogs).

Messages are looked up by id (`optin.notice`), not by English sentence, so a
flow file and its texts can change independently. Jurisdiction variants are
gettext message contexts (`msgctxt "gdpr"`): the lookup tries the person's
law first, then the entry without context, then the same in English. Code
never branches on the law to pick a text.

Catalogs are `locales/<lang>/LC_MESSAGES/bot.po`, compiled with Babel in
memory when the bot starts, so an edited `.po` file takes effect on restart
with no build step. `python -m bot locales …` wraps Babel for the privacy team.
"""

from __future__ import annotations

import io
from pathlib import Path
from string import Formatter
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

DOMAIN = "bot"
FALLBACK = "en"
_FORMATTER = Formatter()


class _Blank(dict[str, Any]):
    """A missing parameter renders as nothing rather than failing a turn."""

    def __missing__(self, key: str) -> str:
        return ""


def po_path(locales: Path, lang: str) -> Path:
    return locales / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(path: Path, lang: str) -> Catalog:
    with path.open("rb") as fh:
        return read_po(fh, locale=lang, domain=DOMAIN)


def compile_catalog(catalog: Catalog) -> Translations:
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in _FORMATTER.parse(text) if name}


class Texts:
    """Every shipped language's catalog, compiled once at start."""

    def __init__(self, locales: Path) -> None:
        self.locales = locales
        self.catalogs: dict[str, Catalog] = {}
        self._translations: dict[str, Translations] = {}
        for path in sorted(locales.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
            lang = path.parts[-3]
            catalog = read_catalog(path, lang)
            self.catalogs[lang] = catalog
            self._translations[lang] = compile_catalog(catalog)
        if FALLBACK not in self._translations:
            raise FileNotFoundError(f"no English catalog at {po_path(locales, FALLBACK)}")

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(sorted(self._translations))

    def raw(self, lang: str, law: str | None, message_id: str) -> str | None:
        """The text as written in the catalog, or None if this language lacks it."""
        t = self._translations.get(lang)
        if t is None:
            return None
        if law:
            text = t.pgettext(law, message_id)
            if text != message_id:
                return text
        text = t.gettext(message_id)
        return text if text != message_id else None

    def template(self, lang: str, law: str | None, message_id: str) -> str | None:
        """The text before its placeholders are filled, English where `lang` lacks it."""
        return self.raw(lang, law, message_id) or self.raw(FALLBACK, law, message_id)

    def readings(self, message_id: str) -> tuple[str, ...]:
        """Every way a text reads: each language, each law's variant. A button's title
        typed in any of them is understood (`bot.conversation.engine`)."""
        return tuple(
            m.string
            for catalog in self.catalogs.values()
            for m in catalog
            if m.id == message_id and isinstance(m.string, str) and m.string and not m.fuzzy
        )

    def get(self, lang: str, law: str | None, message_id: str, **params: Any) -> str:
        text = self.template(lang, law, message_id)
        if text is None:
            return message_id  # `flows check` makes sure this never ships
        return text.format_map(_Blank(params)) if params or "{" in text else text
