"""One typed event as the JSON slice it came from, and back, without parsing a whole delivery.

The inbox stores each event of a delivery on its own until its turn runs. A slice holds what
the item builders (`event_items`) need to rebuild exactly that event, in Meta's own shapes:

- a message: `{"message": <the message object>, "contact": <its sender's contacts[] entry>,
  "phone_number_id": ...}`;
- a status: `{"status": <the status object>, "contact": ..., "phone_number_id": ...}`;
- a marketing preference: `{"user_preference": <the item>, "contact": ..., "phone_number_id":
  ...}`;
- value-level errors: `{"errors": [...], "phone_number_id": ...}`; an unhandled change:
  `{"unhandled": <field>, "change": <the change object>}`.

The contact is written from the event's `Party` so that matching it again yields that same
party (name and username included). Rebuilding runs the same builders the parser uses, so a
rebuilt event equals the parsed one; there is still one definition of what a WhatsApp event is.

Rows stored by earlier versions hold a whole one-event webhook body (`{"object": ...,
"entry": [...]}`); `event_from_slice` still reads those with `parse_webhook`, so events
waiting in the inbox survive an upgrade.
"""

from __future__ import annotations

from typing import Any

import orjson

from bot.whatsapp.event_items import (
    ContactBook,
    errors_of,
    message_event,
    preference_event,
    status_event,
)
from bot.whatsapp.event_parse import parse_webhook
from bot.whatsapp.event_types import (
    Event,
    InboundMessage,
    MetaError,
    Party,
    PreferenceUpdate,
    StatusUpdate,
    Unhandled,
    ValueErrors,
)


def event_to_slice(event: Event) -> bytes:
    """The JSON slice `event_from_slice` rebuilds `event` from."""
    doc: dict[str, Any]
    if isinstance(event, InboundMessage):
        doc = {"message": event.raw, "contact": _contact(event.sender)}
    elif isinstance(event, StatusUpdate):
        doc = {"status": event.raw, "contact": _contact(event.recipient)}
    elif isinstance(event, PreferenceUpdate):
        doc = {"user_preference": event.raw, "contact": _contact(event.party)}
    elif isinstance(event, ValueErrors):
        doc = {"errors": [_error(e) for e in event.errors]}
    elif isinstance(event, Unhandled):
        return orjson.dumps({"unhandled": event.field, "change": event.raw})
    else:
        raise TypeError(f"not a webhook event: {type(event).__name__}")
    doc["phone_number_id"] = event.phone_number_id
    return orjson.dumps(doc)


def event_from_slice(data: bytes) -> Event | None:
    """The event a slice was written from; None if it holds none (never for a slice of ours).

    A whole webhook body, as earlier versions stored, gives its first event.
    """
    doc = orjson.loads(data)
    if not isinstance(doc, dict):
        return None
    if "object" in doc or "entry" in doc:  # a whole body, stored by an earlier version
        events = parse_webhook(doc).events
        return events[0] if events else None
    number = doc.get("phone_number_id")
    phone_number_id = number if isinstance(number, str) else None
    contact = doc.get("contact")
    contacts = ContactBook([contact] if isinstance(contact, dict) else [])
    if "message" in doc:
        return message_event(doc["message"], phone_number_id, contacts)
    if "status" in doc:
        return status_event(doc["status"], phone_number_id, contacts)
    if "user_preference" in doc:
        return preference_event(doc["user_preference"], phone_number_id, contacts)
    if "errors" in doc:
        return ValueErrors(phone_number_id=phone_number_id, errors=errors_of(doc["errors"]))
    change = doc.get("change")
    if isinstance(change, dict) and isinstance(doc.get("unhandled"), str):
        return Unhandled(field=doc["unhandled"], raw=change)
    return None


def _contact(party: Party) -> dict[str, Any]:
    """A contacts[] entry that `event_items` matches to this party and reads back as it.

    The username goes at the top level, where the parser takes it as it is (even ""),
    rather than in `profile`, where an empty one would read as missing.
    """
    contact: dict[str, Any] = {}
    if party.wa_id is not None:
        contact["wa_id"] = party.wa_id
    if party.user_id is not None:
        contact["user_id"] = party.user_id
    if party.name is not None:
        contact["profile"] = {"name": party.name}
    if party.username is not None:
        contact["username"] = party.username
    return contact


def _error(error: MetaError) -> dict[str, Any]:
    """A Meta `errors[]` entry that reads back as this error."""
    found: dict[str, Any] = {"code": error.code, "title": error.title, "message": error.message}
    found["error_data"] = {"details": error.details} if error.details is not None else None
    found["href"] = error.href
    return {key: value for key, value in found.items() if value is not None}
