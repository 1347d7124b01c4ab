"""Shared limits: one behaviour in process and in Redis, under concurrency and outages.

Each behaviour test runs on LocalLimits and, when BOT_TEST_REDIS_URL is set, on
RedisLimits with a prefix of its own, whose keys are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import socket
import time
from collections.abc import AsyncIterator, Callable
from uuid import uuid4

import pytest
import redis.asyncio as redis
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.policy.limits import (
    MARGIN,
    Limits,
    LimitsUnavailable,
    LocalLimits,
    RedisLimits,
    make_limits,
)
from tests.conftest import require

REDIS_URL = os.environ.get("BOT_TEST_REDIS_URL", "")
T0 = 1_700_000_000.0  # the buckets' clock is whatever callers pass; tests drive it
SLOW = 1e-6  # tokens per second: nothing refills within a test


class Workers:
    """Hands out limits as separate workers would hold them: in Redis, one pool each."""

    def __init__(self, make: Callable[[], Limits], prefix: str = "") -> None:
        self._make = make
        self.prefix = prefix
        self.made: list[Limits] = []

    def new(self) -> Limits:
        limits = self._make()
        if limits not in self.made:
            self.made.append(limits)
        return limits


@pytest.fixture(params=["local", "redis"])
async def workers(request: pytest.FixtureRequest) -> AsyncIterator[Workers]:
    if request.param == "local":
        local = LocalLimits()
        yield Workers(lambda: local)  # one process: every caller shares the same dicts
        await local.aclose()
        return
    require(bool(REDIS_URL), "Redis not configured (set BOT_TEST_REDIS_URL)")
    prefix = f"bot-test:{uuid4().hex}:"
    made = Workers(lambda: RedisLimits(REDIS_URL, prefix=prefix), prefix)
    try:
        yield made
    finally:
        for limits in made.made:
            await limits.aclose()
        admin = redis.Redis.from_url(REDIS_URL)
        keys = [key async for key in admin.scan_iter(match=prefix + "*")]
        if keys:
            await admin.delete(*keys)
        await admin.aclose()


@pytest.fixture
def limits(workers: Workers) -> Limits:
    return workers.new()


async def test_a_bucket_allows_its_burst_then_says_how_long_to_wait(limits: Limits) -> None:
    assert [await limits.take("a", 0.5, 3, T0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert await limits.take("a", 0.5, 3, T0) == pytest.approx(2.0)
    assert await limits.take("a", 0.5, 3, T0 + 1.5) == pytest.approx(0.5)
    assert await limits.take("a", 0.5, 3, T0 + 2.0) == 0.0


async def test_a_bucket_refills_at_its_rate_up_to_its_burst(limits: Limits) -> None:
    for _ in range(4):
        assert await limits.take("a", 2, 4, T0) == 0.0
    assert await limits.take("a", 2, 4, T0 + 1) == 0.0
    assert await limits.take("a", 2, 4, T0 + 1) == 0.0
    assert await limits.take("a", 2, 4, T0 + 1) == pytest.approx(0.5)
    later = [await limits.take("a", 2, 4, T0 + 1000) for _ in range(5)]
    assert later[:4] == [0.0] * 4
    assert later[4] == pytest.approx(0.5)


async def test_a_costly_take_waits_for_all_its_tokens_and_takes_none_meanwhile(
    limits: Limits,
) -> None:
    assert await limits.take("a", 1, 5, T0, cost=3) == 0.0
    assert await limits.take("a", 1, 5, T0, cost=3) == pytest.approx(1.0)
    assert await limits.take("a", 1, 5, T0, cost=2) == 0.0  # the refusal took nothing
    assert await limits.take("a", 1, 5, T0, cost=0.5) == pytest.approx(0.5)
    assert await limits.take("a", 1, 5, T0, cost=6) == math.inf  # more than the bucket holds


async def test_keys_and_kinds_are_independent(limits: Limits) -> None:
    assert await limits.take("a", SLOW, 1, T0) == 0.0
    assert await limits.take("a", SLOW, 1, T0) > 0
    assert await limits.take("b", SLOW, 1, T0) == 0.0
    await limits.pause("a", T0)
    assert await limits.acquire("a", 5) is not None
    assert await limits.paused_until("b") == 0.0
    assert await limits.acquire("b", 5) is not None


async def test_nonsense_buckets_and_locks_are_refused(limits: Limits) -> None:
    for rate, burst, cost in [(0, 1, 1), (1, 0, 1), (1, 1, -1)]:
        with pytest.raises(ValueError):
            await limits.take("a", rate, burst, T0, cost)
    with pytest.raises(ValueError):
        await limits.acquire("a", 0)


async def test_a_pause_keeps_the_later_end(limits: Limits) -> None:
    now = time.time()
    assert await limits.paused_until("p") == 0.0
    await limits.pause("p", now + 100)
    await limits.pause("p", now + 50)
    assert await limits.paused_until("p") == now + 100
    await limits.pause("p", now + 200)
    assert await limits.paused_until("p") == now + 200
    assert await limits.paused_until("q") == 0.0


async def test_a_lock_is_exclusive_and_only_its_holder_releases_it(limits: Limits) -> None:
    token = await limits.acquire("l", 5)
    assert token
    assert await limits.acquire("l", 5) is None
    await limits.release("l", "not-the-token")
    assert await limits.acquire("l", 5) is None
    await limits.release("l", token)
    second = await limits.acquire("l", 5)
    assert second and second != token
    await limits.release("l", token)  # a stale holder frees nothing
    assert await limits.acquire("l", 5) is None


async def test_a_lock_expires_after_its_ttl_and_the_old_holder_loses_it(limits: Limits) -> None:
    token = await limits.acquire("l", 0.2)
    assert token
    await asyncio.sleep(0.3)
    second = await limits.acquire("l", 5)
    assert second
    assert not await limits.extend("l", token, 5)
    await limits.release("l", token)
    assert await limits.acquire("l", 5) is None


async def test_only_the_holder_extends_a_lock(limits: Limits) -> None:
    assert not await limits.extend("l", "nobody", 5)
    token = await limits.acquire("l", 0.2)
    assert token
    assert not await limits.extend("l", "not-the-token", 5)
    assert await limits.extend("l", token, 5)
    await asyncio.sleep(0.3)
    assert await limits.acquire("l", 5) is None
    assert await limits.extend("l", token, 5)


async def test_concurrent_takes_from_two_workers_grant_exactly_the_burst(
    workers: Workers,
) -> None:
    pair = [workers.new(), workers.new()]
    waits = await asyncio.gather(*(pair[i % 2].take("a", SLOW, 10, T0) for i in range(50)))
    assert waits.count(0.0) == 10


async def test_concurrent_acquires_from_two_workers_yield_one_holder(workers: Workers) -> None:
    pair = [workers.new(), workers.new()]
    tokens = await asyncio.gather(*(pair[i % 2].acquire("l", 5) for i in range(20)))
    assert len([t for t in tokens if t]) == 1


REDIS_ONLY = pytest.mark.parametrize("workers", ["redis"], indirect=True)


@REDIS_ONLY
async def test_redis_answers_exactly_as_local_limits_do(workers: Workers) -> None:
    """The same arithmetic on both sides, to the bit, including a clock that steps back."""
    remote, local = workers.new(), LocalLimits()
    rng = random.Random(7)
    now = T0
    for _ in range(300):
        now += rng.choice([0.0, rng.uniform(-0.5, 3.0)])
        key = rng.choice("abc")
        rate, burst = {"a": (0.7, 3.0), "b": (3.0, 10.0), "c": (0.01, 1.5)}[key]
        cost = rng.choice([1.0, rng.uniform(0.0, 2.0)])
        args = (key, rate, burst, now, cost)
        assert await remote.take(*args) == await local.take(*args), args


@REDIS_ONLY
async def test_redis_keys_expire_by_themselves(workers: Workers) -> None:
    """Idle state must leave Redis on its own: buckets once full again, pauses once over."""
    limits = workers.new()
    assert await limits.take("a", 0.5, 3, T0, cost=2) == 0.0
    await limits.pause("p", time.time() + 30)
    assert await limits.acquire("l", 5)
    admin = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        mine = {
            key.removeprefix(workers.prefix): await admin.pttl(key)
            async for key in admin.scan_iter(match=workers.prefix + "*")
        }
    finally:
        await admin.aclose()
    assert set(mine) == {"bucket:a", "pause:p", "lock:l"}
    margin = MARGIN * 1000
    assert mine["bucket:a"] == pytest.approx(4000 + margin, abs=500)  # 2 tokens at 0.5/s
    assert mine["pause:p"] == pytest.approx(30_000 + margin, abs=500)
    assert mine["lock:l"] == pytest.approx(5000, abs=500)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


OPERATIONS = {
    "take": lambda lim: lim.take("person-secret", 1, 1, T0),
    "pause": lambda lim: lim.pause("person-secret", T0),
    "paused_until": lambda lim: lim.paused_until("person-secret"),
    "acquire": lambda lim: lim.acquire("person-secret", 1),
    "extend": lambda lim: lim.extend("person-secret", "token", 1),
    "release": lambda lim: lim.release("person-secret", "token"),
}


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_an_unreachable_redis_fails_fast_without_naming_the_key(operation: str) -> None:
    limits = RedisLimits(f"redis://127.0.0.1:{closed_port()}/0")
    start = time.monotonic()
    with pytest.raises(LimitsUnavailable) as failure:
        await OPERATIONS[operation](limits)
    assert time.monotonic() - start < 2
    assert "person-secret" not in str(failure.value)
    await limits.aclose()


async def test_a_redis_that_never_answers_times_out_fast() -> None:
    """A listener that accepts (the kernel's backlog) but never replies: the op timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        limits = RedisLimits(f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        start = time.monotonic()
        with pytest.raises(LimitsUnavailable, match="TimeoutError"):
            await limits.take("person-secret", 1, 1, T0)
        assert time.monotonic() - start < 2
        await limits.aclose()


async def test_make_limits_picks_redis_only_when_configured() -> None:
    assert isinstance(make_limits(None), LocalLimits)
    assert isinstance(make_limits(""), LocalLimits)
    remote = make_limits("redis://127.0.0.1:1/0")  # connects lazily
    assert isinstance(remote, RedisLimits)
    await remote.aclose()


async def test_local_limits_drop_the_least_recently_used_beyond_their_cap() -> None:
    limits = LocalLimits(max_keys=2)
    for key in ("a", "b"):
        assert await limits.take(key, SLOW, 1, T0) == 0.0
    assert await limits.take("a", SLOW, 1, T0) > 0  # touches "a": "b" is now the oldest
    assert await limits.take("c", SLOW, 1, T0) == 0.0
    assert await limits.take("b", SLOW, 1, T0) == 0.0  # forgotten, so full again
    assert await limits.take("c", SLOW, 1, T0) > 0


async def test_local_locks_follow_the_given_clock() -> None:
    clock = [100.0]
    limits = LocalLimits(clock=lambda: clock[0])
    assert await limits.acquire("l", 10)
    clock[0] += 9.9
    assert await limits.acquire("l", 10) is None
    clock[0] += 0.1
    assert await limits.acquire("l", 10)


@settings(max_examples=300, deadline=None)
@given(
    start=st.sampled_from([0.0, T0]),
    rate=st.floats(0.01, 100),
    burst=st.floats(0.5, 50),
    steps=st.lists(st.tuples(st.floats(-1, 10), st.floats(0, 10), st.booleans()), max_size=60),
)
def test_local_buckets_never_grant_more_than_they_earned(
    start: float, rate: float, burst: float, steps: list[tuple[float, float, bool]]
) -> None:
    """Over any steps (the clock may even step back), grants stay within burst plus
    rate times the span from the first take to the latest; and a refused take retried
    after the returned wait succeeds, or misses by less than the clock's resolution."""

    async def run() -> None:
        limits = LocalLimits()
        now = start
        first = math.inf  # the bucket exists from its first take that fits in it
        latest = -math.inf
        granted = 0.0
        for dt, cost, retry in steps:
            now += dt
            if cost <= burst and first == math.inf:
                first = now
            latest = max(latest, now)
            wait = await limits.take("k", rate, burst, now, cost)
            if wait == 0.0:
                granted += cost
            elif retry and wait < math.inf:
                now += wait
                latest = max(latest, now)
                again = await limits.take("k", rate, burst, now, cost)
                assert again <= 4 * math.ulp(max(abs(now), 1.0))
                granted += cost if again == 0.0 else 0.0
            assert granted <= burst + rate * max(latest - first, 0.0) + 1e-6

    asyncio.run(run())
