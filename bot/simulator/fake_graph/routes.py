"""The fake's Quart face: the blueprint the simulator mounts in the bot's own app.

One catch-all route turns the request into a `Call` for `dispatch.py`, which holds the
route table, and the `Reply` into a Quart response. The standalone fake serves the same
table over aiohttp (`aio.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from quart import Blueprint, Response, request

from bot.simulator.fake_graph.dispatch import Call, dispatch
from bot.simulator.fake_graph.endpoints import FakeGraph
from bot.simulator.fake_graph.reply import Reply

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


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


async def _call(rest: str) -> Call:
    route = "/" + rest
    base = request.base_url.removesuffix(route) if rest else request.base_url.rstrip("/")
    call = Call(
        method=request.method,
        route=route,
        path=request.path,
        base_url=base,
        query=request.args,
        headers={
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.scope["headers"]
        },
    )
    if request.mimetype == "multipart/form-data":
        form, files = await request.form, await request.files
        call.form = {k: form.get(k, "") for k in form}
        part = files.get("file")
        if part is not None:
            call.file = (
                part.read(),
                part.mimetype or "application/octet-stream",
                part.filename or "",
            )
    else:
        call.body = await request.get_data()
    return call


def create_blueprint(fake: FakeGraph) -> Blueprint:
    """The Graph routes plus `/_fake/*` control routes; mount with any url_prefix."""
    bp = Blueprint("fake_graph", __name__)

    @bp.route("/", defaults={"rest": ""}, methods=ALL_METHODS)
    @bp.route("/<path:rest>", methods=ALL_METHODS)
    async def any_route(rest: str) -> Response:
        return _to_response(await dispatch(fake, await _call(rest)))

    @bp.after_app_serving
    async def close() -> None:
        await fake.aclose()

    return bp
