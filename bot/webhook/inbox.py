"""From parsed webhook events to inbox rows, and back.

Each event is stored on its own, sealed, as a one-event webhook body in Meta's
own shape: the turn runner re-reads it with the same parser, so there is one
definition of what a WhatsApp event looks like. Meta's ids encode phone
numbers, so the deduplication key is a blind index of the id, never the id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from bot.crypto import DataKey, Index, Keyring, open_sealed, seal
from bot.whatsapp.events import (
    Event,
    InboundMessage,
    Party,
    PreferenceUpdate,
    StatusUpdate,
    parse_webhook,
)

INBOX_KEY_ID = "system-inbox"


def contact_index(keyring: Keyring, party: Party) -> str | None:
    """The blind index a person is found by: their number if Meta gave it, else the BSUID."""
    if party.wa_id:
        return keyring.blind_index(Index.PHONE, "+" + party.wa_id.lstrip("+"))
    if party.user_id:
        return keyring.blind_index(Index.BSUID, party.user_id)
    return None


def _contact_json(party: Party) -> dict[str, Any]:
    contact: dict[str, Any] = {"profile": {}}
    if party.name is not None:
        contact["profile"]["name"] = party.name
    if party.username is not None:
        contact["profile"]["username"] = party.username
    if party.wa_id:
        contact["wa_id"] = party.wa_id
    if party.user_id:
        contact["user_id"] = party.user_id
    return contact


def _envelope(phone_number_id: str | None, field: str, value: dict[str, Any]) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"phone_number_id": phone_number_id},
        **value,
    }
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "", "changes": [{"field": field, "value": value}]}],
    }
    return orjson.dumps(body)


@dataclass(frozen=True, slots=True)
class Row:
    event_key: str
    kind: str
    contact_index: str | None
    meta_ts: int
    body: bytes


def to_row(keyring: Keyring, event: Event) -> Row | None:
    """The inbox row for one event, or None for events the bot does not store."""
    if isinstance(event, InboundMessage):
        party, kind = event.sender, "message"
        key = f"message:{event.id}"
        body = _envelope(
            event.phone_number_id,
            "messages",
            {"contacts": [_contact_json(party)], "messages": [event.raw]},
        )
    elif isinstance(event, StatusUpdate):
        party, kind = event.recipient, "status"
        key = f"status:{event.id}:{event.status}"
        body = _envelope(event.phone_number_id, "messages", {"statuses": [event.raw]})
    elif isinstance(event, PreferenceUpdate):
        party, kind = event.party, "preference"
        key = f"preference:{party.key}:{event.value}:{event.timestamp}"
        body = _envelope(
            event.phone_number_id, "user_preferences", {"user_preferences": [event.raw]}
        )
    else:
        return None
    ts = getattr(event, "timestamp", 0)
    return Row(
        event_key=keyring.blind_index(Index.EVENT, key),
        kind=kind,
        contact_index=contact_index(keyring, party),
        meta_ts=ts,
        body=body,
    )


def sealed_rows(
    keyring: Keyring, inbox_key: DataKey, events: list[Event], now: float
) -> tuple[list[dict[str, Any]], set[str]]:
    """Inbox rows ready to insert, and the contacts that now have work waiting."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    contacts: set[str] = set()
    for event in events:
        row = to_row(keyring, event)
        if row is None or row.event_key in seen:
            continue
        seen.add(row.event_key)
        if row.contact_index:
            contacts.add(row.contact_index)
        rows.append(
            {
                "event_key": row.event_key,
                "kind": row.kind,
                "contact_index": row.contact_index,
                "meta_ts": row.meta_ts,
                "payload": seal(inbox_key, row.body, f"inbox/payload/{row.event_key}"),
                "state": "pending" if row.contact_index else "done",
                "attempts": 0,
                "received_at": now,
            }
        )
    return rows, contacts


def open_event(inbox_key: DataKey, event_key: str, payload: bytes) -> Event | None:
    body = open_sealed(inbox_key, payload, f"inbox/payload/{event_key}")
    events = parse_webhook(orjson.loads(body)).events
    return events[0] if events else None
