"""One message turn: who wrote, what the flow says, and every effect in one transaction.

Finds the person (`bot.privacy.person`), applies the inbound limit, lets the
engine take one step, carries out the step's effects (`effects.py`), renders
the replies in the person's language and law, and commits all of it — state,
consent records, stored messages, replies to send, audit entries, inbox row
done — in one unit. Sending happens after commit, from the outbox. Which
state means what is the flow files' business: nothing here names a state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot import audit
from bot.conversation.engine import Engine, Input, Step
from bot.conversation.render import Renderer, prefaced
from bot.crypto import DataKey
from bot.policy.inbound import InboundLimiter
from bot.privacy import erasure
from bot.privacy import person as people_store
from bot.privacy.jurisdiction import decide, language_for
from bot.privacy.language import shown_language
from bot.privacy.person import People, Person
from bot.privacy.records import inbound_kept, message_row
from bot.runtime.effects import LANGUAGE_GUESS, Deps, Turn, carry_out
from bot.runtime.outbox import OutItem
from bot.store import Conn
from bot.store import contacts as contact_store
from bot.store import inbox as inbox_store
from bot.store import messages as message_store
from bot.whatsapp.events import InboundMessage
from bot.whatsapp.messages import Recipient, Text, graph_body


@dataclass(frozen=True, slots=True)
class Handled:
    """What a committed turn hands to the outbox: its replies, and whom they pace."""

    items: list[OutItem]
    pace_key: str


class ConversationTurn:
    def __init__(
        self,
        deps: Deps,
        people: People,
        engine: Engine,
        system_key: DataKey,
        limiter: InboundLimiter | None = None,
        handoff_timeout: float = 0.0,
        first_notice: str | None = None,
    ) -> None:
        """`first_notice`: the short notice said before the first answer to someone new,
        and again once after the policy version changes."""
        self._deps = deps
        self._first_notice = first_notice
        self._people = people
        self._engine = engine
        self._system_key = system_key
        self._limiter = limiter
        self._handoff_timeout = handoff_timeout

    async def handle(
        self, pending: inbox_store.PendingEvent, msg: InboundMessage, now: float
    ) -> Handled:
        person = await self._people.of_party(msg.sender, now)
        profile = person.profile
        turn = Turn(
            person, msg, now, decide(profile.residence, person.e164), self._language(person, msg)
        )
        before = profile.state
        if msg.is_user_content:
            inp = Input(
                text=msg.text if msg.type == "text" else None,
                reply_id=msg.reply_id,
                referral=msg.referral is not None,
                media=msg.is_media,
            )
            if not await self._over_limit(turn, inp):
                handed_off = self._still_handed_off(turn)
                step = await self._engine.step(
                    profile.state, profile.since, now, inp, handed_off=handed_off,
                    slots=profile.slots,
                )  # fmt: skip
                await self._apply(step, turn)
        items = await self._commit(pending, turn, before)
        return Handled(items, person.pace_key)

    @property
    def renderer(self) -> Renderer:
        """The texts as this turn renders them, facts filled in."""
        return self._deps.renderer

    def _handoff_active(self, turn: Turn) -> bool:
        """Someone from support has the chat: handed off, and not left unanswered for
        `handoff_timeout` seconds."""
        row = turn.person.row
        if row is None or row.handoff_at is None:
            return False
        return not self._handoff_timeout or turn.now - row.handoff_at < self._handoff_timeout

    def _language(self, person: Person, msg: InboundMessage) -> str:
        """The chosen language; else the one the person's words show ("hola"), kept as a
        guess (not a choice) until other words show another; else the number's."""
        profile = person.profile
        if profile.language is None and msg.type == "text" and msg.text:
            shown = shown_language(self._engine.keywords.languages(msg.text))
            if shown is not None:
                profile.slots[LANGUAGE_GUESS] = shown
        return language_for(profile.language or profile.slots.get(LANGUAGE_GUESS), person.e164)

    def _still_handed_off(self, turn: Turn) -> bool:
        """A handoff nobody answered for `handoff_timeout` seconds goes back to the bot,
        so a person is never left talking to no one."""
        row, profile = turn.person.row, turn.person.profile
        if row is None or row.handoff_at is None:
            return False
        if self._handoff_active(turn):
            return True
        turn.handed_back = True
        profile.state, profile.since = None, turn.now  # back at the start
        turn.events.append(
            audit.Event(audit.SYSTEM, "handoff_ended", outcome="timeout",
                        detail={"subject": turn.person.pseudonym})
        )  # fmt: skip
        return False

    async def _over_limit(self, turn: Turn, inp: Input) -> bool:
        """Apply the inbound limit; a way out the flows mark `unlimited` (STOP, START,
        erasure) is never held back."""
        person = turn.person
        slots = person.profile.slots
        if self._limiter is None or self._engine.unlimited(person.profile.state, inp):
            return False
        if await self._limiter.allow(person.pace_key, turn.now):
            slots.pop("paused", None)
            return False
        if not slots.get("paused"):
            slots["paused"] = True
            text = self._deps.renderer.text(turn.language, turn.law, "rate.paused")
            turn.replies.append(Text(text))
        turn.events.append(audit.Event(person.pseudonym, "rate_limit_exceeded", outcome="quiet"))
        return True

    async def _apply(self, step: Step, turn: Turn) -> None:
        profile = turn.person.profile
        for effect in step.effects:
            await carry_out(self._deps, turn, effect)
        if step.state != profile.state or step.entered_at_now:
            profile.since = turn.now
        profile.state = step.state
        renderer = self._deps.renderer
        law_name = renderer.text(turn.language, turn.law, f"law.{turn.law}")
        place = turn.jurisdiction.region or turn.jurisdiction.country
        params = {"lives_in": place, "law_name": law_name}
        replies = [
            renderer.render(say, turn.language, turn.law, **params, **dict(say.params))
            for say in step.says
        ]
        if replies and (notice := self._notice_due(turn)):
            preface = renderer.text(turn.language, turn.law, notice, lives_in=place)
            replies = prefaced(preface, replies)
        turn.replies += replies
        if step.path and step.path[-1] != step.before:
            turn.events.append(
                audit.Event(turn.person.pseudonym, "flow_transition", state_before=step.before,
                            state_after=step.state, detail={"path": step.path})
            )  # fmt: skip

    def _notice_due(self, turn: Turn) -> str | None:
        """The short notice, with the first answer someone gets under this policy version
        (never on its own: a turn that says nothing, as in a handoff, waits for one that does)."""
        slots, version = turn.person.profile.slots, self._deps.controller.policy_version
        if self._first_notice is None or slots.get("noticed") == version:
            return None
        slots["noticed"] = version
        turn.events.append(
            audit.Event(turn.person.pseudonym, "notice_shown",
                        detail={"notice": self._first_notice, "policy_version": version})
        )  # fmt: skip
        return self._first_notice

    async def _commit(
        self, pending: inbox_store.PendingEvent, turn: Turn, before: str | None
    ) -> list[OutItem]:
        person, msg, now = turn.person, turn.msg, turn.now
        cid, dk = person.contact_id, person.dk
        recipient = Recipient(wa_id=msg.sender.wa_id, user_id=msg.sender.user_id)
        # No wamid index on inbound rows: the inbox's event key deduplicates, and a
        # unique index here would outlive it and trip a (very) late redelivery.
        kind, category = turn.inbound_as or (msg.type, "service")
        content = inbound_kept(msg, for_staff=self._handoff_active(turn))
        inbound = message_row(dk, cid, "in", kind, content, "received", now, category=category)
        rows, items = [inbound], []
        key = self._system_key if turn.erased else dk
        for reply in turn.replies:
            body = graph_body(reply, recipient)
            row = message_row(
                key, None if turn.erased else cid, "out", reply.kind, body, "queued", now
            )
            rows.append(row)
            items.append(
                OutItem(
                    row["id"], person.pace_key, body, farewell=turn.erased, actor=person.pseudonym
                )
            )
        received = audit.Event(
            person.pseudonym, "message_received", state_before=before,
            state_after=person.profile.state, detail={"type": msg.type[:24]},
        )  # fmt: skip
        events = [received, *turn.events]
        fill = self._contact_update(turn)

        def unit(conn: Conn) -> bool:
            if not inbox_store.finish(conn, pending.id, now):
                return False  # already handled by an earlier run of this turn
            people_store.create(conn, person)
            contact_store.touch(conn, cid, **fill)
            message_store.add(conn, rows[:1] if turn.erased else rows)
            for op in turn.ops:
                op(conn)
            audit.append(conn, events)
            if turn.erased:
                erasure.erase(
                    conn, contact_id=cid, indexes=person.indexes, phone_index=person.phone_index,
                    pseudonym=person.pseudonym, now=now, via="chat", shredded=shredded,
                )  # fmt: skip
                message_store.add(conn, rows[1:])  # the farewell, under the system key
            return True

        await self._people.keep(person)  # the key first: a row never outlives its key
        shredded = 0
        if turn.erased:  # the key first: the rows are sealed from now on
            shredded = await self._people.shred(person)
        if not await self._deps.db.write(unit):
            return []
        return items

    @staticmethod
    def _contact_update(turn: Turn) -> dict[str, Any]:
        """The contact's columns this turn sets: the time, the sealed profile, the
        handoff, identifiers learned since (a number, a BSUID), and the profile name
        Meta sent with this message, so a name changed in WhatsApp is what we hold."""
        person = turn.person
        fill: dict[str, Any] = {
            "last_inbound_at": turn.now,
            "profile_sealed": person.profile.seal(person.dk, person.contact_id),
        }
        if turn.handoff:
            fill["handoff_at"] = turn.now
        elif turn.handed_back:
            fill["handoff_at"] = None
        if person.row is not None:
            if person.phone_index and not person.row.phone_index:
                fill["phone_index"] = person.phone_index
            if person.user_index and not person.row.user_index:
                fill["user_index"] = person.user_index
            if name := turn.msg.sender.name:
                fill["name_sealed"] = people_store.seal_column(
                    person.dk, person.contact_id, "name", name
                )
        return fill
