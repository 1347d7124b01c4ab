"""Serving an app on loopback inside the caller's event loop, for tests and the CLI.

Tests start the fake (or any small Quart app, such as a webhook receiver) in their own loop with
`async with serve(...)`, so there is no thread or subprocess to manage and the server stops
when the block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

from quart import Quart

from bot.simulator.fake_graph.endpoints import FakeGraph
from bot.simulator.fake_graph.routes import create_app


@contextlib.asynccontextmanager
async def serve(
    target: FakeGraph | Quart, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve a fake (or any Quart app) with hypercorn in this loop; yields the base URL.

    The socket is bound before hypercorn starts, so port 0 works and requests made right
    away wait in the backlog instead of failing.
    """
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    app = create_app(target) if isinstance(target, FakeGraph) else target
    sock = socket.create_server((host, port), backlog=1024)
    bound = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.loglevel = "WARNING"
    config.graceful_timeout = 1.0
    config.backlog = 1024
    stop = asyncio.Event()
    task = asyncio.create_task(hypercorn_serve(app, config, shutdown_trigger=stop.wait))
    shown = f"[{host}]" if ":" in host else host
    try:
        yield f"http://{shown}:{bound}"
    finally:
        stop.set()
        await task
