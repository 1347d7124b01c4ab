"""Who a message is from or for: the one way from a number or a WhatsApp party to a person.

A person is found by the blind index of their number or of their BSUID (Meta's
business-scoped user id, for people known without a number); their data key
is unwrapped and their sealed profile opened once, here. Turns, business
sends, the operator's commands and Meta's quiet stops all come through
`People`, so a person is looked up, keyed and paced the same way whoever asks.

Data keys live in the key store, a database apart from the data (`keys`), so
a backup of the data database holds none. Someone never met gets a new contact
id and data key in memory; the caller stores the key first (`keep`, in the key
store) and then the person (`create`, in the same transaction as whatever made
them known): a key without its contact is harmless, a contact without its key
could never be read. Erasure runs the other way: the key is shredded first
(`shred`), then the rows go; a person whose key is gone while rows remain (a
crash between the two) has those rows erased when next looked up.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from bot.crypto import DataKey, Index, Keyring, WrappedKey, open_sealed, seal
from bot.privacy import erasure
from bot.privacy.profile import Profile
from bot.store import Conn
from bot.store import contacts as contact_store
from bot.store import keys as key_store
from bot.store.db import Database
from bot.whatsapp.events import Party

UNKNOWN = "unknown"  # the audit's subject for someone never met


def pace_key(contact_id: str) -> str:
    """The one key a person's outgoing messages are ordered and paced by (replies,
    read receipts and business sends alike): their random contact id, which says
    nothing about them and is the same in every worker."""
    return contact_id


@dataclass
class Person:
    """A person as a turn or a send needs them: found (`row`) or new (`created`)."""

    contact_id: str
    dk: DataKey
    pseudonym: str  # how the audit log names them
    phone_index: str | None
    user_index: str | None
    e164: str | None
    row: contact_store.ContactRow | None = None  # None: never met
    profile: Profile = field(default_factory=Profile)
    created: dict[str, Any] | None = None  # the rows `create` stores for someone new

    @property
    def known(self) -> bool:
        return self.row is not None

    @property
    def marketing(self) -> str | None:
        """Their marketing consent status, as read with the contact."""
        return self.row.marketing if self.row else None

    @property
    def indexes(self) -> list[str]:
        return [i for i in (self.phone_index, self.user_index) if i]

    @property
    def pace_key(self) -> str:
        return pace_key(self.contact_id)

    def sealed(self, column: str) -> bytes | None:
        """A sealed contact field (`phone`, `user_id`, `name`) as stored, or, for someone new,
        as `create` will store it with this turn: what is held either way."""
        if self.row is not None:
            value: bytes | None = getattr(self.row, f"{column}_sealed")
            return value
        return self.created["contact"][f"{column}_sealed"] if self.created else None


class People:
    """Finds people and makes new ones; the only place that reads, stores, unwraps and
    shreds a person's key."""

    def __init__(self, db: Database, keyring: Keyring, keys: Database) -> None:
        self._db = db
        self._kr = keyring
        self._keys = keys

    @property
    def keyring(self) -> Keyring:
        return self._kr

    # Indexes -------------------------------------------------------------------------------

    def pseudonym(self, contact_id: str) -> str:
        return self._kr.blind_index(Index.PSEUDONYM, contact_id)

    def phone_index(self, e164: str) -> str:
        """The blind index a number is found by, and kept under on the do-not-contact list
        after its person is erased."""
        return self._kr.blind_index(Index.PHONE, e164)

    # Keys ----------------------------------------------------------------------------------

    async def data_key(self, key_id: str) -> DataKey | None:
        """A person's data key, unwrapped: from this process's cache (a turn's usual case,
        no read at all), else from the key store; None once shredded."""
        cached = self._kr.cached(key_id)
        if cached is not None:
            return cached
        stored = await self._keys.read(key_store.get, key_id)
        return None if stored is None else self._kr.unwrap(key_id, WrappedKey(*stored))

    async def keep(self, person: Person) -> None:
        """Store a new person's key in the key store, before anything it seals is stored."""
        if person.created is not None:
            await self._keys.write(key_store.add, person.created["key"])

    async def shred(self, person: Person) -> int:
        """Erasure's first step: delete their key from the key store and from this
        process's cache. Whatever it sealed, live or in a backup, is unreadable from here on,
        even if deleting the rows fails and waits for the next try."""
        self._kr.forget(person.dk.key_id)
        return await self._keys.write(key_store.shred, person.dk.key_id)

    # Finding -------------------------------------------------------------------------------

    async def find(self, *, e164: str | None = None, party: Party | None = None) -> Person | None:
        """Someone already known, by number or by what Meta said of them; None if never met."""
        return await self._find(*self._who(e164, party))

    async def of_party(self, party: Party, now: float) -> Person:
        """Whoever wrote: found, or new (stored with the turn) with what Meta told us."""
        phone_index, user_index, e164 = self._who(None, party)
        found = await self._find(phone_index, user_index, e164)
        if found is not None:
            return found
        return self._new(
            phone_index, user_index, e164, user_id=party.user_id, name=party.name, now=now,
            last_inbound_at=now,
        )  # fmt: skip

    async def of_number(self, e164: str, now: float) -> Person:
        """Whom the business writes to: found, or new (stored with the message)."""
        phone_index, _, _ = who = self._who(e164, None)
        found = await self._find(*who)
        if found is not None:
            return found
        return self._new(phone_index, None, e164, user_id=None, name=None, now=now)

    def _who(
        self, e164: str | None, party: Party | None
    ) -> tuple[str | None, str | None, str | None]:
        """(phone index, BSUID index, number) of a number or of what Meta said of someone."""
        if party is not None:
            phone_index, user_index = indexes_of(self._kr, party)
            return phone_index, user_index, _e164(party.wa_id) if party.wa_id else None
        return self.phone_index(e164) if e164 else None, None, e164

    async def _find(
        self, phone_index: str | None, user_index: str | None, e164: str | None
    ) -> Person | None:
        row = await self._db.read(contact_store.find, phone_index, user_index)
        if row is None:
            return None
        return await self._of_row(row, phone_index, user_index, e164)

    async def of_row(self, row: contact_store.ContactRow) -> Person | None:
        """A person as listed from the store (e.g. the support queue), their number opened
        from its seal; None once their key is shredded."""
        return await self._of_row(row, row.phone_index, row.user_index, None)

    async def _of_row(
        self,
        row: contact_store.ContactRow,
        phone_index: str | None,
        user_index: str | None,
        e164: str | None,
    ) -> Person | None:
        dk = await self.data_key(row.data_key_id)
        if dk is None:  # shredded, and the rows outlived it: finish the erasure
            await self._finish_erasure(row)
            return None
        if e164 is None and row.phone_sealed:
            e164 = open_column(dk, row.id, "phone", row.phone_sealed)
        return Person(
            row.id, dk, self.pseudonym(row.id), phone_index or row.phone_index,
            user_index or row.user_index, e164, row=row,
            profile=Profile.open(dk, row.id, row.profile_sealed),
        )  # fmt: skip

    async def _finish_erasure(self, row: contact_store.ContactRow) -> None:
        indexes = [i for i in (row.phone_index, row.user_index) if i]
        await self._db.write(
            lambda c: erasure.erase(
                c, contact_id=row.id, indexes=indexes, phone_index=row.phone_index,
                pseudonym=self.pseudonym(row.id), now=time.time(), via="key_shredded",
            )
        )  # fmt: skip

    def _new(
        self,
        phone_index: str | None,
        user_index: str | None,
        e164: str | None,
        *,
        user_id: str | None,
        name: str | None,
        now: float,
        last_inbound_at: float | None = None,
    ) -> Person:
        contact_id = uuid.uuid4().hex
        dk, wrapped = self._kr.new_data_key(uuid.uuid4().hex)

        def sealed(column: str, value: str | None) -> bytes | None:
            if not value:  # Meta sends "" for a profile without a name: nothing to hold
                return None
            return seal_column(dk, contact_id, column, value)

        created = {
            "key": {"id": dk.key_id, "kid": wrapped.kid, "wrapped": wrapped.wrapped,
                    "created_at": now},
            "contact": {
                "id": contact_id, "phone_index": phone_index, "user_index": user_index,
                "data_key_id": dk.key_id, "phone_sealed": sealed("phone", e164),
                "user_id_sealed": sealed("user_id", user_id), "name_sealed": sealed("name", name),
                "created_at": now, "last_inbound_at": last_inbound_at,
            },
        }  # fmt: skip
        return Person(
            contact_id, dk, self.pseudonym(contact_id), phone_index, user_index, e164,
            created=created,
        )  # fmt: skip


def indexes_of(keyring: Keyring, party: Party) -> tuple[str | None, str | None]:
    """(phone index, BSUID index) of whoever Meta says wrote or was written to."""
    phone = keyring.blind_index(Index.PHONE, _e164(party.wa_id)) if party.wa_id else None
    user = keyring.blind_index(Index.BSUID, party.user_id) if party.user_id else None
    return phone, user


def contact_index(keyring: Keyring, party: Party) -> str | None:
    """The index a person's inbox events are grouped by (and turn workers split
    people by): their number's if Meta gave it, else their BSUID's."""
    phone, user = indexes_of(keyring, party)
    return phone or user


def seal_column(dk: DataKey, contact_id: str, column: str, value: str) -> bytes:
    """A contact's column (`phone`, `user_id`, `name`) sealed with their key and bound
    to its column and row, so it opens only there (`access.contact_view`)."""
    return seal(dk, value.encode(), f"contacts/{column}/{contact_id}")


def open_column(dk: DataKey, contact_id: str, column: str, blob: bytes) -> str | None:
    """A sealed contact column opened where `seal_column` bound it; None when empty."""
    return open_sealed(dk, blob, f"contacts/{column}/{contact_id}").decode() or None


def create(conn: Conn, person: Person, **columns: Any) -> None:
    """Store someone new (with extra contact columns, e.g. `initiated_at`); known
    people are left as they are. Their key is in the key store already (`People.keep`)."""
    if person.created is not None:
        contact_store.create(conn, {**person.created["contact"], **columns})


def _e164(wa_id: str) -> str:
    return "+" + wa_id.lstrip("+")
