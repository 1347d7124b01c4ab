"""Random conversations of several people, checked against the rules that must always hold.

- A no to the notice never leaves marketing consent standing.
- No marketing consent without an explicit yes to a notice that was shown and has not
  lapsed (the notice's `expires` in flows/optin.yaml), and an explicit yes to a notice
  still open always records it.
- STOP always revokes and is always confirmed, once, whatever state the person was in.
- No turn fails or leaves its inbox row unfinished.

Each example starts on a fresh SQLite file and runs its turns through the turn harness
(tests/turnkit.py), on an event loop of its own: hypothesis drives plain functions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bot.crypto import Index
from bot.simulator import webhooks
from tests.conftest import fresh_sqlite
from tests.flowkit import BRAZIL, GERMANY, UK, options_of
from tests.turnkit import TurnKit, tapped

T = TypeVar("T")
PEOPLE = [UK, GERMANY, BRAZIL]
YES_WORDS = ["YES", "ja", "sim", "oui"]
STOP_WORDS = ["STOP", "stopp", "Parar", "arrêt", "UNSUBSCRIBE"]
OTHER_WORDS = ["hello", "JOIN", "NO", "START", "HELP", "MY DATA", "DELETE MY DATA",
               "RESIDENCE", "LANGUAGE", "CORRECTION", "AGENT", "Deutschland", "🙂",
               "menu"]  # fmt: skip
JOINING = ["JOIN", "START", "beitreten", "referral"]
REFERRAL = {
    **webhooks.text("Hi, I saw your ad"),
    "referral": {"source_id": "ad-1", "source_type": "ad"},
}
HOURS = [0.5, 1, 23, 25, 49]  # around the notice's 24 hours and past a day's handoff
START = float(int(time.time()))  # whole seconds: the hours add up exactly


class Conversations(RuleBasedStateMachine):
    runner: ClassVar[asyncio.Runner]
    template: ClassVar[Path]
    tmp: ClassVar[Path]
    examples: ClassVar[int] = 0

    def __init__(self) -> None:
        super().__init__()
        Conversations.examples += 1
        folder = self.tmp / f"example-{self.examples}"
        folder.mkdir()
        self._opened: AbstractAsyncContextManager[TurnKit] = TurnKit.open(
            fresh_sqlite(self.template, folder), now=START
        )
        self.kit = self._run(self._opened.__aenter__())
        self.window = self.kit.content.flows.state("optin.notice").expires_after
        self.offered: dict[str, set[str]] = {p: set() for p in PEOPLE}
        # When the replies to a person began offering the notice's Yes (the notice was
        # shown at or after it), and when they last did (it was shown at or before it).
        self.first_shown: dict[str, float | None] = {p: None for p in PEOPLE}
        self.last_shown: dict[str, float | None] = {p: None for p in PEOPLE}

    def teardown(self) -> None:
        self._run(self._opened.__aexit__(None, None, None))

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    # Talking ------------------------------------------------------------------------------

    def _send(self, person: str, content: dict[str, Any]) -> list[dict[str, Any]]:
        replies = self._run(self.kit.send(person, content))
        if replies:
            self.offered[person] = set(options_of(replies[-1]))
            if "optin.yes" in self.offered[person]:
                self.last_shown[person] = self.kit.now
                if self.first_shown[person] is None:
                    self.first_shown[person] = self.kit.now
            else:
                self.first_shown[person] = self.last_shown[person] = None
        return replies

    def _consent(self, person: str) -> str | None:
        return self._run(self.kit.consent(person))

    def _talk(self, person: str, content: dict[str, Any], explicit_yes: bool) -> None:
        """Send `content` and check the consent it leaves: a new one needs an explicit yes
        to a notice still open, and an explicit yes to a notice still open always gives one."""
        first, last = self.first_shown[person], self.last_shown[person]
        before = self._consent(person)
        taken_back = self._handoff_lapsed(person)
        self._send(person, content)
        now, after = self.kit.now, self._consent(person)
        if after == "granted" and before != "granted":
            assert explicit_yes and last is not None, "consent without an explicit yes"
            assert self._within_window(now - last), "consent after the notice lapsed"
        if explicit_yes and first is not None and self._within_window(now - first):
            # A handoff nobody answered is taken back at this message, back at the start.
            assert after == "granted" or taken_back, "a yes to an open notice was lost"

    def _within_window(self, age: float) -> bool:
        return self.window is None or age <= self.window

    def _handoff_lapsed(self, person: str) -> bool:
        """Will this person's next message find a handoff nobody answered in time?"""
        timeout = self.kit.settings.BOT_HANDOFF_TIMEOUT
        rows = self._run(
            self.kit.sql(
                "SELECT handoff_at FROM contacts WHERE phone_index = :i",
                i=self.kit.keyring.blind_index(Index.PHONE, person),
            )
        )
        started = rows[0][0] if rows else None
        return bool(timeout) and started is not None and self.kit.now - started >= timeout

    # Rules --------------------------------------------------------------------------------

    @rule(person=st.sampled_from(PEOPLE), word=st.sampled_from(OTHER_WORDS))
    def type_words(self, person: str, word: str) -> None:
        self._talk(person, webhooks.text(word), explicit_yes=False)

    @rule(person=st.sampled_from(PEOPLE), word=st.sampled_from(YES_WORDS))
    def type_yes(self, person: str, word: str) -> None:
        self._talk(person, webhooks.text(word), "optin.yes" in self.offered[person])

    @rule(person=st.sampled_from(PEOPLE), how=st.sampled_from(JOINING))
    def ask_to_join(self, person: str, how: str) -> None:
        """The ways to the notice (the other rules reach it too, but rarely)."""
        content = REFERRAL if how == "referral" else webhooks.text(how)
        self._talk(person, content, explicit_yes=False)

    @precondition(lambda self: any(self.offered.values()))
    @rule(data=st.data())
    def tap_an_offered_option(self, data: st.DataObject) -> None:
        person = data.draw(st.sampled_from([p for p in PEOPLE if self.offered[p]]))
        option = data.draw(st.sampled_from(sorted(self.offered[person])))
        self._talk(person, tapped(option, "tap"), option == "optin.yes")
        if option == "optin.no":
            assert self._consent(person) != "granted", "a no left a yes standing"

    @rule(person=st.sampled_from(PEOPLE), word=st.sampled_from(STOP_WORDS))
    def say_stop(self, person: str, word: str) -> None:
        replies = self._send(person, webhooks.text(word))
        confirmation, *reminder = replies
        assert confirmation["type"] == "text", "STOP is confirmed"
        # exactly once; during a wait for staff the person is also told they still wait
        assert reminder == [] or (len(reminder) == 1 and "menu.back" in options_of(reminder[0]))
        assert self._consent(person) in (None, "revoked", "declined")  # never granted

    @rule(hours=st.sampled_from(HOURS))
    def time_passes(self, hours: float) -> None:
        self.kit.later(hours=hours)

    @invariant()
    def no_turn_failed_or_left_pending(self) -> None:
        rows = self._run(self.kit.sql("SELECT state, count(*) FROM inbox GROUP BY state"))
        assert {state for state, _ in rows} <= {"done"}, rows


def test_random_conversations_keep_the_rules(sqlite_template: Path, tmp_path: Path) -> None:
    with asyncio.Runner() as runner:
        Conversations.runner, Conversations.template = runner, sqlite_template
        Conversations.tmp, Conversations.examples = tmp_path, 0
        run = Conversations.TestCase
        run.settings = settings(
            max_examples=30,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )
        run().runTest()
