"""The local WhatsApp simulator: a chat page at `/simulator` and a fake Graph API.

It plays Meta's part end to end, so what a newcomer sees is what production does: a
message typed on the page becomes a Meta-shaped webhook, signed with the app secret and
POSTed over real HTTP to the bot's own `/webhook`; the bot answers through its outbox
and Graph client into the fake Graph API mounted at `/simulator/graph`, which sends
"sent"/"delivered" status webhooks back. The page then polls the fake for what the bot
sent. Mounted by `create_app` only when `settings.simulator` is true.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import phonenumbers
from quart import Blueprint, Quart, Response, current_app, request

from bot.config import Settings, SettingsError
from bot.errors import BotError
from bot.policy.templates import Registry
from bot.simulator import webhooks
from bot.simulator.describe import MEDIA_PATH, describe
from bot.simulator.fake_graph import FakeGraph, create_blueprint, recipient_key

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
TEXT_MAX = 4096
REPLY_ID_MAX = 256
REPLY_TITLE_MAX = 24
NAME_MAX = 256
REPLY_TYPES = frozenset({"button_reply", "list_reply"})
NUMBER_HINT = "must be a phone number in E.164 format, like +447700900123"
SENT_KEPT = 1000  # the person's own messages the page can reload, per number
# Files the page opens in a tab of their own; anything else is only downloaded.
INLINE_TYPES = frozenset({"application/json", "text/plain"})
# The page loads only its own script and stylesheet and talks only to this origin.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class BadRequest(BotError, ValueError):
    """The page or a script sent something the simulator cannot turn into a webhook."""


def parse_e164(value: object) -> str | None:
    """`+447700900123` (spaces and dashes allowed) in E.164, or None if it is not a number.

    "Possible" rather than "valid": fictional ranges such as the UK's 07700 900xxx are
    exactly what people should test with, and they are not assigned to any carrier.
    """
    if not isinstance(value, str) or not value.strip().startswith("+") or len(value) > 32:
        return None
    try:
        number = phonenumbers.parse(value.strip(), None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def own_url(settings: Settings) -> str:
    return settings.own_url


# --------------------------------------------------------------------------- what the bot sent


def _reply_content(reply: Any) -> dict[str, Any]:
    if not isinstance(reply, dict) or reply.get("type") not in REPLY_TYPES:
        raise BadRequest('reply must be {"type": "button_reply" or "list_reply", "id", "title"}')
    reply_id, title = reply.get("id"), reply.get("title")
    if not isinstance(reply_id, str) or not 0 < len(reply_id) <= REPLY_ID_MAX:
        raise BadRequest(f"reply.id must be 1 to {REPLY_ID_MAX} characters")
    if not isinstance(title, str) or not 0 < len(title) <= REPLY_TITLE_MAX:
        raise BadRequest(f"reply.title must be 1 to {REPLY_TITLE_MAX} characters")
    if reply["type"] == "button_reply":
        return webhooks.button_reply(reply_id, title)
    description = reply.get("description")
    return webhooks.list_reply(reply_id, title, description if isinstance(description, str) else "")


def _content(data: dict[str, Any]) -> dict[str, Any]:
    """The message part of the webhook: typed text or a tapped button/list row."""
    has_text, has_reply = "text" in data, "reply" in data
    if has_text == has_reply:
        raise BadRequest('send exactly one of "text" or "reply"')
    if has_reply:
        return _reply_content(data["reply"])
    text = data["text"]
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("text must be a non-empty string")
    if len(text) > TEXT_MAX:
        raise BadRequest(f"text must be at most {TEXT_MAX} characters (WhatsApp's limit)")
    return webhooks.text(text)


def shown_as(data: dict[str, Any]) -> str:
    """What the person's own bubble shows for a valid send: the text, or the title tapped."""
    return str(data["text"]) if "text" in data else str(data["reply"]["title"])


def inbound_webhook(phone_number_id: str, data: Any) -> tuple[dict[str, Any], str]:
    """Validate the page's request and build Meta's webhook body; returns (body, wamid)."""
    if not isinstance(data, dict):
        raise BadRequest("expected a JSON object")
    sender = parse_e164(data.get("from"))
    if sender is None:
        raise BadRequest(f"from {NUMBER_HINT}")
    name = data.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > NAME_MAX):
        raise BadRequest(f"name must be a string of at most {NAME_MAX} characters")
    return webhooks.message(phone_number_id, sender, _content(data), name=name or None)


# --------------------------------------------------------------------------- HTTP


@dataclass(slots=True)
class Said:
    """A message the simulated person sent, kept so a reloaded page shows it again."""

    text: str
    at: float
    before: int  # how many sends the fake had accepted then: the bot's answers come after
    delivered: bool = False

    def view(self) -> dict[str, Any]:
        return {"from": "you", "text": self.text, "at": self.at, "failed": not self.delivered}


@dataclass
class Simulator:
    """Meta's side of the bot: the fake Graph API and the client that delivers webhooks.

    Like the phone in a person's hand, it also keeps what each number sent (the fake keeps
    what the bot sent), so the page can show the whole conversation after a reload.
    """

    fake: FakeGraph
    phone_number_id: str
    webhook_url: str
    secret: str
    client: httpx.AsyncClient | None = field(default=None, repr=False)
    said: dict[str, deque[Said]] = field(default_factory=dict, repr=False)

    def remember(self, number: str, text: str) -> Said:
        said = Said(text, time.time(), len(self.fake.sent))
        kept = self.said.setdefault(recipient_key(number), deque(maxlen=SENT_KEPT))
        kept.append(said)
        return said

    def conversation(self, number: str, templates: Registry | None) -> list[dict[str, Any]]:
        """Both sides of one number's chat, in the order they happened."""
        bot = [describe(m, templates) | {"from": "bot"} for m in self.fake.messages_for(number)]
        out: list[dict[str, Any]] = []
        i = 0
        for said in self.said.get(recipient_key(number), ()):
            while i < len(bot) and bot[i]["index"] < said.before:
                out.append(bot[i])
                i += 1
            out.append(said.view())
        return out + bot[i:]

    def http(self) -> httpx.AsyncClient:
        if self.client is None:  # requests before `before_serving` (Quart's test client)
            self.client = httpx.AsyncClient(timeout=30.0)
        return self.client

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.aclose()

    async def deliver(self, body: dict[str, Any]) -> int:
        """POST a signed webhook to the bot, exactly as Meta would; returns the HTTP status."""
        raw, headers = webhooks.signed(body, self.secret)
        headers["User-Agent"] = "facebookexternalua"
        response = await self.http().post(self.webhook_url, content=raw, headers=headers)
        return response.status_code


def _json(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status=status, content_type="application/json")


def _error(message: str, status: int = 400) -> Response:
    return _json({"error": message}, status)


def _add_api(bp: Blueprint, sim: Simulator) -> None:
    @bp.post("/simulator/api/send")
    async def send() -> Response:
        # Only JSON: a cross-site form cannot post it without a CORS preflight we never allow.
        if not request.is_json:
            return _error("expected Content-Type: application/json", 415)
        data = await request.get_json(silent=True)
        try:
            body, wamid = inbound_webhook(sim.phone_number_id, data)
        except BadRequest as exc:
            return _error(str(exc))
        said = sim.remember(data["from"], shown_as(data))
        try:
            status = await sim.deliver(body)
        except httpx.HTTPError as exc:
            log.warning("simulator could not reach %s: %r", sim.webhook_url, exc)
            return _error(f"could not reach the bot's webhook at {sim.webhook_url}", 502)
        said.delivered = status == 200
        return _json({"status": status, "wamid": wamid})

    @bp.get("/simulator/api/messages")
    async def messages() -> Response:
        to = parse_e164(request.args.get("to", ""))
        if to is None:
            return _error(f"to {NUMBER_HINT}")
        try:
            after = int(request.args.get("after", "-1"))
        except ValueError:
            return _error("after must be an integer")
        templates = _registry()
        return _json([describe(m, templates) for m in sim.fake.messages_for(to, after)])

    @bp.get("/simulator/api/conversation")
    async def conversation() -> Response:
        """What a reloaded page shows: both sides, and where to poll on from."""
        number = parse_e164(request.args.get("number", ""))
        if number is None:
            return _error(f"number {NUMBER_HINT}")
        shown = sim.conversation(number, _registry())
        after = max((m["index"] for m in shown if m["from"] == "bot"), default=-1)
        return _json({"messages": shown, "after": after})

    @bp.get(MEDIA_PATH + "<media_id>")
    async def media(media_id: str) -> Response:
        """A file the bot sent (say the data export), from what the fake Graph API received."""
        stored = sim.fake.media.get(media_id)
        if stored is None:
            return _error("no such file: the simulator forgets files when it restarts", 404)
        return _file(*stored)


def _registry() -> Registry | None:
    """The running bot's template registry (None before it started)."""
    return getattr(current_app.extensions.get("bot"), "templates", None)


def _file(content: bytes, mime: str, filename: str) -> Response:
    """Text opens in a tab of its own, sandboxed and never run; anything else is downloaded."""
    kind = mime.split(";")[0].strip().lower()
    name = "".join(c for c in filename if c.isalnum() or c in "._-").lstrip(".") or "file"
    if kind in INLINE_TYPES:
        response = Response(content, content_type=f"{kind}; charset=utf-8")
        response.headers["Content-Disposition"] = f'inline; filename="{name}"'
    else:
        response = Response(content, content_type="application/octet-stream")
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def _blueprint(sim: Simulator) -> Blueprint:
    bp = Blueprint(
        "simulator", __name__, static_folder=str(STATIC), static_url_path="/simulator/static"
    )

    @bp.get("/simulator")
    async def page() -> Response:
        return await bp.send_static_file("index.html")

    _add_api(bp, sim)

    @bp.after_request
    async def headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP)
        # Never keep chat text in a cache; revalidate the page so an upgrade shows at once.
        private = request.path.startswith("/simulator/api/")
        response.headers["Cache-Control"] = "no-store" if private else "no-cache"
        response.headers.pop("Expires", None)
        return response

    @bp.before_app_serving
    async def open_client() -> None:
        sim.http()

    @bp.after_app_serving
    async def close_client() -> None:
        await sim.close()

    return bp


def mount_simulator(app: Quart, settings: Settings) -> None:
    """Serve the chat page, its API and the fake Graph API from the bot's own app."""
    if not settings.app_secrets:
        raise SettingsError("WHATSAPP_APP_SECRET: the simulator needs one to sign webhooks")
    secret = settings.app_secrets[0].decode()
    webhook_url = own_url(settings) + "/webhook"
    fake = FakeGraph(
        phone_number_id=settings.phone_number_id,
        tokens=[settings.access_token],
        app_secret=secret,
        webhook_url=webhook_url,
        send_statuses=True,
    )
    sim = Simulator(fake, settings.phone_number_id, webhook_url, secret)
    app.register_blueprint(create_blueprint(fake), url_prefix="/simulator/graph")
    app.register_blueprint(_blueprint(sim))
    app.extensions["simulator"] = fake
