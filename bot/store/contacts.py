"""Contacts and their data keys. Values arrive here already sealed or hashed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update

from bot.store.tables import Contact, DataKey

contacts = Contact.__table__
data_keys = DataKey.__table__


@dataclass(frozen=True, slots=True)
class ContactRow:
    id: str
    data_key_id: str
    kid: str
    wrapped: bytes
    phone_index: str | None
    user_index: str | None
    last_inbound_at: float | None
    profile_sealed: bytes | None
    handoff_at: float | None
    phone_sealed: bytes | None
    user_id_sealed: bytes | None
    name_sealed: bytes | None
    created_at: float


_COLUMNS = (
    contacts.c.id,
    contacts.c.data_key_id,
    data_keys.c.kid,
    data_keys.c.wrapped,
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


def find(phone_index: str | None, user_index: str | None) -> Callable[[Connection], Any]:
    """A contact by the blind index of their number or of their BSUID."""
    conditions = []
    if phone_index:
        conditions.append(contacts.c.phone_index == phone_index)
    if user_index:
        conditions.append(contacts.c.user_index == user_index)
    query = (
        select(*_COLUMNS)
        .join(data_keys, data_keys.c.id == contacts.c.data_key_id)
        .where(or_(*conditions))
        .limit(1)
    )

    def run(conn: Connection) -> ContactRow | None:
        if not conditions:
            return None
        row = conn.execute(query).first()
        return ContactRow(*row) if row else None

    return run


def by_id(conn: Connection, contact_id: str) -> ContactRow | None:
    row = conn.execute(
        select(*_COLUMNS)
        .join(data_keys, data_keys.c.id == contacts.c.data_key_id)
        .where(contacts.c.id == contact_id)
    ).first()
    return ContactRow(*row) if row else None


def create(conn: Connection, *, key: dict[str, Any], contact: dict[str, Any]) -> None:
    conn.execute(insert(data_keys), [key])
    conn.execute(insert(contacts), [contact])


def touch(conn: Connection, contact_id: str, **values: Any) -> None:
    """Record an inbound message's time and fill identifiers learned since."""
    conn.execute(update(contacts).where(contacts.c.id == contact_id).values(**values))


def count(conn: Connection) -> int:
    return len(conn.execute(select(contacts.c.id)).all())


def get_or_add_key(
    key_id: str, candidate: dict[str, Any]
) -> Callable[[Connection], tuple[str, bytes]]:
    """A system data key (the inbox's), created on first start and kept after."""

    def run(conn: Connection) -> tuple[str, bytes]:
        row = conn.execute(
            select(data_keys.c.kid, data_keys.c.wrapped).where(data_keys.c.id == key_id)
        ).first()
        if row is not None:
            return row[0], row[1]
        conn.execute(insert(data_keys), [candidate])
        return candidate["kid"], candidate["wrapped"]

    return run
