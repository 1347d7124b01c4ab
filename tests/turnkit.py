"""One conversation turn at a time, below HTTP: no server, no webhook route, no outbox.

`TurnKit` builds a turn with the app's own builders (`bot.services`: the system
keys, `build_conversation`) on a real SQLite file, and runs each message
the way the turn runner does: Meta's webhook shape, parsed by the real parser,
sealed into the inbox, read back as the pending event, handled at `kit.now`.
It returns the Graph bodies of the replies the turn queued; sending them is
the outbox's business and is not done here.

    async with TurnKit.open(sqlite_url) as kit:
        (notice,) = await kit.say(UK, "JOIN")
        kit.later(hours=30)
        (menu,) = await kit.tap(UK, "optin.yes")
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bot.config import Settings
from bot.conversation.flowfile import FlowSet, load_flows
from bot.crypto import Index, Keyring
from bot.i18n import Texts
from bot.policy.limits import make_limits
from bot.policy.templates import load_templates
from bot.privacy.countries import COUNTRIES_FILE, load_countries
from bot.privacy.notices import NOTICES_FILE, load_notices
from bot.privacy.person import People
from bot.runtime.conversation import ConversationTurn, Handled
from bot.runtime.inbox import open_event, sealed_rows
from bot.services import Content, SystemKeys, build_conversation, system_keys
from bot.simulator import webhooks
from bot.store import inbox as inbox_store
from bot.store.db import Database
from bot.store.keystore import open_stores
from bot.whatsapp.events import InboundMessage, parse_webhook
from tests.conftest import PHONE_NUMBER_ID, make_settings

ROOT = Path(__file__).resolve().parents[1]
NOWHERE = "http://127.0.0.1:9/v21.0"  # no Graph API: nothing is sent from here
LIST_PREFIXES = ("menu.", "residence.", "language.", "correct.")  # ids the flows show as list rows


@functools.cache
def _read(flows_dir: Path, locales_dir: Path) -> tuple[FlowSet, Texts]:
    return load_flows(flows_dir), Texts(locales_dir)


def read_flows_and_texts(settings: Settings) -> tuple[FlowSet, Texts]:
    """The flows and texts `settings` name; the shipped ones are read once (they do not
    change while tests run, and reading them costs more than a turn)."""
    if settings.flows_dir == ROOT / "flows" and settings.locales_dir == ROOT / "locales":
        return _read(settings.flows_dir, settings.locales_dir)
    return load_flows(settings.flows_dir), Texts(settings.locales_dir)


def tapped(reply_id: str, title: str = "x") -> dict[str, Any]:
    """What WhatsApp sends when a person taps a button or list row with this id."""
    if reply_id.startswith(LIST_PREFIXES):
        return webhooks.list_reply(reply_id, title)
    return webhooks.button_reply(reply_id, title)


class TurnKit:
    def __init__(
        self, settings: Settings, db: Database, key_db: Database, keys: SystemKeys, now: float
    ) -> None:
        self.settings = settings
        self.db = db
        self.key_db = key_db  # the key store
        self.keys = keys
        self.now = now  # the time every turn is judged by; tests move it
        self.keyring = Keyring(settings.master_keys, settings.index_key)
        self.people = People(db, self.keyring, key_db)
        flows, texts = read_flows_and_texts(settings)
        countries = load_countries(settings.flows_dir / COUNTRIES_FILE)
        notices = load_notices(settings.flows_dir / NOTICES_FILE)
        templates = load_templates(settings.templates_path)
        self.content = Content(flows, texts, templates, countries, notices)
        self.wamid = ""  # Meta's id of the last message sent in
        self.conversation: ConversationTurn = build_conversation(
            settings, self.content, db, self.people, keys.outbox, make_limits(None)
        )

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        db_url: str,
        *,
        flows_dir: Path | None = None,
        now: float | None = None,
        **settings: Any,
    ) -> AsyncIterator[TurnKit]:
        """A kit on the (migrated) database at `db_url`; `settings` as in `make_settings`."""
        if flows_dir is not None:
            settings["BOT_FLOWS_DIR"] = str(flows_dir)
        made = make_settings(db_url, NOWHERE, **settings)
        db, key_db = await open_stores(db_url, made.keystore_url, audit_key=made.audit_key)
        try:
            keys = await system_keys(key_db, Keyring(made.master_keys, made.index_key))
            yield cls(made, db, key_db, keys, time.time() if now is None else now)
        finally:
            await db.stop()
            await key_db.stop()

    # Time ----------------------------------------------------------------------------------

    def clock(self) -> float:
        return self.now

    def later(self, seconds: float = 0.0, *, hours: float = 0.0) -> None:
        self.now += seconds + hours * 3600

    # Talking -------------------------------------------------------------------------------

    async def turn(self, who: str, content: dict[str, Any], name: str | None = None) -> Handled:
        """One message from `who` (+E164), with the profile `name` Meta sends beside it:
        stored in the inbox and handled as one turn."""
        body, self.wamid = webhooks.message(
            PHONE_NUMBER_ID, who, content, name=name, timestamp=int(self.now)
        )
        (event,) = parse_webhook(body).events
        rows, contacts = sealed_rows(self.keyring, self.keys.inbox, [event], self.now)
        await self.db.write(inbox_store.accept, rows)
        (contact,) = contacts
        (pending,) = await self.db.read(inbox_store.next_pending, contact, 1)
        assert pending.event_key == rows[0]["event_key"], "an earlier message is still pending"
        assert pending.payload is not None
        msg = open_event(self.keys.inbox, pending.event_key, pending.payload)
        assert isinstance(msg, InboundMessage)
        return await self.conversation.handle(pending, msg, self.now)

    async def send(
        self, who: str, content: dict[str, Any], name: str | None = None
    ) -> list[dict[str, Any]]:
        """The Graph bodies of the replies to one message, in order."""
        return [item.body for item in (await self.turn(who, content, name)).items]

    async def say(self, who: str, words: str, name: str | None = None) -> list[dict[str, Any]]:
        return await self.send(who, webhooks.text(words), name)

    async def tap(self, who: str, reply_id: str, title: str = "x") -> list[dict[str, Any]]:
        return await self.send(who, tapped(reply_id, title))

    async def speaking(self, who: str, lang: str) -> None:
        """`who` picks their language: the bot answers in it from then on."""
        await self.say(who, "LANGUAGE")
        await self.tap(who, f"language.{lang}")

    # Looking -------------------------------------------------------------------------------

    async def sql(self, query: str, **params: Any) -> list[Any]:
        return await self.db.read(lambda c: c.execute(text(query), params).all())

    async def consent(self, who: str) -> str | None:
        """The status of `who`'s marketing consent row, None when there is none."""
        rows = await self.sql(
            "SELECT c.status FROM consents c JOIN contacts k ON k.id = c.contact_id "
            "WHERE k.phone_index = :i AND c.purpose = 'marketing'",
            i=self.keyring.blind_index(Index.PHONE, who),
        )
        return rows[0][0] if rows else None
