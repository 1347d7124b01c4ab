"""Support staff and their bearer tokens.

Staff are not WhatsApp users: an operator makes a token on the command line
(`python -m bot staff add NAME --role …`), which is printed once. Only its keyed
hash is stored (a blind index under `BOT_INDEX_KEY` with a purpose of its own), so
the database alone lets nobody in. Every request reads the token's row, so a
revocation (`staff revoke NAME`) ends every token of that person in every worker
at once. A role grants rights (`RIGHTS`); nothing else does.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from bot import audit
from bot.crypto import Index, Keyring
from bot.errors import BotError
from bot.store import Conn
from bot.store import staff as store
from bot.store.db import Database

OPERATOR = "operator"
DAY = 86400
DEFAULT_DAYS = 90
USE_NOTED_EVERY = 60.0  # seconds: last use is written at most this often per token
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}")


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    PRIVACY = "privacy"


# What each role may do; a right not listed for a role is refused (403).
RIGHTS: dict[str, frozenset[Role]] = {
    "conversations.waiting": frozenset({Role.AGENT, Role.SUPERVISOR}),
    "conversations.mine": frozenset({Role.AGENT, Role.SUPERVISOR}),
    "conversations.all": frozenset({Role.SUPERVISOR}),
}


class StaffError(BotError):
    """A one-line reason for the command to print before exiting non-zero."""


@dataclass(frozen=True)
class Staff:
    """Who made a request: a live token's holder and role."""

    name: str
    role: Role
    token_id: str

    @property
    def actor(self) -> str:
        """How the audit log names them: apart from people's pseudonyms and `system`."""
        return actor_of(self.name)

    def may(self, right: str) -> bool:
        return self.role in RIGHTS.get(right, frozenset())


def actor_of(name: str) -> str:
    return f"staff:{name}"


def valid_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise StaffError(
            "a staff name is 1-40 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class Issued:
    token: str  # shown once, never stored
    expires_at: float


async def add(db: Database, keyring: Keyring, name: str, role: Role, days: int) -> Issued:
    """A new token for `name` with `role`, valid for `days`; audited as `staff_added`."""
    valid_name(name)
    if days < 1:
        raise StaffError("--days must be at least 1")
    token = secrets.token_urlsafe(32)
    now = time.time()
    row = {
        "id": uuid.uuid4().hex, "name": name, "role": role.value,
        "token_index": keyring.blind_index(Index.STAFF, token),
        "created_at": now, "expires_at": now + days * DAY,
    }  # fmt: skip
    event = audit.Event(OPERATOR, "staff_added", detail={"name": name, "role": role.value})

    def unit(conn: Conn) -> None:
        store.add(conn, row)
        audit.append(conn, [event])

    await db.write(unit)
    return Issued(token, row["expires_at"])


async def revoke(db: Database, name: str) -> int:
    """End every token of `name` now; audited as `staff_revoked`."""
    now = time.time()

    def unit(conn: Conn) -> int:
        count = store.revoke(conn, name, now)
        if count:
            event = audit.Event(OPERATOR, "staff_revoked", detail={"name": name, "tokens": count})
            audit.append(conn, [event])
        return count

    count: int = await db.write(unit)
    if not count:
        raise StaffError(f"no live token for a staff member named {name!r}")
    return count


async def listing(db: Database) -> list[store.TokenRow]:
    return await db.read(store.all_tokens)


class Tokens:
    """Judges a bearer token on each request, against the store."""

    def __init__(
        self, db: Database, keyring: Keyring, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = db
        self._kr = keyring
        self._clock = clock

    async def holder(self, token: str) -> Staff | None:
        """The staff member a live token belongs to; None when unknown, expired or revoked."""
        if not token:
            return None
        row = await self._db.read(store.by_index, self._kr.blind_index(Index.STAFF, token))
        now = self._clock()
        if row is None or row.revoked_at is not None or row.expires_at <= now:
            return None
        if row.last_used_at is None or now - row.last_used_at >= USE_NOTED_EVERY:
            await self._db.write(store.used, row.id, now)
        return Staff(row.name, Role(row.role), row.id)
