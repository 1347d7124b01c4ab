"""Whole turns below HTTP (tests/turnkit.py): flow files, store and texts, no server.

Each test is a conversation on a real SQLite file, checked on the replies'
Graph bodies and on the rows the turns committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.crypto import Index
from tests.conftest import fresh_sqlite
from tests.flowkit import GERMANY, UK, options_of, text_of
from tests.turnkit import TurnKit


@pytest.fixture
async def kit(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[TurnKit]:
    async with TurnKit.open(fresh_sqlite(sqlite_template, tmp_path)) as opened:
        yield opened


# The flows end to end, as the webhook path runs them --------------------------------------


async def test_opt_in_yes_records_consent_with_its_evidence(kit: TurnKit) -> None:
    (notice,) = await kit.say(UK, "JOIN")
    assert "Before you join" in text_of(notice) and "GDPR" in text_of(notice)
    assert set(options_of(notice)) == {"optin.yes", "optin.no"}
    assert await kit.consent(UK) == "pending"
    kit.later(60)
    (thanks,) = await kit.tap(UK, "optin.yes", "Yes")
    assert thanks["type"] == "text" and thanks["to"] == UK[1:]
    assert await kit.consent(UK) == "granted"
    events = await kit.sql(
        "SELECT status, method, jurisdiction, locale, message_ref FROM consent_events ORDER BY at"
    )
    ref = kit.keyring.blind_index(Index.WAMID, kit.wamid)
    assert [tuple(e) for e in events] == [
        ("pending", "whatsapp_double_opt_in", "gdpr", "en", None),
        ("granted", "whatsapp_double_opt_in", "gdpr", "en", ref),
    ]
    # Every message went through the inbox and was finished there by its turn.
    assert await kit.sql("SELECT state, payload IS NULL FROM inbox") == [("done", 1)] * 2


async def test_opt_in_no_records_no_consent(kit: TurnKit) -> None:
    await kit.say(UK, "JOIN")
    (declined,) = await kit.tap(UK, "optin.no")
    assert "JOIN" in text_of(declined)
    assert await kit.consent(UK) == "pending"


async def test_no_consent_without_a_notice(kit: TurnKit) -> None:
    await kit.say(UK, "YES")
    await kit.tap(UK, "optin.yes")
    assert await kit.consent(UK) is None


async def test_stop_revokes_and_is_confirmed_once(kit: TurnKit) -> None:
    await kit.say(GERMANY, "JOIN")
    await kit.say(GERMANY, "ja")
    assert await kit.consent(GERMANY) == "granted"
    (confirmation,) = await kit.say(GERMANY, "stopp")
    assert confirmation["type"] == "text" and "START" in text_of(confirmation)
    assert await kit.consent(GERMANY) == "revoked"
    methods = await kit.sql("SELECT method FROM consent_events WHERE status='revoked'")
    assert methods == [("whatsapp_stop",)]
    (again,) = await kit.say(GERMANY, "STOP")  # a second STOP: confirmed once more, no error
    assert again["type"] == "text"
    assert await kit.consent(GERMANY) == "revoked"


async def test_my_data_summary(kit: TurnKit) -> None:
    await kit.say(UK, "JOIN")
    await kit.tap(UK, "optin.yes")
    summary, menu = await kit.tap(UK, "menu.my_data")
    text = text_of(summary)
    assert "+44•••" in text and UK not in text  # the number masked
    assert "the GDPR" in text and "given" in text and "double opt-in" in text
    assert set(options_of(menu)) == {"my_data.export", "my_data.erase", "menu.back"}
    audit = await kit.sql("SELECT count(*) FROM audit WHERE event='data_access'")
    assert audit == [(1,)]


async def test_erasure_leaves_no_contact_row(kit: TurnKit) -> None:
    await kit.say(UK, "JOIN")
    await kit.tap(UK, "optin.yes")
    (explain,) = await kit.say(UK, "DELETE MY DATA")
    assert "cannot be undone" in text_of(explain)
    (farewell,) = await kit.tap(UK, "erase.yes")
    assert "erased" in text_of(farewell)
    for table in ["contacts", "consents", "consent_events", "inbox"]:
        assert await kit.sql(f"SELECT count(*) FROM {table}") == [(0,)], table
    # Only the farewell is left, queued under the bot's own key and no longer anyone's.
    assert await kit.sql("SELECT contact_id, status FROM messages") == [(None, "queued")]
    phone = kit.keyring.blind_index(Index.PHONE, UK)
    assert await kit.sql("SELECT phone_index FROM suppressions") == [(phone,)]

    (menu,) = await kit.say(UK, "hello")  # unknown again: a new person at the start
    assert "menu.join" in options_of(menu)
    assert await kit.sql("SELECT count(*) FROM contacts") == [(1,)]
