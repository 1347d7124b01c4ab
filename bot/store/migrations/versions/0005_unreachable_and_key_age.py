"""numbers Meta called undeliverable; when each master key was first used

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("unreachable_at", sa.Float(), nullable=True))
    op.create_table(
        "master_keys_seen",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("first_seen_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("kid"),
    )


def downgrade() -> None:
    op.drop_table("master_keys_seen")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("unreachable_at")
