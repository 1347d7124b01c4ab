"""The audit log: append-only, hash-chained, pseudonymous.

Each entry holds the hash of the one before it, and its own hash covers its
id, time, actor, event, states, outcome, detail and that previous hash. An
edited entry no longer matches its hash; a removed or reordered one breaks
the chain or the id sequence; a cut tail is caught by comparing the head hash
with one kept elsewhere (`audit verify --expect-head`).

Entries are appended inside the transaction of what they record. Actors are
pseudonyms (a keyed hash of the contact's random id, so they survive erasure
without pointing back at a number), `system`, or a support token id. Details
hold ids, counts, states and codes: never a number, a name or a message.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from bot.store import Conn
from bot.store import audit as store
from bot.store.writer import DEFERRED

GENESIS = "0" * 64
SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Event:
    actor: str
    event: str
    outcome: str = "ok"
    state_before: str | None = None
    state_after: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def utc_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def entry_hash(row: dict[str, Any]) -> str:
    payload = orjson.dumps(
        [
            row["id"],
            row["at"],
            row["actor"],
            row["event"],
            row["state_before"],
            row["state_after"],
            row["outcome"],
            row["detail"],
            row["prev_hash"],
        ]
    )
    return hashlib.sha256(payload).hexdigest()


def append(conn: Conn, events: list[Event]) -> None:
    """Add entries at the head of the chain, in the caller's transaction.

    Inside the group-commit writer the entries of every unit in a batch are
    gathered and chained once, at the end of the (same) transaction.
    """
    if not events:
        return
    deferred = conn.info.get(DEFERRED)
    if deferred is None:
        _write(conn, events)
        return
    pending = deferred.setdefault("audit", _Pending())
    pending.events.extend(events)


class _Pending:
    """A batch's entries, chained and inserted when the writer flushes."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, conn: Conn) -> None:
        _write(conn, self.events)


def _write(conn: Conn, events: list[Event]) -> None:
    if not events:
        return
    last = store.head(conn)
    next_id, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    at = utc_now()
    rows = []
    for ev in events:
        row = {
            "id": next_id,
            "at": at,
            "actor": ev.actor,
            "event": ev.event,
            "state_before": ev.state_before,
            "state_after": ev.state_after,
            "outcome": ev.outcome,
            "detail": orjson.dumps(ev.detail, option=orjson.OPT_SORT_KEYS).decode(),
            "prev_hash": prev,
        }
        row["hash"] = prev = entry_hash(row)
        rows.append(row)
        next_id += 1
    store.insert_rows(conn, rows)


def entries_of(conn: Conn, actor: str) -> list[dict[str, Any]]:
    return store.entries_of(conn, actor)


@dataclass
class Verdict:
    ok: bool
    count: int
    head: str
    problem: str = ""


def verify(conn: Conn, expect_head: str | None = None) -> Verdict:
    """Walk the stored chain (see `verify_rows`)."""
    return verify_rows(store.stream(conn), expect_head)


def verify_rows(rows: Iterator[dict[str, Any]], expect_head: str | None = None) -> Verdict:
    """Walk the chain; name the first entry that was edited, removed or reordered."""
    prev, expected_id, count = GENESIS, 1, 0
    for row in rows:
        problem = ""
        if row["id"] != expected_id:
            problem = f"entry {expected_id} is missing or out of order (found {row['id']})"
        elif row["prev_hash"] != prev:
            problem = f"entry {row['id']} does not follow entry {row['id'] - 1}"
            problem += " (one was removed or reordered)"
        elif entry_hash(row) != row["hash"]:
            problem = f"entry {row['id']} was edited"
        if problem:
            return Verdict(False, count, prev, problem)
        prev, expected_id, count = row["hash"], expected_id + 1, count + 1
    if expect_head and expect_head != prev:
        problem = f"head is {prev}, expected {expect_head}: entries were cut from the end"
        return Verdict(False, count, prev, problem)
    return Verdict(True, count, prev)
