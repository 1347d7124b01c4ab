"""Random conversations of several people, checked against the rules that must always hold.

- No marketing consent without an explicit yes to a notice that was shown.
- STOP always revokes and is always confirmed, whatever state the person was in.
- No exception, no turn set aside, no person stuck without an answer to a privacy word.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bot.crypto import Index
from bot.simulator import webhooks
from tests.conftest import APP_SECRET, PHONE_NUMBER_ID
from tests.flowkit import BRAZIL, GERMANY, UK, options_of
from tests.threaded import ThreadedBot

PEOPLE = [UK, GERMANY, BRAZIL]
YES_WORDS = ["YES", "ja", "sim", "oui"]
STOP_WORDS = ["STOP", "stopp", "Parar", "arrêt", "UNSUBSCRIBE"]
OTHER_WORDS = ["hello", "JOIN", "NO", "START", "HELP", "MY DATA", "DELETE MY DATA",
               "RESIDENCE", "LANGUAGE", "AGENT", "Deutschland", "🙂", "menu"]  # fmt: skip


@pytest.fixture(scope="module")
def tb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedBot]:
    # Three people write up to about a hundred messages, each waiting for the bot to be idle:
    # past the pacing burst every reply would wait its ~6 s (pacing has its own tests).
    settings = {"BOT_MARK_AS_READ": False, "BOT_RECIPIENT_BURST": 1000}
    with ThreadedBot(tmp_path_factory.mktemp("conv"), **settings) as bot:
        yield bot


class Conversations(RuleBasedStateMachine):
    tb: ThreadedBot
    http: httpx.Client

    def __init__(self) -> None:
        super().__init__()
        self.offered: dict[str, set[str]] = {p: set() for p in PEOPLE}
        self.sent_count = len(self.tb.fake.sent)
        for person in PEOPLE:  # every run starts from people the bot does not know
            self._send(person, webhooks.text("DELETE MY DATA"))
            self._send(person, webhooks.text("YES"))
        self.offered = {p: set() for p in PEOPLE}

    # Talking ------------------------------------------------------------------------------

    def _send(self, person: str, content: dict) -> list[dict]:
        body, _ = webhooks.message(PHONE_NUMBER_ID, person, content)
        raw, headers = webhooks.signed(body, APP_SECRET)
        assert (
            self.http.post(self.tb.url + "/webhook", content=raw, headers=headers).status_code
            == 200
        )
        self.tb.idle()
        new = self.tb.fake.sent[self.sent_count :]
        self.sent_count = len(self.tb.fake.sent)
        replies = [m.body for m in new if m.to == person[1:]]
        if replies:
            self.offered[person] = set(options_of(replies[-1]))
        return replies

    def _consent(self, person: str) -> str | None:
        index = self.tb.services.keyring.blind_index(Index.PHONE, person)
        with sqlite3.connect(self.tb.tmp / "bot.db") as db:
            row = db.execute(
                "SELECT c.status FROM consents c JOIN contacts k ON k.id = c.contact_id "
                "WHERE k.phone_index = ? AND c.purpose = 'marketing'",
                (index,),
            ).fetchone()
        return row[0] if row else None

    # Rules --------------------------------------------------------------------------------

    @rule(person=st.sampled_from(PEOPLE), word=st.sampled_from(OTHER_WORDS + YES_WORDS))
    def type_words(self, person: str, word: str) -> None:
        notice_open = "optin.yes" in self.offered[person]
        before = self._consent(person)
        self._send(person, webhooks.text(word))
        after = self._consent(person)
        if after == "granted" and before != "granted":
            assert word in YES_WORDS and notice_open, "consent without an explicit yes"

    @precondition(lambda self: any(self.offered.values()))
    @rule(data=st.data())
    def tap_an_offered_option(self, data: st.DataObject) -> None:
        person = data.draw(st.sampled_from([p for p in PEOPLE if self.offered[p]]))
        option = data.draw(st.sampled_from(sorted(self.offered[person])))
        notice_open = "optin.yes" in self.offered[person]
        before = self._consent(person)
        kind = (
            webhooks.list_reply
            if option.startswith(("menu.", "residence.", "language."))
            else (webhooks.button_reply)
        )
        self._send(person, kind(option, "tap"))
        if self._consent(person) == "granted" and before != "granted":
            assert option == "optin.yes" and notice_open, "consent without the notice's Yes"

    @rule(person=st.sampled_from(PEOPLE), word=st.sampled_from(STOP_WORDS))
    def say_stop(self, person: str, word: str) -> None:
        replies = self._send(person, webhooks.text(word))
        assert len(replies) == 1, "STOP is confirmed exactly once"
        assert replies[0]["type"] == "text"
        assert self._consent(person) in (None, "revoked")

    @invariant()
    def no_turn_failed(self) -> None:
        with sqlite3.connect(self.tb.tmp / "bot.db") as db:
            failed = db.execute("SELECT count(*) FROM inbox WHERE state = 'failed'").fetchone()
        assert failed[0] == 0
        metrics = self.http.get(self.tb.url + "/metrics").text
        assert 'bot_turns_total{outcome="error"}' not in metrics


def test_random_conversations_keep_the_rules(tb: ThreadedBot) -> None:
    with httpx.Client(timeout=30) as http:
        Conversations.tb, Conversations.http = tb, http
        run = Conversations.TestCase
        run.settings = settings(
            max_examples=6,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )
        run().runTest()
