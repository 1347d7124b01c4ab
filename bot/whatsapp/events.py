"""Typed events from WhatsApp Cloud API webhook bodies.

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
- Ids and numbers are accepted as strings or ints; a timestamp that is not a number becomes 0.
  A leading ``+`` on a phone number is dropped so that `Party.key` is stable.
- Text is kept exactly as received (emoji, RTL marks, NUL). `raw` fields are the received objects
  themselves, not copies: treat them as read-only.
- Order is kept: entries, then changes, then within one `value` its messages, its statuses and
  finally its value-level `errors` (emitted as `ValueErrors` whenever present).

Why plain frozen dataclasses and hand-written extraction rather than pydantic models: speed does
not decide it. Measured back to back on sample 01 (one text message) on a slow, shared 2-core box,
`parse_webhook` takes 15-20 µs per call and a pydantic v2 model tree of the same envelope
(``extra="ignore"``) validates in the same time, before any mapping to flat events; both are far
inside the 1,000 deliveries/s budget. Tolerance decides: pydantic rejects a whole tree when one
nested field is off, so every field would need a lax validator and every item its own error
handling to keep one bad message from dropping the batch. Explicit ``isinstance`` checks say
exactly what is accepted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.errors import BotError

WHATSAPP_OBJECT = "whatsapp_business_account"

_EMPTY: dict[str, Any] = {}  # shared read-only default for missing sub-objects
_MEDIA_TYPES = frozenset({"image", "audio", "video", "document", "sticker"})
_KNOWN_TYPES = (
    "text",
    "interactive",
    "button",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "reaction",
    "order",
    "system",
    "unsupported",
    "request_welcome",
)
_NOT_A_TURN = frozenset({"system", "reaction"})


class PayloadError(BotError, ValueError):
    """Body is not a WhatsApp webhook payload (the route answers 400)."""


@dataclass(frozen=True, slots=True)
class MetaError:
    """One entry of Meta's `errors` arrays; `details` is `error_data.details`."""

    code: int | None
    title: str | None
    message: str | None
    details: str | None
    href: str | None


@dataclass(frozen=True, slots=True)
class Party:
    """Who a message is from or a status is for: phone number, BSUID, or both."""

    wa_id: str | None
    user_id: str | None
    name: str | None
    username: str | None

    @property
    def key(self) -> str:
        """Stable identity for ordering and locking; the phone number wins over the BSUID.

        Empty only for a status recipient that Meta sent without any id.
        """
        if self.wa_id:
            return f"wa:{self.wa_id}"
        if self.user_id:
            return f"bsuid:{self.user_id}"
        return ""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message a user sent to the business (including system notices and reactions)."""

    phone_number_id: str | None
    id: str
    timestamp: int
    type: str
    sender: Party
    text: str | None
    reply_id: str | None
    media_id: str | None
    media_mime: str | None
    context_id: str | None
    reaction_to: str | None
    reaction_emoji: str | None
    referral: dict[str, Any] | None
    system_type: str | None
    errors: tuple[MetaError, ...]
    raw: dict[str, Any]

    @property
    def is_user_content(self) -> bool:
        """True when the user said something that the bot should answer.

        Reactions (added or removed) and system notices (number or identity changed) are not a
        conversation turn: answering them with a menu would be noise. Everything else is,
        including `unsupported` (the bot can say it cannot read that), `request_welcome` and
        types this module does not know.
        """
        return self.type not in _NOT_A_TURN


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """Delivery state of a message the business sent."""

    phone_number_id: str | None
    id: str
    status: str
    timestamp: int
    recipient: Party
    errors: tuple[MetaError, ...]
    category: str | None
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ValueErrors:
    """Errors Meta reports at the `value` level, not tied to one message (e.g. 130429)."""

    phone_number_id: str | None
    errors: tuple[MetaError, ...]


@dataclass(frozen=True, slots=True)
class PreferenceUpdate:
    """A user stopped or resumed marketing messages (`user_preferences` webhook)."""

    phone_number_id: str | None
    party: Party
    category: str | None
    value: str | None
    timestamp: int
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Unhandled:
    """A change whose field is not handled here; `raw` is the whole change object."""

    field: str
    raw: dict[str, Any]


Event = InboundMessage | StatusUpdate | ValueErrors | PreferenceUpdate | Unhandled


@dataclass(frozen=True, slots=True)
class ParsedDelivery:
    """All events of one POST in arrival order, and how many items were unusable."""

    events: list[Event]
    skipped: int


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
    phone_number_id = _phone_number_id(value)
    contacts = _contact_list(value)
    skipped = _collect(value.get("messages"), _message, phone_number_id, contacts, out)
    skipped += _collect(value.get("statuses"), _status, phone_number_id, contacts, out)
    errors = _errors(value.get("errors"))
    if errors:
        out.append(ValueErrors(phone_number_id=phone_number_id, errors=errors))
    return skipped


def _parse_preferences_value(value: Any, out: list[Event]) -> int:
    if not isinstance(value, dict):
        return 1
    phone_number_id = _phone_number_id(value)
    contacts = _contact_list(value)
    return _collect(value.get("user_preferences"), _preference, phone_number_id, contacts, out)


def _collect(
    items: Any,
    build: Callable[[Any, str | None, list[dict[str, Any]]], Event | None],
    phone_number_id: str | None,
    contacts: list[dict[str, Any]],
    out: list[Event],
) -> int:
    """Append each item that builds into an event; count the ones that do not."""
    skipped = 0
    for item in _list(items):
        event = build(item, phone_number_id, contacts)
        if event is None:
            skipped += 1
        else:
            out.append(event)
    return skipped


# --- items --------------------------------------------------------------------------------------


def _message(
    m: Any, phone_number_id: str | None, contacts: list[dict[str, Any]]
) -> InboundMessage | None:
    """Build one inbound message, or None when it has no id or no sender to answer."""
    if not isinstance(m, dict):
        return None
    message_id = _ident(m.get("id"))
    if message_id is None:
        return None
    sender = _party(_wa_id(m.get("from")), _ident(m.get("from_user_id")), contacts)
    if not sender.key:
        return None
    mtype = m.get("type")
    if not isinstance(mtype, str) or not mtype:
        mtype = _infer_type(m)
    text, reply_id, media_id, media_mime = _content(m, mtype)
    reaction = _dict(m.get("reaction")) if mtype == "reaction" else _EMPTY
    system = _dict(m.get("system")) if mtype == "system" else _EMPTY
    referral = m.get("referral")
    return InboundMessage(
        phone_number_id=phone_number_id,
        id=message_id,
        timestamp=_timestamp(m.get("timestamp")),
        type=mtype,
        sender=sender,
        text=text,
        reply_id=reply_id,
        media_id=media_id,
        media_mime=media_mime,
        context_id=_ident(_dict(m.get("context")).get("id")),
        reaction_to=_ident(reaction.get("message_id")),
        reaction_emoji=_str(reaction.get("emoji")) or None,  # "" also means removed
        referral=referral if isinstance(referral, dict) else None,
        system_type=_str(system.get("type")),
        errors=_errors(m.get("errors")),
        raw=m,
    )


def _infer_type(m: dict[str, Any]) -> str:
    """A message without `type`: name it after the content key it carries."""
    for name in _KNOWN_TYPES:
        if name in m:
            return name
    return "unknown"


_Content = tuple[str | None, str | None, str | None, str | None]
_NO_CONTENT: _Content = (None, None, None, None)


def _content(m: dict[str, Any], mtype: str) -> _Content:
    """(text, reply_id, media_id, media_mime) for the message's type."""
    body = _dict(m.get(mtype))
    if mtype == "text":
        return _str(body.get("body")), None, None, None
    if mtype in _MEDIA_TYPES:
        return _str(body.get("caption")), None, _ident(body.get("id")), _str(body.get("mime_type"))
    if mtype == "interactive":
        return _interactive(body)
    if mtype == "button":
        return _str(body.get("text")), _ident(body.get("payload")), None, None
    return _NO_CONTENT


def _interactive(body: dict[str, Any]) -> _Content:
    """Title and id of a button_reply / list_reply (flows' nfm_reply has neither)."""
    kind = body.get("type")
    reply = body.get(kind) if isinstance(kind, str) else None
    if not isinstance(reply, dict):
        reply = body.get("button_reply") or body.get("list_reply")
        if not isinstance(reply, dict):
            return _NO_CONTENT
    return _str(reply.get("title")), _ident(reply.get("id")), None, None


def _status(
    s: Any, phone_number_id: str | None, contacts: list[dict[str, Any]]
) -> StatusUpdate | None:
    """Build one status update, or None when it has no message id to apply to."""
    if not isinstance(s, dict):
        return None
    status_id = _ident(s.get("id"))
    if status_id is None:
        return None
    recipient = _party(_wa_id(s.get("recipient_id")), _ident(s.get("recipient_user_id")), contacts)
    return StatusUpdate(
        phone_number_id=phone_number_id,
        id=status_id,
        status=_str(s.get("status")) or "unknown",
        timestamp=_timestamp(s.get("timestamp")),
        recipient=recipient,
        errors=_errors(s.get("errors")),
        category=_category(s),
        raw=s,
    )


def _category(s: dict[str, Any]) -> str | None:
    """Pricing category, falling back to the older conversation origin type."""
    category = _str(_dict(s.get("pricing")).get("category"))
    if category:
        return category
    return _str(_dict(_dict(s.get("conversation")).get("origin")).get("type"))


def _preference(
    p: Any, phone_number_id: str | None, contacts: list[dict[str, Any]]
) -> PreferenceUpdate | None:
    """Build one marketing preference change, or None when it names no user."""
    if not isinstance(p, dict):
        return None
    party = _party(_wa_id(p.get("wa_id")), _ident(p.get("user_id")), contacts)
    if not party.key:
        return None
    return PreferenceUpdate(
        phone_number_id=phone_number_id,
        party=party,
        category=_str(p.get("category")),
        value=_str(p.get("value")),
        timestamp=_timestamp(p.get("timestamp")),
        raw=p,
    )


# --- parties ------------------------------------------------------------------------------------


def _contact_list(value: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in _list(value.get("contacts")) if isinstance(c, dict)]


def _party(wa_id: str | None, user_id: str | None, contacts: list[dict[str, Any]]) -> Party:
    """Complete an identity from its `contacts[]` entry (name, username, the other id)."""
    contact = _find_contact(wa_id, user_id, contacts)
    if contact is None:
        return Party(wa_id=wa_id, user_id=user_id, name=None, username=None)
    profile = _dict(contact.get("profile"))
    return Party(
        wa_id=wa_id or _wa_id(contact.get("wa_id")),
        user_id=user_id or _ident(contact.get("user_id")),
        name=_str(profile.get("name")),
        username=_str(profile.get("username")) or _str(contact.get("username")),
    )


def _find_contact(
    wa_id: str | None, user_id: str | None, contacts: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """Match by phone number or BSUID; an item with no id at all takes a lone contact."""
    if wa_id is None and user_id is None:
        return contacts[0] if len(contacts) == 1 else None
    for contact in contacts:
        if wa_id is not None and _wa_id(contact.get("wa_id")) == wa_id:
            return contact
        if user_id is not None and _ident(contact.get("user_id")) == user_id:
            return contact
    return None


# --- scalars ------------------------------------------------------------------------------------


def _phone_number_id(value: dict[str, Any]) -> str | None:
    return _ident(_dict(value.get("metadata")).get("phone_number_id"))


def _errors(items: Any) -> tuple[MetaError, ...]:
    if not isinstance(items, list) or not items:
        return ()
    return tuple(_error(e) for e in items if isinstance(e, dict))


def _error(e: dict[str, Any]) -> MetaError:
    return MetaError(
        code=_int(e.get("code")),
        title=_str(e.get("title")),
        message=_str(e.get("message")),
        details=_str(_dict(e.get("error_data")).get("details")),
        href=_str(e.get("href")),
    )


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else _EMPTY


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _ident(v: Any) -> str | None:
    """An id: Meta sends strings, some relays ints; an empty string means absent."""
    if isinstance(v, str):
        return v or None
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return None


def _wa_id(v: Any) -> str | None:
    """A phone number id without the '+' some relays add, so keys stay stable."""
    ident = _ident(v)
    if ident is not None and ident.startswith("+"):
        return ident[1:] or None
    return ident


def _int(v: Any) -> int | None:
    """An int from an int, a float or a numeric string; None for anything else."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            try:
                v = float(v)
            except ValueError:
                return None
    if isinstance(v, float) and math.isfinite(v):
        return int(v)
    return None


def _timestamp(v: Any) -> int:
    """Unix seconds; 0 when missing or garbage, so ordering code never sees None."""
    ts = _int(v)
    return 0 if ts is None else ts
