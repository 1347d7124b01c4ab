"""The typed events a WhatsApp Cloud API webhook delivers, as the bot sees them.

`event_parse.parse_webhook` builds them from a delivery's body, `event_slices` stores one
and rebuilds it; `events` re-exports everything for the rest of the bot.

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

from dataclasses import dataclass
from typing import Any

from bot.errors import BotError

_NOT_A_TURN = frozenset({"system", "reaction"})
# What a person can send that is not text and that the bot cannot read: a picture, a voice
# note, a video, a file, a sticker, a shared location, contact cards.
MEDIA_TYPES = frozenset({"image", "audio", "video", "document", "sticker", "location", "contacts"})


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

    @property
    def is_media(self) -> bool:
        """True for a picture, voice note, video, file, sticker, location or contact cards:
        content the bot does not read (a caption included), so it keeps only the type."""
        return self.type in MEDIA_TYPES


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
