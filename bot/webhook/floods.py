"""Failed attempts, counted per source and window: webhook signatures here, and the
support API's bearer tokens (`bot.api.auth`) with the same counts.

A forged or unsigned POST costs the sender one request and must not cost us a
database write each: a flood of them once wrote a permanent audit row per
request. Here each source (the connection's address, or behind
`BOT_TRUSTED_PROXIES` the forwarded one: `bot.webhook.sources.source_of`, which
believes a forwarded header only from a trusted proxy) gets a
window of `BOT_WEBHOOK_FAILURE_WINDOW` seconds from its first failure. The
window's failures become one `webhook_signature_failed` audit entry holding
their count, written when the next failure comes after the window or when the
process stops. Past `BOT_WEBHOOK_FAILURE_LIMIT` failures in a window the source
gets 429 instead of 401. The signature is still checked first (an HMAC, cheap
next to a write), so a correctly signed delivery is never answered 429, even
from an address that is flooding. Counts are per process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot import audit
from bot.store import StoreUnavailable
from bot.store.db import Database

MAX_SOURCES = 10_000  # sources tracked at once; beyond, the rest share one count
OTHERS = "*"

log = logging.getLogger(__name__)


@dataclass
class Burst:
    """A source's failed signatures in one window."""

    started: float
    count: int = 0
    refused: int = 0  # of them answered 429

    def detail(self, window: int) -> dict[str, int]:
        return {"count": self.count, "throttled": self.refused, "window_s": window}


class FailureWindows:
    """Windows of failures per source; what to answer and which bursts to audit."""

    def __init__(self, window: int, limit: int, clock: Callable[[], float] = time.time) -> None:
        self.window = window
        self.limit = limit
        self.clock = clock
        self._open: dict[str, Burst] = {}

    def failed(self, source: str) -> tuple[bool, list[Burst]]:
        """Count a failure from `source`: whether to answer 429, and the bursts whose
        window has ended (to be audited, one entry each)."""
        now = self.clock()
        ended = self._ended(now) if source not in self._open else []
        burst = self._open.get(source)
        if burst is not None and now - burst.started >= self.window:
            ended.append(self._open.pop(source))
            burst = None
        if burst is None:
            if len(self._open) >= MAX_SOURCES:
                ended.extend(self._ended(now))
            if len(self._open) >= MAX_SOURCES:
                source = OTHERS
            burst = self._open.setdefault(source, Burst(now))
        burst.count += 1
        throttled = burst.count > self.limit
        burst.refused += throttled
        return throttled, ended

    def blocked(self, source: str) -> bool:
        """Whether `source` is past its limit in a window still open (asked before a
        check that costs a read, which a flood then does not get)."""
        burst = self._open.get(source)
        return (
            burst is not None
            and self.clock() - burst.started < self.window
            and burst.count >= self.limit
        )

    def _ended(self, now: float) -> list[Burst]:
        done = [s for s, b in self._open.items() if now - b.started >= self.window]
        return [self._open.pop(s) for s in done]

    def drain(self) -> list[Burst]:
        """Every burst still open (the process is stopping)."""
        bursts = list(self._open.values())
        self._open.clear()
        return bursts


async def record(
    db: Database, window: int, bursts: list[Burst], event: str = "webhook_signature_failed"
) -> None:
    """One `event` entry per burst; a store that is away is logged."""
    events = [
        audit.Event(audit.SYSTEM, event, outcome="refused", detail=b.detail(window)) for b in bursts
    ]
    try:
        await db.write(audit.append, events)
    except StoreUnavailable as exc:  # the refusals stand even if they cannot be recorded
        log.error("could not audit failed attempts: %s (%s)", event, type(exc).__name__)
