"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("phone_index", sa.String(length=64), nullable=True),
        sa.Column("user_index", sa.String(length=64), nullable=True),
        sa.Column("data_key_id", sa.String(length=40), nullable=False),
        sa.Column("phone_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("user_id_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("name_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_inbound_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("phone_index"),
        sa.UniqueConstraint("user_index"),
    )
    op.create_table(
        "data_keys",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "inbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("contact_index", sa.String(length=64), nullable=True),
        sa.Column("meta_ts", sa.Integer(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("processed_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_key"),
    )
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inbox_contact_pending", ["contact_index", "state", "meta_ts", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_inbox_state"), ["state"], unique=False)

    op.create_table(
        "messages",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("contact_id", sa.String(length=40), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("wamid_index", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_title", sa.String(length=200), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("wamid_index"),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_messages_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(
            "ix_messages_outbox", ["direction", "status", "next_attempt_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_outbox")
        batch_op.drop_index(batch_op.f("ix_messages_contact_id"))

    op.drop_table("messages")
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbox_state"))
        batch_op.drop_index("ix_inbox_contact_pending")

    op.drop_table("inbox")
    op.drop_table("data_keys")
    op.drop_table("contacts")
