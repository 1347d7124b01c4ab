"""A signed delivery's body into the inbox rows the bot keeps: decode, parse, screen, seal.

Bad input must never cost a message, nor stall the server:

- A body that is not JSON, nests deeper than the parsers go, or carries a number no
  float holds is refused whole (`PayloadError`, answered 400): nothing in it is usable.
- Everything else is judged event by event (`screen`): an event for another business
  number, or with no number at all, is ignored; a timestamp no Unix time can be (below 0,
  beyond what the inbox stores) is replaced by the time of receipt, so one absurd field
  neither loses the message nor the messages beside it; a message older than Meta's retry
  window is a replay and makes no turn; an event nested too deeply to be stored is dropped.
  Each is counted, never stored.
- Parsing and sealing are linear in the number of events, and a large body is taken in
  on a thread (`take_in`), so the event loop keeps answering (`/healthz`, other deliveries).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from bot.crypto import DataKey, Keyring
from bot.runtime.inbox import sealed_rows
from bot.whatsapp.events import (
    Event,
    InboundMessage,
    ParsedDelivery,
    PayloadError,
    ValueErrors,
    event_to_slice,
    parse_webhook,
)

OFF_LOOP_BYTES = 64 * 1024  # bodies above this are parsed and sealed on a thread
MAX_META_TS = 2**31 - 1  # the largest timestamp the inbox's `meta_ts` holds on both databases
REPLAY_WINDOW = 7 * 86400  # Meta retries a delivery for up to 7 days; older is a replay


@dataclass
class Intake:
    """What one delivery leaves to store, and what was seen in it (counts by kind)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    contacts: set[str] = field(default_factory=set)
    seen: Counter[str] = field(default_factory=Counter)
    meta_errors: list[int | None] = field(default_factory=list)


def load_json(body: bytes) -> Any:
    """Parse a body the way Meta may write it.

    orjson is fast but refuses escaped lone surrogates ("\\ud83d" cut from its
    pair) and numbers beyond a double; a delivery carrying one is still real, so
    it is read with the standard library and the strays replaced with U+FFFD.
    Nesting too deep for either parser, or an integer no float can hold, is no
    WhatsApp payload: `PayloadError` (and not the RecursionError or OverflowError
    that would have been a 500).
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return _scrub(json.loads(body))
    except RecursionError:
        raise PayloadError("JSON nested too deeply") from None


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        try:
            return float(value)
        except OverflowError:
            raise PayloadError("number too large") from None
    return value


def parse_body(body: bytes) -> ParsedDelivery:
    """The decoded body's events and the count of unusable items; `PayloadError` with
    the reason when the body is not a WhatsApp payload at all."""
    try:
        return parse_webhook(load_json(body))
    except PayloadError:
        raise
    except ValueError:  # not JSON, not UTF-8, or an integer of more digits than Python reads
        raise PayloadError("body is not JSON") from None


def screen(events: list[Event], our_number: str, now: float, seen: Counter[str]) -> list[Event]:
    """The events to keep; what is set aside is counted in `seen` (see the module)."""
    kept: list[Event] = []
    oldest = now - REPLAY_WINDOW
    for event in events:
        if getattr(event, "phone_number_id", our_number) != our_number:
            seen["other_number"] += 1
            continue
        stamp = getattr(event, "timestamp", None)
        if stamp is not None and not 0 <= stamp <= MAX_META_TS:
            seen["timestamp_clamped"] += 1
            event = dataclasses.replace(event, timestamp=int(now))  # type: ignore[type-var]
        if isinstance(event, InboundMessage) and 0 < event.timestamp < oldest:
            seen["replay_ignored"] += 1
            continue
        kept.append(event)
    return kept


def _take_in(
    body: bytes, keyring: Keyring, inbox_key: DataKey, our_number: str, now: float
) -> Intake:
    delivery = parse_body(body)
    intake = Intake()
    if delivery.skipped:
        intake.seen["skipped"] += delivery.skipped
    events = screen(delivery.events, our_number, now, intake.seen)
    for event in events:
        intake.seen[type(event).__name__] += 1
        if isinstance(event, ValueErrors):
            intake.meta_errors += [e.code for e in event.errors]
    try:
        intake.rows, intake.contacts = sealed_rows(keyring, inbox_key, events, now)
    except orjson.JSONEncodeError:  # an event nested deeper than its slice can be written
        writable = [event for event in events if _writable(event)]
        intake.seen["unwritable"] += len(events) - len(writable)
        intake.rows, intake.contacts = sealed_rows(keyring, inbox_key, writable, now)
    return intake


def _writable(event: Event) -> bool:
    """Whether the event's slice can be stored (orjson writes 255 levels, reads 1,024)."""
    try:
        event_to_slice(event)
    except orjson.JSONEncodeError:
        return False
    return True


async def take_in(
    body: bytes, keyring: Keyring, inbox_key: DataKey, our_number: str, now: float
) -> Intake:
    """Parse, screen and seal a delivery; on a thread when it is large, so that a
    delivery of thousands of messages does not hold the event loop for its whole parse."""
    if len(body) < OFF_LOOP_BYTES:
        return _take_in(body, keyring, inbox_key, our_number, now)
    return await asyncio.to_thread(_take_in, body, keyring, inbox_key, our_number, now)
