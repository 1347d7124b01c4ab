"""The one door to the database.

Every statement lives in a module of this package, as a plain function whose
first argument is the connection (`Conn`); none of them commits. Run one with
`await db.read(fn, *args)` or `await db.write(fn, *args)`, or call several in
a unit of your own (`def unit(conn: Conn) -> T`) given to `db.write`, so that
they commit together. Other packages import `Conn` from here, never SQLAlchemy.
Values arrive here already sealed or hashed: the store knows no keys. When the
database is away, locked or full, `read` and `write` raise `StoreUnavailable`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection as Conn

from bot.store.errors import StoreUnavailable

Unit = Callable[[Conn], Any]

__all__ = ["Conn", "StoreUnavailable", "Unit"]
