"""Master key rotation while the bot runs: afterwards only the new key is needed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from bot.app import create_app
from bot.crypto import CryptoError, Keyring
from bot.keys import rotate
from bot.operator import export_person
from bot.simulator import webhooks
from bot.store import keys as key_store
from bot.store.keystore import open_stores
from tests.conftest import Bot, make_settings, random_key
from tests.flowkit import options_of, text_of
from tests.servers import running

PEOPLE = [f"+4477009002{i:02d}" for i in range(12)]


async def converse(bot: Bot, people: list[str], words: str) -> None:
    for person in people:
        await bot.say(person, words)


async def test_rotation_under_load_leaves_everything_readable_with_the_new_key(
    db_url: str, graph: tuple
) -> None:
    fake, api_url = graph
    index_key, old, new = random_key(), f"k1:{random_key()}", f"k2:{random_key()}"
    base = {"BOT_INDEX_KEY": index_key, "BOT_MARK_AS_READ": False}

    async def run_bot(master_keys: str):
        settings = make_settings(db_url, api_url, BOT_MASTER_KEYS=master_keys, **base)
        app = create_app(settings)
        return settings, app

    # 1. People opt in under the old key.
    settings, app = await run_bot(old)
    async with running(app) as url, httpx.AsyncClient() as http:
        bot = Bot(url=url, services=app.extensions["bot"], fake=fake, http=http, settings=settings)
        await converse(bot, PEOPLE, "JOIN")
        await bot.replies(len(PEOPLE))
        for person in PEOPLE:
            await bot.say(person, webhooks.button_reply("optin.yes", "Yes"))
        await bot.replies(len(PEOPLE))
        await bot.idle()

    # 2. New key first, old key kept; rotate in small batches while people keep writing.
    settings, app = await run_bot(f"{new},{old}")
    async with running(app) as url, httpx.AsyncClient() as http:
        bot = Bot(url=url, services=app.extensions["bot"], fake=fake, http=http,
                  settings=settings, sent_before=len(fake.sent))  # fmt: skip
        operator_db, operator_keys = await open_stores(
            db_url, settings.keystore_url, audit_key=settings.audit_key
        )
        try:
            keyring = Keyring(settings.master_keys, settings.index_key)
            rotation, _ = await asyncio.gather(
                rotate(operator_db, operator_keys, keyring, batch_size=2),
                converse(bot, [*PEOPLE, "+447700900300"], "hello"),
            )
        finally:
            await operator_db.stop()
            await operator_keys.stop()
        await bot.replies(len(PEOPLE) + 1)
        await bot.idle()
        assert rotation.left == 0 and rotation.rewrapped >= len(PEOPLE)
        kids = await bot.keys_sql("SELECT DISTINCT kid FROM data_keys")
        assert kids == [("k2",)]
        assert (await bot.sql("SELECT count(*) FROM audit WHERE event='key_rotated'"))[0][0] >= 1

    # 3. The old key is gone from the settings: everything still opens.
    settings, app = await run_bot(new)
    async with running(app) as url, httpx.AsyncClient() as http:
        bot = Bot(url=url, services=app.extensions["bot"], fake=fake, http=http,
                  settings=settings, sent_before=len(fake.sent))  # fmt: skip
        await bot.say(PEOPLE[0], "MY DATA")
        summary, menu = await bot.replies(2)
        assert "given" in text_of(summary.body)
        assert "my_data.export" in options_of(menu.body)
    for person in PEOPLE:
        doc = await export_person(settings, person)
        assert doc["contact"]["phone"] == person
        assert doc["consents"][0]["status"] == "granted"


async def test_rotation_without_the_old_key_fails_clearly(db_url: str, tmp_path: Path) -> None:
    from bot.config import MasterKey

    db, keys = await open_stores(db_url, make_settings(db_url, "http://127.0.0.1:9").keystore_url)
    try:
        old = Keyring([MasterKey("k1", b"\x01" * 32)], b"\x02" * 32)
        _, wrapped = old.new_data_key("dk-test")
        row = {"id": "dk-test", "kid": wrapped.kid, "wrapped": wrapped.wrapped, "created_at": 0}
        await keys.write(key_store.add, row)
        only_new = Keyring([MasterKey("k2", b"\x03" * 32)], b"\x02" * 32)
        try:
            await rotate(db, keys, only_new)
        except CryptoError as exc:
            assert "k1" in str(exc)
        else:
            raise AssertionError("rotation without the old key must fail")
    finally:
        await db.stop()
        await keys.stop()
