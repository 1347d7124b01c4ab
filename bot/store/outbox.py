"""Messages in both directions; outbound rows in state `queued` are the outbox."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, case, delete, insert, select, update

from bot.store.tables import Contact, DataKey, Message

messages = Message.__table__
contacts = Contact.__table__
data_keys = DataKey.__table__

QUEUED, SENT, DELIVERED, READ, FAILED = "queued", "sent", "delivered", "read", "failed"
# Status webhooks can arrive out of order (read before delivered): only move forward.
RANK = {QUEUED: 0, SENT: 1, DELIVERED: 2, READ: 3, FAILED: 4}


def add(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(messages), rows)


def _settle(message_id: str, now: float, **values: Any) -> Callable[[Connection], None]:
    """Record one send attempt on a still-queued message."""
    query = (
        update(messages)
        .where(and_(messages.c.id == message_id, messages.c.status == QUEUED))
        .values(attempts=messages.c.attempts + 1, updated_at=now, **values)
    )
    return lambda conn: conn.execute(query)


def mark_sent(message_id: str, wamid_index: str | None, now: float) -> Callable[[Connection], None]:
    return _settle(message_id, now, status=SENT, wamid_index=wamid_index, next_attempt_at=None)


def mark_failed(
    message_id: str, code: int | None, title: str, now: float
) -> Callable[[Connection], None]:
    return _settle(
        message_id,
        now,
        status=FAILED,
        error_code=code,
        error_title=title[:200],
        next_attempt_at=None,
    )


def schedule_retry(
    message_id: str, at: float, code: int | None, now: float
) -> Callable[[Connection], None]:
    return _settle(message_id, now, next_attempt_at=at, error_code=code)


def contact_of(conn: Connection, message_id: str) -> str | None:
    row = conn.execute(select(messages.c.contact_id).where(messages.c.id == message_id)).first()
    return row[0] if row else None


def forget(message_id: str) -> Callable[[Connection], None]:
    """Drop a row once sent: the farewell of an erased person leaves nothing behind."""

    query = delete(messages).where(messages.c.id == message_id)
    return lambda conn: conn.execute(query)


def apply_status(
    conn: Connection,
    wamid_index: str,
    status: str,
    now: float,
    error_code: int | None = None,
    error_title: str | None = None,
) -> bool:
    """Move an outbound message forward to `status`. False if no message matches
    (the status came before the send was recorded, or the person was erased)."""
    mine = and_(messages.c.wamid_index == wamid_index, messages.c.direction == "out")
    exists = conn.execute(select(messages.c.id).where(mine)).first()
    if exists is None:
        return False
    rank = RANK.get(status)
    if rank is None:
        return True  # a status we do not track ("deleted", new ones): nothing to move
    current_rank = case(
        *((messages.c.status == name, value) for name, value in RANK.items()), else_=0
    )
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if status == FAILED:
        values |= {"error_code": error_code, "error_title": (error_title or "")[:200]}
    conn.execute(update(messages).where(and_(mine, current_rank < rank)).values(**values))
    return True


@dataclass(frozen=True, slots=True)
class QueuedRow:
    id: str
    contact_id: str | None  # None: a farewell, sealed with the system key
    body: bytes
    attempts: int
    next_attempt_at: float | None
    data_key_id: str | None
    kid: str | None
    wrapped: bytes | None


def queued(conn: Connection) -> list[QueuedRow]:
    """Everything still to send after a restart, oldest first."""
    rows = conn.execute(
        select(
            messages.c.id,
            messages.c.contact_id,
            messages.c.body,
            messages.c.attempts,
            messages.c.next_attempt_at,
            contacts.c.data_key_id,
            data_keys.c.kid,
            data_keys.c.wrapped,
        )
        .outerjoin(contacts, contacts.c.id == messages.c.contact_id)
        .outerjoin(data_keys, data_keys.c.id == contacts.c.data_key_id)
        .where(and_(messages.c.direction == "out", messages.c.status == QUEUED))
        .order_by(messages.c.created_at, messages.c.id)
    )
    return [QueuedRow(*r) for r in rows]
