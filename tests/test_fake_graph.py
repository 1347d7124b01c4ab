"""The fake Graph API, driven over real HTTP exactly as the bot will drive it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from quart import Quart, request

from bot.simulator.fake_graph import FakeGraph, create_blueprint, serve

PNID = "106540352242922"
TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MESSAGES = f"/v21.0/{PNID}/messages"
PHONE = "13437772910"
SAMPLES = Path(
    os.environ.get("META_SAMPLES_DIR", Path(__file__).resolve().parents[2] / "shared/meta-samples")
)


# One server for the whole module keeps the file fast; each test gets it freshly reset.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[tuple[FakeGraph, str]]:
    fake = FakeGraph(phone_number_id=PNID, tokens=(TOKEN, "other-token"))
    async with serve(fake) as url:
        yield fake, url


@pytest.fixture
def fake(server: tuple[FakeGraph, str]) -> FakeGraph:
    server[0].reset()
    return server[0]


@pytest_asyncio.fixture(loop_scope="module")
async def client(
    server: tuple[FakeGraph, str], fake: FakeGraph
) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(server[1], AUTH) as http:
        yield http


def http_client(url: str, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    """A client for loopback HTTP; skipping TLS setup saves ~0.1 s per test."""
    return httpx.AsyncClient(base_url=url, headers=headers, verify=False)


def load_json(path: Path) -> Any:
    """A sample's parsed body, or None where the samples are not checked out."""
    return orjson.loads(path.read_bytes()) if path.exists() else None


def text(to: str = PHONE, body: str = "hello", **extra: Any) -> dict[str, Any]:
    message = {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": body}}
    return message | extra


def template(to: str = PHONE) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "to": to,
        "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}},
    }


def buttons(*titles: str, ids: list[str] | None = None, body: str = "Pick") -> dict[str, Any]:
    ids = ids or [f"b{i}" for i in range(len(titles))]
    return {
        "messaging_product": "whatsapp",
        "to": PHONE,
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": body},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": i, "title": t}}
                    for i, t in zip(ids, titles, strict=True)
                ]
            },
        },
    }


def listing(
    rows: int = 3, *, title: str = "Row", desc: str = "d", label: str = "Menu", body: str = "Hi"
) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "to": PHONE,
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": body},
            "action": {
                "button": label,
                "sections": [
                    {
                        "title": "S",
                        "rows": [
                            {"id": f"r{i}", "title": title, "description": desc}
                            for i in range(rows)
                        ],
                    }
                ],
            },
        },
    }


def media(kind: str, **payload: Any) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": PHONE, "type": kind, kind: payload}


def read(message_id: str, **extra: Any) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "status": "read", "message_id": message_id} | extra


def key_shape(value: Any) -> Any:
    """Keys only, recursively: two bodies with the same shape compare equal."""
    if isinstance(value, dict):
        return {k: key_shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [key_shape(v) for v in value]
    return None


def decode_wamid(wamid: str) -> bytes:
    assert wamid.startswith("wamid.")
    return base64.b64decode(wamid[6:])


def assert_error(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert re.fullmatch(r"A[A-Za-z0-9_-]{22}", error["fbtrace_id"])
    return error


# --------------------------------------------------------------------------- sends


async def test_text_success_shape(client: httpx.AsyncClient, fake: FakeGraph) -> None:
    r = await client.post(MESSAGES, json=text(to="+" + PHONE))
    assert r.status_code == 200
    body = r.json()
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": "+" + PHONE, "wa_id": PHONE}]
    assert list(body["messages"][0]) == ["id"]
    assert r.headers["content-type"].startswith("application/json")
    [sent] = fake.sent
    assert (sent.wamid, sent.to, sent.index) == (body["messages"][0]["id"], "+" + PHONE, 0)
    assert sent.body == text(to="+" + PHONE)
    assert abs(sent.at - time.time()) < 5


async def test_template_success_has_message_status(client: httpx.AsyncClient) -> None:
    r = await client.post(MESSAGES, json=template())
    assert r.status_code == 200
    assert r.json()["messages"][0]["message_status"] == "accepted"


async def test_send_to_bsuid_recipient(client: httpx.AsyncClient, fake: FakeGraph) -> None:
    bsuid = "US.13491208655302741918"
    body = text()
    del body["to"]
    r = await client.post(MESSAGES, json=body | {"recipient": bsuid})
    assert r.status_code == 200
    assert r.json()["contacts"] == [{"input": bsuid, "user_id": bsuid}]
    assert bsuid.encode() in decode_wamid(r.json()["messages"][0]["id"])
    assert fake.messages_for(bsuid)[0].to == bsuid


VALID = {
    "text at 4096": text(body="x" * 4096),
    "three buttons": buttons("a" * 20, "b", "c", body="x" * 1024),
    "ten rows": listing(10, title="t" * 24, desc="d" * 72, label="l" * 20, body="x" * 4096),
    "image by id": media("image", id="123"),
    "document by link": media("document", link="https://example.com/a.pdf", filename="a.pdf"),
    "audio": media("audio", id="1"),
    "video": media("video", link="https://example.com/v.mp4"),
    "sticker": media("sticker", id="1"),
    "reaction": media("reaction", message_id="wamid.X", emoji="👍"),
    "location": media("location", latitude=1.5, longitude="2.5", name="Here"),
    "contacts": {
        "messaging_product": "whatsapp",
        "to": PHONE,
        "type": "contacts",
        "contacts": [{"name": {"formatted_name": "A", "first_name": "A"}}],
    },
}


@pytest.mark.parametrize("body", VALID.values(), ids=VALID.keys())
async def test_valid_messages_are_accepted(client: httpx.AsyncClient, body: dict) -> None:
    r = await client.post(MESSAGES, json=body)
    assert r.status_code == 200, r.text


def without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


def dup_ids() -> dict[str, Any]:
    return buttons("a", "b", ids=["same", "same"])


INVALID = {
    "wrong product": text() | {"messaging_product": "sms"},
    "no to": without(text(), "to"),
    "to not digits": text(to="call me"),
    "to not string": text() | {"to": 13437772910},
    "no type": without(text(), "type"),
    "unknown type": text() | {"type": "hologram"},
    "text without body": text() | {"text": {}},
    "empty text": text(body=""),
    "text too long": text(body="x" * 4097),
    "no buttons": buttons(),
    "four buttons": buttons("a", "b", "c", "d"),
    "button title 21": buttons("a" * 21),
    "duplicate button ids": dup_ids(),
    "button body 1025": buttons("a", body="x" * 1025),
    "eleven rows": listing(11),
    "row title 25": listing(title="t" * 25),
    "row description 73": listing(desc="d" * 73),
    "list button 21": listing(label="l" * 21),
    "list body 4097": listing(body="x" * 4097),
    "unknown interactive": media("interactive", type="hologram", body={"text": "x"}),
    "template without name": template() | {"template": {"language": {"code": "en"}}},
    "template without language": template() | {"template": {"name": "hello_world"}},
    "template without code": template() | {"template": {"name": "n", "language": {}}},
    "image without id": media("image", caption="x"),
    "document without link": media("document", filename="a.pdf"),
    "audio without id": media("audio"),
    "video without id": media("video"),
    "sticker without id": media("sticker"),
    "location without latitude": media("location", longitude=1),
    "empty contacts": {"messaging_product": "whatsapp", "to": PHONE, "type": "contacts"},
}


@pytest.mark.parametrize("body", INVALID.values(), ids=INVALID.keys())
async def test_invalid_messages_get_100(
    client: httpx.AsyncClient, fake: FakeGraph, body: dict
) -> None:
    r = await client.post(MESSAGES, json=body)
    error = assert_error(r, 400, 100)
    assert error["message"] == "(#100) Invalid parameter"
    assert error["type"] == "OAuthException"
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert error["error_data"]["details"]
    assert fake.sent == []


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]"])
async def test_bad_json_gets_100(client: httpx.AsyncClient, raw: bytes) -> None:
    r = await client.post(MESSAGES, content=raw, headers={"Content-Type": "application/json"})
    assert_error(r, 400, 100)


# --------------------------------------------------------------------------- auth and ids


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "x"}])
async def test_bad_token_gets_401_190(
    client: httpx.AsyncClient, fake: FakeGraph, headers: dict
) -> None:
    client.headers.pop("Authorization")
    r = await client.post(MESSAGES, json=text(), headers=headers)
    error = assert_error(r, 401, 190)
    assert error["message"] == "Invalid OAuth access token - Cannot parse access token"
    assert "error_subcode" not in error
    assert fake.sent == []


async def test_expired_token_gets_190_463(client: httpx.AsyncClient, fake: FakeGraph) -> None:
    fake.expire_token(TOKEN)
    r = await client.post(MESSAGES, json=text())
    error = assert_error(r, 401, 190)
    assert error["error_subcode"] == 463
    assert error["message"].startswith("Error validating access token: Session has expired on ")
    other = await client.post(
        MESSAGES, json=text(), headers={"Authorization": "Bearer other-token"}
    )
    assert other.status_code == 200


async def test_access_token_query_parameter(client: httpx.AsyncClient) -> None:
    client.headers.pop("Authorization")
    r = await client.post(MESSAGES, params={"access_token": TOKEN}, json=text())
    assert r.status_code == 200


async def test_unknown_phone_number_id(client: httpx.AsyncClient) -> None:
    r = await client.post("/v21.0/123123/messages", json=text())
    error = assert_error(r, 400, 100)
    assert error["error_subcode"] == 33
    assert error["type"] == "GraphMethodException"
    assert "Object with ID '123123' does not exist" in error["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v21.0/a/b/c"), ("POST", "/nope"), ("POST", f"/latest/{PNID}/messages")],
)
async def test_unknown_path(client: httpx.AsyncClient, method: str, path: str) -> None:
    r = await client.request(method, path, json={})
    error = assert_error(r, 400, 2500)
    assert error["type"] == "OAuthException"
    assert error["message"].startswith("Unknown path components: /")


# --------------------------------------------------------------------------- faults

FAULT_STATUS = {
    130429: 400,
    131056: 400,
    190: 401,
    100: 400,
    131026: 400,
    131047: 400,
    131048: 400,
    131049: 400,
    131050: 400,
    368: 403,
    4: 400,
    80007: 400,
    131000: 500,
    2: 503,
    131016: 503,
    132001: 404,
    999999: 400,  # unknown codes still get Meta's shape
}


@pytest.mark.parametrize(("code", "status"), FAULT_STATUS.items())
async def test_fail_next_meta_codes(
    client: httpx.AsyncClient, fake: FakeGraph, code: int, status: int
) -> None:
    fake.fail_next(code)
    error = assert_error(await client.post(MESSAGES, json=text()), status, code)
    assert error["type"] == "OAuthException"
    if code == 190:
        assert error["error_subcode"] == 463
    else:
        assert error["message"].startswith(f"(#{code}) ")
        assert set(error["error_data"]) == {"messaging_product", "details"}
    if code == 130429:
        assert error["error_subcode"] == 2494055
    if code == 131056:
        assert error["error_subcode"] == 2494071
    assert fake.sent == []
    assert (await client.post(MESSAGES, json=text())).status_code == 200


async def test_fail_next_http_errors(client: httpx.AsyncClient) -> None:
    r = await client.post("/_fake/faults", json={"fault": "500"})
    assert r.status_code == 200
    await client.post("/_fake/faults", json={"fault": "502"})
    await client.post("/_fake/faults", json={"fault": "503"})
    r500 = await client.post(MESSAGES, json=text())
    error = assert_error(r500, 500, 1)
    assert (error["message"], error["is_transient"]) == ("An unknown error occurred", True)
    r502 = await client.post(MESSAGES, json=text())
    assert (r502.status_code, r502.headers["content-type"][:10]) == (502, "text/plain")
    assert (await client.post(MESSAGES, json=text())).status_code == 503
    assert (await client.post(MESSAGES, json=text())).status_code == 200


async def test_disconnect_drops_the_connection(client: httpx.AsyncClient, fake: FakeGraph) -> None:
    fake.fail_next("disconnect")
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post(MESSAGES, json=text())
    assert fake.requests[-1].status == 0
    assert (await client.post(MESSAGES, json=text())).status_code == 200
    assert len(fake.sent) == 1


async def test_slow_answers_after_delay(client: httpx.AsyncClient, fake: FakeGraph) -> None:
    fake.fail_next("slow:0.2")
    start = time.monotonic()
    r = await client.post(MESSAGES, json=text())
    assert r.status_code == 200
    assert time.monotonic() - start >= 0.2
    start = time.monotonic()
    await client.post(MESSAGES, json=text())
    assert time.monotonic() - start < 0.2


async def test_fault_scoped_to_recipient(client: httpx.AsyncClient, fake: FakeGraph) -> None:
    fake.fail_next(131056, to="+447700900123")
    assert (await client.post(MESSAGES, json=text(to="491713920042"))).status_code == 200
    assert_error(await client.post(MESSAGES, json=text(to="447700900123")), 400, 131056)
    assert (await client.post(MESSAGES, json=text(to="447700900123"))).status_code == 200


async def test_faults_consumed_in_order(client: httpx.AsyncClient, fake: FakeGraph) -> None:
    fake.fail_next(130429)
    fake.fail_next("500", times=2)
    statuses = [(await client.post(MESSAGES, json=text())).status_code for _ in range(4)]
    assert statuses == [400, 500, 500, 200]
    assert fake.pending_faults == 0


async def test_read_receipts_do_not_consume_faults(
    client: httpx.AsyncClient, fake: FakeGraph
) -> None:
    fake.fail_next(130429)
    assert (await client.post(MESSAGES, json=read("wamid.IN"))).status_code == 200
    assert_error(await client.post(MESSAGES, json=text()), 400, 130429)


async def test_fail_next_rejects_unknown_faults() -> None:
    fake = FakeGraph(phone_number_id=PNID)
    for bad in ("explode", "slow:abc", "slow:-1"):
        with pytest.raises(ValueError):
            fake.fail_next(bad)
    fake.fail_next("130429", times=0)
    assert fake.pending_faults == 0


# --------------------------------------------------------------------------- read receipts


async def test_mark_as_read(client: httpx.AsyncClient, fake: FakeGraph) -> None:
    r = await client.post(MESSAGES, json=read("wamid.INBOUND"))
    assert (r.status_code, r.json()) == (200, {"success": True})
    typing = read("wamid.INBOUND", typing_indicator={"type": "text"})
    assert (await client.post(MESSAGES, json=typing)).json() == {"success": True}
    assert fake.sent == []
    assert [q.json["status"] for q in fake.requests] == ["read", "read"]


async def test_mark_outgoing_as_read_is_refused(client: httpx.AsyncClient) -> None:
    wamid = (await client.post(MESSAGES, json=text())).json()["messages"][0]["id"]
    error = assert_error(await client.post(MESSAGES, json=read(wamid)), 400, 100)
    assert error["message"] == "(#100) Invalid parameter"
    assert f"message ID: {wamid} is outgoing" in error["error_data"]["details"]


@pytest.mark.parametrize(
    "body",
    [read(""), read("wamid.X", typing_indicator={"type": "dance"}), read("x") | {"status": "seen"}],
)
async def test_bad_read_receipts(client: httpx.AsyncClient, body: dict) -> None:
    assert_error(await client.post(MESSAGES, json=body), 400, 100)


# --------------------------------------------------------------------------- media


async def test_media_upload_and_retrieval(client: httpx.AsyncClient, fake: FakeGraph) -> None:
    content = b"%PDF-1.4 fake"
    r = await client.post(
        f"/v21.0/{PNID}/media",
        data={"messaging_product": "whatsapp", "type": "application/pdf"},
        files={"file": ("menu.pdf", content, "application/pdf")},
    )
    assert r.status_code == 200, r.text
    media_id = r.json()["id"]
    assert media_id.isdigit()
    assert fake.media[media_id] == (content, "application/pdf", "menu.pdf")

    info = (await client.get(f"/v21.0/{media_id}")).json()
    assert info == {
        "messaging_product": "whatsapp",
        "url": f"{client.base_url}".rstrip("/") + f"/_fake/media/{media_id}",
        "mime_type": "application/pdf",
        "sha256": hashlib.sha256(content).hexdigest(),
        "file_size": len(content),
        "id": media_id,
    }
    download = await client.get(info["url"])
    assert (download.status_code, download.content) == (200, content)
    assert download.headers["content-type"] == "application/pdf"
    anonymous = await client.get(info["url"], headers={"Authorization": ""})
    assert_error(anonymous, 401, 190)

    assert (await client.delete(f"/v21.0/{media_id}")).json() == {"success": True}
    assert_error(await client.get(f"/v21.0/{media_id}"), 400, 100)


async def test_media_errors(client: httpx.AsyncClient) -> None:
    url = f"/v21.0/{PNID}/media"
    no_file = await client.post(url, data={"messaging_product": "whatsapp", "type": "image/png"})
    assert_error(no_file, 400, 100)
    no_product = await client.post(url, data={"type": "x"}, files={"file": ("a", b"1", "a/b")})
    assert_error(no_product, 400, 100)
    unknown = assert_error(await client.get("/v21.0/999"), 400, 100)
    assert unknown["error_subcode"] == 33
    assert (await client.get("/_fake/media/999")).status_code == 404


# --------------------------------------------------------------------------- ids and lookups


async def test_wamid_encodes_recipient_and_is_unique(
    client: httpx.AsyncClient, fake: FakeGraph
) -> None:
    replies = await asyncio.gather(*(client.post(MESSAGES, json=text()) for _ in range(20)))
    wamids = [r.json()["messages"][0]["id"] for r in replies]
    assert len(set(wamids)) == 20
    for wamid in wamids:
        raw = decode_wamid(wamid)
        assert raw.startswith(b"\x1c\x18\x0b" + PHONE.encode())
        assert wamid[6:].startswith("HBgLMTM0Mzc3NzI5MTA")  # as in Meta's capture for this number
    assert [m.index for m in fake.sent] == list(range(20))


async def test_messages_for_filters_and_after(client: httpx.AsyncClient, fake: FakeGraph) -> None:
    for to in ["+447700900123", PHONE, "447700900123", PHONE, "+447700900123"]:
        await client.post(MESSAGES, json=text(to=to))
    uk = fake.messages_for("447700900123")
    assert [m.index for m in uk] == [0, 2, 4]
    assert [m.to for m in uk] == ["+447700900123", "447700900123", "+447700900123"]
    assert [m.index for m in fake.messages_for("+447700900123", after=2)] == [4]
    assert [m.index for m in fake.messages_for(PHONE, after=0)] == [1, 3]
    assert fake.messages_for("15550000000") == []


async def test_wait_for_sent(client: httpx.AsyncClient, fake: FakeGraph) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        for _ in range(2):
            await client.post(MESSAGES, json=text())

    task = asyncio.create_task(later())
    sent = await fake.wait_for_sent(2, timeout=5)
    assert len(sent) == 2
    await task
    with pytest.raises(TimeoutError):
        await fake.wait_for_sent(3, timeout=0.05)


async def test_requests_are_recorded(client: httpx.AsyncClient, fake: FakeGraph) -> None:
    await client.post(MESSAGES, json=text())
    await client.post(MESSAGES, json=text(), headers={"Authorization": "Bearer bad"})
    ok, denied = fake.requests
    assert (ok.method, ok.path, ok.status, ok.json) == ("POST", MESSAGES, 200, text())
    assert ok.headers["authorization"] == f"Bearer {TOKEN}"
    assert denied.status == 401


async def test_requests_are_bounded() -> None:
    fake = FakeGraph(phone_number_id=PNID, max_requests=10)
    for i in range(2000):
        fake.record("GET", f"/{i}", {}, None, 200)
    assert 10 <= len(fake.requests) <= 1010
    assert fake.requests[-1].path == "/1999"
    assert [r.path for r in fake.requests[-10:]] == [f"/{i}" for i in range(1990, 2000)]


async def test_reset(client: httpx.AsyncClient, fake: FakeGraph) -> None:
    await client.post(MESSAGES, json=text())
    fake.fail_next(130429)
    fake.expire_token(TOKEN)
    fake.reset()
    assert (fake.requests, fake.sent, fake.media, fake.pending_faults) == ([], [], {}, 0)
    r = await client.post(MESSAGES, json=text())
    assert r.status_code == 200
    assert fake.sent[0].index == 0
    assert fake.messages_for(PHONE)[0].wamid == r.json()["messages"][0]["id"]


# --------------------------------------------------------------------------- status webhooks


def receiver(got: list[tuple[dict[str, str], bytes]], done: asyncio.Event) -> Quart:
    app = Quart("receiver")

    @app.post("/webhook")
    async def hook() -> tuple[str, int]:
        got.append((dict(request.headers), await request.get_data()))
        if len(got) >= 2:
            done.set()
        return "", 200

    return app


async def test_status_webhooks_are_signed_and_shaped() -> None:
    got: list[tuple[dict[str, str], bytes]] = []
    done = asyncio.Event()
    async with serve(receiver(got, done)) as hook_url:
        fake = FakeGraph(
            phone_number_id=PNID,
            app_secret="s3cret",
            webhook_url=hook_url + "/webhook",
            send_statuses=True,
            status_delay=0,
        )
        async with serve(fake) as url, http_client(url, AUTH) as http:
            wamid = (await http.post(MESSAGES, json=text())).json()["messages"][0]["id"]
            await asyncio.wait_for(done.wait(), 5)

    payloads = []
    for headers, raw in got:
        expected = "sha256=" + hmac.new(b"s3cret", raw, hashlib.sha256).hexdigest()
        assert headers["X-Hub-Signature-256"] == expected
        payloads.append(orjson.loads(raw))
    statuses = [p["entry"][0]["changes"][0]["value"]["statuses"][0] for p in payloads]
    assert [s["status"] for s in statuses] == ["sent", "delivered"]
    assert {s["id"] for s in statuses} == {wamid}
    assert {s["recipient_id"] for s in statuses} == {PHONE}
    value = payloads[0]["entry"][0]["changes"][0]["value"]
    assert value["metadata"] == {"display_phone_number": "15550783881", "phone_number_id": PNID}
    assert payloads[0]["object"] == "whatsapp_business_account"
    sample = load_json(SAMPLES / "payloads" / "12_status_sent_pmp_marketing_us_ca.json")
    if sample is not None:  # same keys, same nesting as Meta's "sent" status webhook
        assert key_shape(payloads[0]) == key_shape(sample)
    assert set(statuses[1]["conversation"]) == {"id", "origin"}


async def test_status_webhook_failures_are_ignored(client: httpx.AsyncClient) -> None:
    fake = FakeGraph(
        phone_number_id=PNID,
        app_secret="s",
        webhook_url="http://127.0.0.1:9/nowhere",
        send_statuses=True,
        status_delay=0,
    )
    async with serve(fake) as url, http_client(url, AUTH) as http:
        assert (await http.post(MESSAGES, json=text())).status_code == 200
        await asyncio.sleep(0.05)


# --------------------------------------------------------------------------- mounting, control


async def test_blueprint_under_prefix(fake: FakeGraph) -> None:
    app = Quart("host")
    app.register_blueprint(create_blueprint(fake), url_prefix="/simulator/graph")
    async with serve(app) as url, http_client(url, AUTH) as http:
        r = await http.post(f"/simulator/graph{MESSAGES}", json=text())
        assert r.status_code == 200
        up = await http.post(
            f"/simulator/graph/v21.0/{PNID}/media",
            data={"messaging_product": "whatsapp", "type": "image/png"},
            files={"file": ("a.png", b"png", "image/png")},
        )
        info = (await http.get(f"/simulator/graph/v21.0/{up.json()['id']}")).json()
        assert info["url"].startswith(f"{url}/simulator/graph/_fake/media/")
        assert (await http.get(info["url"])).content == b"png"


async def test_control_routes(client: httpx.AsyncClient, fake: FakeGraph) -> None:
    r = await client.post("/_fake/faults", json={"fault": 130429, "times": 2, "to": int(PHONE)})
    assert r.json() == {"queued": 2}
    assert (await client.post("/_fake/faults", json={"fault": "boom"})).status_code == 400
    assert (await client.post(MESSAGES, json=text(to="447700900123"))).status_code == 200
    assert (await client.post(MESSAGES, json=text())).status_code == 400
    assert (await client.post(MESSAGES, json=text())).status_code == 400
    assert (await client.post(MESSAGES, json=text())).status_code == 200

    everything = (await client.get("/_fake/sent")).json()
    assert [m["index"] for m in everything] == [0, 1]
    assert set(everything[0]) == {"index", "wamid", "to", "body"}
    mine = (await client.get("/_fake/sent", params={"to": "+" + PHONE, "after": 0})).json()
    assert [(m["index"], m["to"]) for m in mine] == [(1, PHONE)]

    await client.post("/_fake/expire-token", json={"token": TOKEN})
    assert_error(await client.post(MESSAGES, json=text()), 401, 190)
    assert (await client.post("/_fake/reset")).json() == {"ok": True}
    assert (await client.get("/_fake/sent")).json() == []
    assert (await client.post(MESSAGES, json=text())).status_code == 200


async def test_cli_runs_a_server_in_another_process() -> None:
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "bot.simulator.fake_graph", "--port", "0"],
        *["--phone-number-id", PNID, "--token", "t1", "--token", "t2"],
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 15)
        url = re.search(r"http://\S+", line.decode()).group(0)
        async with http_client(url) as http:
            await http.post("/_fake/faults", json={"fault": "503"})
            t2 = {"Authorization": "Bearer t2"}
            assert (await http.post(MESSAGES, json=text(), headers=t2)).status_code == 503
            assert (await http.post(MESSAGES, json=text(), headers=t2)).status_code == 200
            sent = (await http.get("/_fake/sent", params={"to": PHONE})).json()
            assert [m["to"] for m in sent] == [PHONE]
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
    assert proc.returncode == 0


# --------------------------------------------------------------------------- corpus

Trigger = Callable[[httpx.AsyncClient, FakeGraph], Awaitable[httpx.Response]]


async def _outgoing_read(client: httpx.AsyncClient, fake: FakeGraph) -> httpx.Response:
    wamid = (await client.post(MESSAGES, json=text())).json()["messages"][0]["id"]
    return await client.post(MESSAGES, json=read(wamid))


async def _fault(code: int, client: httpx.AsyncClient, fake: FakeGraph) -> httpx.Response:
    fake.fail_next(code)
    return await client.post(MESSAGES, json=text())


async def _expired(client: httpx.AsyncClient, fake: FakeGraph) -> httpx.Response:
    fake.expire_token(TOKEN)
    return await client.post(MESSAGES, json=text())


# sample file -> (HTTP status from the samples' README, how to make the fake answer it)
CORPUS: dict[str, tuple[int, Trigger]] = {
    "send_message_success_text.json": (200, lambda c, f: c.post(MESSAGES, json=text())),
    "send_message_success_template_accepted.json": (
        200,
        lambda c, f: c.post(MESSAGES, json=template()),
    ),
    "error_130429_rate_limit.json": (400, lambda c, f: _fault(130429, c, f)),
    "error_131056_pair_rate_limit.json": (400, lambda c, f: _fault(131056, c, f)),
    "error_190_expired_access_token.json": (401, _expired),
    "error_100_invalid_parameter.json": (400, _outgoing_read),
    "error_100_subcode_33_unknown_phone_number_id.json": (
        400,
        lambda c, f: c.post("/v21.0/123123/messages", json=text()),
    ),
}


def _corpus_files() -> list[Any]:
    folder = SAMPLES / "graph"
    if not folder.is_dir():
        reason = f"Meta samples not found at {folder} (set META_SAMPLES_DIR)"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="no-samples")]
    return [pytest.param(p, id=p.name) for p in sorted(folder.glob("*.json"))]


@pytest.mark.parametrize("sample", _corpus_files())
async def test_corpus_shapes_match_meta(
    client: httpx.AsyncClient, fake: FakeGraph, sample: Path
) -> None:
    assert sample.name in CORPUS, f"no trigger for new sample {sample.name}; add one to CORPUS"
    status, trigger = CORPUS[sample.name]
    response = await trigger(client, fake)
    assert response.status_code == status
    assert key_shape(response.json()) == key_shape(load_json(sample))
