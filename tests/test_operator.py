"""Operator commands as an operator runs them: python -m bot export | erase | audit verify."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.conftest import Bot
from tests.flowkit import UK, say, tap
from tests.processes import run_cli

ROOT = Path(__file__).resolve().parents[1]


async def test_export_prints_the_persons_document_and_is_audited(bot: Bot) -> None:
    await say(bot, UK, "JOIN")
    await tap(bot, UK, "optin.yes")
    await bot.idle()
    code, out, err = await run_cli(bot, "export", UK)
    assert code == 0, err
    doc = json.loads(out)
    assert {"contact", "consents", "messages", "audit"} <= set(doc)
    assert doc["contact"]["phone"] == UK
    (marketing,) = doc["consents"]
    assert marketing["purpose"] == "marketing" and marketing["status"] == "granted"
    for change in marketing["history"]:
        assert {"at", "method", "source", "policy_version", "jurisdiction"} <= set(change)
    assert len(doc["messages"]) == 4  # JOIN, notice, Yes, thanks
    exports = await bot.sql("SELECT actor, outcome FROM audit WHERE event='data_export'")
    assert exports == [("operator", "ok")]


async def test_export_of_an_unknown_number_has_no_contact(bot: Bot) -> None:
    code, out, err = await run_cli(bot, "export", "+447700900999")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["contact"] is None and doc["consents"] == [] and doc["messages"] == []
    assert await bot.sql("SELECT outcome FROM audit WHERE event='data_export'") == [("not_found",)]


async def test_export_refuses_a_malformed_number(bot: Bot) -> None:
    code, out, err = await run_cli(bot, "export", "not-a-number")
    assert code == 1 and out == ""
    assert err.strip().startswith("error:") and len(err.strip().splitlines()) == 1


async def test_erase_command_crypto_shreds_like_the_chat(bot: Bot) -> None:
    await say(bot, UK, "JOIN")
    await tap(bot, UK, "optin.yes")
    await bot.idle()
    code, out, err = await run_cli(bot, "erase", UK)
    assert code == 0, err
    assert out.startswith("erased:")
    for table in ["contacts", "consents", "consent_events", "messages", "inbox"]:
        assert await bot.sql(f"SELECT count(*) FROM {table}") == [(0,)], table
    assert len(await bot.sql("SELECT * FROM suppressions")) == 1
    code, _, err = await run_cli(bot, "erase", UK)
    assert code == 1 and "nothing is held" in err


async def test_audit_verify_passes_then_finds_tampering(bot: Bot) -> None:
    await say(bot, UK, "JOIN")
    await tap(bot, UK, "optin.yes")
    await say(bot, UK, "MY DATA", 2)
    await bot.idle()
    code, out, err = await run_cli(bot, "audit", "verify")
    assert code == 0, err
    head = out.split("head: ")[1].split()[0]
    assert "audit chain intact" in out

    code, out, _ = await run_cli(bot, "audit", "verify", "--expect-head", head)
    assert code == 0
    if not bot.settings.sqlite_path:
        return  # tampering below edits the SQLite file directly
    path = bot.settings.sqlite_path
    with sqlite3.connect(path) as db:
        db.execute("UPDATE audit SET outcome='denied' WHERE id=2")
    code, _, err = await run_cli(bot, "audit", "verify")
    assert code == 1 and "entry 2 was edited" in err
