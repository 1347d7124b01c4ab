"""Webhook bodies in Meta's shape, for the simulator, the benchmark and the tests.

They play Meta's side: compact JSON like Meta sends, signed with the app
secret over the exact bytes posted.
"""

from __future__ import annotations

import base64
import os
import time
from typing import Any

import orjson

from bot.webhook.signature import sign

WABA_ID = "102290129340398"
DISPLAY_NUMBER = "15550783881"


def new_wamid(digits: str) -> str:
    """An inbound message id shaped like Meta's: it encodes the sender's number."""
    raw = b"\x15\x02\x00\x12\x18" + digits.encode() + b"\x15\x02\x00\x12\x18\x14" + os.urandom(10)
    return "wamid." + base64.b64encode(raw).decode()


def _contact(digits: str, name: str | None) -> dict[str, Any]:
    return {"profile": {"name": name or ""}, "wa_id": digits}


def envelope(phone_number_id: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA_ID,
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": DISPLAY_NUMBER,
                                "phone_number_id": phone_number_id,
                            },
                            **value,
                        },
                    }
                ],
            }
        ],
    }


def message(
    phone_number_id: str,
    sender: str,
    content: dict[str, Any],
    *,
    name: str | None = None,
    wamid: str | None = None,
    timestamp: int | None = None,
) -> tuple[dict[str, Any], str]:
    """One inbound message from `sender` (+E164 or digits); returns (body, wamid)."""
    digits = sender.lstrip("+")
    wamid = wamid or new_wamid(digits)
    msg = {
        "from": digits,
        "id": wamid,
        "timestamp": str(timestamp if timestamp is not None else int(time.time())),
        **content,
    }
    body = envelope(phone_number_id, {"contacts": [_contact(digits, name)], "messages": [msg]})
    return body, wamid


def text(body: str) -> dict[str, Any]:
    return {"type": "text", "text": {"body": body}}


def button_reply(reply_id: str, title: str) -> dict[str, Any]:
    return {
        "type": "interactive",
        "interactive": {"type": "button_reply", "button_reply": {"id": reply_id, "title": title}},
    }


def list_reply(reply_id: str, title: str, description: str = "") -> dict[str, Any]:
    row = {"id": reply_id, "title": title}
    if description:
        row["description"] = description
    return {"type": "interactive", "interactive": {"type": "list_reply", "list_reply": row}}


def status(
    phone_number_id: str,
    wamid: str,
    recipient: str,
    state: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    st: dict[str, Any] = {
        "id": wamid,
        "status": state,
        "timestamp": str(timestamp if timestamp is not None else int(time.time())),
        "recipient_id": recipient.lstrip("+"),
    }
    if errors:
        st["errors"] = errors
    return envelope(phone_number_id, {"statuses": [st]})


def signed(body: dict[str, Any] | bytes, secret: str) -> tuple[bytes, dict[str, str]]:
    """The bytes to POST and the headers Meta would send with them."""
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return raw, {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign(secret.encode(), raw),
    }
