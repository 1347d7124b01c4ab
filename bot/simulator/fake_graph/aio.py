"""The standalone fake's HTTP face, on aiohttp's server.

The benchmark runs the fake beside the bot on the same two cores, so what the fake
costs is taken from the bot: on Quart and hypercorn it needed ~0.9 ms of CPU per
request, on aiohttp ~0.15 ms. The routes are `dispatch.py`'s, shared with the
Quart blueprint the simulator mounts.
"""

from __future__ import annotations

from aiohttp import web

from bot.simulator.fake_graph.dispatch import Call, dispatch
from bot.simulator.fake_graph.endpoints import FakeGraph
from bot.simulator.fake_graph.reply import Reply

MAX_BODY = 128 * 1024 * 1024  # Meta accepts 100 MB documents


async def _call(request: web.Request) -> Call:
    call = Call(
        method=request.method,
        route=request.path,
        path=request.path,
        base_url=f"{request.scheme}://{request.host}",
        query=request.query,
        headers={k.lower(): v for k, v in request.headers.items()},
    )
    if request.content_type == "multipart/form-data":
        form = await request.post()
        call.form = {k: v for k, v in form.items() if isinstance(v, str)}
        part = form.get("file")
        if isinstance(part, web.FileField):
            call.file = (part.file.read(), part.content_type, part.filename)
    else:
        call.body = await request.read()
    return call


def _response(request: web.Request, reply: Reply) -> web.StreamResponse:
    if reply.disconnect:  # drop the connection without an answer, as a failing edge does
        if request.transport is not None:
            request.transport.abort()
        raise web.HTTPInternalServerError  # never written: the socket is gone
    response = web.Response(body=reply.body, status=reply.status, headers=reply.headers)
    response.headers["Content-Type"] = reply.content_type
    return response


def create_app(fake: FakeGraph) -> web.Application:
    """A standalone app serving only the fake, at "/"."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return _response(request, await dispatch(fake, await _call(request)))

    async def close(_app: web.Application) -> None:
        await fake.aclose()

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_route("*", "/{rest:.*}", handle)
    app.on_cleanup.append(close)
    return app
