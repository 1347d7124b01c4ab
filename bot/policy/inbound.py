"""Inbound limits: a person who floods the bot gets one "pausing" note, then quiet.

A token bucket per person (by blind index): `BOT_INBOUND_PER_MINUTE` tokens a
minute, up to `BOT_INBOUND_BURST` saved up. A message that finds the bucket
empty is still stored and acknowledged (Meta's deliveries are always answered
200) but gets no turn; the first one of a streak gets a short note, the rest
nothing, until the bucket refills. STOP, START and erasure are never limited:
a person must always be able to leave.

The buckets live in this process; with several workers they move to Redis.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_BUCKETS = 100_000  # oldest idle buckets are dropped beyond this


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class InboundLimiter:
    def __init__(self, per_minute: float, burst: int) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, key: str, now: float) -> bool:
        """Take a token for one message; False when the person is over their limit."""
        bucket = self._buckets.pop(key, None) or _Bucket(self._burst, now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.at) * self._rate)
        bucket.at = now
        self._buckets[key] = bucket  # re-inserted: dict order is least recently used first
        if len(self._buckets) > MAX_BUCKETS:
            self._buckets.pop(next(iter(self._buckets)))
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False
