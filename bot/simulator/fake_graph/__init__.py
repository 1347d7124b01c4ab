"""A fake of Meta's WhatsApp Cloud Graph API, served over real HTTP on loopback.

It is the project's only fake of Meta: the bot's tests, the benchmark and the local simulator all
talk to it over HTTP, so the bot's real HTTP client, retry and error handling are exercised. The
response bodies copy the shapes of captured Meta responses (see `meta-samples/graph/`), errors
included, and faults (rate limits, 5xx, dropped connections, slow answers) can be queued from the
test's process (`FakeGraph.fail_next`) or from another process (`POST /_fake/faults`).

Where each part lives:

- `state.py`: what the fake remembers (`RecordedRequest`, `SentMessage`, media, tokens) and the
  test controls (`fail_next`, `expire_token`, `messages_for`, `wait_for_sent`, `reset`).
- `endpoints.py`: `FakeGraph` itself, i.e. that state plus how it answers each Graph endpoint.
- `validation.py`: which message bodies Meta refuses, and why.
- `errors.py`: Meta's error bodies and the HTTP status of each error code.
- `faults.py`: how a queued fault is spelled and what it answers.
- `statuses.py`: the signed "sent"/"delivered" webhooks posted back after a send.
- `reply.py`: the framework-free answer the endpoints return.
- `dispatch.py`: the route table (Graph routes and `/_fake/*` control routes), framework-free.
- `aio.py`: `create_app`, the standalone fake on aiohttp's server (cheap per request).
- `routes.py`: `create_blueprint`, the same routes as a Quart blueprint (the simulator's mount).
- `server.py`: `serve`, to run the fake (or any Quart app) inside a test's event loop.
- `__main__.py`: the CLI, `python -m bot.simulator.fake_graph --port 8799 --phone-number-id ID`.
"""

from bot.simulator.fake_graph.aio import create_app
from bot.simulator.fake_graph.endpoints import FakeGraph
from bot.simulator.fake_graph.errors import META_ERRORS, meta_error
from bot.simulator.fake_graph.faults import parse_fault
from bot.simulator.fake_graph.routes import create_blueprint
from bot.simulator.fake_graph.server import serve
from bot.simulator.fake_graph.state import RecordedRequest, SentMessage, new_wamid, recipient_key
from bot.simulator.fake_graph.validation import validate_send

__all__ = [
    "META_ERRORS",
    "FakeGraph",
    "RecordedRequest",
    "SentMessage",
    "create_app",
    "create_blueprint",
    "meta_error",
    "new_wamid",
    "parse_fault",
    "recipient_key",
    "serve",
    "validate_send",
]
