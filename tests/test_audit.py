"""audit verify on a real history: it passes, and it names each kind of tampering."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

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
        await say(bot, person, "JOIN")
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
