"""Typed events from WhatsApp Cloud API webhook bodies: the names the rest of the bot uses.

The package keeps them in four modules, each about one thing:

- `event_types`: the frozen dataclasses (`InboundMessage`, `StatusUpdate`, `Party` ...);
- `event_parse`: `parse_webhook`, one delivery's body into its ordered events, and the rules
  of tolerance for Meta's loose payloads;
- `event_items`: one message, status or preference item into its event (content by message
  type, the sender's contact, ids, numbers and timestamps);
- `event_slices`: one event as the JSON slice it was built from, and back (the inbox stores
  slices, so a delivery is parsed once).
"""

from __future__ import annotations

from bot.whatsapp.event_parse import WHATSAPP_OBJECT, parse_webhook
from bot.whatsapp.event_slices import event_from_slice, event_to_slice
from bot.whatsapp.event_types import (
    Event,
    InboundMessage,
    MetaError,
    ParsedDelivery,
    Party,
    PayloadError,
    PreferenceUpdate,
    StatusUpdate,
    Unhandled,
    ValueErrors,
)

__all__ = [
    "WHATSAPP_OBJECT",
    "Event",
    "InboundMessage",
    "MetaError",
    "ParsedDelivery",
    "Party",
    "PayloadError",
    "PreferenceUpdate",
    "StatusUpdate",
    "Unhandled",
    "ValueErrors",
    "event_from_slice",
    "event_to_slice",
    "parse_webhook",
]
