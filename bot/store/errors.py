"""What the store raises when the database cannot be reached: `StoreUnavailable`.

Raised by `Database` (`read`, `write`, `start`, `migrate`) in place of the
driver's own error when the database is away, locked or out of room, so that
callers can tell "the store is away, try again later" from a bug without
importing SQLAlchemy or a driver. A unique key clash or a mistake in a
statement is not unavailability: those come through unchanged.
"""

from __future__ import annotations

from bot.errors import BotError


class StoreUnavailable(BotError):
    """The database is away, locked or out of room: try again later.

    The driver's error is kept as `__cause__`; the message names only its type and
    code (never a statement or its parameters, which can hold personal data)."""
