"""Shared limits: token buckets, pauses and locks that every worker must agree on.

With one process they live in dicts here (`LocalLimits`); with several workers
(`REDIS_URL` set) they live in Redis (`RedisLimits`), so a person flooding two
workers still meets one bucket and a lock held by one worker excludes the
others. Both backends give the same answers for the same calls, and every Redis
operation is a single atomic command or script, so no two workers can both
spend the last token or both take a lock.

Buckets run on the `now` the caller passes (epoch seconds), not on Redis' clock:
workers stay consistent with their own timing, and tests can drive the clock.
Keys are opaque (blind indexes, not phone numbers), and errors never repeat them.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from bot.errors import BotError

MAX_KEYS = 100_000  # per kind, in process; least recently used beyond this are dropped
SLACK = 1e-9  # tokens: a wait of exactly the returned seconds must succeed despite rounding
# Idle state outlives its usefulness by this much, because expiry runs on Redis'
# clock while buckets and pauses run on the workers': skew must not revive a spent bucket.
MARGIN = 60.0
MAX_BUCKET_TTL = 30 * 86_400.0  # a bucket idle this long is forgotten (starts full) regardless


class LimitsUnavailable(BotError):
    """The shared store did not answer in time; the caller decides to fail open or closed."""


class Limits(Protocol):
    async def take(
        self, key: str, rate: float, burst: float, now: float, cost: float = 1.0
    ) -> float:
        """Token bucket: `rate` tokens per second, at most `burst` saved. Returns 0.0
        when `cost` tokens were taken, else the seconds until they would be available
        (and takes nothing); `math.inf` when `cost` exceeds `burst`."""
        ...

    async def pause(self, key: str, until: float) -> None:
        """Remember a pause until `until` (epoch seconds); an earlier one never shortens it."""
        ...

    async def paused_until(self, key: str) -> float:
        """The end of the pause on `key`, or 0.0 when there is none."""
        ...

    async def acquire(self, key: str, ttl: float) -> str | None:
        """Take an exclusive lock for `ttl` seconds: a random token, or None if it is held."""
        ...

    async def extend(self, key: str, token: str, ttl: float) -> bool:
        """Reset the lock's expiry to `ttl` seconds from now; False unless `token` holds it."""
        ...

    async def release(self, key: str, token: str) -> None:
        """Free the lock if `token` still holds it (an expired holder frees nothing)."""
        ...

    async def aclose(self) -> None: ...


def _check_bucket(rate: float, burst: float, cost: float) -> None:
    if not (rate > 0 and burst > 0 and cost >= 0):
        raise ValueError("a bucket needs rate > 0, burst > 0 and cost >= 0")


def _check_ttl(ttl: float) -> None:
    if not ttl > 0:
        raise ValueError("a lock needs ttl > 0")


def _pause_ttl(until: float) -> float:
    """Seconds to remember a pause: until it ends by this machine's wall clock, plus MARGIN."""
    return max(until - time.time(), 0.0) + MARGIN


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class LocalLimits:
    """In-process limits for a single worker: no I/O, so every call is atomic on the loop.

    Lock and pause expiry run on `clock` (monotonic by default, so a wall-clock step
    neither frees nor pins a lock). Each kind keeps at most `max_keys` entries,
    dropping the least recently used: memory stays bounded whatever keys arrive.
    """

    def __init__(
        self, max_keys: int = MAX_KEYS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at
        self._pauses: OrderedDict[str, tuple[float, float]] = OrderedDict()  # until, forget at
        self._locks: OrderedDict[str, tuple[str, float]] = OrderedDict()  # token, expires

    def _put(self, table: OrderedDict[str, Any], key: str, value: Any) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > self._max:
            table.popitem(last=False)

    async def take(
        self, key: str, rate: float, burst: float, now: float, cost: float = 1.0
    ) -> float:
        _check_bucket(rate, burst, cost)
        if cost > burst:
            return math.inf
        tokens, at = self._buckets.get(key, (burst, now))
        # Same arithmetic, in the same order, as the Lua script: equal answers to the bit.
        elapsed = now - at if now > at else 0.0
        tokens = min(burst, tokens + elapsed * rate)
        at = max(at, now)  # a clock that steps back must not refill the same span twice
        wait = 0.0
        if tokens + SLACK >= cost:
            tokens -= cost
        else:  # counted from `at`: a caller whose clock lags another's waits for the gap too
            wait = (cost - tokens) / rate + (at - now)
        self._put(self._buckets, key, (tokens, at))
        return wait

    async def pause(self, key: str, until: float) -> None:
        current = self._pause(key)
        if current is None or until > current:
            self._put(self._pauses, key, (until, self._clock() + _pause_ttl(until)))

    async def paused_until(self, key: str) -> float:
        return self._pause(key) or 0.0

    def _pause(self, key: str) -> float | None:
        return self._live(self._pauses, key)

    async def acquire(self, key: str, ttl: float) -> str | None:
        _check_ttl(ttl)
        if self._holder(key) is not None:
            return None
        token = secrets.token_hex(16)
        self._put(self._locks, key, (token, self._clock() + ttl))
        return token

    async def extend(self, key: str, token: str, ttl: float) -> bool:
        _check_ttl(ttl)
        if self._holder(key) != token:
            return False
        self._put(self._locks, key, (token, self._clock() + ttl))
        return True

    async def release(self, key: str, token: str) -> None:
        if self._holder(key) == token:
            del self._locks[key]

    def _holder(self, key: str) -> str | None:
        return self._live(self._locks, key)

    def _live(self, table: OrderedDict[str, Any], key: str) -> Any:
        """The value stored under `key` until its expiry, or None once it has passed."""
        entry = table.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del table[key]
            return None
        table.move_to_end(key)
        return entry[0]

    async def aclose(self) -> None:
        self._buckets.clear()
        self._pauses.clear()
        self._locks.clear()


# KEYS[1] bucket hash; ARGV: rate, burst, now, cost, slack, margin ms, max ttl ms.
# Numbers travel as %.17g so they round-trip exactly (Lua's tostring keeps 14 digits).
_TAKE = """
local rate, burst, now, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil or at == nil then tokens, at = burst, now end
local elapsed = 0
if now > at then elapsed = now - at end
tokens = math.min(burst, tokens + elapsed * rate)
at = math.max(at, now)
local wait = 0
if tokens + tonumber(ARGV[5]) >= cost then tokens = tokens - cost
else wait = (cost - tokens) / rate + (at - now) end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
  'at', string.format('%.17g', at))
local ttl = math.ceil((burst - tokens) / rate * 1000) + tonumber(ARGV[6])
redis.call('PEXPIRE', KEYS[1], math.min(ttl, tonumber(ARGV[7])))
return string.format('%.17g', wait)
"""

# KEYS[1] pause; ARGV: until, ttl ms. Keeps the later pause.
_PAUSE = """
local current = tonumber(redis.call('GET', KEYS[1]))
if current and current >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS[1] lock; ARGV: token, ttl ms.
_EXTEND = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

# KEYS[1] lock; ARGV: token.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@contextmanager
def _guard(operation: str) -> Iterator[None]:
    """Turn any Redis failure into LimitsUnavailable, naming the operation, never the key."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise LimitsUnavailable(f"redis {operation} failed: {type(exc).__name__}") from exc


class RedisLimits:
    """Limits shared by every worker through one Redis, over one connection pool.

    Timeouts are short because callers sit on the webhook's path: a slow Redis must
    surface as LimitsUnavailable within a second, not hold deliveries. One immediate
    retry covers a pooled connection the server closed; timeouts are not retried,
    since the command may have run (a retried take would spend twice).
    """

    def __init__(self, url: str, prefix: str = "bot:", timeout: float = 0.5) -> None:
        self._prefix = prefix
        self._redis = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            decode_responses=True,
        )
        self._take = self._redis.register_script(_TAKE)
        self._pause = self._redis.register_script(_PAUSE)
        self._extend = self._redis.register_script(_EXTEND)
        self._release = self._redis.register_script(_RELEASE)

    def _key(self, kind: str, key: str) -> str:
        return f"{self._prefix}{kind}:{key}"

    async def take(
        self, key: str, rate: float, burst: float, now: float, cost: float = 1.0
    ) -> float:
        _check_bucket(rate, burst, cost)
        if cost > burst:
            return math.inf
        args = [repr(float(v)) for v in (rate, burst, now, cost, SLACK)]
        args += [str(_ms(MARGIN)), str(_ms(MAX_BUCKET_TTL))]
        with _guard("take"):
            wait = await self._take(keys=[self._key("bucket", key)], args=args)
        return float(wait)

    async def pause(self, key: str, until: float) -> None:
        args = [repr(float(until)), str(_ms(_pause_ttl(until)))]
        with _guard("pause"):
            await self._pause(keys=[self._key("pause", key)], args=args)

    async def paused_until(self, key: str) -> float:
        with _guard("paused_until"):
            value = await self._redis.get(self._key("pause", key))
        return float(value) if value is not None else 0.0

    async def acquire(self, key: str, ttl: float) -> str | None:
        _check_ttl(ttl)
        token = secrets.token_hex(16)
        with _guard("acquire"):
            taken = await self._redis.set(self._key("lock", key), token, nx=True, px=_ms(ttl))
        return token if taken else None

    async def extend(self, key: str, token: str, ttl: float) -> bool:
        _check_ttl(ttl)
        with _guard("extend"):
            done = await self._extend(keys=[self._key("lock", key)], args=[token, _ms(ttl)])
        return bool(done)

    async def release(self, key: str, token: str) -> None:
        with _guard("release"):
            await self._release(keys=[self._key("lock", key)], args=[token])

    async def aclose(self) -> None:
        with _guard("close"):
            await self._redis.aclose()


def make_limits(redis_url: str | None, prefix: str = "bot:") -> Limits:
    """Redis when a URL is configured (several workers), else in-process (one worker)."""
    if redis_url:
        return RedisLimits(redis_url, prefix=prefix)
    return LocalLimits()
