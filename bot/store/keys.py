"""Data keys as stored, in the key store: a database of their own, apart from the data.

Only wrapped keys reach this module; wrapping and unwrapping are `bot.crypto`'s.
The key store (`BOT_KEYSTORE_URL`) holds one row per contact plus the bot's own
keys, so a backup of the data database holds no key: deleting a row here is
crypto-shredding, and a restored copy of the data stays sealed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Float,
    LargeBinary,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)

from bot.store.db import Bare, Query, hot
from bot.store.tables import MasterKeySeen

seen = MasterKeySeen.__table__  # in the data database: ids and times, never key material

metadata = MetaData()
data_keys = Table(
    "data_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kid", String(64), nullable=False),
    Column("wrapped", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
)

_GET = Query(select(data_keys.c.kid, data_keys.c.wrapped).where(data_keys.c.id == bindparam("id")))


@hot
def get(conn: Connection | Bare, key_id: str) -> tuple[str, bytes] | None:
    """A data key as stored: (master key id, wrapped key); None once shredded."""
    rows = _GET.fetch(conn, {"id": key_id})
    return (rows[0][0], bytes(rows[0][1])) if rows else None


def add(conn: Connection, key: dict[str, Any]) -> None:
    conn.execute(insert(data_keys), [key])


def shred(conn: Connection, key_id: str) -> int:
    """Delete a data key: whatever it sealed, here or in any backup, is unreadable."""
    return int(conn.execute(delete(data_keys).where(data_keys.c.id == key_id)).rowcount)


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


def any_key(conn: Connection) -> bool:
    return conn.execute(select(data_keys.c.id).limit(1)).first() is not None


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


def add_missing(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Keys moved in from the data database; those already here are kept as they are."""
    have = {
        r[0]
        for r in conn.execute(
            select(data_keys.c.id).where(data_keys.c.id.in_([r["id"] for r in rows]))
        )
    }
    fresh = [r for r in rows if r["id"] not in have]
    if fresh:
        conn.execute(insert(data_keys), fresh)


# Before the key store: keys kept in the data database -------------------------------------


def legacy_table_exists(conn: Connection) -> bool:
    return bool(inspect(conn).has_table("data_keys"))


def legacy_keys(conn: Connection, after: str, limit: int) -> list[dict[str, Any]] | None:
    """Up to `limit` keys still in the data database's old `data_keys` table, by id after
    `after`; None when that table is gone (moved already, or never there)."""
    if not legacy_table_exists(conn):
        return None
    rows = conn.execute(
        text(
            "SELECT id, kid, wrapped, created_at FROM data_keys WHERE id > :after "
            "ORDER BY id LIMIT :limit"
        ),
        {"after": after, "limit": limit},
    )
    return [{"id": r[0], "kid": r[1], "wrapped": bytes(r[2]), "created_at": r[3]} for r in rows]
