"""`python -m bot flows check`: what would break in a chat, found before deploy.

Loading (`flowfile.py`) checks each file's shape. This module checks what only
shows across files: states that lead nowhere or are never reached, keywords
and buttons nobody defines or offers, texts missing in a language or a law's
variant, and texts longer than WhatsApp accepts, in every language and law.
Each finding names the file and line the privacy team has to open.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from string import Formatter

import yaml
from babel import Locale
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import PoFileError, read_po

from bot.conversation.engine import HOME, MAX_HOPS
from bot.conversation.flowfile import Flow, FlowError, FlowSet, State, load_flow, load_keywords
from bot.conversation.keywords import normalize
from bot.i18n import DOMAIN, FALLBACK, placeholders, po_path, read_catalog
from bot.whatsapp import messages as wa

try:
    from bot.privacy.jurisdiction import OTHER, SHIPPED_LANGUAGES, Law, country_choices
except ImportError:  # being written; the contract is known
    OTHER = "OTHER"
    SHIPPED_LANGUAGES = ("en", "de", "fr", "es", "pt")
    LAWS: tuple[str, ...] = ("gdpr", "ccpa", "pdpa", "lgpd", "strict")
    country_choices = None
else:
    LAWS = tuple(law.value for law in Law)

VARIANTS: tuple[str | None, ...] = (None, *LAWS)  # None: the text without a law's context
SPECIAL_INPUTS = ("text",)
DEFAULT_PARAM = "x" * 40
CAPTION_MAX = 1024  # a document's caption (the data export)

CODE_MESSAGE_IDS: tuple[str, ...] = (
    "common.unknown",
    *(f"data.{n}" for n in ("header", "number", "name", "jurisdiction", "language")),
    *(f"data.basis.{n}" for n in ("stated", "number", "default")),
    *(f"data.{n}" for n in ("consent", "no_consent", "messages", "handoffs")),
    *(f"consent.{n}" for n in ("granted", "revoked", "pending")),
    *(f"consent.method.whatsapp_{n}" for n in ("double_opt_in", "stop", "preferences")),
    *(f"law.{law}" for law in LAWS),
    "residence.other",
    "rate.paused",
)
"""Message ids the code (not a flow) sends: the data summary, consent states, law names."""


@dataclass(frozen=True, slots=True)
class Problem:
    where: str  # "flows/optin.yaml:12", as a person would open it
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True, slots=True)
class Use:
    """A message id a flow (or the code) sends, and the WhatsApp limit of where it goes."""

    message_id: str
    what: str
    limit: int
    file: str  # flow file name, "" for the code
    line: int


class _Report:
    def __init__(self, flows_dir: Path, locales_dir: Path) -> None:
        self.root = flows_dir.resolve().parent
        self.flows_dir, self.locales_dir = flows_dir, locales_dir
        self.problems: list[Problem] = []
        self.broken: set[str] = set()  # flows that did not load: no follow-up noise about them
        self._lines: dict[str, dict[str, int]] = {}

    def line(self, flow: Flow, key: str) -> int:
        """The line of a flow-level key ("entry", "start_on.buttons"), else the file's first."""
        if flow.where.file not in self._lines:
            self._lines[flow.where.file] = yaml_lines(self.flows_dir / flow.where.file)
        return self._lines[flow.where.file].get(key, flow.where.line)

    def path(self, path: Path, base: Path) -> str:
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return (Path(base.name) / path.relative_to(base)).as_posix()

    def flow(self, file: str, line: int | None, message: str) -> None:
        where = self.path(self.flows_dir / file, self.flows_dir)
        self.problems.append(Problem(f"{where}:{line}" if line else where, message))

    def po(self, lang: str, line: int | None, message: str) -> None:
        where = self.path(po_path(self.locales_dir, lang), self.locales_dir)
        self.problems.append(Problem(f"{where}:{line}" if line else where, message))


def check(
    flows_dir: Path, locales_dir: Path, params: dict[str, str] | None = None
) -> list[Problem]:
    """Every problem in the flows and their texts, grouped by kind; empty means ready to ship."""
    report = _Report(flows_dir, locales_dir)
    flows = _load(flows_dir, report)
    _check_graph(flows, report)
    _check_inputs(flows, report)
    _check_shapes(flows, report)
    _check_keywords(flows, flows_dir / "keywords.yaml", report)
    _check_texts(flows, locales_dir, params or {}, report)
    return list(dict.fromkeys(report.problems))


# --- loading ----------------------------------------------------------------------------------


def _load(flows_dir: Path, report: _Report) -> FlowSet:
    """Each file on its own, so one broken file does not hide the others' problems."""
    flows: dict[str, Flow] = {}
    for path in sorted(flows_dir.glob("*.yaml")):
        if path.name in {"keywords.yaml", "templates.yaml"}:
            continue
        try:
            flows[path.stem] = load_flow(path)
        except FlowError as exc:
            report.broken.add(path.stem)
            report.flow(exc.where.file, exc.where.line, str(exc).split(": ", 1)[1])
    try:
        keywords, wheres = load_keywords(flows_dir / "keywords.yaml")
    except (FlowError, OSError) as exc:
        where = getattr(exc, "where", None)
        report.flow("keywords.yaml", where.line if where else None, str(exc))
        keywords, wheres = {}, {}
    return FlowSet(flows=flows, keywords=keywords, keyword_where=wheres)


# --- states: targets, reachability, ways out --------------------------------------------------


def _check_graph(flows: FlowSet, report: _Report) -> None:
    def known(target: str) -> bool:
        return flows.has_state(target) or target.split(".", 1)[0] in report.broken

    for flow in flows.flows.values():
        if not known(flow.entry):
            line = report.line(flow, "entry")
            report.flow(flow.where.file, line, f"entry '{flow.entry}' is not a state")
        for state in flow.states.values():
            edges = [(t.to, t.where.line) for t in state.on]
            edges += [(s, state.where.line) for s in (state.next, state.expires_to) if s]
            for target, line in edges:
                if not known(target):
                    report.flow(flow.where.file, line, f"'{target}' is not a state")
            if not (state.on or state.next or state.end or state.handoff):
                report.flow(
                    flow.where.file,
                    state.where.line,
                    f"state '{state.name}' has no way out: add on:, next:, end: true or handoff",
                )
    if not report.broken:
        for name, message in ((HOME, "the home state"), ("stop.stopped", "STOP's flow")):
            if name.split(".")[0] not in flows.flows:
                report.flow(f"{name.split('.')[0]}.yaml", None, f"missing: {message} is needed")
    _check_reachable(flows, report)
    _check_next_chains(flows, report)


def _check_reachable(flows: FlowSet, report: _Report) -> None:
    """From home and every flow a person can start, follow on:, next: and expires:."""
    todo = deque([HOME] if flows.has_state(HOME) else [])
    todo += [f.entry for f in flows.flows.values() if f.keywords or f.buttons or f.referral]
    seen: set[str] = set()
    while todo:
        name = todo.popleft()
        if name in seen or not flows.has_state(name):
            continue
        seen.add(name)
        todo.extend(flows.state(name).targets)
    if report.broken:
        return  # a broken flow may be the one that leads there
    for flow in flows.flows.values():
        for state in flow.states.values():
            if state.name in seen:
                continue
            if state.name == flow.entry:
                message = f"flow '{flow.name}' never starts: no start_on and no state leads to it"
                report.flow(flow.where.file, report.line(flow, "entry"), message)
            else:
                message = f"state '{state.name}' is never reached: nothing leads to it"
                report.flow(flow.where.file, state.where.line, message)


def _check_next_chains(flows: FlowSet, report: _Report) -> None:
    """`next:` moves on at once; a loop (or a very long chain) would never wait for the person."""
    cycles: set[frozenset[str]] = set()
    for start in flows.all_states:
        chain: list[str] = []
        name: str | None = start.name
        while name and flows.has_state(name) and name not in chain:
            chain.append(name)
            name = flows.state(name).next
        if name in chain:
            cycle = chain[chain.index(name) :]
            if frozenset(cycle) not in cycles:
                cycles.add(frozenset(cycle))
                first = flows.state(min(cycle))
                loop = " → ".join([*cycle, cycle[0]])
                report.flow(f"{first.flow}.yaml", first.where.line, f"next: goes round: {loop}")
        elif len(chain) > MAX_HOPS:
            message = f"next: chain from '{start.name}' is longer than {MAX_HOPS} states"
            report.flow(f"{start.flow}.yaml", start.where.line, message)


# --- inputs: keyword groups and button ids ----------------------------------------------------


def offered_ids(flows: FlowSet) -> set[str]:
    """Every button and row id some state shows (lists from `rows_from` included)."""
    ids: set[str] = set()
    for state in flows.all_states:
        ids.update(o.id for o in (*state.buttons, *state.rows))
        if state.rows_from == "languages":
            ids.update(f"language.{code}" for code in SHIPPED_LANGUAGES)
        elif state.rows_from == "countries":
            rows = country_choices(FALLBACK) if country_choices else [("*", "")]
            ids.update(f"residence.{code}" for code, _ in rows)
    return ids


def _input_problem(name: str, flows: FlowSet, offered: set[str]) -> str | None:
    if name in SPECIAL_INPUTS or name in flows.keywords:
        return None
    if name.endswith(".*"):
        if any(i.startswith(name[:-1]) for i in offered):
            return None
        return f"no state offers a button or row starting with '{name[:-1]}'"
    if "." in name:
        return None if name in offered else f"no state offers a button or row '{name}'"
    return f"'{name}' is not a keyword group in keywords.yaml (nor a button id or 'text')"


def _check_inputs(flows: FlowSet, report: _Report) -> None:
    offered = offered_ids(flows)
    for flow in flows.flows.values():
        for group in flow.keywords:
            if group not in flows.keywords:
                message = f"start_on keyword group '{group}' is not in keywords.yaml"
                report.flow(flow.where.file, report.line(flow, "start_on.keywords"), message)
        for button in flow.buttons:
            if button not in offered:
                message = f"start_on button '{button}': no state offers it as a button or row"
                report.flow(flow.where.file, report.line(flow, "start_on.buttons"), message)
        for state in flow.states.values():
            for t in state.on:
                problem = _input_problem(t.input, flows, offered)
                if problem:
                    report.flow(flow.where.file, t.where.line, f"on: {problem}")


# --- buttons and lists ------------------------------------------------------------------------


def _row_count(state: State) -> int:
    if state.rows_from == "languages":
        return len(SHIPPED_LANGUAGES)
    if state.rows_from == "countries":
        return len(country_choices(FALLBACK)) if country_choices else 0
    return len(state.rows)


def _check_shapes(flows: FlowSet, report: _Report) -> None:
    for state in flows.all_states:

        def add(message: str, state: State = state) -> None:
            report.flow(f"{state.flow}.yaml", state.where.line, f"'{state.name}': {message}")

        has_list = bool(state.list_button or state.rows or state.rows_from)
        if len(state.buttons) > wa.BUTTONS_MAX:
            add(f"{len(state.buttons)} buttons; WhatsApp allows {wa.BUTTONS_MAX}")
        if _row_count(state) > wa.LIST_ROWS_MAX:
            add(f"{_row_count(state)} list rows; WhatsApp allows {wa.LIST_ROWS_MAX}")
        if state.buttons and has_list:
            add("buttons and a list in one message: WhatsApp allows one or the other")
        if has_list and not (state.rows or state.rows_from):
            add("a list needs 'rows:' or 'rows_from:'")
        if (state.buttons or has_list) and not state.say:
            add("buttons and lists need a text: add 'say:'")
        ids = [o.id for o in (*state.buttons, *state.rows)]
        for dup in sorted({i for i in ids if ids.count(i) > 1}):
            add(f"the id '{dup}' is used twice")


# --- keywords ---------------------------------------------------------------------------------


def yaml_lines(path: Path) -> dict[str, int]:
    """Line of each key's value, two levels deep ("start_on.buttons", "stop.en")."""
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # only lines are needed: fast
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=loader)
    except (OSError, yaml.YAMLError):
        return {}
    lines: dict[str, int] = {}
    for key, value in root.value if isinstance(root, yaml.MappingNode) else ():
        lines[key.value] = key.start_mark.line + 1
        for sub, subvalue in value.value if isinstance(value, yaml.MappingNode) else ():
            lines[f"{key.value}.{sub.value}"] = subvalue.start_mark.line + 1
    return lines


def _check_keywords(flows: FlowSet, path: Path, report: _Report) -> None:
    lines = yaml_lines(path)
    owner: dict[str, str] = {}
    for group, by_language in flows.keywords.items():
        group_line = flows.keyword_where[group].line
        for lang in SHIPPED_LANGUAGES:
            if not by_language.get(lang):
                report.flow(path.name, group_line, f"keyword group '{group}' has no '{lang}' words")
        for lang, words in by_language.items():
            line = lines.get(f"{group}.{lang}", group_line)
            if lang not in SHIPPED_LANGUAGES:
                report.flow(path.name, line, f"'{lang}' is not a shipped language")
            for word in words:
                key = normalize(word)
                first = owner.setdefault(key, group)
                if first != group:
                    message = f"'{word}' is in both '{first}' and '{group}'; '{first}' wins"
                    report.flow(path.name, line, message)


# --- texts ------------------------------------------------------------------------------------


def message_uses(flows: FlowSet) -> list[Use]:
    """Every message id the flows and the code send, with the limit where it is shown."""
    uses: list[Use] = []
    for state in flows.all_states:
        file, line = f"{state.flow}.yaml", state.where.line
        interactive = bool(state.buttons or state.list_button or state.rows or state.rows_from)
        if state.say:
            limit = wa.INTERACTIVE_BODY_MAX if interactive else wa.TEXT_MAX
            uses.append(Use(state.say, "text", limit, file, line))
        uses += [
            Use(b.title, "button title", wa.BUTTON_TITLE_MAX, file, line) for b in state.buttons
        ]
        if interactive and not state.buttons:  # the renderer's default label: "Options"
            label = state.list_button or "menu.list_button"
            uses.append(Use(label, "list button", wa.LIST_BUTTON_MAX, file, line))
        if state.rows_from == "countries":  # the "other country" row's title
            uses.append(Use("residence.other", "row title", wa.LIST_ROW_TITLE_MAX, file, line))
        for row in state.rows:
            uses.append(Use(row.title, "row title", wa.LIST_ROW_TITLE_MAX, file, line))
            if row.description:
                limit = wa.LIST_ROW_DESCRIPTION_MAX
                uses.append(Use(row.description, "row description", limit, file, line))
    uses += [Use(message_id, "text", wa.TEXT_MAX, "", 0) for message_id in CODE_MESSAGE_IDS]
    # The re-prompt goes out with the state's options; the export's text is its caption.
    uses.append(Use("common.unknown", "re-prompt", wa.INTERACTIVE_BODY_MAX, "", 0))
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


def _load_catalogs(locales_dir: Path, report: _Report) -> dict[str, Catalog]:
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


def _check_texts(
    flows: FlowSet, locales_dir: Path, params: dict[str, str], report: _Report
) -> None:
    catalogs = _load_catalogs(locales_dir, report)
    english = catalogs.get(FALLBACK)
    uses = message_uses(flows)
    used = {u.message_id for u in uses}
    if english is not None and not report.broken:
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


def _entries(catalog: Catalog) -> list[Message]:
    return [m for m in catalog if m.id and isinstance(m.id, str)]


def _check_presence(
    lang: str, catalog: Catalog, english: Catalog | None, ids: list[str], report: _Report
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


def _check_entries(lang: str, catalog: Catalog, english: Catalog | None, report: _Report) -> None:
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
    lang: str, catalog: Catalog, uses: list[Use], params: dict[str, str], report: _Report
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


def _check_list_rows(flows: FlowSet, report: _Report) -> None:
    """Rows the bot builds itself: country names and each language's own name."""
    for state in flows.all_states:
        titles: list[tuple[str, str]] = []
        if state.rows_from == "countries" and country_choices:
            titles = [
                (lang, title)
                for lang in SHIPPED_LANGUAGES
                for code, title in country_choices(lang)
                if code != OTHER  # its title is the text `residence.other`
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
