"""A message as the store holds it: its content sealed with the person's key.

Shared by the turn (replies to a person) and business-initiated sends, so a
row is sealed and bound to its place the same way whoever writes it. (A new
contact's rows are `bot.privacy.person`'s.) An inbound message is kept as Meta
sent it less Meta's message ids, which encode the phone number: the store
holds only keyed hashes of those (the inbox's event key, the status index).
Of what the bot cannot read (a picture, a location …) only the type is kept,
unless someone from support has the chat (`inbound_kept`).
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from bot.crypto import DataKey, seal
from bot.store import messages as message_store
from bot.whatsapp.events import InboundMessage

# Where an inbound message carries one of Meta's message ids (wamids): its own, the
# message it replies to, the message it reacts to.
META_MESSAGE_IDS: tuple[tuple[str | None, str], ...] = (
    (None, "id"),
    ("context", "id"),
    ("reaction", "message_id"),
)


# What is kept of a message the bot cannot read, outside a handoff: that it came, of
# which type, from whom and when. Its caption, coordinates, address, contact cards, media
# id, mime type and file name are not: the bot does nothing with them, and nobody else
# reads the chat then.
ENVELOPE = ("from", "from_user_id", "from_parent_user_id", "timestamp", "type")


def inbound_kept(msg: InboundMessage, *, for_staff: bool) -> dict[str, Any]:
    """What a turn stores of an inbound message: all of it (`inbound_content` then drops
    Meta's ids), or, for media nobody from support will see (`for_staff`), its envelope."""
    if msg.is_media and not for_staff:
        return {k: msg.raw[k] for k in ENVELOPE if k in msg.raw}
    return msg.raw


def inbound_content(raw: dict[str, Any]) -> dict[str, Any]:
    """An inbound message as stored and exported: as Meta sent it, without Meta's message
    ids. The sender's own number (`from`) and everything they sent stay: it is theirs."""
    content = dict(raw)
    for part, key in META_MESSAGE_IDS:
        if part is None:
            content.pop(key, None)
        elif isinstance(inner := content.get(part), dict) and key in inner:
            content[part] = {k: v for k, v in inner.items() if k != key}
    return content


def message_row(
    dk: DataKey,
    contact_id: str | None,
    direction: str,
    kind: str,
    content: dict[str, Any],
    status: str,
    now: float,
    *,
    category: str = "service",
    leased: bool = True,
) -> dict[str, Any]:
    """`leased`: the writing worker sends it itself; otherwise any worker may claim it.
    Inbound content is kept without Meta's message ids (`inbound_content`)."""
    if direction == "in":
        content = inbound_content(content)
    mid = uuid.uuid4().hex
    return {
        "id": mid,
        "contact_id": contact_id,
        "direction": direction,
        "kind": kind[:24],
        "category": category,
        "body": seal(dk, orjson.dumps(content), f"messages/body/{mid}"),
        "wamid_index": None,
        "status": status,
        "error_code": None,
        "error_title": None,
        "attempts": 0,
        "next_attempt_at": None,
        "created_at": now,
        "updated_at": now,
        "lease_owner": None,
        "lease_until": now + message_store.LEASE if direction == "out" and leased else None,
    }
