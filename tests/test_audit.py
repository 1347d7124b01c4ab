"""audit verify on a real history: it passes, and it names each kind of tampering."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import orjson
import pytest

from bot.audit import GENESIS, entry_hash, write_checkpoint
from bot.crypto import Keyring
from bot.runtime.checkpoints import checkpoint
from tests.conftest import Bot
from tests.flowkit import GERMANY, UK, say, tap
from tests.processes import run_cli

# Tampering edits the SQLite file directly; the chain code is the same on PostgreSQL,
# where test_operator and test_retention verify real histories.
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
async def history(bot: Bot) -> tuple[Bot, Path, str]:
    """A real audit trail from two conversations, and its head hash."""
    assert bot.settings.sqlite_path is not None
    for person in (UK, GERMANY):
        await say(bot, person, "JOIN", 2)
        await tap(bot, person, "optin.yes")
    await say(bot, UK, "MY DATA", 2)
    await bot.idle()
    code, out, err = await run_cli(bot, "audit", "verify")
    assert code == 0, err
    head = out.split("head: ")[1].split()[0]
    return bot, bot.settings.sqlite_path, head


def tamper(path: Path, *statements: str) -> None:
    with sqlite3.connect(path) as db:
        for statement in statements:
            db.execute(statement)


async def test_real_history_verifies_with_its_head(history: tuple[Bot, Path, str]) -> None:
    bot, _, head = history
    code, out, _ = await run_cli(bot, "audit", "verify", "--expect-head", head)
    assert code == 0 and f"head: {head}" in out
    assert int(out.split("entries: ")[1].split()[0]) >= 10
    assert head.startswith("k1:")  # keyed: HMAC-SHA256 under BOT_AUDIT_KEY


async def noted(bot: Bot) -> None:
    """The server's checkpoint of the head, as its timer and its shutdown write it."""
    s = bot.services
    assert await checkpoint(s.db, bot.settings.audit_key, bot.settings.audit_checkpoints)


def rechain(path: Path, key: bytes | None, start: int = 1) -> None:
    """Rewrite every hash from entry `start` on, as someone with the database but not
    the audit key would: unkeyed SHA-256 (`key` None) or another key."""
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        rows = [dict(r) for r in db.execute("SELECT * FROM audit ORDER BY id")]
        prev = rows[start - 2]["hash"] if start > 1 else GENESIS
        for row in rows[start - 1 :]:
            row["prev_hash"] = prev
            row["hash"] = prev = entry_hash(row, key)
            db.execute(
                "UPDATE audit SET prev_hash=?, hash=? WHERE id=?",
                (row["prev_hash"], row["hash"], row["id"]),
            )


LAST = "(SELECT max(id) FROM audit)"


@pytest.mark.parametrize(
    ("statements", "message"),
    [
        (["UPDATE audit SET actor='someone-else' WHERE id=3"], "entry 3 was edited"),
        (["UPDATE audit SET detail='{}' WHERE id=5"], "entry 5 was edited"),
        (["DELETE FROM audit WHERE id=4"], "entry 4 is missing"),
        (
            [  # swap the contents of entries 2 and 3, keeping ids in sequence
                "UPDATE audit SET id=-2 WHERE id=2",
                "UPDATE audit SET id=2 WHERE id=3",
                "UPDATE audit SET id=3 WHERE id=-2",
            ],
            "entry 2 does not follow entry 1",
        ),
        ([f"DELETE FROM audit WHERE id >= {LAST} - 1"], "entries were cut from the end"),
        (["DELETE FROM audit"], "the table was emptied"),
    ],
    ids=["edited-actor", "edited-detail", "deleted", "swapped", "cut-tail", "emptied"],
)
async def test_tampering_is_named(
    history: tuple[Bot, Path, str], statements: list[str], message: str
) -> None:
    bot, path, _ = history
    await noted(bot)
    tamper(path, *statements)
    code, _, err = await run_cli(bot, "audit", "verify")
    assert code == 1
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("key", "start", "message"),
    [
        (None, 1, "the chain was rewritten from there on"),  # every entry, plain SHA-256
        (None, 5, "entry 5 has an unkeyed hash after keyed entries"),
        (os.urandom(32), 1, "entry 1 was edited, or its hash recomputed without the audit key"),
    ],
    ids=["sha256-whole-chain", "sha256-from-entry-5", "wrong-key"],
)
async def test_a_recomputed_chain_is_found(
    history: tuple[Bot, Path, str], key: bytes | None, start: int, message: str
) -> None:
    bot, path, _ = history
    await noted(bot)
    tamper(path, "UPDATE audit SET actor='someone-else' WHERE id=6")
    rechain(path, key, start)
    code, _, err = await run_cli(bot, "audit", "verify")
    assert code == 1 and message in err


async def test_a_head_noted_earlier_verifies_after_more_traffic(
    history: tuple[Bot, Path, str],
) -> None:
    bot, path, head = history
    await noted(bot)
    await say(bot, GERMANY, "MY DATA", 2)
    await bot.idle()
    await noted(bot)
    code, out, err = await run_cli(bot, "audit", "verify", "--expect-head", head)
    assert code == 0, err
    assert "expected head: entry" in out and "checkpoints: 2" in out
    assert f"head: {head}" not in out  # the chain grew past it
    # A head that was never in the chain, or whose entry was cut, is refused.
    code, _, err = await run_cli(bot, "audit", "verify", "--expect-head", "k1:not-a-head")
    assert code == 1 and "is not in the chain" in err
    tamper(path, f"DELETE FROM audit WHERE id >= (SELECT id FROM audit WHERE hash='{head}')")
    code, _, err = await run_cli(bot, "audit", "verify", "--expect-head", head)
    assert code == 1 and "cut from the end" in err


async def test_a_forged_checkpoint_is_refused(history: tuple[Bot, Path, str]) -> None:
    bot, _, head = history
    await noted(bot)
    other = Path(bot.settings.audit_checkpoints)
    write_checkpoint(other, os.urandom(32), 999, head)  # signed, but not with our key
    code, _, err = await run_cli(bot, "audit", "verify")
    assert code == 1 and "checkpoint line 2" in err and "not signed by the audit key" in err


async def test_an_old_unkeyed_chain_still_verifies_and_keyed_entries_follow(
    history: tuple[Bot, Path, str],
) -> None:
    bot, path, _ = history
    rechain(path, None)  # as written before the audit key (plain SHA-256)
    old = int((await bot.sql("SELECT max(id) FROM audit"))[0][0])
    code, out, err = await run_cli(bot, "audit", "verify")
    assert code == 0, err
    assert f"entries: {old} (0 keyed, {old} from before the audit key)" in out
    await say(bot, GERMANY, "MY DATA", 2)  # the upgraded server appends keyed entries
    await bot.idle()
    await noted(bot)
    code, out, err = await run_cli(bot, "audit", "verify")
    assert code == 0, err
    total = int(out.split("entries: ")[1].split()[0])
    assert total > old and f"({total - old} keyed, {old} from before the audit key)" in out
    tamper(path, "UPDATE audit SET outcome='x' WHERE id=2")  # the old part is still checked
    code, _, err = await run_cli(bot, "audit", "verify")
    assert code == 1 and "entry 2 was edited" in err


@pytest.mark.parametrize("bot", [{"BOT_AUDIT_CHECKPOINT_INTERVAL": 1}], indirect=True)
async def test_the_server_notes_the_head_on_its_timer(bot: Bot) -> None:
    path = bot.settings.audit_checkpoints
    await say(bot, UK, "JOIN", 2)
    await bot.idle()
    for _ in range(50):
        if path.exists() and path.read_text().strip():
            break
        await asyncio.sleep(0.1)
    head = (await bot.sql("SELECT hash FROM audit ORDER BY id DESC LIMIT 1"))[0][0]
    lines = [orjson.loads(line) for line in path.read_text().splitlines()]
    assert lines[-1]["head"] == head and set(lines[-1]) == {"at", "id", "head", "sig"}
    code, out, err = await run_cli(bot, "audit", "verify")
    assert code == 0 and f"checkpoints: {len(lines)}" in out, err


# Every event the data-protection model names, from one real history -----------------------

REQUIRED = {
    "message_received", "message_sent", "message_failed", "flow_transition",
    "consent_granted", "consent_revoked", "data_access", "data_export", "data_deletion",
    "handoff_started", "handoff_ended", "rate_limit_exceeded", "policy_refused",
    "webhook_validation_failed", "webhook_signature_failed", "key_rotated", "retention_purge",
}  # fmt: skip


@pytest.mark.parametrize("bot", [{"BOT_INBOUND_BURST": 6}], indirect=True)
async def test_every_required_event_is_written_and_the_chain_holds(bot: Bot) -> None:
    from bot.keys import rotate
    from bot.policy.business import SendRefused, TemplateSend, queue_template
    from bot.privacy.retention import purge

    s = bot.services
    await say(bot, UK, "JOIN", 2)
    await tap(bot, UK, "optin.yes")  # consent_granted, flow_transition
    await say(bot, UK, "MY DATA", 2)  # data_access
    await tap(bot, UK, "my_data.export")  # data_export
    await say(bot, UK, "AGENT")  # handoff_started
    bot.clock.advance(bot.settings.BOT_HANDOFF_TIMEOUT + 1)
    await say(bot, UK, "STOP")  # handoff_ended (timeout), consent_revoked
    bot.fake.fail_next(131026)
    await bot.say(GERMANY, "hello")  # message_failed: undeliverable
    for n in range(8):
        await bot.say(GERMANY, f"again {n}")  # rate_limit_exceeded
    promo = TemplateSend(GERMANY, "promo_offer", "marketing", {"name": "x", "offer": "y"})
    with pytest.raises(SendRefused):  # policy_refused: no consent
        await queue_template(s.db, s.people, s.templates, promo, tier=None)
    await bot.post(b"not json")  # webhook_validation_failed
    await bot.post(b"{}", secret="not-the-secret")  # counted: audited when its window ends
    await bot.post(b"{}", secret="not-the-secret")
    bot.clock.advance(bot.settings.BOT_WEBHOOK_FAILURE_WINDOW)  # the next failure writes it
    await bot.post(b"{}", secret="not-the-secret")
    await say(bot, UK, "DELETE MY DATA")
    await tap(bot, UK, "erase.yes")  # data_deletion
    await bot.idle()
    # A new master key first: every data key is re-wrapped under it (key_rotated).
    from bot.config import MasterKey, parse_master_keys

    old = parse_master_keys(bot.settings.BOT_MASTER_KEYS)
    keyring = Keyring([MasterKey("k-new", os.urandom(32)), *old], bot.settings.index_key)
    await rotate(s.db, s.keys, keyring)
    year_later = bot.clock() + 400 * 24 * 3600  # everything is past its period
    await purge(s.db, bot.settings.retention_days, 7, now=year_later)
    events = {r[0] for r in await bot.sql("SELECT DISTINCT event FROM audit")}
    assert REQUIRED - events == set()
    code, out, err = await run_cli(bot, "audit", "verify")
    assert code == 0, err
    assert "audit chain intact" in out
