"""The app factory: `create_app(settings)` builds every service and wires it.

Nothing is global: the database, keys, Graph API client, outbox and turn
runner are made here and passed to whoever needs them. Connections open in
`before_serving` and close, drained, in `after_serving`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from quart import Quart, Response

from bot.config import Settings
from bot.conversation.engine import Engine
from bot.conversation.flowfile import load_flows
from bot.conversation.render import Renderer
from bot.crypto import DataKey, Keyring, WrappedKey
from bot.i18n import Texts
from bot.metrics import Metrics
from bot.policy.inbound import InboundLimiter
from bot.policy.limits import Limits, make_limits
from bot.policy.sending import SendGate, template_status
from bot.policy.templates import Registry, load_templates
from bot.privacy.retention import purge_forever
from bot.runtime.alerts import Alerts, FailureWatch
from bot.runtime.conversation import ConversationTurn
from bot.runtime.conversation import Settings as TextSettings
from bot.runtime.feed import OutboxFeed
from bot.runtime.inbox_watch import InboxWatch
from bot.runtime.outbox import Outbox
from bot.runtime.pacing import Pacing, Rates
from bot.runtime.turns import TurnRunner
from bot.store import contacts as contact_store
from bot.store.db import Database
from bot.webhook.inbox import INBOX_KEY_ID
from bot.webhook.routes import WebhookDeps, create_blueprint
from bot.whatsapp.client import GraphClient

OUTBOX_KEY_ID = "system-outbox"
# What a process does: everything (one process, or web workers that also run turns),
# only acknowledge deliveries ("web"), or only run turns and sends ("turns").
Role = Literal["all", "web", "turns"]
TURN_WORKER_HOLD = 0.004

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
    feed: OutboxFeed
    templates: Registry
    limits: Limits
    alerts: Alerts
    role: Role = "all"
    watch: InboxWatch | None = None  # turn workers: finds what the web workers stored
    outbox_key: DataKey | None = None
    background_stop: asyncio.Event = field(default_factory=asyncio.Event)
    background: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def runs_turns(self) -> bool:
        return self.role != "web"

    @property
    def busy(self) -> bool:
        """Work in flight in this process: turns under way, messages held or being sent,
        sends Meta accepted whose record is still being written, units waiting for the
        writer. Rows waiting in the store (pending inbox events) are not counted."""
        o = self.outbox
        return bool(
            self.turns.active or o.depth or o.in_flight or o.settling or self.db.writer.depth
        )

    async def start(self) -> None:
        await self.db.start()
        inbox_key = await self._system_key(INBOX_KEY_ID)
        self.outbox_key = await self._system_key(OUTBOX_KEY_ID)
        self.webhook.inbox_key = inbox_key
        if self.runs_turns:
            await self.outbox.start([])
            await self.feed.start()
            await self.turns.start(inbox_key, resume=self.watch is None)
            if self.watch is not None:
                await self.watch.start()
            self._background(purge_forever(self.db, self.settings, self.background_stop))
        if self.metrics.shared:
            self._background(self._refresh_metrics())
        log.info(
            "bot started: role=%s database=%s simulator=%s",
            self.role, self.db.dialect, self.settings.simulator,
        )  # fmt: skip

    async def stop(self) -> None:
        self.background_stop.set()
        await asyncio.gather(*self.background)
        if self.runs_turns:
            if self.watch is not None:
                await self.watch.stop()
            await self.turns.stop()
            await self.outbox.stop()
            await self.feed.stop()
        await self.alerts.drain()
        await self.db.stop()
        await self.client.aclose()
        await self.limits.aclose()
        log.info("bot stopped")

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        self.background.append(asyncio.create_task(work))

    async def _refresh_metrics(self) -> None:
        """Gauges for the other processes' scrapes (see `bot.metrics`)."""
        while not self.background_stop.is_set():
            self.metrics.refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.background_stop.wait(), 1.0)

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


def build_services(
    settings: Settings,
    clock: Callable[[], float] = time.time,
    role: Role = "all",
    share: tuple[int, int] = (0, 1),
) -> Services:
    """Every service of one process. `share` is (index, count) among turn workers."""
    metrics = Metrics()
    keyring = Keyring(settings.master_keys, settings.index_key)
    # A turn worker shares SQLite's one write lock with the web workers, whose commits
    # Meta waits on: its transactions keep the lock a few milliseconds at most.
    turn_worker = role == "turns"
    db = Database(
        settings.DATABASE_URL, hold=TURN_WORKER_HOLD if turn_worker else None, inline=turn_worker
    )
    alerts = Alerts(db, lambda event: metrics.alerts.labels(event).inc())
    limits = make_limits(settings.REDIS_URL or None, settings.BOT_REDIS_PREFIX)
    owner = uuid.uuid4().hex  # this worker, as the holder of outbox leases
    templates = load_templates(settings.templates_path)
    client = GraphClient(
        base_url=settings.api_url,
        phone_number_id=settings.phone_number_id,
        token=settings.access_token,
        fallback_token=settings.WHATSAPP_ACCESS_TOKEN_FALLBACK,
        max_connections=settings.BOT_SEND_CONCURRENCY,
        alert=alerts.raise_,
    )
    outbox = _build_outbox(
        settings, db, keyring, client, metrics, alerts, limits, owner, templates, clock
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
        limiter=InboundLimiter(
            limits,
            settings.BOT_INBOUND_PER_MINUTE,
            settings.BOT_INBOUND_BURST,
            on_hit=metrics.limit_hits.labels("inbound").inc,
        ),
        handoff_timeout=settings.BOT_HANDOFF_TIMEOUT,
    )
    turns = TurnRunner(
        db,
        keyring,
        outbox,
        conversation,
        mark_as_read=settings.BOT_MARK_AS_READ,
        clock=clock,
        on_turn=lambda outcome: metrics.turns.labels(outcome).inc(),
        locks=limits if settings.REDIS_URL else None,
    )
    metrics.bind_gauges(
        writer=lambda: db.writer.depth,
        outbox=lambda: outbox.depth,
        outbox_age=outbox.oldest_age,
        turns=lambda: turns.active,
    )
    notify: Callable[[Iterable[str]], None] = turns.notify if role == "all" else _nobody
    webhook = WebhookDeps(settings=settings, keyring=keyring, db=db, notify=notify, metrics=metrics)

    async def marketing_stopped(message_id: str) -> None:
        await conversation.stops.for_message(message_id, clock())

    outbox.on_marketing_stopped = marketing_stopped
    feed = OutboxFeed(
        db, keyring, outbox, lambda: services_ref[0].outbox_key, owner,
        lone_worker=not settings.REDIS_URL, clock=clock,
    )  # fmt: skip
    services = Services(
        settings, keyring, db, client, outbox, turns, metrics, webhook, feed, templates,
        limits, alerts, role=role,
        watch=InboxWatch(db, turns.notify, share=share) if role == "turns" else None,
    )  # fmt: skip
    services_ref.append(services)
    return services


def _nobody(contacts: Iterable[str]) -> None:
    """A web worker's deliveries are found by the turn workers (`InboxWatch`)."""


def _build_outbox(
    settings: Settings,
    db: Database,
    keyring: Keyring,
    client: GraphClient,
    metrics: Metrics,
    alerts: Alerts,
    limits: Limits,
    owner: str,
    templates: Registry,
    clock: Callable[[], float],
) -> Outbox:
    """The one way out to Meta: gate, pacing, retries, failure watch."""
    gate = SendGate(
        db,
        owner,
        template_status=lambda name: template_status(templates, name),
        on_refused=lambda reason, category: metrics.refusals.labels(reason, category).inc(),
    )
    rates = Rates(
        per_second=settings.BOT_SEND_PER_SECOND,
        recipient_per_minute=settings.BOT_RECIPIENT_PER_MINUTE,
        recipient_burst=settings.BOT_RECIPIENT_BURST,
    )
    on_hit = metrics.limit_hits.labels
    pacing = Pacing(limits, settings.phone_number_id, rates, lambda limit: on_hit(limit).inc())
    watch = FailureWatch(
        alerts,
        threshold=settings.BOT_ALERT_FAILURE_RATE,
        window=settings.BOT_ALERT_WINDOW,
        min_sends=settings.BOT_ALERT_MIN_SENDS,
        clock=clock,
    )
    return Outbox(
        db,
        client,
        pacing,
        index_wamid=lambda wamid: keyring.blind_index("wamid", wamid),
        concurrency=settings.BOT_SEND_CONCURRENCY,
        max_attempts=settings.BOT_SEND_MAX_ATTEMPTS,
        clock=clock,
        alert=alerts.raise_,
        on_result=lambda category, outcome: metrics.sends.labels(category, outcome).inc(),
        on_graph_error=lambda code: metrics.graph_errors.labels(code).inc(),
        failures=watch,
        gate=gate,
    )


def text_settings(settings: Settings) -> TextSettings:
    return TextSettings(
        company=settings.BOT_COMPANY_NAME,
        privacy_url=settings.BOT_PRIVACY_URL,
        dpo_contact=settings.BOT_DPO_CONTACT,
        local_contact=settings.BOT_LOCAL_CONTACT,
        policy_version=settings.BOT_POLICY_VERSION,
        retention_days=settings.retention_days,
    )


def create_app(
    settings: Settings, clock: Callable[[], float] = time.time, role: Role = "all"
) -> Quart:
    """The bot as an ASGI app. `clock` is the time every rule is judged by (tests move it);
    `role` "web" leaves turns and sends to turn workers (see `run_turn_worker`)."""
    app = Quart(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.BOT_MAX_BODY_BYTES
    app.config["BODY_TIMEOUT"] = 30
    services = build_services(settings, clock, role)
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


async def run_turn_worker(settings: Settings, share: tuple[int, int], stop: asyncio.Event) -> None:
    """A process that runs turns and sends only, until `stop` is set; no HTTP server."""
    services = build_services(settings, role="turns", share=share)
    await services.start()
    try:
        await stop.wait()
    finally:
        await services.stop()
