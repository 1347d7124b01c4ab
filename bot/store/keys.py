"""Data keys as stored: wrapped by a master key, with that key's id.

Only wrapped keys reach this module; wrapping and unwrapping are `bot.crypto`'s.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update

from bot.store.tables import DataKey, MasterKeySeen

data_keys = DataKey.__table__
seen = MasterKeySeen.__table__


def get_or_add(conn: Connection, key_id: str, candidate: dict[str, Any]) -> tuple[str, bytes]:
    """A system data key (the inbox's, the outbox's): made on first start, kept after.
    Returns the stored (master key id, wrapped key)."""
    row = conn.execute(
        select(data_keys.c.kid, data_keys.c.wrapped).where(data_keys.c.id == key_id)
    ).first()
    if row is not None:
        return row[0], row[1]
    conn.execute(insert(data_keys), [candidate])
    return candidate["kid"], candidate["wrapped"]


def not_under(conn: Connection, kid: str, limit: int) -> list[tuple[str, str, bytes]]:
    """Up to `limit` data keys wrapped by another master key than `kid`: (id, kid, wrapped)."""
    rows = conn.execute(
        select(data_keys.c.id, data_keys.c.kid, data_keys.c.wrapped)
        .where(data_keys.c.kid != kid)
        .order_by(data_keys.c.id)
        .limit(limit)
    )
    return [(r[0], r[1], r[2]) for r in rows]


def rewrap(conn: Connection, key_id: str, old_kid: str, kid: str, wrapped: bytes) -> bool:
    """Store a key re-wrapped, unless someone re-wrapped it meanwhile."""
    done = conn.execute(
        update(data_keys)
        .where(and_(data_keys.c.id == key_id, data_keys.c.kid == old_kid))
        .values(kid=kid, wrapped=wrapped)
    )
    return bool(done.rowcount)


def note_master_key(conn: Connection, kid: str, now: float) -> None:
    """Record when a master key id was first used here (kept if already recorded)."""
    if conn.execute(select(seen.c.kid).where(seen.c.kid == kid)).first() is None:
        conn.execute(insert(seen), [{"kid": kid, "first_seen_at": now}])


def master_key_first_seen(conn: Connection, kid: str) -> float | None:
    return conn.execute(select(seen.c.first_seen_at).where(seen.c.kid == kid)).scalar()


def count_not_under(conn: Connection, kid: str) -> int:
    query = select(func.count()).select_from(data_keys).where(data_keys.c.kid != kid)
    return int(conn.execute(query).scalar_one())
