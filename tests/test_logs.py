"""The log format and the filter that keeps personal data out of every log line."""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from collections.abc import Iterator

import orjson
import pytest

from bot import logs
from bot.logs import RedactFilter, redact


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """`configure` changes process-wide logging: put every logger back as it was."""
    manager = logging.Logger.manager
    loggers = [logging.getLogger()] + [
        lg for lg in manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    names = [*logs.NOISY, *logs.GUARDED, "bot.test", "somelib"]
    loggers += [logging.getLogger(n) for n in names]
    saved = [(lg, lg.handlers[:], lg.filters[:], lg.level, lg.propagate) for lg in loggers]
    yield
    for lg, handlers, filters, level, propagate in saved:
        lg.handlers[:] = handlers
        lg.filters[:] = filters
        lg.setLevel(level)
        lg.propagate = propagate


@pytest.fixture
def out(restore_logging: None) -> io.StringIO:
    """Logging configured like the server, writing JSON lines into a buffer."""
    buffer = io.StringIO()
    logs.configure("DEBUG", stream=buffer)
    return buffer


def lines(buffer: io.StringIO) -> list[dict]:
    return [orjson.loads(line) for line in buffer.getvalue().splitlines()]


# ---- the patterns

MASKED = [
    ("+447700900123", "[phone]"),
    ("447700900123", "[phone]"),
    ("07700 900123", "[phone]"),
    ("0171 3920042", "[phone]"),
    ("0171-3920042", "[phone]"),
    ("+44 7700 900123", "[phone]"),
    ("+49 (0)171 3920042", "[phone]"),
    ("(650) 555-1234", "[phone]"),
    ("+1 (650) 555-1234", "[phone]"),
    ("650-555-1234", "[phone]"),
    ("0044 7700 900123", "[phone]"),
    ("12345678", "[phone]"),
    ("123456789012345", "[phone]"),
    ("447700900123 491713920042", "[phone]"),
    ("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", "[wamid]"),
    ("US.13491208655302741918", "[bsuid]"),
    ("GB.a8Xk29QmZ7pL", "[bsuid]"),
    ("privacy-sg@example.com", "[email]"),
    ("jurgen.muller+bot@mail.example.de", "[email]"),
    ("447700900123@s.whatsapp.net", "[email]"),
]


@pytest.mark.parametrize(("value", "mask"), MASKED, ids=[m[0] for m in MASKED])
def test_each_kind_of_personal_data_is_masked(value: str, mask: str) -> None:
    assert redact(value) == mask
    assert redact(f"to {value}, then stop.") == f"to {mask}, then stop."
    assert redact(f"id={value}") == f"id={mask}"


def test_several_in_one_message() -> None:
    text = "from 447700900123 (US.13491208655302741918) wamid.HBgLMTY1MDM=, mail a@b.example"
    assert redact(text) == "from [phone] ([bsuid]) [wamid], mail [email]"
    assert redact("[447700900123, 491713920042]") == "[[phone], [phone]]"


UNTOUCHED = [
    "turn failed: inbox_id=42 attempt=3",
    "send will be retried: code=131026 attempt=2 in 0.4s",
    "Meta reported webhook-level errors: codes=[130429, 131047]",
    "2026-01-15T10:20:30.123Z",
    "2026-01-15T10:20:30+01:00",
    "2026-01-15 10:20:30,123",
    "[2026-01-15 10:20:30 +0000] [1234] [INFO] Running on http://127.0.0.1:8000",
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "12345678deadbeef00000000",
    "kv5Xv0n1Yq3Zr8w2Pm4Lb6Hc9Tj7Ud5Ae1Sf3Gg0Qh=",
    "123e4567-e89b-12d3-a456-426614174000",
    "listening on 127.0.0.1:8000 and [::1]:8443",
    "took 1749416383.123456",
    "group commit of 128 units failed (4096 bytes)",
    "bot.runtime.turns OS.path UK.yaml DE.v2 US.CA",
    "version 0.17.6 of alembic",
    "media 1234567890123456789",
]


@pytest.mark.parametrize("text", UNTOUCHED)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_long_inputs_stay_fast() -> None:
    """No catastrophic backtracking on long digit runs or many groups."""
    import time

    nasty = ("1" * 5000 + "x ") * 20 + "1 2 " * 5000
    start = time.perf_counter()
    redact(nasty)
    assert time.perf_counter() - start < 0.5


# ---- the filter on records


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("bot.test", logging.INFO, __file__, 1, msg, args, None)
    rec.__dict__.update(extra)
    return rec


def test_filter_masks_the_final_message_and_its_arguments() -> None:
    rec = record("reply to %s failed: %r", "+447700900123", {"to": "US.13491208655302741918"})
    assert RedactFilter().filter(rec) is True
    assert rec.getMessage() == "reply to [phone] failed: {'to': '[bsuid]'}"
    assert rec.args is None


def test_filter_drops_extra_fields_not_on_the_allow_list() -> None:
    rec = record(
        "turn done", inbox_id=42, outcome="ok", profile_name="Alice Liddell", body="my secret plan",
        state="sent to 447700900123", event={"nested": "447700900123"},
    )  # fmt: skip
    RedactFilter().filter(rec)
    assert rec.__dict__["inbox_id"] == 42 and rec.__dict__["outcome"] == "ok"
    assert rec.__dict__["state"] == "sent to [phone]"
    for dropped in ("profile_name", "body", "event"):
        assert dropped not in rec.__dict__


def test_filter_is_idempotent() -> None:
    rec = record("to %s", "+447700900123")
    f = RedactFilter()
    f.filter(rec)
    f.filter(rec)
    assert rec.getMessage() == "to [phone]"


def test_a_malformed_call_is_still_logged() -> None:
    rec = record("two args %s %s", "+447700900123")
    RedactFilter().filter(rec)
    assert "[unformattable arguments]" in rec.getMessage()
    assert "447700900123" not in rec.getMessage()


def fail(detail: str) -> None:
    raise ValueError(f"cannot parse {detail}")


def test_log_exception_shows_type_and_place_not_the_message(out: io.StringIO) -> None:
    log = logging.getLogger("bot.test")
    try:
        try:
            fail("+447700900123 from Alice Liddell: my secret plan 7431")
        except ValueError as exc:
            raise RuntimeError("while handling 491713920042") from exc
    except RuntimeError:
        log.exception("turn failed: inbox_id=%d attempt=%d", 42, 3)
    text = out.getvalue()
    for secret in ("447700900123", "491713920042", "Alice", "secret plan", "7431"):
        assert secret not in text
    (entry,) = lines(out)
    assert entry["msg"] == "turn failed: inbox_id=42 attempt=3"
    assert entry["exc_type"] == "RuntimeError"
    assert entry["exc_where"][-1].startswith("test_logs.py:")


def test_a_third_party_formatter_prints_no_exception_message(out: io.StringIO) -> None:
    """hypercorn with `errorlog="-"` puts a plain handler on its logger; it prints the
    exception text, which the filter has replaced by type and location."""
    plain = io.StringIO()
    handler = logging.StreamHandler(plain)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    hypercorn = logging.getLogger("hypercorn.error")
    hypercorn.addHandler(handler)
    try:
        fail("Jürgen Müller 0171 3920042")
    except ValueError:
        hypercorn.exception("Error in ASGI Framework for %s", "+491713920042")
    printed = plain.getvalue()
    assert "ValueError" in printed and "test_logs.py" in printed
    assert "Error in ASGI Framework for [phone]" in printed
    for secret in ("Jürgen", "3920042"):
        assert secret not in printed
        assert secret not in out.getvalue()


# ---- the format and the set-up


def test_one_json_object_per_line(out: io.StringIO) -> None:
    log = logging.getLogger("bot.test")
    log.info("bot started: database=%s", "sqlite")
    log.warning("two\nlines")
    log.debug("inbox event %d set aside", 7, extra={"inbox_id": 7, "body": "hi"})
    raw = out.getvalue()
    assert raw.endswith("\n") and len(raw.splitlines()) == 3
    first, second, third = lines(out)
    assert set(first) == {"ts", "level", "logger", "msg"}
    assert first["level"] == "info" and first["logger"] == "bot.test"
    assert first["msg"] == "bot started: database=sqlite"
    assert first["ts"].endswith("Z") and first["ts"][10] == "T" and len(first["ts"]) == 24
    assert second["msg"] == "two\nlines" and second["level"] == "warning"
    assert third["inbox_id"] == 7 and "body" not in third


@pytest.mark.parametrize("name", ["httpx", "sqlalchemy.engine", "alembic", "hypercorn.error"])
def test_third_party_loggers_go_through_the_same_handler(out: io.StringIO, name: str) -> None:
    logging.getLogger(name).warning("call to +447700900123 failed")
    (entry,) = lines(out)
    assert entry["logger"] == name and entry["msg"] == "call to [phone] failed"


def test_handlers_set_up_before_configure_are_taken_away(restore_logging: None) -> None:
    stray = io.StringIO()
    logging.getLogger("somelib").addHandler(logging.StreamHandler(stray))
    buffer = io.StringIO()
    logs.configure("INFO", stream=buffer)
    logging.getLogger("somelib").warning("to +447700900123")
    assert stray.getvalue() == ""
    assert lines(buffer)[0]["msg"] == "to [phone]"


def test_noisy_libraries_stay_at_warning(out: io.StringIO) -> None:
    logging.getLogger("httpx").info("HTTP Request: POST ...")
    logging.getLogger("aiosqlite").debug("executing ...")
    assert out.getvalue() == ""
    assert logging.getLogger("sqlalchemy").getEffectiveLevel() == logging.WARNING


def test_hypercorn_keeps_a_logger_it_is_given() -> None:
    from hypercorn.config import Config
    from hypercorn.logging import Logger

    config = Config()
    config.errorlog = logs.hypercorn_error_logger()
    before = logs.hypercorn_error_logger().handlers[:]
    assert Logger(config).error_logger is logs.hypercorn_error_logger()
    assert logs.hypercorn_error_logger().handlers == before


async def test_uncaught_asyncio_exceptions_are_logged_masked(out: io.StringIO) -> None:
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    logs.install_asyncio_handler(loop)
    try:

        def callback() -> None:
            fail("+447700900123 Alice Liddell")

        loop.call_soon(callback)
        await asyncio.sleep(0)
        await asyncio.sleep(0)

        async def job() -> None:
            fail("US.13491208655302741918 Sheena")

        task = asyncio.create_task(job(), name="outbox-0")
        await asyncio.wait([task])
        loop.call_exception_handler(
            {"message": "Task exception was never retrieved", "exception": task.exception(),
             "task": task}
        )  # fmt: skip
    finally:
        loop.set_exception_handler(previous)
    text = out.getvalue()
    for secret in ("447700900123", "Alice", "13491208655302741918", "Sheena"):
        assert secret not in text
    first, second = [e for e in lines(out) if e["logger"] == "bot.asyncio"]
    assert first["level"] == "error" and first["exc_type"] == "ValueError"
    assert "callback" in first["msg"]
    assert "task outbox-0" in second["msg"] and "never retrieved" in second["msg"]
    assert second["exc_where"][-1].startswith("test_logs.py:")


def test_uncaught_exceptions_of_the_process_are_logged_masked(out: io.StringIO) -> None:
    undo = logs.install_excepthooks()
    try:
        try:
            fail("+447700900123")
        except ValueError:
            sys.excepthook(*sys.exc_info())  # type: ignore[arg-type]
    finally:
        undo()
    (entry,) = lines(out)
    assert entry["level"] == "critical" and entry["exc_type"] == "ValueError"
    assert "447700900123" not in out.getvalue()


def test_the_formatter_alone_masks_too() -> None:
    """A JsonFormatter put on some other handler, without the filter, is still safe."""
    rec = record("to %s", "+447700900123", body="my secret plan")
    entry = orjson.loads(logs.JsonFormatter().format(rec))
    assert entry["msg"] == "to [phone]" and "body" not in entry
