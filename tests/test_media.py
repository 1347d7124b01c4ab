"""Pictures, voice notes, videos, documents, stickers, locations and contact cards.

The bot reads only text. Such a message gets a short answer in the person's language that
says so and what to type instead, and an open question stays open. Outside a handoff only
the message's type is kept (never its caption, coordinates, contact cards, media id, mime
type or file name): in the stored row, in the inbox, in the raw database file and in the
data export. While someone from support has the chat it is kept whole for them, and the
bot stays quiet.

The image is Meta's own example (../shared/meta-samples, payload 02); the other types are
written here in the shape Meta documents for them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from bot.conversation.flowfile import load_keywords
from bot.crypto import open_sealed
from bot.operator import export_person
from tests.conftest import SAMPLES, fresh_sqlite, require
from tests.flowkit import UK, options_of, text_of
from tests.turnkit import ROOT, TurnKit

KEYWORDS, _ = load_keywords(ROOT / "flows" / "keywords.yaml")
LANGUAGES = ["en", "de", "fr", "es", "pt"]
IMAGE_SAMPLE = SAMPLES / "payloads" / "02_inbound_image_sg.json"

WRITTEN_HERE: dict[str, dict[str, Any]] = {
    "audio": {  # a voice note
        "type": "audio",
        "audio": {
            "mime_type": "audio/ogg; codecs=opus",
            "sha256": "Wq0bKkWk8V7FOn7pAi1ZnVT1wn0yIQ8mYx4kGQ6zXx8=",
            "id": "8801743552901127",
            "voice": True,
        },
    },
    "video": {
        "type": "video",
        "video": {
            "caption": "my neighbour's garden party",
            "mime_type": "video/mp4",
            "sha256": "d3BvMbHe1jJt7b1sQY0P2oJHcDj6c4Vbq3Cj6b3Ek1M=",
            "id": "1188032970531645",
        },
    },
    "document": {
        "type": "document",
        "document": {
            "caption": "signed tenancy agreement",
            "filename": "tenancy-agreement-flat-4b.pdf",
            "mime_type": "application/pdf",
            "sha256": "pZ1tq7bQ2mJc8nR5vX3yL0wF6hK9sD4aG2eT8uI1oP0=",
            "id": "7741029358826604",
        },
    },
    "sticker": {
        "type": "sticker",
        "sticker": {
            "mime_type": "image/webp",
            "sha256": "Yb3kN9xQ2wE5rT8uI1oP4aS7dF0gH3jK6lZ9cV2bN5m=",
            "id": "5520918837461029",
            "animated": False,
        },
    },
    "location": {
        "type": "location",
        "location": {
            "latitude": 51.5226547,
            "longitude": -0.1583919,
            "name": "Baker Street clinic",
            "address": "221B Baker Street, London NW1 6XE",
            "url": "https://maps.example.com/place/clinic-4471",
        },
    },
    "contacts": {
        "type": "contacts",
        "contacts": [
            {
                "name": {
                    "formatted_name": "Rosalind Ashdown",
                    "first_name": "Rosalind",
                    "last_name": "Ashdown",
                },
                "phones": [{"phone": "+44 7700 900461", "wa_id": "447700900461", "type": "CELL"}],
                "emails": [{"email": "rosalind.ashdown@example.org", "type": "HOME"}],
            }
        ],
    },
}


def sample_image() -> dict[str, Any]:
    """Meta's image message as it sends it, less what `TurnKit` adds (sender, id, time)."""
    require(IMAGE_SAMPLE.is_file(), f"no Meta samples at {IMAGE_SAMPLE.parent}")
    body = json.loads(IMAGE_SAMPLE.read_text(encoding="utf-8"))
    (message,) = body["entry"][0]["changes"][0]["value"]["messages"]
    return {k: v for k, v in message.items() if k not in {"from", "id", "timestamp"}}


MEDIA = ["image", *WRITTEN_HERE]


def media(kind: str) -> dict[str, Any]:
    return sample_image() if kind == "image" else WRITTEN_HERE[kind]


def secrets_of(value: Any) -> set[str]:
    """Every string and number a media message carries (long enough to search for)."""
    if isinstance(value, dict):
        return {s for v in value.values() for s in secrets_of(v)}
    if isinstance(value, list):
        return {s for v in value for s in secrets_of(v)}
    if isinstance(value, float):
        return {repr(value)}
    if isinstance(value, str) and len(value) >= 6:
        return {value}
    return set()


@pytest.fixture
async def kit(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[TurnKit]:
    async with TurnKit.open(fresh_sqlite(sqlite_template, tmp_path)) as opened:
        yield opened


def media_text(kit: TurnKit, lang: str) -> str:
    return kit.content.texts.get(lang, "gdpr", "common.media")


async def stored(kit: TurnKit, kind: str) -> list[dict[str, Any]]:
    """The person's inbound rows of this type, oldest first, opened with their key."""
    person = await kit.people.find(e164=UK)
    assert person is not None
    rows = await kit.sql(
        "SELECT id, body FROM messages WHERE contact_id = :c AND direction = 'in' "
        "AND kind = :k ORDER BY created_at",
        c=person.contact_id,
        k=kind,
    )
    return [orjson.loads(open_sealed(person.dk, b, f"messages/body/{mid}")) for mid, b in rows]


async def known(kit: TurnKit) -> bool:
    return bool(await kit.sql("SELECT id FROM contacts"))


# What the person is told --------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("kind", MEDIA)
async def test_media_gets_told_the_bot_reads_only_text(kit: TurnKit, kind: str, lang: str) -> None:
    await kit.speaking(UK, lang)
    (reply,) = await kit.send(UK, media(kind))
    said = text_of(reply)
    assert said == media_text(kit, lang)
    assert said != kit.content.texts.get("en", "gdpr", "common.media") or lang == "en"
    # What it offers instead are words the bot understands in the person's language.
    menu_word = next(word for word in KEYWORDS["help"][lang] if word in said)
    assert any(word in said for word in KEYWORDS["agent"][lang]), said
    # And it does what it says: MENU (MENÜ, MENÚ …) gives the menu.
    (menu,) = await kit.say(UK, menu_word)
    assert "menu.my_data" in options_of(menu)


@pytest.mark.parametrize("kind", MEDIA)
async def test_media_at_the_erase_question_leaves_it_open(kit: TurnKit, kind: str) -> None:
    await kit.say(UK, "JOIN")
    await kit.say(UK, "YES")
    (question,) = await kit.say(UK, "DELETE MY DATA")
    assert set(options_of(question)) == {"erase.yes", "erase.no"}
    (reply,) = await kit.send(UK, media(kind))
    assert text_of(reply) == media_text(kit, "en")
    assert await known(kit), f"a {kind} erased the person"
    assert await kit.consent(UK) == "granted", f"a {kind} cancelled or answered the question"
    assert await kit.sql("SELECT * FROM suppressions") == []
    # The question is still open: its own button now erases.
    (farewell,) = await kit.tap(UK, "erase.yes")
    assert not await known(kit)
    assert farewell["type"] == "text"


async def test_an_image_at_the_opt_in_question_neither_grants_nor_declines(kit: TurnKit) -> None:
    await kit.say(UK, "JOIN")
    (reply,) = await kit.send(UK, media("image"))
    assert text_of(reply) == media_text(kit, "en")
    assert await kit.consent(UK) == "pending"
    (confirmed,) = await kit.say(UK, "YES")
    assert await kit.consent(UK) == "granted", text_of(confirmed)


# What is kept ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", MEDIA)
async def test_only_the_type_is_kept(kit: TurnKit, kind: str) -> None:
    await kit.say(UK, "hello")
    await kit.send(UK, media(kind))
    (row,) = await stored(kit, kind)
    assert row == {"type": kind, "from": UK[1:], "timestamp": str(int(kit.now))}
    # Text is kept as it was sent.
    (hello,) = await stored(kit, "text")
    assert hello["text"] == {"body": "hello"}


@pytest.mark.parametrize("kind", MEDIA)
async def test_while_support_has_the_chat_it_is_kept_whole_and_unanswered(
    kit: TurnKit, kind: str
) -> None:
    sent = media(kind)
    await kit.say(UK, "AGENT")
    assert await kit.send(UK, sent) == []  # staff answer, not the bot
    (whole,) = await stored(kit, kind)
    assert whole[kind] == sent[kind]
    # Nobody from support answered for a day: the bot has the chat again, and keeps
    # only the type from then on.
    kit.later(hours=25)
    (reply,) = await kit.send(UK, sent)
    assert text_of(reply) == media_text(kit, "en")
    first, second = await stored(kit, kind)
    assert first == whole
    assert set(second) == {"type", "from", "timestamp"}


async def test_the_export_shows_only_the_type(kit: TurnKit) -> None:
    sent = {kind: media(kind) for kind in MEDIA}
    for content in sent.values():
        await kit.send(UK, content)
    doc = await export_person(kit.settings, UK)
    inbound = {m["kind"]: m["content"] for m in doc["messages"] if m["direction"] == "in"}
    for kind in MEDIA:
        assert inbound[kind] == {"type": kind, "from": UK[1:], "timestamp": str(int(kit.now))}
    dumped = json.dumps(doc, ensure_ascii=False)
    secrets = secrets_of([content[kind] for kind, content in sent.items()])
    assert [s for s in secrets if s in dumped] == []


async def test_no_caption_or_coordinates_in_the_database_even_sealed(
    kit: TurnKit, tmp_path: Path
) -> None:
    sent = {kind: media(kind) for kind in MEDIA}
    for content in sent.values():
        await kit.send(UK, content)
    secrets = secrets_of([content[kind] for kind, content in sent.items()])
    assert {"Taj Mahal", "221B Baker Street, London NW1 6XE", "51.5226547"} <= secrets
    raw = b"".join(p.read_bytes() for p in sorted(tmp_path.glob("*.db*")))
    assert [s for s in secrets if s.encode() in raw] == []
    # Nor inside what is sealed: every inbound row opened with the person's key, and
    # what the inbox still holds opened with its own.
    # The inbox gave up each message's sealed copy when its turn committed.
    assert await kit.sql("SELECT count(*) FROM inbox WHERE payload IS NOT NULL") == [(0,)]
    opened = json.dumps([await stored(kit, kind) for kind in MEDIA], ensure_ascii=False)
    for key, payload in await kit.sql("SELECT event_key, payload FROM inbox"):
        if payload is not None:
            opened += open_sealed(kit.keys.inbox, payload, f"inbox/payload/{key}").decode()
    assert [s for s in secrets if s in opened] == []
