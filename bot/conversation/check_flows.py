"""The flow-graph half of `flows check`: states, inputs, buttons and keywords.

What only shows across flow files: states that lead nowhere or are never reached,
keywords and buttons nobody defines or offers, messages WhatsApp would refuse to
render. Texts are checked in `check_texts.py`.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

from bot.conversation.check_report import SHIPPED_LANGUAGES, Report, yaml_lines
from bot.conversation.engine import HOME, MAX_HOPS
from bot.conversation.flowfile import Flow, FlowError, FlowSet, State, load_flow, load_keywords
from bot.conversation.keywords import normalize
from bot.i18n import FALLBACK
from bot.privacy.jurisdiction import Countries, residence_choices
from bot.whatsapp import messages as wa

SPECIAL_INPUTS = ("text",)


def check_flows(flows_dir: Path, report: Report) -> FlowSet:
    """Load the flows and check everything but their texts; the texts need the loaded flows."""
    flows = _load(flows_dir, report)
    _check_graph(flows, report)
    _check_inputs(flows, report)
    _check_shapes(flows, report)
    _check_keywords(flows, flows_dir / "keywords.yaml", report)
    return flows


# --- loading ----------------------------------------------------------------------------------


def _load(flows_dir: Path, report: Report) -> FlowSet:
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


def _check_graph(flows: FlowSet, report: Report) -> None:
    def known(target: str) -> bool:
        return flows.has_state(target) or target.split(".", 1)[0] in report.broken

    for flow in flows.flows.values():
        if not known(flow.entry):
            line = report.line(flow, "entry")
            report.flow(flow.where.file, line, f"entry '{flow.entry}' is not a state")
        for state in flow.states.values():
            edges = [(t.to, t.where.line) for t in state.on]
            edges += [(t.otherwise, t.where.line) for t in state.on if t.otherwise]
            edges += [(s, state.where.line) for s in (state.next, state.expires_to) if s]
            for target, line in edges:
                if not known(target):
                    report.flow(flow.where.file, line, f"'{target}' is not a state")
            if not state.way_out:
                report.flow(
                    flow.where.file,
                    state.where.line,
                    f"state '{state.name}' has no way out: add on:, next:, end: true, back: true "
                    "or handoff",
                )
    if not report.broken:
        for name, message in ((HOME, "the home state"), ("stop.stopped", "STOP's flow")):
            if name.split(".")[0] not in flows.flows:
                report.flow(f"{name.split('.')[0]}.yaml", None, f"missing: {message} is needed")
    _check_reachable(flows, report)
    _check_next_chains(flows, report)


def _check_reachable(flows: FlowSet, report: Report) -> None:
    """From home and every flow a person can start, follow on:, next: and expires:."""
    todo = deque([HOME] if flows.has_state(HOME) else [])
    todo += [
        f.entry
        for f in flows.flows.values()
        if f.keywords or f.contains or f.buttons or f.referral or f.media
    ]
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


def _check_next_chains(flows: FlowSet, report: Report) -> None:
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


def offered_ids(flows: FlowSet, countries: Countries | None = None) -> set[str]:
    """Every button and row id some state shows (lists from `rows_from` included).

    Without `countries` (its file is broken, and reported) every `residence.` id counts."""
    ids: set[str] = set()
    for state in flows.all_states:
        ids.update(o.id for o in (*state.buttons, *state.rows))
        if state.rows_from == "languages":
            ids.update(f"language.{code}" for code in SHIPPED_LANGUAGES)
        elif state.rows_from == "countries":
            rows = residence_choices(FALLBACK, countries) if countries else ()
            ids.update(f"residence.{code}" for code in [c.code for c in rows] or ["*"])
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


def _check_inputs(flows: FlowSet, report: Report) -> None:
    offered = offered_ids(flows, report.countries)
    media = [f for f in flows.flows.values() if f.media]
    for flow in media[1:]:
        message = f"start_on media: '{media[0].name}' already starts on media, and wins"
        report.flow(flow.where.file, report.line(flow, "start_on.media"), message)
    for flow in flows.flows.values():
        starts = (("keywords", "keyword", flow.keywords), ("contains", "contains", flow.contains))
        for key, what, groups in starts:
            for group in groups:
                if group not in flows.keywords:
                    message = f"start_on {what} group '{group}' is not in keywords.yaml"
                    report.flow(flow.where.file, report.line(flow, f"start_on.{key}"), message)
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


def _row_count(state: State, countries: Countries | None) -> int:
    if state.rows_from == "languages":
        return len(SHIPPED_LANGUAGES)
    if state.rows_from == "countries":
        return len(residence_choices(FALLBACK, countries)) if countries else 0
    return len(state.rows)


def _check_shapes(flows: FlowSet, report: Report) -> None:
    for state in flows.all_states:

        def add(message: str, state: State = state) -> None:
            report.flow(f"{state.flow}.yaml", state.where.line, f"'{state.name}': {message}")

        has_list = bool(state.list_button or state.rows or state.rows_from)
        if len(state.buttons) > wa.BUTTONS_MAX:
            add(f"{len(state.buttons)} buttons; WhatsApp allows {wa.BUTTONS_MAX}")
        rows = _row_count(state, report.countries)
        if rows > wa.LIST_ROWS_MAX:
            add(f"{rows} list rows; WhatsApp allows {wa.LIST_ROWS_MAX}")
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


def _check_keywords(flows: FlowSet, path: Path, report: Report) -> None:
    lines = yaml_lines(path)
    owner: dict[str, str] = {}
    # Groups looked for inside a sentence may repeat other groups' words (STOP).
    inside = {group for flow in flows.flows.values() for group in flow.contains}
    for group, by_language in flows.keywords.items():
        group_line = flows.keyword_where[group].line
        for lang in SHIPPED_LANGUAGES:
            if not by_language.get(lang):
                report.flow(path.name, group_line, f"keyword group '{group}' has no '{lang}' words")
        for lang, words in by_language.items():
            line = lines.get(f"{group}.{lang}", group_line)
            if lang not in SHIPPED_LANGUAGES:
                report.flow(path.name, line, f"'{lang}' is not a shipped language")
            if group in inside:
                continue
            for word in words:
                key = normalize(word)
                first = owner.setdefault(key, group)
                if first != group:
                    message = f"'{word}' is in both '{first}' and '{group}'; '{first}' wins"
                    report.flow(path.name, line, message)
