"""`python -m bot flows diagram NAME`: one flow as a Mermaid state diagram.

The privacy team reviews a flow as a picture (paste it into any Mermaid
viewer, GitHub renders it in Markdown): which text each state says, which
reply leads where, what is recorded on the way (`/ grant_consent`), what
happens when nobody answers, and how the flow is started.
"""

from __future__ import annotations

import re

from bot.conversation.flowfile import Flow, FlowSet, State

_NOT_ID = re.compile(r"[^A-Za-z0-9_]")


def _id(state: str) -> str:
    """Mermaid state ids cannot hold dots: `optin.notice` -> `optin_notice`."""
    return _NOT_ID.sub("_", state)


def _duration(seconds: int) -> str:
    """As people say it: 24h (not 1d), 7d, 30m."""
    if seconds % 86400 == 0 and seconds > 86400:
        return f"{seconds // 86400}d"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _plain(text: str) -> str:
    """One line without the characters Mermaid treats as syntax."""
    return " ".join(re.sub(r"[;:{}#]", ",", text).split())


def _input_label(name: str) -> str:
    return "typed text" if name == "text" else name


def _state_lines(state: State) -> list[str]:
    lines = [f'    state "{state.name}" as {_id(state.name)}']
    details = [f"says {state.say}"] if state.say else []
    details += [f"do {action}" for action in state.do]
    if state.handoff:
        details.append("handed to staff")
    lines += [f"    {_id(state.name)} : {detail}" for detail in details]
    return lines


def _edges(state: State) -> list[str]:
    src = _id(state.name)
    lines = []
    for t in state.on:
        answer = _input_label(t.input)
        label = answer + (f" if {t.when}" if t.when else "")
        label += f" / {', '.join(t.do)}" if t.do else ""
        lines.append(f"    {src} --> {_id(t.to)} : {label}")
        if t.otherwise:
            lines.append(f"    {src} --> {_id(t.otherwise)} : {answer} otherwise")
    if state.next:
        lines.append(f"    {src} --> {_id(state.next)} : next")
    if state.expires_to and state.expires_after is not None:
        lines.append(
            f"    {src} --> {_id(state.expires_to)} : after {_duration(state.expires_after)}"
        )
    if state.end:
        lines.append(f"    {src} --> [*]")
    if state.back:
        lines.append(f"    {src} --> [*] : back to where the person was")
    return lines


def _start_note(flows: FlowSet, flow: Flow) -> list[str]:
    """Which words, buttons, ads or media start the flow (from anywhere, not only from the menu)."""
    notes = []
    for group in flow.keywords:
        words = flows.keywords.get(group, {}).get("en", ())
        notes.append(f"words {group}: {', '.join(words)}" if words else f"words {group}")
    for group in flow.contains:
        words = flows.keywords.get(group, {}).get("en", ())
        notes.append(f"a sentence with {group}: {', '.join(words)}" if words else group)
    notes += [f"button {button}" for button in flow.buttons]
    if flow.referral:
        notes.append("an ad or QR code")
    if flow.media:
        notes.append("a picture, voice note, location … (not text)")
    if flow.in_handoff:
        notes.append("(also while handed to staff)")
    if not notes:
        return []
    body = [f"        {note}" for note in ["started by", *notes]]
    return [f"    note right of {_id(flow.entry)}", *body, "    end note"]


def mermaid(flows: FlowSet, name: str) -> str:
    """A `stateDiagram-v2` of one flow; states of other flows are drawn dashed, outside it."""
    if name not in flows.flows:
        raise KeyError(f"no flow '{name}'; the flows are: {', '.join(sorted(flows.flows))}")
    flow = flows.flows[name]
    lines = ["stateDiagram-v2", f"    %% {flow.name}: {_plain(flow.description)}"]
    for state in flow.states.values():
        lines += _state_lines(state)
    outside = sorted({t for s in flow.states.values() for t in s.targets} - set(flow.states))
    lines += [f'    state "{target}" as {_id(target)}' for target in outside]
    lines.append(f"    [*] --> {_id(flow.entry)}")
    for state in flow.states.values():
        lines += _edges(state)
    lines += _start_note(flows, flow)
    if outside:
        lines.append("    classDef outside fill:#f4f4f4,stroke:#999,stroke-dasharray:4")
        lines += [f"    class {_id(target)} outside" for target in outside]
    return "\n".join(lines) + "\n"
