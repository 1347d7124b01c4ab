"""Operator commands that touch people's data: export, erase, send, audit verify.

Each opens the store with the same settings as the server (it can run beside
it: SQLite's WAL and the writer's BEGIN IMMEDIATE take turns) and audits what
it did, with `operator` as the actor.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import phonenumbers

from bot import audit
from bot.config import Settings
from bot.crypto import Keyring
from bot.errors import BotError
from bot.policy.business import Queued, SendRefused, TemplateSend, queue_template
from bot.privacy import access, erasure
from bot.privacy.controller import Controller
from bot.privacy.person import UNKNOWN, People
from bot.store import Conn
from bot.store import contacts as contact_store
from bot.store.db import Database
from bot.store.keystore import open_stores

OPERATOR = "operator"


class OperatorError(BotError):
    """A one-line reason for the command to print before exiting non-zero."""


def normalize_e164(value: str) -> str:
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise OperatorError("the number is not in +E164 form") from None
    if not phonenumbers.is_possible_number(number):
        raise OperatorError("that is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@asynccontextmanager
async def _open(settings: Settings) -> AsyncIterator[tuple[Database, People]]:
    """The data database and, through `People`, the key store; both closed after."""
    db, keys = await open_stores(
        settings.DATABASE_URL, settings.keystore_url, audit_key=settings.audit_key
    )
    try:
        yield db, People(db, Keyring(settings.master_keys, settings.index_key), keys)
    finally:
        await db.stop()
        await keys.stop()


async def export_person(settings: Settings, number: str) -> dict[str, Any]:
    """The same document the person gets in chat; `contact` is null when nothing is held
    (the do-not-contact entry of an erased number is still shown)."""
    e164 = normalize_e164(number)
    async with _open(settings) as (db, people):
        person = await people.find(e164=e164)
        indexes = person.indexes if person else [people.phone_index(e164)]
        doc = await access.export_of(db, person, Controller.from_settings(settings), indexes)
        event = audit.Event(
            OPERATOR, "data_export", outcome="ok" if person else "not_found",
            detail={"via": "cli", "subject": person.pseudonym if person else UNKNOWN},
        )  # fmt: skip
        await db.write(audit.append, [event])
        return doc


async def erase_person(settings: Settings, number: str) -> dict[str, int]:
    """Erase like the chat flow does, without the farewell message."""
    e164 = normalize_e164(number)
    async with _open(settings) as (db, people):
        person = await people.find(e164=e164)
        if person is None:
            raise OperatorError("nothing is held for that number")
        shredded = await people.shred(person)  # the key first: the rows are sealed from now on
        return await db.write(
            lambda c: erasure.erase(
                c, contact_id=person.contact_id, indexes=person.indexes,
                phone_index=person.phone_index, pseudonym=person.pseudonym, now=time.time(),
                via="cli", shredded=shredded,
            )
        )  # fmt: skip


async def send_template(
    settings: Settings,
    number: str,
    template: str,
    category: str,
    params: dict[str, str],
    language: str | None,
) -> Queued:
    """Queue a template through the gate; a running server sends it within a second."""
    from bot.policy.templates import TemplateFileError, load_templates

    e164 = normalize_e164(number)
    try:
        templates = load_templates(settings.templates_path)
    except TemplateFileError as exc:
        raise OperatorError(str(exc)) from None
    try:
        async with _open(settings) as (db, people):
            send = TemplateSend(e164, template, category, params, language)
            return await queue_template(
                db, people, templates, send, tier=settings.messaging_tier,
                unreachable_days=settings.BOT_UNREACHABLE_DAYS,
            )  # fmt: skip
    except SendRefused as refused:
        raise OperatorError(f"refused: {refused.reason.value}: {refused.explanation}") from None


async def end_handoff(settings: Settings, number: str) -> None:
    """Give a handed-off conversation back to the bot: the person's next message gets
    the menu again. (The support API will do the same for staff.)"""
    e164 = normalize_e164(number)
    async with _open(settings) as (db, people):
        person = await people.find(e164=e164)
        if person is None or person.row is None or person.row.handoff_at is None:
            raise OperatorError("that conversation is not handed off")
        profile = person.profile
        profile.state, profile.since = None, time.time()  # back at the start
        sealed = profile.seal(person.dk, person.contact_id)
        event = audit.Event(
            OPERATOR, "handoff_ended", outcome="handed_back",
            detail={"via": "cli", "subject": person.pseudonym},
        )  # fmt: skip

        def unit(conn: Conn) -> None:
            contact_store.touch(conn, person.contact_id, handoff_at=None, profile_sealed=sealed)
            audit.append(conn, [event])

        await db.write(unit)


async def verify_audit(settings: Settings, expect_head: str | None) -> audit.Verdict:
    """The chain against every checkpoint in the file; the file is read first, so that
    no checkpoint is newer than the chain it is compared with."""
    key, path = settings.audit_key, settings.audit_checkpoints
    checkpoints, problem = audit.read_checkpoints(path, key)
    async with _open(settings) as (db, _):
        verdict = await db.read(audit.verify, key, checkpoints, expect_head)
    if verdict.ok and problem:
        verdict.ok, verdict.problem = False, problem
    return verdict
