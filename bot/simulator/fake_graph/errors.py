"""Meta's error answers: the envelope, the HTTP status per error code, and the odd ones out.

Bodies copy captured Meta responses (see `meta-samples/graph/`) so the bot's error handling is
tested against what Meta really sends: `(#code) Title` messages, `error_data.details`, subcodes
where Meta sends them, a fresh `fbtrace_id`, and the plain-text 502/503 of Meta's edge.
"""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from bot.simulator.fake_graph.reply import Reply, json_reply

PDT = timezone(timedelta(hours=-7))


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


def _trace_id() -> str:
    """A fresh `fbtrace_id` in Meta's alphabet and length (23 url-safe base64 characters)."""
    return "A" + base64.urlsafe_b64encode(os.urandom(17)).decode()[:22]


def _error(status: int, **error: Any) -> Reply:
    """Graph's error envelope; `None` values are dropped so optional keys stay absent."""
    body = {k: v for k, v in error.items() if v is not None}
    body["fbtrace_id"] = _trace_id()
    return json_reply(status, {"error": body})


def invalid_parameter(details: str) -> Reply:
    """Meta's `(#100) Invalid parameter` answer (no subcode since v16)."""
    return _error(
        400,
        message="(#100) Invalid parameter",
        type="OAuthException",
        code=100,
        error_data={"messaging_product": "whatsapp", "details": details},
    )


def meta_error(code: int) -> Reply:
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


def invalid_token() -> Reply:
    message = "Invalid OAuth access token - Cannot parse access token"
    reply = _error(401, message=message, type="OAuthException", code=190)
    reply.headers = {"WWW-Authenticate": f'OAuth "Facebook Platform" "invalid_token" "{message}"'}
    return reply


def expired_token(expired_at: float) -> Reply:
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


def unknown_object(method: str, object_id: str) -> Reply:
    """100/33: an id that does not exist or that this token may not use."""
    message = (
        f"Unsupported {method} request. Object with ID '{object_id}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation. Please read the "
        "Graph API documentation at https://developers.facebook.com/docs/graph-api"
    )
    return _error(400, message=message, type="GraphMethodException", code=100, error_subcode=33)


def unknown_path(rest: str) -> Reply:
    message = f"Unknown path components: /{rest}"
    return _error(400, message=message, type="OAuthException", code=2500)


def http_fault(status: int) -> Reply:
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
    return Reply(status, text.encode(), content_type="text/plain; charset=utf-8")
