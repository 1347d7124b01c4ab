"""Serving on loopback inside the caller's event loop, for tests, the CLI and the benchmark.

Tests start the fake (or any small Quart app, such as a webhook receiver) in their own loop with
`async with serve(...)`, so there is no thread or subprocess to manage and the server stops
when the block ends. The fake is served by aiohttp (see `aio.py`), a Quart app by hypercorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

from aiohttp import web
from quart import Quart

from bot.simulator.fake_graph.aio import create_app
from bot.simulator.fake_graph.endpoints import FakeGraph


@contextlib.asynccontextmanager
async def serve(
    target: FakeGraph | Quart, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve a fake (or any Quart app) in this loop; yields the base URL.

    The socket is bound before the server starts, so port 0 works and requests made right
    away wait in the backlog instead of failing.
    """
    sock = socket.create_server((host, port), backlog=1024)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}"
    if isinstance(target, FakeGraph):
        runner = web.AppRunner(create_app(target), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.SockSite(runner, sock, backlog=1024).start()
        try:
            yield url
        finally:
            await runner.cleanup()
        return
    async with _hypercorn(target, sock):
        yield url


@contextlib.asynccontextmanager
async def _hypercorn(app: Quart, sock: socket.socket) -> AsyncIterator[None]:
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.loglevel = "WARNING"
    config.graceful_timeout = 1.0
    config.backlog = 1024
    stop = asyncio.Event()
    task = asyncio.create_task(hypercorn_serve(app, config, shutdown_trigger=stop.wait))
    try:
        yield
    finally:
        stop.set()
        await task
