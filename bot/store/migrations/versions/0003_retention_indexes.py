"""indexes for retention purges

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_messages_created", "messages", ["created_at"])
    op.create_index("ix_inbox_state_received", "inbox", ["state", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_inbox_state_received", table_name="inbox")
    op.drop_index("ix_messages_created", table_name="messages")
