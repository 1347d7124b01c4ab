"""Right of access: what is held about a person, as a chat summary and as a JSON copy.

The copy is complete and machine-readable (portability): the contact with its
number and name opened, every consent with its history, every stored message
with its content as held (an inbound one without Meta's message ids, which are
kept only as keyed hashes; media sent outside a handoff as its type alone,
`records.inbound_kept`), and the person's audit trail. The same document is sent
in chat (as a WhatsApp document) and printed by `python -m bot export +E164`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from bot import audit
from bot.crypto import DataKey, open_sealed
from bot.privacy.controller import Controller
from bot.privacy.jurisdiction import Jurisdiction, decide, language_for
from bot.privacy.person import Person
from bot.privacy.profile import Profile
from bot.privacy.records import inbound_content
from bot.store import Conn
from bot.store import privacy as store
from bot.store.db import Database


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


@dataclass
class Held:
    """Everything read for one person, in one transaction."""

    consents: list[dict[str, Any]]
    counts: dict[str, int]
    messages: list[dict[str, Any]]
    audit: list[dict[str, Any]]


def read_held(conn: Conn, contact_id: str, pseudonym: str, with_messages: bool) -> Held:
    return Held(
        consents=store.consent_history(conn, contact_id),
        counts=store.message_counts(conn, contact_id),
        messages=store.contact_messages(conn, contact_id) if with_messages else [],
        audit=audit.entries_of(conn, pseudonym),
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


def summary_lines(
    held: Held,
    *,
    e164: str | None,
    jurisdiction: Jurisdiction,
    language: str,
    language_name: str,
    handoffs: int,
    text: Any,
    retention: dict[str, int],
) -> str:
    """The chat summary; `text(message_id, **params)` renders in the person's language."""
    lines = [text("data.header"), text("data.number", number=mask(e164)), text("data.name")]
    lines.append(
        text(
            "data.jurisdiction",
            law_name=text(f"law.{jurisdiction.law.value}"),
            basis=text(f"data.basis.{jurisdiction.basis}"),
        )
    )
    lines.append(text("data.language", language=language_name))
    consents = consents_view(held.consents)
    if not consents:
        lines.append(text("data.no_consent"))
    for consent in consents:
        last = consent["history"][-1]
        lines.append(
            text(
                "data.consent",
                status=text(f"consent.{consent['status']}"),
                date=(last["at"] or "")[:10],
                method=text(f"consent.method.{last['method']}"),
            )
        )
    for category, count in sorted(held.counts.items()):
        days = keep_days(retention, category)
        lines.append(text("data.messages", count=count, category=category, days=days))
    lines.append(text("data.handoffs", count=handoffs))
    return "\n".join(lines)


def contact_view(row: Any, dk: DataKey, e164: str | None) -> dict[str, Any]:
    """The contact as the person would recognise it: number and name opened."""
    if row is None:
        return {"phone": e164, "created_at": iso(time.time())}
    cid = row.id

    def opened(column: str, blob: bytes | None) -> str | None:
        return open_sealed(dk, blob, f"contacts/{column}/{cid}").decode() if blob else None

    return {
        "phone": opened("phone", row.phone_sealed),
        "business_scoped_user_id": opened("user_id", row.user_id_sealed),
        "profile_name": opened("name", row.name_sealed),
        "created_at": iso(row.created_at),
        "last_message_at": iso(row.last_inbound_at),
        "handed_to_support": row.handoff_at is not None,
    }


def export_document(
    held: Held,
    *,
    contact: dict[str, Any] | None,
    dk: DataKey | None,
    profile: Profile | None,
    jurisdiction: Jurisdiction | None,
    language: str | None,
    controller: dict[str, str],
    retention: dict[str, int],
) -> dict[str, Any]:
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
            "language": language,
            "stated_residence": list(profile.residence) if profile and profile.residence else None,
            "conversation_state": profile.state if profile else None,
        }
    return {
        "generated_at": iso(time.time()),
        "controller": controller,
        "contact": doc_contact,
        "consents": consents_view(held.consents),
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


async def export_of(db: Database, person: Person | None, controller: Controller) -> dict[str, Any]:
    """The complete copy, the same in chat and from `python -m bot export`; with
    `contact` null when nothing is held."""
    if person is None:
        empty = Held(consents=[], counts={}, messages=[], audit=[])
        return export_document(
            empty, contact=None, dk=None, profile=None, jurisdiction=None, language=None,
            controller=controller.named, retention=controller.retention_days,
        )  # fmt: skip
    held = await db.read(read_held, person.contact_id, person.pseudonym, True)
    profile = person.profile
    return export_document(
        held, contact=contact_view(person.row, person.dk, person.e164), dk=person.dk,
        profile=profile, jurisdiction=decide(profile.residence, person.e164),
        language=language_for(profile.language, person.e164), controller=controller.named,
        retention=controller.retention_days,
    )  # fmt: skip
