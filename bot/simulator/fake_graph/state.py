"""What the fake remembers and how a test steers it: requests, sends, media, faults, tokens.

Tests in the same process use these methods directly; tests in another process reach the same
ones through the `/_fake/*` control routes (`dispatch.py`). How the fake answers each Graph
endpoint lives in `endpoints.py`, which builds `FakeGraph` on top of `GraphState`.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import os
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bot.simulator.fake_graph.faults import Fault, parse_fault
from bot.simulator.fake_graph.statuses import StatusWebhooks


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


# ---- ids


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


SCOPES = ("whatsapp_business_management", "whatsapp_business_messaging")


class GraphState:
    """The fake's memory and its test controls; `FakeGraph` adds the Graph endpoints on top."""

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
        # What `GET /debug_token` says of each token: when it expires (absent or 0:
        # never, as for a system user's token) and its permissions.
        self.token_expires_at: dict[str, float] = {}
        self.token_scopes: list[str] = list(SCOPES)
        self._faults: deque[Fault] = deque()
        self._issued: dict[str, SentMessage] = {}
        self._by_recipient: dict[str, list[SentMessage]] = {}
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._statuses = StatusWebhooks(self)

    # ---- control (same process)

    def fail_next(self, fault: int | str, times: int = 1, *, to: str | None = None) -> None:
        """Queue `times` failures for the next message sends (optionally only those to `to`).

        Read receipts never consume a fault, so a test can aim failures at the bot's replies.
        """
        if times < 0:
            raise ValueError("times must be >= 0")
        kind, value = parse_fault(fault)
        key = recipient_key(to) if to is not None else None
        self._faults.extend(Fault(kind, value, key) for _ in range(times))

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
        self._statuses.reset()

    async def aclose(self) -> None:
        """Stop pending status webhooks and close the shared HTTP client."""
        await self._statuses.aclose()

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

    def _take_fault(self, key: str | None) -> Fault | None:
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

    # ---- status webhooks

    def status_payload(self, message: SentMessage, key: str, status: str) -> dict[str, Any]:
        """A status webhook body shaped like Meta's (payload samples 12, 13 and 20)."""
        return self._statuses.payload(message, key, status)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
