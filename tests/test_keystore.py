"""Erasure reaches backups: the data keys live in a key store apart from the data.

A copy of the data database taken before someone is erased, opened afterwards with
the live key store and master keys, still opens everyone else but not them.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bot.config import SettingsError, load_settings
from bot.crypto import CryptoError, DataKey, Index, Keyring, WrappedKey, open_sealed
from bot.privacy.person import People, seal_column
from bot.store import keys as key_store
from bot.store.db import MIGRATIONS, Database
from bot.store.keystore import KeyStoreMismatch, move_keys_out, open_keystore, open_stores
from tests.conftest import (
    PG_URL,
    POSTGRES_ONLY,
    SQLITE_ONLY,
    Bot,
    ensure_postgres_database,
    keystore_beside,
    make_settings,
    random_key,
    require,
    reset_postgres,
)
from tests.flowkit import GERMANY, UK

NOWHERE = "http://127.0.0.1:9"


# Reading a backup as an attacker with the live keys would ----------------------------------


async def backup_tables(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of the tables that hold a person, read from a copy of the data database
    (without migrating it), and its `data_keys` table if the copy has one."""
    copy = Database(url)

    def read(conn: Connection) -> dict[str, list[dict[str, Any]]]:
        names = ["contacts", "messages"]
        if inspect(conn).has_table("data_keys"):
            names.append("data_keys")
        return {
            name: [dict(r._mapping) for r in conn.execute(text(f"SELECT * FROM {name}"))]
            for name in names
        }

    try:
        return await copy.read(read)
    finally:
        await copy.stop()


async def open_backup(
    tables: dict[str, list[dict[str, Any]]], keys: Database, keyring: Keyring
) -> dict[str, dict[str, Any]]:
    """Whom a backup still gives away, by number: their name and how many of their
    messages open, using any key the backup holds, else the live key store."""
    in_backup = {k["id"]: (k["kid"], bytes(k["wrapped"])) for k in tables.get("data_keys", [])}
    found: dict[str, dict[str, Any]] = {}
    for contact in tables["contacts"]:
        cid, key_id = contact["id"], contact["data_key_id"]
        stored = in_backup.get(key_id) or await keys.read(key_store.get, key_id)
        if stored is None:
            continue
        try:
            dk = keyring.unwrap(key_id, WrappedKey(*stored))
        except CryptoError:
            continue
        phone = opened(dk, contact["phone_sealed"], f"contacts/phone/{cid}")
        name = opened(dk, contact["name_sealed"], f"contacts/name/{cid}")
        bodies = [m for m in tables["messages"] if m["contact_id"] == cid]
        found[phone or cid] = {
            "name": name,
            "messages": sum(
                1 for m in bodies if opened(dk, m["body"], f"messages/body/{m['id']}") is not None
            ),
        }
    return found


def opened(dk: DataKey, blob: bytes | None, where: str) -> str | None:
    if blob is None:
        return None
    try:
        return open_sealed(dk, bytes(blob), where).decode()
    except CryptoError:
        return None


async def take_backup(bot: Bot, tmp_path: Path) -> str:
    """A copy of the data database as an operator takes one: SQLite's online backup of
    the file, or pg_dump restored into a database of its own."""
    if bot.services.db.dialect == "sqlite":
        source = bot.settings.sqlite_path
        assert source is not None
        target = tmp_path / "backup" / "bot.db"
        target.parent.mkdir()
        with sqlite3.connect(source) as live, sqlite3.connect(target) as copy:
            live.backup(copy)
        return f"sqlite+aiosqlite:///{target}"
    url = make_url(PG_URL)
    restored = url.set(database=f"{url.database}_backup").render_as_string(False)
    await ensure_postgres_database(restored)
    await reset_postgres(restored)
    where = ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username]
    dump = tmp_path / "dump.sql"

    def run() -> None:
        subprocess.run(
            ["pg_dump", *where, "-d", url.database, "-f", str(dump)], check=True
        )  # fmt: skip
        subprocess.run(
            ["psql", "-q", *where, "-d", f"{url.database}_backup", "-f", str(dump)],
            check=True, capture_output=True,
        )  # fmt: skip

    await asyncio.to_thread(run)
    return restored


async def test_a_backup_taken_before_an_erasure_cannot_open_the_erased_person(
    bot: Bot, tmp_path: Path
) -> None:
    await bot.say(UK, "hello", name="Alice Example")
    await bot.say(GERMANY, "hello", name="Bruno Beispiel")
    await bot.idle()
    backup = await take_backup(bot, tmp_path)

    await bot.say(UK, "DELETE MY DATA")
    await bot.idle()
    await bot.say(UK, "DELETE")
    await bot.idle()
    assert await bot.sql("SELECT count(*) FROM contacts") == [(1,)]

    live = Keyring(bot.settings.master_keys, bot.settings.index_key)  # nothing cached
    found = await open_backup(await backup_tables(backup), bot.services.keys, live)
    assert UK not in found, "the erased person opens from a backup taken before the erasure"
    assert len(found) == 1  # and nobody else's key opens their rows
    assert found[GERMANY]["name"] == "Bruno Beispiel"
    assert found[GERMANY]["messages"] >= 2  # what they wrote, what they were told


@SQLITE_ONLY
async def test_the_key_store_is_a_file_beside_the_database_holding_every_key(
    bot: Bot, tmp_path: Path
) -> None:
    data = bot.settings.sqlite_path
    assert data is not None
    assert bot.settings.keystore_url == f"sqlite+aiosqlite:///{data.parent / 'bot.keys.db'}"
    await bot.say(UK, "hello", name="Alice Example")
    await bot.say(GERMANY, "JOIN")
    await bot.idle()
    wrapped = [bytes(r[0]) for r in await bot.keys_sql("SELECT wrapped FROM data_keys")]
    assert len(wrapped) == 4  # two people and the bot's own two
    raw = b"".join(p.read_bytes() for p in data.parent.glob("bot.db*"))  # with its WAL
    assert raw, "the data database file was not found"
    for blob in wrapped:
        assert blob not in raw, "a wrapped data key is in the data database file"
        assert blob[12:28] not in raw  # not even part of one
    tables = await bot.sql("SELECT name FROM sqlite_master WHERE type='table'")
    assert "data_keys" not in {t[0] for t in tables}


async def test_a_key_store_of_its_own_is_required_beside_postgresql() -> None:
    pg = "postgresql+asyncpg://bot@127.0.0.1/bot"
    base = {"WHATSAPP_APP_SECRET": "s", "WHATSAPP_VERIFY_TOKEN": "v",
            "BOT_MASTER_KEYS": f"k1:{random_key()}", "BOT_INDEX_KEY": random_key(),
            "BOT_AUDIT_KEY": random_key()}  # fmt: skip
    with pytest.raises(SettingsError, match=r"^BOT_KEYSTORE_URL: required when DATABASE_URL"):
        load_settings(env_file=None, DATABASE_URL=pg, **base)
    with pytest.raises(SettingsError, match=r"^BOT_KEYSTORE_URL: must not be DATABASE_URL"):
        load_settings(env_file=None, DATABASE_URL=pg, BOT_KEYSTORE_URL=pg, **base)
    with pytest.raises(SettingsError, match=r"^BOT_KEYSTORE_URL: must start with"):
        load_settings(env_file=None, BOT_KEYSTORE_URL="mysql://x/y", **base)
    apart = load_settings(
        env_file=None, DATABASE_URL=pg, BOT_KEYSTORE_URL=pg + "_keys", **base
    ).keystore_url
    assert apart == pg + "_keys"
    sqlite = load_settings(env_file=None, DATABASE_URL="sqlite+aiosqlite:///var/x.db", **base)
    assert sqlite.keystore_url == "sqlite+aiosqlite:///var/x.keys.db"


@POSTGRES_ONLY
async def test_postgresql_keeps_the_keys_in_a_database_apart(bot: Bot) -> None:
    await bot.say(UK, "hello")
    await bot.idle()
    assert make_url(bot.services.keys.url).database != make_url(bot.services.db.url).database
    tables = await bot.sql("SELECT tablename FROM pg_tables WHERE schemaname='public'")
    assert "data_keys" not in {t[0] for t in tables}
    assert len(await bot.keys_sql("SELECT id FROM data_keys")) == 3


async def test_a_key_shredded_before_its_rows_went_finishes_the_erasure(bot: Bot) -> None:
    """A crash between erasure's two steps: the key is gone, the rows are not yet."""
    await bot.say(UK, "hello")
    await bot.idle()
    people: People = bot.services.people
    person = await people.find(e164=UK)
    assert person is not None
    assert await people.shred(person) == 1  # ... and the process dies here

    assert await people.find(e164=UK) is None  # nothing of theirs can be opened
    assert await bot.sql("SELECT count(*) FROM contacts") == [(0,)]
    assert await bot.sql("SELECT count(*) FROM messages WHERE contact_id IS NOT NULL") == [(0,)]
    assert len(await bot.sql("SELECT phone_index FROM suppressions")) == 1
    details = await bot.sql("SELECT detail FROM audit WHERE event='data_deletion'")
    assert len(details) == 1 and "key_shredded" in details[0][0]


# Upgrading a deployment whose keys were kept with the data --------------------------------


async def old_layout(url: str, keyring: Keyring, e164: str) -> str:
    """A data database as the bot left it before the key store: schema 0004, with one
    contact and the bot's inbox key in its own `data_keys` table. Returns the contact id."""
    engine = create_async_engine(url)

    def upgrade(conn: Connection) -> None:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")

    dk, wrapped = keyring.new_data_key("dk-alice")
    _, inbox = keyring.new_data_key("system-inbox")
    contact = {
        "id": "c-alice", "phone_index": keyring.blind_index(Index.PHONE, e164),
        "data_key_id": "dk-alice", "phone": seal_column(dk, "c-alice", "phone", e164), "at": 1.0,
    }  # fmt: skip
    async with engine.connect() as conn:
        await conn.run_sync(upgrade)
        for key_id, key in (("dk-alice", wrapped), ("system-inbox", inbox)):
            await conn.execute(
                text("INSERT INTO data_keys VALUES (:id, :kid, :wrapped, 1.0)"),
                {"id": key_id, "kid": key.kid, "wrapped": key.wrapped},
            )
        await conn.execute(
            text(
                "INSERT INTO contacts (id, phone_index, data_key_id, phone_sealed, created_at) "
                "VALUES (:id, :phone_index, :data_key_id, :phone, :at)"
            ),
            contact,
        )
        await conn.commit()
    await engine.dispose()
    return "c-alice"


@pytest.fixture
async def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A data database with nothing in it yet (and no key store)."""
    if "postgresql" in request.node.name:
        require(bool(PG_URL), "PostgreSQL not configured (set BOT_TEST_DATABASE_URL)")
        await reset_postgres(PG_URL)
        return PG_URL
    return f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
async def test_an_upgrade_moves_the_keys_out_of_the_data_database(
    dialect: str, empty_url: str, tmp_path: Path
) -> None:
    settings = make_settings(empty_url, NOWHERE)
    if dialect == "postgresql":
        await ensure_postgres_database(settings.keystore_url)
        await reset_postgres(settings.keystore_url)
    keyring = Keyring(settings.master_keys, settings.index_key)
    await old_layout(empty_url, keyring, UK)
    old = await backup_tables(empty_url)
    kept = {k["id"]: bytes(k["wrapped"]) for k in old["data_keys"]}

    # A crash after part of the copy: the inbox key is in the key store already.
    early = open_keystore(settings.keystore_url)
    await early.start()
    inbox = [k for k in old["data_keys"] if k["id"] == "system-inbox"]
    await early.write(key_store.add_missing, inbox)
    await early.stop()

    db, keys = await open_stores(empty_url, settings.keystore_url)
    try:
        query = text("SELECT id, wrapped FROM data_keys")
        moved = await keys.read(lambda c: {r[0]: bytes(r[1]) for r in c.execute(query)})
        assert moved == kept
        assert not await db.read(lambda c: inspect(c).has_table("data_keys"))
        person = await People(db, Keyring(settings.master_keys, settings.index_key), keys).find(
            e164=UK
        )
        assert person is not None and person.contact_id == "c-alice"
        assert opened(person.dk, person.sealed("phone"), "contacts/phone/c-alice") == UK
    finally:
        await db.stop()
        await keys.stop()

    if dialect == "sqlite":  # the moved keys are gone from the data database's file too
        raw = b"".join(p.read_bytes() for p in tmp_path.glob("bot.db*"))
        assert all(blob[12:28] not in raw for blob in kept.values())


async def test_a_key_store_that_does_not_go_with_the_data_is_refused(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    settings = make_settings(url, NOWHERE)
    await old_layout(url, Keyring(settings.master_keys, settings.index_key), UK)
    db, keys = await open_stores(url, settings.keystore_url)
    await db.stop()
    await keys.stop()
    for path in tmp_path.glob("bot.keys.db*"):
        shutil.move(path, tmp_path / f"elsewhere-{path.name}")
    with pytest.raises(KeyStoreMismatch, match=r"^BOT_KEYSTORE_URL: the key store holds no"):
        await open_stores(url, keystore_beside(tmp_path / "bot.db"))


async def test_a_key_added_after_the_copy_keeps_the_old_table_until_it_is_moved(
    tmp_path: Path,
) -> None:
    """An older process still running adds a person while a new one moves the keys out:
    the data database does not drop its keys then, and the next start moves that one too."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    settings = make_settings(url, NOWHERE)
    keyring = Keyring(settings.master_keys, settings.index_key)
    await old_layout(url, keyring, UK)
    keys, db = open_keystore(settings.keystore_url), Database(url)
    await keys.start()
    try:
        moved = await move_keys_out(db, keys)
        _, late = keyring.new_data_key("dk-late")
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO data_keys VALUES ('dk-late', :kid, :wrapped, 2.0)"),
                {"kid": late.kid, "wrapped": late.wrapped},
            )
        await engine.dispose()
        db.migration_facts["keys_moved"] = moved
        with pytest.raises(RuntimeError, match="1 data keys in the data database are not in"):
            await db.start()
    finally:
        await db.stop()
        await keys.stop()
    db, keys = await open_stores(url, settings.keystore_url)
    try:
        assert await keys.read(key_store.get, "dk-late") == (late.kid, late.wrapped)
        assert not await db.read(key_store.legacy_table_exists)
    finally:
        await db.stop()
        await keys.stop()
