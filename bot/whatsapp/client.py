"""The Graph API client: one pooled httpx client, the only place that talks to Meta.

It sends exactly once per call and reports what happened; deciding whether
and when to retry is the outbox sender's job (it knows about backoff,
per-recipient pacing and the database). The one thing handled here is the
access token: on 401/190 it switches to `WHATSAPP_ACCESS_TOKEN_FALLBACK`
once, raises an alert, and repeats that request with the fallback.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import certifi
import httpx
import orjson

from bot.whatsapp.errors import Action, GraphError, safe_title

log = logging.getLogger(__name__)


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
        alert: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._phone_number_id = phone_number_id
        self._token = token
        self._fallback = fallback_token
        self._alert = alert or (lambda event, fields: None)
        self.using_fallback = False
        # One single-connection client per concurrent request: a shared pool of 32
        # spent ~5 ms of CPU per request rescanning its connections under load;
        # a connection of one's own costs ~1.5 ms.
        self._idle: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        self._all: list[httpx.AsyncClient] = []
        tls = ssl.create_default_context(cafile=certifi.where())  # built once, shared
        for _ in range(max_connections):
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(timeout, connect=5.0),
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                verify=tls,
            )
            self._all.append(client)
            self._idle.put_nowait(client)

    async def aclose(self) -> None:
        for client in self._all:
            await client.aclose()

    async def send(self, body: dict[str, Any]) -> Sent:
        """POST one message (or read receipt) to `/{phone-number-id}/messages`."""
        data = await self._request(
            "messages", content=orjson.dumps(body), headers={"Content-Type": "application/json"}
        )
        messages = data.get("messages") or [{}]
        first = messages[0] if isinstance(messages, list) and messages else {}
        return Sent(wamid=first.get("id"), status=first.get("message_status"))

    async def upload_media(self, content: bytes, mime_type: str, filename: str) -> str:
        """Upload a file (an export, say) and return the media id to send it with."""
        data = await self._request(
            "media",
            data={"messaging_product": "whatsapp", "type": mime_type},
            files={"file": (filename, content, mime_type)},
        )
        media_id = data.get("id")
        if not isinstance(media_id, str):
            raise GraphError(http_status=200, code=None, title="media upload without id")
        return media_id

    async def _request(self, edge: str, **kwargs: Any) -> dict[str, Any]:
        token = self._token
        try:
            return await self._post(edge, token, **kwargs)
        except GraphError as err:
            if err.action is not Action.AUTH:
                raise
            if token != self._token:  # another request already switched: use the new one
                return await self._post(edge, self._token, **kwargs)
            if not self._fallback or self.using_fallback:
                raise
            self.using_fallback = True
            self._token = self._fallback
            log.error("access token refused (code %s); switched to the fallback token", err.code)
            self._alert("access_token_fallback", {"code": err.code})
            return await self._post(edge, self._token, **kwargs)

    async def _post(self, edge: str, token: str, **kwargs: Any) -> dict[str, Any]:
        url = f"{self._base}/{self._phone_number_id}/{edge}"
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        http = await self._idle.get()
        try:
            resp = await http.post(url, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise GraphError(http_status=None, code=None, title=type(exc).__name__) from None
        finally:
            self._idle.put_nowait(http)
        try:
            data = orjson.loads(resp.content) if resp.content else {}
        except orjson.JSONDecodeError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        if resp.status_code >= 400 or "error" in data:
            raise _graph_error(resp.status_code, data)
        return data


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
