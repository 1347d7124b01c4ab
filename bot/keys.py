"""Master key rotation: re-wrap every data key under the first key of BOT_MASTER_KEYS.

How an operator rotates (the bot keeps running throughout):
1. put the new key first, keep the old one after it: `BOT_MASTER_KEYS=k2:…,k1:…`,
   and restart the bot so new data keys are wrapped with k2;
2. run `python -m bot keys rotate`: it re-wraps the data keys still under k1,
   in batches, each batch its own transaction (stop it at any point and run it
   again: it carries on where it was);
3. remove k1 from BOT_MASTER_KEYS once it reports nothing left.

Only the small wrapped keys change; no sealed field is touched, so a rotation
of millions of people takes minutes, not hours. Each batch is audited.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, and_, func, select, update

from bot import audit
from bot.crypto import Keyring, WrappedKey
from bot.store.db import Database
from bot.store.tables import DataKey

data_keys = DataKey.__table__


@dataclass
class Rotation:
    rewrapped: int = 0
    batches: int = 0
    left: int = 0


def _batch(keyring: Keyring, size: int, actor: str) -> Callable[[Connection], int]:
    active = keyring.active_kid

    def unit(conn: Connection) -> int:
        rows = conn.execute(
            select(data_keys.c.id, data_keys.c.kid, data_keys.c.wrapped)
            .where(data_keys.c.kid != active)
            .order_by(data_keys.c.id)
            .limit(size)
        ).all()
        moved: dict[str, int] = {}
        for key_id, kid, wrapped in rows:
            new = keyring.rewrap(key_id, WrappedKey(kid, wrapped))
            done = conn.execute(
                update(data_keys)
                .where(and_(data_keys.c.id == key_id, data_keys.c.kid == kid))
                .values(kid=new.kid, wrapped=new.wrapped)
            )
            if done.rowcount:
                moved[kid] = moved.get(kid, 0) + 1
        if moved:
            detail = {"to": active, "from": moved, "count": sum(moved.values())}
            audit.append(conn, [audit.Event(actor, "key_rotated", detail=detail)])
        return len(rows)

    return unit


def remaining(keyring: Keyring) -> Callable[[Connection], int]:
    query = select(func.count()).select_from(data_keys).where(data_keys.c.kid != keyring.active_kid)
    return lambda conn: int(conn.execute(query).scalar_one())


async def rotate(
    db: Database, keyring: Keyring, batch_size: int = 500, actor: str = "operator"
) -> Rotation:
    """Re-wrap until no data key is under another master key."""
    result = Rotation()
    while True:
        n = await db.write(_batch(keyring, batch_size, actor))
        if not n:
            break
        result.rewrapped += n
        result.batches += 1
    result.left = await db.read(remaining(keyring))
    return result
