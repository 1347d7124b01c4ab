"""Status webhooks: after a send, Meta posts "sent" then "delivered" back to the bot, signed.

The fake does the same when built with `send_statuses=True`, a `webhook_url` and the app secret,
so the bot's status handling and its `X-Hub-Signature-256` check run against real HTTP posts.
The settings are read from the fake at send time, so a test may change them after start-up.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import time
from typing import TYPE_CHECKING, Any

import httpx
import orjson

if TYPE_CHECKING:
    from bot.simulator.fake_graph.state import GraphState, SentMessage

logger = logging.getLogger(__name__)


class StatusWebhooks:
    """Posts the status webhooks of one fake and owns what that needs.

    The pending deliveries, the HTTP client and the conversation id per recipient live here so
    the fake can cancel, close and forget them (`aclose`, `reset`) in one place.
    """

    def __init__(self, fake: GraphState) -> None:
        self._fake = fake
        self._conversations: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def schedule(self, message: SentMessage, key: str) -> None:
        """Fire-and-forget "sent" then "delivered" webhooks, like Meta after a send."""
        fake = self._fake
        if not (fake.send_statuses and fake.webhook_url and fake.app_secret):
            return
        task = asyncio.get_running_loop().create_task(self._deliver(message, key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def reset(self) -> None:
        """Forget conversation ids, so the next send to a number opens a new conversation."""
        self._conversations.clear()

    async def aclose(self) -> None:
        """Stop pending deliveries and close the shared HTTP client."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None and self._client_loop is asyncio.get_running_loop():
            await client.aclose()

    def payload(self, message: SentMessage, key: str, status: str) -> dict[str, Any]:
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
                "display_phone_number": self._fake.display_phone_number,
                "phone_number_id": self._fake.phone_number_id,
            },
            "statuses": [item],
        }
        change = {"value": value, "field": "messages"}
        return {
            "object": "whatsapp_business_account",
            "entry": [{"id": self._fake.waba_id, "changes": [change]}],
        }

    async def _deliver(self, message: SentMessage, key: str) -> None:
        await asyncio.sleep(self._fake.status_delay)
        for status in ("sent", "delivered"):
            await self._post(self.payload(message, key, status))

    def _conversation_id(self, key: str) -> str:
        if key not in self._conversations:
            self._conversations[key] = os.urandom(16).hex()
        return self._conversations[key]

    def _http(self) -> httpx.AsyncClient:
        """One client per event loop, reused for every webhook delivery."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            # Loading CA certificates costs ~0.1 s; skip it when the webhook is plain HTTP.
            url = self._fake.webhook_url
            https = bool(url and url.startswith("https:"))
            self._client = httpx.AsyncClient(timeout=10.0, verify=https)
            self._client_loop = loop
        return self._client

    async def _post(self, payload: dict[str, Any]) -> None:
        url, secret = self._fake.webhook_url, self._fake.app_secret
        assert url and secret
        body = orjson.dumps(payload)
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "facebookexternalua",
            "X-Hub-Signature-256": f"sha256={digest}",
        }
        try:
            response = await self._http().post(url, content=body, headers=headers)
            logger.debug("status webhook answered %s", response.status_code)
        except httpx.HTTPError as exc:
            logger.debug("status webhook to %s failed: %r", url, exc)


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
