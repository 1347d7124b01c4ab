"""The fake's HTTP face: Graph routes as Meta serves them, plus `/_fake/*` control routes.

Routes only translate between HTTP and `FakeGraph`: they read the token and body, let the fake
decide (`endpoints.py`), record the exchange and send the `Reply`. The control routes give a
test in another process the same levers `FakeGraph` offers in-process, and are not recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from quart import Blueprint, Quart, Response, request, url_for

from bot.simulator.fake_graph.endpoints import FakeGraph
from bot.simulator.fake_graph.errors import unknown_path
from bot.simulator.fake_graph.reply import JSON_TYPE, Reply

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _headers() -> dict[str, str]:
    """Request headers with lower-case names, read straight from the ASGI scope (cheap)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.scope["headers"]}


def _bearer(headers: dict[str, str]) -> str | None:
    """The access token from `Authorization: Bearer ...` or the `access_token` query arg."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "oauth") and token.strip():
        return token.strip()
    return request.args.get("access_token") or None


def _disconnect_response() -> Response:
    """Drop the connection without an answer.

    ASGI has no "abort" message, so this sends only an interim `100` status and then lets
    Quart's response timeout end the exchange: hypercorn then closes the socket because no final
    response was sent, and the client sees "Server disconnected without sending a response".
    """

    async def never() -> AsyncIterator[bytes]:
        await asyncio.Event().wait()
        yield b""

    response = Response(never(), status=100)
    response.timeout = 0.01
    return response


def _to_response(reply: Reply) -> Response:
    if reply.disconnect:
        return _disconnect_response()
    return Response(
        reply.body, status=reply.status, headers=reply.headers, content_type=reply.content_type
    )


def _finish(fake: FakeGraph, reply: Reply, body: Any, headers: dict[str, str]) -> Response:
    """Record the exchange and turn the fake's decision into a Quart response."""
    fake.record(request.method, request.path, headers, body, reply.status)
    return _to_response(reply)


async def _json_arg(key: str) -> Any:
    data = await request.get_json(force=True, silent=True)
    return data.get(key) if isinstance(data, dict) else None


def _add_graph_routes(bp: Blueprint, fake: FakeGraph) -> None:
    @bp.post("/<version>/<phone_number_id>/messages")
    async def messages(version: str, phone_number_id: str) -> Response:
        raw = await request.get_data()
        headers = _headers()
        reply, body = await fake.handle_messages(version, phone_number_id, raw, _bearer(headers))
        return _finish(fake, reply, body, headers)

    @bp.post("/<version>/<phone_number_id>/media")
    async def upload(version: str, phone_number_id: str) -> Response:
        form = await request.form
        files = await request.files
        part = files.get("file")
        file = None
        if part is not None:
            file = (part.read(), part.mimetype or "application/octet-stream", part.filename or "")
        fields = {k: form.get(k, "") for k in ("messaging_product", "type")}
        headers = _headers()
        reply = fake.handle_upload(version, phone_number_id, _bearer(headers), fields, file)
        return _finish(fake, reply, None, headers)

    @bp.route("/<version>/<object_id>", methods=["GET", "DELETE"])
    async def graph_object(version: str, object_id: str) -> Response:
        url = url_for(".media_download", media_id=object_id, _external=True)
        headers = _headers()
        reply = fake.handle_object(request.method, version, object_id, _bearer(headers), url)
        return _finish(fake, reply, None, headers)

    @bp.get("/_fake/media/<media_id>")
    async def media_download(media_id: str) -> Response:
        headers = _headers()
        return _finish(fake, fake.handle_download(media_id, _bearer(headers)), None, headers)

    @bp.route("/", defaults={"rest": ""}, methods=ALL_METHODS)
    @bp.route("/<path:rest>", methods=ALL_METHODS)
    async def unknown(rest: str) -> Response:
        return _finish(fake, unknown_path(rest), None, _headers())


def _add_control_routes(bp: Blueprint, fake: FakeGraph) -> None:
    """Routes a test in another process uses to steer the fake (not recorded in `requests`)."""

    def ok(payload: Any, status: int = 200) -> Response:
        return Response(orjson.dumps(payload), status=status, content_type=JSON_TYPE)

    @bp.post("/_fake/faults")
    async def faults() -> Response:
        data = await request.get_json(force=True, silent=True)
        if not isinstance(data, dict) or "fault" not in data:
            return ok({"error": 'expected {"fault": ..., "times": n, "to": ...}'}, 400)
        to = data.get("to")
        try:
            fake.fail_next(
                data["fault"], int(data.get("times", 1)), to=None if to is None else str(to)
            )
        except (TypeError, ValueError) as exc:
            return ok({"error": str(exc)}, 400)
        return ok({"queued": fake.pending_faults})

    @bp.get("/_fake/sent")
    async def sent() -> Response:
        after = request.args.get("after", "-1")
        to = request.args.get("to")
        try:
            index = int(after)
        except ValueError:
            return ok({"error": "after must be an integer"}, 400)
        found = fake.messages_for(to, index) if to else fake.sent_since(index)
        return ok([{"index": m.index, "wamid": m.wamid, "to": m.to, "body": m.body} for m in found])

    @bp.post("/_fake/reset")
    async def reset() -> Response:
        fake.reset()
        return ok({"ok": True})

    @bp.post("/_fake/expire-token")
    async def expire() -> Response:
        token = await _json_arg("token")
        if not isinstance(token, str):
            return ok({"error": 'expected {"token": "..."}'}, 400)
        fake.expire_token(token)
        return ok({"ok": True})


def create_blueprint(fake: FakeGraph) -> Blueprint:
    """The Graph routes plus `/_fake/*` control routes; mount with any url_prefix."""
    bp = Blueprint("fake_graph", __name__)
    _add_control_routes(bp, fake)
    _add_graph_routes(bp, fake)

    @bp.after_app_serving
    async def close() -> None:
        await fake.aclose()

    return bp


def create_app(fake: FakeGraph) -> Quart:
    """A standalone app serving only the fake, at "/"."""
    app = Quart(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 128 * 1024 * 1024  # Meta accepts 100 MB documents
    app.register_blueprint(create_blueprint(fake))
    return app
