"""Master key rotation: re-wrap every data key under the first key of BOT_MASTER_KEYS.

How an operator rotates (the bot keeps running throughout):
1. put the new key first, keep the old one after it: `BOT_MASTER_KEYS=k2:…,k1:…`,
   and restart the bot so new data keys are wrapped with k2;
2. run `python -m bot keys rotate`: it re-wraps the data keys still under k1,
   in batches, each batch its own transaction (stop it at any point and run it
   again: it carries on where it was);
3. remove k1 from BOT_MASTER_KEYS once it reports nothing left.

Only the small wrapped keys change, in the key store (`BOT_KEYSTORE_URL`); no
sealed field is touched, so a rotation of millions of people takes minutes, not
hours. Each batch is audited in the data database once it is committed.

When a master key id is first used (the server's start, a rotation) it is recorded
(`master_keys_seen`, in the data database: ids and times only), so `python -m bot
doctor` can hold its age against the 90-day rotation period.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bot import audit
from bot.crypto import Keyring, WrappedKey
from bot.store import Conn
from bot.store import keys as store
from bot.store.db import Database


@dataclass
class Rotation:
    rewrapped: int = 0
    batches: int = 0
    left: int = 0


def _batch(conn: Conn, keyring: Keyring, size: int) -> tuple[int, dict[str, int]]:
    """Re-wrap up to `size` keys in the key store: (how many were looked at, how many
    were re-wrapped from each old master key)."""
    rows = store.not_under(conn, keyring.active_kid, size)
    moved: dict[str, int] = {}
    for key_id, kid, wrapped in rows:
        new = keyring.rewrap(key_id, WrappedKey(kid, wrapped))
        if store.rewrap(conn, key_id, kid, new.kid, new.wrapped):
            moved[kid] = moved.get(kid, 0) + 1
    return len(rows), moved


async def rotate(
    db: Database,
    keys: Database,
    keyring: Keyring,
    batch_size: int = 500,
    actor: str = "operator",
) -> Rotation:
    """Re-wrap (in the key store `keys`) until no data key is under another master key;
    each batch is audited in `db`."""
    result = Rotation()
    await db.write(store.note_master_key, keyring.active_kid, time.time())
    while True:
        n, moved = await keys.write(_batch, keyring, batch_size)
        if not n:
            break
        if moved:
            detail = {"to": keyring.active_kid, "from": moved, "count": sum(moved.values())}
            await db.write(audit.append, [audit.Event(actor, "key_rotated", detail=detail)])
        result.rewrapped += n
        result.batches += 1
    result.left = await keys.read(store.count_not_under, keyring.active_kid)
    return result
