"""Alembic environment: migrations run on a connection the bot hands in.

`bot.store.db.migrate` calls Alembic inside `AsyncConnection.run_sync`, so the
same migrations serve SQLite and PostgreSQL and run automatically at start.
Run by hand for a new revision: see the README (Schema changes).
"""

from alembic import context

from bot.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations through `python -m bot migrate` (they need the bot's engine)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
