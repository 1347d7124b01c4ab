"""SQLite overwrites what is deleted: an erased person's sealed bytes do not linger in free
space of the database file, whatever the SQLite build's default for `secure_delete`."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.store import inbox as inbox_store
from bot.store.db import Bare, Database, hot


@pytest.fixture
def build_default_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Play a SQLite build that does not overwrite deleted content unless told to (many
    distributions' default; this machine's build happens to turn it on)."""
    real = sqlite3.connect

    def connect(*args: Any, **kw: Any) -> sqlite3.Connection:
        conn = real(*args, **kw)
        conn.execute("PRAGMA secure_delete=OFF")
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect)
    monkeypatch.setattr(sqlite3.dbapi2, "connect", connect)
    yield


@hot
def _hot_pragma(conn: Bare) -> int:
    return int(conn.raw.execute("PRAGMA secure_delete").fetchone()[0])


def _pragma(conn: Any) -> int:
    return int(conn.execute(text("PRAGMA secure_delete")).scalar())


async def test_every_connection_overwrites_deleted_rows(
    build_default_off: None, sqlite_url: str
) -> None:
    db = Database(sqlite_url)
    await db.start()
    try:
        assert await db.write(_pragma) == 1  # the writer
        assert await db.read(_pragma) == 1  # a pooled read
        assert await db.read(_hot_pragma) == 1  # a hot read on the calling thread
    finally:
        await db.stop()


async def test_a_deleted_sealed_blob_is_gone_from_the_file(
    build_default_off: None, sqlite_url: str
) -> None:
    path = Path(sqlite_url.split(":///", 1)[1])
    blob = b"sealed:" + os.urandom(48)
    row = {
        "event_key": "k" * 64, "kind": "message", "contact_index": "c" * 64, "meta_ts": 1,
        "payload": blob, "state": "pending", "attempts": 0, "received_at": 0.0,
    }  # fmt: skip
    db = Database(sqlite_url)
    await db.start()
    try:
        await db.write(inbox_store.accept, [row])
        (event_id,) = await db.read(
            lambda c: c.execute(text("SELECT id FROM inbox")).scalars().all()
        )
        await db.write(inbox_store.drop, event_id)
    finally:
        await db.stop()  # the last connection closed: the WAL is written back
    with sqlite3.connect(path) as conn:  # and in case it was not: write it back now
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    stored = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    assert blob not in stored
