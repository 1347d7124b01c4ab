"""Operator commands that touch people's data: export, erase, send, audit verify.

Each opens the store with the same settings as the server (it can run beside
it: SQLite's WAL and the writer's BEGIN IMMEDIATE take turns) and audits what
it did, with `operator` as the actor.
"""

from __future__ import annotations

import time
from typing import Any

import phonenumbers

from bot import audit
from bot.config import Settings
from bot.conversation.engine import HOME
from bot.crypto import Keyring, WrappedKey
from bot.errors import BotError
from bot.policy.business import Queued, SendRefused, TemplateSend, queue_template
from bot.privacy import access, erasure
from bot.privacy.jurisdiction import decide, language_for
from bot.privacy.profile import Profile
from bot.store import Conn
from bot.store import contacts as contact_store
from bot.store.db import Database

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


async def _open(settings: Settings) -> tuple[Database, Keyring]:
    db = Database(settings.DATABASE_URL)
    await db.start()
    return db, Keyring(settings.master_keys, settings.index_key)


async def export_person(settings: Settings, number: str) -> dict[str, Any]:
    """The same document the person gets in chat; `contact` is null when nothing is held."""
    e164 = normalize_e164(number)
    db, kr = await _open(settings)
    try:
        phone_index = kr.blind_index("phone", e164)
        row = await db.read(contact_store.find, phone_index, None)
        controller = {
            "name": settings.BOT_COMPANY_NAME,
            "privacy_policy": settings.BOT_PRIVACY_URL,
            "contact": settings.BOT_DPO_CONTACT,
            "policy_version": settings.BOT_POLICY_VERSION,
        }
        if row is None:
            empty = access.Held(consents=[], counts={}, messages=[], audit=[])
            doc = access.export_document(
                empty, contact=None, dk=None, profile=None, jurisdiction=None,
                language=None, controller=controller, retention=settings.retention_days,
            )  # fmt: skip
            outcome, actor_of = "not_found", None
        else:
            dk = kr.unwrap(row.data_key_id, WrappedKey(row.kid, row.wrapped))
            pseudonym = kr.blind_index("pseudonym", row.id)
            profile = Profile.open(dk, row.id, row.profile_sealed)
            held = await db.read(access.read_held, row.id, pseudonym, True)
            doc = access.export_document(
                held, contact=access.contact_view(row, dk, e164), dk=dk, profile=profile,
                jurisdiction=decide(profile.residence, e164),
                language=language_for(profile.language, e164), controller=controller,
                retention=settings.retention_days,
            )  # fmt: skip
            outcome, actor_of = "ok", pseudonym
        event = audit.Event(
            OPERATOR, "data_export", outcome=outcome,
            detail={"via": "cli", "subject": actor_of or "unknown"},
        )  # fmt: skip
        await db.write(audit.append, [event])
        return doc
    finally:
        await db.stop()


async def erase_person(settings: Settings, number: str) -> dict[str, int]:
    """Erase like the chat flow does, without the farewell message."""
    e164 = normalize_e164(number)
    db, kr = await _open(settings)
    try:
        phone_index = kr.blind_index("phone", e164)
        row = await db.read(contact_store.find, phone_index, None)
        if row is None:
            raise OperatorError("nothing is held for that number")
        indexes = [i for i in (row.phone_index, row.user_index) if i]
        pseudonym = kr.blind_index("pseudonym", row.id)
        counts = await db.write(
            lambda c: erasure.erase(
                c, contact_id=row.id, indexes=indexes, phone_index=phone_index,
                pseudonym=pseudonym, now=time.time(), via="cli",
            )
        )  # fmt: skip
        kr.forget(row.data_key_id)
        return counts
    finally:
        await db.stop()


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
    db, kr = await _open(settings)
    try:
        send = TemplateSend(e164, template, category, params, language)
        return await queue_template(db, kr, templates, send, tier=settings.messaging_tier)
    except SendRefused as refused:
        raise OperatorError(f"refused: {refused.reason.value}") from None
    finally:
        await db.stop()


async def end_handoff(settings: Settings, number: str) -> None:
    """Give a handed-off conversation back to the bot: the person's next message gets
    the menu again. (The support API will do the same for staff.)"""
    e164 = normalize_e164(number)
    db, kr = await _open(settings)
    try:
        row = await db.read(contact_store.find, kr.blind_index("phone", e164), None)
        if row is None or row.handoff_at is None:
            raise OperatorError("that conversation is not handed off")
        dk = kr.unwrap(row.data_key_id, WrappedKey(row.kid, row.wrapped))
        profile = Profile.open(dk, row.id, row.profile_sealed)
        now = time.time()
        profile.state, profile.since = HOME, now
        sealed = profile.seal(dk, row.id)
        event = audit.Event(
            OPERATOR, "handoff_ended", outcome="handed_back",
            detail={"via": "cli", "subject": kr.blind_index("pseudonym", row.id)},
        )  # fmt: skip

        def unit(conn: Conn) -> None:
            contact_store.touch(conn, row.id, handoff_at=None, profile_sealed=sealed)
            audit.append(conn, [event])

        await db.write(unit)
    finally:
        await db.stop()


async def verify_audit(settings: Settings, expect_head: str | None) -> audit.Verdict:
    db = Database(settings.DATABASE_URL)
    await db.start()
    try:
        return await db.read(audit.verify, expect_head)
    finally:
        await db.stop()
