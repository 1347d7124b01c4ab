"""Nothing acknowledged is lost: restarts, crashes (kill -9) and a Graph API that is down."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from bot.app import create_app
from bot.simulator import webhooks
from bot.simulator.fake_graph import FakeGraph
from bot.simulator.fake_graph import serve as serve_fake
from tests.conftest import (
    APP_SECRET,
    PHONE_NUMBER_ID,
    TOKEN,
    eventually,
    make_settings,
    wait_idle,
)
from tests.processes import bot_env, metric, start_bot, wait_ready
from tests.servers import free_port, running

ROOT = Path(__file__).resolve().parents[1]
SENDERS = [f"+4477009001{i:02d}" for i in range(10)]
FAILED_ATTEMPTS = "SELECT count(*) FROM messages WHERE direction='out' AND attempts > 0"
LEFT_OVER = (
    "SELECT (SELECT count(*) FROM inbox WHERE state='pending')"
    " + (SELECT count(*) FROM messages WHERE status='queued')"
)
# What a bot process holds in memory, as its /metrics shows it (live: one process).
HELD = ("bot_active_contacts", "bot_outbox_queue", "bot_store_writer_queue")


async def post_messages(http: httpx.AsyncClient, url: str, per_sender: int) -> None:
    start = int(time.time()) - per_sender  # recent, ascending: no replay, a fixed order
    for n in range(per_sender):
        for sender in SENDERS:
            body, _ = webhooks.message(
                PHONE_NUMBER_ID, sender, webhooks.text(f"message {n}"), timestamp=start + n
            )
            raw, headers = webhooks.signed(body, APP_SECRET)
            resp = await http.post(url + "/webhook", content=raw, headers=headers)
            assert resp.status_code == 200


def replies_per_sender(fake: FakeGraph) -> Counter[str]:
    return Counter(s.to for s in fake.sent)


def count(db_path: Path, query: str) -> int:
    """One number from the database of a bot running in another process."""
    db = sqlite3.connect(db_path)
    try:
        return db.execute(query).fetchone()[0]
    finally:
        db.close()


def counting(
    db_path: Path, query: str, done: Callable[[int], bool]
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return done(count(db_path, query))

    return check


async def test_pending_turns_and_queued_sends_resume_after_restart(db_url: str) -> None:
    """Deliveries acknowledged while the Graph API was down are answered once after a restart."""
    fake = FakeGraph(phone_number_id=PHONE_NUMBER_ID, tokens=[TOKEN])
    graph_port = free_port()  # nothing listens there yet: connections are refused
    api_url = f"http://127.0.0.1:{graph_port}/v21.0"
    settings = make_settings(db_url, api_url, BOT_MARK_AS_READ=False)

    app = create_app(settings)
    async with running(app) as url, httpx.AsyncClient() as http:
        # The fake is not serving yet: every send fails with a connection error.
        await post_messages(http, url, per_sender=2)
        services = app.extensions["bot"]

        async def all_turns_done() -> bool:
            return not services.turns.active

        await eventually(all_turns_done)
    async with serve_fake(fake, port=graph_port):
        app2 = create_app(settings)
        async with running(app2):
            await fake.wait_for_sent(len(SENDERS) * 2, timeout=20)
            # Idle: nothing held or settling that could still go out a second time.
            await wait_idle(app2.extensions["bot"])
    assert replies_per_sender(fake) == {s[1:]: 2 for s in SENDERS}


@pytest.mark.slow
async def test_kill_9_after_acknowledging_while_graph_is_down(tmp_path: Path) -> None:
    """The issue's crash test: ack, kill -9, restart with Meta back, each answered exactly once."""
    graph_port = free_port()  # nothing listens there yet: connections are refused
    api_url = f"http://127.0.0.1:{graph_port}/v21.0"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = bot_env(tmp_path, port, api_url)
    fake = FakeGraph(phone_number_id=PHONE_NUMBER_ID, tokens=[TOKEN])
    db_path = tmp_path / "bot.db"

    proc = start_bot(env, tmp_path)
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            await wait_ready(http, url, proc)
            await post_messages(http, url, per_sender=3)
            # Let some turns commit and their sends fail: a reply is in the store with a
            # failed attempt recorded.
            await eventually(counting(db_path, FAILED_ATTEMPTS, lambda n: n > 0))
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            # Every acknowledged delivery survived the kill, and work was left over.
            with sqlite3.connect(db_path) as db:
                assert db.execute("SELECT count(*) FROM inbox").fetchone()[0] == 30
                pending = db.execute("SELECT count(*) FROM inbox WHERE state='pending'")
                queued = db.execute("SELECT count(*) FROM messages WHERE status='queued'")
                assert pending.fetchone()[0] + queued.fetchone()[0] > 0

            async with serve_fake(fake, port=graph_port):
                proc = start_bot(env, tmp_path)
                await wait_ready(http, url, proc)
                await fake.wait_for_sent(len(SENDERS) * 3, timeout=30)

                async def nothing_left() -> bool:
                    """No turn or send pending in the store (a reply Meta accepted stays
                    queued until its send is recorded) and none held by the process."""
                    if count(db_path, LEFT_OVER):
                        return False
                    page = (await http.get(url + "/metrics")).text
                    return all(metric(page, name) == 0 for name in HELD)

                # Anything extra (a duplicate) has gone out to the fake once the bot has
                # nothing left to do; only then is the count below final.
                await eventually(nothing_left)
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert replies_per_sender(fake) == {s[1:]: 3 for s in SENDERS}
