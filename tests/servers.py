"""Real HTTP servers on loopback for tests: the bot and the fake Graph API."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config


def free_socket(port: int = 0) -> socket.socket:
    """A listening loopback socket; hand it to `running` to serve on it.

    To stand for a server that is down, use `free_port()` and bind later: a
    socket that listens but is not served would queue requests and answer them
    once served, which is not how a server that is down behaves.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def running(app: Any, sock: socket.socket | None = None) -> AsyncIterator[str]:
    """Serve an ASGI app with hypercorn in this event loop; yields its base URL.

    Startup hooks have run when this yields; shutdown hooks (the bot drains its
    writer and outbox) have run when it exits.
    """
    sock = sock or free_socket()
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 5
    stop = asyncio.Event()
    started = asyncio.Event()

    async def app_with_signal(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":

            async def receive_wrapper() -> Any:
                return await receive()

            async def send_wrapper(message: Any) -> None:
                if message["type"] == "lifespan.startup.complete":
                    started.set()
                await send(message)

            await app(scope, receive_wrapper, send_wrapper)
            return
        await app(scope, receive, send)

    task = asyncio.create_task(serve(app_with_signal, config, shutdown_trigger=stop.wait))
    waiter = asyncio.create_task(started.wait())
    done, _ = await asyncio.wait({task, waiter}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        task.result()
        raise RuntimeError("server stopped during startup")
    if waiter not in done:
        raise TimeoutError("server did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        with contextlib.suppress(OSError):
            sock.close()
