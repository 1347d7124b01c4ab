"""A fake of Meta's WhatsApp Cloud Graph API, served over real HTTP on loopback.

It is the project's only fake of Meta: the bot's tests, the benchmark and the local simulator all
talk to it over HTTP, so the bot's real HTTP client, retry and error handling are exercised. The
response bodies copy the shapes of captured Meta responses (see `meta-samples/graph/`), errors
included, and faults (rate limits, 5xx, dropped connections, slow answers) can be queued from the
test's process (`FakeGraph.fail_next`) or from another process (`POST /_fake/faults`).

Run it on its own with `python -m bot.simulator.fake_graph --port 8799 --phone-number-id ID`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import signal
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import orjson
from quart import Blueprint, Quart, Response, request, url_for

logger = logging.getLogger(__name__)

JSON_TYPE = "application/json; charset=UTF-8"
MAX_TEXT = 4096
GRAPH_VERSION = re.compile(r"v\d+\.\d+")
PHONE = re.compile(r"\+?\d{1,20}")
HTTP_FAULTS = frozenset({"500", "502", "503"})
PDT = timezone(timedelta(hours=-7))
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


# --------------------------------------------------------------------------- records


@dataclass(slots=True)
class RecordedRequest:
    """One request as the fake saw it, so tests can assert on what the bot really sent."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    json: Any | None
    status: int  # 0 when the connection was dropped on purpose
    at: float = field(default_factory=time.time)


@dataclass(slots=True)
class SentMessage:
    """A message send that the fake accepted (read receipts are not sends)."""

    wamid: str
    to: str
    body: dict[str, Any]
    index: int
    at: float


@dataclass(slots=True)
class _Reply:
    """An HTTP answer decided by the fake, independent of the web framework."""

    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: dict[str, str] | None = None
    disconnect: bool = False


@dataclass(frozen=True, slots=True)
class _Fault:
    """A queued failure; `to_key` limits it to one recipient."""

    kind: str  # "code", "http", "disconnect" or "slow"
    value: int | float
    to_key: str | None


@dataclass(frozen=True, slots=True)
class _MetaError:
    """What Meta documents for an error code: HTTP status, title and the usual details."""

    status: int
    title: str
    details: str
    subcode: int | None = None


# Titles and HTTP statuses follow Meta's Cloud API error-code table. Subcodes appear only where a
# captured response carries one (130429, 131056).
META_ERRORS: dict[int, _MetaError] = {
    1: _MetaError(
        400,
        "API Unknown",
        "Invalid request or possible server error.",
    ),
    2: _MetaError(
        503,
        "Service temporarily unavailable",
        "Temporary due to downtime or due to being overloaded.",
    ),
    3: _MetaError(
        500,
        "API Method",
        "Capability or permissions issue.",
    ),
    4: _MetaError(
        400,
        "Application request limit reached",
        "The app has reached its API call rate limit.",
    ),
    10: _MetaError(
        403,
        "Permission denied",
        "Permission is either not granted or has been removed.",
    ),
    100: _MetaError(
        400,
        "Invalid parameter",
        "Invalid parameter.",
    ),
    368: _MetaError(
        403,
        "Temporarily blocked for policies violations",
        "The WhatsApp Business Account associated with the app has been restricted or disabled "
        "for violating a platform policy.",
    ),
    80007: _MetaError(
        400,
        "Rate limit issues",
        "The WhatsApp Business Account has reached its rate limit.",
    ),
    130429: _MetaError(
        400,
        "Rate limit hit",
        "Cloud API message throughput has been reached.",
        2494055,
    ),
    131000: _MetaError(
        500,
        "Something went wrong",
        "Message failed to send due to an unknown error.",
    ),
    131005: _MetaError(
        403,
        "Access denied",
        "Permission is either not granted or has been removed.",
    ),
    131008: _MetaError(
        400,
        "Required parameter is missing",
        "The request is missing a required parameter.",
    ),
    131009: _MetaError(
        400,
        "Parameter value is not valid",
        "One or more parameter values are invalid.",
    ),
    131016: _MetaError(
        503,
        "Service unavailable",
        "A service is temporarily unavailable.",
    ),
    131021: _MetaError(
        400,
        "Recipient cannot be sender",
        "Sender and recipient phone number is the same.",
    ),
    131026: _MetaError(
        400,
        "Message undeliverable",
        "Unable to deliver message. The recipient may not be a WhatsApp user or may not have "
        "accepted the latest terms.",
    ),
    131031: _MetaError(
        403,
        "Account has been locked",
        "The WhatsApp Business Account associated with the app has been restricted or disabled "
        "for violating a platform policy.",
    ),
    131042: _MetaError(
        400,
        "Business eligibility payment issue",
        "Message failed to send because there were one or more errors related to your payment "
        "method.",
    ),
    131047: _MetaError(
        400,
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer last "
        "replied to this number.",
    ),
    131048: _MetaError(
        400,
        "Spam rate limit hit",
        "Message failed to send because there are restrictions on how many messages can be sent"
        " from this phone number.",
    ),
    131049: _MetaError(
        400,
        "This message was not delivered to maintain healthy ecosystem engagement.",
        "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.",
    ),
    131050: _MetaError(
        400,
        "Unable to deliver the message",
        "This recipient has chosen to stop receiving marketing messages on WhatsApp from your "
        "business.",
    ),
    131051: _MetaError(
        400,
        "Unsupported message type",
        "Unsupported message type.",
    ),
    131052: _MetaError(
        400,
        "Media download error",
        "Unable to download the media sent by the user.",
    ),
    131053: _MetaError(
        400,
        "Media upload error",
        "Unable to upload the media used in the message.",
    ),
    131056: _MetaError(
        400,
        "(Business Account, Consumer Account) pair rate limit hit",
        "Message failed to send because there were too many messages sent from this phone "
        "number to the same phone number in a short period of time.",
        2494071,
    ),
    132000: _MetaError(
        400,
        "Template Param Count Mismatch",
        "The number of variable parameter values included in the request did not match the "
        "number of variable parameters defined in the template.",
    ),
    132001: _MetaError(
        404,
        "Template does not exist",
        "The template does not exist in the specified language or the template has not been "
        "approved.",
    ),
    132015: _MetaError(
        400,
        "Template is Paused",
        "Template is paused due to low quality so it cannot be sent in a template message.",
    ),
    132016: _MetaError(
        400,
        "Template is Disabled",
        "Template has been paused too many times due to low quality and is now permanently "
        "disabled.",
    ),
    133010: _MetaError(
        400,
        "Phone number Not Registered",
        "The phone number is not registered on the WhatsApp Business Platform.",
    ),
}


# --------------------------------------------------------------------------- bodies


def _trace_id() -> str:
    """A fresh `fbtrace_id` in Meta's alphabet and length (23 url-safe base64 characters)."""
    return "A" + base64.urlsafe_b64encode(os.urandom(17)).decode()[:22]


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, orjson.dumps(payload), headers=headers)


def _error(status: int, **error: Any) -> _Reply:
    """Graph's error envelope; `None` values are dropped so optional keys stay absent."""
    body = {k: v for k, v in error.items() if v is not None}
    body["fbtrace_id"] = _trace_id()
    return _json(status, {"error": body})


def invalid_parameter(details: str) -> _Reply:
    """Meta's `(#100) Invalid parameter` answer (no subcode since v16)."""
    return _error(
        400,
        message="(#100) Invalid parameter",
        type="OAuthException",
        code=100,
        error_data={"messaging_product": "whatsapp", "details": details},
    )


def meta_error(code: int) -> _Reply:
    """The body and HTTP status Meta uses for a Cloud API error code."""
    if code == 190:
        return expired_token(time.time() - 3600)
    known = META_ERRORS.get(code) or _MetaError(400, "Error", "An error occurred.")
    return _error(
        known.status,
        message=f"(#{code}) {known.title}",
        type="OAuthException",
        code=code,
        error_data={"messaging_product": "whatsapp", "details": known.details},
        error_subcode=known.subcode,
    )


def invalid_token() -> _Reply:
    message = "Invalid OAuth access token - Cannot parse access token"
    reply = _error(401, message=message, type="OAuthException", code=190)
    reply.headers = {"WWW-Authenticate": f'OAuth "Facebook Platform" "invalid_token" "{message}"'}
    return reply


def expired_token(expired_at: float) -> _Reply:
    """190/463 as Meta words it, with real dates in Meta's (Pacific) format."""
    fmt = "%A, %d-%b-%y %H:%M:%S PDT"
    then = datetime.fromtimestamp(expired_at, PDT).strftime(fmt)
    now = datetime.now(PDT).strftime(fmt)
    message = (
        f"Error validating access token: Session has expired on {then}. The current time is {now}."
    )
    reply = _error(401, message=message, type="OAuthException", code=190, error_subcode=463)
    reply.headers = {"WWW-Authenticate": f'OAuth "Facebook Platform" "invalid_token" "{message}"'}
    return reply


def unknown_object(method: str, object_id: str) -> _Reply:
    """100/33: an id that does not exist or that this token may not use."""
    message = (
        f"Unsupported {method} request. Object with ID '{object_id}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation. Please read the "
        "Graph API documentation at https://developers.facebook.com/docs/graph-api"
    )
    return _error(400, message=message, type="GraphMethodException", code=100, error_subcode=33)


def unknown_path(rest: str) -> _Reply:
    message = f"Unknown path components: /{rest}"
    return _error(400, message=message, type="OAuthException", code=2500)


def http_fault(status: int) -> _Reply:
    """Meta's transient 500 body, or the plain-text answer of its edge for 502/503."""
    if status == 500:
        return _error(
            500,
            message="An unknown error occurred",
            type="OAuthException",
            code=1,
            is_transient=True,
        )
    text = {502: "502 Bad Gateway", 503: "503 Service Unavailable"}[status]
    return _Reply(status, text.encode(), content_type="text/plain; charset=utf-8")


# --------------------------------------------------------------------------- ids


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def new_wamid(recipient: str) -> str:
    """A wamid built like Meta's: a base64 Thrift struct holding the recipient and a random id.

    Real outgoing ids decode to `1c 18 <len> <digits> 15 02 00 11 18 12 <18 hex chars> 00`.
    """
    key = recipient.encode()
    raw = (
        b"\x1c\x18"
        + _varint(len(key))
        + key
        + b"\x15\x02\x00\x11\x18\x12"
        + os.urandom(9).hex().upper().encode()
        + b"\x00"
    )
    return "wamid." + base64.b64encode(raw).decode()


def recipient_key(value: str) -> str:
    """How recipients are compared: digits only for phone numbers, as-is for BSUIDs."""
    plain = value[1:] if value.startswith("+") else value
    if plain.isdigit():
        return plain
    if any(c.isalpha() for c in value):
        return value.strip()
    return "".join(c for c in value if c.isdigit())


# --------------------------------------------------------------------------- validation

Validator = Callable[[dict[str, Any]], str | None]


def _text_error(label: str, value: Any, limit: int, *, required: bool = True) -> str | None:
    """Details for a missing, non-string or too long text field, else None."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        return f"Param {label} is required and must be a non-empty string."
    if len(value) > limit:
        return f"Param {label} must be at most {limit} characters long."
    return None


def _sub(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _check_text(p: dict[str, Any]) -> str | None:
    return _text_error("text['body']", p.get("body"), MAX_TEXT)


def _check_media(p: dict[str, Any]) -> str | None:
    if not (p.get("id") or p.get("link")):
        return "Param id or link is required for a media message."
    return None


def _check_template(p: dict[str, Any]) -> str | None:
    if not isinstance(p.get("name"), str) or not p["name"]:
        return "Param template['name'] is required."
    code = _sub(p.get("language"), "code")
    if not isinstance(code, str) or not code:
        return "Param template['language']['code'] is required."
    return None


def _check_reaction(p: dict[str, Any]) -> str | None:
    if not isinstance(p.get("message_id"), str) or not isinstance(p.get("emoji"), str):
        return "Param reaction requires message_id and emoji."
    return None


def _check_location(p: dict[str, Any]) -> str | None:
    for key in ("latitude", "longitude"):
        try:
            float(p[key])
        except (KeyError, TypeError, ValueError):
            return f"Param location['{key}'] is required and must be a number."
    return None


def _check_frame(p: dict[str, Any], body_limit: int) -> str | None:
    """Body, header and footer limits shared by reply buttons and lists."""
    error = _text_error("interactive['body']['text']", _sub(p.get("body"), "text"), body_limit)
    if error:
        return error
    header = p.get("header")
    if _sub(header, "type") == "text":
        error = _text_error("interactive['header']['text']", _sub(header, "text"), 60)
    footer = p.get("footer")
    if not error and footer is not None:
        error = _text_error("interactive['footer']['text']", _sub(footer, "text"), 60)
    return error


def _check_buttons(p: dict[str, Any]) -> str | None:
    buttons = _sub(p.get("action"), "buttons")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        return "Param interactive['action']['buttons'] must have between 1 and 3 buttons."
    seen: set[str] = set()
    for i, button in enumerate(buttons):
        reply = _sub(button, "reply")
        label = f"interactive['action']['buttons'][{i}]['reply']"
        error = _text_error(f"{label}['title']", _sub(reply, "title"), 20) or _text_error(
            f"{label}['id']", _sub(reply, "id"), 256
        )
        if error:
            return error
        if reply["id"] in seen:
            return f"Duplicate button id '{reply['id']}'. Button ids must be unique."
        seen.add(reply["id"])
    return _check_frame(p, 1024)


def _check_rows(sections: list[Any]) -> str | None:
    total, seen = 0, set()
    for s, section in enumerate(sections):
        rows = _sub(section, "rows")
        if not isinstance(rows, list) or not rows:
            return f"Param interactive['action']['sections'][{s}]['rows'] must not be empty."
        title = _sub(section, "title")
        error = _text_error(f"sections[{s}]['title']", title, 24, required=len(sections) > 1)
        if error:
            return error
        for r, row in enumerate(rows):
            label = f"sections[{s}]['rows'][{r}]"
            error = (
                _text_error(f"{label}['id']", _sub(row, "id"), 200)
                or _text_error(f"{label}['title']", _sub(row, "title"), 24)
                or _text_error(
                    f"{label}['description']", _sub(row, "description"), 72, required=False
                )
            )
            if error:
                return error
            if row["id"] in seen:
                return f"Duplicate row id '{row['id']}'. Row ids must be unique."
            seen.add(row["id"])
        total += len(rows)
    if total > 10:
        return f"Total row count exceed max allowed count: 10 (got {total})."
    return None


def _check_list(p: dict[str, Any]) -> str | None:
    action = p.get("action")
    error = _text_error("interactive['action']['button']", _sub(action, "button"), 20)
    if error:
        return error
    sections = _sub(action, "sections")
    if not isinstance(sections, list) or not 1 <= len(sections) <= 10:
        return "Param interactive['action']['sections'] must have between 1 and 10 sections."
    return _check_rows(sections) or _check_frame(p, MAX_TEXT)


INTERACTIVE_CHECKS: dict[str, Validator | None] = {
    "button": _check_buttons,
    "list": _check_list,
    "cta_url": None,
    "flow": None,
    "product": None,
    "product_list": None,
    "location_request_message": None,
    "address_message": None,
    "call_permission_request": None,
}


def _check_interactive(p: dict[str, Any]) -> str | None:
    kind = p.get("type")
    if kind not in INTERACTIVE_CHECKS:
        return f"Param interactive['type'] must be one of {sorted(INTERACTIVE_CHECKS)}."
    check = INTERACTIVE_CHECKS[kind]
    return check(p) if check else None


MESSAGE_CHECKS: dict[str, Validator] = {
    "text": _check_text,
    "template": _check_template,
    "interactive": _check_interactive,
    "image": _check_media,
    "audio": _check_media,
    "video": _check_media,
    "document": _check_media,
    "sticker": _check_media,
    "reaction": _check_reaction,
    "location": _check_location,
}


def _check_recipient(body: dict[str, Any]) -> str | None:
    to = body.get("to")
    if to is None:
        recipient = body.get("recipient")
        if isinstance(recipient, str) and recipient.strip():
            return None
        return "The parameter to is required."
    if not isinstance(to, str) or not PHONE.fullmatch(to):
        return "Param to must be a phone number: digits, optionally with a leading '+'."
    return None


def validate_send(body: dict[str, Any]) -> str | None:
    """Why Meta would refuse this message send, as `error_data.details`, or None if valid."""
    if body.get("messaging_product") != "whatsapp":
        return "Param messaging_product must be 'whatsapp'."
    error = _check_recipient(body)
    if error:
        return error
    kind = body.get("type")
    if kind == "contacts":
        contacts = body.get("contacts")
        ok = isinstance(contacts, list) and contacts and all(isinstance(c, dict) for c in contacts)
        return None if ok else "Param contacts must be a non-empty list of contact objects."
    check = MESSAGE_CHECKS.get(kind) if isinstance(kind, str) else None
    if check is None:
        return f"Param type must be one of {[*MESSAGE_CHECKS, 'contacts']}."
    payload = body.get(kind)
    if not isinstance(payload, dict):
        return f"Param {kind} is required for a message of type {kind}."
    return check(payload)


def _check_read(body: dict[str, Any]) -> str | None:
    if not isinstance(body.get("message_id"), str) or not body["message_id"]:
        return "The parameter message_id is required."
    indicator = body.get("typing_indicator")
    if indicator is not None and _sub(indicator, "type") != "text":
        return "Param typing_indicator['type'] must be 'text'."
    return None


# --------------------------------------------------------------------------- the fake


def parse_fault(fault: int | str) -> tuple[str, int | float]:
    """Turn a `fail_next` fault spec into (kind, value); raises ValueError on nonsense."""
    if isinstance(fault, bool):
        raise ValueError(f"unknown fault {fault!r}")
    if isinstance(fault, int):
        return "code", fault
    text = str(fault).strip()
    if text in HTTP_FAULTS:
        return "http", int(text)
    if text == "disconnect":
        return "disconnect", 0
    if text.startswith("slow:"):
        seconds = float(text[5:])
        if seconds < 0:
            raise ValueError("slow delay must be >= 0")
        return "slow", seconds
    if text.isdigit():
        return "code", int(text)
    raise ValueError(f"unknown fault {fault!r}")


class FakeGraph:
    """State and behaviour of the fake Graph API; HTTP routing lives in `create_blueprint`."""

    def __init__(
        self,
        *,
        phone_number_id: str,
        tokens: Iterable[str] = ("test-token",),
        app_secret: str | None = None,
        webhook_url: str | None = None,
        send_statuses: bool = False,
        waba_id: str = "102290129340398",
        display_phone_number: str = "15550783881",
        status_delay: float = 0.05,
        max_requests: int = 100_000,
    ) -> None:
        self.phone_number_id = phone_number_id
        self.tokens: set[str] = set(tokens)
        self.app_secret = app_secret
        self.webhook_url = webhook_url
        self.send_statuses = send_statuses
        self.waba_id = waba_id
        self.display_phone_number = display_phone_number
        self.status_delay = status_delay
        self.max_requests = max_requests
        self.requests: list[RecordedRequest] = []
        self.sent: list[SentMessage] = []
        self.media: dict[str, tuple[bytes, str, str]] = {}
        self._expired: dict[str, float] = {}
        self._faults: deque[_Fault] = deque()
        self._issued: dict[str, SentMessage] = {}
        self._by_recipient: dict[str, list[SentMessage]] = {}
        self._conversations: dict[str, str] = {}
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    # ---- control (same process)

    def fail_next(self, fault: int | str, times: int = 1, *, to: str | None = None) -> None:
        """Queue `times` failures for the next message sends (optionally only those to `to`).

        Read receipts never consume a fault, so a test can aim failures at the bot's replies.
        """
        if times < 0:
            raise ValueError("times must be >= 0")
        kind, value = parse_fault(fault)
        key = recipient_key(to) if to is not None else None
        self._faults.extend(_Fault(kind, value, key) for _ in range(times))

    def expire_token(self, token: str) -> None:
        """From now on `token` gets Meta's 190/463 "Session has expired" answer."""
        self._expired.setdefault(token, time.time())

    def messages_for(self, to: str, after: int = -1) -> list[SentMessage]:
        """Sends to `to` (digits compared, '+' ignored) whose index is greater than `after`."""
        sent = self._by_recipient.get(recipient_key(to), [])
        start = bisect.bisect_right(sent, after, key=lambda m: m.index)
        return sent[start:]

    async def wait_for_sent(
        self,
        count: int,
        timeout: float = 10.0,  # noqa: ASYNC109 - part of the agreed interface
    ) -> list[SentMessage]:
        """Wait until at least `count` messages were sent; raises TimeoutError otherwise."""
        if len(self.sent) < count:
            waiter = (count, asyncio.get_running_loop().create_future())
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(timeout):
                    await waiter[1]
            except TimeoutError:
                raise TimeoutError(
                    f"only {len(self.sent)} of {count} messages sent within {timeout}s"
                ) from None
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
        return list(self.sent)

    def reset(self) -> None:
        """Forget everything a test did: requests, sends, faults, media and expired tokens."""
        self.requests.clear()
        self.sent.clear()
        self.media.clear()
        self._faults.clear()
        self._expired.clear()
        self._issued.clear()
        self._by_recipient.clear()
        self._conversations.clear()

    async def aclose(self) -> None:
        """Stop pending status webhooks and close the shared HTTP client."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None and self._client_loop is asyncio.get_running_loop():
            await client.aclose()

    # ---- bookkeeping

    @property
    def pending_faults(self) -> int:
        """How many queued faults have not been used yet."""
        return len(self._faults)

    def record(
        self, method: str, path: str, headers: dict[str, str], body: Any, status: int
    ) -> None:
        """Remember a request; old ones are dropped in chunks so appends stay O(1) amortised."""
        self.requests.append(RecordedRequest(method, path, headers, body, status))
        if len(self.requests) > self.max_requests + 1000:
            del self.requests[: len(self.requests) - self.max_requests]

    def sent_since(self, after: int = -1) -> list[SentMessage]:
        """All sends with index > after (indexes are positions in `sent`)."""
        return self.sent[max(after + 1, 0) :]

    def _take_fault(self, key: str | None) -> _Fault | None:
        for i, fault in enumerate(self._faults):
            if fault.to_key is None or fault.to_key == key:
                del self._faults[i]
                return fault
        return None

    def _accept(self, to: str, key: str, body: dict[str, Any]) -> SentMessage:
        wamid = new_wamid(key)
        while wamid in self._issued:
            wamid = new_wamid(key)
        message = SentMessage(wamid, to, body, len(self.sent), time.time())
        self.sent.append(message)
        self._issued[wamid] = message
        self._by_recipient.setdefault(key, []).append(message)
        if self._waiters:
            self._wake_waiters()
        return message

    def _wake_waiters(self) -> None:
        for count, future in self._waiters:
            if count <= len(self.sent) and not future.done():
                loop = future.get_loop()
                try:
                    running = asyncio.get_running_loop()
                except RuntimeError:
                    running = None
                if loop is running:
                    future.set_result(None)
                else:
                    loop.call_soon_threadsafe(_resolve, future)

    # ---- request handling (framework independent)

    def authenticate(self, token: str | None) -> _Reply | None:
        """None if the token may call the API, else Meta's 401 answer."""
        if token is not None and token in self._expired:
            return expired_token(self._expired[token])
        if token is None or token not in self.tokens:
            return invalid_token()
        return None

    def _precheck(self, version: str, rest: str, token: str | None) -> _Reply | None:
        """Graph checks the path, then the token."""
        if not GRAPH_VERSION.fullmatch(version):
            return unknown_path(f"{version}/{rest}")
        return self.authenticate(token)

    async def handle_messages(
        self, version: str, phone_number_id: str, raw: bytes, token: str | None
    ) -> tuple[_Reply, Any]:
        """`POST /{version}/{phone-number-id}/messages`: returns the reply and the parsed body."""
        early = self._precheck(version, f"{phone_number_id}/messages", token)
        if early is None and phone_number_id != self.phone_number_id:
            early = unknown_object("post", phone_number_id)
        if early is not None:
            return early, None
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return invalid_parameter("The request body is not valid JSON."), None
        if not isinstance(body, dict):
            return invalid_parameter("The request body must be a JSON object."), body
        if body.get("status") is not None:
            return self._mark_read(body), body
        return await self._send(body), body

    def _mark_read(self, body: dict[str, Any]) -> _Reply:
        if body.get("messaging_product") != "whatsapp":
            return invalid_parameter("Param messaging_product must be 'whatsapp'.")
        if body.get("status") != "read":
            return invalid_parameter("Param status must be 'read'.")
        error = _check_read(body)
        if error:
            return invalid_parameter(error)
        message_id = body["message_id"]
        if message_id in self._issued:
            return invalid_parameter(
                f"Message supplied to mark message as read API with message ID: {message_id} "
                "is outgoing. Please use an incoming message ID."
            )
        return _json(200, {"success": True})

    async def _send(self, body: dict[str, Any]) -> _Reply:
        to = body.get("to")
        given = to if isinstance(to, str) else body.get("recipient")
        given = given if isinstance(given, str) else ""
        key = recipient_key(given)
        if self._faults:
            fault = self._take_fault(key)
            if fault is not None:
                if fault.kind != "slow":
                    return _fault_reply(fault)
                await asyncio.sleep(fault.value)
        error = validate_send(body)
        if error:
            return invalid_parameter(error)
        message = self._accept(given, key, body)
        self._schedule_statuses(message, key)
        return _json(200, _success_body(message, key, is_phone=isinstance(to, str)))

    def handle_upload(
        self,
        version: str,
        phone_number_id: str,
        token: str | None,
        form: dict[str, str],
        file: tuple[bytes, str, str] | None,
    ) -> _Reply:
        """`POST /{version}/{phone-number-id}/media` (multipart): store and return a media id."""
        early = self._precheck(version, f"{phone_number_id}/media", token)
        if early is None and phone_number_id != self.phone_number_id:
            early = unknown_object("post", phone_number_id)
        if early is not None:
            return early
        if form.get("messaging_product") != "whatsapp":
            return invalid_parameter("The parameter messaging_product is required.")
        if file is None:
            return invalid_parameter("The parameter file is required.")
        content, mime, filename = file
        media_id = str(secrets.randbelow(9 * 10**15) + 10**15)
        self.media[media_id] = (content, form.get("type") or mime, filename)
        return _json(200, {"id": media_id})

    def handle_object(
        self, method: str, version: str, object_id: str, token: str | None, media_url: str
    ) -> _Reply:
        """`GET`/`DELETE /{version}/{id}`: media metadata or delete, or the phone number."""
        early = self._precheck(version, object_id, token)
        if early is not None:
            return early
        if object_id in self.media and method == "GET":
            content, mime, _ = self.media[object_id]
            return _json(200, _media_body(object_id, content, mime, media_url))
        if object_id in self.media and method == "DELETE":
            del self.media[object_id]
            return _json(200, {"success": True})
        if object_id == self.phone_number_id and method == "GET":
            return _json(200, self._phone_body())
        return unknown_object(method.lower(), object_id)

    def handle_download(self, media_id: str, token: str | None) -> _Reply:
        """The media URL itself: raw bytes, only with a valid token (as Meta's lookaside)."""
        early = self.authenticate(token)
        if early is not None:
            return early
        if media_id not in self.media:
            return _Reply(404, b"Not Found", content_type="text/plain; charset=utf-8")
        content, mime, _ = self.media[media_id]
        return _Reply(200, content, content_type=mime)

    def _phone_body(self) -> dict[str, Any]:
        return {
            "verified_name": "Test Number",
            "code_verification_status": "NOT_VERIFIED",
            "display_phone_number": self.display_phone_number,
            "quality_rating": "GREEN",
            "platform_type": "CLOUD_API",
            "throughput": {"level": "STANDARD"},
            "id": self.phone_number_id,
        }

    # ---- status webhooks

    def _schedule_statuses(self, message: SentMessage, key: str) -> None:
        """Fire-and-forget "sent" then "delivered" webhooks, like Meta after a send."""
        if not (self.send_statuses and self.webhook_url and self.app_secret):
            return
        task = asyncio.get_running_loop().create_task(self._deliver_statuses(message, key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_statuses(self, message: SentMessage, key: str) -> None:
        await asyncio.sleep(self.status_delay)
        for status in ("sent", "delivered"):
            await self._post_webhook(self.status_payload(message, key, status))

    def status_payload(self, message: SentMessage, key: str, status: str) -> dict[str, Any]:
        """A status webhook body shaped like Meta's (payload samples 12, 13 and 20)."""
        now = int(time.time())
        item: dict[str, Any] = {"id": message.wamid, "status": status, "timestamp": str(now)}
        is_bsuid = key != "" and not key.isdigit()
        category = "utility" if message.body.get("type") == "template" else "service"
        if is_bsuid:
            item["recipient_user_id"] = key
        else:
            item["recipient_id"] = key
            conversation: dict[str, Any] = {"id": self._conversation_id(key)}
            if status == "sent":
                conversation["expiration_timestamp"] = str(now + 86400)
            conversation["origin"] = {"type": category}
            item["conversation"] = conversation
        item["pricing"] = _pricing(category)
        value = {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": self.display_phone_number,
                "phone_number_id": self.phone_number_id,
            },
            "statuses": [item],
        }
        change = {"value": value, "field": "messages"}
        return {
            "object": "whatsapp_business_account",
            "entry": [{"id": self.waba_id, "changes": [change]}],
        }

    def _conversation_id(self, key: str) -> str:
        if key not in self._conversations:
            self._conversations[key] = os.urandom(16).hex()
        return self._conversations[key]

    def _http(self) -> httpx.AsyncClient:
        """One client per event loop, reused for every webhook delivery."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            # Loading CA certificates costs ~0.1 s; skip it when the webhook is plain HTTP.
            https = bool(self.webhook_url and self.webhook_url.startswith("https:"))
            self._client = httpx.AsyncClient(timeout=10.0, verify=https)
            self._client_loop = loop
        return self._client

    async def _post_webhook(self, payload: dict[str, Any]) -> None:
        assert self.webhook_url and self.app_secret
        body = orjson.dumps(payload)
        digest = hmac.new(self.app_secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "facebookexternalua",
            "X-Hub-Signature-256": f"sha256={digest}",
        }
        try:
            response = await self._http().post(self.webhook_url, content=body, headers=headers)
            logger.debug("status webhook answered %s", response.status_code)
        except httpx.HTTPError as exc:
            logger.debug("status webhook to %s failed: %r", self.webhook_url, exc)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _fault_reply(fault: _Fault) -> _Reply:
    if fault.kind == "code":
        return meta_error(int(fault.value))
    if fault.kind == "http":
        return http_fault(int(fault.value))
    return _Reply(0, disconnect=True)


def _success_body(message: SentMessage, key: str, *, is_phone: bool) -> dict[str, Any]:
    """Meta's 200 answer to a send (samples send_message_success_*.json)."""
    contact = (
        {"input": message.to, "wa_id": key} if is_phone else {"input": message.to, "user_id": key}
    )
    sent: dict[str, Any] = {"id": message.wamid}
    if message.body.get("type") == "template":
        sent["message_status"] = "accepted"
    return {"messaging_product": "whatsapp", "contacts": [contact], "messages": [sent]}


def _media_body(media_id: str, content: bytes, mime: str, url: str) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "url": url,
        "mime_type": mime,
        "sha256": hashlib.sha256(content).hexdigest(),
        "file_size": len(content),
        "id": media_id,
    }


def _pricing(category: str) -> dict[str, Any]:
    """Per-message pricing: service replies are free inside the customer service window."""
    if category == "service":
        return {
            "billable": False,
            "pricing_model": "PMP",
            "type": "free_customer_service",
            "category": "service",
        }
    return {"billable": True, "pricing_model": "PMP", "type": "regular", "category": category}


# --------------------------------------------------------------------------- HTTP layer


def _headers() -> dict[str, str]:
    """Request headers with lower-case names, read straight from the ASGI scope (cheap)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.scope["headers"]}


def _bearer(headers: dict[str, str]) -> str | None:
    """The access token from `Authorization: Bearer ...` or the `access_token` query arg."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "oauth") and token.strip():
        return token.strip()
    return request.args.get("access_token") or None


def _disconnect_response() -> Response:
    """Drop the connection without an answer.

    ASGI has no "abort" message, so this sends only an interim `100` status and then lets
    Quart's response timeout end the exchange: hypercorn then closes the socket because no final
    response was sent, and the client sees "Server disconnected without sending a response".
    """

    async def never() -> AsyncIterator[bytes]:
        await asyncio.Event().wait()
        yield b""

    response = Response(never(), status=100)
    response.timeout = 0.01
    return response


def _to_response(reply: _Reply) -> Response:
    if reply.disconnect:
        return _disconnect_response()
    return Response(
        reply.body, status=reply.status, headers=reply.headers, content_type=reply.content_type
    )


def _finish(fake: FakeGraph, reply: _Reply, body: Any, headers: dict[str, str]) -> Response:
    """Record the exchange and turn the fake's decision into a Quart response."""
    fake.record(request.method, request.path, headers, body, reply.status)
    return _to_response(reply)


async def _json_arg(key: str) -> Any:
    data = await request.get_json(force=True, silent=True)
    return data.get(key) if isinstance(data, dict) else None


def _add_graph_routes(bp: Blueprint, fake: FakeGraph) -> None:
    @bp.post("/<version>/<phone_number_id>/messages")
    async def messages(version: str, phone_number_id: str) -> Response:
        raw = await request.get_data()
        headers = _headers()
        reply, body = await fake.handle_messages(version, phone_number_id, raw, _bearer(headers))
        return _finish(fake, reply, body, headers)

    @bp.post("/<version>/<phone_number_id>/media")
    async def upload(version: str, phone_number_id: str) -> Response:
        form = await request.form
        files = await request.files
        part = files.get("file")
        file = None
        if part is not None:
            file = (part.read(), part.mimetype or "application/octet-stream", part.filename or "")
        fields = {k: form.get(k, "") for k in ("messaging_product", "type")}
        headers = _headers()
        reply = fake.handle_upload(version, phone_number_id, _bearer(headers), fields, file)
        return _finish(fake, reply, None, headers)

    @bp.route("/<version>/<object_id>", methods=["GET", "DELETE"])
    async def graph_object(version: str, object_id: str) -> Response:
        url = url_for(".media_download", media_id=object_id, _external=True)
        headers = _headers()
        reply = fake.handle_object(request.method, version, object_id, _bearer(headers), url)
        return _finish(fake, reply, None, headers)

    @bp.get("/_fake/media/<media_id>")
    async def media_download(media_id: str) -> Response:
        headers = _headers()
        return _finish(fake, fake.handle_download(media_id, _bearer(headers)), None, headers)

    @bp.route("/", defaults={"rest": ""}, methods=ALL_METHODS)
    @bp.route("/<path:rest>", methods=ALL_METHODS)
    async def unknown(rest: str) -> Response:
        return _finish(fake, unknown_path(rest), None, _headers())


def _add_control_routes(bp: Blueprint, fake: FakeGraph) -> None:
    """Routes a test in another process uses to steer the fake (not recorded in `requests`)."""

    def ok(payload: Any, status: int = 200) -> Response:
        return Response(orjson.dumps(payload), status=status, content_type=JSON_TYPE)

    @bp.post("/_fake/faults")
    async def faults() -> Response:
        data = await request.get_json(force=True, silent=True)
        if not isinstance(data, dict) or "fault" not in data:
            return ok({"error": 'expected {"fault": ..., "times": n, "to": ...}'}, 400)
        to = data.get("to")
        try:
            fake.fail_next(
                data["fault"], int(data.get("times", 1)), to=None if to is None else str(to)
            )
        except (TypeError, ValueError) as exc:
            return ok({"error": str(exc)}, 400)
        return ok({"queued": fake.pending_faults})

    @bp.get("/_fake/sent")
    async def sent() -> Response:
        after = request.args.get("after", "-1")
        to = request.args.get("to")
        try:
            index = int(after)
        except ValueError:
            return ok({"error": "after must be an integer"}, 400)
        found = fake.messages_for(to, index) if to else fake.sent_since(index)
        return ok([{"index": m.index, "wamid": m.wamid, "to": m.to, "body": m.body} for m in found])

    @bp.post("/_fake/reset")
    async def reset() -> Response:
        fake.reset()
        return ok({"ok": True})

    @bp.post("/_fake/expire-token")
    async def expire() -> Response:
        token = await _json_arg("token")
        if not isinstance(token, str):
            return ok({"error": 'expected {"token": "..."}'}, 400)
        fake.expire_token(token)
        return ok({"ok": True})


def create_blueprint(fake: FakeGraph) -> Blueprint:
    """The Graph routes plus `/_fake/*` control routes; mount with any url_prefix."""
    bp = Blueprint("fake_graph", __name__)
    _add_control_routes(bp, fake)
    _add_graph_routes(bp, fake)

    @bp.after_app_serving
    async def close() -> None:
        await fake.aclose()

    return bp


def create_app(fake: FakeGraph) -> Quart:
    """A standalone app serving only the fake, at "/"."""
    app = Quart(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 128 * 1024 * 1024  # Meta accepts 100 MB documents
    app.register_blueprint(create_blueprint(fake))
    return app


# --------------------------------------------------------------------------- serving


@contextlib.asynccontextmanager
async def serve(
    target: FakeGraph | Quart, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve a fake (or any Quart app) with hypercorn in this loop; yields the base URL.

    The socket is bound before hypercorn starts, so port 0 works and requests made right
    away wait in the backlog instead of failing.
    """
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    app = create_app(target) if isinstance(target, FakeGraph) else target
    sock = socket.create_server((host, port), backlog=1024)
    bound = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.loglevel = "WARNING"
    config.graceful_timeout = 1.0
    config.backlog = 1024
    stop = asyncio.Event()
    task = asyncio.create_task(hypercorn_serve(app, config, shutdown_trigger=stop.wait))
    shown = f"[{host}]" if ":" in host else host
    try:
        yield f"http://{shown}:{bound}"
    finally:
        stop.set()
        await task


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bot.simulator.fake_graph",
        description="Fake WhatsApp Cloud Graph API on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8799, help="0 picks a free port")
    parser.add_argument("--phone-number-id", required=True)
    parser.add_argument("--token", action="append", help="valid bearer token (repeatable)")
    parser.add_argument("--webhook-url", help="where status webhooks are POSTed")
    parser.add_argument("--app-secret", help="signs status webhooks (X-Hub-Signature-256)")
    parser.add_argument("--send-statuses", action="store_true", help="send sent/delivered")
    return parser.parse_args(argv)


async def _run(args: argparse.Namespace) -> None:
    fake = FakeGraph(
        phone_number_id=args.phone_number_id,
        tokens=args.token or ["test-token"],
        app_secret=args.app_secret,
        webhook_url=args.webhook_url,
        send_statuses=args.send_statuses,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve(fake, host=args.host, port=args.port) as url:
        print(f"fake graph listening on {url}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """CLI entry point: serve the fake until SIGINT/SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(_run(_parse_args(argv)))


if __name__ == "__main__":
    main()
