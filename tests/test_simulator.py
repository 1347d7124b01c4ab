"""The local WhatsApp simulator: API, page (real Chromium clicks) and terminal chat.

Everything goes the production way: the simulator signs Meta-shaped webhooks and POSTs them
to the bot's own /webhook over HTTP; the bot answers through its outbox into the fake Graph
API, which sends "sent"/"delivered" status webhooks back.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from quart import Quart
from sqlalchemy import text

from bot.app import Services, create_app
from bot.cli import main as cli_main
from bot.config import Settings
from bot.simulator.chat import run_chat
from bot.simulator.fake_graph import FakeGraph, SentMessage
from bot.simulator.routes import describe, own_url, parse_e164
from bot.whatsapp.messages import ListMessage, Recipient, Row, graph_body
from tests.conftest import APP_SECRET, make_settings, random_key, require
from tests.servers import free_port, free_socket, running

ALICE = "+447700900123"
MENU = ["My data", "Join", "Help"]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path("/tmp/simulator.png")
LIST_SCREENSHOT = Path("/tmp/simulator-list.png")
DESC = "Delete what we hold"
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Sim:
    """A bot in simulator mode, served on loopback, and a client for its simulator API."""

    url: str
    app: Quart
    http: httpx.AsyncClient

    @property
    def fake(self) -> FakeGraph:
        return self.app.extensions["simulator"]

    @property
    def services(self) -> Services:
        return self.app.extensions["bot"]

    async def send(self, payload: dict[str, Any]) -> httpx.Response:
        return await self.http.post("/simulator/api/send", json=payload)

    async def messages(self, after: int = -1, to: str = ALICE) -> list[dict[str, Any]]:
        response = await self.http.get("/simulator/api/messages", params={"to": to, "after": after})
        assert response.status_code == 200, response.text
        return response.json()

    async def wait_messages(self, after: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Poll like the page does until the bot sent something new."""
        async with asyncio.timeout(timeout):
            while True:
                found = await self.messages(after)
                if found:
                    return found
                await asyncio.sleep(0.05)

    async def sql(self, query: str, **params: Any) -> list[Any]:
        return await self.services.db.read(lambda c: c.execute(text(query), params).all())

    async def in_inbox(self, wamid: str) -> bool:
        """Did this exact message reach the bot through the signed webhook?"""
        key = self.services.keyring.blind_index("event", f"message:{wamid}")
        return bool(await self.sql("SELECT 1 FROM inbox WHERE event_key = :k", k=key))


def sim_settings(db_url: str, port: int) -> Settings:
    return make_settings(
        db_url,
        api_url="",
        BOT_SIMULATOR=True,
        WHATSAPP_ACCESS_TOKEN="",
        WHATSAPP_PHONE_NUMBER_ID="",
        BOT_PORT=port,
    )


@pytest.fixture
async def sim(sqlite_url: str) -> AsyncIterator[Sim]:
    sock = free_socket()  # bound first: the settings must name the port the bot serves on
    app = create_app(sim_settings(sqlite_url, sock.getsockname()[1]))
    async with running(app, sock) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        yield Sim(url=url, app=app, http=http)


# --------------------------------------------------------------------------- pure helpers


def test_parse_e164() -> None:
    assert parse_e164(ALICE) == ALICE
    assert parse_e164("+44 7700 900123") == ALICE  # what people type
    assert parse_e164("+6591234567") == "+6591234567"
    for bad in ["447700900123", "+1234", "hello", "", None, 447700900123, "+" + "1" * 40]:
        assert parse_e164(bad) is None, bad


def test_own_url_reaches_a_wildcard_listener_on_loopback(sqlite_url: str) -> None:
    assert own_url(sim_settings(sqlite_url, 8000)) == "http://127.0.0.1:8000"
    wildcard = sim_settings(sqlite_url, 8000).model_copy(update={"BOT_HOST": "0.0.0.0"})
    assert own_url(wildcard) == "http://127.0.0.1:8000"


def _sent(body: dict[str, Any]) -> dict[str, Any]:
    return describe(SentMessage("wamid.x", "447700900123", body, 7, 1.0))


def test_describe_list_template_document_and_unknown() -> None:
    listing = _sent(
        {
            "type": "interactive",
            "interactive": {
                "type": "list",
                "header": {"type": "text", "text": "Rights"},
                "body": {"text": "Pick one"},
                "footer": {"text": "GDPR"},
                "action": {
                    "button": "Choose",
                    "sections": [
                        {"title": "Data", "rows": [{"id": "r1", "title": "Copy"}]},
                        {"rows": [{"id": "r2", "title": "Erase", "description": "All of it"}]},
                    ],
                },
            },
        }
    )
    assert listing["kind"] == "list" and listing["index"] == 7
    assert (listing["text"], listing["header"], listing["footer"]) == ("Pick one", "Rights", "GDPR")
    assert listing["list"]["button"] == "Choose"
    rows = [(r["id"], r["title"], r["description"]) for r in listing["list"]["rows"]]
    assert rows == [("r1", "Copy", ""), ("r2", "Erase", "All of it")]

    template = _sent(
        {
            "type": "template",
            "template": {
                "name": "consent_reminder",
                "language": {"code": "en"},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ann"}]}],
            },
        }
    )
    assert template["kind"] == "template"
    assert template["text"] == "Template consent_reminder (en): Ann"

    document = _sent({"type": "document", "document": {"id": "1", "filename": "my-data.json"}})
    assert (document["kind"], document["text"]) == ("document", "my-data.json")

    other = _sent({"type": "sticker", "sticker": {"id": "1"}})
    assert (other["kind"], other["buttons"], other["list"]) == ("other", [], None)


# --------------------------------------------------------------------------- API


async def test_text_and_button_go_through_the_signed_webhook(sim: Sim) -> None:
    response = await sim.send({"from": ALICE, "name": "Alice", "text": "hello"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == 200
    assert await sim.in_inbox(response.json()["wamid"])

    (menu,) = await sim.wait_messages(-1)
    assert menu["kind"] == "buttons"
    assert "privacy assistant" in menu["text"]
    assert [b["title"] for b in menu["buttons"]] == MENU

    my_data = menu["buttons"][0]
    reply = {"type": "button_reply", "id": my_data["id"], "title": my_data["title"]}
    clicked = await sim.send({"from": ALICE, "reply": reply})
    assert clicked.json()["status"] == 200
    assert await sim.in_inbox(clicked.json()["wamid"])
    (second,) = await sim.wait_messages(menu["index"])
    assert second["index"] > menu["index"]
    assert await sim.messages(second["index"]) == []
    assert await sim.messages(-1, to="+6591234567") == []  # other numbers see nothing

    # Meta's status webhooks flow back: the outbound rows reach "delivered".
    async with asyncio.timeout(10):
        while True:
            rows = await sim.sql("SELECT status FROM messages WHERE direction = 'out'")
            if len(rows) == 2 and {r.status for r in rows} == {"delivered"}:
                break
            await asyncio.sleep(0.05)
    statuses = await sim.sql("SELECT count(*) FROM inbox WHERE kind = 'status'")
    assert statuses[0][0] >= 4  # sent + delivered for each reply
    sends = [r for r in sim.fake.requests if r.path.endswith("/messages")]
    assert all(r.headers["authorization"] == "Bearer simulator-token" for r in sends)


BAD_SENDS: list[tuple[Any, str]] = [
    ({"from": "447700900123", "text": "hi"}, "E.164"),
    ({"from": "+12", "text": "hi"}, "E.164"),
    ({"text": "hi"}, "E.164"),
    ({"from": ALICE, "text": "x" * 4097}, "4096"),
    ({"from": ALICE, "text": "   "}, "non-empty"),
    ({"from": ALICE}, "exactly one"),
    ({"from": ALICE, "text": "hi", "reply": {}}, "exactly one"),
    ({"from": ALICE, "reply": {"type": "button", "id": "a", "title": "A"}}, "reply must"),
    ({"from": ALICE, "reply": {"type": "list_reply", "id": "", "title": "A"}}, "reply.id"),
    ({"from": ALICE, "name": 5, "text": "hi"}, "name"),
    ([1, 2], "JSON object"),
]


async def test_bad_send_is_refused_with_a_clear_400(sim: Sim) -> None:
    for payload, needle in BAD_SENDS:
        response = await sim.http.post("/simulator/api/send", json=payload)
        assert response.status_code == 400, payload
        assert needle in response.json()["error"], payload
    assert await sim.sql("SELECT * FROM inbox") == []


async def test_api_refuses_non_json_and_bad_queries(sim: Sim) -> None:
    form = await sim.http.post("/simulator/api/send", data={"from": ALICE, "text": "hi"})
    assert form.status_code == 415  # a cross-site form cannot drive the simulator
    bad_to = await sim.http.get("/simulator/api/messages", params={"to": "alice"})
    assert bad_to.status_code == 400 and "E.164" in bad_to.json()["error"]
    bad_after = await sim.http.get("/simulator/api/messages", params={"to": ALICE, "after": "x"})
    assert bad_after.status_code == 400


async def test_page_and_assets_are_served_with_strict_headers(sim: Sim) -> None:
    page = await sim.http.get("/simulator")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    for marker in ['id="number"', 'id="text"', 'id="send"', 'id="messages"', "+447700900123"]:
        assert marker in html
    assert "<script>" not in html  # no inline script: the CSP allows only our own files
    assert "http://" not in html and "https://" not in html  # offline: no CDN, no fonts
    for asset in ["simulator.js", "simulator.css", "favicon.svg"]:
        response = await sim.http.get(f"/simulator/static/{asset}")
        assert response.status_code == 200, asset
    script = (await sim.http.get("/simulator/static/simulator.js")).text
    assert ".innerHTML" not in script and "insertAdjacentHTML" not in script
    api = await sim.http.get("/simulator/api/messages", params={"to": ALICE})
    assert api.headers["cache-control"] == "no-store"


async def test_simulator_is_absent_in_live_mode(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, api_url="http://127.0.0.1:9/v21.0")
    app = create_app(settings)
    assert "simulator" not in app.extensions
    async with running(app) as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/simulator")).status_code == 404
        assert (await http.post("/simulator/api/send", json={})).status_code == 404


# --------------------------------------------------------------------------- browser


async def _bot_sends_a_list(sim: Sim) -> None:
    """Play the bot: a list message through the fake Graph API, as the outbox would send it."""
    listing = ListMessage(
        body="Which right do you want to use?",
        button="Your rights",
        sections=(("Your data", (Row("rights.copy", "Copy"), Row("rights.erase", "Erase", DESC))),),
        header="Privacy",
        footer="You can also send STOP",
    )
    response = await sim.http.post(
        f"/simulator/graph/v21.0/{sim.fake.phone_number_id}/messages",
        json=graph_body(listing, Recipient(wa_id=ALICE.lstrip("+"))),
        headers={"Authorization": "Bearer simulator-token"},
    )
    assert response.status_code == 200, response.text


async def test_browser_chat_with_real_clicks(sim: Sim) -> None:
    require(CHROMIUM.exists(), "Chromium not installed (apt-get install chromium)")
    from playwright.async_api import async_playwright

    problems: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 900, "height": 760})
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on(
                "console",
                lambda msg: problems.append(msg.text) if msg.type == "error" else None,
            )
            await page.goto(sim.url + "/simulator")
            assert await page.input_value("#number") == ALICE
            await page.fill("#number", "07700 900123")
            await page.press("#number", "Tab")  # `change` switches the conversation
            assert "country code" in await page.text_content("#error")
            await page.fill("#number", "+44 7700 900123")
            await page.press("#number", "Tab")
            assert await page.locator("#error").is_hidden()
            assert await page.input_value("#number") == ALICE

            await page.fill("#text", "hello")
            async with page.expect_response("**/simulator/api/send") as typed:
                await page.click("#send")
            assert await sim.in_inbox((await (await typed.value).json())["wamid"])

            first = page.locator(".bot-message").first
            await first.locator("button.reply-button[data-id]").first.wait_for(timeout=10_000)
            titles = await first.locator("button.reply-button").all_text_contents()
            assert titles == MENU
            sent_before = len(sim.fake.sent)

            my_data = first.locator('button.reply-button[data-id="menu.my_data"]')
            async with page.expect_response("**/simulator/api/send") as tapped:
                await my_data.click()
            tapped_wamid = (await (await tapped.value).json())["wamid"]
            await page.locator(".bot-message").nth(1).wait_for(timeout=10_000)

            users = await page.locator(".user-message .text").all_text_contents()
            assert users == ["hello", "My data"]

            await _bot_sends_a_list(sim)
            await page.locator("button.list-open").click()
            row = page.locator('button.list-row[data-id="rights.erase"]')
            await row.wait_for()
            await page.screenshot(path=str(LIST_SCREENSHOT))
            async with page.expect_request("**/simulator/api/send") as chosen:
                await row.click()
            assert (await chosen.value).post_data_json["reply"] == {
                "type": "list_reply",
                "id": "rights.erase",
                "title": "Erase",
                "description": "Delete what we hold",
            }
            await page.locator(".bot-message").nth(3).wait_for(timeout=10_000)
            assert await row.is_hidden()  # the list closes once a row is chosen
            assert await page.locator("#error").is_hidden()
            await page.screenshot(path=str(SCREENSHOT))
        finally:
            await browser.close()

    assert problems == []
    assert await sim.in_inbox(tapped_wamid)  # the click became a signed button_reply webhook
    assert len(sim.fake.sent) > sent_before  # and the bot answered it through the Graph API
    inbound = await sim.sql("SELECT count(*) FROM messages WHERE direction = 'in'")
    assert inbound[0][0] == 3


# --------------------------------------------------------------------------- terminal chat


def _chat_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A configuration for `python -m bot chat` in a subprocess, from the environment only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "BOT_"))}
    env.update(
        WHATSAPP_APP_SECRET=APP_SECRET,
        WHATSAPP_VERIFY_TOKEN="verify-me",
        BOT_MASTER_KEYS=f"k1:{random_key()}",
        BOT_INDEX_KEY=random_key(),
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}",
        PYTHONPATH=str(REPO),
        **extra,
    )
    return env


async def _chat(tmp_path: Path, stdin: str, *args: str, **env: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "chat",
        "--as",
        ALICE,
        *args,
        cwd=tmp_path,  # no .env from the checkout
        env=_chat_env(tmp_path, **env),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _assert_menu_then_tap(out: str, tapped: str) -> None:
    assert "you: hello" in out
    assert out.count("bot: Hi! I am the privacy assistant") == 2, out
    for n, title in enumerate(MENU, 1):
        assert f"[{n}] {title}" in out
    assert f"you: [{tapped}]" in out


async def test_terminal_chat_against_a_running_bot(sim: Sim, tmp_path: Path) -> None:
    code, out, err = await _chat(tmp_path, "hello\n1\n/quit\n", "--url", sim.url)
    assert code == 0, err
    _assert_menu_then_tap(out, "My data")
    assert len(sim.fake.messages_for(ALICE)) == 2
    assert await sim.sql("SELECT count(*) FROM messages WHERE direction = 'in'") == [(2,)]


async def test_terminal_chat_starts_its_own_bot(tmp_path: Path) -> None:
    """Nothing listens at BOT_HOST:BOT_PORT: the chat runs a simulator bot in-process."""
    code, out, err = await _chat(tmp_path, "hello\n3\n", BOT_PORT=str(free_port()))
    assert code == 0, err  # end of input is a normal exit
    assert "running inside this chat" in err
    _assert_menu_then_tap(out, "Help")


def test_terminal_chat_with_nothing_at_url_fails(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert run_chat(sim_settings(sqlite_url, 8000), ALICE, base_url=url) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"error: nothing answers at {url}; is the bot running?"


def test_terminal_chat_rejects_a_bad_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in _chat_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    assert cli_main(["chat", "--as", "07700 900123"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "E.164" in err[0]
