"""`GET /webhook` (subscription handshake) and `POST /webhook` (deliveries).

A delivery is answered 200 only once its events are committed to the inbox;
turns run after that, so Meta never waits on a conversation. Bad input gets
a 4xx and is never stored: 401 for a bad or missing signature, 400 for a body
that is not a WhatsApp payload, 413 above the size limit (Quart enforces
MAX_CONTENT_LENGTH). A correctly signed delivery is never answered 429; a source
sending many with a bad signature gets 429 (`bot.webhook.floods`).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from quart import Blueprint, Response, current_app, request

from bot import audit
from bot.config import Settings
from bot.crypto import DataKey, Keyring
from bot.observers import NULL, WebhookObserver
from bot.store import Conn, StoreUnavailable
from bot.store import inbox as inbox_store
from bot.store.db import Database
from bot.webhook import floods, signature
from bot.webhook.intake import Intake, take_in
from bot.webhook.sources import allowed, source_of
from bot.whatsapp.events import PayloadError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebhookDeps:
    """What a delivery is stored with, built when the app starts (`bot.services.open_services`)."""

    keyring: Keyring
    db: Database
    inbox_key: DataKey  # seals each stored event (`bot.runtime.inbox`)
    notify: Callable[[Iterable[str]], None]  # contacts with new events (their turns start)
    observer: WebhookObserver = NULL
    failures: floods.FailureWindows = field(
        default_factory=lambda: floods.FailureWindows(window=60, limit=20)
    )  # failed signatures per source (`bot.webhook.floods`)


def _deps() -> WebhookDeps:
    """The running app's (`bot.app.Services.webhook`, under `app.extensions["bot"]`)."""
    deps: WebhookDeps = current_app.extensions["bot"].webhook
    return deps


def _plain(status: int, text: str) -> Response:
    return Response(text, status=status, content_type="text/plain; charset=utf-8")


async def _refuse_signature(settings: Settings, deps: WebhookDeps, size: int) -> Response:
    """401, or 429 once the source (behind `BOT_TRUSTED_PROXIES`, the forwarded one) is
    past its limit; failures are audited a burst at a time (`bot.webhook.floods`), never
    one row per request."""
    source = source_of(request.remote_addr, request.headers, settings.trusted_proxies)
    throttled, ended = deps.failures.failed(source)
    if ended:
        await floods.record(deps.db, deps.failures.window, ended)
    if throttled:
        deps.observer.delivery_answered("throttled")
        return _plain(429, "too many requests with a bad signature")
    deps.observer.delivery_answered("bad_signature")
    log.warning("webhook refused: bad or missing signature (%d bytes)", size)
    return _plain(401, "invalid signature")


async def _audit_refusal(deps: WebhookDeps, reason: str, size: int) -> None:
    event = audit.Event(
        audit.SYSTEM, "webhook_validation_failed", outcome="refused",
        detail={"reason": reason, "bytes": size},
    )  # fmt: skip
    try:
        await deps.db.write(audit.append, [event])
    except StoreUnavailable as exc:  # the refusal stands even if it cannot be recorded
        log.error("could not audit a refused webhook (%s)", type(exc).__name__)


def _source_refused(settings: Settings, deps: WebhookDeps) -> Response | None:
    """403 for a delivery from outside `BOT_WEBHOOK_ALLOW_FROM`, before its body is read.
    Counted (`bot_webhook_deliveries{outcome="source_refused"}`), not audited: a scan
    from the internet would otherwise write a row per request."""
    allow_from = settings.webhook_allow_from
    if not allow_from:
        return None
    source = source_of(request.remote_addr, request.headers, settings.trusted_proxies)
    if allowed(source, allow_from):
        return None
    deps.observer.delivery_answered("source_refused")
    return _plain(403, "source not allowed")


def _same(given: str | None, expected: str) -> bool:
    """The verify token, compared in constant time (as bytes: `compare_digest` takes
    only ASCII text, and a token sent by anyone may hold anything)."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


# What `intake` set aside or changed, audited once per delivery with its count (never an
# id): kind -> (audit event, outcome).
_AUDITED = {
    "timestamp_clamped": ("webhook_timestamp_clamped", "kept"),
    "replay_ignored": ("webhook_replay_ignored", "ignored"),
    "unwritable": ("webhook_event_dropped", "dropped"),
}


def _report(deps: WebhookDeps, intake: Intake) -> None:
    """Count what a delivery held, by kind; Meta's own webhook-level errors are logged."""
    for kind, count in intake.seen.items():
        deps.observer.events_seen(kind, count)
    if intake.meta_errors:
        log.warning("Meta reported webhook-level errors: codes=%s", intake.meta_errors)


async def _store(deps: WebhookDeps, intake: Intake) -> None:
    """Commit a delivery's rows and the audit of what was set aside, in one unit.

    Statuses for recipients the bot does not know (never written to, or erased since)
    are dropped inside the unit (`inbox_store.accept`) and counted."""
    events = [
        audit.Event(audit.SYSTEM, name, outcome=outcome, detail={"count": intake.seen[kind]})
        for kind, (name, outcome) in _AUDITED.items()
        if intake.seen[kind]
    ]
    if not intake.rows and not events:
        return

    def unit(conn: Conn) -> int:
        dropped = inbox_store.accept(conn, intake.rows)
        if events:
            audit.append(conn, events)
        return dropped

    dropped = await deps.db.write(unit)
    if dropped:
        deps.observer.events_seen("status_unknown_recipient", dropped)


def create_blueprint(settings: Settings) -> Blueprint:
    """The routes, registered when the app is made; what a delivery is stored with is
    found on the running app (`_deps`), since it is built once the store is open."""
    bp = Blueprint("webhook", __name__)
    secrets = settings.app_secrets
    verify_token = settings.WHATSAPP_VERIFY_TOKEN
    our_number = settings.phone_number_id

    @bp.get("/webhook")
    async def handshake() -> Response:
        args = request.args
        token = args.get("hub.verify_token")
        if args.get("hub.mode") == "subscribe" and _same(token, verify_token):
            return _plain(200, args.get("hub.challenge", ""))
        return _plain(403, "verification failed")

    @bp.post("/webhook")
    async def deliver() -> Response:
        deps = _deps()
        if (refused := _source_refused(settings, deps)) is not None:
            return refused
        body = await request.get_data(cache=False)
        assert isinstance(body, bytes)
        if not signature.verify(secrets, body, request.headers.get("X-Hub-Signature-256")):
            return await _refuse_signature(settings, deps, len(body))
        try:
            intake = await take_in(body, deps.keyring, deps.inbox_key, our_number, time.time())
        except PayloadError as exc:
            deps.observer.delivery_answered("bad_payload")
            await _audit_refusal(deps, "payload", len(body))
            return _plain(400, f"not a WhatsApp webhook payload: {exc}")
        _report(deps, intake)
        try:
            await _store(deps, intake)
        except StoreUnavailable as exc:  # the store is down: not acknowledged, Meta retries
            deps.observer.delivery_answered("store_unavailable")
            log.error("webhook not stored (%s); answering 503", type(exc).__name__)
            return _plain(503, "storage unavailable, retry later")
        deps.notify(intake.contacts)
        deps.observer.delivery_answered("stored")
        return _plain(200, "ok")

    return bp
