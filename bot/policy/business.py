"""Business-initiated sends: a template to a person, queued through the gate.

`python -m bot send` (and, later, the support API) come here. The gate is
asked at once so the caller learns the reason for a refusal; an accepted
message is written to the outbox in one transaction with its audit entry and,
when it opens a conversation the business started, its place in the
messaging tier. A running server's outbox picks it up from the store within
a second and asks the gate again just before sending.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from bot import audit
from bot.errors import BotError
from bot.policy.gate import (
    Category,
    Facts,
    Reason,
    Request,
    business_initiated,
    decide,
    explain,
    unreachable_until,
)
from bot.policy.sending import refusal_event, template_status
from bot.policy.templates import Registry, TemplateRefused
from bot.privacy import person as people_store
from bot.privacy.jurisdiction import language_for
from bot.privacy.person import UNKNOWN, People, Person
from bot.privacy.records import message_row
from bot.store import Conn
from bot.store import messages as message_store
from bot.store import policy as policy_store
from bot.store.db import Database
from bot.whatsapp.messages import Outbound, Recipient, Text, graph_body

OPERATOR = "operator"


class SendRefused(BotError):
    """Refused by the gate (already audited). `explanation` says in words what is wrong,
    naming templates, categories and parameters but never a parameter's value; it is for
    whoever asked to send, not for the logs or the audit."""

    def __init__(self, reason: Reason, explanation: str = "") -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.explanation = explanation or explain(reason)


@dataclass(frozen=True, slots=True)
class Queued:
    message_id: str
    language: str
    initiated: bool  # opened a business-initiated conversation (counts toward the tier)


@dataclass(frozen=True, slots=True)
class TemplateSend:
    e164: str
    template: str
    category: str
    params: Mapping[str, str]
    language: str | None = None  # default: the person's language, else the number's


UNREACHABLE_DAYS = 30  # `BOT_UNREACHABLE_DAYS`'s default


@dataclass(slots=True)
class _Recipient:
    """Whom a business-initiated message is for, as the gate and the audit see them."""

    person: Person
    facts: Facts
    subject: str  # their pseudonym for the audit log ("unknown" if never met)


async def _recipient(
    db: Database, people: People, e164: str, now: float, unreachable_days: int = UNREACHABLE_DAYS
) -> _Recipient:
    person = await people.of_number(e164, now)
    suppressed = await db.read(policy_store.is_suppressed, *person.indexes)
    last_inbound_at = person.row.last_inbound_at if person.row else None
    marked = await db.read(policy_store.unreachable_at, person.contact_id) if person.row else None
    facts = Facts(
        known=person.known,
        marketing=person.marketing,
        last_inbound_at=last_inbound_at,
        suppressed=suppressed,
        unreachable_until=unreachable_until(marked, last_inbound_at, unreachable_days),
    )
    return _Recipient(person, facts, person.pseudonym if person.known else UNKNOWN)


async def queue_template(
    db: Database,
    people: People,
    templates: Registry,
    send: TemplateSend,
    *,
    tier: int | None,
    actor: str = OPERATOR,
    now: float | None = None,
    unreachable_days: int = UNREACHABLE_DAYS,
) -> Queued:
    """Queue one template message, or raise `SendRefused` (already audited)."""
    now = time.time() if now is None else now
    person = await _recipient(db, people, send.e164, now, unreachable_days)
    detail = {"template": send.template[:64]}
    try:
        category = Category(send.category)
    except ValueError:
        category = None
    request = Request(category or Category.MARKETING, send.template)
    if category is None or category is Category.SERVICE:
        reason: Reason | None = Reason.CATEGORY_MISMATCH  # templates are never plain replies
    else:
        status = template_status(templates, send.template)
        reason = decide(request, person.facts, now, status, erased_if_unknown=False)
    language = _language(templates, send, person.person.profile.language)
    message: Outbound | None = None
    why = ""  # the template's own detail, in words
    if reason is None:
        try:
            message = templates.message(send.template, language, send.params)
        except TemplateRefused as refused:
            reason, why = Reason(refused.reason), refused.detail
    if reason is not None or message is None:
        reason = reason or Reason.UNKNOWN_TEMPLATE
        why = explain(reason, why, template=send.template, category=send.category)
        await _refuse(db, actor, reason, send.category, person, detail, why)
    assert message is not None
    initiated = business_initiated(request, person.facts, now)
    message_id = await _write(
        db, people, person, message, request.category, actor, now,
        tier=tier if initiated else NOT_COUNTED, detail=detail,
    )  # fmt: skip
    return Queued(message_id, language, initiated)


async def queue_text(
    db: Database,
    people: People,
    e164: str,
    text: str,
    *,
    actor: str = OPERATOR,
    now: float | None = None,
) -> str:
    """Queue a free-form reply (support staff answering a person): only inside their
    24-hour window, and never to someone erased or never met."""
    now = time.time() if now is None else now
    person = await _recipient(db, people, e164, now)
    request = Request(Category.SERVICE)
    reason = decide(request, person.facts, now, erased_if_unknown=False)
    if reason is not None:
        await _refuse(db, actor, reason, Category.SERVICE.value, person, {})
    return await _write(db, people, person, Text(text), Category.SERVICE, actor, now)


NOT_COUNTED = -1  # a message that opens no business-initiated conversation


async def _write(
    db: Database,
    people: People,
    recipient: _Recipient,
    message: Outbound,
    category: Category,
    actor: str,
    now: float,
    *,
    tier: int | None = NOT_COUNTED,
    detail: dict[str, Any] | None = None,
) -> str:
    """The message, its audit entry, a new contact if needed and its place in the tier:
    one transaction. Refuses (audited) when the tier is full."""
    person = recipient.person
    recipient.subject = person.pseudonym  # known from here on, if they were not before
    assert person.e164 is not None
    body = graph_body(message, Recipient(wa_id=person.e164.lstrip("+")))
    out = message_row(
        person.dk, person.contact_id, "out", message.kind, body, message_store.QUEUED, now,
        category=category.value, leased=False,
    )  # fmt: skip
    counted = tier != NOT_COUNTED
    queued = audit.Event(
        actor, "message_queued",
        detail={"category": category.value, "subject": recipient.subject, "initiated": counted,
                **(detail or {})},
    )  # fmt: skip

    def unit(conn: Conn) -> bool:
        if person.known:
            if counted and not policy_store.admit_to_tier(conn, person.contact_id, tier, now):
                return False
        elif counted:
            if tier is not None and policy_store.tier_used(conn, now) >= tier:
                return False
            people_store.create(conn, person, initiated_at=now)
        else:
            people_store.create(conn, person)
        message_store.add(conn, [out])
        audit.append(conn, [queued])
        return True

    await people.keep(person)  # the key first: a row never outlives its key
    if not await db.write(unit):
        await _refuse(db, actor, Reason.TIER_EXHAUSTED, category.value, recipient, detail or {})
    return str(out["id"])


async def _refuse(
    db: Database,
    actor: str,
    reason: Reason,
    category: str,
    person: _Recipient,
    detail: dict[str, Any],
    explanation: str = "",
) -> NoReturn:
    event = refusal_event(actor, reason, category[:16], subject=person.subject, **detail)
    await db.write(audit.append, [event])
    raise SendRefused(reason, explanation)


def _language(templates: Registry, send: TemplateSend, chosen: str | None) -> str:
    """The caller's choice, else the person's chosen language, else their number's,
    else English — the first one the template has."""
    if send.language:
        return send.language
    spec = templates.get(send.template)
    for candidate in (language_for(chosen, send.e164), language_for(None, send.e164), "en"):
        if spec is None or candidate in spec.languages:
            return candidate
    return "en"
