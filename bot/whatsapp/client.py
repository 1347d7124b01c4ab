"""The Graph API client: one pooled aiohttp session, the only place that talks to Meta.

aiohttp rather than httpx: on the project's 2-core machine an httpx request cost
~0.8 ms of CPU (a pool of single-connection clients; ~5 ms with one shared pool
under load) against ~0.15 ms for aiohttp's pooled session, and a turn makes two
requests (the reply and the read receipt). That difference was a third of a
turn's CPU.

It sends exactly once per call and reports what happened; deciding whether
and when to retry is the outbox sender's job (it knows about backoff,
per-recipient pacing and the database). The one thing handled here is the
access token: on 401/190 it switches to `WHATSAPP_ACCESS_TOKEN_FALLBACK`
once, raises an alert, and repeats that request with the fallback.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import certifi
import orjson

from bot.observers import NULL, Alarm
from bot.whatsapp.errors import Action, GraphError, safe_title

log = logging.getLogger(__name__)
JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class Sent:
    """Meta accepted the request; `wamid` is None for read receipts."""

    wamid: str | None
    status: str | None = None


class GraphClient:
    def __init__(
        self,
        *,
        base_url: str,
        phone_number_id: str,
        token: str,
        fallback_token: str = "",
        timeout: float = 15.0,
        max_connections: int = 64,
        alarm: Alarm = NULL,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._phone_number_id = phone_number_id
        self._token = token
        self._fallback = fallback_token
        self._alarm = alarm
        self.using_fallback = False
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=5.0)
        self._max_connections = max_connections
        self._tls = ssl.create_default_context(cafile=certifi.where())  # built once, shared
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        """The pooled session, opened on first use (it belongs to the running loop)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ssl=self._tls)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, skip_auto_headers=("User-Agent",)
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, body: dict[str, Any]) -> Sent:
        """POST one message (or read receipt) to `/{phone-number-id}/messages`."""
        data = await self._request("messages", lambda: orjson.dumps(body), JSON_HEADERS)
        messages = data.get("messages") or [{}]
        first = messages[0] if isinstance(messages, list) and messages else {}
        return Sent(wamid=first.get("id"), status=first.get("message_status"))

    async def upload_media(self, content: bytes, mime_type: str, filename: str) -> str:
        """Upload a file (an export, say) and return the media id to send it with."""

        def form() -> aiohttp.FormData:  # a FormData is consumed by one request
            fd = aiohttp.FormData()
            fd.add_field("messaging_product", "whatsapp")
            fd.add_field("type", mime_type)
            fd.add_field("file", content, filename=filename, content_type=mime_type)
            return fd

        data = await self._request("media", form, {})
        media_id = data.get("id")
        if not isinstance(media_id, str):
            raise GraphError(http_status=200, code=None, title="media upload without id")
        return media_id

    async def debug_token(self, token: str) -> dict[str, Any]:
        """Meta's `GET /debug_token` for `token`, asked with that token itself: its
        `data` (`is_valid`, `expires_at` (0: never), `scopes`). Raises `GraphError`."""
        url = f"{self._base}/debug_token"
        headers = {"Authorization": f"Bearer {token}"}
        try:
            async with self._http().get(
                url, params={"input_token": token}, headers=headers
            ) as resp:
                status, content = resp.status, await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GraphError(http_status=None, code=None, title=type(exc).__name__) from None
        data = _json_object(content)
        if status >= 400 or "error" in data:
            raise _graph_error(status, data)
        found = data.get("data")
        return found if isinstance(found, dict) else {}

    async def _request(
        self, edge: str, body: Callable[[], Any], headers: dict[str, str]
    ) -> dict[str, Any]:
        token = self._token
        try:
            return await self._post(edge, token, body(), headers)
        except GraphError as err:
            if err.action is not Action.AUTH:
                raise
            if token != self._token:  # another request already switched: use the new one
                return await self._post(edge, self._token, body(), headers)
            if not self._fallback or self.using_fallback:
                raise
            self.using_fallback = True
            self._token = self._fallback
            log.error("access token refused (code %s); switched to the fallback token", err.code)
            self._alarm.raise_("access_token_fallback", {"code": err.code})
            return await self._post(edge, self._token, body(), headers)

    async def _post(
        self, edge: str, token: str, body: Any, headers: dict[str, str]
    ) -> dict[str, Any]:
        url = f"{self._base}/{self._phone_number_id}/{edge}"
        headers = {"Authorization": f"Bearer {token}", **headers}
        try:
            async with self._http().post(url, data=body, headers=headers) as resp:
                status, content = resp.status, await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GraphError(http_status=None, code=None, title=type(exc).__name__) from None
        data = _json_object(content)
        if status >= 400 or "error" in data:
            raise _graph_error(status, data)
        return data


def _json_object(content: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(content) if content else {}
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _graph_error(http_status: int, data: dict[str, Any]) -> GraphError:
    err = data.get("error") if isinstance(data.get("error"), dict) else {}
    return GraphError(
        http_status=http_status,
        code=_int(err.get("code")),
        subcode=_int(err.get("error_subcode")),
        title=_safe_title(err),
    )


def _safe_title(err: dict[str, Any]) -> str:
    return safe_title(err.get("message"), fallback=str(err.get("type") or ""))


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
