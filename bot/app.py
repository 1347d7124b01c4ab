"""The app factory: `create_app(settings)` makes the app, which builds every
service and wires it when it starts serving (`open_services`).

Nothing is global: the database, keys, Graph API client, outbox and turn
runner are made here and passed to whoever needs them, each one complete when
it is made (nothing is patched in later). That fixes the order:

1. `create_app`: the files the privacy team edits (`load_content`) are read,
   so a broken one stops start-up with one line before the port is taken, and
   the routes are registered.
2. `open_services`, when the app starts serving (`before_serving`): the
   database opens (migrations run), the bot's own data keys are read or made
   (`SystemKeys`), then every service is built with the keys it needs
   (`build_services`) and started.
3. `Services.stop`, in `after_serving`: drained and closed.

The routes reach the running services through `current_app.extensions["bot"]`,
as do the tests (through `app.extensions["bot"]`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from quart import Quart, Response, current_app

from bot.api import routes as api
from bot.config import Settings
from bot.services import Role, Services, load_content, open_services
from bot.webhook import access_log
from bot.webhook.routes import create_blueprint

EXTENSION = "bot"  # where the running app keeps its services (`app.extensions`)


SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

__all__ = ["EXTENSION", "Role", "Services", "create_app", "current_services", "run_turn_worker"]


def current_services() -> Services:
    """The services of the app serving this request (built when it started)."""
    services: Services = current_app.extensions[EXTENSION]
    return services


def create_app(
    settings: Settings, clock: Callable[[], float] = time.time, role: Role = "all"
) -> Quart:
    """The bot as an ASGI app. `clock` is the time every rule is judged by (tests move it);
    `role` "web" leaves turns and sends to turn workers (see `run_turn_worker`)."""
    app = Quart(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.BOT_MAX_BODY_BYTES
    app.config["BODY_TIMEOUT"] = 30
    content = load_content(settings)
    access_log.install(app, settings)
    app.register_blueprint(create_blueprint(settings))
    api.install(app, settings)

    if settings.simulator:
        from bot.simulator.routes import mount_simulator

        mount_simulator(app, settings)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response("ok", content_type="text/plain")

    @app.get("/readyz")
    async def readyz() -> Response:
        if await current_services().db.ping():
            return Response("ready", content_type="text/plain")
        return Response("database unavailable", status=503, content_type="text/plain")

    @app.get("/metrics")
    async def metrics() -> Response:
        text = current_services().metrics.render()
        return Response(text, content_type="text/plain; version=0.0.4")

    @app.after_request
    async def security_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.before_serving
    async def start() -> None:
        app.extensions[EXTENSION] = await open_services(settings, content, clock, role)

    @app.after_serving
    async def stop() -> None:
        await app.extensions[EXTENSION].stop()

    return app


async def run_turn_worker(settings: Settings, share: tuple[int, int], stop: asyncio.Event) -> None:
    """A process that runs turns and sends only, until `stop` is set; no HTTP server."""
    content = load_content(settings)
    services = await open_services(settings, content, role="turns", share=share)
    try:
        await stop.wait()
    finally:
        await services.stop()
