"""Checking message bodies the way Meta does, so a bad send fails in tests and not in production.

Each check returns the `error_data.details` text for a 400 `(#100) Invalid parameter` answer,
or None when the body is acceptable; the endpoint logic (`endpoints.py`) wraps it in Meta's
error envelope. The checks cover required fields, text lengths, button and row counts and
unique ids, not every rule Meta enforces.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

MAX_TEXT = 4096
PHONE = re.compile(r"\+?\d{1,20}")

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


def check_read(body: dict[str, Any]) -> str | None:
    """Why Meta would refuse this read receipt (or typing indicator), or None if valid."""
    if not isinstance(body.get("message_id"), str) or not body["message_id"]:
        return "The parameter message_id is required."
    indicator = body.get("typing_indicator")
    if indicator is not None and _sub(indicator, "type") != "text":
        return "Param typing_indicator['type'] must be 'text'."
    return None
