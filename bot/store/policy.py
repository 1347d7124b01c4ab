"""What the send gate reads (consent, window, suppression) and the messaging tier."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, and_, bindparam, func, or_, select, text, update

from bot.store.db import Bare, Query, hot
from bot.store.tables import Consent, Contact, Message, Suppression

contacts = Contact.__table__
consents = Consent.__table__
messages = Message.__table__
suppressions = Suppression.__table__
TIER_LOCK = 7301240003  # PostgreSQL advisory lock: one tier admission at a time


@dataclass(frozen=True, slots=True)
class Recipient:
    """A queued message's person as the gate sees them (all None: erased)."""

    status: str | None  # the message's own status; None when the row is gone
    lease_owner: str | None
    contact_id: str | None
    last_inbound_at: float | None
    marketing: str | None
    suppressed: bool
    unreachable_at: float | None = None


_suppressed = (
    select(suppressions.c.phone_index)
    .where(
        or_(
            suppressions.c.phone_index == contacts.c.phone_index,
            suppressions.c.phone_index == contacts.c.user_index,
        )
    )
    .exists()
)

_FOR_MESSAGE = Query(
    select(
        messages.c.status,
        messages.c.lease_owner,
        contacts.c.id,
        contacts.c.last_inbound_at,
        consents.c.status,
        _suppressed,
        contacts.c.unreachable_at,
    )
    .outerjoin(contacts, contacts.c.id == messages.c.contact_id)
    .outerjoin(
        consents,
        and_(consents.c.contact_id == contacts.c.id, consents.c.purpose == "marketing"),
    )
    .where(messages.c.id == bindparam("mid"))
)


@hot
def recipient_of(conn: Connection | Bare, message_id: str) -> Recipient:
    rows = _FOR_MESSAGE.fetch(conn, {"mid": message_id})
    if not rows:
        return Recipient(None, None, None, None, None, False)
    status, owner, contact_id, last_inbound_at, marketing, suppressed, unreachable = rows[0]
    return Recipient(
        status, owner, contact_id, last_inbound_at, marketing, bool(suppressed), unreachable
    )


def is_suppressed(conn: Connection, *indexes: str | None) -> bool:
    keys = [i for i in indexes if i]
    if not keys:
        return False
    query = select(suppressions.c.phone_index).where(suppressions.c.phone_index.in_(keys))
    return conn.execute(query.limit(1)).first() is not None


def unreachable_at(conn: Connection, contact_id: str) -> float | None:
    """When Meta last called this person's number undeliverable (None: never)."""
    query = select(contacts.c.unreachable_at).where(contacts.c.id == contact_id)
    return conn.execute(query).scalar()


def mark_unreachable(
    conn: Connection, now: float, *, message_id: str | None = None, wamid_index: str | None = None
) -> None:
    """Meta called the recipient of this message (by our id or by Meta's, keyed)
    undeliverable: remember it on their contact row, by blind index, never the number."""
    which = messages.c.id == message_id if message_id else messages.c.wamid_index == wamid_index
    whose = select(messages.c.contact_id).where(which).scalar_subquery()
    conn.execute(update(contacts).where(contacts.c.id == whose).values(unreachable_at=now))


def lift_suppression(conn: Connection, *indexes: str | None) -> None:
    """The person asked to hear from the business again (START, a new opt-in)."""
    keys = [i for i in indexes if i]
    if keys:
        conn.execute(suppressions.delete().where(suppressions.c.phone_index.in_(keys)))


def admit_to_tier(conn: Connection, contact_id: str, tier: int | None, now: float) -> bool:
    """Count a business-initiated conversation with this person, if the tier allows.

    Someone already written to first in the last 24 hours costs nothing more;
    someone new takes one of the tier's places, or is refused when all are taken.
    Runs inside the queuing transaction (one writer on SQLite, an advisory lock
    on PostgreSQL), so two workers cannot both take the last place.
    """
    since = now - 24 * 3600
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": TIER_LOCK})
    current = conn.execute(
        select(contacts.c.initiated_at).where(contacts.c.id == contact_id)
    ).scalar()
    if current is not None and current > since:
        return True
    if tier is not None:
        taken = conn.execute(
            select(func.count()).select_from(contacts).where(contacts.c.initiated_at > since)
        ).scalar_one()
        if taken >= tier:
            return False
    conn.execute(update(contacts).where(contacts.c.id == contact_id).values(initiated_at=now))
    return True


def tier_used(conn: Connection, now: float) -> int:
    since = now - 24 * 3600
    query = select(func.count()).select_from(contacts).where(contacts.c.initiated_at > since)
    return int(conn.execute(query).scalar_one())
