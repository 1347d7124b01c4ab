"""The conversation engine: one step from (state, input) to (new state, what to say, effects).

Each flow file becomes one `transitions` AsyncMachine (auto_transitions off)
that serves every contact: per turn a small model is attached at the
contact's saved state, the trigger is fired and the model is removed again
(attach → trigger → remove costs ~73 µs, while models left attached make
`add_model` slower for everyone). The engine knows neither the database nor
HTTP: it returns what to say (message ids and options, rendered later in the
person's language) and the named effects for the turn runner to carry out.

Precedence of an input, in every state:
1. STOP (the `stop` keyword group) — always, even mid-question or in a handoff;
   then a typed button or row title counts as tapping it (the current state's
   own options first, else one that starts a flow from anywhere), so an
   irreversible step is confirmed only by its own title at its own question;
   then a longer message that mentions a word of a group some flow lists under
   `start_on: contains:` starts that flow (a question, so nothing is done on a
   guess and an open question is never answered by it), except in a state that
   takes free text (`text:`), where the whole message is the answer;
2. the current state's own `on:` entries (a button id, `prefix.*`, a keyword
   group, then `text` for any other text); an entry with `if:` goes to its
   `else:` state when its condition does not hold (conditions are given to the
   engine by the turn runner, named in `actions.CONDITIONS`);
3. a flow's `start_on` (its keywords, buttons or a referral, then `media` for a
   picture, voice note, location … the bot cannot read) — during a handoff only
   flows marked `in_handoff`. A state with `back: true` returns the person to
   where they were, so such a flow answers without closing an open question;
4. anything else: a short re-prompt with the current options (silence during
   a handoff); a near-miss of a word or title that would do something here
   ("delet my data", "stpo") is suggested in it, never acted on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from transitions.extensions.asyncio import AsyncMachine

from bot.conversation.flowfile import Flow, FlowError, FlowSet, State
from bot.conversation.keywords import KeywordMatcher

MAX_HOPS = 8
HOME = "menu.main"


@dataclass(frozen=True, slots=True)
class Input:
    """What the person did, reduced to what flows react to."""

    text: str | None = None  # typed text
    reply_id: str | None = None  # a tapped button or list row
    referral: bool = False  # arrived from an ad or QR code
    media: bool = False  # a picture, voice note, location … that the bot cannot read


@dataclass(frozen=True, slots=True)
class Say:
    """One message to send: a state's options with its text (or a re-prompt line)."""

    state: str
    message_id: str
    plain: bool = False  # a text said before the state's own, without its options
    params: tuple[tuple[str, str], ...] = ()  # filled into the text, e.g. a suggestion


@dataclass(frozen=True, slots=True)
class Guard:
    """What a transition's condition may look at."""

    state: State  # the state the transition leaves (its `expires`, its name)
    input_id: str | None  # the button/row id or typed text
    slots: Mapping[str, Any]  # what the person's conversation remembers
    now: float


Condition = Callable[[Guard], bool]


@dataclass(frozen=True, slots=True)
class Effect:
    action: str
    state: str  # the state it belongs to (for the audit trail)
    input_id: str | None = None  # the button/row id or typed text that caused it


@dataclass
class Step:
    before: str
    state: str
    entered_at_now: bool
    home: str = HOME  # where a finished flow returns to
    says: list[Say] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    path: list[str] = field(default_factory=list)  # states passed through, for the audit


class _Model:
    """What a machine moves for one turn; never kept between turns."""

    def __init__(self, guard: Guard) -> None:
        self.effects: list[tuple[str, str | None]] = []
        self.guard = guard


class Engine:
    def __init__(
        self,
        flows: FlowSet,
        conditions: Mapping[str, Condition] | None = None,
        readings: Callable[[str], Iterable[str]] | None = None,
    ) -> None:
        """`readings`: every way a message id reads (`Texts.readings`), for typed titles."""
        self.flows = flows
        # A keyword group found inside a longer message -> the flow it starts.
        self._containers = {g: flow for flow in flows.flows.values() for g in flow.contains}
        titles: dict[str, list[str]] = {}  # button or row id -> its title in every language
        if readings is not None:
            for option in (o for s in flows.all_states for o in s.buttons + s.rows):
                titles.setdefault(option.id, []).extend(readings(option.title))
        self.keywords = KeywordMatcher(flows.keywords, set(self._containers), titles)
        self._conditions = dict(conditions or {})
        for state in flows.all_states:
            for t in state.on:
                if t.when and t.when not in self._conditions:
                    raise FlowError(t.where, f"condition '{t.when}' has no implementation")
        self._machines = {name: self._machine(flow) for name, flow in flows.flows.items()}
        handoffs = [s.name for s in flows.all_states if s.handoff]
        self._handoff_home = handoffs[0] if handoffs else HOME
        self._suggestions: dict[str, dict[str, str]] = {}  # state -> what a near-miss may mean
        self._unlimited = _unlimited(flows)

    def _machine(self, flow: Flow) -> AsyncMachine:
        names = set(flow.states)
        for state in flow.states.values():
            names.update(state.targets)
        machine = AsyncMachine(
            model=None,
            states=sorted(names),
            initial=None,
            auto_transitions=False,
            ignore_invalid_triggers=True,
            name=flow.name,
        )
        for state in flow.states.values():
            for t in state.on:
                # Tried in order: `to` if the condition holds, else `else`.
                machine.add_transition(
                    trigger=_trigger(t.input),
                    source=state.name,
                    dest=t.to,
                    conditions=[partial(self._holds, t.when)] if t.when else None,
                    after=[partial(_record, action) for action in t.do],
                )
                if t.otherwise:
                    machine.add_transition(_trigger(t.input), state.name, t.otherwise)
            if state.expires_to:
                machine.add_transition("expire", state.name, state.expires_to)
        return machine

    def _holds(self, name: str, model: _Model) -> bool:
        return self._conditions[name](model.guard)

    # The step ---------------------------------------------------------------------------

    async def step(
        self,
        state: str | None,
        since: float,
        now: float,
        inp: Input,
        handed_off: bool = False,
        slots: Mapping[str, Any] | None = None,
    ) -> Step:
        """One step from `state` (None: the start). `handed_off`: a human has the
        conversation (until staff hand it back), so only privacy words are answered
        and finished flows return to the handoff state, not the menu. `slots`: what
        the person's conversation remembers, for the transitions' conditions."""
        home = self._handoff_home if handed_off else HOME
        if state is None or not self.flows.has_state(state):
            state = home  # someone new, handed back, or a state removed since: the start
        step = Step(before=state, state=state, entered_at_now=False, home=home)
        current = self.flows.state(state)
        slots = slots if slots is not None else {}
        if current.expires_after is not None and now - since > current.expires_after:
            step.state = await self._fire(Guard(current, None, slots, now), "expire")
            current = self.flows.state(step.state)
            step.path.append(step.state)

        group = self.keywords.match(inp.text) if inp.text else None
        if group == "stop":
            return self._enter(step, self.flows.flows["stop"].entry)
        quiet = current.handoff or handed_off
        if inp.text and group is None:
            tapped = self._titled(current, inp.text, quiet)
            if tapped is not None:
                inp = Input(reply_id=tapped)
            elif not any(t.input == "text" for t in current.on):  # free text is an answer
                mentioned = self._mentioned(inp.text, quiet)
                if mentioned is not None:
                    return self._enter(step, mentioned.entry)

        trigger, input_id = self._local_trigger(current, inp, group)
        if trigger is not None:
            model_effects: list[tuple[str, str | None]] = []
            dest = await self._fire(Guard(current, input_id, slots, now), trigger, model_effects)
            step.effects += [Effect(a, current.name, i) for a, i in model_effects]
            return self._enter(step, dest)

        started = self._started_flow(quiet, inp, group)
        if started is not None:
            return self._enter(step, started.entry)

        if quiet:
            return step  # a human has the conversation: the bot stays quiet
        meant = None
        if inp.text and group is None:  # a keyword is no typo, even where it means nothing
            meant = self.keywords.near(inp.text, self._suggestible(current))
        if meant is not None:  # only said: a near-miss never acts, least of all STOP or erase
            step.says.append(
                Say(current.name, "common.did_you_mean", params=(("suggestion", meant),))
            )
        elif current.quiet_reprompt:
            step.says.append(Say(current.name, current.say or "common.unknown"))
        else:  # short: one line and the same options, not the whole text again
            step.says.append(Say(current.name, current.reprompt or "common.unknown"))
        return step

    def _local_trigger(
        self, state: State, inp: Input, group: str | None
    ) -> tuple[str | None, str | None]:
        for t in state.on:
            if inp.reply_id and (
                t.input == inp.reply_id
                or (t.input.endswith(".*") and inp.reply_id.startswith(t.input[:-1]))
            ):
                return _trigger(t.input), inp.reply_id
        for t in state.on:
            if group and t.input == group:
                return _trigger(t.input), group
        for t in state.on:
            if t.input == "text" and inp.text and group is None:
                return _trigger(t.input), inp.text
        return None, None

    def _titled(self, state: State, text: str, quiet: bool) -> str | None:
        """The button or row a typed title names: one this state shows and answers,
        else one that starts a flow from here (what tapping it would do)."""
        ids = self.keywords.titled(text)
        shown = {o.id for o in state.buttons + state.rows}
        for option_id in ids:
            answered = self._local_trigger(state, Input(reply_id=option_id), None)[0]
            if option_id in shown and answered is not None:
                return option_id
        for option_id in ids:
            if self._started_flow(quiet, Input(reply_id=option_id), None) is not None:
                return option_id
        return None

    def _suggestible(self, state: State) -> dict[str, str]:
        """The words and titles that would do something in `state`: STOP, every flow's
        start words and buttons, and the state's own answers."""
        if state.name not in self._suggestions:
            flows = self.flows.flows.values()
            groups = {"stop", *(g for f in flows for g in f.keywords)}
            groups.update(t.input for t in state.on if t.input in self.flows.keywords)
            ids = [i for f in flows for i in f.buttons]
            shown = {o.id for o in state.buttons + state.rows}
            ids += [t.input for t in state.on if t.input in shown]
            self._suggestions[state.name] = self.keywords.suggestions(sorted(groups), ids)
        return self._suggestions[state.name]

    def _mentioned(self, text: str, quiet: bool) -> Flow | None:
        """The flow a word inside a longer message starts (`start_on: contains:`)."""
        flow = self._containers.get(self.keywords.contains(text) or "")
        return flow if flow is not None and (flow.in_handoff or not quiet) else None

    def _started_flow(self, quiet: bool, inp: Input, group: str | None) -> Flow | None:
        flows = [f for f in self.flows.flows.values() if f.in_handoff or not quiet]
        for flow in flows:
            if (
                (group and group in flow.keywords)
                or (inp.reply_id and inp.reply_id in flow.buttons)
                or (inp.referral and flow.referral)
            ):
                return flow
        if inp.media:  # after a referral: a picture sent from an ad still gets the notice
            return next((f for f in flows if f.media), None)
        return None

    def unlimited(self, state: str | None, inp: Input) -> bool:
        """Is this input a way out that the inbound limit never holds back (STOP, START,
        erasure: what the flow files mark `unlimited`)?"""
        group = self.keywords.match(inp.text) if inp.text else None
        tapped: tuple[str | None, ...] = (inp.reply_id,)
        if inp.text and group is None:
            group = self.keywords.contains(inp.text)
            tapped = self.keywords.titled(inp.text)
        groups, buttons, states = self._unlimited
        return (
            (group is not None and group in groups)
            or any(i in buttons for i in tapped)
            or (state is not None and state in states)
        )

    async def _fire(
        self,
        guard: Guard,
        trigger: str,
        effects: list[tuple[str, str | None]] | None = None,
    ) -> str:
        state = guard.state
        machine = self._machines[state.flow]
        model = _Model(guard)
        machine.add_model(model, initial=state.name)
        try:
            await model.trigger(trigger, model)  # type: ignore[attr-defined]
            dest: str = model.state  # type: ignore[attr-defined]
        finally:
            machine.remove_model(model)
        if effects is not None:
            effects.extend(model.effects)
        return dest

    def _enter(self, step: Step, name: str) -> Step:
        """Enter `name` and follow `next:` links: collect each state's effects and text."""
        origin, entered = step.state, step.entered_at_now
        for _ in range(MAX_HOPS):
            state = self.flows.state(name)
            step.path.append(name)
            step.effects += [Effect(a, name) for a in state.do]
            step.says += [Say(name, said, plain=True) for said in state.say_before]
            if state.say:
                step.says.append(Say(name, state.say))
            step.entered_at_now = True
            if state.back:  # where the person was, as they were: a question stays open
                step.state, step.entered_at_now = origin, entered
                return step
            if state.end:
                step.state = step.home
                back = self.flows.state(step.home)
                if back.return_say:  # e.g. "you are still waiting for a person"
                    step.says.append(Say(back.name, back.return_say))
                return step
            if state.next is None:
                step.state = name
                return step
            name = state.next
        raise RuntimeError(f"more than {MAX_HOPS} 'next' hops from {step.before}")


def _trigger(input_name: str) -> str:
    return "on:" + input_name


async def _record(action: str, model: _Model) -> None:
    """Transition callback: note the action as an effect (carried out after the step)."""
    model.effects.append((action, model.guard.input_id))


def _unlimited(flows: FlowSet) -> tuple[set[str], set[str], set[str]]:
    """(keyword groups, button/row ids, states) the inbound limit never holds back."""
    groups: set[str] = set()
    buttons: set[str] = set()
    states: set[str] = set()
    for flow in flows.flows.values():
        if flow.unlimited is True:
            groups.update(flow.keywords + flow.contains)
            buttons.update(flow.buttons)
            for state in flow.states.values():
                states.add(state.name)
                buttons.update(o.id for o in state.buttons + state.rows)
        elif flow.unlimited:
            groups.update(flow.unlimited)
    return groups, buttons, states
