"""One message turn: who wrote, what the flow says, and every effect in one transaction.

Reads what the turn needs (the contact, their sealed profile, their consent),
lets the engine take one step, carries out the step's effects (consent,
access, export, erasure, handoff, language, residence), renders the replies
in the person's language and law, and commits all of it — state, consent
records, stored messages, replies to send, audit entries, inbox row done —
in one unit. Sending happens after commit, from the outbox.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from bot import audit
from bot.conversation.engine import HOME, Engine, Input, Say, Step
from bot.conversation.render import Renderer, language_name
from bot.crypto import DataKey, Keyring, WrappedKey
from bot.policy.inbound import InboundLimiter
from bot.privacy import access, consent, erasure
from bot.privacy.jurisdiction import Jurisdiction, decide, language_for, parse_residence
from bot.privacy.profile import Profile
from bot.runtime.outbox import OutItem
from bot.runtime.records import message_row, new_contact
from bot.store import Conn
from bot.store import contacts as contact_store
from bot.store import inbox as inbox_store
from bot.store import messages as message_store
from bot.store.db import Database
from bot.whatsapp.events import InboundMessage
from bot.whatsapp.messages import Document, Outbound, Recipient, Text, graph_body

NEVER_LIMITED = {"stop", "start", "erase"}  # keyword groups that always get through
CONSENT_WINDOW = 24 * 3600


@dataclass
class Who:
    """The person behind a message, found or created, with their key and profile."""

    contact_id: str
    dk: DataKey
    row: contact_store.ContactRow | None
    new_contact: dict[str, Any] | None
    phone_index: str | None
    user_index: str | None
    e164: str | None
    profile: Profile
    consent: str | None
    pseudonym: str


@dataclass
class Outcome:
    """What a step turned into: replies, unit operations and audit events."""

    replies: list[Outbound] = field(default_factory=list)
    ops: list[Callable[[Conn], Any]] = field(default_factory=list)
    events: list[audit.Event] = field(default_factory=list)
    erased: bool = False
    handoff: bool = False
    handed_back: bool = False


@dataclass
class Settings:
    """The texts' fixed parameters and the controller named in exports."""

    company: str
    privacy_url: str
    dpo_contact: str
    local_contact: str
    policy_version: str
    retention_days: dict[str, int] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, str]:
        return {
            "company": self.company,
            "privacy_url": self.privacy_url,
            "dpo_contact": self.dpo_contact,
            "local_contact": self.local_contact,
            "policy_version": self.policy_version,
        }


class ConversationTurn:
    def __init__(
        self,
        db: Database,
        keyring: Keyring,
        engine: Engine,
        renderer: Renderer,
        settings: Settings,
        system_key: DataKey,
        limiter: InboundLimiter | None = None,
        handoff_timeout: float = 0.0,
    ) -> None:
        self._limiter = limiter
        self._handoff_timeout = handoff_timeout
        self._db = db
        self._kr = keyring
        self._engine = engine
        self._renderer = renderer
        self._settings = settings
        self._system_key = system_key

    # Who ----------------------------------------------------------------------------------

    async def _who(self, msg: InboundMessage, now: float) -> Who:
        kr, sender = self._kr, msg.sender
        e164 = "+" + sender.wa_id if sender.wa_id else None
        phone_index = kr.blind_index("phone", e164) if e164 else None
        user_index = kr.blind_index("bsuid", sender.user_id) if sender.user_id else None
        row = await self._db.read(contact_store.find, phone_index, user_index)
        if row is None:
            contact_id = uuid.uuid4().hex
            dk, wrapped = kr.new_data_key(uuid.uuid4().hex)
            new = new_contact(
                dk, wrapped, contact_id, phone_index=phone_index, user_index=user_index,
                e164=e164, user_id=sender.user_id, name=sender.name, now=now,
                last_inbound_at=now,
            )  # fmt: skip
            profile, consent = Profile(), None
        else:
            contact_id, new = row.id, None
            dk = kr.unwrap(row.data_key_id, WrappedKey(row.kid, row.wrapped))
            profile = Profile.open(dk, contact_id, row.profile_sealed)
            consent = row.marketing
        return Who(
            contact_id, dk, row, new, phone_index, user_index, e164, profile, consent,
            kr.blind_index("pseudonym", contact_id),
        )  # fmt: skip

    # The turn -----------------------------------------------------------------------------

    async def handle(
        self, pending: inbox_store.PendingEvent, msg: InboundMessage, now: float
    ) -> list[OutItem]:
        who = await self._who(msg, now)
        before = who.profile.state
        out = Outcome()
        if msg.is_user_content:
            inp = Input(
                text=msg.text if msg.type == "text" else None,
                reply_id=msg.reply_id,
                referral=msg.referral is not None,
            )
            if await self._over_limit(who, inp, now, out):
                pass  # stored and audited, but no turn: the person is sending too fast
            else:
                handed_off = self._still_handed_off(who, now, out)
                step = await self._engine.step(
                    who.profile.state, who.profile.since, now, inp, handed_off=handed_off
                )
                await self._apply(step, who, msg, now, out)
        recipient = Recipient(wa_id=msg.sender.wa_id, user_id=msg.sender.user_id)
        pace_key = who.phone_index or who.user_index or who.contact_id
        return await self._commit(pending, msg, who, before, out, recipient, pace_key, now)

    def _still_handed_off(self, who: Who, now: float, out: Outcome) -> bool:
        """A handoff nobody answered for `handoff_timeout` seconds goes back to the bot,
        so a person is never left talking to no one."""
        if who.row is None or who.row.handoff_at is None:
            return False
        if not self._handoff_timeout or now - who.row.handoff_at < self._handoff_timeout:
            return True
        out.handed_back = True
        who.profile.state, who.profile.since = HOME, now
        out.events.append(
            audit.Event(audit.SYSTEM, "handoff_ended", outcome="timeout",
                        detail={"subject": who.pseudonym})
        )  # fmt: skip
        return False

    async def _over_limit(self, who: Who, inp: Input, now: float, out: Outcome) -> bool:
        """Apply the inbound limit; a way out (STOP, START, erasure) is never limited."""
        if self._limiter is None:
            return False
        group = self._engine.keywords.match(inp.text) if inp.text else None
        leaving = group in NEVER_LIMITED or (inp.reply_id or "").startswith("erase.")
        if leaving or who.profile.state.startswith("erase."):
            return False
        key = who.phone_index or who.user_index or who.contact_id
        if await self._limiter.allow(key, now):
            who.profile.slots.pop("paused", None)
            return False
        if not who.profile.slots.get("paused"):
            who.profile.slots["paused"] = True
            jur = decide(who.profile.residence, who.e164)
            lang = language_for(who.profile.language, who.e164)
            out.replies.append(Text(self._renderer.text(lang, jur.law.value, "rate.paused")))
        out.events.append(audit.Event(who.pseudonym, "rate_limit_exceeded", outcome="quiet"))
        return True

    async def _apply(
        self, step: Step, who: Who, msg: InboundMessage, now: float, out: Outcome
    ) -> None:
        profile = who.profile
        jur = decide(profile.residence, who.e164)
        lang = language_for(profile.language, who.e164)
        says = list(step.says)
        for effect in step.effects:
            if effect.action == "set_language" and effect.input_id:
                profile.language = effect.input_id.removeprefix("language.")
                lang = language_for(profile.language, who.e164)
            elif effect.action == "set_residence":
                stated = parse_residence((effect.input_id or "").removeprefix("residence."))
                if stated is None:  # not understood (or "another country"): ask again
                    step.state, says = "residence.ask", [Say("residence.ask", "residence.ask")]
                    continue
                profile.residence = stated
                jur = decide(profile.residence, who.e164)
            elif effect.action == "grant_consent" and not self._consent_asked(profile, now):
                step.state, says = "menu.main", [Say("menu.main", "menu.main")]
                continue
            await self._effect(effect.action, who, msg, jur, lang, now, out)
        if step.state != profile.state or step.entered_at_now:
            profile.since = now
        profile.state = step.state
        out.replies += [
            self._renderer.render(say, lang, jur.law.value, law_name=self._law_name(lang, jur))
            for say in says
        ]
        if step.path and step.path[-1] != step.before:
            out.events.append(
                audit.Event(who.pseudonym, "flow_transition", state_before=step.before,
                            state_after=step.state, detail={"path": step.path})
            )  # fmt: skip

    def _law_name(self, lang: str, jur: Jurisdiction) -> str:
        return self._renderer.text(lang, jur.law.value, f"law.{jur.law.value}")

    @staticmethod
    def _consent_asked(profile: Profile, now: float) -> bool:
        asked = profile.slots.get("consent_request")
        return bool(asked) and now - float(asked["asked_at"]) <= CONSENT_WINDOW

    async def _effect(
        self,
        action: str,
        who: Who,
        msg: InboundMessage,
        jur: Jurisdiction,
        lang: str,
        now: float,
        out: Outcome,
    ) -> None:
        profile, cid = who.profile, who.contact_id
        version = self._settings.policy_version
        if action == "request_consent":
            source = "referral" if msg.referral else "chat"
            if msg.referral:
                source = "referral:" + str(msg.referral.get("source_id") or "ad")[:50]
            profile.slots["consent_request"] = {
                "asked_at": now, "law": jur.law.value, "lang": lang, "source": source,
                "policy": version,
            }  # fmt: skip
            if who.consent != "granted":
                asked = profile.slots["consent_request"]
                out.ops.append(consent.change(cid, "pending", asked, now, None,
                                              policy_version=version))  # fmt: skip
        elif action == "grant_consent":
            ops, events = consent.grant(
                cid, who.pseudonym, profile.slots.pop("consent_request"),
                self._kr.blind_index("wamid", msg.id), (who.phone_index, who.user_index),
                now, version,
            )  # fmt: skip
            out.ops += ops
            out.events += events
        elif action == "revoke_consent":
            profile.slots.pop("consent_request", None)
            ops, events = consent.revoke(
                cid, who.pseudonym, who.consent, {"law": jur.law.value, "lang": lang},
                who.phone_index or who.user_index, now, version,
            )  # fmt: skip
            out.ops += ops
            out.events += events
        elif action == "show_data":
            out.replies.append(Text(await self._summary(who, jur, lang)))
            out.events.append(audit.Event(who.pseudonym, "data_access", detail={"via": "chat"}))
        elif action == "export_data":
            out.replies.append(await self._export(who, jur, lang))
            out.events.append(audit.Event(who.pseudonym, "data_export", detail={"via": "chat"}))
        elif action == "erase_data":
            out.erased = True
        elif action == "handoff":
            out.handoff = True
            out.events.append(audit.Event(who.pseudonym, "handoff_started"))

    async def _summary(self, who: Who, jur: Jurisdiction, lang: str) -> str:
        held = await self._db.read(access.read_held, who.contact_id, who.pseudonym, False)
        handoffs = sum(1 for a in held.audit if a["event"] == "handoff_started")

        def text(message_id: str, **params: Any) -> str:
            return self._renderer.text(lang, jur.law.value, message_id, **params)

        return access.summary_lines(
            held, e164=who.e164, jurisdiction=jur, language=lang,
            language_name=language_name(lang), handoffs=handoffs, text=text,
            retention=self._settings.retention_days,
        )[:4096]  # fmt: skip

    async def _export(self, who: Who, jur: Jurisdiction, lang: str) -> Document:
        held = await self._db.read(access.read_held, who.contact_id, who.pseudonym, True)
        doc = access.export_document(
            held, contact=self.contact_view(who), dk=who.dk, profile=who.profile,
            jurisdiction=jur, language=lang, controller=self.controller,
            retention=self._settings.retention_days,
        )  # fmt: skip
        caption = self._renderer.text(lang, jur.law.value, "my_data.exported")
        return Document(
            media_id="", filename="my-data.json", caption=caption,
            upload=orjson.dumps(doc, option=orjson.OPT_INDENT_2),
        )  # fmt: skip

    @property
    def controller(self) -> dict[str, str]:
        s = self._settings
        return {"name": s.company, "privacy_policy": s.privacy_url, "contact": s.dpo_contact,
                "policy_version": s.policy_version}  # fmt: skip

    def contact_view(self, who: Who) -> dict[str, Any]:
        return access.contact_view(who.row, who.dk, who.e164)

    # Commit -------------------------------------------------------------------------------

    async def _commit(
        self,
        pending: inbox_store.PendingEvent,
        msg: InboundMessage,
        who: Who,
        before: str,
        out: Outcome,
        recipient: Recipient,
        pace_key: str,
        now: float,
    ) -> list[OutItem]:
        cid, dk = who.contact_id, who.dk
        # No wamid index on inbound rows: the inbox's event key deduplicates, and a
        # unique index here would outlive it and trip a (very) late redelivery.
        inbound = message_row(dk, cid, "in", msg.type, msg.raw, "received", now)
        rows, items = [inbound], []
        key = self._system_key if out.erased else dk
        for reply in out.replies:
            body = graph_body(reply, recipient)
            row = message_row(
                key, None if out.erased else cid, "out", reply.kind, body, "queued", now
            )
            rows.append(row)
            items.append(
                OutItem(row["id"], pace_key, body, farewell=out.erased, actor=who.pseudonym)
            )
        received = audit.Event(
            who.pseudonym, "message_received", state_before=before,
            state_after=who.profile.state, detail={"type": msg.type[:24]},
        )  # fmt: skip
        events = [received]
        events += out.events
        profile_blob = who.profile.seal(dk, cid)
        indexes = [i for i in (who.phone_index, who.user_index) if i]

        def unit(conn: Conn) -> bool:
            if not inbox_store.finish(conn, pending.id, now):
                return False  # already handled by an earlier run of this turn
            if who.new_contact is not None:
                contact_store.create(
                    conn, key=who.new_contact["key"], contact=who.new_contact["contact"]
                )
            fill: dict[str, Any] = {"last_inbound_at": now, "profile_sealed": profile_blob}
            if out.handoff:
                fill["handoff_at"] = now
            elif out.handed_back:
                fill["handoff_at"] = None
            if who.row is not None:
                if who.phone_index and not who.row.phone_index:
                    fill["phone_index"] = who.phone_index
                if who.user_index and not who.row.user_index:
                    fill["user_index"] = who.user_index
            contact_store.touch(conn, cid, **fill)
            message_store.add(conn, rows[:1] if out.erased else rows)
            for op in out.ops:
                op(conn)
            audit.append(conn, events)
            if out.erased:
                erasure.erase(
                    conn, contact_id=cid, indexes=indexes, phone_index=who.phone_index,
                    pseudonym=who.pseudonym, now=now, via="chat",
                )  # fmt: skip
                message_store.add(conn, rows[1:])  # the farewell, under the system key
            return True

        if not await self._db.write(unit):
            return []
        if out.erased:
            self._kr.forget(dk.key_id)
        return items
