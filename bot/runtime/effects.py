"""What the flows' actions do, and how their conditions are judged, inside one turn.

A flow file names actions (`do:`) and conditions (`if:`) from the fixed tables
in `bot.conversation.actions`; this module holds one handler per action
(`@handles`) and one check per condition (`@condition`), looked up by name.
A test checks that both tables are complete. Handlers only add to the turn:
replies to send, store operations and audit events that commit with it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from bot import audit
from bot.conversation.actions import ACTIONS, CONDITIONS
from bot.conversation.engine import Condition, Effect, Guard
from bot.conversation.render import Renderer, language_name, picked
from bot.crypto import Index, Keyring
from bot.privacy import access, consent
from bot.privacy.controller import Controller
from bot.privacy.jurisdiction import (
    Jurisdiction,
    decide,
    decide_language,
    language_for,
    parse_residence,
)
from bot.privacy.person import Person
from bot.store import Unit
from bot.store.db import Database
from bot.whatsapp.events import InboundMessage
from bot.whatsapp.messages import Document, Outbound, Text


@dataclass
class Deps:
    """What handlers use besides the turn itself."""

    db: Database
    keyring: Keyring
    renderer: Renderer
    controller: Controller


@dataclass
class Turn:
    """One turn under way: who wrote, what, and what it has produced so far."""

    person: Person
    msg: InboundMessage
    now: float
    jurisdiction: Jurisdiction
    language: str
    replies: list[Outbound] = field(default_factory=list)
    ops: list[Unit] = field(default_factory=list)
    events: list[audit.Event] = field(default_factory=list)
    # (kind, category) to store the person's message under, when it is more than chat.
    inbound_as: tuple[str, str] | None = None
    erased: bool = False
    handoff: bool = False
    handed_back: bool = False

    @property
    def law(self) -> str:
        return self.jurisdiction.law.value


# The profile slot of a language the person's words showed: a guess, which a choice ends.
LANGUAGE_GUESS = "language_guess"

Handler = Callable[[Deps, Turn, Effect], Awaitable[None]]
F = TypeVar("F")
HANDLERS: dict[str, Handler] = {}
CONDITION_CHECKS: dict[str, Condition] = {}


def _registrar(table: dict[str, F], names: Mapping[str, str]) -> Callable[[str], Callable[[F], F]]:
    """A decorator that files a function under a name the flow files may use."""

    def named(name: str) -> Callable[[F], F]:
        assert name in names, f"'{name}' is not in bot.conversation.actions"

        def register(fn: F) -> F:
            table[name] = fn
            return fn

        return register

    return named


handles = _registrar(HANDLERS, ACTIONS)  # one handler per action
condition = _registrar(CONDITION_CHECKS, CONDITIONS)  # one check per condition


async def carry_out(deps: Deps, turn: Turn, effect: Effect) -> None:
    await HANDLERS[effect.action](deps, turn, effect)


# Conditions ---------------------------------------------------------------------------------


@condition("consent_requested")
def _consent_requested(guard: Guard) -> bool:
    asked = guard.slots.get("consent_request")
    if not asked:
        return False
    lapses = guard.state.expires_after
    return lapses is None or guard.now - float(asked["asked_at"]) <= lapses


@condition("residence_understood")
def _residence_understood(guard: Guard) -> bool:
    return parse_residence(picked(guard.input_id, "countries")) is not None


# Consent ------------------------------------------------------------------------------------


@handles("request_consent")
async def _request_consent(deps: Deps, turn: Turn, effect: Effect) -> None:
    msg, person = turn.msg, turn.person
    version = deps.controller.policy_version
    source = "referral" if msg.referral else "chat"
    if msg.referral:
        source = "referral:" + str(msg.referral.get("source_id") or "ad")[:50]
    asked = {
        "asked_at": turn.now, "law": turn.law, "lang": turn.language, "source": source,
        "policy": version,
    }  # fmt: skip
    person.profile.slots["consent_request"] = asked
    if person.marketing != "granted":
        turn.ops.append(
            consent.change(person.contact_id, "pending", asked, turn.now, None,
                           policy_version=version)
        )  # fmt: skip


@handles("grant_consent")
async def _grant_consent(deps: Deps, turn: Turn, effect: Effect) -> None:
    person = turn.person
    ops, events = consent.grant(
        person.contact_id, person.pseudonym, person.profile.slots.pop("consent_request"),
        deps.keyring.blind_index(Index.WAMID, turn.msg.id),
        (person.phone_index, person.user_index), turn.now, deps.controller.policy_version,
    )  # fmt: skip
    turn.ops += ops
    turn.events += events


@handles("revoke_consent")
async def _revoke_consent(deps: Deps, turn: Turn, effect: Effect) -> None:
    person = turn.person
    person.profile.slots.pop("consent_request", None)
    ops, events = consent.revoke(
        person.contact_id, person.pseudonym, person.marketing,
        {"law": turn.law, "lang": turn.language}, person.phone_index or person.user_index,
        turn.now, deps.controller.policy_version,
    )  # fmt: skip
    turn.ops += ops
    turn.events += events


@handles("decline_consent")
async def _decline_consent(deps: Deps, turn: Turn, effect: Effect) -> None:
    person = turn.person
    asked = person.profile.slots.pop("consent_request", None) or {}
    ops, events = consent.decline(
        person.contact_id, person.pseudonym, person.marketing,
        {"law": turn.law, "lang": turn.language, "asked_at": asked.get("asked_at")},
        turn.now, deps.controller.policy_version,
    )  # fmt: skip
    turn.ops += ops
    turn.events += events


# Access, export, erasure, handoff -----------------------------------------------------------


@handles("show_data")
async def _show_data(deps: Deps, turn: Turn, effect: Effect) -> None:
    person = turn.person
    held = await deps.db.read(
        access.read_held, person.contact_id, person.pseudonym, False, person.indexes
    )
    handoffs = sum(1 for a in held.audit if a["event"] == "handoff_started")

    def text(message_id: str, **params: Any) -> str:
        return deps.renderer.text(turn.language, turn.law, message_id, **params)

    usual, language_basis = decide_language(person.profile.language, person.e164)
    guess = person.profile.slots.get(LANGUAGE_GUESS)
    if person.profile.language is None and guess == turn.language != usual:
        language_basis = "words"  # "hola" from a UK number: answered, and told, in Spanish
    summary = access.summary_lines(
        held, contact=access.contact_view(person), jurisdiction=turn.jurisdiction,
        language=turn.language, language_basis=language_basis,
        language_name=language_name(turn.language), handoffs=handoffs, text=text,
        retention=deps.controller.retention_days,
    )  # fmt: skip
    turn.replies.append(Text(summary[:4096]))
    turn.events.append(audit.Event(person.pseudonym, "data_access", detail={"via": "chat"}))


@handles("export_data")
async def _export_data(deps: Deps, turn: Turn, effect: Effect) -> None:
    doc = await access.export_of(deps.db, turn.person, deps.controller)
    caption = deps.renderer.text(turn.language, turn.law, "my_data.exported")
    upload = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    document = Document(media_id="", filename="my-data.json", caption=caption, upload=upload)
    turn.replies.append(document)
    turn.events.append(audit.Event(turn.person.pseudonym, "data_export", detail={"via": "chat"}))


@handles("erase_data")
async def _erase_data(deps: Deps, turn: Turn, effect: Effect) -> None:
    turn.erased = True  # carried out at commit, after everything else the turn stores


@handles("handoff")
async def _handoff(deps: Deps, turn: Turn, effect: Effect) -> None:
    turn.handoff = True
    turn.events.append(audit.Event(turn.person.pseudonym, "handoff_started"))


@handles("end_handoff")
async def _end_handoff(deps: Deps, turn: Turn, effect: Effect) -> None:
    row = turn.person.row
    if row is None or row.handoff_at is None or turn.handed_back:
        return  # not waiting for anyone (or already taken back this turn)
    turn.handed_back = True
    turn.events.append(
        audit.Event(audit.SYSTEM, "handoff_ended", outcome="person_left",
                    detail={"subject": turn.person.pseudonym})
    )  # fmt: skip


# What the person chose or corrected -------------------------------------------------------
# Audited as `data_corrected` (which field, never the value) when the bot corrects it at
# once, as `correction_requested` when the privacy team has to.


def _corrected(turn: Turn, event: str, field: str) -> None:
    turn.events.append(
        audit.Event(turn.person.pseudonym, event, detail={"field": field, "via": "chat"})
    )


@handles("set_language")
async def _set_language(deps: Deps, turn: Turn, effect: Effect) -> None:
    if effect.input_id:
        turn.person.profile.language = picked(effect.input_id, "languages")
        turn.person.profile.slots.pop(LANGUAGE_GUESS, None)
        turn.language = language_for(turn.person.profile.language, turn.person.e164)
        _corrected(turn, "data_corrected", "language")


@handles("set_residence")
async def _set_residence(deps: Deps, turn: Turn, effect: Effect) -> None:
    stated = parse_residence(picked(effect.input_id, "countries"))
    if stated is not None:  # the flow's `residence_understood` condition made sure
        turn.person.profile.residence = stated
        turn.jurisdiction = decide(stated, turn.person.e164)
        _corrected(turn, "data_corrected", "residence")


@handles("record_correction")
async def _record_correction(deps: Deps, turn: Turn, effect: Effect) -> None:
    """The message itself is the request: stored like every message the person sends
    (sealed with their key, in their export, erased with them), but as a correction kept
    as long as support conversations, so the privacy team can read and act on it."""
    turn.inbound_as = ("correction", "support")
    _corrected(turn, "correction_requested", "other")
