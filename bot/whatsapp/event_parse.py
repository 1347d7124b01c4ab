"""A WhatsApp Cloud API webhook body into its typed events (`event_types`).

`parse_webhook` turns one decoded POST body into a flat, ordered list of events. Meta's payloads
are loose: ids and codes come as strings or ints, keys go missing, new message types and webhook
fields appear without notice, and relays rewrite things. The rule is therefore that parsing never
raises on a WhatsApp payload; only a body that is not one at all raises `PayloadError`.

Tolerance, in short:

- Unknown keys are ignored. An unknown message type becomes an `InboundMessage` that keeps its
  `type` string (a missing type is inferred from the content key, else ``"unknown"``). A change
  whose `field` is not handled becomes `Unhandled`.
- Items that cannot be used are dropped and counted in `ParsedDelivery.skipped`: an entry that is
  not an object or has no `changes` list, a change that is not an object, a handled change whose
  `value` is not an object, a message or status with no id, a message with no sender identity, a
  preference with no user identity.
- Ids and numbers are accepted as strings or ints; a timestamp that is not a number becomes 0,
  an error code beyond 32 bits None.
  A leading ``+`` on a phone number is dropped so that `Party.key` is stable.
- Text is kept exactly as received (emoji, RTL marks, NUL). `raw` fields are the received objects
  themselves, not copies: treat them as read-only.
- Order is kept: entries, then changes, then within one `value` its messages, its statuses and
  finally its value-level `errors` (emitted as `ValueErrors` whenever present).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.whatsapp.event_items import (
    ContactBook,
    contact_list,
    errors_of,
    message_event,
    phone_number_id_of,
    preference_event,
    status_event,
)
from bot.whatsapp.event_types import (
    Event,
    ParsedDelivery,
    PayloadError,
    Unhandled,
    ValueErrors,
)

WHATSAPP_OBJECT = "whatsapp_business_account"


def parse_webhook(body: Any) -> ParsedDelivery:
    """Parse a decoded webhook body; raise `PayloadError` only if it is not a WhatsApp payload."""
    if not isinstance(body, dict) or body.get("object") != WHATSAPP_OBJECT:
        raise PayloadError("body is not a whatsapp_business_account webhook")
    entries = body.get("entry")
    if not isinstance(entries, list):
        raise PayloadError("webhook body has no 'entry' list")
    events: list[Event] = []
    skipped = 0
    for entry in entries:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            skipped += 1
            continue
        for change in changes:
            skipped += _parse_change(change, events)
    return ParsedDelivery(events=events, skipped=skipped)


# --- changes ------------------------------------------------------------------------------------


def _parse_change(change: Any, out: list[Event]) -> int:
    """Append the events of one change; return how many items were skipped."""
    if not isinstance(change, dict):
        return 1
    field = change.get("field")
    value = change.get("value")
    if field is None and isinstance(value, dict):
        field = _guess_field(value)
    if field == "messages":
        return _parse_messages_value(value, out)
    if field == "user_preferences":
        return _parse_preferences_value(value, out)
    out.append(Unhandled(field=field if isinstance(field, str) else "", raw=change))
    return 0


def _guess_field(value: dict[str, Any]) -> str | None:
    """Some relays drop `field`; the value's keys still tell what it is."""
    if "messages" in value or "statuses" in value or "errors" in value:
        return "messages"
    if "user_preferences" in value:
        return "user_preferences"
    return None


def _parse_messages_value(value: Any, out: list[Event]) -> int:
    if not isinstance(value, dict):
        return 1
    phone_number_id = phone_number_id_of(value)
    contacts = contact_list(value)
    skipped = _collect(value.get("messages"), message_event, phone_number_id, contacts, out)
    skipped += _collect(value.get("statuses"), status_event, phone_number_id, contacts, out)
    errors = errors_of(value.get("errors"))
    if errors:
        out.append(ValueErrors(phone_number_id=phone_number_id, errors=errors))
    return skipped


def _parse_preferences_value(value: Any, out: list[Event]) -> int:
    if not isinstance(value, dict):
        return 1
    phone_number_id = phone_number_id_of(value)
    contacts = contact_list(value)
    return _collect(value.get("user_preferences"), preference_event, phone_number_id, contacts, out)


def _collect(
    items: Any,
    build: Callable[[Any, str | None, ContactBook], Event | None],
    phone_number_id: str | None,
    contacts: ContactBook,
    out: list[Event],
) -> int:
    """Append each item that builds into an event; count the ones that do not."""
    skipped = 0
    for item in items if isinstance(items, list) else ():
        event = build(item, phone_number_id, contacts)
        if event is None:
            skipped += 1
        else:
            out.append(event)
    return skipped
