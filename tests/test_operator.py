"""Operator commands as an operator runs them: python -m bot export | erase | audit verify."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import Bot, random_key
from tests.flowkit import UK, say, tap
from tests.processes import run_cli

ROOT = Path(__file__).resolve().parents[1]


async def test_export_prints_the_persons_document_and_is_audited(bot: Bot) -> None:
    await say(bot, UK, "JOIN", 2)
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
    assert len(doc["messages"]) == 5  # JOIN, notice, question, Yes, thanks
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
    await say(bot, UK, "JOIN", 2)
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
    await say(bot, UK, "JOIN", 2)
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


# Against `make run`'s database: the secrets `serve --dev` generated into var/dev.env ---------


def clean_env(**settings: str) -> dict[str, str]:
    prefixes = ("WHATSAPP_", "BOT_", "DATABASE_URL", "REDIS_URL")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)} | settings


def cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_the_readmes_commands_use_make_runs_dev_settings_and_say_so(tmp_path: Path) -> None:
    from bot.cli import DEV_ENV
    from bot.config import dev_env_file

    dev_env_file(tmp_path / DEV_ENV)  # as `serve --dev` makes it
    env = clean_env()
    send = cli(
        tmp_path, env, "send", "--to", UK, "--template", "order_update", "--category", "utility",
        "--param", "name=Ada", "--param", "order=A-17", "--param", "status=shipped",
    )  # fmt: skip
    assert send.returncode == 0, send.stderr
    assert send.stdout.startswith("accepted: message ")
    for args in (["export", UK], ["audit", "verify"], ["purge"], ["keys", "rotate"]):
        done = cli(tmp_path, env, *args)
        assert done.returncode == 0, (args, done.stderr)
        (line,) = done.stderr.strip().splitlines()  # one line naming what it used
        assert str(DEV_ENV) in line and "development" in line.lower()
    assert json.loads(cli(tmp_path, env, "export", UK).stdout)["contact"]["phone"] == UK
    handoff = cli(tmp_path, env, "handoff", "end", UK)
    assert handoff.returncode == 1 and "not handed off" in handoff.stderr
    erase = cli(tmp_path, env, "erase", UK)
    assert erase.returncode == 0 and erase.stdout.startswith("erased:"), erase.stderr


def test_real_settings_are_never_mixed_with_the_dev_file(tmp_path: Path) -> None:
    from bot.cli import DEV_ENV
    from bot.config import dev_env_file

    dev_env_file(tmp_path / DEV_ENV)
    # Production: the environment names every secret; the dev file is not read or announced.
    prod = clean_env(
        WHATSAPP_APP_SECRET="s", WHATSAPP_VERIFY_TOKEN="v",
        BOT_MASTER_KEYS=f"k1:{random_key()}", BOT_INDEX_KEY=random_key(),
        BOT_AUDIT_KEY=random_key(), DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'prod.db'}",
    )  # fmt: skip
    done = cli(tmp_path, prod, "audit", "verify")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert (tmp_path / "prod.db").exists() and not (tmp_path / "var" / "bot.db").exists()
    # Half a configuration is a mistake to name, not a reason to fall back to dev secrets.
    half = clean_env(WHATSAPP_APP_SECRET="s")
    done = cli(tmp_path, half, "audit", "verify")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {name}: is required but not set"
        for name in ("WHATSAPP_VERIFY_TOKEN", "BOT_MASTER_KEYS", "BOT_INDEX_KEY", "BOT_AUDIT_KEY")
    ]
    # The same in a .env file.
    (tmp_path / ".env").write_text("WHATSAPP_APP_SECRET=s\n")
    done = cli(tmp_path, clean_env(), "audit", "verify")
    assert done.returncode == 2 and "WHATSAPP_VERIFY_TOKEN" in done.stderr
    # Without var/dev.env, nothing to fall back to: each missing variable is named.
    (tmp_path / ".env").unlink()
    (tmp_path / DEV_ENV).unlink()
    done = cli(tmp_path, clean_env(), "audit", "verify")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[0] == (
        "error: WHATSAPP_APP_SECRET: is required but not set"
    )


async def test_the_export_and_the_stored_messages_hold_no_meta_message_id(bot: Bot) -> None:
    """Meta's message ids encode the number: only keyed hashes of them are kept, so neither
    the export nor a stored message's sealed content holds one, whichever field it came in
    (the message's own id, the message a reply or a reaction points at)."""
    from bot.crypto import open_sealed
    from bot.simulator import webhooks

    join = await bot.say(UK, "JOIN")
    (notice,) = await bot.replies(1)
    context = {"context": {"from": "15550001111", "id": notice.wamid}}
    yes = await bot.say(UK, webhooks.button_reply("optin.yes", "Yes") | context)
    (thanks,) = await bot.replies(1)
    reaction = {"type": "reaction", "reaction": {"message_id": thanks.wamid, "emoji": "👍"}}
    liked = await bot.say(UK, reaction)
    await bot.idle()
    wamids = [join, yes, liked, notice.wamid, thanks.wamid]
    # Each whole, its start (which encodes the number) and its end (its own random part).
    tails = [part for w in wamids for part in (w, w[6:30], w[-16:])]

    code, out, err = await run_cli(bot, "export", UK)
    assert code == 0, err
    assert [t for t in tails if t in out] == [], out
    inbound = [m["content"] for m in json.loads(out)["messages"] if m["direction"] == "in"]
    assert inbound[0]["text"] == {"body": "JOIN"} and inbound[0]["from"] == UK.lstrip("+")
    assert inbound[1]["interactive"]["button_reply"]["id"] == "optin.yes"
    assert inbound[1]["context"] == {"from": "15550001111"}

    person = await bot.services.people.find(e164=UK)
    assert person is not None
    rows = await bot.sql("SELECT id, body FROM messages WHERE direction='in'")
    assert len(rows) >= 2
    for mid, body in rows:
        stored = open_sealed(person.dk, body, f"messages/body/{mid}").decode()
        assert [t for t in tails if t in stored] == [], stored


def test_an_inbound_message_stored_with_its_ids_is_exported_without_them() -> None:
    """Rows stored before Meta's ids were left out still export without them."""
    import orjson

    from bot.crypto import DataKey, seal
    from bot.privacy.access import Held, export_document

    dk = DataKey("k", os.urandom(32))
    raw = {
        "from": "447700900123", "id": "wamid.OWN", "type": "reaction",
        "context": {"from": "15550001111", "id": "wamid.QUOTED", "forwarded": True},
        "reaction": {"message_id": "wamid.LIKED", "emoji": "👍"},
    }  # fmt: skip
    row = {
        "id": "m1", "direction": "in", "kind": "reaction", "category": "service",
        "status": "received", "error_code": None, "created_at": 0.0,
        "body": seal(dk, orjson.dumps(raw), "messages/body/m1"),
    }  # fmt: skip
    doc = export_document(
        Held(consents=[], counts={}, messages=[row], audit=[]), contact=None, dk=dk,
        profile=None, jurisdiction=None, language=None, controller={}, retention={},
    )  # fmt: skip
    assert "wamid." not in orjson.dumps(doc).decode()
    assert doc["messages"][0]["content"] == {
        "from": "447700900123", "type": "reaction",
        "context": {"from": "15550001111", "forwarded": True}, "reaction": {"emoji": "👍"},
    }  # fmt: skip
