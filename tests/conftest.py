"""Shared fixtures: a real bot and a real fake Graph API, both served on loopback.

Set BOT_TEST_DATABASE_URL (a postgresql+asyncpg:// URL) to run the database
tests on PostgreSQL as well (their key store is the database of the same name
with `_keys` after it, made when missing, or BOT_TEST_KEYSTORE_URL), and
BOT_TEST_REDIS_URL for Redis. With
BOT_TEST_STRICT=1 (set by .ci/run) a missing component fails the test
instead of skipping it, so CI never skips silently.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bot.app import Services, create_app
from bot.config import Settings, load_settings
from bot.simulator import webhooks
from bot.simulator.fake_graph import FakeGraph
from bot.simulator.fake_graph import serve as serve_fake
from tests.servers import running

PHONE_NUMBER_ID = "106540352242922"
APP_SECRET = "test-app-secret"


def keystore_for(db_url: str) -> str:
    """A PostgreSQL database's key store for tests: the same server, `<name>_keys`."""
    url = make_url(db_url)
    return url.set(database=f"{url.database}_keys").render_as_string(False)


TOKEN = "test-token"
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "meta-samples"
STRICT = os.environ.get("BOT_TEST_STRICT") == "1"
PG_URL = os.environ.get("BOT_TEST_DATABASE_URL", "")
PG_KEYS_URL = os.environ.get("BOT_TEST_KEYSTORE_URL", "") or (
    keystore_for(PG_URL) if PG_URL else ""
)


def require(condition: bool, reason: str) -> None:
    """Skip when a component is missing, except under CI, where it is a failure."""
    if condition:
        return
    if STRICT:
        pytest.fail(f"required under BOT_TEST_STRICT=1: {reason}")
    pytest.skip(reason)


def random_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def make_settings(db_url: str, api_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "WHATSAPP_APP_SECRET": APP_SECRET,
        "WHATSAPP_VERIFY_TOKEN": "verify-me",
        "WHATSAPP_ACCESS_TOKEN": TOKEN,
        "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
        "WHATSAPP_API_URL": api_url,
        "DATABASE_URL": db_url,
        "BOT_MASTER_KEYS": f"k1:{random_key()}",
        "BOT_INDEX_KEY": random_key(),
        "BOT_AUDIT_KEY": random_key(),
        "BOT_SIMULATOR": False,
        # Scripted conversations type faster than people; the limiter has its own tests.
        "BOT_INBOUND_BURST": 1000,
        "BOT_PURGE_INTERVAL": 0,
    }
    if not db_url.startswith("sqlite"):  # beside a SQLite file is per test; this is too
        values["BOT_AUDIT_CHECKPOINTS"] = str(Path(tempfile.mkdtemp()) / "checkpoints.jsonl")
    if db_url.startswith("postgresql"):  # the test key store, or one named after the database
        values["BOT_KEYSTORE_URL"] = PG_KEYS_URL if db_url == PG_URL else keystore_for(db_url)
    values.update(overrides)
    return load_settings(env_file=None, **values)


async def ensure_postgres_database(url: str) -> None:
    """Create the database `url` names when it does not exist yet (as the server's
    `postgres` database, which every PostgreSQL has)."""
    target = make_url(url)
    admin = create_async_engine(
        target.set(database="postgres").render_as_string(False), isolation_level="AUTOCOMMIT"
    )
    try:
        async with admin.connect() as conn:
            query = text("SELECT 1 FROM pg_database WHERE datname = :name")
            if not (await conn.execute(query, {"name": target.database})).first():
                await conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    finally:
        await admin.dispose()


async def reset_postgres(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty SQLite database, copied for each test: creating and
    migrating a file per test costs a dozen fsyncs each (test_store covers
    migrating a fresh file)."""
    from bot.store.keystore import open_stores

    path = tmp_path_factory.mktemp("template") / "bot.db"

    async def migrate() -> None:
        db, keys = await open_stores(f"sqlite+aiosqlite:///{path}", keystore_beside(path))
        await db.stop()
        await keys.stop()

    asyncio.run(migrate())
    return path


def keystore_beside(path: Path) -> str:
    """The default key store of a SQLite database file: `bot.db` → `bot.keys.db`."""
    return f"sqlite+aiosqlite:///{path.with_name(f'{path.stem}.keys{path.suffix}')}"


def fresh_sqlite(template: Path, tmp_path: Path) -> str:
    """A copy of the migrated database and its key store beside it."""
    shutil.copyfile(template, tmp_path / "bot.db")
    shutil.copyfile(template.with_name("bot.keys.db"), tmp_path / "bot.keys.db")
    return f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"


# A test about one database's layout runs on that database only (not skipped on the other).
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
POSTGRES_ONLY = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A fresh database: a SQLite file, and PostgreSQL when configured."""
    if request.param == "sqlite":
        return fresh_sqlite(sqlite_template, tmp_path)
    require(bool(PG_URL), "PostgreSQL not configured (set BOT_TEST_DATABASE_URL)")
    await reset_postgres(PG_URL)
    await ensure_postgres_database(PG_KEYS_URL)
    await reset_postgres(PG_KEYS_URL)
    return PG_URL


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    return fresh_sqlite(sqlite_template, tmp_path)


@pytest.fixture
async def graph() -> AsyncIterator[tuple[FakeGraph, str]]:
    fake = FakeGraph(phone_number_id=PHONE_NUMBER_ID, tokens=[TOKEN, "fallback-token"])
    async with serve_fake(fake) as url:
        yield fake, url + "/v21.0"


class Clock:
    """The time the bot judges every rule by; tests move it instead of waiting."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


async def wait_idle(services: Services, timeout: float = 10.0, interval: float = 0.01) -> None:
    """Wait until the bot has nothing left to do: no work in flight (`Services.busy`:
    turns, sends, sends whose record is still being written, queued writes) and no
    inbox event pending (a turn that failed waits for its retry). What the bot will only
    get later from outside (a status webhook the fake has yet to post) is not covered."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if not services.busy:
            pending = await services.db.read(
                lambda c: c.execute(
                    text("SELECT count(*) FROM inbox WHERE state='pending'")
                ).scalar()
            )
            if not pending and not services.busy:
                return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"bot did not become idle within {timeout}s")
        await asyncio.sleep(interval)


@dataclass
class Bot:
    """A running bot, the fake Graph API behind it, and Meta's side of the webhook."""

    url: str
    services: Services
    fake: FakeGraph
    http: httpx.AsyncClient
    settings: Settings
    sent_before: int = 0
    wamids: list[str] = field(default_factory=list)
    clock: Clock = field(default_factory=Clock)

    async def post(self, body: dict[str, Any] | bytes, secret: str = APP_SECRET) -> httpx.Response:
        raw, headers = webhooks.signed(body, secret)
        return await self.http.post(self.url + "/webhook", content=raw, headers=headers)

    async def say(self, sender: str, content: str | dict[str, Any], **kw: Any) -> str:
        """A person sends a message; returns its wamid once the bot acknowledged it."""
        payload = webhooks.text(content) if isinstance(content, str) else content
        body, wamid = webhooks.message(PHONE_NUMBER_ID, sender, payload, **kw)
        resp = await self.post(body)
        assert resp.status_code == 200, resp.text
        return wamid

    async def replies(self, count: int, timeout: float = 10.0) -> list[Any]:
        """Wait until `count` more messages (not read receipts) reached the fake."""
        target = self.sent_before + count
        got = await self.fake.wait_for_sent(target, timeout=timeout)
        new = got[self.sent_before : target]
        self.sent_before = target
        return new

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until every turn and send under way has finished (see `wait_idle`)."""
        await wait_idle(self.services, timeout)

    async def sql(self, query: str, **params: Any) -> list[Any]:
        return await self.services.db.read(lambda c: c.execute(text(query), params).all())

    async def keys_sql(self, query: str, **params: Any) -> list[Any]:
        """A query on the key store (the wrapped data keys, apart from the data)."""
        return await self.services.keys.read(lambda c: c.execute(text(query), params).all())


@pytest.fixture
async def bot(
    db_url: str, graph: tuple[FakeGraph, str], request: pytest.FixtureRequest
) -> AsyncIterator[Bot]:
    fake, api_url = graph
    overrides = getattr(request, "param", {}) or {}
    settings = make_settings(db_url, api_url, **overrides)
    clock = Clock()
    app = create_app(settings, clock=clock)
    async with running(app) as url, httpx.AsyncClient(timeout=30) as http:
        yield Bot(url, app.extensions["bot"], fake, http, settings, clock=clock)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


async def eventually(check: Any, timeout: float = 10.0, interval: float = 0.03) -> Any:
    """Poll an async check until it returns something truthy; fail on timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(interval)
