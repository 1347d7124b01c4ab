"""Typed events from WhatsApp Cloud API webhook bodies: the names the rest of the bot uses.

The package keeps them in three modules, each about one thing:

- `event_types`: the frozen dataclasses (`InboundMessage`, `StatusUpdate`, `Party` ...);
- `event_parse`: `parse_webhook`, one delivery's body into its ordered events, and the rules
  of tolerance for Meta's loose payloads;
- `event_items`: one message, status or preference item into its event (content by message
  type, the sender's contact, ids, numbers and timestamps).
"""

from __future__ import annotations

from bot.whatsapp.event_parse import WHATSAPP_OBJECT, parse_webhook
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
    "parse_webhook",
]
