"""A message as the store holds it: its content sealed with the person's key.

Shared by the turn (replies to a person) and business-initiated sends, so a
row is sealed and bound to its place the same way whoever writes it. (A new
contact's rows are `bot.privacy.person`'s.)
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from bot.crypto import DataKey, seal
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
