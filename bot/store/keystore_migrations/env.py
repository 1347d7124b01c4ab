"""Alembic environment of the key store: its own schema, in its own database.

Run like the data database's (`bot.store.db.Database.migrate`), on a connection the
bot hands in.
"""

from alembic import context

from bot.store.keys import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("key store migrations run when the bot opens its stores")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
