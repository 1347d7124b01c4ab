"""Several workers, one number: with Redis, two real server processes keep one set of limits.

Both processes share the database and Redis; Meta's deliveries for one person
land on either of them. Every limit must hold for the pair as it would for one
process (not twice over), and one person's turns must still run one at a time,
in Meta's order, each exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from bot.simulator import webhooks
from bot.simulator.fake_graph import FakeGraph
from bot.simulator.fake_graph import serve as serve_fake
from tests.conftest import APP_SECRET, PHONE_NUMBER_ID, TOKEN, require
from tests.processes import bot_env, metric, start_bot, wait_ready
from tests.servers import free_port

RECENT = int(time.time()) - 3600

REDIS_URL = os.environ.get("BOT_TEST_REDIS_URL", "")
UK = "+447700900123"


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[list[str], FakeGraph, Path]]:
    """Two bot processes on one SQLite file and one Redis, and the fake Graph API."""
    require(bool(REDIS_URL), "Redis not configured (set BOT_TEST_REDIS_URL)")
    fake = FakeGraph(phone_number_id=PHONE_NUMBER_ID, tokens=[TOKEN])
    async with serve_fake(fake) as graph_url:
        shared = bot_env(tmp_path, 0, graph_url + "/v21.0")
        shared.update(
            REDIS_URL=REDIS_URL,
            BOT_REDIS_PREFIX=f"test-{uuid.uuid4().hex[:12]}:",
            BOT_INBOUND_BURST="5",
            BOT_INBOUND_PER_MINUTE="20",
            BOT_SEND_PER_SECOND="2",
        )
        procs: list[subprocess.Popen[bytes]] = []
        urls = []
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                for _ in range(2):
                    port = free_port()
                    procs.append(start_bot({**shared, "BOT_PORT": str(port)}, tmp_path))
                    urls.append(f"http://127.0.0.1:{port}")
                    await wait_ready(http, urls[-1], procs[-1])
            yield urls, fake, tmp_path
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                assert proc.wait(20) == 0
        finally:
            for proc in procs:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)


def query(tmp: Path, sql: str) -> list[tuple]:
    engine = create_engine(f"sqlite:///{tmp / 'bot.db'}")
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text(sql))]
    engine.dispose()
    return rows


async def deliver(http: httpx.AsyncClient, url: str, sender: str, words: str, ts: int) -> None:
    """`ts`: seconds after an hour ago (older than Meta's retry window would be a replay)."""
    stamp = RECENT + ts
    body, _ = webhooks.message(PHONE_NUMBER_ID, sender, webhooks.text(words), timestamp=stamp)
    raw, headers = webhooks.signed(body, APP_SECRET)
    resp = await http.post(url + "/webhook", content=raw, headers=headers)
    assert resp.status_code == 200


async def settled(tmp: Path, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.1)):
        busy = query(
            tmp,
            "SELECT (SELECT count(*) FROM inbox WHERE state='pending')"
            " + (SELECT count(*) FROM messages WHERE status='queued')",
        )
        if busy == [(0,)]:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the workers did not finish")


@pytest.mark.slow
async def test_two_processes_keep_one_inbound_limit_and_one_order(pair) -> None:
    urls, _fake, tmp = pair
    async with httpx.AsyncClient(timeout=10) as http:
        for n in range(30):  # one person, alternately to each process
            await deliver(http, urls[n % 2], UK, f"hello {n}", ts=1_000 + n)
    await settled(tmp)
    received = query(tmp, "SELECT count(*) FROM audit WHERE event='message_received'")[0][0]
    limited = query(tmp, "SELECT count(*) FROM audit WHERE event='rate_limit_exceeded'")[0][0]
    assert received == 30  # each message exactly once
    # One bucket of 5 (plus a refill of one every 3 s) for the pair, not one per process.
    turns = received - limited
    elapsed = query(tmp, "SELECT max(processed_at) - min(received_at) FROM inbox")[0][0]
    assert 5 <= turns <= 5 + int(elapsed / 3) + 1
    # One at a time, in Meta's order, whichever process took the delivery in.
    order = query(tmp, "SELECT processed_at FROM inbox WHERE kind='message' ORDER BY meta_ts")
    times = [t for (t,) in order]
    assert times == sorted(times)


@pytest.mark.slow
async def test_two_processes_share_one_send_rate(pair) -> None:
    urls, fake, tmp = pair
    senders = [f"+4477009002{i:02d}" for i in range(8)]
    async with httpx.AsyncClient(timeout=10) as http:
        for i, sender in enumerate(senders):
            await deliver(http, urls[i % 2], sender, "hello", ts=2_000 + i)
    await settled(tmp)
    times = sorted(m.at for m in fake.sent)
    assert len(times) >= len(senders)
    # 2 a second with a burst of 2, for both processes together: the 8 replies
    # need at least 3 s. Two separate buckets would have sent them in about 1 s.
    assert times[-1] - times[0] >= (len(times) - 2) / 2 - 0.25
    hits = query(tmp, "SELECT count(*) FROM messages WHERE status='sent'")[0][0]
    assert hits == len(times)


@pytest.mark.slow
async def test_serve_runs_several_workers_on_one_port(tmp_path: Path) -> None:
    require(bool(REDIS_URL), "Redis not configured (set BOT_TEST_REDIS_URL)")
    fake = FakeGraph(phone_number_id=PHONE_NUMBER_ID, tokens=[TOKEN])
    async with serve_fake(fake) as graph_url:
        port = free_port()
        env = bot_env(tmp_path, port, graph_url + "/v21.0")
        env.update(
            REDIS_URL=REDIS_URL, BOT_REDIS_PREFIX=f"test-{uuid.uuid4().hex[:12]}:", BOT_WORKERS="2"
        )
        proc = start_bot(env, tmp_path)
        url = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                await wait_ready(http, url, proc)
                children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
                assert len(children) == 2
                senders = [f"+4477009005{i:02d}" for i in range(10)]
                for i, sender in enumerate(senders):
                    await deliver(http, url, sender, "hello", ts=3_000 + i)
                await settled(tmp_path)
            assert sorted(m.to for m in fake.sent) == sorted(s[1:] for s in senders)
            # A worker that dies is started again.
            os.kill(int(children[0]), signal.SIGKILL)
            for _ in range(100):
                now = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
                if len(now) == 2 and children[0] not in now:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the dead worker was not replaced")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)


def children_of(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


async def settled_roles(pid: int, timeout: float = 10.0) -> dict[str, int]:
    """The workers' roles once both run: /readyz answers from the web worker while the
    turn worker may still be starting (or, on a loaded machine, be between two
    starts: a child that exited shows no command line until it is reaped)."""
    roles: dict[str, int] = {}
    for _ in range(int(timeout / 0.1)):
        roles = {role_of(child): child for child in children_of(pid)}
        if sorted(roles) == ["turns", "web"]:
            break
        await asyncio.sleep(0.1)
    return roles


def role_of(pid: int) -> str:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return argv[argv.index(b"--role") + 1].decode() if b"--role" in argv else ""  # a zombie


@pytest.mark.slow
async def test_a_turn_worker_of_its_own_answers_what_the_web_worker_stored(
    tmp_path: Path,
) -> None:
    """BOT_TURN_WORKERS=1, SQLite, no Redis: the web worker only acknowledges, the turn
    worker answers each message once, in order; it survives kill -9; /metrics adds up both."""
    fake = FakeGraph(phone_number_id=PHONE_NUMBER_ID, tokens=[TOKEN])
    async with serve_fake(fake) as graph_url:
        port = free_port()
        env = bot_env(tmp_path, port, graph_url + "/v21.0")
        env.update(BOT_TURN_WORKERS="1", BOT_SEND_PER_SECOND="1000")
        proc = start_bot(env, tmp_path)
        url = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                await wait_ready(http, url, proc)
                roles = await settled_roles(proc.pid)
                assert sorted(roles) == ["turns", "web"]
                senders = [f"+4477009006{i:02d}" for i in range(6)]
                for n in range(3):
                    for i, sender in enumerate(senders):
                        await deliver(http, url, sender, f"hello {n}", ts=4_000 + 10 * n + i)
                await settled(tmp_path)
                assert sorted(m.to for m in fake.sent) == sorted(s[1:] for s in senders * 3)
                # Each person's messages were answered in Meta's order.
                rows = query(
                    tmp_path,
                    "SELECT contact_index, processed_at FROM inbox WHERE kind='message'"
                    " ORDER BY contact_index, meta_ts",
                )
                for person in {ci for ci, _ in rows}:
                    times = [t for ci, t in rows if ci == person]
                    assert len(times) == 3
                    assert times == sorted(times)
                # The web worker's /metrics shows the turn worker's sends too.
                text = (await http.get(url + "/metrics")).text
                assert metric(text, 'bot_webhook_deliveries_total{outcome="stored"}') == 18
                assert metric(text, 'bot_sends_total{category="service",outcome="sent"}') == 18

                # The turn worker is killed; deliveries are still acknowledged and stored,
                # and its replacement answers each of them exactly once.
                os.kill(roles["turns"], signal.SIGKILL)
                for i, sender in enumerate(senders):
                    await deliver(http, url, sender, "still there?", ts=5_000 + i)
                for _ in range(100):
                    now = {role_of(pid): pid for pid in children_of(proc.pid)}
                    if now.get("turns") not in (None, roles["turns"]):
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("the dead turn worker was not replaced")
                await settled(tmp_path)
            assert sorted(m.to for m in fake.sent) == sorted(s[1:] for s in senders * 4)
            done = query(tmp_path, "SELECT count(*) FROM inbox WHERE state='done'")[0][0]
            assert done == 24
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)


def test_long_running_processes_use_uvloop() -> None:
    """`serve`, the turn workers and the fake run on uvloop (see bot/eventloop.py)."""
    from bot import eventloop

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert eventloop.run(loop_module()).startswith("uvloop")
