"""The bot's own exceptions: one base for all of them."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import bot
from bot.errors import BotError

# Not importable on their own: the command-line entry point runs at import, and
# the migration environment needs alembic's context.
SKIPPED = ("bot.__main__", "bot.store.migrations")


def exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in a module of the bot, by qualified name."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(bot.__path__, "bot."):
        if info.name.startswith(SKIPPED):
            continue
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == module.__name__:
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return found


def test_every_exception_of_the_bot_derives_from_bot_error() -> None:
    classes = exception_classes()
    assert {  # the walk reaches every package
        "bot.config.SettingsError",
        "bot.conversation.flowfile.FlowError",
        "bot.policy.business.SendRefused",
        "bot.simulator.routes.BadRequest",
        "bot.store.writer.WriterClosed",
        "bot.whatsapp.errors.GraphError",
    } <= set(classes)
    assert [name for name, cls in classes.items() if not issubclass(cls, BotError)] == []


def test_the_builtin_bases_callers_rely_on_are_kept() -> None:
    from bot.simulator.routes import BadRequest
    from bot.store.writer import WriterClosed
    from bot.whatsapp.events import PayloadError
    from bot.whatsapp.messages import MessageTooLarge

    assert issubclass(WriterClosed, RuntimeError)
    assert issubclass(PayloadError, ValueError)
    assert issubclass(MessageTooLarge, ValueError)
    assert issubclass(BadRequest, ValueError)
