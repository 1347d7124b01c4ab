"""Operator commands as an operator runs them: python -m bot export | erase | audit verify."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from pathlib import Path

from tests.conftest import Bot
from tests.flowkit import UK, say, tap

ROOT = Path(__file__).resolve().parents[1]


async def run_cli(bot: Bot, *args: str) -> tuple[int, str, str]:
    """Run `python -m bot ARGS` with the same settings as the running test bot."""
    s = bot.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "BOT_"))}
    env |= {
        "WHATSAPP_APP_SECRET": s.WHATSAPP_APP_SECRET,
        "WHATSAPP_VERIFY_TOKEN": s.WHATSAPP_VERIFY_TOKEN,
        "DATABASE_URL": s.DATABASE_URL,
        "BOT_MASTER_KEYS": s.BOT_MASTER_KEYS,
        "BOT_INDEX_KEY": s.BOT_INDEX_KEY,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


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
