"""Every real webhook body in ../shared/meta-samples/payloads, through the real bot.

Each file gets a fresh bot (the samples reuse Meta's example ids across files)
configured for the file's business number, and is posted byte for byte as
stored, signed over those exact bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.app import create_app
from bot.simulator.fake_graph import FakeGraph
from bot.simulator.fake_graph import serve as serve_fake
from bot.webhook import intake
from tests.conftest import SAMPLES, TOKEN, Bot, fresh_sqlite, make_settings, require
from tests.servers import running

PAYLOADS = SAMPLES / "payloads"
# file prefix -> (inbox rows, replies the bot sends)
EXPECTED = {
    "01": (1, 1),  # text: menu
    "02": (1, 1),  # image: the bot reads only text, and says what to type
    "03": (1, 1),  # button reply (unknown id): the menu
    "04": (1, 1),  # list reply
    "05": (1, 1),  # template quick-reply button
    "06": (1, 0),  # reaction: no answer
    "07": (1, 0),  # reaction removed
    "08": (1, 1),  # unsupported type: the menu, no error
    "09": (1, 1),  # text quoting an earlier message
    "10": (1, 0),  # system: number changed
    "11": (1, 0),  # system: identity changed
    "12": (0, 0),  # status sent: for no one the bot knows, so not kept
    "13": (0, 0),  # status delivered: for no one the bot knows, so not kept
    "14": (0, 0),  # status read: for no one the bot knows, so not kept
    "15": (0, 0),  # status failed 131047: for no one the bot knows, so not kept
    "16": (0, 0),  # status failed 131026: for no one the bot knows, so not kept
    "17": (0, 0),  # status failed 131049: for no one the bot knows, so not kept
    "18": (0, 0),  # webhook-level error: logged, nothing to store
    "19": (1, 1),  # text from a username user (BSUID only)
    "20": (0, 0),  # status for a BSUID recipient the bot does not know: not kept
    "21": (2, 1),  # text + reaction in one change
    "22": (1, 1),  # text + status in two changes (the status: for no one known)
}


def sample_files() -> list[Path]:
    return sorted(PAYLOADS.glob("*.json")) if PAYLOADS.is_dir() else []


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def personal_values(body: dict) -> set[str]:
    """Numbers, names, texts and message ids a sample carries (what must not leak)."""
    found: set[str] = set()
    for entry in body["entry"]:
        for change in entry.get("changes", []):
            value = change.get("value", {})
            for contact in value.get("contacts", []):
                found |= {contact.get("wa_id"), contact.get("profile", {}).get("name")}
            for m in value.get("messages", []):
                found |= {m.get("from"), m.get("id"), m.get("text", {}).get("body")}
            for s in value.get("statuses", []):
                found |= {s.get("id"), s.get("recipient_id")}
    return {v for v in found if v and len(v) >= 6}


@contextlib.asynccontextmanager
async def bot_for(path: Path, tmp_path: Path, template: Path) -> AsyncIterator[Bot]:
    """A fresh bot and fake Graph API configured for the sample's business number."""
    value = json.loads(path.read_bytes())["entry"][0]["changes"][0]["value"]
    number = value["metadata"]["phone_number_id"]
    fake = FakeGraph(phone_number_id=number, tokens=[TOKEN])
    async with serve_fake(fake) as graph_url:
        settings = make_settings(
            fresh_sqlite(template, tmp_path),
            graph_url + "/v21.0",
            WHATSAPP_PHONE_NUMBER_ID=number,
        )
        app = create_app(settings)
        async with running(app) as url, httpx.AsyncClient() as http:
            yield Bot(
                url=url, services=app.extensions["bot"], fake=fake, http=http, settings=settings
            )


def test_corpus_is_present() -> None:
    require(bool(sample_files()), f"sample corpus not found at {PAYLOADS}")
    assert {p.name[:2] for p in sample_files()} == set(EXPECTED)


@pytest.mark.parametrize("path", sample_files(), ids=lambda p: p.name[:2])
async def test_sample_through_the_bot(
    path: Path, tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The samples were written years ago: a replay by the clock, but real messages here.
    monkeypatch.setattr(intake, "REPLAY_WINDOW", float("inf"))
    rows_expected, replies_expected = EXPECTED[path.name[:2]]
    raw = path.read_bytes()
    async with bot_for(path, tmp_path, sqlite_template) as bot:
        for _ in range(2):  # the second post is a redelivery: nothing new may happen
            resp = await bot.post(raw)
            assert resp.status_code == 200, resp.text
        await bot.idle()
        if replies_expected:
            await bot.replies(replies_expected)
        await bot.idle()
        await asyncio.sleep(0.1)
        assert len(bot.fake.sent) == replies_expected
        assert (await bot.sql("SELECT count(*) FROM inbox"))[0][0] == rows_expected
        failed = await bot.sql("SELECT count(*) FROM inbox WHERE state='failed'")
        assert failed[0][0] == 0
    # Nothing personal from the sample is readable in the raw database files.
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("bot.db*"))
    for value in personal_values(json.loads(raw)):
        assert value.encode() not in stored, f"{value!r} found in plaintext"
