"""The store: group commit, failure isolation, draining, durability settings, migrations."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import Connection, text

from bot.store.db import Database


async def _db(url: str) -> Database:
    db = Database(url)
    await db.start()
    await db.write(lambda c: c.execute(text("CREATE TABLE IF NOT EXISTS t (v INTEGER UNIQUE)")))
    return db


def insert(v: int):
    return lambda c: c.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": v}).rowcount


async def count(db: Database) -> int:
    return await db.read(lambda c: c.execute(text("SELECT count(*) FROM t")).scalar())


async def test_many_units_share_few_commits(db_url: str) -> None:
    db = await _db(db_url)
    try:
        before = db.writer.batches
        results = await asyncio.gather(*(db.write(insert(i)) for i in range(500)))
        assert results == [1] * 500
        assert await count(db) == 500
        assert db.writer.batches - before < 50  # grouped, not one commit per unit
    finally:
        await db.stop()


async def test_a_failing_unit_fails_alone(db_url: str) -> None:
    db = await _db(db_url)
    try:
        await db.write(insert(1))
        outcomes = await asyncio.gather(
            db.write(insert(2)), db.write(insert(1)), db.write(insert(3)), return_exceptions=True
        )
        assert outcomes[0] == 1 and outcomes[2] == 1
        assert isinstance(outcomes[1], Exception)
        assert await count(db) == 3
    finally:
        await db.stop()


async def test_stop_drains_every_submitted_unit(sqlite_url: str) -> None:
    db = await _db(sqlite_url)
    futures = [asyncio.ensure_future(db.write(insert(i))) for i in range(300)]
    await asyncio.sleep(0)
    await db.stop()
    assert all(f.done() and f.result() == 1 for f in futures)
    db2 = Database(sqlite_url)
    await db2.start()
    try:
        assert await count(db2) == 300
    finally:
        await db2.stop()


async def test_sqlite_durability_settings(sqlite_url: str) -> None:
    db = await _db(sqlite_url)
    try:

        def pragmas(c: Connection) -> tuple:
            return (
                c.exec_driver_sql("PRAGMA journal_mode").scalar(),
                c.exec_driver_sql("PRAGMA synchronous").scalar(),
                c.exec_driver_sql("PRAGMA foreign_keys").scalar(),
            )

        assert await db.write(pragmas) == ("wal", 2, 1)  # 2 = FULL
    finally:
        await db.stop()


async def test_migrations_are_applied_on_start_and_idempotent(db_url: str) -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from bot.store.db import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    for _ in range(2):
        db = Database(db_url)
        await db.start()
        version = await db.read(
            lambda c: c.execute(text("SELECT version_num FROM alembic_version")).scalar()
        )
        await db.stop()
        assert version == head


def test_migration_matches_the_tables(tmp_path: Path) -> None:
    """Alembic's autogenerate finds nothing to add: tables.py and the migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from bot.store.tables import metadata

    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"

    async def migrate() -> None:
        db = Database(url)
        await db.start()
        await db.stop()

    asyncio.run(migrate())
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


async def test_bare_queries_read_and_write_through_the_driver(db_url: str) -> None:
    """`Query` runs a SQLAlchemy statement through the driver itself, on either database:
    its own literals are bound, rowcounts come back, a failing unit still rolls back
    alone, and a read sees what was committed a moment before, whether it runs bare
    (`hot`) or on a pooled connection."""
    from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, select, update

    from bot.store.db import Query, hot

    table = Table("q", MetaData(), Column("k", String, primary_key=True), Column("n", Integer))
    add = Query(table.insert().values(k=bindparam("k"), n=bindparam("n")).inline())
    bump = Query(
        update(table).where(table.c.k.in_([bindparam("a"), bindparam("b")])).values(n=table.c.n + 1)
    )
    big = Query(select(table.c.k).where(table.c.n >= 10).order_by(table.c.k))

    @hot
    def bare(conn):
        return big.fetch(conn, {})

    def pooled(conn):
        return big.fetch(conn, {})

    db = await _db(db_url)
    try:
        await db.write(lambda c: c.execute(text("DROP TABLE IF EXISTS q")))
        await db.write(
            lambda c: c.execute(text("CREATE TABLE q (k VARCHAR PRIMARY KEY, n INTEGER)"))
        )
        await db.write(lambda c: add.execute_many(c, [{"k": "x", "n": 9}, {"k": "y", "n": 10}]))
        assert await db.read(bare) == await db.read(pooled) == [("y",)]
        changed = await db.write(lambda c: bump.execute(c, {"a": "x", "b": "z"}))
        assert changed == 1
        assert await db.read(bare) == await db.read(pooled) == [("x",), ("y",)]
        duplicate = db.write(lambda c: add.execute(c, {"k": "x", "n": 0}))
        outcomes = await asyncio.gather(
            duplicate, db.write(lambda c: add.execute(c, {"k": "w", "n": 50})),
            return_exceptions=True,
        )  # fmt: skip
        assert isinstance(outcomes[0], Exception) and outcomes[1] == 1
        assert await db.read(bare) == await db.read(pooled) == [("w",), ("x",), ("y",)]
    finally:
        await db.write(lambda c: c.execute(text("DROP TABLE IF EXISTS q")))
        await db.stop()
