"""Flow files (`flows/*.yaml`) read into plain dataclasses, with file and line kept.

The privacy team writes these files; `flows/README.md` explains the format.
Loading checks the shape of each file and that every action is one of the
fixed registry's (`actions.ACTIONS`): `transitions` would otherwise resolve an
unknown callback name as a dotted import path, so a flow file could name any
Python function. Cross-file checks (unknown or unreachable states, missing
translations, WhatsApp's limits) are in `check.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.conversation.actions import ACTIONS, CONDITIONS
from bot.datafile import LineLoader
from bot.errors import BotError

DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
LIST_SOURCES = ("countries", "languages")


class FlowError(BotError):
    """A flow file is wrong; the message starts with `file:line:`."""

    def __init__(self, where: Where, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where


@dataclass(frozen=True, slots=True)
class Where:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Option:
    """A reply button or list row: the id the flow reacts to, the title's message id."""

    id: str
    title: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    input: str  # a button/row id, `prefix.*`, a keyword group, or `text`
    to: str  # qualified state name, `flow.state`
    do: tuple[str, ...]
    where: Where
    when: str | None = None  # a condition (`if:`) that must hold to go `to`
    otherwise: str | None = None  # where to go when it does not (`else:`), qualified


@dataclass(frozen=True, slots=True)
class State:
    name: str  # qualified: `flow.state`
    say: str | None
    buttons: tuple[Option, ...]
    list_button: str | None
    rows: tuple[Option, ...]
    rows_from: str | None
    do: tuple[str, ...]
    on: tuple[Transition, ...]
    next: str | None
    end: bool
    expires_after: int | None
    expires_to: str | None
    handoff: bool
    quiet_reprompt: bool
    where: Where
    reprompt: str | None = None  # said (with the options) when an answer is not understood
    say_before: tuple[str, ...] = ()  # `say: [a, b]`: texts said on their own before `b`
    return_say: str | None = None  # said when a flow ends and the person comes back here
    back: bool = False  # the person goes back to the state they came from: a question stays open

    @property
    def flow(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def targets(self) -> list[str]:
        found = [t.to for t in self.on]
        found += [t.otherwise for t in self.on if t.otherwise]
        found += [s for s in (self.next, self.expires_to) if s]
        return found

    @property
    def way_out(self) -> bool:
        """The person can leave this state: by an answer, at once, or with support."""
        return bool(self.on or self.next or self.end or self.back or self.handoff)


@dataclass(frozen=True, slots=True)
class Flow:
    name: str
    description: str
    entry: str  # qualified
    keywords: tuple[str, ...]  # keyword groups that start this flow from anywhere
    buttons: tuple[str, ...]  # button/row ids that start it from anywhere
    referral: bool  # a click-to-WhatsApp ad or QR code starts it
    in_handoff: bool  # still answered while a human has the conversation
    states: dict[str, State]
    where: Where
    # Never held back by the inbound limit: True for the whole flow (its words, its
    # buttons, any answer in its states), or the keyword groups listed.
    unlimited: bool | tuple[str, ...] = False
    media: bool = False  # a picture, voice note, location … (anything but text) starts it
    # Keyword groups whose words start it from inside a longer message ("can you stop …").
    contains: tuple[str, ...] = ()


@dataclass
class FlowSet:
    flows: dict[str, Flow]
    keywords: dict[str, dict[str, tuple[str, ...]]]  # group -> language -> words
    keyword_where: dict[str, Where] = field(default_factory=dict)

    def state(self, name: str) -> State:
        flow, _, _ = name.partition(".")
        return self.flows[flow].states[name]

    def has_state(self, name: str) -> bool:
        flow, _, _ = name.partition(".")
        return flow in self.flows and name in self.flows[flow].states

    @property
    def all_states(self) -> list[State]:
        return [s for f in self.flows.values() for s in f.states.values()]


# --- YAML with line numbers (`bot.datafile`) ------------------------------------------------


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=LineLoader)  # noqa: S506 - safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise FlowError(Where(path.name, line), f"not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise FlowError(Where(path.name, 1), "a flow file must be a mapping")
    return data


# --- reading one flow -----------------------------------------------------------------------


def _where(path: Path, data: dict[str, Any]) -> Where:
    return Where(path.name, int(data.get("__line__", 1)))


def _keys(data: dict[str, Any], allowed: set[str], where: Where) -> None:
    unknown = set(data) - allowed - {"__line__"}
    if unknown:
        raise FlowError(where, f"unknown key(s): {', '.join(sorted(unknown))}")


def _str_list(value: Any, where: Where, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FlowError(where, f"{what} must be a list of names")
    return tuple(value)


def _actions(value: Any, where: Where) -> tuple[str, ...]:
    names = _str_list(value, where, "do")
    for name in names:
        if name not in ACTIONS:
            raise FlowError(
                where, f"unknown action '{name}' (allowed: {', '.join(sorted(ACTIONS))})"
            )
    return names


def _qualify(flow: str, name: Any, where: Where) -> str:
    if not isinstance(name, str) or not name:
        raise FlowError(where, "a target state must be a name")
    return name if "." in name else f"{flow}.{name}"


def _options(value: Any, where: Where, what: str) -> tuple[Option, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise FlowError(where, f"{what} must be a list")
    options = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise FlowError(where, f"each of {what} needs an id and a title")
        at = Where(where.file, int(item.get("__line__", where.line)))
        _keys(item, {"id", "title", "description"}, at)
        if not isinstance(item.get("title"), str):
            raise FlowError(at, f"{what} '{item['id']}' needs a title (a message id)")
        options.append(Option(item["id"], item["title"], item.get("description")))
    return tuple(options)


def _duration(value: Any, where: Where) -> int:
    match = DURATION.match(str(value).strip())
    if not match:
        raise FlowError(where, f"'{value}' is not a duration like 30m, 24h or 7d")
    return int(match.group(1)) * UNITS[match.group(2)]


STATE_KEYS = {
    "say", "buttons", "list", "do", "on", "next", "end", "expires", "handoff", "quiet_reprompt",
    "reprompt", "return_say", "back",
}  # fmt: skip
# `back: true` leaves at once for where the person came from: nothing else can follow.
NOT_WITH_BACK = ("on", "next", "end", "handoff", "buttons", "list", "expires")


def _state(path: Path, flow: str, name: str, data: Any) -> State:
    if not isinstance(data, dict):
        raise FlowError(Where(path.name, 1), f"state '{name}' must be a mapping")
    where = _where(path, data)
    _keys(data, STATE_KEYS, where)
    on = []
    for trigger, target in (data.get("on") or {}).items():
        if trigger == "__line__":
            continue
        if isinstance(target, dict):
            at = _where(path, target)
            _keys(target, {"to", "do", "if", "else"}, at)
            when, otherwise = target.get("if"), target.get("else")
            if (when is None) != (otherwise is None):
                raise FlowError(at, "'if' needs 'else' (where to go when it does not hold)")
            if when is not None and when not in CONDITIONS:
                raise FlowError(
                    at, f"unknown condition '{when}' (allowed: {', '.join(sorted(CONDITIONS))})"
                )
            on.append(
                Transition(
                    str(trigger),
                    _qualify(flow, target.get("to"), at),
                    _actions(target.get("do"), at),
                    at,
                    when=when,
                    otherwise=_qualify(flow, otherwise, at) if otherwise is not None else None,
                )
            )
        else:
            on.append(Transition(str(trigger), _qualify(flow, target, where), (), where))
    listing = data.get("list") or {}
    rows_from = listing.get("rows_from") if isinstance(listing, dict) else None
    if rows_from is not None and rows_from not in LIST_SOURCES:
        raise FlowError(where, f"rows_from must be one of {', '.join(LIST_SOURCES)}")
    said = _says(data.get("say"), where)
    back = data.get("back", False)
    if not isinstance(back, bool):
        raise FlowError(where, "back must be true or false")
    if back and (clash := [k for k in NOT_WITH_BACK if data.get(k)]):
        raise FlowError(where, f"back: true goes straight back; it cannot have {', '.join(clash)}")
    expires = data.get("expires")
    if expires is not None and not (isinstance(expires, dict) and "after" in expires):
        raise FlowError(where, "expires needs 'after' (a duration) and 'to' (a state)")
    return State(
        name=f"{flow}.{name}",
        say=said[-1] if said else None,
        say_before=tuple(said[:-1]),
        buttons=_options(data.get("buttons"), where, "buttons"),
        list_button=listing.get("button") if isinstance(listing, dict) else None,
        rows=_options(listing.get("rows"), where, "rows") if isinstance(listing, dict) else (),
        rows_from=rows_from,
        do=_actions(data.get("do"), where),
        on=tuple(on),
        next=_qualify(flow, data["next"], where) if data.get("next") else None,
        end=bool(data.get("end", False)),
        expires_after=_duration(expires["after"], where) if expires else None,
        expires_to=_qualify(flow, expires.get("to", "menu.main"), where) if expires else None,
        handoff=bool(data.get("handoff", False)),
        quiet_reprompt=bool(data.get("quiet_reprompt", False)),
        where=where,
        reprompt=data.get("reprompt"),
        return_say=data.get("return_say"),
        back=back,
    )


def _says(value: Any, where: Where) -> list[str]:
    """`say: text` or `say: [first, second]`: several messages, the last with the options."""
    if value is None:
        return []
    said = value if isinstance(value, list) else [value]
    if not said or not all(isinstance(s, str) and s for s in said):
        raise FlowError(where, "say: a message id, or a list of them")
    return said


def load_flow(path: Path) -> Flow:
    data = _read(path)
    where = _where(path, data)
    _keys(data, {"flow", "description", "entry", "start_on", "states", "unlimited"}, where)
    name = data.get("flow")
    if name != path.stem:
        raise FlowError(where, f"'flow:' must be the file's name, '{path.stem}'")
    states_data = data.get("states")
    if not isinstance(states_data, dict) or len(states_data) <= 1:
        raise FlowError(where, "a flow needs 'states' with at least one state")
    states = {
        f"{name}.{s}": _state(path, name, s, d) for s, d in states_data.items() if s != "__line__"
    }
    start_on = data.get("start_on") or {}
    if not isinstance(start_on, dict):
        raise FlowError(where, "start_on must be a mapping")
    start_keys = {"keywords", "contains", "buttons", "referral", "in_handoff", "media"}
    _keys(start_on, start_keys, _where(path, start_on))
    return Flow(
        name=name,
        description=str(data.get("description", "")),
        entry=_qualify(name, data.get("entry"), where),
        keywords=_str_list(start_on.get("keywords"), where, "keywords"),
        buttons=_str_list(start_on.get("buttons"), where, "buttons"),
        referral=bool(start_on.get("referral", False)),
        in_handoff=bool(start_on.get("in_handoff", False)),
        states=states,
        where=where,
        unlimited=_unlimited(data.get("unlimited", False), where),
        media=bool(start_on.get("media", False)),
        contains=_str_list(start_on.get("contains"), where, "contains"),
    )


def _unlimited(value: Any, where: Where) -> bool | tuple[str, ...]:
    if isinstance(value, bool):
        return value
    return _str_list(value, where, "unlimited (true, or a list of keyword groups)")


def load_keywords(path: Path) -> tuple[dict[str, dict[str, tuple[str, ...]]], dict[str, Where]]:
    data = _read(path)
    groups: dict[str, dict[str, tuple[str, ...]]] = {}
    wheres: dict[str, Where] = {}
    for group, by_language in data.items():
        if group == "__line__":
            continue
        if not isinstance(by_language, dict):
            raise FlowError(
                _where(path, data), f"keyword group '{group}' must map languages to words"
            )
        wheres[group] = _where(path, by_language)
        groups[group] = {
            lang: _str_list(words, wheres[group], f"{group}.{lang}")
            for lang, words in by_language.items()
            if lang != "__line__"
        }
    return groups, wheres


def load_flows(directory: Path) -> FlowSet:
    """Read every flow in `directory` (and its `keywords.yaml`)."""
    flows = {}
    for path in sorted(directory.glob("*.yaml")):
        if path.name in {"keywords.yaml", "templates.yaml"}:
            continue
        flow = load_flow(path)
        flows[flow.name] = flow
    keywords, wheres = load_keywords(directory / "keywords.yaml")
    return FlowSet(flows=flows, keywords=keywords, keyword_where=wheres)
