"""The fake's answer to one request, decided before any web framework is involved.

The endpoint logic returns a `Reply` instead of a Quart response so it can be read (and tested)
without a web framework; `aio.py` and `routes.py` turn one into a real HTTP response.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

JSON_TYPE = "application/json; charset=UTF-8"


@dataclass(slots=True)
class Reply:
    """An HTTP answer decided by the fake, independent of the web framework."""

    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: dict[str, str] | None = None
    disconnect: bool = False


def json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, orjson.dumps(payload), headers=headers)
