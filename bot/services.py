"""The wiring: every service of one process, built complete, in order.

`open_services` opens the database and the key store apart from it (migrations
run), reads or makes the bot's own data keys in the key store (`SystemKeys`),
then builds every service with what it needs (`build_services`) and starts them;
nothing is patched in later. The pieces a test builds on its own (a conversation
turn, the outbox) come from the same builders (`build_conversation`,
`build_outbox`), so a test cannot drift from what the app runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from bot.api import auth as api_auth
from bot.config import Settings
from bot.conversation.engine import Engine
from bot.conversation.flowfile import FlowSet, load_flows
from bot.conversation.render import Renderer
from bot.crypto import DataKey, Keyring, WrappedKey
from bot.i18n import Texts
from bot.metrics import Metrics
from bot.observers import NULL, Alarm, GateObserver, LimitObserver, OutboxObserver
from bot.policy.inbound import InboundLimiter
from bot.policy.limits import Limits, make_limits
from bot.policy.sending import SendGate
from bot.policy.templates import Registry, load_templates
from bot.privacy.consent import QuietRevocation
from bot.privacy.controller import Controller
from bot.privacy.countries import COUNTRIES_FILE, Countries, load_countries
from bot.privacy.notices import NOTICES_FILE, NoticeFacts, Notices, load_notices
from bot.privacy.person import People
from bot.privacy.retention import purge_forever
from bot.runtime.alerts import Alerts, FailureWatch, InboundWatch
from bot.runtime.checkpoints import checkpoint_forever, checkpoint_logged
from bot.runtime.conversation import ConversationTurn
from bot.runtime.effects import CONDITION_CHECKS, Deps
from bot.runtime.feed import OutboxFeed
from bot.runtime.inbox import INBOX_KEY_ID
from bot.runtime.inbox_watch import InboxWatch
from bot.runtime.outbox import Outbox
from bot.runtime.pacing import Pacing, Rates
from bot.runtime.turns import TurnRunner
from bot.store import keys as key_store
from bot.store.db import Database
from bot.store.keystore import open_stores
from bot.support.conversations import Queue
from bot.support.staff import Tokens
from bot.webhook import floods
from bot.webhook.floods import FailureWindows
from bot.webhook.routes import WebhookDeps
from bot.whatsapp.client import GraphClient

OUTBOX_KEY_ID = "system-outbox"
# What a process does: everything (one process, or web workers that also run turns),
# only acknowledge deliveries ("web"), or only run turns and sends ("turns").
Role = Literal["all", "web", "turns"]
TURN_WORKER_HOLD = 0.004

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything a running bot holds; tests reach in through `app.extensions["bot"]`."""

    settings: Settings
    keyring: Keyring
    db: Database
    keys: Database  # the key store: wrapped data keys, apart from the data
    people: People
    client: GraphClient
    outbox: Outbox
    turns: TurnRunner
    metrics: Metrics
    webhook: WebhookDeps
    feed: OutboxFeed
    templates: Registry
    limits: Limits
    alerts: Alerts
    api: api_auth.ApiDeps  # the support API's token checks and queue (`bot.api`)
    role: Role = "all"
    watch: InboxWatch | None = None  # turn workers: finds what the web workers stored
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
        """Start the workers: the store is open and everything built (`open_services`)."""
        if self.runs_turns:
            await self.outbox.start([])
            await self.feed.start()
            await self.turns.start(resume=self.watch is None)
            if self.watch is not None:
                await self.watch.start()
            self._background(purge_forever(self.db, self.settings, self.background_stop))
            self._background(
                checkpoint_forever(
                    self.db, self.settings.audit_key, self.settings.audit_checkpoints,
                    self.background_stop, self.settings.BOT_AUDIT_CHECKPOINT_INTERVAL,
                )
            )  # fmt: skip
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
        if bursts := self.webhook.failures.drain():
            await floods.record(self.db, self.webhook.failures.window, bursts)
        if bursts := self.api.failures.drain():
            await floods.record(self.db, self.api.failures.window, bursts, api_auth.EVENT)
        # The last entries are in: note the head they leave.
        await checkpoint_logged(self.db, self.settings.audit_key, self.settings.audit_checkpoints)
        await self.db.stop()
        await self.keys.stop()
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


@dataclass(frozen=True)
class Content:
    """What the privacy team edits: flows, texts, templates and the countries file (read
    before serving, so a broken one stops start-up before the port is taken)."""

    flows: FlowSet
    texts: Texts
    templates: Registry
    countries: Countries
    notices: Notices


def load_content(settings: Settings) -> Content:
    """Read and check the flows, texts, templates, countries and notices; raises on a
    broken file."""
    templates = load_templates(settings.templates_path)
    countries = load_countries(settings.flows_dir / COUNTRIES_FILE)
    notices = load_notices(settings.flows_dir / NOTICES_FILE)
    flows, texts = load_flows(settings.flows_dir), Texts(settings.locales_dir)
    return Content(flows, texts, templates, countries, notices)


@dataclass(frozen=True)
class SystemKeys:
    """The bot's own data keys, read from the store (made on first start) before
    anything that uses them is built."""

    inbox: DataKey  # seals deliveries between the webhook and the turns
    outbox: DataKey  # seals what is queued with no person's key (the farewell after erasure)


async def open_services(
    settings: Settings,
    content: Content,
    clock: Callable[[], float] = time.time,
    role: Role = "all",
    share: tuple[int, int] = (0, 1),
) -> Services:
    """Every service of one process, built complete and started; `Services.stop` ends
    them. `share` is (index, count) among turn workers."""
    keyring = Keyring(settings.master_keys, settings.index_key)
    # A turn worker shares SQLite's one write lock with the web workers, whose commits
    # Meta waits on: its transactions keep the lock a few milliseconds at most.
    turn_worker = role == "turns"
    db, key_db = await open_stores(  # migrations first: the system keys are in the key store
        settings.DATABASE_URL,
        settings.keystore_url,
        hold=TURN_WORKER_HOLD if turn_worker else None,
        inline=turn_worker,
        audit_key=settings.audit_key,
    )
    try:
        keys = await system_keys(key_db, keyring)
        await db.write(key_store.note_master_key, keyring.active_kid, time.time())
        services = build_services(settings, content, keyring, db, key_db, keys, clock, role, share)
    except BaseException:
        await db.stop()
        await key_db.stop()
        raise
    await services.start()
    return services


async def system_keys(db: Database, keyring: Keyring) -> SystemKeys:
    """The bot's own data keys, made on first start and read after (`db`: the key store)."""
    return SystemKeys(
        inbox=await _system_key(db, keyring, INBOX_KEY_ID),
        outbox=await _system_key(db, keyring, OUTBOX_KEY_ID),
    )


async def _system_key(db: Database, keyring: Keyring, key_id: str) -> DataKey:
    _, wrapped = keyring.new_data_key(key_id)
    row = {
        "id": key_id,
        "kid": wrapped.kid,
        "wrapped": wrapped.wrapped,
        "created_at": time.time(),
    }
    kid, blob = await db.write(key_store.get_or_add, key_id, row)
    return keyring.unwrap(key_id, WrappedKey(kid, blob))


def build_services(
    settings: Settings,
    content: Content,
    keyring: Keyring,
    db: Database,
    key_db: Database,
    keys: SystemKeys,
    clock: Callable[[], float],
    role: Role,
    share: tuple[int, int],
) -> Services:
    """Every service of one process, over an open store, not started yet."""
    metrics = Metrics()
    alerts = Alerts(db, metrics)
    limits = make_limits(settings.REDIS_URL or None, settings.BOT_REDIS_PREFIX)
    owner = uuid.uuid4().hex  # this worker, as the holder of outbox leases
    templates = content.templates
    client = GraphClient(
        base_url=settings.api_url,
        phone_number_id=settings.phone_number_id,
        token=settings.access_token,
        fallback_token=settings.WHATSAPP_ACCESS_TOKEN_FALLBACK,
        max_connections=settings.BOT_SEND_CONCURRENCY,
        alarm=alerts,
    )
    controller = Controller.from_settings(settings)
    people = People(db, keyring, key_db)
    stops = QuietRevocation(db, people, controller.policy_version)
    outbox = build_outbox(
        settings, db, keyring, client, limits, owner, templates, stops, clock,
        observer=metrics, alarm=alerts,
    )  # fmt: skip
    conversation = build_conversation(
        settings, content, db, people, keys.outbox, limits, observer=metrics
    )
    turns = TurnRunner(
        db,
        keyring,
        outbox,
        conversation,
        inbox_key=keys.inbox,
        stops=stops,
        mark_as_read=settings.BOT_MARK_AS_READ,
        clock=clock,
        observer=metrics,
        locks=limits if settings.REDIS_URL else None,
    )
    metrics.bind_gauges(
        writer=lambda: db.writer.depth,
        outbox=lambda: outbox.depth,
        outbox_age=outbox.oldest_age,
        turns=lambda: turns.active,
    )
    notify: Callable[[Iterable[str]], None] = turns.notify if role == "all" else _nobody
    volume = InboundWatch(
        metrics, alerts, deliveries=settings.BOT_ALERT_INBOUND_DELIVERIES,
        messages=settings.BOT_ALERT_INBOUND_MESSAGES, window=settings.BOT_ALERT_WINDOW,
        bad_signatures=settings.BOT_ALERT_BAD_SIGNATURES,
        clock=clock,
    )  # fmt: skip
    failures = FailureWindows(
        settings.BOT_WEBHOOK_FAILURE_WINDOW, settings.BOT_WEBHOOK_FAILURE_LIMIT, clock
    )
    webhook = WebhookDeps(keyring, db, keys.inbox, notify, observer=volume, failures=failures)
    feed = OutboxFeed(
        db, people, outbox, keys.outbox, owner, lone_worker=not settings.REDIS_URL, clock=clock
    )
    api = api_auth.ApiDeps(
        db, Tokens(db, keyring, clock),
        Queue(db, people, clock, settings.BOT_HANDOFF_TIMEOUT),
        FailureWindows(api_auth.FAILURE_WINDOW, api_auth.FAILURE_LIMIT, clock),
    )  # fmt: skip
    return Services(
        settings, keyring, db, key_db, people, client, outbox, turns, metrics, webhook, feed,
        templates, limits, alerts, api, role=role,
        watch=InboxWatch(db, turns.notify, share=share) if role == "turns" else None,
    )  # fmt: skip


def _nobody(contacts: Iterable[str]) -> None:
    """A web worker's deliveries are found by the turn workers (`InboxWatch`)."""


def build_conversation(
    settings: Settings,
    content: Content,
    db: Database,
    people: People,
    outbox_key: DataKey,
    limits: Limits,
    *,
    observer: LimitObserver = NULL,
) -> ConversationTurn:
    """One message turn: the flows' engine with its conditions, the texts, the
    controller, the inbound limit."""
    controller = Controller.from_settings(settings)
    facts = NoticeFacts(
        content.notices, settings.retention_days, settings.BOT_INBOX_KEEP_DAYS,
        content.flows.keywords, controller.params,
    )  # fmt: skip
    renderer = Renderer(content.flows, content.texts, controller.params, content.countries, facts)
    limiter = InboundLimiter(
        limits, settings.BOT_INBOUND_PER_MINUTE, settings.BOT_INBOUND_BURST, observer=observer
    )
    return ConversationTurn(
        Deps(db, people.keyring, renderer, controller),
        people,
        Engine(content.flows, CONDITION_CHECKS, content.texts.readings),
        system_key=outbox_key,
        limiter=limiter,
        first_notice=content.notices.first_contact.notice,
        handoff_timeout=settings.BOT_HANDOFF_TIMEOUT,
    )


class _Observer(OutboxObserver, GateObserver, LimitObserver, Protocol):
    """What the outbox's parts report to (`Metrics` is one)."""


def build_outbox(
    settings: Settings,
    db: Database,
    keyring: Keyring,
    client: GraphClient,
    limits: Limits,
    owner: str,
    templates: Registry,
    stops: QuietRevocation,
    clock: Callable[[], float],
    *,
    observer: _Observer = NULL,
    alarm: Alarm = NULL,
) -> Outbox:
    """The one way out to Meta: gate, pacing, retries, failure watch."""
    gate = SendGate(
        db, owner, templates, observer=observer, unreachable_days=settings.BOT_UNREACHABLE_DAYS
    )
    rates = Rates(
        per_second=settings.BOT_SEND_PER_SECOND,
        recipient_per_minute=settings.BOT_RECIPIENT_PER_MINUTE,
        recipient_burst=settings.BOT_RECIPIENT_BURST,
    )
    pacing = Pacing(limits, settings.phone_number_id, rates, observer)
    watch = FailureWatch(
        alarm,
        threshold=settings.BOT_ALERT_FAILURE_RATE,
        window=settings.BOT_ALERT_WINDOW,
        min_sends=settings.BOT_ALERT_MIN_SENDS,
        clock=clock,
    )
    return Outbox(
        db,
        client,
        pacing,
        stops=stops,
        keyring=keyring,
        concurrency=settings.BOT_SEND_CONCURRENCY,
        max_attempts=settings.BOT_SEND_MAX_ATTEMPTS,
        clock=clock,
        alarm=alarm,
        observer=observer,
        failures=watch,
        gate=gate,
    )
