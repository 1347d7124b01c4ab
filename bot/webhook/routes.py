"""`GET /webhook` (subscription handshake) and `POST /webhook` (deliveries).

A delivery is answered 200 only once its events are committed to the inbox;
turns run after that, so Meta never waits on a conversation. Bad input gets
a 4xx and is never stored: 401 for a bad or missing signature, 400 for a body
that is not a WhatsApp payload, 413 above the size limit (Quart enforces
MAX_CONTENT_LENGTH). A correctly signed delivery is never answered 429; a source
sending many with a bad signature gets 429 (`bot.webhook.floods`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from quart import Blueprint, Response, current_app, request

from bot import audit
from bot.config import Settings
from bot.crypto import DataKey, Keyring
from bot.observers import NULL, WebhookObserver
from bot.runtime.inbox import sealed_rows
from bot.store import StoreUnavailable
from bot.store import inbox as inbox_store
from bot.store.db import Database
from bot.webhook import floods, signature
from bot.webhook.sources import allowed, source_of
from bot.whatsapp.events import PayloadError, ValueErrors, parse_webhook

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebhookDeps:
    """What a delivery is stored with, built when the app starts (`bot.services.open_services`)."""

    keyring: Keyring
    db: Database
    inbox_key: DataKey  # seals each stored event (`bot.runtime.inbox`)
    notify: Callable[[Iterable[str]], None]  # contacts with new events (their turns start)
    observer: WebhookObserver = NULL
    failures: floods.SignatureFailures = field(
        default_factory=lambda: floods.SignatureFailures(window=60, limit=20)
    )  # failed signatures per source (`bot.webhook.floods`)


def _deps() -> WebhookDeps:
    """The running app's (`bot.app.Services.webhook`, under `app.extensions["bot"]`)."""
    deps: WebhookDeps = current_app.extensions["bot"].webhook
    return deps


def _plain(status: int, text: str) -> Response:
    return Response(text, status=status, content_type="text/plain; charset=utf-8")


def load_json(body: bytes) -> Any:
    """Parse a body the way Meta may write it.

    orjson is fast but refuses escaped lone surrogates ("\\ud83d" cut from its
    pair) and numbers beyond a double; a delivery carrying one is still real, so
    it is read with the standard library and the strays replaced with U+FFFD.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _scrub(json.loads(body))


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        return float(value)
    return value


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
        if args.get("hub.mode") == "subscribe" and args.get("hub.verify_token") == verify_token:
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
            delivery = parse_webhook(load_json(body))
        except (ValueError, PayloadError):
            deps.observer.delivery_answered("bad_payload")
            await _audit_refusal(deps, "payload", len(body))
            return _plain(400, "not a WhatsApp webhook payload")

        events = []
        for event in delivery.events:
            number = getattr(event, "phone_number_id", None)
            if number is not None and number != our_number:
                deps.observer.events_seen("other_number")
                continue
            if isinstance(event, ValueErrors):
                codes = [e.code for e in event.errors]
                log.warning("Meta reported webhook-level errors: codes=%s", codes)
            deps.observer.events_seen(type(event).__name__)
            events.append(event)
        if delivery.skipped:
            deps.observer.events_seen("skipped", delivery.skipped)

        rows, contacts = sealed_rows(deps.keyring, deps.inbox_key, events, time.time())
        if rows:
            try:
                await deps.db.write(inbox_store.accept, rows)
            except StoreUnavailable as exc:  # the store is down: not acknowledged, Meta retries
                deps.observer.delivery_answered("store_unavailable")
                log.error("webhook not stored (%s); answering 503", type(exc).__name__)
                return _plain(503, "storage unavailable, retry later")
        deps.notify(contacts)
        deps.observer.delivery_answered("stored")
        return _plain(200, "ok")

    return bp
