"""Consents, suppressions, erasure and the reads behind "my data" and exports."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from bot.store.tables import (
    Consent,
    ConsentEvent,
    Contact,
    InboxEvent,
    Message,
    Suppression,
)

consents = Consent.__table__
consent_events = ConsentEvent.__table__
suppressions = Suppression.__table__
contacts = Contact.__table__
messages = Message.__table__
inbox = InboxEvent.__table__


def consent_status(conn: Connection, contact_id: str, purpose: str) -> str | None:
    row = conn.execute(
        select(consents.c.status).where(
            consents.c.contact_id == contact_id, consents.c.purpose == purpose
        )
    ).first()
    return row[0] if row else None


def record_consent(conn: Connection, event: dict[str, Any]) -> None:
    """Set a purpose's current status and append the change to its history."""
    contact_id, purpose, status, at = (
        event["contact_id"],
        event["purpose"],
        event["status"],
        event["at"],
    )
    changed = conn.execute(
        update(consents)
        .where(consents.c.contact_id == contact_id, consents.c.purpose == purpose)
        .values(status=status, updated_at=at)
    )
    if changed.rowcount == 0:
        conn.execute(
            insert(consents),
            [
                {
                    "id": uuid.uuid4().hex,
                    "contact_id": contact_id,
                    "purpose": purpose,
                    "status": status,
                    "updated_at": at,
                }
            ],
        )
    conn.execute(insert(consent_events), [{"id": uuid.uuid4().hex, **event}])


def consent_history(conn: Connection, contact_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(consent_events)
        .where(consent_events.c.contact_id == contact_id)
        .order_by(consent_events.c.at, consent_events.c.id)
    )
    return [dict(r._mapping) for r in rows]


def message_counts(conn: Connection, contact_id: str) -> dict[str, int]:
    rows = conn.execute(
        select(messages.c.category, func.count())
        .where(messages.c.contact_id == contact_id)
        .group_by(messages.c.category)
    )
    return {category: n for category, n in rows}


def contact_messages(conn: Connection, contact_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(
            messages.c.id,
            messages.c.direction,
            messages.c.kind,
            messages.c.category,
            messages.c.body,
            messages.c.status,
            messages.c.error_code,
            messages.c.created_at,
        )
        .where(messages.c.contact_id == contact_id)
        .order_by(messages.c.created_at, messages.c.id)
    )
    return [dict(r._mapping) for r in rows]


def suppress(conn: Connection, phone_index: str, reason: str, at: float) -> None:
    exists = conn.execute(
        select(suppressions.c.phone_index).where(suppressions.c.phone_index == phone_index)
    ).first()
    if exists is None:
        conn.execute(
            insert(suppressions), [{"phone_index": phone_index, "reason": reason, "created_at": at}]
        )


def suppression_of(conn: Connection, *indexes: str | None) -> dict[str, Any] | None:
    """The do-not-contact entry of any of a person's indexes (the oldest), for MY DATA and
    the export: `reason` ("stop", "erased") and `since`; None when there is none."""
    keys = [i for i in indexes if i]
    if not keys:
        return None
    row = conn.execute(
        select(suppressions.c.reason, suppressions.c.created_at)
        .where(suppressions.c.phone_index.in_(keys))
        .order_by(suppressions.c.created_at)
        .limit(1)
    ).first()
    return {"reason": row.reason, "since": row.created_at} if row else None


def erase_contact(conn: Connection, contact_id: str, indexes: list[str]) -> dict[str, int]:
    """Delete every row about the person; returns counts per table. (Their data key is
    shredded in the key store first: `People.shred`.)

    Their inbox rows go too (matched by the blind indexes they arrived under).
    """
    return {
        "consent_events": conn.execute(
            delete(consent_events).where(consent_events.c.contact_id == contact_id)
        ).rowcount,
        "consents": conn.execute(
            delete(consents).where(consents.c.contact_id == contact_id)
        ).rowcount,
        "messages": conn.execute(
            delete(messages).where(messages.c.contact_id == contact_id)
        ).rowcount,
        "inbox": conn.execute(delete(inbox).where(inbox.c.contact_index.in_(indexes))).rowcount
        if indexes
        else 0,
        "contacts": conn.execute(delete(contacts).where(contacts.c.id == contact_id)).rowcount,
    }
