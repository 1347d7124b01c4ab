"""The access log: one line per HTTP request, fit for audit analysis.

Each line (logger `bot.access`, INFO) holds the time, the source address (as
`bot.webhook.sources` resolves it behind trusted proxies), method, path
without its query string, status, response size in bytes and latency in
milliseconds, and nothing else: no query string (`hub.verify_token` travels in
one), no header, no body. Hypercorn's own access log was not used: its
fields give the socket's peer (the proxy, with its port), a size only when a
Content-Length header was set, and local time.
"""

from __future__ import annotations

import logging
import time

from quart import Quart, Response, g, request

from bot.config import Settings
from bot.webhook.sources import source_of

log = logging.getLogger("bot.access")


def install(app: Quart, settings: Settings) -> None:
    """Log every request `app` answers (when `BOT_ACCESS_LOG` is on)."""
    if not settings.BOT_ACCESS_LOG:
        return
    proxies = settings.trusted_proxies

    @app.before_request
    async def started() -> None:
        g.access_started = time.perf_counter()

    @app.after_request
    async def access(response: Response) -> Response:
        began = getattr(g, "access_started", None)
        ms = (time.perf_counter() - began) * 1000 if began is not None else 0.0
        source = source_of(request.remote_addr, request.headers, proxies)
        size = response.content_length
        log.info(
            "%s %s %s %s %s %.1fms",
            source or "-", request.method, request.path, response.status_code,
            "-" if size is None else size, ms,
            extra={"status": response.status_code, "duration_ms": round(ms, 1)},
        )  # fmt: skip
        return response
