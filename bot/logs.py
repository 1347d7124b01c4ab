"""Structured logs: one JSON object per line, safe to ship to any log store.

Log calls pass ids, counts, states and outcomes only; message text, names and
numbers never go into a log call. Exceptions are logged with their type and
the code location, not their message, because messages of third-party
exceptions can quote the data they failed on.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback

import orjson


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, _, tb = record.exc_info
            frames = traceback.extract_tb(tb)
            entry["exc_type"] = exc_type.__name__
            entry["exc_where"] = [
                f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}:{f.name}" for f in frames[-5:]
            ]
        return orjson.dumps(entry).decode()


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "hypercorn.access", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
