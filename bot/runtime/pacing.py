"""Outbound pacing, matching Meta's limits so the number stays in good standing.

- Throughput: at most `per_second` messages a second from the business number
  (Meta's default is 80; up to 1,000 after an upgrade).
- Per recipient: about one message every 6 seconds on average, with bursts
  (Meta's pair rate limit, error 131056, allows short bursts then enforces the
  average).
- Pauses: a quality or policy signal from Meta (131048 spam rate limit, 368
  temporarily blocked, 131049 marketing not delivered for ecosystem health)
  pauses sending for every worker — all of it, or marketing only for 131049.

The counters live in `bot.policy.limits`: in this process, or in Redis when
several workers share the number. If Redis cannot be reached, messages still
go (Meta enforces its own limits and the sender backs off on its errors).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.observers import NULL, LimitObserver
from bot.policy.limits import Limits, LimitsUnavailable

log = logging.getLogger(__name__)
PAUSE_ALL, PAUSE_MARKETING = "pause:all", "pause:marketing"
PAUSE_CACHE = 1.0  # seconds a worker trusts its last look at the shared pauses


@dataclass(frozen=True)
class Rates:
    per_second: float = 80.0
    recipient_per_minute: float = 10.0
    recipient_burst: int = 45


class Pacing:
    def __init__(
        self,
        limits: Limits,
        number: str,
        rates: Rates,
        observer: LimitObserver = NULL,
    ) -> None:
        self._limits = limits
        self._number = number
        self.rates = rates
        self._observer = observer
        self._pauses: dict[str, float] = {}
        self._looked_at = float("-inf")

    async def wait(self, recipient: str, category: str, now: float) -> float:
        """Seconds to wait before this message may go; 0.0 means go now (a token was taken)."""
        try:
            paused = await self._paused(category, now)
            if paused > now:
                return paused - now
            r = self.rates
            wait = await self._limits.take(f"rate:{self._number}", r.per_second, r.per_second, now)
            if wait > 0:
                self._observer.limit_hit("throughput")
                return wait
            wait = await self._limits.take(
                f"pair:{recipient}", r.recipient_per_minute / 60.0, r.recipient_burst, now
            )
            if wait > 0:
                self._observer.limit_hit("recipient")
            return wait
        except LimitsUnavailable:
            log.warning("shared limits unreachable; sending without pacing")
            return 0.0

    async def pause(self, scope: str, until: float) -> None:
        """Hold back every worker's sends (`PAUSE_ALL`) or their marketing only."""
        self._pauses[scope] = max(self._pauses.get(scope, 0.0), until)
        try:
            await self._limits.pause(f"{scope}:{self._number}", until)
        except LimitsUnavailable:
            log.warning("shared limits unreachable; the pause holds in this worker only")

    async def _paused(self, category: str, now: float) -> float:
        if now - self._looked_at >= PAUSE_CACHE:
            self._looked_at = now
            for scope in (PAUSE_ALL, PAUSE_MARKETING):
                shared = await self._limits.paused_until(f"{scope}:{self._number}")
                self._pauses[scope] = max(self._pauses.get(scope, 0.0), shared)
        until = self._pauses.get(PAUSE_ALL, 0.0)
        if category == "marketing":
            until = max(until, self._pauses.get(PAUSE_MARKETING, 0.0))
        return until
