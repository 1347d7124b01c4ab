"""Right to erasure, by crypto-shredding: the same for the chat flow and `python -m bot erase`.

Their data key goes first, from the key store (`People.shred`, a database apart
from the data), then their rows, so any copy of their sealed fields in a backup of
the data can no longer be opened with the live keys. What stays: a suppression entry
(a keyed hash of the number, so STOP keeps working and the bot never writes
to them first again) and the audit trail, which names only a pseudonym.
"""

from __future__ import annotations

from bot import audit
from bot.store import Conn
from bot.store import privacy as store


def erase(
    conn: Conn,
    *,
    contact_id: str,
    indexes: list[str],
    phone_index: str | None,
    pseudonym: str,
    now: float,
    via: str,
    shredded: int = 0,
) -> dict[str, int]:
    """Delete the rows (the key is shredded already: `shredded` keys, for the record)."""
    counts = {**store.erase_contact(conn, contact_id, indexes), "data_keys": shredded}
    if phone_index:
        store.suppress(conn, phone_index, "erased", now)
    audit.append(conn, [audit.Event(pseudonym, "data_deletion", detail={"via": via, **counts})])
    return counts
