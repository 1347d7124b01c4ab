"""One item of a webhook `value` (a message, a status, a preference) into its typed event.

Meta's items are loose: ids and codes come as strings or ints, keys go missing, new message
types appear without notice. Each builder returns None for an item it cannot use (the caller
counts it as skipped) and never raises; the scalar readers at the end say exactly what is
accepted for an id, a number or a timestamp. `event_parse` walks a delivery down to its items;
`event_slices` rebuilds one stored item with the same builders.
"""

from __future__ import annotations

import math
from typing import Any

from bot.whatsapp.event_types import (
    InboundMessage,
    MetaError,
    Party,
    PreferenceUpdate,
    StatusUpdate,
)

_EMPTY: dict[str, Any] = {}  # shared read-only default for missing sub-objects
# Types whose object carries Meta's media id, its mime type and maybe a caption.
_ATTACHMENT_TYPES = frozenset({"image", "audio", "video", "document", "sticker"})
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

# --- items --------------------------------------------------------------------------------------


def message_event(
    m: Any, phone_number_id: str | None, contacts: ContactBook
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
        errors=errors_of(m.get("errors")),
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
    if mtype in _ATTACHMENT_TYPES:
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


def status_event(s: Any, phone_number_id: str | None, contacts: ContactBook) -> StatusUpdate | None:
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
        errors=errors_of(s.get("errors")),
        category=_category(s),
        raw=s,
    )


def _category(s: dict[str, Any]) -> str | None:
    """Pricing category, falling back to the older conversation origin type."""
    category = _str(_dict(s.get("pricing")).get("category"))
    if category:
        return category
    return _str(_dict(_dict(s.get("conversation")).get("origin")).get("type"))


def preference_event(
    p: Any, phone_number_id: str | None, contacts: ContactBook
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


class ContactBook:
    """A `value`'s `contacts[]`, looked up by phone number or BSUID in constant time.

    A delivery may carry thousands of messages, each with its sender's entry: scanning
    the list for every message made parsing quadratic (10,000 messages took seconds).
    `find` still answers what a scan in order would: the first entry matching either id.
    """

    __slots__ = ("_by_user", "_by_wa", "_lone")

    def __init__(self, contacts: list[dict[str, Any]]) -> None:
        self._by_wa: dict[str, tuple[int, dict[str, Any]]] = {}
        self._by_user: dict[str, tuple[int, dict[str, Any]]] = {}
        self._lone = contacts[0] if len(contacts) == 1 else None
        for position, contact in enumerate(contacts):
            wa_id, user_id = _wa_id(contact.get("wa_id")), _ident(contact.get("user_id"))
            if wa_id is not None:
                self._by_wa.setdefault(wa_id, (position, contact))
            if user_id is not None:
                self._by_user.setdefault(user_id, (position, contact))

    def find(self, wa_id: str | None, user_id: str | None) -> dict[str, Any] | None:
        """Match by phone number or BSUID; an item with no id at all takes a lone contact."""
        if wa_id is None and user_id is None:
            return self._lone
        found = [
            hit
            for hit in (
                self._by_wa.get(wa_id) if wa_id is not None else None,
                self._by_user.get(user_id) if user_id is not None else None,
            )
            if hit is not None
        ]
        return min(found, key=lambda hit: hit[0])[1] if found else None


def contact_list(value: dict[str, Any]) -> ContactBook:
    return ContactBook([c for c in _list(value.get("contacts")) if isinstance(c, dict)])


def _party(wa_id: str | None, user_id: str | None, contacts: ContactBook) -> Party:
    """Complete an identity from its `contacts[]` entry (name, username, the other id)."""
    contact = contacts.find(wa_id, user_id)
    if contact is None:
        return Party(wa_id=wa_id, user_id=user_id, name=None, username=None)
    profile = _dict(contact.get("profile"))
    return Party(
        wa_id=wa_id or _wa_id(contact.get("wa_id")),
        user_id=user_id or _ident(contact.get("user_id")),
        name=_str(profile.get("name")),
        username=_str(profile.get("username")) or _str(contact.get("username")),
    )


# --- scalars ------------------------------------------------------------------------------------


def phone_number_id_of(value: dict[str, Any]) -> str | None:
    return _ident(_dict(value.get("metadata")).get("phone_number_id"))


def errors_of(items: Any) -> tuple[MetaError, ...]:
    if not isinstance(items, list) or not items:
        return ()
    return tuple(_error(e) for e in items if isinstance(e, dict))


def _error(e: dict[str, Any]) -> MetaError:
    return MetaError(
        code=_code(e.get("code")),
        title=_str(e.get("title")),
        message=_str(e.get("message")),
        details=_str(_dict(e.get("error_data")).get("details")),
        href=_str(e.get("href")),
    )


def _code(v: Any) -> int | None:
    """Meta's error codes are small (131026); one no 32-bit column holds is garbage: None."""
    code = _int(v)
    return code if code is not None and -(2**31) <= code < 2**31 else None


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
