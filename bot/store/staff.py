"""Support staff tokens: added, found by their keyed hash, revoked by name, listed.

The tokens themselves never reach the store; `token_index` is their keyed hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

from bot.store.tables import StaffToken

tokens = StaffToken.__table__


@dataclass(frozen=True, slots=True)
class TokenRow:
    id: str
    name: str
    role: str
    created_at: float
    expires_at: float
    revoked_at: float | None
    last_used_at: float | None


_COLUMNS = (
    tokens.c.id, tokens.c.name, tokens.c.role, tokens.c.created_at, tokens.c.expires_at,
    tokens.c.revoked_at, tokens.c.last_used_at,
)  # fmt: skip


def add(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(tokens), [row])


def by_index(conn: Connection, token_index: str) -> TokenRow | None:
    """The token with this keyed hash, whatever its state (the caller judges it)."""
    found = conn.execute(select(*_COLUMNS).where(tokens.c.token_index == token_index)).first()
    return TokenRow(*found) if found else None


def used(conn: Connection, token_id: str, at: float) -> None:
    conn.execute(update(tokens).where(tokens.c.id == token_id).values(last_used_at=at))


def revoke(conn: Connection, name: str, at: float) -> int:
    """End every live token of `name`; how many there were."""
    result = conn.execute(
        update(tokens)
        .where(tokens.c.name == name, tokens.c.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    return int(result.rowcount or 0)


def all_tokens(conn: Connection) -> list[TokenRow]:
    rows = conn.execute(select(*_COLUMNS).order_by(tokens.c.name, tokens.c.created_at))
    return [TokenRow(*r) for r in rows]
