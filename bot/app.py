"""The app factory: `create_app(settings)` builds every service and wires it.

Nothing is global: the database, keys, Graph API client, outbox and turn
runner are made here and passed to whoever needs them. Connections open in
`before_serving` and close, drained, in `after_serving`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from quart import Quart, Response

from bot.config import Settings
from bot.conversation.engine import Engine
from bot.conversation.flowfile import load_flows
from bot.conversation.render import Renderer
from bot.crypto import DataKey, Keyring, WrappedKey
from bot.i18n import Texts
from bot.metrics import Metrics
from bot.policy.inbound import InboundLimiter
from bot.privacy.retention import purge_forever
from bot.runtime.conversation import ConversationTurn
from bot.runtime.conversation import Settings as TextSettings
from bot.runtime.outbox import Outbox, OutItem
from bot.runtime.turns import TurnRunner
from bot.store import contacts as contact_store
from bot.store import outbox as message_store
from bot.store.db import Database
from bot.webhook.inbox import INBOX_KEY_ID
from bot.webhook.routes import WebhookDeps, create_blueprint
from bot.whatsapp.client import GraphClient

OUTBOX_KEY_ID = "system-outbox"

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass
class Services:
    """Everything a running bot holds; tests reach in through `app.extensions["bot"]`."""

    settings: Settings
    keyring: Keyring
    db: Database
    client: GraphClient
    outbox: Outbox
    turns: TurnRunner
    metrics: Metrics
    webhook: WebhookDeps
    outbox_key: DataKey | None = None
    purge_stop: asyncio.Event = field(default_factory=asyncio.Event)
    purge_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.db.start()
        inbox_key = await self._system_key(INBOX_KEY_ID)
        self.outbox_key = await self._system_key(OUTBOX_KEY_ID)
        self.webhook.inbox_key = inbox_key
        await self.outbox.start(await self._recover_outbox())
        await self.turns.start(inbox_key)
        self.purge_task = asyncio.create_task(
            purge_forever(self.db, self.settings, self.purge_stop), name="retention"
        )
        log.info("bot started: database=%s simulator=%s", self.db.dialect, self.settings.simulator)

    async def stop(self) -> None:
        self.purge_stop.set()
        if self.purge_task is not None:
            await self.purge_task
        await self.turns.stop()
        await self.outbox.stop()
        await self.db.stop()
        await self.client.aclose()
        log.info("bot stopped")

    async def _system_key(self, key_id: str) -> DataKey:
        """A data key of the bot's own (inbox deliveries, farewells), made on first start."""
        _, wrapped = self.keyring.new_data_key(key_id)
        row = {
            "id": key_id,
            "kid": wrapped.kid,
            "wrapped": wrapped.wrapped,
            "created_at": time.time(),
        }
        kid, blob = await self.db.write(contact_store.get_or_add_key(key_id, row))
        return self.keyring.unwrap(key_id, WrappedKey(kid, blob))

    async def _recover_outbox(self) -> list[OutItem]:
        """Messages committed but not yet accepted by Meta when the last process ended.

        They are tried at once: a restart is a natural moment to retry, and the
        backoff state of the previous process says little about Meta now."""
        import orjson

        from bot.crypto import open_sealed

        items = []
        for row in await self.db.read(message_store.queued):
            if row.contact_id is None or row.kid is None or row.wrapped is None:
                dk, farewell = self.outbox_key, True
            else:
                dk = self.keyring.unwrap(row.data_key_id, WrappedKey(row.kid, row.wrapped))
                farewell = False
            body = orjson.loads(open_sealed(dk, row.body, f"messages/body/{row.id}"))
            items.append(
                OutItem(
                    message_id=row.id,
                    recipient=row.contact_id or row.id,
                    body=body,
                    attempts=row.attempts,
                    farewell=farewell,
                    actor=self.keyring.blind_index("pseudonym", row.contact_id)
                    if row.contact_id
                    else "system",
                )
            )
        if items:
            log.info("resuming %d queued messages", len(items))
        return items


def build_services(settings: Settings) -> Services:
    metrics = Metrics()

    def alert(event: str, fields: dict[str, Any]) -> None:
        metrics.alerts.labels(event).inc()

    keyring = Keyring(settings.master_keys, settings.index_key)
    db = Database(settings.DATABASE_URL)
    client = GraphClient(
        base_url=settings.api_url,
        phone_number_id=settings.phone_number_id,
        token=settings.access_token,
        fallback_token=settings.WHATSAPP_ACCESS_TOKEN_FALLBACK,
        max_connections=settings.BOT_SEND_CONCURRENCY,
        alert=alert,
    )
    outbox = Outbox(
        db,
        client,
        index_wamid=lambda wamid: keyring.blind_index("wamid", wamid),
        concurrency=settings.BOT_SEND_CONCURRENCY,
        max_attempts=settings.BOT_SEND_MAX_ATTEMPTS,
        alert=alert,
        on_result=lambda kind, outcome: metrics.sends.labels(kind, outcome).inc(),
    )
    flows = load_flows(settings.flows_dir)
    renderer = Renderer(flows, Texts(settings.locales_dir), text_settings(settings).params)
    services_ref: list[Services] = []
    conversation = ConversationTurn(
        db,
        keyring,
        Engine(flows),
        renderer,
        text_settings(settings),
        system_key=lambda: services_ref[0].outbox_key,
        limiter=InboundLimiter(settings.BOT_INBOUND_PER_MINUTE, settings.BOT_INBOUND_BURST),
    )
    turns = TurnRunner(
        db,
        keyring,
        outbox,
        conversation,
        mark_as_read=settings.BOT_MARK_AS_READ,
        on_turn=lambda outcome: metrics.turns.labels(outcome).inc(),
    )
    metrics.bind_gauges(
        writer=lambda: db.writer.depth, outbox=lambda: outbox.depth, turns=lambda: turns.active
    )
    webhook = WebhookDeps(settings=settings, keyring=keyring, db=db, turns=turns, metrics=metrics)

    async def marketing_stopped(message_id: str) -> None:
        await conversation.marketing_stopped_for_message(message_id, time.time())

    outbox.on_marketing_stopped = marketing_stopped
    services = Services(settings, keyring, db, client, outbox, turns, metrics, webhook)
    services_ref.append(services)
    return services


def text_settings(settings: Settings) -> TextSettings:
    return TextSettings(
        company=settings.BOT_COMPANY_NAME,
        privacy_url=settings.BOT_PRIVACY_URL,
        dpo_contact=settings.BOT_DPO_CONTACT,
        local_contact=settings.BOT_LOCAL_CONTACT,
        policy_version=settings.BOT_POLICY_VERSION,
        retention_days=settings.retention_days,
    )


def create_app(settings: Settings) -> Quart:
    app = Quart(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.BOT_MAX_BODY_BYTES
    app.config["BODY_TIMEOUT"] = 30
    services = build_services(settings)
    app.extensions["bot"] = services
    app.register_blueprint(create_blueprint(services.webhook))

    if settings.simulator:
        from bot.simulator.routes import mount_simulator

        mount_simulator(app, settings)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response("ok", content_type="text/plain")

    @app.get("/readyz")
    async def readyz() -> Response:
        if await services.db.ping():
            return Response("ready", content_type="text/plain")
        return Response("database unavailable", status=503, content_type="text/plain")

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(services.metrics.render(), content_type="text/plain; version=0.0.4")

    @app.after_request
    async def security_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.before_serving
    async def start() -> None:
        await services.start()

    @app.after_serving
    async def stop() -> None:
        await services.stop()

    return app
