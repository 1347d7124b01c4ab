"""The data-protection proof on raw bytes: nothing personal in plaintext, anywhere.

A scripted conversation goes through the real bot over real HTTP, covering every
flow, with three people: a UK number, a German number and a username user known
only by a business-scoped user id (BSUID). Everything the process logs, at DEBUG
and including the libraries and hypercorn's error log, is written by the bot's
own logging set-up to a file. Then the raw SQLite files (also copied while the
bot still runs, so the WAL still holds the data) or every row of every
PostgreSQL table, and the log file, are searched for each number (E.164, digits,
national format), profile name, username, message text, message id and BSUID.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import shutil
import time
import unicodedata
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypercorn.asyncio import serve
from hypercorn.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot import logs
from bot.app import create_app
from bot.policy.business import SendRefused, TemplateSend, queue_template, queue_text
from bot.runtime.conversation import ConversationTurn
from bot.simulator import webhooks
from bot.simulator.fake_graph import FakeGraph
from tests.conftest import APP_SECRET, PHONE_NUMBER_ID, Bot, eventually, make_settings
from tests.servers import free_socket

UK, UK_NATIONAL = "+447700900123", ["07700 900123", "07700900123", "7700 900123"]
DE, DE_NATIONAL = "+491713920042", ["0171 3920042", "01713920042", "171 3920042"]
BSUID, PARENT_BSUID = "US.58213097441266870355", "US.90417732650918264473"
NAMES = {UK: "Alice Liddell", DE: "Jürgen Müller", BSUID: "Wilhelmina Quist"}
USERNAME = "@wilhelmina_quist"

# Free texts people type; keywords like STOP are too common a word to search for.
UK_HELLO = "Hello there, my secret plan 7431"
UK_RESIDENCE = "I live in Deutschland"
UK_TO_AGENT = "please call me back on 07700 900123, code word bluebird-5531"
UK_CORRECTION = "Mein Geburtsdatum ist falsch: 3. Mai 1961, Kundennummer 40917"
DE_HELLO = "Guten Tag, mein geheimer Plan 5512"
BSUID_HELLO = "Does it come in teal? secret 9034"
TEXTS = [UK_HELLO, UK_RESIDENCE, UK_TO_AGENT, UK_CORRECTION, DE_HELLO, BSUID_HELLO]
FAILING = "this one makes the turn fail once 6620"
# Business-initiated: a template to a consenting person, one to a number never
# met (its contact is created, sealed), a refusal for another, a support text.
STRANGER, REFUSED = "+447700900456", "+447700900789"
OFFER = "a secret voucher 4417"
SUPPORT_TEXT = "Your parcel 88213 is with the neighbour"


# ---- the bot, served like `python -m bot serve` serves it


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Like tests.servers.running, but with hypercorn's error log going to the bot's log."""
    sock = free_socket()
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    config.errorlog = logs.hypercorn_error_logger()
    config.graceful_timeout = 5
    stop, started = asyncio.Event(), asyncio.Event()

    async def app_with_signal(scope: Any, receive: Any, send: Any) -> None:
        async def send_wrapper(message: Any) -> None:
            if message["type"] == "lifespan.startup.complete":
                started.set()
            await send(message)

        await app(scope, receive, send_wrapper if scope["type"] == "lifespan" else send)

    task = asyncio.create_task(serve(app_with_signal, config, shutdown_trigger=stop.wait))
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if not started.is_set():
        waiter.cancel()
        raise RuntimeError("bot did not start") from task.exception() if task.done() else None
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        with contextlib.suppress(OSError):  # hypercorn closed it already
            sock.close()


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[tuple[Path, logging.Handler]]:
    """All log output of the process, through the bot's own set-up, into a file."""
    manager = logging.Logger.manager
    loggers = [logging.getLogger()] + [
        lg for lg in manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    loggers += [logging.getLogger(n) for n in (*logs.NOISY, *logs.GUARDED)]
    saved = [(lg, lg.handlers[:], lg.filters[:], lg.level, lg.propagate) for lg in loggers]
    path = tmp_path / "bot.log"
    with path.open("w", encoding="utf-8") as stream:
        handler = logs.configure("DEBUG", stream=stream)
        # The libraries too, at their most verbose: SQLAlchemy prints every statement with
        # its parameters, httpx/httpcore every request. (aiosqlite's DEBUG lines repeat
        # SQLAlchemy's and would only double the time.)
        for name in set(logs.NOISY) - {"aiosqlite"}:
            logging.getLogger(name).setLevel(logging.DEBUG)
        try:
            yield path, handler
        finally:
            for lg, handlers, filters, level, propagate in saved:
                lg.handlers[:] = handlers
                lg.filters[:] = filters
                lg.setLevel(level)
                lg.propagate = propagate


@dataclass
class Person:
    """One person's side of the chat; people talk at the same time, each waits for their own
    replies (the bot runs different people's turns concurrently)."""

    bot: Bot
    who: str
    wamids: list[str]
    got: int = 0

    async def say(self, content: str | dict[str, Any], replies: int = 1) -> list[Any]:
        """Send text or a tap; wait for the bot's `replies` to this person."""
        payload = webhooks.text(content) if isinstance(content, str) else content
        if self.who == BSUID:
            body, wamid = bsuid_message(payload)
            assert (await self.bot.post(body)).status_code == 200
        else:
            wamid = await self.bot.say(self.who, payload, name=NAMES[self.who])
        self.wamids.append(wamid)
        fake, start = self.bot.fake, self.got
        self.got += replies

        async def answered() -> bool:
            return len(fake.messages_for(self.who)) >= self.got

        await eventually(answered, interval=0.01)
        return [m.body for m in fake.messages_for(self.who)[start : self.got]]

    async def tap(self, reply_id: str, replies: int = 1) -> list[Any]:
        kind = webhooks.list_reply if reply_id.startswith("language.") else webhooks.button_reply
        return await self.say(kind(reply_id, "x"), replies)


def bsuid_message(payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A message from a username user: no number anywhere, only the BSUID (sample 19)."""
    wamid = webhooks.new_wamid("58213097441266870355")
    contact = {
        "profile": {"name": NAMES[BSUID], "username": USERNAME},
        "user_id": BSUID,
        "parent_user_id": PARENT_BSUID,
    }
    message = {
        "from_user_id": BSUID, "from_parent_user_id": PARENT_BSUID, "id": wamid,
        "timestamp": str(int(time.time())), **payload,
    }  # fmt: skip
    return webhooks.envelope(PHONE_NUMBER_ID, {"contacts": [contact], "messages": [message]}), wamid


async def uk(p: Person) -> bytes:
    """Opt-in with Yes, MY DATA + export, typed residence, language, a typed correction,
    handoff, STOP, START."""
    await p.say(UK_HELLO)
    await p.say("JOIN", 2)
    await p.tap("optin.yes")
    await p.say("MY DATA", 2)
    (document,) = await p.tap("my_data.export")  # the file, captioned
    await p.say("RESIDENCE")
    (residence,) = await p.say(UK_RESIDENCE)
    assert "GDPR" in json.dumps(residence)
    await p.say("LANGUAGE")
    await p.tap("language.de")
    await p.say("BERICHTIGEN")
    await p.tap("correct.other")
    await p.say(UK_CORRECTION)
    await p.say("AGENT")
    await p.say(UK_TO_AGENT, 0)  # handed off: the bot stays quiet
    await p.say("STOP", 2)  # confirmed, and told they still wait for staff
    await p.say("START", 2)
    await p.tap("optin.yes", 2)
    return p.bot.fake.media[document["document"]["id"]][0]


async def de(p: Person) -> None:
    """One turn fails with personal data in the exception; then opt-in and erasure."""
    await p.say(FAILING)
    await p.say(DE_HELLO)
    await p.say("BEITRETEN", 2)
    await p.say("ja")
    await p.say("MEINE DATEN LÖSCHEN")
    await p.tap("erase.yes")


async def username_user(p: Person) -> None:
    await p.say(BSUID_HELLO)
    await p.say("JOIN", 2)
    await p.tap("optin.yes")
    await p.say("MY DATA", 2)
    (document,) = await p.tap("my_data.export")
    assert document["type"] == "document"
    await p.say("STOP")


# A failed delivery as Meta reports it (payload sample 16).
UNDELIVERABLE = {
    "code": 131026, "title": "Receiver is incapable of receiving this message",
    "message": "Receiver is incapable of receiving this message",
    "error_data": {"details": "Message Undeliverable."},
}  # fmt: skip


async def conversation(bot: Bot, wamids: list[str]) -> bytes:
    """Every flow, by three people at once; returns the UK person's export document."""
    export, _, _ = await asyncio.gather(
        uk(Person(bot, UK, wamids)), de(Person(bot, DE, wamids)),
        username_user(Person(bot, BSUID, wamids)),
    )  # fmt: skip
    await business_initiated(bot)
    first, last = bot.fake.messages_for(UK)[0].wamid, bot.fake.messages_for(UK)[-1].wamid
    await bot.post(webhooks.status(PHONE_NUMBER_ID, first, UK, "read"))
    await bot.post(webhooks.status(PHONE_NUMBER_ID, last, UK, "failed", errors=[UNDELIVERABLE]))
    await bot.idle()
    return export


async def business_initiated(bot: Bot) -> None:
    s = bot.services
    promo = {"name": NAMES[UK], "offer": OFFER, "until": "Friday"}
    order = {"name": NAMES[UK], "order": "88213", "status": "shipped"}
    await queue_template(
        s.db, s.people, s.templates, TemplateSend(UK, "promo_offer", "marketing", promo), tier=None
    )
    await queue_template(
        s.db, s.people, s.templates, TemplateSend(STRANGER, "order_update", "utility", order),
        tier=None,
    )  # fmt: skip
    with pytest.raises(SendRefused):
        await queue_template(
            s.db, s.people, s.templates, TemplateSend(REFUSED, "promo_offer", "marketing", promo),
            tier=None,
        )  # fmt: skip
    await queue_text(s.db, s.people, UK, SUPPORT_TEXT)

    async def all_sent() -> bool:
        queued = await bot.sql("SELECT count(*) FROM messages WHERE status='queued'")
        return not queued[0][0]

    await eventually(all_sent)  # the feed claims them from the store within a second
    assert [m.body["type"] for m in bot.fake.messages_for(STRANGER)] == ["template"]
    assert SUPPORT_TEXT in json.dumps([m.body for m in bot.fake.messages_for(UK)])


def fail_once_on(monkeypatch: pytest.MonkeyPatch, trigger: str) -> list[str]:
    """Make the turn of `trigger` raise once, quoting everything personal it has."""
    original = ConversationTurn.handle
    failed: list[str] = []

    async def handle(self: ConversationTurn, pending: Any, msg: Any, now: float) -> Any:
        if msg.text == trigger and not failed:
            failed.append(msg.id)
            raise RuntimeError(f"cannot handle {msg.sender} {msg.text} {msg.id} {msg.raw}")
        return await original(self, pending, msg, now)

    monkeypatch.setattr(ConversationTurn, "handle", handle)
    return failed


def stored_deliveries(bot: Bot) -> float:
    """Webhook POSTs the bot has stored and handed to its turns."""
    sample = ("bot_webhook_deliveries_total", {"outcome": "stored"})
    return bot.services.metrics.registry.get_sample_value(*sample) or 0.0


# ---- what must never be found


def forms(value: str) -> set[str]:
    """A value as it could be written: as is, NFD, JSON-escaped, and each word of a name."""
    found = {value, unicodedata.normalize("NFD", value), json.dumps(value)[1:-1]}
    if " " in value and not any(c.isdigit() for c in value):
        found |= {w for w in value.split() if len(w) >= 5}
    return found


def personal_values(wamids: list[str], export: bytes) -> set[str]:
    found = {UK, UK[1:], DE, DE[1:], *UK_NATIONAL, *DE_NATIONAL}
    found |= {STRANGER, STRANGER[1:], REFUSED, REFUSED[1:], OFFER, SUPPORT_TEXT}
    # The export document as is holds the number (found above); base64-encoded, as it
    # travels to the media upload, it would not show it.
    found.add(base64.b64encode(export).decode()[:64])
    found |= {BSUID, PARENT_BSUID, BSUID.split(".")[1], PARENT_BSUID.split(".")[1], USERNAME}
    for value in [*NAMES.values(), *TEXTS, FAILING]:
        found |= forms(value)
    for wamid in wamids:
        found |= {wamid, wamid.removeprefix("wamid.")}
    return found


def leaks(haystack: bytes, needles: set[str], hex_too: bool = False) -> list[str]:
    lower = haystack.lower()
    found = []
    for needle in sorted(needles):
        raw = needle.encode()
        if raw in haystack or (hex_too and raw.hex().encode() in lower):
            found.append(needle)
    return found


# ---- the database, raw


def sqlite_files(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.glob("bot.db*")))


async def postgres_dump(url: str) -> bytes:
    """Every row of every table of the public schema, as PostgreSQL prints it."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            tables = (
                await conn.execute(
                    text(
                        "SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema='public' ORDER BY table_name"
                    )
                )
            ).scalars()
            rows = []
            for table in list(tables):
                result = await conn.execute(text(f'SELECT t::text FROM public."{table}" t'))
                rows += [f"{table}: {r[0]}" for r in result]
    finally:
        await engine.dispose()
    assert any(r.startswith("audit:") for r in rows)
    return "\n".join(rows).encode()


async def test_nothing_personal_in_plaintext(
    db_url: str,
    log_file: tuple[Path, logging.Handler],
    tmp_path: Path,
    graph: tuple[FakeGraph, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, api_url = graph
    log_path, handler = log_file
    logging.getLogger().handlers[:] = [handler]  # only the bot's handler (not pytest's too)
    logs.install_asyncio_handler()
    settings = make_settings(db_url, api_url)
    app = create_app(settings)
    sqlite = db_url.startswith("sqlite")
    running_copy = tmp_path / "while-running"
    async with serving(app) as url, httpx.AsyncClient(timeout=30) as http:
        bot = Bot(url=url, services=app.extensions["bot"], fake=fake, http=http, settings=settings)
        # Meta's status webhooks (sent, delivered) for every reply, signed, over HTTP.
        fake.webhook_url, fake.app_secret, fake.send_statuses = url + "/webhook", APP_SECRET, True
        failed = fail_once_on(monkeypatch, FAILING)
        wamids: list[str] = []
        export = await conversation(bot, wamids)
        # The last status webhooks: every delivery has been stored once each person's
        # message, the two statuses `conversation` posts and the fake's "sent" and
        # "delivered" for each of its sends are. Idle then means they were all handled.
        expected = len(wamids) + 2 + 2 * len(fake.sent)

        async def all_stored() -> bool:
            return stored_deliveries(bot) >= expected

        await eventually(all_stored)
        fake.send_statuses = False
        await bot.idle()
        assert failed, "the injected failure did not happen"
        if sqlite:
            running_copy.mkdir()
            for part in tmp_path.glob("bot.db*"):
                shutil.copy(part, running_copy / part.name)
            assert (running_copy / "bot.db-wal").stat().st_size > 0, "WAL already checkpointed"
        else:
            dump_running = await postgres_dump(db_url)

    wamids += [m.wamid for m in fake.sent]
    needles = personal_values(wamids, export)
    # The checks mean something: the export carries the number and the name.
    assert UK.encode() in export and b"Alice Liddell" in export
    assert len(wamids) > 40 and len(fake.sent) > 20

    if sqlite:
        for label, data in [
            ("while running", sqlite_files(running_copy)),
            ("after stop", sqlite_files(tmp_path)),
        ]:
            assert len(data) > 50_000
            assert leaks(data, needles) == [], f"plaintext in the SQLite files {label}"
    else:
        for label, data in [
            ("while running", dump_running),
            ("after stop", await postgres_dump(db_url)),
        ]:
            assert leaks(data, needles, hex_too=True) == [], f"plaintext in PostgreSQL {label}"

    handler.flush()
    log_bytes = log_path.read_bytes()
    entries = [json.loads(line) for line in log_bytes.decode().splitlines()]
    loggers = {e["logger"] for e in entries}
    assert {"bot.services", "bot.runtime.turns", "hypercorn.error"} <= loggers, loggers
    assert any(e.get("exc_type") == "RuntimeError" for e in entries)
    assert leaks(log_bytes, needles) == [], "plaintext in the log"
