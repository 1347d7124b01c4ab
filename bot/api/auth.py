"""Who is asking: the bearer token of every `/api/v1` request, judged before its route.

A missing, unknown, expired or revoked token gets 401, the same words for each,
whatever was asked for (so a refusal never says whether it exists). Failures
are counted per source (`bot.webhook.sources.source_of`, behind trusted proxies
the forwarded address) in windows, as failed webhook signatures are
(`bot.webhook.floods`): one `api_token_refused` audit entry per window and
source, never a row per attempt; past `FAILURE_LIMIT` in a window the source
gets 429 without its token being looked up at all. Counts are per process.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from quart import Response, current_app, g, request

from bot.api.errors import PREFIX, Refused, answer, in_api
from bot.config import Settings
from bot.store.db import Database
from bot.support.conversations import Queue
from bot.support.staff import Staff, Tokens
from bot.webhook import floods
from bot.webhook.sources import source_of

FAILURE_WINDOW = 60  # seconds
FAILURE_LIMIT = 10  # failed tokens per source and window before 429
MAX_TOKEN = 256  # longer is not one of ours: refused without a lookup
EVENT = "api_token_refused"
UNAUTHORIZED = "a valid, unexpired bearer token is required (Authorization: Bearer …)"


@dataclass(frozen=True)
class ApiDeps:
    """What the API serves with, built when the app starts (`bot.services.build_services`)."""

    db: Database
    tokens: Tokens
    queue: Queue
    failures: floods.FailureWindows


def deps() -> ApiDeps:
    """The running app's (`Services.api`, under `app.extensions["bot"]`)."""
    found: ApiDeps = current_app.extensions["bot"].api
    return found


def bearer(header: str | None) -> str | None:
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN:
        return None
    return token


def staff() -> Staff:
    """The staff member this request was authenticated as (set by `authenticate`)."""
    who: Staff = g.staff
    return who


def require(right: str) -> Staff:
    """The caller, if their role has `right`; else 403."""
    who = staff()
    if not who.may(right):
        raise Refused(403, "forbidden", f"the role {who.role.value} may not do this")
    return who


async def _failed(api: ApiDeps, source: str) -> Response:
    throttled, ended = api.failures.failed(source)
    if ended:
        await floods.record(api.db, api.failures.window, ended, EVENT)
    if throttled:
        return answer(429, "too_many_requests", "too many failed attempts; wait and try again")
    return answer(401, "unauthorized", UNAUTHORIZED)


def authenticator(
    settings: Settings, openapi_path: str
) -> Callable[[], Awaitable[Response | None]]:
    """The check run before every request under `/api/v1` (the OpenAPI document aside)."""

    async def authenticate() -> Response | None:
        path = request.path
        if not in_api(path) or path == openapi_path:
            return None
        api = deps()
        source = str(source_of(request.remote_addr, request.headers, settings.trusted_proxies))
        if api.failures.blocked(source):
            return await _failed(api, source)
        token = bearer(request.headers.get("Authorization"))
        who = await api.tokens.holder(token) if token else None
        if who is None:
            return await _failed(api, source)
        g.staff = who
        return None

    return authenticate


__all__ = ["PREFIX", "ApiDeps", "authenticator", "bearer", "deps", "require", "staff"]
