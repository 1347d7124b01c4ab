"""Messages in both directions; outbound rows in state `queued` are the outbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, delete, insert, or_, select, update

from bot.store.db import Query
from bot.store.tables import Contact, Message

messages = Message.__table__
contacts = Contact.__table__

QUEUED, SENT, DELIVERED, READ, FAILED = "queued", "sent", "delivered", "read", "failed"
REFUSED = "refused"  # stopped by the send gate; never reached Meta
# Status webhooks can arrive out of order (read before delivered): only move forward.
RANK = {QUEUED: 0, SENT: 1, DELIVERED: 2, READ: 3, FAILED: 4, REFUSED: 4}
LEASE = 20.0  # seconds a worker holds a queued row without renewing it


_ADD = Query(insert(messages).values({c.name: bindparam(c.name) for c in messages.c}).inline())


def add(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """New rows, each with every column (see `bot.privacy.records.message_row`)."""
    _ADD.execute_many(conn, rows)


_MARK_SENT = Query(
    update(messages)
    .where(and_(messages.c.id == bindparam("mid"), messages.c.status == QUEUED))
    .values(
        attempts=messages.c.attempts + 1,
        updated_at=bindparam("now"),
        status=SENT,
        wamid_index=bindparam("wamid"),
        next_attempt_at=None,
    )
)


def _settle(conn: Connection, message_id: str, now: float, **values: Any) -> None:
    """Record one send attempt on a still-queued message."""
    conn.execute(
        update(messages)
        .where(and_(messages.c.id == message_id, messages.c.status == QUEUED))
        .values(attempts=messages.c.attempts + 1, updated_at=now, **values)
    )


def mark_sent(conn: Connection, message_id: str, wamid_index: str | None, now: float) -> None:
    """Meta accepted the message (the hot one of these: once per reply)."""
    _MARK_SENT.execute(conn, {"mid": message_id, "now": now, "wamid": wamid_index})


def mark_failed(
    conn: Connection, message_id: str, code: int | None, title: str, now: float
) -> None:
    _settle(
        conn, message_id, now,
        status=FAILED, error_code=code, error_title=title[:200], next_attempt_at=None,
    )  # fmt: skip


def mark_refused(conn: Connection, message_id: str, reason: str, now: float) -> None:
    _settle(conn, message_id, now, status=REFUSED, error_title=reason, next_attempt_at=None)


def schedule_retry(
    conn: Connection, message_id: str, at: float, code: int | None, now: float
) -> None:
    _settle(conn, message_id, now, next_attempt_at=at, error_code=code)


def contact_of(conn: Connection, message_id: str) -> str | None:
    row = conn.execute(select(messages.c.contact_id).where(messages.c.id == message_id)).first()
    return row[0] if row else None


def forget(conn: Connection, message_id: str) -> None:
    """Drop a row once sent: the farewell of an erased person leaves nothing behind."""
    conn.execute(delete(messages).where(messages.c.id == message_id))


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
    category: str
    body: bytes
    attempts: int
    next_attempt_at: float | None
    data_key_id: str | None  # None: its contact is gone


_QUEUED = and_(messages.c.direction == "out", messages.c.status == QUEUED)


def claimable(conn: Connection, now: float, takeover: bool = False) -> bool:
    """Is anything queued that no live worker holds? (A cheap read before claiming.)"""
    free = _QUEUED if takeover else and_(_QUEUED, _lease_free(now))
    return conn.execute(select(messages.c.id).where(free).limit(1)).first() is not None


def _lease_free(now: float) -> Any:
    return or_(messages.c.lease_until.is_(None), messages.c.lease_until < now)


def claim(
    conn: Connection, owner: str, now: float, *, takeover: bool = False, limit: int = 500
) -> list[QueuedRow]:
    """Take queued rows no live worker holds, oldest first, leasing them to `owner`.

    `takeover` ignores leases: a lone worker starting up knows their holders are gone.
    On PostgreSQL, rows another worker is claiming at the same moment are skipped.
    """
    free = _QUEUED if takeover else and_(_QUEUED, _lease_free(now))
    pick = select(messages.c.id).where(free).order_by(messages.c.created_at).limit(limit)
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    ids = [r[0] for r in conn.execute(pick)]
    if not ids:
        return []
    conn.execute(
        update(messages)
        .where(messages.c.id.in_(ids))
        .values(lease_owner=owner, lease_until=now + LEASE)
    )
    rows = conn.execute(
        select(
            messages.c.id,
            messages.c.contact_id,
            messages.c.category,
            messages.c.body,
            messages.c.attempts,
            messages.c.next_attempt_at,
            contacts.c.data_key_id,
        )
        .outerjoin(contacts, contacts.c.id == messages.c.contact_id)
        .where(messages.c.id.in_(ids))
        .order_by(messages.c.created_at, messages.c.id)
    )
    return [QueuedRow(*r) for r in rows]


def renew(conn: Connection, owner: str, ids: list[str], now: float) -> None:
    """Keep holding the rows this worker still has in memory."""
    mine = or_(messages.c.lease_owner.is_(None), messages.c.lease_owner == owner)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        conn.execute(
            update(messages)
            .where(and_(messages.c.id.in_(chunk), messages.c.status == QUEUED, mine))
            .values(lease_owner=owner, lease_until=now + LEASE)
        )


def release(conn: Connection, owner: str) -> None:
    """On shutdown: what this worker still holds is free for the next one at once."""
    conn.execute(
        update(messages)
        .where(and_(_QUEUED, messages.c.lease_owner == owner))
        .values(lease_owner=None, lease_until=None)
    )
