"""The engine's step on its own: no database, no texts, only flow files in and a Step out.

Most cases run on the shipped flows; where a rule needs a shape they do not
have (a `next:` chain, a state answering a word that also starts a flow, a
condition decided by the test), a small flow set is written to tmp_path.
"""

from __future__ import annotations

import time
from pathlib import Path
from textwrap import dedent

import pytest

from bot.conversation.engine import Effect, Engine, Guard, Input, Say, Step
from bot.conversation.flowfile import FlowSet, load_flows
from bot.runtime.effects import CONDITION_CHECKS
from tests.turnkit import ROOT

FLOWS = load_flows(ROOT / "flows")
ENGINE = Engine(FLOWS, CONDITION_CHECKS)
RESTING = sorted(s.name for s in FLOWS.all_states if not s.end and not s.next)
STOP_WORDS = sorted({w for words in FLOWS.keywords["stop"].values() for w in words})
HOME, HANDOFF = "menu.main", "agent.waiting"
NOW = time.time()
HOUR = 3600.0
STOP_SAYS = [Say("stop.stopped", "stop.confirmed")]
STILL_WAITING = Say(HANDOFF, "agent.still_waiting")  # a flow ended during a wait for staff
STOP_DOES = [Effect("revoke_consent", "stop.stopped")]


def typed(words: str) -> Input:
    return Input(text=words)


def tapped(reply_id: str) -> Input:
    return Input(reply_id=reply_id)


async def step(
    state: str | None,
    inp: Input,
    *,
    engine: Engine = ENGINE,
    since: float = NOW,
    now: float = NOW,
    handed_off: bool = False,
    slots: dict | None = None,
) -> Step:
    return await engine.step(state, since, now, inp, handed_off=handed_off, slots=slots)


# A small flow set, for shapes the shipped flows do not have ----------------------------------

TINY = {
    "keywords.yaml": """
        stop: {en: [STOP]}
        help: {en: [HELP]}
        yes: {en: [YES]}
        go: {en: [GO]}
    """,
    "stop.yaml": """
        flow: stop
        entry: stopped
        start_on: {keywords: [stop]}
        states:
          stopped: {say: stop.confirmed, do: [revoke_consent], end: true}
    """,
    "menu.yaml": """
        flow: menu
        entry: main
        start_on: {keywords: [help]}
        states:
          main:
            say: menu.main
            on: {go: quiz.ask}
    """,
    "quiz.yaml": """
        flow: quiz
        entry: ask
        start_on: {keywords: [go]}
        states:
          ask:
            say: quiz.ask
            on:
              help: answered  # HELP also starts the menu: the state's own answer wins
              yes: {to: granted, do: [grant_consent], if: consent_requested, else: refused}
              quiz.chain: chain
              quiz.finish: finish
              quiz.loop: loop
            expires: {after: 30m, to: late}
          answered: {say: quiz.answered, end: true}
          granted: {say: quiz.granted, end: true}
          refused:
            say: quiz.refused
            on: {yes: answered}
          late:
            say: quiz.late
            on: {yes: late_yes}
          late_yes: {say: quiz.late_yes, end: true}
          chain: {say: quiz.one, next: chain2}
          chain2: {say: quiz.two, do: [show_data], next: chain3}
          chain3:
            say: quiz.three
            on: {yes: answered}
          finish: {say: quiz.finish, next: answered}
          loop: {next: loop2}
          loop2: {next: loop}
    """,
}


class Decides:
    """A condition the test sets, which notes every guard it was asked about."""

    def __init__(self, holds: bool) -> None:
        self.holds = holds
        self.asked: list[Guard] = []

    def __call__(self, guard: Guard) -> bool:
        self.asked.append(guard)
        return self.holds


@pytest.fixture
def tiny(tmp_path: Path) -> FlowSet:
    for name, content in TINY.items():
        (tmp_path / name).write_text(dedent(content))
    return load_flows(tmp_path)


def tiny_engine(flows: FlowSet, holds: bool = True) -> tuple[Engine, Decides]:
    condition = Decides(holds)
    return Engine(flows, {"consent_requested": condition}), condition


# Precedence -------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [None, *RESTING])
async def test_stop_wins_in_every_state(state: str | None) -> None:
    handed_off = state == HANDOFF
    done = await step(state, typed("STOP"), handed_off=handed_off)
    assert done.says == STOP_SAYS + ([STILL_WAITING] if handed_off else [])
    assert done.effects == STOP_DOES
    assert done.state == (HANDOFF if handed_off else HOME)  # a finished flow goes home


@pytest.mark.parametrize("word", STOP_WORDS)
async def test_every_stop_word_in_any_case_and_spacing_stops(word: str) -> None:
    done = await step("erase.confirm", typed(f"  {word.lower()} "))
    assert done.says == STOP_SAYS and done.effects == STOP_DOES


async def test_stop_mid_question_grants_nothing() -> None:
    asked = {"consent_request": {"asked_at": NOW}}
    done = await step("optin.notice", typed("STOP"), slots=asked)
    assert done.effects == STOP_DOES  # not grant_consent, whatever the notice offered


async def test_stop_in_a_handoff_is_answered_and_the_handoff_stays() -> None:
    done = await step(HANDOFF, typed("STOP"), handed_off=True)
    assert done.says == [*STOP_SAYS, STILL_WAITING] and done.effects == STOP_DOES
    assert done.state == HANDOFF


async def test_stop_after_the_question_expired_still_stops() -> None:
    done = await step("optin.notice", typed("STOP"), since=NOW - 48 * HOUR)
    assert done.says == STOP_SAYS and done.effects == STOP_DOES


async def test_a_states_own_answer_comes_before_any_flows_start(tiny: FlowSet) -> None:
    engine, _ = tiny_engine(tiny)
    answered = await step("quiz.ask", typed("HELP"), engine=engine)
    assert answered.says == [Say("quiz.answered", "quiz.answered")]
    # Where the state has no answer for it, the same word starts the menu.
    menu = await step("quiz.late", typed("help"), engine=engine)
    assert menu.says == [Say("menu.main", "menu.main")]
    assert menu.state == HOME


async def test_a_flows_start_is_tried_when_the_state_has_no_answer() -> None:
    done = await step("optin.notice", typed("MY DATA"))
    assert done.state == "my_data.summary"
    assert done.effects == [Effect("show_data", "my_data.summary")]
    assert done.says == [Say("my_data.summary", "my_data.next")]


async def test_a_referral_starts_the_opt_in() -> None:
    done = await step(HOME, Input(text="Hi, I saw your ad", referral=True))
    assert done.state == "optin.notice"
    assert done.effects == [Effect("request_consent", "optin.notice")]


@pytest.mark.parametrize("inp", [typed("banana"), tapped("nobody.offered"), typed("🙂")])
async def test_nothing_matches_a_short_reprompt_in_the_same_state(inp: Input) -> None:
    done = await step("optin.notice", inp, since=NOW - HOUR)
    assert done.says == [Say("optin.notice", "common.unknown")]  # the options, one short line
    assert done.state == "optin.notice"
    assert done.effects == [] and not done.entered_at_now


async def test_a_quiet_reprompt_says_the_states_own_text_again() -> None:
    done = await step(HOME, typed("banana"))
    assert done.says == [Say(HOME, "menu.main")]
    assert done.state == HOME and done.effects == []


@pytest.mark.parametrize("handed_off", [True, False])
@pytest.mark.parametrize("words", ["hello, anyone there?", "LANGUAGE", "HELP", "JOIN"])
async def test_silence_in_a_handoff_but_for_flows_marked_in_handoff(
    words: str, handed_off: bool
) -> None:
    done = await step(HANDOFF, typed(words), handed_off=handed_off)
    if words == "JOIN":  # the opt-in is a privacy right: it answers in a handoff
        assert done.state == "optin.notice"
        return
    if words == "HELP":  # the way back to the assistant: the wait ends
        assert done.state == HOME and done.says == [Say(HOME, "menu.main")]
        assert done.effects == [Effect("end_handoff", "menu.start")]
        return
    assert done.says == [] and done.effects == []
    assert done.state == HANDOFF


async def test_privacy_words_in_a_handoff_return_to_it() -> None:
    summary = await step(HANDOFF, typed("MY DATA"), handed_off=True)
    assert summary.state == "my_data.summary"
    kept = await step("erase.confirm", tapped("erase.no"), handed_off=True)
    assert kept.says == [Say("erase.kept", "erase.kept"), STILL_WAITING]  # told they wait
    assert kept.state == HANDOFF  # not the menu: staff still have the chat


# Conditions -------------------------------------------------------------------------------


async def test_a_condition_that_holds_goes_to_and_acts(tiny: FlowSet) -> None:
    engine, condition = tiny_engine(tiny, holds=True)
    slots = {"something": "remembered"}
    done = await step("quiz.ask", typed("yes"), engine=engine, slots=slots, now=NOW + 60)
    assert done.says == [Say("quiz.granted", "quiz.granted")]
    assert done.effects == [Effect("grant_consent", "quiz.ask", "yes")]
    (guard,) = condition.asked
    assert guard.state.name == "quiz.ask" and guard.input_id == "yes"
    assert guard.slots == slots and guard.now == NOW + 60


async def test_a_condition_that_fails_enters_else_and_does_nothing(tiny: FlowSet) -> None:
    engine, condition = tiny_engine(tiny, holds=False)
    done = await step("quiz.ask", typed("YES"), engine=engine)
    assert done.says == [Say("quiz.refused", "quiz.refused")]  # the else state's text
    assert done.state == "quiz.refused" and done.entered_at_now
    assert done.effects == []  # the `to` branch's grant_consent is not recorded
    assert len(condition.asked) == 1


@pytest.mark.parametrize("answer", [tapped("optin.yes"), typed("YES"), typed("sim")])
async def test_the_notices_yes_counts_only_when_it_was_asked(answer: Input) -> None:
    asked = {"consent_request": {"asked_at": NOW - HOUR}}
    confirmed = await step("optin.notice", answer, since=NOW - HOUR, slots=asked)
    assert confirmed.says == [Say("optin.confirmed", "optin.confirmed")]
    assert [e.action for e in confirmed.effects] == ["grant_consent"]
    assert confirmed.state == HOME

    unasked = await step("optin.notice", answer, since=NOW - HOUR, slots={})
    assert unasked.says == [Say(HOME, "menu.main")]  # `else: menu.main`, entered and said
    assert unasked.effects == []


async def test_a_country_that_is_understood_is_kept_and_another_asked_again() -> None:
    done = await step("residence.ask", typed("Deutschland"))
    assert done.effects == [Effect("set_residence", "residence.ask", "Deutschland")]
    assert done.says == [Say("residence.done", "residence.done")]
    again = await step("residence.ask", typed("Atlantis"))
    assert again.effects == []
    assert again.says == [  # first "I didn't understand", then the list again
        Say("residence.unknown", "residence.unknown"),
        Say("residence.ask", "residence.ask"),
    ]
    assert again.state == "residence.ask" and again.entered_at_now


# Expiry -----------------------------------------------------------------------------------


async def test_an_answer_after_expires_starts_from_its_target(tiny: FlowSet) -> None:
    engine, condition = tiny_engine(tiny)
    late = await step("quiz.ask", typed("YES"), engine=engine, since=NOW, now=NOW + 1801)
    assert late.path[0] == "quiz.late"
    assert late.says == [Say("quiz.late_yes", "quiz.late_yes")]  # YES as quiz.late reads it
    assert condition.asked == []  # quiz.ask's yes was never tried

    lost = await step("quiz.ask", typed("banana"), engine=engine, since=NOW, now=NOW + 1801)
    assert lost.state == "quiz.late"
    assert lost.says == [Say("quiz.late", "common.unknown")]


async def test_an_answer_within_expires_is_taken_where_it_was_asked(tiny: FlowSet) -> None:
    engine, condition = tiny_engine(tiny)
    done = await step("quiz.ask", typed("YES"), engine=engine, since=NOW, now=NOW + 1800)
    assert done.says == [Say("quiz.granted", "quiz.granted")]
    assert len(condition.asked) == 1


async def test_a_late_yes_to_the_notice_gets_the_menu_and_no_consent() -> None:
    asked = {"consent_request": {"asked_at": NOW - 25 * HOUR}}
    done = await step("optin.notice", tapped("optin.yes"), since=NOW - 25 * HOUR, slots=asked)
    assert done.path[0] == HOME
    assert done.says == [Say(HOME, "menu.main")]
    assert done.effects == []


# Unlimited --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "inp"),
    [
        (None, typed("STOP")),
        (HOME, typed("stopp")),
        ("optin.notice", typed("START")),
        (HOME, typed("DELETE MY DATA")),
        (HOME, typed("löschen")),
        (HOME, tapped("menu.erase")),
        (HOME, tapped("menu.stop")),
        ("erase.confirm", tapped("erase.yes")),
        ("erase.confirm", typed("YES")),
        ("erase.confirm", typed("anything at all")),
        (HOME, tapped("erase.no")),
    ],
)
async def test_ways_out_are_unlimited(state: str | None, inp: Input) -> None:
    assert ENGINE.unlimited(state, inp)


@pytest.mark.parametrize(
    ("state", "inp"),
    [
        (None, typed("hello")),
        (HOME, typed("JOIN")),  # the opt-in lists only [start] as unlimited
        ("optin.notice", typed("YES")),
        ("optin.notice", tapped("optin.yes")),
        (HOME, typed("MY DATA")),
        (HOME, typed("AGENT")),
        (HANDOFF, typed("hello")),
        (HOME, Input(text="hi", referral=True)),
    ],
)
async def test_ordinary_words_are_limited(state: str | None, inp: Input) -> None:
    assert not ENGINE.unlimited(state, inp)


# next: chains and the start ---------------------------------------------------------------


async def test_next_goes_on_at_once_saying_and_doing_each_state(tiny: FlowSet) -> None:
    engine, _ = tiny_engine(tiny)
    done = await step("quiz.ask", tapped("quiz.chain"), engine=engine)
    assert done.path == ["quiz.chain", "quiz.chain2", "quiz.chain3"]
    assert [s.message_id for s in done.says] == ["quiz.one", "quiz.two", "quiz.three"]
    assert done.effects == [Effect("show_data", "quiz.chain2")]
    assert done.state == "quiz.chain3"  # waits where the chain ends


async def test_next_into_an_end_goes_home(tiny: FlowSet) -> None:
    engine, _ = tiny_engine(tiny)
    done = await step("quiz.ask", tapped("quiz.finish"), engine=engine)
    assert [s.message_id for s in done.says] == ["quiz.finish", "quiz.answered"]
    assert done.state == HOME


async def test_a_next_loop_is_refused(tiny: FlowSet) -> None:
    engine, _ = tiny_engine(tiny)
    with pytest.raises(RuntimeError, match="next"):
        await step("quiz.ask", tapped("quiz.loop"), engine=engine)


@pytest.mark.parametrize("state", [None, "gone.away", "menu.removed"])
async def test_no_state_or_an_unknown_one_is_the_start(state: str | None) -> None:
    done = await step(state, typed("hello"))
    assert done.before == HOME
    assert done.says == [Say(HOME, "menu.main")]
    joined = await step(state, typed("JOIN"))
    assert joined.state == "optin.notice"
    assert joined.effects == [Effect("request_consent", "optin.notice")]


async def test_the_start_in_a_handoff_is_the_handoff() -> None:
    done = await step(None, typed("hello"), handed_off=True)
    assert done.before == HANDOFF
    assert done.says == [] and done.state == HANDOFF
