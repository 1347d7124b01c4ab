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
from bot.crypto import Index
from bot.policy.business import TemplateSend, queue_template
from bot.policy.templates import Registry, load_templates
from bot.simulator.chat import format_message, options_of, run_chat
from bot.simulator.fake_graph import FakeGraph, SentMessage
from bot.simulator.routes import describe, own_url, parse_e164
from tests.conftest import APP_SECRET, make_settings, random_key, require
from tests.servers import free_port, free_socket, running

ALICE = "+447700900123"
# The main menu (flows/menu.yaml) is a list; the English catalog titles its rows.
MENU_BUTTON = "Options"
MENU_IDS = [
    "menu.join",
    "menu.my_data",
    "menu.correct",
    "menu.erase",
    "menu.residence",
    "menu.language",
    "menu.agent",
    "menu.stop",
]
MENU = [
    "Join our updates",
    "My data",
    "Correct my data",
    "Delete my data",
    "Where I live",
    "Language",
    "Talk to a person",
    "Stop messages",
]
MY_DATA_HINT = "See what we hold about you and get a copy"
SUMMARY = "Here is everything we hold about you:"
# After the summary, flows/my_data.yaml asks what next, with three buttons.
NEXT = "What would you like to do next?"
NEXT_IDS = ["my_data.export", "my_data.erase", "menu.back"]
NEXT_BUTTONS = ["Get a copy", "Delete my data", "Menu"]
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
SCREENSHOT = Path("/tmp/simulator-flows.png")
LIST_SCREENSHOT = Path("/tmp/simulator-list.png")
REPO = Path(__file__).resolve().parents[1]
PRIVACY_URL = "https://example.com/privacy"  # BOT_PRIVACY_URL's default, in every notice
OFFER = {"name": "Ann", "offer": "10% off", "until": "Friday"}
# promo_offer in flows/templates.yaml, as the person reads it.
OFFER_TEXT = (
    "Hi Ann, good news: 10% off is waiting for you until Friday. "
    "Questions? Just reply to this message."
)
OFFER_FOOTER = "Reply STOP to unsubscribe."


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

    async def wait_messages(
        self, after: int, count: int = 1, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Poll like the page does until the bot sent `count` new messages (or more)."""
        async with asyncio.timeout(timeout):
            while True:
                found = await self.messages(after)
                if len(found) >= count:
                    return found
                await asyncio.sleep(0.05)

    async def sql(self, query: str, **params: Any) -> list[Any]:
        return await self.services.db.read(lambda c: c.execute(text(query), params).all())

    async def queue_offer(self) -> None:
        """The business sends the approved promo_offer template, as `python -m bot send` does."""
        s = self.services
        offer = TemplateSend(ALICE, "promo_offer", "marketing", OFFER)
        await queue_template(s.db, s.people, s.templates, offer, tier=s.settings.messaging_tier)

    async def in_inbox(self, wamid: str) -> bool:
        """Did this exact message reach the bot through the signed webhook?"""
        key = self.services.keyring.blind_index(Index.EVENT, f"message:{wamid}")
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


def _registry() -> Registry:
    return load_templates(REPO / "flows" / "templates.yaml")


def _template(name: str, code: str, parameters: list[dict[str, str]]) -> dict[str, Any]:
    components = [{"type": "body", "parameters": parameters}]
    return {"type": "template", "template": {"name": name, "language": {"code": code}} | {
        "components": components
    }}  # fmt: skip


def test_describe_shows_a_template_as_its_approved_text_and_footer() -> None:
    registry = _registry()
    sent = registry.message("promo_offer", "en", OFFER).content()  # what the outbox sends
    shown = describe(SentMessage("wamid.x", "447700900123", sent, 3, 1.0), registry)
    assert shown["kind"] == "template"
    assert (shown["text"], shown["footer"]) == (OFFER_TEXT, OFFER_FOOTER)

    # Meta's language code (pt_BR) is mapped back to the registry's language.
    portuguese = registry.message("promo_offer", "pt", OFFER).content()
    shown = describe(SentMessage("wamid.y", "447700900123", portuguese, 4, 1.0), registry)
    assert shown["text"] == registry.render("promo_offer", "pt", OFFER)
    assert shown["footer"] == "Responda SAIR para não receber mais ofertas."

    # Positional parameters are filled in the registry's order; no footer, none shown.
    positional = [{"type": "text", "text": v} for v in ("Ann", "A-17", "shipped")]
    order = describe(
        SentMessage("w", "4", _template("order_update", "en", positional), 5, 1.0), registry
    )
    assert order["text"] == registry.render(
        "order_update", "en", {"name": "Ann", "order": "A-17", "status": "shipped"}
    )
    assert order["footer"] is None

    # What the registry does not know is still shown, by name and parameters.
    unknown = _template("consent_reminder", "en", [{"type": "text", "text": "Ann"}])
    shown = describe(SentMessage("w", "4", unknown, 6, 1.0), registry)
    assert shown["text"] == "Template consent_reminder (en): Ann"
    missing = _template(
        "promo_offer", "en", [{"type": "text", "parameter_name": "name", "text": "A"}]
    )
    assert describe(SentMessage("w", "4", missing, 7, 1.0), registry)["text"] == (
        "Template promo_offer (en): A"
    )


def test_describe_links_a_document_to_the_simulator_copy() -> None:
    document = _sent({"type": "document", "document": {"id": "1234", "filename": "my-data.json"}})
    assert document["url"] == "/simulator/api/media/1234"
    odd = _sent({"type": "document", "document": {"id": "../x", "filename": "a"}})
    assert odd["url"] is None


# --------------------------------------------------------------------------- API


def _assert_main_menu(message: dict[str, Any]) -> None:
    assert message["kind"] == "list", message
    assert "privacy assistant" in message["text"]
    assert message["buttons"] == []
    assert message["list"]["button"] == MENU_BUTTON
    rows = message["list"]["rows"]
    assert [(r["id"], r["title"]) for r in rows] == list(zip(MENU_IDS, MENU, strict=True))
    assert all(r["description"] for r in rows)  # every row explains itself


def _assert_my_data(summary: dict[str, Any], next_step: dict[str, Any]) -> None:
    assert summary["kind"] == "text"
    assert summary["text"].startswith(SUMMARY)
    assert (summary["buttons"], summary["list"]) == ([], None)
    assert next_step["kind"] == "buttons"
    assert next_step["text"] == NEXT
    buttons = [(b["id"], b["title"]) for b in next_step["buttons"]]
    assert buttons == list(zip(NEXT_IDS, NEXT_BUTTONS, strict=True))


async def test_text_list_row_and_button_go_through_the_signed_webhook(sim: Sim) -> None:
    response = await sim.send({"from": ALICE, "name": "Alice", "text": "hello"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == 200
    assert await sim.in_inbox(response.json()["wamid"])

    (menu,) = await sim.wait_messages(-1)
    _assert_main_menu(menu)

    # Tap the "My data" row of the menu list: a list_reply, as WhatsApp sends it.
    row = menu["list"]["rows"][MENU_IDS.index("menu.my_data")]
    chosen = {"type": "list_reply", "id": row["id"], "title": row["title"]}
    picked = await sim.send({"from": ALICE, "reply": chosen | {"description": row["description"]}})
    assert picked.json()["status"] == 200
    assert await sim.in_inbox(picked.json()["wamid"])
    summary, next_step = await sim.wait_messages(menu["index"], count=2)
    assert menu["index"] < summary["index"] < next_step["index"]
    _assert_my_data(summary, next_step)

    # Tap the "Menu" button under it: a button_reply, and the menu comes back.
    back = next_step["buttons"][NEXT_IDS.index("menu.back")]
    reply = {"type": "button_reply", "id": back["id"], "title": back["title"]}
    clicked = await sim.send({"from": ALICE, "reply": reply})
    assert clicked.json()["status"] == 200
    assert await sim.in_inbox(clicked.json()["wamid"])
    (again,) = await sim.wait_messages(next_step["index"])
    _assert_main_menu(again)
    assert await sim.messages(again["index"]) == []
    assert await sim.messages(-1, to="+6591234567") == []  # other numbers see nothing

    # Meta's status webhooks flow back: the outbound rows reach "delivered".
    async with asyncio.timeout(10):
        while True:
            rows = await sim.sql("SELECT status FROM messages WHERE direction = 'out'")
            if len(rows) == 4 and {r.status for r in rows} == {"delivered"}:
                break
            await asyncio.sleep(0.05)
    statuses = await sim.sql("SELECT count(*) FROM inbox WHERE kind = 'status'")
    assert statuses[0][0] >= 8  # sent + delivered for each reply
    sends = [r for r in sim.fake.requests if r.path.endswith("/messages")]
    assert len([r for r in sends if r.json.get("status") != "read"]) == 4  # not read receipts
    assert all(r.headers["authorization"] == "Bearer simulator-token" for r in sends)


async def test_join_keyword_asks_for_consent_with_yes_and_no(sim: Sim) -> None:
    response = await sim.send({"from": ALICE, "text": "JOIN"})
    assert response.json()["status"] == 200
    notice, question = await sim.wait_messages(-1, count=2)
    assert notice["kind"] == "text" and "Before you join:" in notice["text"]
    assert question["kind"] == "buttons"
    buttons = [(b["id"], b["title"]) for b in question["buttons"]]
    assert buttons == [("optin.yes", "Yes"), ("optin.no", "No")]


async def _export(sim: Sim) -> dict[str, Any]:
    """MY DATA, then "Get a copy": the bot sends the JSON copy as a document."""
    await sim.send({"from": ALICE, "text": "MY DATA"})
    _, next_step = await sim.wait_messages(-1, count=2)
    reply = {"type": "button_reply", "id": "my_data.export", "title": "Get a copy"}
    await sim.send({"from": ALICE, "reply": reply})
    (document,) = await sim.wait_messages(next_step["index"])
    return document


async def test_an_exported_document_opens_from_the_simulator(sim: Sim) -> None:
    document = await _export(sim)
    assert (document["kind"], document["text"]) == ("document", "my-data.json")
    response = await sim.http.get(document["url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.headers["content-disposition"] == 'inline; filename="my-data.json"'
    assert "sandbox" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    assert "controller" in response.json()
    # Exactly the bytes the bot uploaded to the (fake) Graph API.
    (uploaded,) = sim.fake.media.values()
    assert response.content == uploaded[0]
    missing = await sim.http.get("/simulator/api/media/1")
    assert missing.status_code == 404


async def test_the_conversation_keeps_both_sides_in_order(sim: Sim) -> None:
    await sim.send({"from": ALICE, "text": "hello"})
    (menu,) = await sim.wait_messages(-1)
    await sim.send({"from": "+44 7700 900123", "text": "JOIN"})  # spelled another way
    notice, question = await sim.wait_messages(menu["index"], count=2)
    reply = {"type": "button_reply", "id": "optin.no", "title": "No"}
    await sim.send({"from": ALICE, "reply": reply})
    (after_no,) = await sim.wait_messages(question["index"])
    response = await sim.http.get("/simulator/api/conversation", params={"number": ALICE})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    data = response.json()
    shown = [(m["from"], m.get("index"), m["text"]) for m in data["messages"]]
    assert shown == [
        ("you", None, "hello"),
        ("bot", menu["index"], menu["text"]),
        ("you", None, "JOIN"),
        ("bot", notice["index"], notice["text"]),
        ("bot", question["index"], question["text"]),
        ("you", None, "No"),
        ("bot", after_no["index"], after_no["text"]),
    ]
    assert data["after"] == after_no["index"]
    assert not any(m.get("failed") for m in data["messages"])
    other = await sim.http.get("/simulator/api/conversation", params={"number": "+6591234567"})
    assert other.json() == {"messages": [], "after": -1}
    bad = await sim.http.get("/simulator/api/conversation", params={"number": "alice"})
    assert bad.status_code == 400 and "E.164" in bad.json()["error"]


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

            # The bot's first answer is the main menu: a list behind an "Options" button.
            bot = page.locator(".bot-message")
            menu = bot.first
            opener = menu.locator("button.list-open")
            await opener.wait_for(timeout=10_000)
            assert await menu.get_attribute("data-kind") == "list"
            assert (await opener.text_content() or "").endswith(MENU_BUTTON)
            assert await menu.locator("button.reply-button").count() == 0
            row = menu.locator('button.list-row[data-id="menu.my_data"]')
            assert await row.is_hidden()  # closed until the list button is tapped
            await opener.click()
            await row.wait_for()
            assert await opener.get_attribute("aria-expanded") == "true"
            assert await menu.locator("button.list-row .row-title").all_text_contents() == MENU
            ids = await menu.locator("button.list-row").evaluate_all(
                "rows => rows.map(r => r.dataset.id)"
            )
            assert ids == MENU_IDS
            await page.screenshot(path=str(LIST_SCREENSHOT))
            sent_before = len(sim.fake.sent)

            async with page.expect_response("**/simulator/api/send") as picked:
                await row.click()
            assert (await picked.value).request.post_data_json == {
                "from": ALICE,
                "reply": {
                    "type": "list_reply",
                    "id": "menu.my_data",
                    "title": "My data",
                    "description": MY_DATA_HINT,
                },
            }
            picked_wamid = (await (await picked.value).json())["wamid"]
            assert await row.is_hidden()  # the list closes once a row is chosen

            # "My data" answers twice: the summary, then what next, with reply buttons.
            await bot.nth(2).wait_for(timeout=10_000)
            summary, next_step = bot.nth(1), bot.nth(2)
            assert await summary.get_attribute("data-kind") == "text"
            assert (await summary.locator(".text").text_content() or "").startswith(SUMMARY)
            assert await next_step.locator(".text").text_content() == NEXT
            buttons = next_step.locator("button.reply-button")
            assert await buttons.all_text_contents() == NEXT_BUTTONS
            assert await buttons.evaluate_all("bs => bs.map(b => b.dataset.id)") == NEXT_IDS

            back = next_step.locator('button.reply-button[data-id="menu.back"]')
            async with page.expect_response("**/simulator/api/send") as tapped:
                await back.click()
            assert (await tapped.value).request.post_data_json == {
                "from": ALICE,
                "reply": {"type": "button_reply", "id": "menu.back", "title": "Menu"},
            }
            tapped_wamid = (await (await tapped.value).json())["wamid"]

            # The menu comes back, as a fresh list.
            again = bot.nth(3)
            await again.locator("button.list-open").wait_for(timeout=10_000)
            assert await again.get_attribute("data-kind") == "list"
            assert await bot.count() == 4

            users = await page.locator(".user-message .text").all_text_contents()
            assert users == ["hello", "My data", "Menu"]
            assert await page.locator(".user-message .failed").count() == 0
            assert await page.locator("#error").is_hidden()
            await page.screenshot(path=str(SCREENSHOT))
        finally:
            await browser.close()

    assert problems == []
    # The row and the button became signed list_reply / button_reply webhooks...
    assert await sim.in_inbox(picked_wamid)
    assert await sim.in_inbox(tapped_wamid)
    # ...and the bot answered them through the Graph API: summary, what next, menu.
    assert len(sim.fake.sent) == sent_before + 3
    inbound = await sim.sql("SELECT count(*) FROM messages WHERE direction = 'in'")
    assert inbound[0][0] == 3


@pytest.fixture
async def page(sim: Sim) -> AsyncIterator[Any]:
    """The chat page in real Chromium; no script error or console error may happen on it."""
    require(CHROMIUM.exists(), "Chromium not installed (apt-get install chromium)")
    from playwright.async_api import async_playwright

    problems: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = await browser.new_page(viewport={"width": 900, "height": 760})
            tab.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            tab.on(
                "console",
                lambda msg: problems.append(msg.text) if msg.type == "error" else None,
            )
            await tab.goto(sim.url + "/simulator")
            yield tab
        finally:
            await browser.close()
    assert problems == []


async def _type(page: Any, text: str) -> None:
    await page.fill("#text", text)
    async with page.expect_response("**/simulator/api/send") as sent:
        await page.click("#send")
    assert (await (await sent.value).json())["status"] == 200


async def _tap(page: Any, message: Any, button_id: str) -> None:
    async with page.expect_response("**/simulator/api/send") as sent:
        await message.locator(f'button.reply-button[data-id="{button_id}"]').click()
    assert (await (await sent.value).json())["status"] == 200


async def _browser_export(page: Any) -> Any:
    """MY DATA, then "Get a copy"; returns the document's message row."""
    bot = page.locator(".bot-message")
    await _type(page, "MY DATA")
    next_step = page.locator(".bot-message", has=page.locator('[data-id="my_data.export"]'))
    await next_step.wait_for(timeout=10_000)
    await _tap(page, next_step, "my_data.export")
    document = bot.and_(page.locator('[data-kind="document"]'))
    await document.wait_for(timeout=10_000)
    return document


async def test_browser_opens_an_exported_document(page: Any) -> None:
    document = await _browser_export(page)
    opener = document.locator("a.document-link")
    assert await opener.text_content() == "my-data.json"
    assert await opener.get_attribute("target") == "_blank"
    assert await opener.get_attribute("rel") == "noopener noreferrer"
    async with page.context.expect_page() as opened:
        await opener.click()
    view = await opened.value
    await view.wait_for_load_state()
    shown = await view.locator("body").text_content() or ""
    assert '"controller"' in shown and '"messages"' in shown


async def test_browser_shows_a_template_as_its_approved_text(sim: Sim, page: Any) -> None:
    await _type(page, "JOIN")  # the notice, then its question
    question = page.locator(".bot-message", has=page.locator('[data-id="optin.yes"]'))
    await question.wait_for(timeout=10_000)
    await _tap(page, question, "optin.yes")  # marketing templates need consent
    await page.locator(".bot-message").nth(2).wait_for(timeout=10_000)
    await sim.queue_offer()
    template = page.locator('.bot-message[data-kind="template"]')
    await template.wait_for(timeout=10_000)
    assert await template.locator(".text").text_content() == OFFER_TEXT
    assert await template.locator(".footer").text_content() == OFFER_FOOTER


async def test_browser_keeps_your_messages_after_a_reload(page: Any) -> None:
    bot = page.locator(".bot-message")
    await _type(page, "hello")
    menu = bot.first
    await menu.locator("button.list-open").wait_for(timeout=10_000)
    await menu.locator("button.list-open").click()
    async with page.expect_response("**/simulator/api/send"):
        await menu.locator('button.list-row[data-id="menu.join"]').click()
    await bot.nth(2).wait_for(timeout=10_000)
    order = "ms => ms.map(m => (m.classList.contains('user-message') ? 'you: ' : 'bot: ') + "
    order += "m.querySelector('.text').textContent)"
    rows = page.locator(".user-message, .bot-message")
    before = await rows.evaluate_all(order)
    assert [r for r in before if r.startswith("you: ")] == ["you: hello", "you: Join our updates"]

    await page.reload()
    await bot.nth(2).wait_for(timeout=10_000)  # the menu, the notice and its question
    assert await rows.evaluate_all(order) == before
    assert await page.locator(".user-message .failed").count() == 0
    # The reloaded chat goes on: buttons still answer, nothing is shown twice.
    await _tap(page, bot.nth(2), "optin.no")
    await bot.nth(3).wait_for(timeout=10_000)
    assert await page.locator(".user-message").count() == 3
    assert await bot.count() == 4


async def test_browser_draws_icons_without_emoji_fonts(page: Any) -> None:
    await _type(page, "hello")
    opener = page.locator(".bot-message button.list-open").first
    await opener.wait_for(timeout=10_000)
    assert await opener.text_content() == MENU_BUTTON  # no glyph before the label
    assert (await opener.locator("svg.icon").bounding_box() or {}).get("width", 0) > 0
    document = await _browser_export(page)
    icon = await document.locator("svg.icon").bounding_box()
    assert icon is not None and icon["width"] > 8 and icon["height"] > 8
    # No pictograph anywhere in the chat, neither as text nor drawn by the stylesheet.
    pictographs = await page.evaluate(
        """() => {
          const found = [];
          const odd = (s) => [...(s || "")].filter((c) => c.codePointAt(0) >= 0x2190);
          for (const node of document.querySelectorAll(".phone, .phone *")) {
            for (const pseudo of ["::before", "::after"]) {
              found.push(...odd(getComputedStyle(node, pseudo).content));
            }
          }
          found.push(...odd(document.querySelector(".phone").innerText));
          return found;
        }"""
    )
    assert pictographs == []


async def test_browser_makes_links_clickable(page: Any) -> None:
    await _type(page, "JOIN")  # the first answer: the short notice, then the notice
    notice = page.locator(".bot-message").first
    await notice.wait_for(timeout=10_000)
    assert await notice.locator(".text a").count() == 2  # the policy, named by both
    link = notice.locator(".text a").last
    assert await link.get_attribute("href") == PRIVACY_URL
    assert await link.text_content() == PRIVACY_URL
    assert await link.get_attribute("rel") == "noopener noreferrer"
    assert await link.get_attribute("target") == "_blank"
    text = await notice.locator(".text").text_content() or ""
    assert f": {PRIVACY_URL}\n" in text  # the text around it is kept as it was


async def test_browser_links_only_web_urls_and_never_runs_message_text(sim: Sim) -> None:
    """Message text is untrusted: markup stays text, only http(s) URLs become links."""
    require(CHROMIUM.exists(), "Chromium not installed (apt-get install chromium)")
    from playwright.async_api import async_playwright

    script = (await sim.http.get("/simulator/static/simulator.js")).text
    assert ".innerHTML" not in script and "insertAdjacentHTML" not in script
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = await browser.new_page()
            await tab.goto(sim.url + "/simulator")
            sneaky = (
                '<img src=x onerror="window.ran=1"> javascript:alert(1) '
                'see https://example.org/a?b=1&c="x" (or http://example.net/path). '
            )
            await tab.fill("#text", sneaky)
            await tab.click("#send")
            box = tab.locator(".user-message .text").first
            await box.wait_for()
            assert await box.text_content() == sneaky
            hrefs = await box.locator("a").evaluate_all("as => as.map(a => a.href)")
            assert hrefs == ["https://example.org/a?b=1&c=", "http://example.net/path"]
            assert await box.locator("img").count() == 0
            assert await tab.evaluate("window.ran") is None
        finally:
            await browser.close()


# --------------------------------------------------------------------------- terminal chat


def _chat_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A configuration for `python -m bot chat` in a subprocess, from the environment only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "BOT_"))}
    env.update(
        WHATSAPP_APP_SECRET=APP_SECRET,
        WHATSAPP_VERIFY_TOKEN="verify-me",
        BOT_MASTER_KEYS=f"k1:{random_key()}",
        BOT_INDEX_KEY=random_key(),
        BOT_AUDIT_KEY=random_key(),
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


def _greetings(out: str) -> int:
    return out.count("Hi! I'm the privacy assistant")


def _assert_menu(out: str, times: int) -> None:
    """The menu list, its button and its rows numbered from 1, shown `times` times."""
    assert _greetings(out) == times, out
    assert out.count(f"[{MENU_BUTTON}]") == times, out
    for n, title in enumerate(MENU, 1):
        assert out.count(f"[{n}] {title}") == times, (title, out)


async def test_terminal_chat_against_a_running_bot(sim: Sim, tmp_path: Path) -> None:
    # "2" taps the menu row "My data"; then "3" taps the button "Menu" under the summary.
    code, out, err = await _chat(tmp_path, "hello\n2\n3\n/quit\n", "--url", sim.url)
    assert code == 0, err
    assert "you: hello" in out
    _assert_menu(out, times=2)
    assert "you: [My data]" in out
    assert f"bot: {SUMMARY}" in out
    assert f"bot: {NEXT}" in out
    for n, title in enumerate(NEXT_BUTTONS, 1):
        assert f"[{n}] {title}\n" in out + "\n"
    assert "you: [Menu]" in out
    # In that order: menu, tap, summary, next step, tap, menu again.
    marks = ["you: hello", "[2] My data", "you: [My data]", SUMMARY, NEXT, "you: [Menu]"]
    positions = [out.index(mark) for mark in marks]
    assert positions == sorted(positions), out
    assert out.rindex("bot: Hi!") > positions[-1]  # the menu again

    sent = sim.fake.messages_for(ALICE)
    assert [m.body["type"] for m in sent] == ["interactive", "text", "interactive", "interactive"]
    assert [m.body["interactive"]["type"] for m in sent if m.body["type"] == "interactive"] == [
        "list",
        "button",
        "list",
    ]
    assert await sim.sql("SELECT count(*) FROM messages WHERE direction = 'in'") == [(3,)]


async def test_terminal_chat_starts_its_own_bot(tmp_path: Path) -> None:
    """Nothing listens at BOT_HOST:BOT_PORT: the chat runs a simulator bot in-process."""
    # "1" taps the menu row "Join our updates", then "1" taps the notice's "Yes".
    code, out, err = await _chat(tmp_path, "hello\n1\n1\n", BOT_PORT=str(free_port()))
    assert code == 0, err  # end of input is a normal exit
    assert "running inside this chat" in err
    assert "you: hello" in out
    _assert_menu(out, times=1)
    assert "you: [Join our updates]" in out
    assert "bot: Before you join:" in out
    assert "[1] Yes" in out and "[2] No" in out
    assert "you: [Yes]" in out
    assert "bot: Thank you" in out and "consent" in out.split("you: [Yes]")[1]


def test_terminal_chat_numbers_list_rows_and_buttons() -> None:
    """Rows are tapped as list_reply (with their description), buttons as button_reply."""
    listing = _sent(
        {
            "type": "interactive",
            "interactive": {
                "type": "list",
                "body": {"text": "Pick one"},
                "action": {
                    "button": "Options",
                    "sections": [
                        {
                            "rows": [
                                {"id": "menu.join", "title": "Join our updates"},
                                {"id": "menu.my_data", "title": "My data", "description": "All"},
                            ]
                        }
                    ],
                },
            },
        }
    )
    rows = options_of(listing)
    assert [o.reply() for o in rows] == [
        {"type": "list_reply", "id": "menu.join", "title": "Join our updates"},
        {"type": "list_reply", "id": "menu.my_data", "title": "My data", "description": "All"},
    ]
    assert format_message(listing, rows).splitlines() == [
        "bot: Pick one",
        "     [Options]",
        "     [1] Join our updates",
        "     [2] My data - All",
    ]

    buttons = _sent(
        {
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": "Next?"},
                "action": {
                    "buttons": [
                        {"type": "reply", "reply": {"id": "my_data.export", "title": "Get a copy"}},
                        {"type": "reply", "reply": {"id": "menu.back", "title": "Menu"}},
                    ]
                },
            },
        }
    )
    taps = options_of(buttons)
    assert [o.reply() for o in taps] == [
        {"type": "button_reply", "id": "my_data.export", "title": "Get a copy"},
        {"type": "button_reply", "id": "menu.back", "title": "Menu"},
    ]
    assert format_message(buttons, taps).splitlines() == [
        "bot: Next?",
        "     [1] Get a copy",
        "     [2] Menu",
    ]


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
