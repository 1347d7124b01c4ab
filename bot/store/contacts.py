"""Contacts. Values arrive here already sealed or hashed; their data keys are in the
key store (`bot.store.keys`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, insert, or_, select, update

from bot.store.db import Bare, Query, hot
from bot.store.tables import Consent, Contact

contacts = Contact.__table__
consents = Consent.__table__


@dataclass(frozen=True, slots=True)
class ContactRow:
    id: str
    data_key_id: str
    phone_index: str | None
    user_index: str | None
    last_inbound_at: float | None
    profile_sealed: bytes | None
    handoff_at: float | None
    phone_sealed: bytes | None
    user_id_sealed: bytes | None
    name_sealed: bytes | None
    created_at: float
    marketing: str | None = None  # consent status, when read by `find`


_COLUMNS = (
    contacts.c.id,
    contacts.c.data_key_id,
    contacts.c.phone_index,
    contacts.c.user_index,
    contacts.c.last_inbound_at,
    contacts.c.profile_sealed,
    contacts.c.handoff_at,
    contacts.c.phone_sealed,
    contacts.c.user_id_sealed,
    contacts.c.name_sealed,
    contacts.c.created_at,
)


_FIND = (
    select(*_COLUMNS, consents.c.status)
    .outerjoin(
        consents,
        and_(consents.c.contact_id == contacts.c.id, consents.c.purpose == "marketing"),
    )
    .where(
        or_(
            contacts.c.phone_index == bindparam("phone"), contacts.c.user_index == bindparam("user")
        )
    )
    .limit(1)
)


_FIND_QUERY = Query(_FIND)


@hot
def find(
    conn: Connection | Bare, phone_index: str | None, user_index: str | None
) -> ContactRow | None:
    """A contact by the blind index of their number or of their BSUID, with their
    marketing consent status (one read for everything a turn needs to start)."""
    if not phone_index and not user_index:
        return None
    rows = _FIND_QUERY.fetch(conn, {"phone": phone_index or "-", "user": user_index or "-"})
    return ContactRow(*rows[0]) if rows else None


_KNOWN = Query(
    select(contacts.c.id)
    .where(
        or_(
            contacts.c.phone_index == bindparam("phone"), contacts.c.user_index == bindparam("user")
        )
    )
    .limit(1)
)


def known(conn: Connection | Bare, phone_index: str | None, user_index: str | None) -> bool:
    """Whether anyone is stored under the blind index of this number or BSUID."""
    if not phone_index and not user_index:
        return False
    return bool(_KNOWN.fetch(conn, {"phone": phone_index or "-", "user": user_index or "-"}))


def create(conn: Connection, contact: dict[str, Any]) -> None:
    """Store a new contact; their data key is in the key store already."""
    conn.execute(insert(contacts), [contact])


def any_contact(conn: Connection) -> bool:
    return conn.execute(select(contacts.c.id).limit(1)).first() is not None


_TOUCH: dict[tuple[str, ...], Query] = {}  # by the columns set: a turn sets two or three


def touch(conn: Connection, contact_id: str, **values: Any) -> None:
    """Record an inbound message's time and fill identifiers learned since."""
    columns = tuple(sorted(values))
    query = _TOUCH.get(columns)
    if query is None:
        statement = update(contacts).where(contacts.c.id == bindparam("cid"))
        query = _TOUCH[columns] = Query(statement.values({c: bindparam(c) for c in columns}))
    query.execute(conn, {"cid": contact_id, **values})


def handed_off(conn: Connection, since: float | None) -> list[ContactRow]:
    """Contacts handed to support (`since`: handed off at or after it), longest waiting first."""
    query = select(*_COLUMNS).where(contacts.c.handoff_at.is_not(None))
    if since is not None:
        query = query.where(contacts.c.handoff_at >= since)
    rows = conn.execute(query.order_by(contacts.c.handoff_at, contacts.c.id))
    return [ContactRow(*r) for r in rows]
