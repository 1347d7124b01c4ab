"""The support queue: handed-off conversations as staff see them.

A conversation is named by its person's pseudonym (never the number); the number
is shown masked to its last three digits, the profile name opened from its seal
through `People`. Opening it is a read of personal data: each listing that shows
anyone is one `staff_read` audit entry naming the staff member and the pseudonyms
shown. A handoff nobody answered for `BOT_HANDOFF_TIMEOUT` goes back to the bot
(`bot.runtime.conversation`), so it is not listed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bot import audit
from bot.policy.gate import WINDOW
from bot.privacy.access import iso, mask_tail
from bot.privacy.jurisdiction import decide
from bot.privacy.language import decide_language
from bot.privacy.person import People, open_column
from bot.store import contacts as contact_store
from bot.store.db import Database
from bot.support.staff import Staff

State = Literal["waiting", "mine", "all"]


@dataclass(frozen=True)
class Conversation:
    id: str
    state: str
    waiting_since: str | None
    assignee: str | None
    language: str
    law: str
    number: str | None
    profile_name: str | None
    window_open: bool
    window_until: str | None


class Queue:
    """Lists handed-off conversations for a staff member."""

    def __init__(
        self, db: Database, people: People, clock: Callable[[], float], handoff_timeout: int
    ) -> None:
        self._db = db
        self._people = people
        self._clock = clock
        self._timeout = handoff_timeout

    async def listing(self, staff: Staff, state: State) -> list[Conversation]:
        """What `staff` asked for (their right to it is checked by the caller); audited."""
        if state == "mine":  # nobody holds a conversation before it can be claimed
            return []
        now = self._clock()
        since = now - self._timeout if self._timeout else None
        rows = await self._db.read(contact_store.handed_off, since)
        shown = [c for row in rows if (c := await self._view(row, now)) is not None]
        if shown:
            event = audit.Event(
                staff.actor, "staff_read",
                detail={"what": "conversations", "state": state,
                        "subjects": [c.id for c in shown]},
            )  # fmt: skip
            await self._db.write(audit.append, [event])
        return shown

    async def _view(self, row: contact_store.ContactRow, now: float) -> Conversation | None:
        person = await self._people.of_row(row)
        if person is None:  # erased meanwhile
            return None
        profile = person.profile
        until = row.last_inbound_at + WINDOW if row.last_inbound_at is not None else None
        name = open_column(person.dk, row.id, "name", row.name_sealed) if row.name_sealed else None
        return Conversation(
            id=person.pseudonym,
            state="waiting",
            waiting_since=iso(row.handoff_at),
            assignee=None,
            language=decide_language(profile.language, person.e164)[0],
            law=decide(profile.residence, person.e164).law.value,
            number=mask_tail(person.e164),
            profile_name=name,
            window_open=until is not None and now < until,
            window_until=iso(until),
        )
