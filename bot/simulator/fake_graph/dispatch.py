"""The fake's route table, free of any web framework.

Both HTTP faces (`aio.py`, the standalone server on aiohttp; `routes.py`, the
Quart blueprint the simulator mounts in the bot's own app) turn a request into a
`Call` and its `Reply` back into a response; which endpoint answers, the order
Graph checks things in and what gets recorded are decided here, once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from bot.simulator.fake_graph.endpoints import FakeGraph
from bot.simulator.fake_graph.errors import unknown_path
from bot.simulator.fake_graph.reply import Reply, json_reply

MESSAGES = re.compile(r"/([^/]+)/([^/]+)/messages")
MEDIA = re.compile(r"/([^/]+)/([^/]+)/media")
OBJECT = re.compile(r"/([^/]+)/([^/]+)")
DOWNLOAD = re.compile(r"/_fake/media/([^/]+)")
DEBUG_TOKEN = re.compile(r"/([^/]+)/debug_token")


@dataclass(slots=True)
class Call:
    """One request as the fake sees it. `route` is the path below where the fake is
    mounted; `path` the full one (recorded); `base_url` the mount's absolute URL."""

    method: str
    route: str
    path: str
    base_url: str
    query: Mapping[str, str]
    headers: dict[str, str]  # names in lower case
    body: bytes = b""
    form: dict[str, str] | None = None  # a multipart upload's fields
    file: tuple[bytes, str, str] | None = None  # its "file" part: content, type, name


def bearer(call: Call) -> str | None:
    """The access token from `Authorization: Bearer ...` or the `access_token` query arg."""
    scheme, _, token = call.headers.get("authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "oauth") and token.strip():
        return token.strip()
    return call.query.get("access_token") or None


async def dispatch(fake: FakeGraph, call: Call) -> Reply:
    """Answer one request: a `/_fake/*` control route (not recorded) or a Graph route."""
    control = _control(fake, call)
    if control is not None:
        return control
    body: Any = None
    route, method, token = call.route, call.method, bearer(call)
    if method == "POST" and (m := MESSAGES.fullmatch(route)):
        reply, body = await fake.handle_messages(m[1], m[2], call.body, token)
    elif method == "POST" and (m := MEDIA.fullmatch(route)):
        reply = fake.handle_upload(m[1], m[2], token, call.form or {}, call.file)
    elif method == "GET" and (m := DEBUG_TOKEN.fullmatch(route)):
        reply = fake.handle_debug_token(m[1], token, call.query.get("input_token", ""))
    elif method == "GET" and (m := DOWNLOAD.fullmatch(route)):
        reply = fake.handle_download(m[1], token)
    elif method in ("GET", "DELETE") and (m := OBJECT.fullmatch(route)):
        url = f"{call.base_url}/_fake/media/{m[2]}"
        reply = fake.handle_object(method, m[1], m[2], token, url)
    else:
        reply = unknown_path(route.lstrip("/"))
    fake.record(method, call.path, call.headers, body, reply.status)
    return reply


def _control(fake: FakeGraph, call: Call) -> Reply | None:
    """Routes a test in another process uses to steer the fake."""
    key = (call.method, call.route)
    if key == ("POST", "/_fake/faults"):
        data = _json(call.body)
        if not isinstance(data, dict) or "fault" not in data:
            return json_reply(400, {"error": 'expected {"fault": ..., "times": n, "to": ...}'})
        to = data.get("to")
        try:
            fake.fail_next(
                data["fault"], int(data.get("times", 1)), to=None if to is None else str(to)
            )
        except (TypeError, ValueError) as exc:
            return json_reply(400, {"error": str(exc)})
        return json_reply(200, {"queued": fake.pending_faults})
    if key == ("GET", "/_fake/sent"):
        to = call.query.get("to")
        try:
            index = int(call.query.get("after", "-1"))
        except ValueError:
            return json_reply(400, {"error": "after must be an integer"})
        found = fake.messages_for(to, index) if to else fake.sent_since(index)
        return json_reply(
            200, [{"index": m.index, "wamid": m.wamid, "to": m.to, "body": m.body} for m in found]
        )
    if key == ("POST", "/_fake/reset"):
        fake.reset()
        return json_reply(200, {"ok": True})
    if key == ("POST", "/_fake/expire-token"):
        data = _json(call.body)
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str):
            return json_reply(400, {"error": 'expected {"token": "..."}'})
        fake.expire_token(token)
        return json_reply(200, {"ok": True})
    return None


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
