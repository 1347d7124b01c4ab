"""data keys leave the data database for the key store

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

`bot.store.keystore.open_stores` copies every row of `data_keys` into the key
store (`BOT_KEYSTORE_URL`) and commits it there before this runs, so dropping
the table loses no key; a backup of the data database then holds none.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    left = op.get_bind().execute(sa.text("SELECT count(*) FROM data_keys")).scalar_one()
    if left and not context.config.attributes.get("keys_moved"):
        # opened without the key store: never drop a key that was not moved
        raise RuntimeError(
            f"{left} data keys are still in the data database: open it through the bot "
            "(`bot.store.keystore.open_stores`), which moves them to the key store first"
        )
    op.drop_table("data_keys")


def downgrade() -> None:
    op.create_table(
        "data_keys",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
