"""How consent is recorded: asked, granted, revoked — with the evidence a regulator asks for.

Each change sets the purpose's current status and appends an entry to its
history (method, source, policy version, law and language shown, when it was
asked and answered, a keyed hash of the confirming message). A grant lifts an
earlier STOP's suppression; a STOP revokes at once and suppresses every
business-initiated message until the person asks in again. When Meta tells us
the person stopped marketing in WhatsApp itself, consent is revoked silently.

The functions return units for the turn's transaction (`Database.write`), so
a change and its audit entry commit together with everything else the turn does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot import audit
from bot.privacy.person import People
from bot.store import Conn
from bot.store import inbox as inbox_store
from bot.store import messages as message_store
from bot.store import policy as policy_store
from bot.store import privacy as store
from bot.store.db import Database
from bot.whatsapp.events import Party

MARKETING = "marketing"
Unit = Callable[[Conn], Any]


def change(
    contact_id: str,
    status: str,
    asked: dict[str, Any],
    now: float,
    message_ref: str | None,
    *,
    policy_version: str,
    method: str = "whatsapp_double_opt_in",
) -> Unit:
    """The status change and its evidence; `asked` is what the notice showed."""
    event = {
        "contact_id": contact_id,
        "purpose": MARKETING,
        "status": status,
        "method": method,
        "source": str(asked.get("source", "chat")),
        "policy_version": str(asked.get("policy", policy_version)),
        "jurisdiction": str(asked.get("law", "strict")),
        "locale": str(asked.get("lang", "en")),
        "asked_at": asked.get("asked_at"),
        "at": now,
        "message_ref": message_ref,
    }
    return lambda conn: store.record_consent(conn, event)


def grant(
    contact_id: str,
    pseudonym: str,
    asked: dict[str, Any],
    message_ref: str,
    indexes: tuple[str | None, ...],
    now: float,
    policy_version: str,
) -> tuple[list[Unit], list[audit.Event]]:
    """An explicit yes to a shown notice. Asking in again lifts an earlier
    STOP's (or erasure's) suppression."""
    ops = [
        change(contact_id, "granted", asked, now, message_ref, policy_version=policy_version),
        lambda conn: policy_store.lift_suppression(conn, *indexes),
    ]
    return ops, [audit.Event(pseudonym, "consent_granted", detail={"purpose": MARKETING})]


def revoke(
    contact_id: str,
    pseudonym: str,
    current: str | None,
    shown: dict[str, Any],
    suppress_key: str | None,
    now: float,
    policy_version: str,
) -> tuple[list[Unit], list[audit.Event]]:
    """STOP: no business-initiated message of any kind until START; what the person
    writes themselves is still answered. Revoked only if there was something to revoke."""
    ops: list[Unit] = []
    events: list[audit.Event] = []
    if suppress_key:
        ops.append(lambda conn: store.suppress(conn, suppress_key, "stop", now))
    if current in ("granted", "pending"):
        asked = {**shown, "source": "chat", "asked_at": None}
        ops.append(
            change(contact_id, "revoked", asked, now, None, policy_version=policy_version,
                   method="whatsapp_stop")
        )  # fmt: skip
        events.append(audit.Event(pseudonym, "consent_revoked", detail={"purpose": MARKETING}))
    return ops, events


def decline(
    contact_id: str,
    pseudonym: str,
    current: str | None,
    shown: dict[str, Any],
    now: float,
    policy_version: str,
) -> tuple[list[Unit], list[audit.Event]]:
    """A no to the opt-in notice: no marketing consent, and one given before is withdrawn
    (a "no" must never leave a yes standing). Unlike STOP, nothing else is suppressed."""
    if current not in ("granted", "pending"):
        return [], []
    asked = {**shown, "source": "chat"}
    op = change(contact_id, "declined", asked, now, None, policy_version=policy_version,
                method="whatsapp_opt_in_declined")  # fmt: skip
    events = []
    if current == "granted":
        events.append(
            audit.Event(pseudonym, "consent_revoked", detail={"purpose": MARKETING, "via": "no"})
        )
    return [op], events


class QuietRevocation:
    """Meta says the person stopped marketing (WhatsApp's own setting, or error
    131050): revoke at once, silently — a message now could itself be unwanted."""

    def __init__(self, db: Database, people: People, policy_version: str) -> None:
        self._db = db
        self._people = people
        self._policy_version = policy_version

    async def for_party(
        self, party: Party, method: str, now: float, finish: int | None = None
    ) -> None:
        person = await self._people.find(party=party)
        await self._revoke(person.contact_id if person else None, method, now, finish)

    async def for_message(self, message_id: str, now: float) -> None:
        contact_id = await self._db.read(message_store.contact_of, message_id)
        await self._revoke(contact_id, "whatsapp_preferences", now, None)

    async def _revoke(
        self, contact_id: str | None, method: str, now: float, finish: int | None
    ) -> None:
        asked = {"law": "", "lang": "", "source": "meta", "asked_at": None}
        version = self._policy_version

        def unit(conn: Conn) -> None:
            if finish is not None:
                inbox_store.finish(conn, finish, now)
            if contact_id is None:
                return
            if store.consent_status(conn, contact_id, MARKETING) in ("granted", "pending"):
                change(contact_id, "revoked", asked, now, None, policy_version=version,
                       method=method)(conn)  # fmt: skip
                pseudonym = self._people.pseudonym(contact_id)
                event = audit.Event(pseudonym, "consent_revoked", detail={"via": method})
                audit.append(conn, [event])

        await self._db.write(unit)
