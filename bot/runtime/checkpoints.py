"""Checkpoints of the audit head, kept in a file outside the database.

Whoever can rewrite the database can cut the chain's tail or empty the table and
leave nothing inside it to tell; a signed line naming the head (entry id and
hash, HMAC under the audit key) in a file the database cannot touch lets
`audit verify` find that. The server notes the head every
`BOT_AUDIT_CHECKPOINT_INTERVAL` seconds and when it stops. Processes that share
the file take turns on a file lock and write nothing when the head has not moved
since the last line, so several workers leave one line per change, not one each.
Keeping the file is the operator's part: ship it somewhere the database's
administrators cannot write (a log collector, an append-only bucket).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from bot import audit
from bot.store import audit as store
from bot.store.db import Database
from bot.store.writer import WriterClosed

log = logging.getLogger(__name__)


async def checkpoint(db: Database, key: bytes, path: Path) -> audit.Checkpoint | None:
    """Note the committed head in `path`; None if the chain is empty or already noted."""
    last = await db.read(store.last)
    if last is None:
        return None
    return await asyncio.to_thread(audit.write_checkpoint, path, key, last[0], last[1])


async def checkpoint_forever(
    db: Database, key: bytes, path: Path, stop: asyncio.Event, interval: float
) -> None:
    """The server's timer: a checkpoint every `interval` seconds until `stop` is set
    (0: only the one at shutdown). A failed one is logged and tried again next time."""
    if interval <= 0:
        log.info("audit checkpoint timer off (BOT_AUDIT_CHECKPOINT_INTERVAL=0)")
        return
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
        if stop.is_set():
            return  # the one at shutdown is `Services.stop`'s, after the last entries
        await checkpoint_logged(db, key, path)


async def checkpoint_logged(db: Database, key: bytes, path: Path) -> None:
    """One checkpoint; a failure is logged (its type, never a value), not raised."""
    try:
        made = await checkpoint(db, key, path)
    except WriterClosed:
        return
    except Exception as exc:  # broad: the next interval tries again
        log.error("audit checkpoint failed (%s); trying again later", type(exc).__name__)
        return
    if made is not None:
        log.info("audit checkpoint: entry %d noted in %s", made.id, path)
