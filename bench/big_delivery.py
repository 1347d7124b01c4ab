"""One delivery carrying thousands of messages: parse time, and whether the bot stays responsive.

    .venv/bin/python bench/big_delivery.py [--sizes 1000,10000,15000]

Meta batches messages when a number is busy, and a relay may batch more. For each size it prints:

- parse: ms to decode and parse the body into events (`intake.parse_body`), in this process;
- take in: ms for all the webhook does before storing (parse, screen, blind indexes, sealing);
- POST: ms until the bot (`python -m bot serve`, fresh SQLite, the fake Graph API behind it)
  acknowledged the delivery;
- healthz: the slowest `/healthz` answer while that POST was in flight, polled every 20 ms on
  a connection of its own (a parse on the event loop would show here as a stall as long as
  the parse), the median over the run, and the slowest in the 5 s after the acknowledgement,
  while the turns of all those messages start.

Each size gets a fresh bot (its turns would otherwise still run while the next size is
measured). Both processes are stopped in a `finally`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from webhook import PHONE_NUMBER_ID, start_bot, start_fake

from bot.config import MasterKey
from bot.crypto import Keyring
from bot.simulator import webhooks
from bot.webhook import intake

HEALTH_PERIOD = 0.02
AFTER = 5.0  # seconds of `/healthz` watched after the acknowledgement


def delivery(size: int) -> bytes:
    """One change with `size` text messages from as many people, compact like Meta's."""
    now = str(int(time.time()))
    contacts, messages = [], []
    for n in range(size):
        digits = f"4477009{n:05d}"
        contacts.append({"profile": {"name": f"Person {n}"}, "wa_id": digits})
        messages.append(
            {"from": digits, "id": webhooks.new_wamid(digits), "timestamp": now,
             "type": "text", "text": {"body": f"hello {n}"}}
        )  # fmt: skip
    value = {"contacts": contacts, "messages": messages}
    return orjson.dumps(webhooks.envelope(PHONE_NUMBER_ID, value))


async def in_process(body: bytes) -> tuple[float, float]:
    """(parse ms, take-in ms) for one body."""
    keyring = Keyring([MasterKey("k1", os.urandom(32))], os.urandom(32))
    inbox_key, _ = keyring.new_data_key("system-inbox")
    start = time.perf_counter()
    intake.parse_body(body)
    parsed = time.perf_counter()
    await intake.take_in(body, keyring, inbox_key, PHONE_NUMBER_ID, time.time())
    taken = time.perf_counter()
    return (parsed - start) * 1000, (taken - parsed) * 1000


async def watch_health(url: str, stop: asyncio.Event, out: list[tuple[float, float]]) -> None:
    """(when the answer came, ms it took) for each `/healthz` until `stop`."""
    async with httpx.AsyncClient(timeout=60.0) as client:
        while not stop.is_set():
            start = time.perf_counter()
            await client.get(f"{url}/healthz")
            out.append((time.perf_counter(), (time.perf_counter() - start) * 1000))
            await asyncio.sleep(HEALTH_PERIOD)


async def over_http(body: bytes, fake_url: str, workdir: Path) -> dict[str, Any]:
    env = {**os.environ, "BOT_LOG_LEVEL": "WARNING"}
    extra = {"BOT_MAX_BODY_BYTES": str(64 * 1024 * 1024), "BOT_INBOUND_BURST": "1000"}
    bot = await start_bot(workdir, env, fake_url, "bench-token", read=False, extra=extra)
    try:
        raw, headers = webhooks.signed(body, bot.secret)
        health: list[tuple[float, float]] = []
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch_health(bot.url, stop, health))
        await asyncio.sleep(0.2)  # a few answers before, for the median
        async with httpx.AsyncClient(timeout=300.0) as client:
            start = time.perf_counter()
            resp = await client.post(f"{bot.url}/webhook", content=raw, headers=headers)
            answered = time.perf_counter()
        await asyncio.sleep(AFTER)  # the turns of every message start meanwhile
        stop.set()
        await watcher
        during = [ms for at, ms in health if at <= answered] or [0.0]
        after = [ms for at, ms in health if at > answered] or [0.0]
        return {
            "status": resp.status_code,
            "post_ms": (answered - start) * 1000,
            "health_max_ms": max(during),
            "health_median_ms": statistics.median(ms for _, ms in health),
            "health_after_max_ms": max(after),
        }
    finally:
        bot.proc.stop(grace=5.0)


async def main(sizes: list[int]) -> None:
    print(f"{'messages':>8} {'bytes':>10} {'parse ms':>9} {'take in ms':>10} {'POST ms':>8} "
          f"{'healthz max ms':>14} {'median':>7} {'max after':>9}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bot-big-") as tmp:
        fake, fake_url = await start_fake(Path(tmp), dict(os.environ), "bench-token")
        try:
            for size in sizes:
                body = delivery(size)
                parse_ms, take_ms = await in_process(body)
                workdir = Path(tmp) / f"bot-{size}"
                workdir.mkdir()
                http = await over_http(body, fake_url, workdir)
                if http["status"] != 200:
                    print(f"POST of {size} messages answered {http['status']}", file=sys.stderr)
                print(
                    f"{size:>8} {len(body):>10} {parse_ms:>9.0f} {take_ms:>10.0f} "
                    f"{http['post_ms']:>8.0f} {http['health_max_ms']:>14.1f} "
                    f"{http['health_median_ms']:>7.1f} {http['health_after_max_ms']:>9.1f}"
                )
        finally:
            fake.stop(grace=5.0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,15000")
    args = parser.parse_args()
    asyncio.run(main([int(s) for s in args.sizes.split(",")]))
