"""Inbound limits: a person who floods the bot gets one "pausing" note, then quiet.

A token bucket per person (by blind index): `BOT_INBOUND_PER_MINUTE` tokens a
minute, up to `BOT_INBOUND_BURST` saved up. A message that finds the bucket
empty is still stored and acknowledged (Meta's deliveries are always answered
200) but gets no turn; the first one of a streak gets a short note, the rest
nothing, until the bucket refills. STOP, START and erasure are never limited:
a person must always be able to leave.

The buckets live in `bot.policy.limits`: in this process, or in Redis so that
every worker counts the same person's messages together.
"""

from __future__ import annotations

import logging

from bot.observers import NULL, LimitObserver
from bot.policy.limits import Limits, LimitsUnavailable

log = logging.getLogger(__name__)


class InboundLimiter:
    def __init__(
        self,
        limits: Limits,
        per_minute: float,
        burst: int,
        observer: LimitObserver = NULL,
    ) -> None:
        self._limits = limits
        self._observer = observer
        self._rate = per_minute / 60.0
        self._burst = float(burst)

    async def allow(self, key: str, now: float) -> bool:
        """Take a token for one message; False when the person is over their limit.

        If the shared counters cannot be reached the message goes through: a
        person's turn is worth more than a perfectly enforced limit."""
        try:
            wait = await self._limits.take(f"in:{key}", self._rate, self._burst, now)
        except LimitsUnavailable:
            log.warning("shared limits unreachable; inbound message not limited")
            return True
        if wait > 0:
            self._observer.limit_hit("inbound")
        return wait == 0.0
