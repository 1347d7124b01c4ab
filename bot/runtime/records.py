"""Sealed rows for the store: a message, a new contact with their own data key.

Shared by the turn (replies to a person) and business-initiated sends, so a
row is sealed and bound to its place the same way whoever writes it.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from bot.crypto import DataKey, WrappedKey, seal
from bot.store import messages as message_store


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
    """`leased`: the writing worker sends it itself; otherwise any worker may claim it."""
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


def new_contact(
    dk: DataKey,
    wrapped: WrappedKey,
    contact_id: str,
    *,
    phone_index: str | None,
    user_index: str | None,
    e164: str | None,
    user_id: str | None,
    name: str | None,
    now: float,
    last_inbound_at: float | None,
) -> dict[str, Any]:
    def sealed(column: str, value: str | None) -> bytes | None:
        if value is None:
            return None
        return seal(dk, value.encode(), f"contacts/{column}/{contact_id}")

    return {
        "key": {"id": dk.key_id, "kid": wrapped.kid, "wrapped": wrapped.wrapped, "created_at": now},
        "contact": {
            "id": contact_id,
            "phone_index": phone_index,
            "user_index": user_index,
            "data_key_id": dk.key_id,
            "phone_sealed": sealed("phone", e164),
            "user_id_sealed": sealed("user_id", user_id),
            "name_sealed": sealed("name", name),
            "created_at": now,
            "last_inbound_at": last_inbound_at,
        },
    }
