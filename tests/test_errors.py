"""The bot's own exceptions: one base for all of them, and one error for a store that is
away (StoreUnavailable), raised at the store's door whichever way in failed."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import pkgutil
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Connection, MetaData, String, Table, bindparam, make_url, text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi as AsyncpgErrors
from sqlalchemy.exc import DBAPIError, IntegrityError

import bot
from bot.errors import BotError
from bot.simulator import webhooks
from bot.store import StoreUnavailable
from bot.store import db as db_module
from bot.store.db import Bare, Database, Query, WriteLockBusy, hot, unavailable
from tests.conftest import PG_URL, PHONE_NUMBER_ID, Bot, eventually, require, reset_postgres

# Not importable on their own: the command-line entry point runs at import, and
# the migration environment needs alembic's context.
SKIPPED = ("bot.__main__", "bot.store.migrations", "bot.store.keystore_migrations")


def exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in a module of the bot, by qualified name."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(bot.__path__, "bot."):
        if info.name.startswith(SKIPPED):
            continue
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == module.__name__:
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return found


def test_every_exception_of_the_bot_derives_from_bot_error() -> None:
    classes = exception_classes()
    assert {  # the walk reaches every package
        "bot.config.SettingsError",
        "bot.conversation.flowfile.FlowError",
        "bot.policy.business.SendRefused",
        "bot.simulator.routes.BadRequest",
        "bot.store.writer.WriterClosed",
        "bot.whatsapp.errors.GraphError",
    } <= set(classes)
    assert [name for name, cls in classes.items() if not issubclass(cls, BotError)] == []


def test_the_builtin_bases_callers_rely_on_are_kept() -> None:
    from bot.simulator.routes import BadRequest
    from bot.store.writer import WriterClosed
    from bot.whatsapp.events import PayloadError
    from bot.whatsapp.messages import MessageTooLarge

    assert issubclass(WriterClosed, RuntimeError)
    assert issubclass(PayloadError, ValueError)
    assert issubclass(MessageTooLarge, ValueError)
    assert issubclass(BadRequest, ValueError)


# --- the store: away is StoreUnavailable, anything else comes through as it was -----------

PHONE = "+447700900123"  # a statement's parameter: it must never reach the message


def look(conn: Connection, value: str) -> int:
    return conn.execute(
        text("SELECT count(*) FROM sqlite_master WHERE name = :v"), {"v": value}
    ).scalar()


def echo(conn: Connection, value: str) -> Any:
    return conn.execute(text("SELECT CAST(:v AS text)"), {"v": value}).scalar()


@hot
def hot_look(conn: Bare, value: str) -> list[tuple]:
    return conn.raw.execute(
        "SELECT count(*) FROM sqlite_master WHERE name = ?", (value,)
    ).fetchall()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def away(exc: pytest.ExceptionInfo[StoreUnavailable], message: str, cause: type) -> None:
    """The message is exactly the short one (so nothing else is in it) and the driver's
    error is kept as the cause."""
    assert str(exc.value) == message
    assert PHONE not in str(exc.value)
    assert isinstance(exc.value.__cause__, cause)


@pytest.mark.parametrize("inline", [False, True], ids=["threads", "inline"])
async def test_a_sqlite_file_that_cannot_be_opened_is_unavailable(
    tmp_path: Path, inline: bool
) -> None:
    where = tmp_path / "a-directory"
    where.mkdir()  # opening a directory as a database fails the same way for root
    db = Database(f"sqlite+aiosqlite:///{where}", inline=inline)
    try:
        with pytest.raises(StoreUnavailable) as start:
            await db.start()
        away(start, "store migration failed: OperationalError (SQLITE_CANTOPEN)", DBAPIError)
        with pytest.raises(StoreUnavailable) as read:
            await db.read(look, PHONE)
        away(read, "store read failed: OperationalError (SQLITE_CANTOPEN)", DBAPIError)
        with pytest.raises(StoreUnavailable) as bare:
            await db.read(hot_look, PHONE)
        away(bare, "store read failed: OperationalError (SQLITE_CANTOPEN)", sqlite3.Error)
        assert await db.ping() is False
    finally:
        await db.stop()


async def test_a_postgresql_server_that_is_not_listening_is_unavailable() -> None:
    db = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/bot")
    try:
        with pytest.raises(StoreUnavailable) as start:
            await db.start()
        away(start, "store migration failed: ConnectionRefusedError", OSError)
        with pytest.raises(StoreUnavailable) as read:
            await db.read(echo, PHONE)
        away(read, "store read failed: ConnectionRefusedError", OSError)
        assert await db.ping() is False
    finally:
        await db.stop()


@pytest.mark.parametrize("inline", [False, True], ids=["threads", "inline"])
async def test_a_write_while_another_process_keeps_the_lock_is_unavailable(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, inline: bool
) -> None:
    monkeypatch.setattr(db_module, "BUSY_TIMEOUT_MS", 200)  # give up after 0.2 s, not 10 s
    db = Database(sqlite_url, inline=inline)
    await db.start()
    await db.write(lambda c: c.execute(text("CREATE TABLE t (v TEXT)")))
    other = sqlite3.connect(sqlite_url.split(":///", 1)[1], isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable) as write:
            await db.write(lambda c: c.execute(text("INSERT INTO t VALUES (:v)"), {"v": PHONE}))
        if inline:
            away(write, "store write failed: WriteLockBusy", WriteLockBusy)
        else:
            away(write, "store write failed: OperationalError (SQLITE_BUSY)", sqlite3.Error)
        assert await db.read(look, PHONE) == 0  # reads go on beside the lock
        other.rollback()
        await db.write(lambda c: c.execute(text("INSERT INTO t VALUES (:v)"), {"v": PHONE}))
        assert await db.read(lambda c: c.execute(text("SELECT count(*) FROM t")).scalar()) == 1
    finally:
        other.close()
        await db.stop()


async def test_a_full_sqlite_database_is_unavailable_and_its_parameters_stay_in_the_cause(
    sqlite_url: str,
) -> None:
    """SQLAlchemy's error quotes the statement's parameters; StoreUnavailable's message
    never does (the cause is kept for the traceback, which the logs reduce to types)."""

    def fill(conn: Connection) -> None:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
        conn.exec_driver_sql(f"PRAGMA max_page_count={pages}")  # this connection: no room
        conn.execute(text("INSERT INTO t VALUES (:v)"), {"v": PHONE * 1000})

    db = Database(sqlite_url)
    await db.start()
    try:
        await db.write(lambda c: c.execute(text("CREATE TABLE t (v TEXT)")))
        with pytest.raises(StoreUnavailable) as write:
            await db.write(fill)
        away(write, "store write failed: OperationalError (SQLITE_FULL)", DBAPIError)
        assert PHONE in str(write.value.__cause__)
        await db.write(lambda c: c.execute(text("INSERT INTO t VALUES ('after')")))
    finally:
        await db.stop()


class Proxy:
    """A TCP relay to PostgreSQL that can be cut: the server goes away for the client."""

    def __init__(self, host: str, port: int) -> None:
        self._target = host, port
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers += [writer, up_writer]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        await self._server.wait_closed()


async def test_a_postgresql_server_that_goes_away_is_unavailable() -> None:
    require(bool(PG_URL), "PostgreSQL not configured (set BOT_TEST_DATABASE_URL)")
    await reset_postgres(PG_URL)
    url = make_url(PG_URL)
    proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
    db = Database(url.set(host="127.0.0.1", port=await proxy.start()).render_as_string(False))
    await db.start()
    try:
        assert await db.write(lambda c: c.execute(text("SELECT 1")).scalar()) == 1
        assert await db.read(lambda c: c.execute(text("SELECT 1")).scalar()) == 1
        await proxy.cut()
        with pytest.raises(StoreUnavailable) as read:
            await db.read(echo, PHONE)
        away(read, "store read failed: ConnectionRefusedError", OSError)
        with pytest.raises(StoreUnavailable) as write:
            await db.write(echo, PHONE)
        away(write, "store write failed: ConnectionRefusedError", OSError)
        assert await db.ping() is False
    finally:
        await db.stop()


async def test_a_statement_the_postgresql_server_cuts_off_is_unavailable() -> None:
    """An administrator (or a failover) ends the connection under a running statement."""
    require(bool(PG_URL), "PostgreSQL not configured (set BOT_TEST_DATABASE_URL)")
    await reset_postgres(PG_URL)
    db = Database(PG_URL)
    await db.start()

    def slow(conn: Connection) -> Any:
        return conn.execute(text("SELECT pg_sleep(30), CAST(:v AS text)"), {"v": PHONE}).all()

    def end_it(conn: Connection) -> int:
        return len(
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE query LIKE 'SELECT pg_sleep(30)%' AND pid <> pg_backend_pid()"
                )
            ).all()
        )

    try:
        reading = asyncio.ensure_future(db.read(slow))
        await eventually(lambda: db.write(end_it))  # once the statement is running
        with pytest.raises(StoreUnavailable) as read:
            await asyncio.wait_for(reading, 10)
        assert str(read.value).startswith("store read failed: ")
        assert "SQLSTATE 08" in str(read.value) or "SQLSTATE 57P01" in str(read.value)
        assert PHONE not in str(read.value)
        assert isinstance(read.value.__cause__, DBAPIError)
        assert PHONE in str(read.value.__cause__)
        assert await db.ping() is True  # the pool opens a new connection
    finally:
        await db.stop()


async def test_a_key_clash_or_a_mistake_is_not_unavailability(db_url: str) -> None:
    table = Table("clash", MetaData(), Column("v", String, primary_key=True))
    add = Query(table.insert().values(v=bindparam("v")))
    db = Database(db_url)
    await db.start()
    try:
        await db.write(lambda c: c.execute(text("CREATE TABLE clash (v VARCHAR PRIMARY KEY)")))
        await db.write(lambda c: add.execute(c, {"v": PHONE}))
        with pytest.raises(IntegrityError):  # through SQLAlchemy
            await db.write(lambda c: c.execute(text("INSERT INTO clash VALUES (:v)"), {"v": PHONE}))
        with pytest.raises(Exception) as bare:  # straight through the driver
            await db.write(lambda c: add.execute(c, {"v": PHONE}))
        assert isinstance(bare.value, sqlite3.IntegrityError | AsyncpgErrors.IntegrityError)
        with pytest.raises(DBAPIError) as mistake:
            await db.read(lambda c: c.execute(text("SELECT v FROM no_such_table")).all())
        assert not isinstance(mistake.value, StoreUnavailable)

        def bug(conn: Connection) -> None:
            raise KeyError("a bug")

        with pytest.raises(KeyError):
            await db.write(bug)
        with pytest.raises(KeyError):
            await db.read(bug)
    finally:
        await db.stop()


def test_what_counts_as_unavailable() -> None:
    import asyncpg

    assert unavailable(ConnectionRefusedError(111, "refused")) == "ConnectionRefusedError"
    assert unavailable(TimeoutError()) == "TimeoutError"
    assert unavailable(sqlite3.OperationalError("database is locked")) == "OperationalError"
    assert unavailable(WriteLockBusy()) == "WriteLockBusy"
    assert unavailable(asyncpg.exceptions.AdminShutdownError("x")) == (
        "AdminShutdownError (SQLSTATE 57P01)"
    )
    assert unavailable(asyncpg.exceptions.TooManyConnectionsError("x")) == (
        "TooManyConnectionsError (SQLSTATE 53300)"
    )
    assert unavailable(asyncpg.exceptions.UniqueViolationError("x")) is None
    assert unavailable(asyncpg.exceptions.UndefinedTableError("x")) is None
    assert unavailable(sqlite3.IntegrityError("UNIQUE constraint failed")) is None
    assert unavailable(StoreUnavailable("already translated")) is None  # passed on as it is
    assert unavailable(ValueError("a bug")) is None


# --- end to end: what the bot does when its store is away ---------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_delivery_the_store_cannot_take_is_not_acknowledged_and_is_taken_again(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process keeps the write lock past the timeout: the webhook answers 503
    (Meta delivers again later) and takes the same delivery once the lock is free."""
    monkeypatch.setattr(db_module, "BUSY_TIMEOUT_MS", 200)
    body, _ = webhooks.message(PHONE_NUMBER_ID, PHONE, webhooks.text("hi"))
    other = sqlite3.connect(bot.settings.DATABASE_URL.split(":///", 1)[1], isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        refused = await bot.post(body)
        assert (refused.status_code, refused.text) == (503, "storage unavailable, retry later")
    finally:
        other.rollback()
        other.close()
    metrics = (await bot.http.get(bot.url + "/metrics")).text
    assert 'bot_webhook_deliveries_total{outcome="store_unavailable"} 1.0' in metrics
    assert (await bot.post(body)).status_code == 200
    (reply,) = await bot.replies(1)
    assert reply.to == PHONE.lstrip("+")
