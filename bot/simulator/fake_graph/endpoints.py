"""How the fake answers each Graph endpoint: sends, read receipts, media and the phone number.

`FakeGraph` is `GraphState` (what it remembers, how tests steer it) plus these answers. They
are plain methods returning a `Reply`, so they do not depend on the web framework; `dispatch.py`
maps URLs to them. Graph checks the path first, then the token, then the object id, and the
fake keeps that order so the bot sees the same error Meta would give it.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
from typing import Any

import orjson

from bot.simulator.fake_graph.errors import (
    expired_token,
    invalid_parameter,
    invalid_token,
    unknown_object,
    unknown_path,
)
from bot.simulator.fake_graph.faults import fault_reply
from bot.simulator.fake_graph.reply import Reply, json_reply
from bot.simulator.fake_graph.state import GraphState, SentMessage, recipient_key
from bot.simulator.fake_graph.validation import check_read, validate_send

GRAPH_VERSION = re.compile(r"v\d+\.\d+")


class FakeGraph(GraphState):
    """The fake Graph API: `GraphState` plus the answer to each endpoint.

    HTTP routing lives in `dispatch.py`; the constructor and test controls in `GraphState`.
    """

    def authenticate(self, token: str | None) -> Reply | None:
        """None if the token may call the API, else Meta's 401 answer."""
        if token is not None and token in self._expired:
            return expired_token(self._expired[token])
        if token is None or token not in self.tokens:
            return invalid_token()
        return None

    def _precheck(self, version: str, rest: str, token: str | None) -> Reply | None:
        """Graph checks the path, then the token."""
        if not GRAPH_VERSION.fullmatch(version):
            return unknown_path(f"{version}/{rest}")
        return self.authenticate(token)

    async def handle_messages(
        self, version: str, phone_number_id: str, raw: bytes, token: str | None
    ) -> tuple[Reply, Any]:
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

    def _mark_read(self, body: dict[str, Any]) -> Reply:
        if body.get("messaging_product") != "whatsapp":
            return invalid_parameter("Param messaging_product must be 'whatsapp'.")
        if body.get("status") != "read":
            return invalid_parameter("Param status must be 'read'.")
        error = check_read(body)
        if error:
            return invalid_parameter(error)
        message_id = body["message_id"]
        if message_id in self._issued:
            return invalid_parameter(
                f"Message supplied to mark message as read API with message ID: {message_id} "
                "is outgoing. Please use an incoming message ID."
            )
        return json_reply(200, {"success": True})

    async def _send(self, body: dict[str, Any]) -> Reply:
        to = body.get("to")
        given = to if isinstance(to, str) else body.get("recipient")
        given = given if isinstance(given, str) else ""
        key = recipient_key(given)
        if self._faults:
            fault = self._take_fault(key)
            if fault is not None:
                if fault.kind != "slow":
                    return fault_reply(fault)
                await asyncio.sleep(fault.value)
        error = validate_send(body)
        if error:
            return invalid_parameter(error)
        message = self._accept(given, key, body)
        self._statuses.schedule(message, key)
        return json_reply(200, _success_body(message, key, is_phone=isinstance(to, str)))

    def handle_upload(
        self,
        version: str,
        phone_number_id: str,
        token: str | None,
        form: dict[str, str],
        file: tuple[bytes, str, str] | None,
    ) -> Reply:
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
        return json_reply(200, {"id": media_id})

    def handle_object(
        self, method: str, version: str, object_id: str, token: str | None, media_url: str
    ) -> Reply:
        """`GET`/`DELETE /{version}/{id}`: media metadata or delete, or the phone number."""
        early = self._precheck(version, object_id, token)
        if early is not None:
            return early
        if object_id in self.media and method == "GET":
            content, mime, _ = self.media[object_id]
            return json_reply(200, _media_body(object_id, content, mime, media_url))
        if object_id in self.media and method == "DELETE":
            del self.media[object_id]
            return json_reply(200, {"success": True})
        if object_id == self.phone_number_id and method == "GET":
            return json_reply(200, self._phone_body())
        return unknown_object(method.lower(), object_id)

    def handle_debug_token(self, version: str, token: str | None, input_token: str) -> Reply:
        """`GET /{version}/debug_token?input_token=…`: what Meta says of a token (asked
        with a valid one): `data.is_valid`, `expires_at` (0: never), `scopes`."""
        early = self._precheck(version, "debug_token", token)
        if early is not None:
            return early
        data: dict[str, Any] = {"app_id": "1234567890", "type": "SYSTEM_USER"}
        if input_token in self.tokens and input_token not in self._expired:
            expires = int(self.token_expires_at.get(input_token, 0))
            data |= {
                "is_valid": True,
                "expires_at": expires,
                "issued_at": int(time.time()) - 86400,
                "scopes": self.token_scopes,
            }
        else:
            expired = int(self._expired.get(input_token, 0))
            error = {"code": 190, "message": "Invalid OAuth access token.", "subcode": 0}
            if expired:
                error |= {"message": "Session has expired.", "subcode": 463}
            data |= {"is_valid": False, "expires_at": expired, "scopes": [], "error": error}
        return json_reply(200, {"data": data})

    def handle_download(self, media_id: str, token: str | None) -> Reply:
        """The media URL itself: raw bytes, only with a valid token (as Meta's lookaside)."""
        early = self.authenticate(token)
        if early is not None:
            return early
        if media_id not in self.media:
            return Reply(404, b"Not Found", content_type="text/plain; charset=utf-8")
        content, mime, _ = self.media[media_id]
        return Reply(200, content, content_type=mime)

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
