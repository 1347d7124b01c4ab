"""The gate as the outbox meets it: fresh facts just before each send.

A message can wait in the outbox for a while (retries, pacing, a restart), and
meanwhile the person may have said STOP, been erased or let their 24-hour
window close. So every durable message is checked again right before it goes;
a refusal marks it `refused` with the reason, writes `policy_refused` to the
audit log in the same transaction, and counts it — Meta never sees it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bot import audit
from bot.observers import NULL, GateObserver
from bot.policy.gate import (
    Category,
    Facts,
    Reason,
    Request,
    TemplateStatus,
    decide,
    unreachable_until,
)
from bot.policy.templates import Registry
from bot.store import Conn, Unit
from bot.store import messages as message_store
from bot.store import policy as policy_store
from bot.store.db import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Verdict:
    reason: Reason | None = None
    drop: bool = False  # not ours to send any more (sent, refused, or leased elsewhere)


SEND = Verdict()
DROP = Verdict(drop=True)


class SendGate:
    def __init__(
        self,
        db: Database,
        owner: str,
        templates: Registry,
        observer: GateObserver = NULL,
        unreachable_days: int = 30,
    ) -> None:
        self._db = db
        self._unreachable_days = unreachable_days
        self._owner = owner
        self._templates = templates
        self._observer = observer

    async def check(
        self,
        message_id: str,
        category: str,
        template: str | None,
        confirmation: bool,
        now: float,
    ) -> Verdict:
        found = await self._db.read(policy_store.recipient_of, message_id)
        if found.status is None and confirmation:
            return DROP  # the farewell was sent and forgotten already
        if found.status is not None and found.status != message_store.QUEUED:
            return DROP
        if found.lease_owner not in (None, self._owner):
            return DROP
        facts = Facts(
            known=found.contact_id is not None,
            marketing=found.marketing,
            last_inbound_at=found.last_inbound_at,
            suppressed=found.suppressed,
            unreachable_until=unreachable_until(
                found.unreachable_at, found.last_inbound_at, self._unreachable_days
            ),
        )
        request = Request(_category(category), template, confirmation)
        status = template_status(self._templates, template) if template else None
        return Verdict(decide(request, facts, now, status))

    def refuse(
        self, message_id: str, reason: Reason, category: str, actor: str, now: float
    ) -> Unit:
        """Mark the message refused and audit why, in one transaction."""
        log.info("send refused by policy: reason=%s category=%s", reason.value, category)
        self._observer.send_refused(reason.value, category)
        event = refusal_event(actor, reason, category)

        def unit(conn: Conn) -> None:
            message_store.mark_refused(conn, message_id, reason.value, now)
            audit.append(conn, [event])

        return unit


def refusal_event(actor: str, reason: Reason, category: str, **detail: Any) -> audit.Event:
    return audit.Event(
        actor, "policy_refused", outcome=reason.value, detail={"category": category, **detail}
    )


def template_status(registry: Registry, name: str) -> TemplateStatus | None:
    spec = registry.get(name)
    return TemplateStatus(spec.category, spec.status) if spec else None


def _category(value: str) -> Category:
    try:
        return Category(value)
    except ValueError:
        return Category.MARKETING  # an unknown category gets the strictest rules
