"""send gate: outbox leases, business-initiated conversations

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.Float(), nullable=True))
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("initiated_at", sa.Float(), nullable=True))
    op.create_index("ix_contacts_initiated_at", "contacts", ["initiated_at"])


def downgrade() -> None:
    op.drop_index("ix_contacts_initiated_at", table_name="contacts")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("initiated_at")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
