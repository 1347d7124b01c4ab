"""The database tables. Nothing here holds personal data in clear.

Columns ending in `_index` are blind indexes (keyed HMACs, see `bot.crypto`);
columns ending in `_sealed` or named `payload`/`body` are AES-GCM ciphertexts
bound to their table, column and row. Times are UTC epoch seconds (floats):
compact, sortable and the same on SQLite and PostgreSQL. Data keys are not here:
they live in the key store, a database of their own (`bot.store.keys`).
"""

from __future__ import annotations

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel


class Contact(SQLModel, table=True):
    """A person the bot talks to, found by the blind index of their number or BSUID."""

    __tablename__ = "contacts"

    id: str = Field(primary_key=True, max_length=40)
    phone_index: str | None = Field(default=None, unique=True, max_length=64)
    user_index: str | None = Field(default=None, unique=True, max_length=64)
    data_key_id: str = Field(max_length=40)
    phone_sealed: bytes | None = None
    user_id_sealed: bytes | None = None
    name_sealed: bytes | None = None
    created_at: float
    last_inbound_at: float | None = None
    profile_sealed: bytes | None = None  # flow state, slots, language, stated residence
    handoff_at: float | None = Field(default=None, index=True)
    # Start of the business-initiated conversation that counts toward the messaging
    # tier (unique people the business wrote to first in a rolling 24 hours).
    initiated_at: float | None = Field(default=None, index=True)
    # When Meta last called this number undeliverable (131026): business sends pause
    # (`BOT_UNREACHABLE_DAYS`) unless the person wrote since.
    unreachable_at: float | None = None


class InboxEvent(SQLModel, table=True):
    """One webhook event (message, status or error) as Meta delivered it.

    `event_key` is a blind index of Meta's id (wamids encode phone numbers), so a
    redelivery collides on the unique constraint. The sealed payload is dropped
    once the event is processed; the key stays so late redeliveries stay deduplicated.
    """

    __tablename__ = "inbox"
    __table_args__ = (
        Index("ix_inbox_contact_pending", "contact_index", "state", "meta_ts", "id"),
        Index("ix_inbox_state_received", "state", "received_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    event_key: str = Field(unique=True, max_length=64)
    kind: str = Field(max_length=16)
    contact_index: str | None = Field(default=None, max_length=64)
    meta_ts: int = 0
    payload: bytes | None = None
    state: str = Field(default="pending", index=True, max_length=16)
    attempts: int = 0
    received_at: float
    processed_at: float | None = None


class Message(SQLModel, table=True):
    """A message in either direction. Outbound rows double as the outbox.

    Outbound states: queued → sent → delivered → read, or failed (with Meta's
    error code and title), or refused by the send gate (reason in `error_title`).
    `wamid_index` is the blind index of Meta's message id. A queued row is held by
    one worker at a time: `lease_owner` until `lease_until`, renewed while it waits.
    """

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_outbox", "direction", "status", "next_attempt_at"),
        Index("ix_messages_created", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=40)
    # NULL only for the farewell after an erasure, sealed with the system key
    # and deleted once Meta accepted it.
    contact_id: str | None = Field(
        default=None, foreign_key="contacts.id", index=True, max_length=40
    )
    direction: str = Field(max_length=3)
    kind: str = Field(max_length=24)
    category: str = Field(default="service", max_length=16)
    body: bytes | None = None
    wamid_index: str | None = Field(default=None, unique=True, max_length=64)
    status: str = Field(max_length=16)
    error_code: int | None = None
    error_title: str | None = Field(default=None, max_length=200)
    attempts: int = 0
    next_attempt_at: float | None = None
    created_at: float
    updated_at: float
    lease_owner: str | None = Field(default=None, max_length=40)
    lease_until: float | None = None


class Consent(SQLModel, table=True):
    """The current state of one purpose's consent; its history is in consent_events."""

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("contact_id", "purpose"),)

    id: str = Field(primary_key=True, max_length=40)
    contact_id: str = Field(foreign_key="contacts.id", index=True, max_length=40)
    purpose: str = Field(max_length=32)
    status: str = Field(max_length=16)  # pending, granted, revoked
    updated_at: float


class ConsentEvent(SQLModel, table=True):
    """Evidence for a regulator: every change of consent and how it was given.

    `message_ref` is a keyed hash of the confirming message's Meta id (which
    encodes the phone number), so the record points at the message without
    holding it.
    """

    __tablename__ = "consent_events"

    id: str = Field(primary_key=True, max_length=40)
    contact_id: str = Field(foreign_key="contacts.id", index=True, max_length=40)
    purpose: str = Field(max_length=32)
    status: str = Field(max_length=16)
    method: str = Field(max_length=40)
    source: str = Field(max_length=64)
    policy_version: str = Field(max_length=32)
    jurisdiction: str = Field(max_length=16)
    locale: str = Field(max_length=8)
    asked_at: float | None = None
    at: float
    message_ref: str | None = Field(default=None, max_length=64)


class Suppression(SQLModel, table=True):
    """Never message this number again (unless they write first): kept after erasure."""

    __tablename__ = "suppressions"

    phone_index: str = Field(primary_key=True, max_length=64)
    reason: str = Field(max_length=32)
    created_at: float


class AuditEntry(SQLModel, table=True):
    """Append-only, hash-chained record of what happened; pseudonyms only."""

    __tablename__ = "audit"

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: str = Field(max_length=32)
    actor: str = Field(index=True, max_length=80)
    event: str = Field(max_length=40)
    state_before: str | None = Field(default=None, max_length=64)
    state_after: str | None = Field(default=None, max_length=64)
    outcome: str = Field(max_length=40)
    detail: str = Field(default="{}")
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class MasterKeySeen(SQLModel, table=True):
    """When each master key id was first used here, for its age against the rotation
    period (`python -m bot doctor`). Ids only, never key material."""

    __tablename__ = "master_keys_seen"

    kid: str = Field(primary_key=True, max_length=64)
    first_seen_at: float


class StaffToken(SQLModel, table=True):
    """A support staff member's bearer token: only its keyed hash is held (`token_index`),
    so a copy of the database lets nobody in."""

    __tablename__ = "staff_tokens"

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(index=True, max_length=40)
    role: str = Field(max_length=16)
    token_index: str = Field(unique=True, max_length=64)
    created_at: float
    expires_at: float
    revoked_at: float | None = None
    last_used_at: float | None = None


ALL_TABLES = [
    Contact, InboxEvent, Message, Consent, ConsentEvent, Suppression, AuditEntry,
    MasterKeySeen, StaffToken,
]  # fmt: skip
metadata = SQLModel.metadata
