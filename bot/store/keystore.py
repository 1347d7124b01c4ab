"""Opening the two databases: the data, and the key store apart from it.

The key store opens first (its own migrations). A data database from before the
key store still holds its `data_keys` table: every row is copied into the key
store, committed there, and only then does the data database's migration drop
the table, so a crash at any point loses no key (the copy is simply made again).
A key store that holds no key beside a data database that holds contacts is
refused: a wrong `BOT_KEYSTORE_URL` would make every person unreadable.
"""

from __future__ import annotations

from pathlib import Path

from bot.errors import BotError
from bot.store import contacts as contact_store
from bot.store import keys as key_store
from bot.store.db import Database

KEYSTORE_MIGRATIONS = Path(__file__).parent / "keystore_migrations"
MOVE_BATCH = 1000


class KeyStoreMismatch(BotError):
    """The key store does not go with the data database."""


def open_keystore(url: str) -> Database:
    return Database(url, migrations=KEYSTORE_MIGRATIONS)


async def open_stores(
    data_url: str,
    keys_url: str,
    *,
    hold: float | None = None,
    inline: bool = False,
    audit_key: bytes | None = None,
) -> tuple[Database, Database]:
    """The data database (its audit entries chained under `audit_key`) and the key store,
    both migrated and started."""
    keys = open_keystore(keys_url)
    await keys.start()
    db = Database(data_url, hold=hold, inline=inline, audit_key=audit_key)
    try:
        # The data database drops its keys only if every one of them was moved (an older
        # process still running may have added one since: then this start fails, and
        # the next one moves it too).
        db.migration_facts["keys_moved"] = await move_keys_out(db, keys)
        await db.start()
        if not await keys.read(key_store.any_key) and await db.read(contact_store.any_contact):
            raise KeyStoreMismatch(
                "BOT_KEYSTORE_URL: the key store holds no data keys but the database holds "
                "contacts; point it at the key store that goes with DATABASE_URL"
            )
    except BaseException:
        await db.stop()
        await keys.stop()
        raise
    return db, keys


async def move_keys_out(db: Database, keys: Database) -> set[str]:
    """Copy the data keys an older data database still holds into the key store;
    the ids of those copied (and committed there)."""
    moved: set[str] = set()
    after = ""
    while True:
        try:
            batch = await db.read(key_store.legacy_keys, after, MOVE_BATCH)
        except Exception:
            if await db.read(key_store.legacy_table_exists):
                raise
            return moved  # another process starting at once moved them and dropped the table
        if not batch:
            return moved
        await keys.write(key_store.add_missing, batch)
        moved.update(row["id"] for row in batch)
        after = batch[-1]["id"]
