"""The texts half of `flows check`: every message the bot sends, in every language and law.

A text missing in one language or one law's variant, a placeholder that differs from
English, or a text longer than WhatsApp accepts only shows when a person hits it; here
each catalog is checked against what the flows (and the code) actually send.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from string import Formatter

from babel import Locale
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import PoFileError, read_po

from bot.conversation.check_report import LAWS, SHIPPED_LANGUAGES, VARIANTS, Report
from bot.conversation.flowfile import FlowSet
from bot.i18n import DOMAIN, FALLBACK, placeholders, po_path, read_catalog
from bot.privacy.jurisdiction import Countries, residence_choices
from bot.whatsapp import messages as wa

DEFAULT_PARAM = "x" * 40
CAPTION_MAX = 1024  # a document's caption (the data export)
# The categories messages are stored under (`BOT_RETENTION`'s keys by default).
MESSAGE_CATEGORIES = ("service", "marketing", "utility", "transactional", "authentication", "otp",
                      "support")  # fmt: skip

CODE_MESSAGE_IDS: tuple[str, ...] = (
    "common.unknown",
    *(f"data.{n}" for n in ("header", "number", "name", "jurisdiction", "language")),
    *(f"data.{n}" for n in ("residence", "residence.unknown", "suppressed")),
    *(f"data.basis.{n}" for n in ("stated", "number", "default", "chosen", "words")),
    *(f"data.{n}" for n in ("consent", "no_consent", "messages", "handoffs")),
    *(f"consent.{n}" for n in ("granted", "revoked", "pending", "declined")),
    *(f"consent.method.whatsapp_{n}" for n in ("double_opt_in", "stop", "preferences")),
    "consent.method.whatsapp_opt_in_declined",
    *(f"law.{law}" for law in LAWS),
    # Labels of the message categories (BOT_RETENTION) in notices and the data summary.
    *(f"category.{c}" for c in MESSAGE_CATEGORIES),
    "residence.other",
    "rate.paused",
    "common.did_you_mean",
)
"""Message ids the code (not a flow) sends: the data summary, consent states, law names."""


@dataclass(frozen=True, slots=True)
class Use:
    """A message id a flow (or the code) sends, and the WhatsApp limit of where it goes."""

    message_id: str
    what: str
    limit: int
    file: str  # flow file name, "" for the code
    line: int


def message_uses(flows: FlowSet, countries: Countries | None = None) -> list[Use]:
    """Every message id the flows and the code send, with the limit where it is shown.

    `countries` (the flows folder's countries file) names the residence list's titles that
    are texts; without it, only "another country" is known to be one."""
    uses: list[Use] = []
    for state in flows.all_states:
        file, line = f"{state.flow}.yaml", state.where.line
        interactive = bool(state.buttons or state.list_button or state.rows or state.rows_from)
        limit = wa.INTERACTIVE_BODY_MAX if interactive else wa.TEXT_MAX
        for said in (state.say, state.reprompt, state.return_say):
            if said:
                uses.append(Use(said, "text", limit, file, line))
        uses += [Use(said, "text", wa.TEXT_MAX, file, line) for said in state.say_before]
        uses += [
            Use(b.title, "button title", wa.BUTTON_TITLE_MAX, file, line) for b in state.buttons
        ]
        if interactive and not state.buttons:  # the renderer's default label: "Options"
            label = state.list_button or "menu.list_button"
            uses.append(Use(label, "list button", wa.LIST_BUTTON_MAX, file, line))
        if state.rows_from == "countries":  # "other country" and the rows titled by a text
            rows = residence_choices(FALLBACK, countries) if countries else ()
            titles = [c.message_id for c in rows if c.message_id] or ["residence.other"]
            uses += [Use(t, "row title", wa.LIST_ROW_TITLE_MAX, file, line) for t in titles]
        for row in state.rows:
            uses.append(Use(row.title, "row title", wa.LIST_ROW_TITLE_MAX, file, line))
            if row.description:
                limit = wa.LIST_ROW_DESCRIPTION_MAX
                uses.append(Use(row.description, "row description", limit, file, line))
    uses += [Use(message_id, "text", wa.TEXT_MAX, "", 0) for message_id in CODE_MESSAGE_IDS]
    # The re-prompt goes out with the state's options; the export's text is its caption.
    uses.append(Use("common.unknown", "re-prompt", wa.INTERACTIVE_BODY_MAX, "", 0))
    uses.append(Use("common.did_you_mean", "re-prompt", wa.INTERACTIVE_BODY_MAX, "", 0))
    uses.append(Use("my_data.exported", "document caption", CAPTION_MAX, "", 0))
    return uses


def _usable(message: Message | None) -> bool:
    """What the bot really uses: translated and not a fuzzy draft (Babel skips those)."""
    return message is not None and bool(message.string) and not message.fuzzy


def resolve(catalog: Catalog, law: str | None, message_id: str) -> Message | None:
    """The entry the bot shows a person under `law`: the law's variant, else the general one."""
    for context in (law, None) if law else (None,):
        message = catalog.get(message_id, context=context)
        if _usable(message):
            return message
    return None


def _filled(text: str, params: dict[str, str]) -> str:
    parts = []
    for literal, name, _, _ in Formatter().parse(text):
        parts.append(literal)
        if name is not None:
            parts.append(params.get(name, DEFAULT_PARAM))
    return "".join(parts)


def _load_catalogs(locales_dir: Path, report: Report) -> dict[str, Catalog]:
    catalogs: dict[str, Catalog] = {}
    for path in sorted(locales_dir.glob("*/LC_MESSAGES/bot.po")):
        lang = path.parts[-3]
        if lang not in SHIPPED_LANGUAGES:
            report.po(
                lang, 1, f"'{lang}' is not a shipped language ({', '.join(SHIPPED_LANGUAGES)})"
            )
        try:
            with path.open("rb") as fh:
                catalogs[lang] = read_po(fh, locale=lang, domain=DOMAIN, abort_invalid=True)
        except PoFileError as exc:  # report it, then check what Babel can still read
            line = getattr(exc, "lineno", None)
            report.po(lang, line + 1 if line is not None else None, f"not a valid .po file: {exc}")
            catalogs[lang] = read_catalog(path, lang)
        except (OSError, ValueError) as exc:
            report.po(lang, None, f"cannot be read: {exc}")
    for lang in SHIPPED_LANGUAGES:
        if lang not in catalogs and not po_path(locales_dir, lang).exists():
            report.po(lang, None, f"missing: '{lang}' is shipped but has no catalog")
    return catalogs


def check_texts(
    flows: FlowSet, locales_dir: Path, params: dict[str, str], report: Report
) -> dict[str, Catalog]:
    """Every catalog against every text the flows use; runs after the flows so it knows them.
    Returns the catalogs, for the notices' check."""
    catalogs = _load_catalogs(locales_dir, report)
    english = catalogs.get(FALLBACK)
    uses = message_uses(flows, report.countries)
    if report.notices is not None:  # the texts notices are made of
        uses += [Use(m, "text", wa.TEXT_MAX, "", 0) for m in report.notices.message_ids]
    used = {u.message_id for u in uses}
    # A file that did not load hides what it uses: no "unused" noise then.
    loaded = report.countries is not None and report.notices is not None
    if english is not None and not report.broken and loaded:
        for m in _entries(english):
            if m.id not in used:
                message = f"'{m.id}' is used by no flow and not by the code (CODE_MESSAGE_IDS)"
                report.po(FALLBACK, m.lineno, message)
    everything = used | {m.id for m in _entries(english)} if english else used
    for lang, catalog in catalogs.items():
        _check_presence(lang, catalog, english, sorted(everything), report)
        _check_entries(lang, catalog, english, report)
        _check_limits(lang, catalog, uses, params, report)
    _check_list_rows(flows, report)
    return catalogs


def _entries(catalog: Catalog) -> list[Message]:
    return [m for m in catalog if m.id and isinstance(m.id, str)]


def _check_presence(
    lang: str, catalog: Catalog, english: Catalog | None, ids: list[str], report: Report
) -> None:
    for message_id in ids:
        missing = [
            law or "general" for law in VARIANTS if resolve(catalog, law, message_id) is None
        ]
        if len(missing) == len(VARIANTS):
            report.po(lang, None, f"'{message_id}' is missing")
        elif missing:
            report.po(lang, None, f"'{message_id}' is missing for: {', '.join(missing)}")
    if english is None or lang == FALLBACK:
        return
    for m in _entries(english):
        if m.context in LAWS and _usable(m) and not _usable(catalog.get(m.id, context=m.context)):
            message = (
                f"no '{m.context}' variant of '{m.id}' (English has one): people under "
                f"{m.context} would read the general text"
            )
            report.po(lang, None, message)


def _check_entries(lang: str, catalog: Catalog, english: Catalog | None, report: Report) -> None:
    """Each entry on its own: known law, not a draft, valid and with English's placeholders."""
    for m in _entries(catalog):
        label = f"'{m.id}'" + (f" ({m.context})" if m.context else "")
        if m.context and m.context not in LAWS:
            report.po(lang, m.lineno, f"{label}: '{m.context}' is not a law ({', '.join(LAWS)})")
        if m.fuzzy and m.string:
            report.po(lang, m.lineno, f"{label} is marked fuzzy: the bot ignores drafts")
        if not isinstance(m.string, str) or not m.string:
            continue
        try:
            found = placeholders(m.string)
        except ValueError as exc:
            report.po(lang, m.lineno, f"{label} has a broken {{placeholder}}: {exc}")
            continue
        ref = _english_for(english, m) if lang != FALLBACK else None
        if ref is not None and found != (wanted := placeholders(ref.string)):
            have = ", ".join(sorted(found)) or "none"
            need = ", ".join(sorted(wanted)) or "none"
            report.po(lang, m.lineno, f"{label} has placeholders {have}; English has {need}")


def _english_for(english: Catalog | None, m: Message) -> Message | None:
    if english is None:
        return None
    same = english.get(m.id, context=m.context)
    if _usable(same):
        return same
    general = english.get(m.id)
    return general if _usable(general) else None


def _check_limits(
    lang: str, catalog: Catalog, uses: list[Use], params: dict[str, str], report: Report
) -> None:
    for use in uses:
        for law in VARIANTS:
            m = resolve(catalog, law, use.message_id)
            if m is None:
                continue
            try:
                size = len(_filled(m.string, params))
            except ValueError:
                continue  # reported as a broken placeholder
            if size > use.limit:
                variant = f" ({m.context})" if m.context else ""
                message = (
                    f"{use.what} '{use.message_id}'{variant} is {size} characters with "
                    f"placeholders filled; WhatsApp allows {use.limit}"
                )
                report.po(lang, m.lineno, message)


def _check_list_rows(flows: FlowSet, report: Report) -> None:
    """Rows the bot builds itself: country names and each language's own name."""
    for state in flows.all_states:
        titles: list[tuple[str, str]] = []
        if state.rows_from == "countries" and report.countries:
            titles = [
                (lang, c.name)
                for lang in SHIPPED_LANGUAGES
                for c in residence_choices(lang, report.countries)
                if not c.message_id  # a text's length is checked with the catalogs
            ]
        elif state.rows_from == "languages":
            titles = [(code, language_title(code)) for code in SHIPPED_LANGUAGES]
        for lang, title in titles:
            if len(title) > wa.LIST_ROW_TITLE_MAX:
                message = (
                    f"{lang}: row '{title}' is {len(title)} characters; "
                    f"WhatsApp allows {wa.LIST_ROW_TITLE_MAX}"
                )
                report.flow(f"{state.flow}.yaml", state.where.line, message)


def language_title(code: str) -> str:
    """A language's name in itself, capitalized: the row a person recognizes."""
    name = Locale(code).display_name or code
    return name[:1].upper() + name[1:]
