"""The base of the bot's own exceptions.

Every exception class the bot defines derives from `BotError`, so that a caller
can catch the bot's own failures (a malformed setting or flow file, a refused
send, a store or a Redis that is away) apart from bugs: an `except Exception`
that was only meant for the former also hides the latter, logged as if it were
an expected failure. Classes that stood for a builtin error keep it as a second
base (`class PayloadError(BotError, ValueError)`), so existing handlers still
catch them.
"""

from __future__ import annotations


class BotError(Exception):
    """A failure the bot expects and names, as opposed to a bug."""
