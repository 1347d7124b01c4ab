"""The audit table: appended at its head, read by actor, streamed for verification.

Hashing and chaining are `bot.audit`'s; this module only holds the statements.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, text

from bot.store.db import Query
from bot.store.tables import AuditEntry

audit = AuditEntry.__table__
HEAD_LOCK = 7301240002  # PostgreSQL advisory lock: one appender at the head at a time
# Every turn and every send appends some: the insert runs through the driver.
_INSERT = Query(insert(audit).values({c.name: bindparam(c.name) for c in audit.c}).inline())


def head(conn: Connection) -> tuple[int, str] | None:
    """The newest entry's (id, hash); on PostgreSQL, held until the transaction ends,
    because several processes append to one chain and take turns at its head."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": HEAD_LOCK})
    row = conn.execute(select(audit.c.id, audit.c.hash).order_by(audit.c.id.desc()).limit(1))
    last = row.first()
    return (last[0], last[1]) if last else None


def last(conn: Connection) -> tuple[int, str] | None:
    """The newest committed entry's (id, hash), taking no lock: what a checkpoint notes."""
    row = conn.execute(select(audit.c.id, audit.c.hash).order_by(audit.c.id.desc()).limit(1))
    found = row.first()
    return (found[0], found[1]) if found else None


def insert_rows(conn: Connection, rows: list[dict[str, Any]]) -> None:
    _INSERT.execute_many(conn, rows)


def entries_of(conn: Connection, actor: str) -> list[dict[str, Any]]:
    rows = conn.execute(select(audit).where(audit.c.actor == actor).order_by(audit.c.id))
    return [dict(r._mapping) for r in rows]


def stream(conn: Connection) -> Iterator[dict[str, Any]]:
    """Every entry in order, a batch at a time (a chain can hold millions)."""
    result = conn.execution_options(stream_results=True, yield_per=10_000).execute(
        select(audit).order_by(audit.c.id)
    )
    for row in result:
        yield dict(row._mapping)
