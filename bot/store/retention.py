"""What retention removes, as plain functions of a connection (no commit of their own).

Each function removes at most `limit` rows, so a caller can keep its write
units short: the group-commit writer is shared with every live turn, and one
unit deleting a year of messages would stall them all. Deletes pick their rows
with `id IN (SELECT id … LIMIT n)`, which SQLite and PostgreSQL both accept
(SQLite has no `DELETE … LIMIT` by default).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Table,
    and_,
    delete,
    func,
    not_,
    or_,
    select,
    update,
)

from bot.store.inbox import DONE, inbox
from bot.store.messages import QUEUED, messages

DAY = 86_400.0
FAILED = "failed"
# A poison delivery stays readable this long after it was set aside, for an operator to look at.
FAILED_PAYLOAD_KEEP = DAY


def expired_messages(retention_days: dict[str, int], now: float) -> ColumnElement[bool]:
    """Messages past their category's period; an unknown category gets the longest one.

    The longest period for unknown categories errs on keeping, never on losing
    something a person or a regulator may still ask about. Outbound messages
    still `queued` are not sent yet: deleting them would silently drop a reply.
    """
    if not retention_days:
        raise ValueError("retention_days is empty: no retention period is configured")
    m = messages.c
    longest = max(retention_days.values())
    rules = [
        and_(m.category == category, m.created_at < now - days * DAY)
        for category, days in retention_days.items()
    ]
    rules.append(and_(m.category.not_in(list(retention_days)), m.created_at < now - longest * DAY))
    shortest = min(retention_days.values())
    unsent = and_(m.direction == "out", m.status == QUEUED)
    # The first term is implied by the rules; it lets an index on created_at prune.
    return and_(m.created_at < now - shortest * DAY, or_(*rules), not_(unsent))


def old_inbox(keep_days: int, now: float) -> ColumnElement[bool]:
    """Processed deliveries whose dedup key has outlived Meta's retry window.

    Pending and waiting rows are work not done yet and are never removed.
    """
    c = inbox.c
    return and_(c.state.in_((DONE, FAILED)), c.received_at < now - keep_days * DAY)


def stale_failed_payloads(now: float) -> ColumnElement[bool]:
    """Sealed payloads of deliveries set aside as failed more than a day ago."""
    c = inbox.c
    set_aside = func.coalesce(c.processed_at, c.received_at)
    return and_(c.state == FAILED, c.payload.is_not(None), set_aside < now - FAILED_PAYLOAD_KEEP)


def _some_ids(table: Table, where: ColumnElement[bool], limit: int) -> Select[Any]:
    return select(table.c.id).where(where).limit(limit)


def delete_expired_messages(
    conn: Connection, retention_days: dict[str, int], now: float, limit: int
) -> int:
    """Delete up to `limit` expired messages; returns how many went."""
    if limit <= 0:
        return 0
    ids = _some_ids(messages, expired_messages(retention_days, now), limit)
    return conn.execute(delete(messages).where(messages.c.id.in_(ids))).rowcount


def delete_old_inbox(conn: Connection, keep_days: int, now: float, limit: int) -> int:
    """Delete up to `limit` processed inbox rows older than `keep_days`."""
    if limit <= 0:
        return 0
    ids = _some_ids(inbox, old_inbox(keep_days, now), limit)
    return conn.execute(delete(inbox).where(inbox.c.id.in_(ids))).rowcount


def clear_failed_payloads(conn: Connection, now: float, limit: int) -> int:
    """Drop the payload of up to `limit` long-failed deliveries; the dedup key stays."""
    if limit <= 0:
        return 0
    ids = _some_ids(inbox, stale_failed_payloads(now), limit)
    query = update(inbox).where(inbox.c.id.in_(ids)).values(payload=None)
    return conn.execute(query).rowcount
