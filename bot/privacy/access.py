"""Right of access: what is held about a person, as a chat summary and as a JSON copy.

The summary names only what is held, in the person's words: a profile name only if one is
stored, where they live and whether they said so or it is a guess, the same for their
language, and the do-not-contact entry that outlives an erasure (a keyed one-way code of the
number). The copy is complete and machine-readable (portability): the contact with its
number and name opened, every consent with its history, every stored message
with its content as held (an inbound one without Meta's message ids, which are
kept only as keyed hashes; media sent outside a handoff as its type alone,
`records.inbound_kept`), the do-not-contact entry, and the person's audit trail. The
same document is sent in chat (as a WhatsApp document) and printed by
`python -m bot export +E164`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from bot import audit
from bot.crypto import DataKey, open_sealed
from bot.privacy.controller import Controller
from bot.privacy.jurisdiction import Jurisdiction, decide, decide_language, place_of
from bot.privacy.person import Person, open_column
from bot.privacy.profile import Profile
from bot.privacy.records import inbound_content
from bot.store import Conn
from bot.store import privacy as store
from bot.store.db import Database

Text = Callable[..., str]  # text(message_id, **params): a text in the person's language and law


def keep_days(retention: dict[str, int], category: str) -> int:
    """Days a category is kept; unknown categories get the longest period (as purge does)."""
    return retention.get(category, max(retention.values(), default=90))


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def mask(e164: str | None) -> str:
    """+447700900123 → +44•••••••123: enough to recognise, not to copy."""
    if not e164:
        return "-"
    return e164[:3] + "•" * max(0, len(e164) - 6) + e164[-3:]


def mask_tail(e164: str | None) -> str | None:
    """+447700900123 → •••123: what support staff see of a number (less than its owner)."""
    return "•••" + e164[-3:] if e164 else None


@dataclass
class Held:
    """Everything read for one person, in one transaction."""

    consents: list[dict[str, Any]]
    counts: dict[str, int]
    messages: list[dict[str, Any]]
    audit: list[dict[str, Any]]
    suppression: dict[str, Any] | None = None  # the do-not-contact entry of their number


def read_held(
    conn: Conn, contact_id: str, pseudonym: str, with_messages: bool, indexes: Sequence[str] = ()
) -> Held:
    return Held(
        consents=store.consent_history(conn, contact_id),
        counts=store.message_counts(conn, contact_id),
        messages=store.contact_messages(conn, contact_id) if with_messages else [],
        audit=audit.entries_of(conn, pseudonym),
        suppression=store.suppression_of(conn, *indexes),
    )


def consents_view(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_purpose: dict[str, dict[str, Any]] = {}
    for event in history:
        entry = by_purpose.setdefault(
            event["purpose"], {"purpose": event["purpose"], "status": None, "history": []}
        )
        entry["status"] = event["status"]
        entry["history"].append(
            {
                "status": event["status"],
                "at": iso(event["at"]),
                "asked_at": iso(event["asked_at"]),
                "method": event["method"],
                "source": event["source"],
                "policy_version": event["policy_version"],
                "jurisdiction": event["jurisdiction"],
                "locale": event["locale"],
                "message_ref": event["message_ref"],
            }
        )
    return list(by_purpose.values())


def label(text: Text, prefix: str, value: str) -> str:
    """`prefix.value` in the person's words; the value itself where no text names it (a
    category added to `BOT_RETENTION` without a label), never a bare message id."""
    message_id = f"{prefix}.{value}"
    shown = text(message_id)
    return value if shown == message_id else shown


def place_line(jurisdiction: Jurisdiction, language: str, text: Text) -> str:
    """Where the person lives as their rights were decided: stated, guessed, or not known."""
    if jurisdiction.country is None:
        return text("data.residence.unknown")
    place = place_of(jurisdiction.country, jurisdiction.region, language)
    name = text(place.message_id) if place.message_id else place.name
    return text("data.residence", place=name, basis=text(f"data.basis.{jurisdiction.basis}"))


def summary_lines(
    held: Held,
    *,
    contact: dict[str, Any],
    jurisdiction: Jurisdiction,
    language: str,
    language_basis: str,
    language_name: str,
    handoffs: int,
    text: Text,
    retention: dict[str, int],
) -> str:
    """The chat summary of what is held (`contact` as `contact_view` shows it)."""
    lines = [text("data.header")]
    if contact["phone"]:
        lines.append(text("data.number", number=mask(contact["phone"])))
    if contact["profile_name"]:
        lines.append(text("data.name"))
    lines.append(place_line(jurisdiction, language, text))
    lines.append(text("data.jurisdiction", law_name=text(f"law.{jurisdiction.law.value}")))
    basis = text(f"data.basis.{language_basis}")
    lines.append(text("data.language", language=language_name, basis=basis))
    consents = consents_view(held.consents)
    if not consents:
        lines.append(text("data.no_consent"))
    for consent in consents:
        last = consent["history"][-1]
        lines.append(
            text(
                "data.consent",
                status=label(text, "consent", consent["status"]),
                date=(last["at"] or "")[:10],
                method=label(text, "consent.method", last["method"]),
            )
        )
    if held.suppression:
        lines.append(text("data.suppressed", date=(iso(held.suppression["since"]) or "")[:10]))
    for category, count in sorted(held.counts.items()):
        days = keep_days(retention, category)
        shown = label(text, "category", category)
        lines.append(text("data.messages", count=count, category=shown, days=days))
    if handoffs:
        lines.append(text("data.handoffs", count=handoffs))
    return "\n".join(lines)


def contact_view(person: Person) -> dict[str, Any]:
    """The contact as the person would recognise it: number and name opened; someone new as
    this turn stores them."""
    cid, row, created = person.contact_id, person.row, (person.created or {}).get("contact", {})

    def opened(column: str) -> str | None:
        blob = person.sealed(column)
        return open_column(person.dk, cid, column, blob) if blob else None  # may hold ""

    return {
        "phone": opened("phone"),
        "business_scoped_user_id": opened("user_id"),
        "profile_name": opened("name"),
        "created_at": iso(row.created_at if row else created.get("created_at", time.time())),
        "last_message_at": iso(row.last_inbound_at if row else created.get("last_inbound_at")),
        "handed_to_support": row is not None and row.handoff_at is not None,
    }


def suppression_view(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {
        "since": iso(entry["since"]),
        "reason": entry["reason"],
        "held_as": "a keyed one-way code of the number, never the number itself",
        "why": "so that STOP keeps working and the number is never messaged by mistake",
    }


def export_document(
    held: Held,
    *,
    contact: dict[str, Any] | None,
    dk: DataKey | None,
    profile: Profile | None,
    jurisdiction: Jurisdiction | None,
    language: tuple[str, str] | None,
    controller: dict[str, str],
    retention: dict[str, int],
) -> dict[str, Any]:
    """The JSON copy; `language` is (language, how it was decided) as `decide_language` says."""
    messages = []
    for m in held.messages:
        content = None
        if dk is not None and m["body"] is not None:
            content = orjson.loads(open_sealed(dk, m["body"], f"messages/body/{m['id']}"))
            if m["direction"] == "in":  # also for rows stored before ids were left out
                content = inbound_content(content)
        messages.append(
            {
                "direction": m["direction"],
                "kind": m["kind"],
                "category": m["category"],
                "status": m["status"],
                "error_code": m["error_code"],
                "at": iso(m["created_at"]),
                "kept_until": iso(m["created_at"] + keep_days(retention, m["category"]) * 86400),
                "content": content,
            }
        )
    doc_contact = None
    if contact is not None:
        doc_contact = {
            **contact,
            "jurisdiction": {
                "law": jurisdiction.law.value,
                "country": jurisdiction.country,
                "region": jurisdiction.region,
                "decided_by": jurisdiction.basis,
            }
            if jurisdiction
            else None,
            "language": language[0] if language else None,
            "language_decided_by": language[1] if language else None,
            "stated_residence": list(profile.residence) if profile and profile.residence else None,
            "conversation_state": profile.state if profile else None,
        }
    return {
        "generated_at": iso(time.time()),
        "controller": controller,
        "contact": doc_contact,
        "consents": consents_view(held.consents),
        "suppression": suppression_view(held.suppression),
        "messages": messages,
        "audit": [
            {
                "id": a["id"],
                "at": a["at"],
                "event": a["event"],
                "outcome": a["outcome"],
                "state_before": a["state_before"],
                "state_after": a["state_after"],
            }
            for a in held.audit
        ],
    }


async def export_of(
    db: Database,
    person: Person | None,
    controller: Controller,
    indexes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The complete copy, the same in chat and from `python -m bot export`; with
    `contact` null when nothing is held but, if the number is on the do-not-contact list
    (found by `indexes`, by default the person's), that entry."""
    indexes = person.indexes if indexes is None and person else indexes or ()
    if person is None:
        suppression = await db.read(store.suppression_of, *indexes)
        empty = Held(consents=[], counts={}, messages=[], audit=[], suppression=suppression)
        return export_document(
            empty, contact=None, dk=None, profile=None, jurisdiction=None, language=None,
            controller=controller.named, retention=controller.retention_days,
        )  # fmt: skip
    held = await db.read(read_held, person.contact_id, person.pseudonym, True, indexes)
    profile = person.profile
    return export_document(
        held, contact=contact_view(person), dk=person.dk, profile=profile,
        jurisdiction=decide(profile.residence, person.e164),
        language=decide_language(profile.language, person.e164), controller=controller.named,
        retention=controller.retention_days,
    )  # fmt: skip
