"""What the bot remembers about a person between turns, sealed with their key.

Flow state and slots, the chosen language and the stated residence are
personal data like the rest, so they live in one sealed blob on the contact
row instead of readable columns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from bot.crypto import DataKey, open_sealed, seal


@dataclass
class Profile:
    """`state` None: at the start (the flows' home), as for someone new or handed back."""

    state: str | None = None
    since: float = 0.0
    slots: dict[str, Any] = field(default_factory=dict)
    language: str | None = None
    residence: tuple[str, str | None] | None = None

    def seal(self, dk: DataKey, contact_id: str) -> bytes:
        return seal(dk, orjson.dumps(asdict(self)), f"contacts/profile/{contact_id}")

    @classmethod
    def open(cls, dk: DataKey, contact_id: str, blob: bytes | None) -> Profile:
        if not blob:
            return cls()
        data = orjson.loads(open_sealed(dk, blob, f"contacts/profile/{contact_id}"))
        residence = data.get("residence")
        return cls(
            state=data.get("state") or None,
            since=float(data.get("since") or 0.0),
            slots=dict(data.get("slots") or {}),
            language=data.get("language"),
            residence=(residence[0], residence[1]) if residence else None,
        )
