"""The audit log: append-only, chained under a key, pseudonymous.

Each entry holds the hash of the one before it, and its own hash covers its
id, time, actor, event, states, outcome, detail and that previous hash. The
hash is an HMAC-SHA256 under `BOT_AUDIT_KEY`, which the database never holds,
so whoever can rewrite the table cannot recompute the chain. Keyed hashes are
written `k1:` + base64url; entries from before the key hold a plain SHA-256 in
hex and still verify, but once a keyed entry is in the chain an unkeyed one
after it is a rewrite. An edited entry no longer matches its hash; a removed
or reordered one breaks the chain or the id sequence; a cut tail or an
emptied table is caught by the signed checkpoints of the head kept in a file
outside the database (`bot.runtime.checkpoints` writes them).

Entries are appended inside the transaction of what they record. Actors are
pseudonyms (a keyed hash of the contact's random id, so they survive erasure
without pointing back at a number), `system`, or a support token id. Details
hold ids, counts, states and codes: never a number, a name or a message.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bot.errors import BotError
from bot.store import Conn
from bot.store import audit as store
from bot.store.writer import AUDIT_KEY, DEFERRED

GENESIS = "0" * 64
SYSTEM = "system"
KEYED = "k1:"  # marks an HMAC-SHA256 hash; plain hex is the unkeyed SHA-256 of old entries
_ENTRY = b"audit-entry\x00"  # purpose prefixes: an entry's MAC never passes as a checkpoint's
_CHECKPOINT = b"audit-checkpoint\x00"


class AuditKeyMissing(BotError):
    """An entry was to be appended on a store opened without the audit key."""


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


def entry_hash(row: dict[str, Any], key: bytes | None) -> str:
    """The keyed hash of an entry; with no key, the unkeyed SHA-256 of old entries."""
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
    if key is None:
        return hashlib.sha256(payload).hexdigest()
    return KEYED + _b64(hmac.new(key, _ENTRY + payload, hashlib.sha256).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


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
    key = conn.info.get(AUDIT_KEY)
    if key is None:
        raise AuditKeyMissing("audit entries need the audit key (BOT_AUDIT_KEY)")
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
        row["hash"] = prev = entry_hash(row, key)
        rows.append(row)
        next_id += 1
    store.insert_rows(conn, rows)


def entries_of(conn: Conn, actor: str) -> list[dict[str, Any]]:
    return store.entries_of(conn, actor)


@dataclass(frozen=True)
class Checkpoint:
    """The head as it was at a time, signed with the audit key: a line of the checkpoint file."""

    at: str
    id: int
    head: str
    line: int = 0


def _signature(key: bytes, at: str, entry_id: int, head: str) -> str:
    return _b64(
        hmac.new(key, _CHECKPOINT + orjson.dumps([at, entry_id, head]), hashlib.sha256).digest()
    )


def write_checkpoint(path: Path, key: bytes, entry_id: int, head: str) -> Checkpoint | None:
    """Append a signed line for the head `entry_id`/`head`, unless the file's last line
    already names it. The file is locked while it is read and appended to, so
    processes sharing it take turns; the line is on disk before this returns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.seek(0)
            lines = f.read().splitlines()
            if lines:
                try:
                    last = orjson.loads(lines[-1])
                    if last.get("id") == entry_id and last.get("head") == head:
                        return None
                except orjson.JSONDecodeError:
                    pass  # a torn or foreign last line: verify names it; write a good one after
            at = utc_now()
            line = {"at": at, "id": entry_id, "head": head}
            line["sig"] = _signature(key, at, entry_id, head)
            f.seek(0, os.SEEK_END)
            f.write(orjson.dumps(line) + b"\n")
            f.flush()
            os.fsync(f.fileno())
            return Checkpoint(at, entry_id, head, len(lines) + 1)
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_checkpoints(path: Path, key: bytes) -> tuple[list[Checkpoint], str]:
    """Every checkpoint in the file, and a problem if a line is not one signed with `key`."""
    if not path.exists():
        return [], ""
    found: list[Checkpoint] = []
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            d = orjson.loads(raw)
            at, entry_id, head, sig = str(d["at"]), int(d["id"]), str(d["head"]), str(d["sig"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return found, f"checkpoint line {number} of {path} is not a checkpoint"
        if not hmac.compare_digest(sig, _signature(key, at, entry_id, head)):
            return found, (
                f"checkpoint line {number} of {path} is not signed by the audit key "
                "(edited or forged)"
            )
        found.append(Checkpoint(at, entry_id, head, number))
    return found, ""


@dataclass
class Verdict:
    ok: bool
    count: int
    head: str
    problem: str = ""
    keyed: int = 0  # entries under the audit key; the rest are from before it
    checkpoints: int = 0  # checkpoints the chain was checked against
    head_at: int | None = None  # the entry whose hash is the expected head


def verify(
    conn: Conn,
    key: bytes,
    checkpoints: list[Checkpoint] | None = None,
    expect_head: str | None = None,
) -> Verdict:
    """Walk the stored chain (see `verify_rows`). Read the checkpoints before calling
    this, so that none is newer than the chain it is compared with."""
    return verify_rows(store.stream(conn), key, checkpoints or [], expect_head)


def _entry_problem(row: dict[str, Any], prev: str, expected_id: int, key: bytes, keyed: int) -> str:
    entry_id, stored = row["id"], row["hash"]
    if entry_id != expected_id:
        return f"entry {expected_id} is missing or out of order (found {entry_id})"
    if row["prev_hash"] != prev:
        return (
            f"entry {entry_id} does not follow entry {entry_id - 1} (one was removed or reordered)"
        )
    if not stored.startswith(KEYED):
        if keyed:
            return (
                f"entry {entry_id} has an unkeyed hash after keyed entries: the chain was "
                "recomputed without the audit key"
            )
        return "" if entry_hash(row, None) == stored else f"entry {entry_id} was edited"
    if not hmac.compare_digest(entry_hash(row, key), stored):
        return f"entry {entry_id} was edited, or its hash recomputed without the audit key"
    return ""


def verify_rows(
    rows: Iterator[dict[str, Any]],
    key: bytes,
    checkpoints: list[Checkpoint] | None = None,
    expect_head: str | None = None,
) -> Verdict:
    """Walk the chain; name the first entry that was edited, removed, reordered or
    recomputed, then any checkpoint past the end (a cut tail, an emptied table).
    `expect_head`, a head noted earlier, must be the hash of some entry."""
    marks: dict[int, list[Checkpoint]] = {}
    for c in checkpoints or []:
        marks.setdefault(c.id, []).append(c)
    prev, expected_id, count, keyed, head_at = GENESIS, 1, 0, 0, None
    for row in rows:
        problem = _entry_problem(row, prev, expected_id, key, keyed)
        for c in marks.get(row["id"], []) if not problem else []:
            if c.head != row["hash"]:
                problem = (
                    f"entry {row['id']} differs from the checkpoint of {c.at} "
                    f"(line {c.line}): the chain was rewritten from there on"
                )
                break
        if problem:
            return Verdict(False, count, prev, problem, keyed, len(checkpoints or []))
        keyed += row["hash"].startswith(KEYED)
        if row["hash"] == expect_head:
            head_at = row["id"]
        prev, expected_id, count = row["hash"], expected_id + 1, count + 1
    verdict = Verdict(True, count, prev, "", keyed, len(checkpoints or []), head_at)
    beyond = [c for c in checkpoints or [] if c.id > count]
    if beyond:
        far = max(beyond, key=lambda c: c.id)
        verdict.ok = False
        if count == 0:
            verdict.problem = (
                f"the audit table is empty but {len(beyond)} checkpoint(s) name entries up to "
                f"{far.id}: the table was emptied"
            )
        else:
            verdict.problem = (
                f"the chain ends at entry {count} but the checkpoint of {far.at} names entry "
                f"{far.id}: entries were cut from the end"
            )
    elif expect_head and head_at is None and not (count == 0 and expect_head == GENESIS):
        verdict.ok = False
        verdict.problem = (
            f"head {expect_head} is not in the chain: the entry it named was removed, "
            "edited or cut from the end"
        )
    return verdict
