"""`python -m bot chat --as +E164`: chat with the bot in a terminal, as a WhatsApp user.

It is a client of the simulator API (`/simulator/api/...`), so every line goes the real
way: a signed webhook into `/webhook`, a turn, the outbox, the Graph client, the fake
Graph API. With no bot answering at the default address it starts one in this process,
in simulator mode, on a free loopback port. Stdin may be a pipe, which makes it usable
from scripts and tests: `printf 'hello\\n1\\n/quit\\n' | python -m bot chat --as +44...`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import httpx

from bot.config import Settings
from bot.errors import BotError
from bot.simulator.routes import TEXT_MAX, own_url, parse_e164

REPLY_WAIT = 3.0  # how long to wait for the bot's answer before the next prompt
QUIET = 0.4  # an answer is complete once nothing new came for this long
POLL = 0.15
STARTUP_TIMEOUT = 30.0
HELP = "Type a message and press Enter, a number to tap that button, /quit to leave."


class ChatError(BotError):
    """Something stops the chat; the message is the one line shown to the user."""


@dataclass(frozen=True)
class Option:
    """A button or list row the user can tap by typing its number."""

    type: str  # "button_reply" or "list_reply"
    id: str
    title: str
    description: str = ""

    def reply(self) -> dict[str, str]:
        reply = {"type": self.type, "id": self.id, "title": self.title}
        if self.description:
            reply["description"] = self.description
        return reply


@dataclass
class SimulatorApi:
    """The two calls the chat needs, against one bot."""

    http: httpx.AsyncClient
    base_url: str
    number: str

    async def messages(self, after: int) -> list[dict[str, Any]]:
        response = await self.http.get(
            self.base_url + "/simulator/api/messages", params={"to": self.number, "after": after}
        )
        if response.status_code == 404:
            raise ChatError(
                f"the bot at {self.base_url} does not serve the simulator "
                "(it runs with a WhatsApp access token; set BOT_SIMULATOR=true to enable it)"
            )
        response.raise_for_status()
        return list(response.json())

    async def send(self, payload: dict[str, Any]) -> None:
        response = await self.http.post(
            self.base_url + "/simulator/api/send", json={"from": self.number, **payload}
        )
        data = response.json() if response.content else {}
        if response.status_code != 200:
            raise ChatError(data.get("error") or f"send failed: HTTP {response.status_code}")
        if data.get("status") != 200:
            print(f"(the bot answered the webhook with HTTP {data.get('status')})", flush=True)


# --------------------------------------------------------------------------- printing


def _indent(text: str, prefix: str = "     ") -> str:
    return "\n".join(prefix + line for line in text.splitlines() or [""])


def format_message(message: dict[str, Any], options: list[Option]) -> str:
    """One bot message as terminal lines; its buttons or list rows are numbered from 1."""
    lines = []
    if message.get("header"):
        lines.append(f"*{message['header']}*")
    lines.append(message.get("text") or "")
    if message.get("footer"):
        lines.append(f"({message['footer']})")
    first, *rest = "\n".join(lines).splitlines() or [""]
    out = ["bot: " + first] + [_indent(line) for line in rest]
    listing = message.get("list")
    if listing:
        out.append(_indent(f"[{listing.get('button', 'Options')}]"))
    for n, option in enumerate(options, 1):
        extra = f" - {option.description}" if option.description else ""
        out.append(_indent(f"[{n}] {option.title}{extra}"))
    return "\n".join(out)


def options_of(message: dict[str, Any]) -> list[Option]:
    buttons = [Option("button_reply", b["id"], b["title"]) for b in message.get("buttons") or []]
    listing = message.get("list") or {}
    rows = [
        Option("list_reply", r["id"], r["title"], r.get("description") or "")
        for r in listing.get("rows") or []
    ]
    return buttons + rows


# --------------------------------------------------------------------------- input


def stdin_lines(stream: TextIO) -> asyncio.Queue[str | None]:
    """Lines from `stream` as they come; None at end of input.

    A daemon thread, not the loop's executor: a read blocked on a terminal must not keep
    the process alive after /quit or Ctrl-C (asyncio.run waits for executor threads).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def put(item: str | None) -> bool:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: the chat is over
            return False
        return True

    def pump() -> None:
        for line in iter(stream.readline, ""):
            if not put(line):
                return
        put(None)

    threading.Thread(target=pump, name="chat-stdin", daemon=True).start()
    return queue


# --------------------------------------------------------------------------- the chat


@dataclass
class Chat:
    api: SimulatorApi
    interactive: bool
    after: int = -1
    options: list[Option] = field(default_factory=list)
    received: int = 0
    last_received: float = 0.0
    failure: BaseException | None = None
    prompting: bool = False

    async def run(self, lines: asyncio.Queue[str | None]) -> int:
        """Read, send, show answers until /quit or end of input."""
        earlier = await self.api.messages(-1)
        self.after = earlier[-1]["index"] if earlier else -1
        print(f"Chatting with the bot at {self.api.base_url} as {self.api.number}.")
        print(HELP, flush=True)
        poller = asyncio.create_task(self._poll_forever())
        try:
            return await self._read_loop(lines)
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller

    async def _read_loop(self, lines: asyncio.Queue[str | None]) -> int:
        while True:
            if self.interactive:
                print("you: ", end="", flush=True)
                self.prompting = True
            line = await lines.get()
            self.prompting = False
            if self.failure is not None:
                raise ChatError(f"lost the bot at {self.api.base_url}: {self.failure}")
            if line is None or line.strip() == "/quit":
                if line is None and self.interactive:
                    print()
                return 0
            await self._handle(line.rstrip("\r\n"))

    async def _handle(self, line: str) -> None:
        if not line.strip():
            return
        if line.strip() == "/help":
            print(HELP, flush=True)
            return
        option = self._option(line.strip())
        if option is not None:
            print(f"you: [{option.title}]" if not self.interactive else f"     -> {option.title}")
            payload: dict[str, Any] = {"reply": option.reply()}
        elif len(line) > TEXT_MAX:
            print(f"(not sent: WhatsApp messages are at most {TEXT_MAX} characters)", flush=True)
            return
        else:
            if not self.interactive:
                print(f"you: {line}")
            payload = {"text": line}
        sys.stdout.flush()
        before = self.received
        await self.api.send(payload)
        await self._wait_for_answer(before)

    def _option(self, text: str) -> Option | None:
        if text.isdigit() and 1 <= int(text) <= len(self.options):
            return self.options[int(text) - 1]
        return None

    async def _wait_for_answer(self, before: int) -> None:
        """Give the bot up to REPLY_WAIT seconds, and return once its answer has settled."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REPLY_WAIT
        while loop.time() < deadline and self.failure is None:
            if self.received > before and loop.time() - self.last_received >= QUIET:
                return
            await asyncio.sleep(POLL / 2)

    async def _poll_forever(self) -> None:
        """Print whatever the bot sends, also while the user is typing."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                for message in await self.api.messages(self.after):
                    self._show(message)
                    self.after = max(self.after, message["index"])
                    self.received += 1
                    self.last_received = loop.time()
                await asyncio.sleep(POLL)
        except (httpx.HTTPError, ChatError, ValueError) as exc:
            self.failure = exc

    def _show(self, message: dict[str, Any]) -> None:
        options = options_of(message)
        if options:
            self.options = options
        if self.prompting:  # a message while the user is typing: start on a fresh line
            print()
        print(format_message(message, options), flush=True)
        if self.prompting:
            print("you: ", end="", flush=True)


# --------------------------------------------------------------------------- a bot of our own


async def _answers(http: httpx.AsyncClient, base_url: str, number: str) -> bool:
    """Does anything listen at `base_url`? (What it is is checked by the first real call.)"""
    try:
        await http.get(
            base_url + "/simulator/api/messages", params={"to": number, "after": -1}, timeout=3.0
        )
    except httpx.TransportError:
        return False
    return True


async def _wait_ready(http: httpx.AsyncClient, url: str, server: asyncio.Task[None]) -> None:
    """Wait until the in-process bot has started (or failed to)."""
    probe = asyncio.create_task(http.get(url + "/healthz", timeout=STARTUP_TIMEOUT))
    done, _ = await asyncio.wait(
        {probe, server}, timeout=STARTUP_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
    )
    if probe not in done:
        probe.cancel()
        if server in done:
            server.result()  # raises the start-up error
        raise ChatError("the in-process bot did not start in time")
    if probe.result().status_code != 200:
        raise ChatError(f"the in-process bot is not healthy: HTTP {probe.result().status_code}")


@contextlib.asynccontextmanager
async def local_bot(settings: Settings, http: httpx.AsyncClient) -> AsyncIterator[str]:
    """Serve the bot, simulator on, in this event loop on a free loopback port."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    from bot.app import create_app

    sock = socket.create_server(("127.0.0.1", 0), backlog=128)
    port = sock.getsockname()[1]
    local = settings.model_copy(
        update={
            "BOT_SIMULATOR": True,
            "BOT_HOST": "127.0.0.1",
            "BOT_PORT": port,
            "WHATSAPP_API_URL": "",
        }
    )
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns the socket from here
    config.accesslog = None
    config.loglevel = "WARNING"
    config.graceful_timeout = 5
    stop = asyncio.Event()
    server = asyncio.create_task(serve(create_app(local), config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_ready(http, url, server)
        yield url
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server, 15)


async def _chat(settings: Settings, number: str, base_url: str | None) -> int:
    url = (base_url or own_url(settings)).rstrip("/")
    async with httpx.AsyncClient(timeout=30.0) as http:
        if await _answers(http, url, number):
            return await _converse(SimulatorApi(http, url, number))
        if base_url:
            raise ChatError(f"nothing answers at {url}; is the bot running?")
        if settings.WHATSAPP_ACCESS_TOKEN and settings.BOT_SIMULATOR is not True:
            raise ChatError(
                f"no bot answers at {url}, and this is a live configuration "
                "(WHATSAPP_ACCESS_TOKEN is set): start the bot with BOT_SIMULATOR=true first"
            )
        async with local_bot(settings, http) as local_url:
            print(
                f"No bot answered at {url}, so one is running inside this chat "
                f"({local_url}, simulator mode, the configured database). "
                "It stops when you leave.",
                file=sys.stderr,
                flush=True,
            )
            return await _converse(SimulatorApi(http, local_url, number))


async def _converse(api: SimulatorApi) -> int:
    chat = Chat(api, interactive=sys.stdin.isatty())
    return await chat.run(stdin_lines(sys.stdin))


def run_chat(settings: Settings, as_number: str, base_url: str | None = None) -> int:
    """Entry point of `python -m bot chat`; returns the exit code."""
    number = parse_e164(as_number)
    if number is None:
        print(
            f"error: --as {as_number!r} is not a phone number in E.164 format "
            "(+, country code, number, like +447700900123)",
            file=sys.stderr,
        )
        return 2
    try:
        return asyncio.run(_chat(settings, number, base_url))
    except ChatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"error: talking to the bot failed: {exc!r}", file=sys.stderr)
        return 1
