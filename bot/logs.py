"""Structured logs: one JSON object per line, safe to ship to any log store.

Log calls pass ids, counts, states and outcomes only; message text, names and
numbers never go into a log call. Exceptions are logged with their type and
the code location, not their message, because messages of third-party
exceptions can quote the data they failed on.

Behind that rule stands `RedactFilter`, on the one root handler that
`configure()` installs, for what slips through anyway (a library's message, an
`%r` of an exception): it masks phone numbers, WhatsApp message ids,
business-scoped user ids and e-mail addresses in the final message, replaces
the exception text any formatter would print with type and location only, and
drops `extra` fields that are not on an allow-list. Names and message texts
have no pattern, so for those the rule above is the only protection.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any

import orjson

# ---- what is masked

PHONE, WAMID, BSUID, EMAIL = "[phone]", "[wamid]", "[bsuid]", "[email]"

_WAMID = re.compile(r"(?i:wamid)\.[A-Za-z0-9+/=_%-]+")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# Meta's business-scoped user id: two-letter country code, a dot, a long id
# ("US.13491208655302741918"). The tail must be long and hold a digit, so
# names like "OS.path" or "UK.yaml" stay as they are.
_BSUID = re.compile(r"(?<![A-Za-z0-9_])[A-Z]{2}\.[A-Za-z0-9]+(?:\.[A-Za-z0-9]+)*(?![\w])")
# An ISO date/time or a UUID is matched first and kept, so that its digits are
# not taken for a phone number; otherwise a run of digit groups, each separated by one
# space or dash or set in parentheses, with an optional leading "+". The
# callback then counts the digits: 8 to 15 is a number. Groups are always split
# by a non-digit, so the pattern cannot backtrack badly on long digit runs.
_NUMBERS = re.compile(
    r"(?<![^\W_])(?<!\+)(?<!\d\.)(?:"
    r"(?P<keep>\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
    r"(?:Z|[+-]\d{2}(?::?\d{2})?)?)?"
    r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"|(?P<phone>\+?(?:\(\d{1,5}\)[ -]?)?\d+(?:(?:[ -]|[ -]?\(\d{1,5}\)[ -]?)\d+)*)"
    r")(?![^\W_])(?!\.\d)"
)


def _number(match: re.Match[str]) -> str:
    text = match.group(0)
    if match.group("keep") is not None:
        return text
    digits = sum(c.isdigit() for c in text)
    if digits < 8:
        return text
    if digits > 15 and text.lstrip("+").isdigit():
        return text  # one long id (Meta's media ids and the like), not a phone number
    return PHONE  # 8-15 digits, or several numbers written one after the other


def _bsuid(match: re.Match[str]) -> str:
    text = match.group(0)
    tail = text[3:]
    if len(tail) >= 8 and any(c.isdigit() for c in tail):
        return BSUID
    return text


def redact(text: str) -> str:
    """`text` with phone numbers, wamids, BSUIDs and e-mail addresses masked."""
    if not text:
        return text
    text = _WAMID.sub(WAMID, text)
    if "@" in text:
        text = _EMAIL.sub(EMAIL, text)
    if "." in text:
        text = _BSUID.sub(_bsuid, text)
    return _NUMBERS.sub(_number, text)


# ---- the filter

# Extra fields a log call may attach; anything else is dropped from the record.
# Keep to ids, counts, states and outcomes.
ALLOWED_EXTRA = frozenset(
    {
        "attempt",
        "attempts",
        "code",
        "count",
        "duration_ms",
        "event",
        "inbox_id",
        "kind",
        "outcome",
        "state",
        "status",
    }
)
_MARK = "_redacted"
_STANDARD = frozenset(logging.LogRecord("n", 0, "p", 0, "m", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    _MARK,
}


_SCALARS = (bool, int, float, type(None))


def where(tb: TracebackType | None, depth: int = 5) -> list[str]:
    """The last frames of a traceback as `file.py:line:function`: code, never data."""
    frames = traceback.extract_tb(tb)
    return [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}:{f.name}" for f in frames[-depth:]]


def exception_text(exc_info: tuple[Any, Any, Any]) -> str:
    """What a plain formatter prints for an exception, less every exception message."""
    exc_type, exc, tb = exc_info
    lines = ["Traceback (message withheld):"]
    lines += [f"  {frame}" for frame in where(tb, depth=20)]
    chain = []
    seen = {id(exc)}
    cause = (exc.__cause__ or exc.__context__) if exc is not None else None
    while cause is not None and id(cause) not in seen and len(chain) < 5:
        seen.add(id(cause))
        chain.append(type(cause).__name__)
        cause = cause.__cause__ or cause.__context__
    name = getattr(exc_type, "__name__", "Exception")
    lines.append(name + (f" (after {', '.join(chain)})" if chain else ""))
    return "\n".join(lines)


class RedactFilter(logging.Filter):
    """Masks personal data in a record before any handler formats it; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _MARK, False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: keep the template, lose the arguments
            message = f"{record.msg} [unformattable arguments]"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = exception_text(record.exc_info)
        elif record.exc_text:
            record.exc_text = "[exception text withheld]"
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key in [k for k in record.__dict__ if k not in _STANDARD]:
            value = record.__dict__[key]
            if key in ALLOWED_EXTRA and isinstance(value, _SCALARS):
                continue
            if key in ALLOWED_EXTRA and isinstance(value, str):
                setattr(record, key, redact(value))
            else:
                delattr(record, key)
        setattr(record, _MARK, True)
        return True


# ---- the format


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, allowed extras, exception type and place.

    It masks a record itself when no `RedactFilter` has, so it is safe on any handler."""

    def format(self, record: logging.LogRecord) -> str:
        if not getattr(record, _MARK, False):
            _FILTER.filter(record)
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in sorted(ALLOWED_EXTRA.intersection(record.__dict__)):
            entry[key] = record.__dict__[key]
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, _, tb = record.exc_info
            entry["exc_type"] = exc_type.__name__
            entry["exc_where"] = where(tb)
        return orjson.dumps(entry, default=str).decode()


# ---- set-up

# Chatty below WARNING, and some print request data at DEBUG (hpack: headers with
# tokens; aiosqlite and sqlalchemy: statements with their parameters).
NOISY = (
    "aiohttp",
    "aiosqlite",
    "alembic",
    "asyncpg",
    "h11",
    "h2",
    "hpack",
    "httpcore",
    "httpx",
    "hypercorn.access",
    "sqlalchemy",
)
# Loggers that frameworks give handlers of their own (hypercorn's error log
# with `errorlog="-"`, Quart's app logger when no handler is set). Their records
# are masked on the logger itself too, so even such a handler prints no data.
GUARDED = ("hypercorn.error", "hypercorn.access", "quart.app", "quart.serving", "asyncio")

_FILTER = RedactFilter()


def configure(level: str = "INFO", stream: IO[str] | None = None) -> logging.Handler:
    """Send every log record, the bot's and third-party ones, through one masked JSON handler.

    Call before the app is created. Returns the handler (tests read what it wrote)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(_FILTER)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Loggers that got handlers of their own before now (a library's default, an
    # earlier configuration) would print past the filter: they go through root.
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and logger.handlers:
            logger.handlers.clear()
            logger.propagate = True
    for name in GUARDED:
        guarded = logging.getLogger(name)
        guarded.propagate = True
        guarded.setLevel(logging.NOTSET)  # an embedded server may have set its own level
        if _FILTER not in guarded.filters:
            guarded.addFilter(_FILTER)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return handler


def hypercorn_error_logger() -> logging.Logger:
    """Pass as hypercorn's `Config.errorlog`: a Logger is used as given, so its
    records reach the root handler instead of a plain handler hypercorn would add."""
    return logging.getLogger("hypercorn.error")


_asyncio_log = logging.getLogger("bot.asyncio")


def asyncio_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Log an exception nobody awaited: its type and code location, never its message.

    asyncio's default handler prints the exception's repr and the task's, which may
    quote the data that failed."""
    exc = context.get("exception")
    task = context.get("task") or context.get("future")
    what = "callback"
    if isinstance(task, asyncio.Task):
        what = f"task {task.get_name()}"
        coro = task.get_coro()
        qualname = getattr(coro, "__qualname__", None)
        if qualname:
            what += f" ({qualname})"
    elif task is not None:
        what = "future"
    message = str(context.get("message") or "unhandled error")[:200]
    if isinstance(exc, BaseException):
        _asyncio_log.error(
            "asyncio %s: %s: %s", what, message, type(exc).__name__,
            exc_info=(type(exc), exc, exc.__traceback__),
        )  # fmt: skip
    else:
        _asyncio_log.error("asyncio %s: %s", what, message)


def install_asyncio_handler(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Route the loop's uncaught exceptions through the masked log (call inside the loop)."""
    (loop or asyncio.get_running_loop()).set_exception_handler(asyncio_exception_handler)


_excepthook_log = logging.getLogger("bot.uncaught")


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    _excepthook_log.critical("uncaught %s", exc_type.__name__, exc_info=(exc_type, exc, tb))


def _thread_excepthook(args: Any) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    _excepthook_log.error(
        "uncaught %s in thread %s", args.exc_type.__name__, name,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )  # fmt: skip


def install_excepthooks() -> Callable[[], None]:
    """Uncaught exceptions of the process and its threads go to the masked log too,
    instead of a full traceback with messages on stderr. Returns an undo."""
    import threading

    previous = sys.excepthook, threading.excepthook
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook

    def undo() -> None:
        sys.excepthook, threading.excepthook = previous

    return undo
