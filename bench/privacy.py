"""Cost of the data-protection model per turn, and `audit verify` over a large log.

    python bench/privacy.py [--entries 1000000]

Prints:
- sealing: µs to seal and to open one field (AES-256-GCM with associated data),
  and to unwrap a data key (what a turn pays on a cache miss);
- blind index: µs per HMAC-SHA256;
- audit append: µs per entry when a turn appends its entries (hash of the
  previous one, insert) on a real SQLite file, group-committed like the bot;
- audit verify: seconds to walk a chain of --entries entries (target: 1,000,000
  in under 30 s on a 2-core machine), through the same code as
  `python -m bot audit verify`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import audit
from bot.config import MasterKey
from bot.crypto import Index, Keyring, open_sealed, seal
from bot.store.db import Database


def per_call(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def bench_crypto() -> dict[str, float]:
    ring = Keyring([MasterKey("k1", os.urandom(32))], os.urandom(32))
    dk, wrapped = ring.new_data_key("dk")
    body = orjson.dumps({"type": "text", "text": {"body": "x" * 200}})
    blob = seal(dk, body, "messages/body/1")
    return {
        "seal_us": per_call(lambda: seal(dk, body, "messages/body/1"), 20_000),
        "open_us": per_call(lambda: open_sealed(dk, blob, "messages/body/1"), 20_000),
        "unwrap_us": per_call(lambda: (ring.forget("dk"), ring.unwrap("dk", wrapped)), 20_000),
        "blind_index_us": per_call(lambda: ring.blind_index(Index.PHONE, "+447700900123"), 50_000),
    }


async def bench_append(path: Path, turns: int = 5_000, per_turn: int = 2) -> float:
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.start()
    events = [audit.Event("p" * 64, "message_received", detail={"type": "text"})] * per_turn
    start = time.perf_counter()
    await asyncio.gather(*(db.write(lambda c: audit.append(c, events)) for _ in range(turns)))
    elapsed = time.perf_counter() - start
    await db.stop()
    return elapsed / (turns * per_turn) * 1e6


def fill(path: Path, entries: int) -> None:
    """Write a valid chain straight into the audit table (fast set-up, not measured)."""
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM audit")
    prev, batch = audit.GENESIS, []
    for i in range(1, entries + 1):
        row = {
            "id": i, "at": "2026-11-22T00:00:00.000Z", "actor": "p" * 64,
            "event": "message_received", "state_before": "menu.main",
            "state_after": "menu.main", "outcome": "ok", "detail": '{"type":"text"}',
            "prev_hash": prev,
        }  # fmt: skip
        row["hash"] = prev = audit.entry_hash(row)
        batch.append(tuple(row.values()))
        if len(batch) == 50_000:
            conn.executemany("INSERT INTO audit VALUES (?,?,?,?,?,?,?,?,?,?)", batch)
            batch.clear()
    conn.executemany("INSERT INTO audit VALUES (?,?,?,?,?,?,?,?,?,?)", batch)
    conn.commit()
    conn.close()


async def bench_verify(path: Path) -> tuple[float, int, bool]:
    from bot.operator import _stream

    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.start()
    start = time.perf_counter()
    verdict = await db.read(lambda c: audit.verify_rows(_stream(c)))
    elapsed = time.perf_counter() - start
    await db.stop()
    return elapsed, verdict.count, verdict.ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args()
    crypto = bench_crypto()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        append_us = asyncio.run(bench_append(path))
        fill(path, args.entries)
        seconds, count, ok = asyncio.run(bench_verify(path))
    print(f"seal one field          {crypto['seal_us']:8.1f} µs")
    print(f"open one field          {crypto['open_us']:8.1f} µs")
    print(f"unwrap a data key       {crypto['unwrap_us']:8.1f} µs")
    print(f"blind index             {crypto['blind_index_us']:8.1f} µs")
    print(f"audit append per entry  {append_us:8.1f} µs  (group-committed, SQLite, FULL sync)")
    print(f"audit verify            {seconds:8.1f} s   for {count:,} entries (ok={ok})")
    return 0 if ok and count == args.entries else 1


if __name__ == "__main__":
    raise SystemExit(main())
