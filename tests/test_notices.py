"""Notices from facts: what a notice states is what the bot does, for every law and language.

The bot runs with retention periods nobody would guess (chat 45 days, marketing 12,
delivery records 3), and every notice must state exactly those; a new person's first
answer carries the short notice; `flows check` fails on a notice that lacks an element
its law requires.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.conversation.check import check
from bot.conversation.flowfile import load_keywords
from tests.conftest import fresh_sqlite, random_key
from tests.flowkit import BRAZIL, CALIFORNIA, GERMANY, INDIANA, SINGAPORE, UK, options_of, text_of
from tests.turnkit import ROOT, TurnKit

LANGUAGES = ["en", "de", "fr", "es", "pt"]
KEYWORDS, _ = load_keywords(ROOT / "flows" / "keywords.yaml")
RETENTION = "service:45,marketing:12,utility:60,authentication:2,support:200"
PERIODS = {  # each period of RETENTION (and the 3 days of delivery records), as written
    "en": ["45 days", "12 days", "60 days", "2 days", "200 days", "3 days"],
    "de": ["45 Tage", "12 Tage", "60 Tage", "2 Tage", "200 Tage", "3 Tage"],
    "fr": ["45 jours", "12 jours", "60 jours", "2 jours", "200 jours", "3 jours"],
    "es": ["45 días", "12 días", "60 días", "2 días", "200 días", "3 días"],
    "pt": ["45 dias", "12 dias", "60 dias", "2 dias", "200 dias", "3 dias"],
}
PERSON = {"gdpr": UK, "ccpa": CALIFORNIA, "pdpa": SINGAPORE, "lgpd": BRAZIL, "strict": INDIANA}
AUTHORITY = {"gdpr": "ico.org.uk", "lgpd": "gov.br/anpd"}  # CCPA and PDPA name none
FRANCE, SPAIN = "+33612345678", "+34612345678"
NEWCOMER = {"en": UK, "de": GERMANY, "fr": FRANCE, "es": SPAIN, "pt": BRAZIL}
URL = "https://privacy.example.org/policy"


@pytest.fixture
async def kit(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[TurnKit]:
    url = fresh_sqlite(sqlite_template, tmp_path)
    async with TurnKit.open(
        url, BOT_RETENTION=RETENTION, BOT_INBOX_KEEP_DAYS=3, BOT_PRIVACY_URL=URL
    ) as opened:
        yield opened


async def joined(kit: TurnKit, who: str, lang: str) -> list[dict[str, Any]]:
    """`who` picks `lang` and sends JOIN: the notice and its question."""
    await kit.speaking(who, lang)
    return await kit.say(who, "JOIN")


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("law", list(PERSON))
async def test_every_notice_states_the_retention_in_force(
    kit: TurnKit, law: str, lang: str
) -> None:
    notice, question = await joined(kit, PERSON[law], lang)
    text = text_of(notice)
    for period in PERIODS[lang]:
        assert period in text, f"{law}/{lang} notice lacks {period!r}:\n{text}"
    assert not re.search(r"\b(30|90|180)\b", text), f"a default period in {law}/{lang}:\n{text}"
    assert "{" not in text and "}" not in text, text
    assert URL in text
    assert set(options_of(question)) == {"optin.yes", "optin.no"}


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("law", list(PERSON))
async def test_every_right_in_a_notice_comes_with_its_way(
    kit: TurnKit, law: str, lang: str
) -> None:
    notice, _ = await joined(kit, PERSON[law], lang)
    text = text_of(notice)
    for group in ("my_data", "stop", "correct"):  # access, withdrawal, correction: their words
        assert KEYWORDS[group][lang][0] in text, f"{law}/{lang} lacks {group}:\n{text}"
    if law in AUTHORITY:
        assert AUTHORITY[law] in text
    if law != "ccpa":  # CCPA's rights are the opt-out's, not a consent's withdrawal
        assert KEYWORDS["erase"][lang][0] in text


@pytest.mark.parametrize(
    ("who", "authority"),
    [(UK, "ico.org.uk"), (GERMANY, "bfdi.bund.de"), (FRANCE, "cnil.fr"), (SPAIN, "aepd.es")],
)
async def test_the_authority_is_the_one_for_where_the_person_lives(
    kit: TurnKit, who: str, authority: str
) -> None:
    await kit.say(who, "hello")
    notice, _ = await kit.say(who, "JOIN")
    assert authority in text_of(notice)


async def test_a_stated_residence_changes_the_authority(kit: TurnKit) -> None:
    await kit.say(UK, "COUNTRY")
    await kit.tap(UK, "residence.DE")
    notice, _ = await kit.say(UK, "JOIN")
    assert "bfdi.bund.de" in text_of(notice) and "ico.org.uk" not in text_of(notice)


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_the_first_answer_to_someone_new_carries_the_policy_and_retention(
    kit: TurnKit, lang: str
) -> None:
    who = NEWCOMER[lang]
    (menu,) = await kit.say(who, "hello")  # the short notice heads the answer
    short = text_of(menu).split("\n\n")[0]
    assert URL in short
    assert PERIODS[lang][0] in short  # the chat's 45 days
    for group in ("my_data", "erase", "stop"):
        assert KEYWORDS[group][lang][0] in short
    assert options_of(menu)  # the answer itself, with its options
    (again,) = await kit.say(who, "hello")  # said once, not on every message
    assert URL not in text_of(again)
    shown = await kit.sql("SELECT detail FROM audit WHERE event = 'notice_shown'")
    assert len(shown) == 1


async def test_a_new_policy_version_is_announced_once_more(
    sqlite_template: Path, tmp_path: Path
) -> None:
    url = fresh_sqlite(sqlite_template, tmp_path)
    keys = {"BOT_MASTER_KEYS": f"k1:{random_key()}", "BOT_INDEX_KEY": random_key()}
    policy = "example.com/privacy"
    async with TurnKit.open(url, BOT_POLICY_VERSION="2026-01", **keys) as kit:
        (first,) = await kit.say(UK, "hello")
        (second,) = await kit.say(UK, "hello")
        assert policy in text_of(first) and policy not in text_of(second)
    async with TurnKit.open(url, BOT_POLICY_VERSION="2026-09", **keys) as kit:
        (first,) = await kit.say(UK, "hello")
        (second,) = await kit.say(UK, "hello")
        assert policy in text_of(first) and policy not in text_of(second)


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_stop_says_what_is_still_kept(kit: TurnKit, lang: str) -> None:
    who = NEWCOMER[lang]
    await kit.speaking(who, lang)
    (confirmation,) = await kit.say(who, KEYWORDS["stop"][lang][0])
    assert PERIODS[lang][0] in text_of(confirmation)  # our chat: still 45 days
    assert KEYWORDS["erase"][lang][0] in text_of(confirmation)  # and how to erase it now


# flows check --------------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "flows", tmp_path / "flows")
    shutil.copytree(ROOT / "locales", tmp_path / "locales")
    return tmp_path


def problems(repo: Path) -> list[str]:
    return [str(p) for p in check(repo / "flows", repo / "locales")]


def test_flows_check_fails_on_a_notice_that_lacks_a_required_element(repo: Path) -> None:
    po = repo / "locales/de/LC_MESSAGES/bot.po"
    text = po.read_text()
    start = text.index('msgctxt "gdpr"\nmsgid "optin.notice"')
    end = text.index("\n\n", start)
    planted = text[start:end].replace("{retention}", "30 Tagen").replace("{authority}", "uns")
    po.write_text(text[:start] + planted + text[end:])
    found = problems(repo)
    for element, placeholder in (("retention", "retention"), ("complaint", "authority")):
        expected = (
            f"gdpr: 'optin.notice' (gdpr) lacks the {element} ({{{placeholder}}}) that "
            "GDPR and UK GDPR, Art. 13 requires"
        )
        assert any(p.startswith("locales/de/LC_MESSAGES/bot.po:") and p.endswith(expected)
                   for p in found), found  # fmt: skip


def test_flows_check_fails_on_a_right_whose_way_does_not_exist(repo: Path) -> None:
    path = repo / "flows/policy/notices.yaml"
    path.write_text(
        path.read_text().replace("access: {keyword: my_data}", "access: {keyword: see}")
    )
    found = problems(repo)
    assert any("flows/policy/notices.yaml:" in p and "'see'; keywords.yaml lacks it" in p
               for p in found), found  # fmt: skip


def test_shipped_notices_pass_the_check() -> None:
    assert [str(p) for p in check(ROOT / "flows", ROOT / "locales")] == []


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_the_processors_named_are_the_files(
    sqlite_template: Path, tmp_path: Path, lang: str
) -> None:
    flows = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", flows)
    path = flows / "policy/notices.yaml"
    named = path.read_text().replace(
        "  - {does: hosting}", '  - {name: "Example Cloud Ltd.", does: hosting}'
    )
    path.write_text(named)
    async with TurnKit.open(fresh_sqlite(sqlite_template, tmp_path), flows_dir=flows) as kit:
        notice, _ = await joined(kit, UK, lang)
    assert "Meta Platforms (WhatsApp)" in text_of(notice)
    assert "Example Cloud Ltd." in text_of(notice)
    unnamed = kit.content.texts.get(lang, None, "processor.unnamed")
    assert unnamed not in text_of(notice)  # "our provider" only while none is named
