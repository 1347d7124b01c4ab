"""From parsed webhook events to inbox rows, and back: the inbox's format.

The webhook writes rows with `sealed_rows` (before Meta gets its 200); the
turn runner reads them back with `open_event`.

Each event is stored on its own, sealed, as its slice (`bot.whatsapp.event_slices`):
the items of Meta's body it was built from. The turn runner rebuilds the event from
that slice with the parser's own item builders, so a delivery is parsed once and there
is still one definition of what a WhatsApp event looks like. Rows written by earlier
versions hold a one-event webhook body instead; they are read as before. Meta's ids
encode phone numbers, so the deduplication key is a blind index of the id, never the id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.crypto import DataKey, Index, Keyring, open_sealed, seal
from bot.privacy.person import contact_index, indexes_of
from bot.whatsapp.events import (
    Event,
    InboundMessage,
    PreferenceUpdate,
    StatusUpdate,
    event_from_slice,
    event_to_slice,
)

INBOX_KEY_ID = "system-inbox"


@dataclass(frozen=True, slots=True)
class Row:
    event_key: str
    kind: str
    contact_index: str | None
    meta_ts: int
    body: bytes
    recipient: tuple[str | None, str | None] | None = None  # a status's (phone, BSUID) indexes


def to_row(keyring: Keyring, event: Event) -> Row | None:
    """The inbox row for one event, or None for events the bot does not store."""
    if isinstance(event, InboundMessage):
        party, kind = event.sender, "message"
        key = f"message:{event.id}"
    elif isinstance(event, StatusUpdate):
        party, kind = event.recipient, "status"
        key = f"status:{event.id}:{event.status}"
    elif isinstance(event, PreferenceUpdate):
        party, kind = event.party, "preference"
        key = f"preference:{party.key}:{event.value}:{event.timestamp}"
    else:
        return None
    ts = getattr(event, "timestamp", 0)
    return Row(
        event_key=keyring.blind_index(Index.EVENT, key),
        kind=kind,
        contact_index=contact_index(keyring, party),
        meta_ts=ts,
        body=event_to_slice(event),
        recipient=indexes_of(keyring, party) if kind == "status" else None,
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
                "recipient": row.recipient,  # not a column: `inbox_store.accept` judges by it
            }
        )
    return rows, contacts


def open_event(inbox_key: DataKey, event_key: str, payload: bytes) -> Event | None:
    """The event a row holds, rebuilt from its slice (or from an earlier version's body)."""
    return event_from_slice(open_sealed(inbox_key, payload, f"inbox/payload/{event_key}"))
