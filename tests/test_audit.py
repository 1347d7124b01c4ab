"""audit verify on a real history: it passes, and it names each kind of tampering."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from bot.crypto import Keyring
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
    ],
    ids=["edited-actor", "edited-detail", "deleted", "swapped"],
)
async def test_tampering_is_named(
    history: tuple[Bot, Path, str], statements: list[str], message: str
) -> None:
    bot, path, _ = history
    tamper(path, *statements)
    code, _, err = await run_cli(bot, "audit", "verify")
    assert code == 1
    assert message in err


async def test_a_cut_tail_needs_the_expected_head(history: tuple[Bot, Path, str]) -> None:
    bot, path, head = history
    tamper(path, "DELETE FROM audit WHERE id=(SELECT max(id) FROM audit)")
    code, _, _ = await run_cli(bot, "audit", "verify")
    assert code == 0  # the shorter chain is still a valid chain...
    code, _, err = await run_cli(bot, "audit", "verify", "--expect-head", head)
    assert code == 1 and "cut from the end" in err  # ...but not the one we knew


# Every event the data-protection model names, from one real history -----------------------

REQUIRED = {
    "message_received", "message_sent", "message_failed", "flow_transition",
    "consent_granted", "consent_revoked", "data_access", "data_export", "data_deletion",
    "handoff_started", "handoff_ended", "rate_limit_exceeded", "policy_refused",
    "webhook_validation_failed", "key_rotated", "retention_purge",
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
    await bot.post(b'{"object":"whatsapp_business_account"}', secret="not-the-secret")
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
