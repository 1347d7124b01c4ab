"""The inbox: webhook events stored before Meta gets its 200."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Integer, and_, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.store.contacts import known
from bot.store.db import Bare, Query, hot
from bot.store.tables import InboxEvent

inbox = InboxEvent.__table__
PENDING, WAITING, DONE = "pending", "waiting", "done"


# INSERT … ON CONFLICT DO NOTHING in each dialect, built once: it runs for every
# delivery, and building it anew cost more than executing it.
_ROW = {
    name: bindparam(name)
    for name in (
        "event_key", "kind", "contact_index", "meta_ts", "payload", "state", "attempts",
        "received_at",
    )
}  # fmt: skip
_ACCEPT = Query(
    {
        "postgresql": postgresql.insert(inbox).values(_ROW).on_conflict_do_nothing().inline(),
        "sqlite": sqlite.insert(inbox).values(_ROW).on_conflict_do_nothing().inline(),
    }
)


def accept(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Store a delivery's events; a redelivered event key is silently ignored.

    A status whose recipient (`row["recipient"]`: the blind indexes of their number and
    BSUID) is no stored contact is not kept: the bot never wrote to them, or they were
    erased, and nothing may be kept for an erased number. The bot only writes to people
    it stores, and stores them before it writes, so a status that overtakes the record of
    its send still finds its recipient. Returns how many statuses were dropped.
    """
    kept = [r for r in rows if r["kind"] != "status" or known(conn, *r["recipient"])]
    _ACCEPT.execute_many(conn, kept)
    return len(rows) - len(kept)


def drop(conn: Connection, event_id: int) -> None:
    """Remove an event's row at once: a status for someone no longer stored."""
    conn.execute(delete(inbox).where(inbox.c.id == event_id))


@dataclass(frozen=True, slots=True)
class PendingEvent:
    id: int
    event_key: str
    kind: str
    payload: bytes | None
    attempts: int


# Hot statements are built once: SQLAlchemy then reuses their cache key and
# compiled form instead of rebuilding both on every turn.
_NEXT_PENDING = Query(
    select(inbox.c.id, inbox.c.event_key, inbox.c.kind, inbox.c.payload, inbox.c.attempts)
    .where(and_(inbox.c.contact_index == bindparam("ci"), inbox.c.state == PENDING))
    .order_by(inbox.c.meta_ts, inbox.c.id)
    .limit(bindparam("n", type_=Integer))
)
_FINISH_ANY = (
    update(inbox)
    .where(
        and_(
            inbox.c.id == bindparam("eid"),
            inbox.c.state.in_([bindparam("pending", PENDING), bindparam("waiting", WAITING)]),
        )
    )
    .values(
        state=bindparam("new_state"),
        processed_at=bindparam("now"),
        attempts=inbox.c.attempts + 1,
    )
)
_FINISH = Query(_FINISH_ANY)
_FINISH_DONE = Query(_FINISH_ANY.values(payload=None))


@hot
def next_pending(
    conn: Connection | Bare, contact_index: str, limit: int = 16
) -> list[PendingEvent]:
    """The contact's oldest unprocessed events, in Meta's timestamp order."""
    rows = _NEXT_PENDING.fetch(conn, {"ci": contact_index, "n": limit})
    return [PendingEvent(*row) for row in rows]


def finish(conn: Connection, event_id: int, now: float, state: str = DONE) -> bool:
    """Mark an event processed and drop its payload, unless another turn already did.

    Returns False when the event was no longer pending, so the caller's turn is
    abandoned (rolled back) instead of being applied twice.
    """
    query = _FINISH_DONE if state == DONE else _FINISH
    return query.execute(conn, {"eid": event_id, "now": now, "new_state": state}) == 1


def give_up(conn: Connection, event_id: int, now: float, max_attempts: int) -> bool:
    """Count a failed try; after `max_attempts` the event is set aside as failed so
    one poison message cannot block a person's later messages for ever."""
    conn.execute(update(inbox).where(inbox.c.id == event_id).values(attempts=inbox.c.attempts + 1))
    result = conn.execute(
        update(inbox)
        .where(and_(inbox.c.id == event_id, inbox.c.attempts >= max_attempts))
        .values(state="failed", processed_at=now)
    )
    return result.rowcount == 1


def pending_contacts(conn: Connection) -> list[str]:
    """Contacts with work left over from before a restart or a crash."""
    rows = conn.execute(
        select(inbox.c.contact_index)
        .where(and_(inbox.c.state == PENDING, inbox.c.contact_index.is_not(None)))
        .group_by(inbox.c.contact_index)
        .order_by(func.min(inbox.c.id))
    )
    return [r[0] for r in rows]


_PENDING_AFTER = Query(
    select(inbox.c.id, inbox.c.contact_index)
    .where(and_(inbox.c.state == PENDING, inbox.c.id > bindparam("mark")))
    .order_by(inbox.c.id)
    .limit(bindparam("n", type_=Integer))
)


@hot
def pending_after(conn: Connection | Bare, mark: int, limit: int) -> list[tuple[int, str | None]]:
    """Pending events stored after event `mark`, oldest first: (id, contact index)."""
    return [(r[0], r[1]) for r in _PENDING_AFTER.fetch(conn, {"mark": mark, "n": limit})]


_STALE = (
    select(inbox.c.contact_index)
    .where(
        and_(
            inbox.c.state == PENDING,
            inbox.c.received_at < bindparam("before"),
            inbox.c.contact_index.is_not(None),
        )
    )
    .group_by(inbox.c.contact_index)
    .limit(500)
)


def stale_contacts(conn: Connection, received_before: float) -> list[str]:
    """Contacts whose pending events have waited too long: the worker that took
    them in died. Another worker picks them up (under the contact's lock)."""
    return [r[0] for r in conn.execute(_STALE, {"before": received_before})]


def requeue_waiting(conn: Connection, older_than_attempts: int) -> list[str]:
    """Put waiting events (statuses that arrived before their send was recorded)
    back in line, and give up on those that waited long enough."""
    conn.execute(
        update(inbox)
        .where(and_(inbox.c.state == WAITING, inbox.c.attempts >= older_than_attempts))
        .values(state=DONE, payload=None)
    )
    rows = conn.execute(
        update(inbox)
        .where(inbox.c.state == WAITING)
        .values(state=PENDING)
        .returning(inbox.c.contact_index)
    )
    return sorted({r[0] for r in rows if r[0]})
