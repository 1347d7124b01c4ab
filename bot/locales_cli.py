"""`python -m bot locales extract|update|compile`: Babel's catalog workflow for message ids.

Texts are looked up by message id (`optin.notice`), so the ids come from the
flow files, the countries file (titles of the residence list) and the code, not
from scanning Python for `_()` calls:

- `extract` writes `locales/bot.pot`: every id the flows and the code send,
  plus the law variants (msgctxt) the English catalog has;
- `update` merges it into every `locales/<lang>/LC_MESSAGES/bot.po`: new ids
  appear untranslated, removed ones become obsolete (`#~`), translations stay;
- `compile` writes `bot.mo` files for other gettext tools.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po, write_po

from bot.conversation.check import LAWS, Use, message_uses
from bot.conversation.flowfile import FlowError, load_flows
from bot.datafile import DataFileError
from bot.i18n import DOMAIN, FALLBACK, po_path, read_catalog
from bot.privacy.countries import COUNTRIES_FILE, load_countries

TEMPLATE = f"{DOMAIN}.pot"


def _catalogs(locales_dir: Path) -> list[tuple[str, Path]]:
    return [(p.parts[-3], p) for p in sorted(locales_dir.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))]


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def template(flows_dir: Path, locales_dir: Path) -> Catalog:
    """The catalog every language should have: ids, where they are used, their tightest limit."""
    flows = load_flows(flows_dir)
    english_path = po_path(locales_dir, FALLBACK)
    english = read_catalog(english_path, FALLBACK) if english_path.exists() else Catalog()
    variants: dict[str, list[str | None]] = {}
    for m in english:
        if m.id and m.context in LAWS:
            variants.setdefault(m.id, []).append(m.context)
    uses: dict[str, list[Use]] = {}
    countries = load_countries(flows_dir / COUNTRIES_FILE)  # titles of the residence list
    for use in message_uses(flows, countries):
        uses.setdefault(use.message_id, []).append(use)
    pot = Catalog(project=DOMAIN, domain=DOMAIN, fuzzy=False)
    for message_id, found in uses.items():
        where = [(f"{flows_dir.name}/{u.file}", u.line) for u in found if u.file]
        tightest = min(found, key=lambda u: u.limit)
        note = f"{tightest.what}, at most {tightest.limit} characters"
        comments = [note if where else f"sent by the code; {note}"]
        for context in [None, *variants.get(message_id, [])]:
            pot.add(message_id, locations=where, auto_comments=comments, context=context)
    return pot


def extract(flows_dir: Path, locales_dir: Path) -> int:
    """Write `locales/bot.pot` from the flow files and the code's message ids."""
    try:
        pot = template(flows_dir, locales_dir)
    except FlowError as exc:
        return _fail(f"{flows_dir.name}/{exc}")
    except DataFileError as exc:
        return _fail(str(exc))
    path = locales_dir / TEMPLATE
    with path.open("wb") as fh:
        write_po(fh, pot, width=79)
    print(f"wrote {path} ({len(pot)} messages)")
    return 0


def update(locales_dir: Path) -> int:
    """Merge `bot.pot` into every language's catalog, keeping what is translated.

    Fuzzy matching is off: ids are names, not sentences, so a "close" id
    (`optin.notify` for `optin.notice`) is a different message, and copying its
    text as a draft would only hide that the new one needs translating.
    """
    pot_path = locales_dir / TEMPLATE
    if not pot_path.exists():
        return _fail(f"{pot_path} does not exist: run `python -m bot locales extract` first")
    with pot_path.open("rb") as fh:
        pot = read_po(fh, domain=DOMAIN)
    for lang, path in _catalogs(locales_dir):
        catalog = read_catalog(path, lang)
        catalog.update(pot, no_fuzzy_matching=True)
        with path.open("wb") as fh:
            write_po(fh, catalog, width=79)
        print(f"updated {path}")
    return 0


def compile(locales_dir: Path) -> int:
    """Write `bot.mo` next to each `bot.po`; non-zero if any catalog has errors.

    The bot does not need this: it compiles the `.po` files in memory when it
    starts (`bot.i18n.Texts`), so an edited text takes effect on restart. The
    `.mo` files are for other gettext tools; they are build output, not sources.
    """
    failed = 0
    for lang, path in _catalogs(locales_dir):
        try:
            with path.open("rb") as fh:
                catalog = read_po(fh, locale=lang, domain=DOMAIN, abort_invalid=True)
        except (PoFileError, ValueError) as exc:
            failed += _fail(f"{path}: {exc}")
            continue
        errors = [f"{path}:{m.lineno}: {e}" for m, errs in catalog.check() for e in errs]
        if errors:
            failed += _fail("\n".join(errors))
            continue
        mo_path = path.with_suffix(".mo")
        with mo_path.open("wb") as fh:
            write_mo(fh, catalog)
        print(f"wrote {mo_path}")
    return 1 if failed else 0
