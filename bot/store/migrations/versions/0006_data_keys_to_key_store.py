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

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":  # no process adds a key between the check and the drop
        bind.execute(sa.text("LOCK TABLE data_keys IN ACCESS EXCLUSIVE MODE"))
    moved = context.config.attributes.get("keys_moved") or set()
    held = {row[0] for row in bind.execute(sa.text("SELECT id FROM data_keys"))}
    if held - moved:  # opened without the key store, or a key was added since the copy
        raise RuntimeError(
            f"{len(held - moved)} data keys in the data database are not in the key store yet: "
            "open it through the bot (`bot.store.keystore.open_stores`), which moves them first"
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
