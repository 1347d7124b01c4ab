"""Command line: `python -m bot.simulator.fake_graph --phone-number-id ID [--port 8799]`.

Runs the fake on its own, for the benchmark and for tests that need it in another process.
It prints one line, "fake graph listening on http://HOST:PORT", once the socket is bound
(callers parse the URL from it, which matters with `--port 0`), and exits on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from bot import eventloop
from bot.simulator.fake_graph.endpoints import FakeGraph
from bot.simulator.fake_graph.server import serve


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bot.simulator.fake_graph",
        description="Fake WhatsApp Cloud Graph API on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8799, help="0 picks a free port")
    parser.add_argument("--phone-number-id", required=True)
    parser.add_argument("--token", action="append", help="valid bearer token (repeatable)")
    parser.add_argument("--webhook-url", help="where status webhooks are POSTed")
    parser.add_argument("--app-secret", help="signs status webhooks (X-Hub-Signature-256)")
    parser.add_argument("--send-statuses", action="store_true", help="send sent/delivered")
    return parser.parse_args(argv)


async def _run(args: argparse.Namespace) -> None:
    fake = FakeGraph(
        phone_number_id=args.phone_number_id,
        tokens=args.token or ["test-token"],
        app_secret=args.app_secret,
        webhook_url=args.webhook_url,
        send_statuses=args.send_statuses,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve(fake, host=args.host, port=args.port) as url:
        print(f"fake graph listening on {url}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """CLI entry point: serve the fake until SIGINT/SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    eventloop.run(_run(_parse_args(argv)))


if __name__ == "__main__":
    main()
