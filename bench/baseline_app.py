"""The floor to compare the bot with: a bare Quart app on hypercorn, one worker.

`POST /webhook` reads the body and answers 200 "ok", nothing else; `GET /readyz`
answers 200. Served the way `python -m bot serve` serves the bot (hypercorn's
asyncio worker, access log off), so the ratio bot/baseline shows what the bot's
own work costs per delivery.

    python bench/baseline_app.py --port 8010
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart, Response, request


def create_app() -> Quart:
    app = Quart(__name__)

    @app.post("/webhook")
    async def webhook() -> Response:
        await request.get_data(cache=False)
        return Response("ok", content_type="text/plain; charset=utf-8")

    @app.get("/readyz")
    async def readyz() -> Response:
        return Response("ready", content_type="text/plain")

    return app


async def _main(host: str, port: int) -> None:
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.loglevel = "WARNING"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve(create_app(), config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010)
    args = parser.parse_args()
    asyncio.run(_main(args.host, args.port))


if __name__ == "__main__":
    main()
