"""`flows check`, `flows diagram` and `locales extract|update|compile` on shipped and broken copies.

Each broken-copy test copies flows/ and locales/ into tmp_path, breaks one
thing the way a person editing the files would, and expects the checker to
name the file and line to open.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from babel.support import Translations

from bot.conversation.check import CODE_MESSAGE_IDS, Problem, check
from bot.conversation.diagram import mermaid
from bot.conversation.flowfile import load_flows
from bot.locales_cli import compile, extract, update

ROOT = Path(__file__).resolve().parents[1]
LANGUAGES = ("en", "de", "fr", "es", "pt")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "flows", tmp_path / "flows")
    shutil.copytree(ROOT / "locales", tmp_path / "locales")
    for stale in (tmp_path / "locales").rglob("*.mo"):
        stale.unlink()
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_of(path: Path, needle: str, after: str | None = None) -> int:
    """1-based line of the first `needle` (after the first `after`, if given)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if after in line) if after else 0
    return next(i + 1 for i in range(start, len(lines)) if needle in lines[i])


def po(repo: Path, lang: str) -> Path:
    return repo / "locales" / lang / "LC_MESSAGES" / "bot.po"


def problems(repo: Path, **params: str) -> list[str]:
    return [str(p) for p in check(repo / "flows", repo / "locales", params or None)]


def test_shipped_flows_and_texts_have_no_problems() -> None:
    found = check(ROOT / "flows", ROOT / "locales")
    assert found == [], "\n".join(map(str, found))


def test_problem_reads_as_where_colon_message() -> None:
    assert str(Problem("flows/optin.yaml:12", "boom")) == "flows/optin.yaml:12: boom"
    assert {"common.unknown", "residence.other", "law.gdpr"} <= set(CODE_MESSAGE_IDS)


# --- flows ------------------------------------------------------------------------------------


def test_file_that_does_not_load_is_reported_and_the_others_still_checked(repo: Path) -> None:
    optin, erase = repo / "flows/optin.yaml", repo / "flows/erase.yaml"
    edit(optin, "{to: confirmed, do: [grant_consent], if", "{to: confirmed, do: [grant_all], if")
    edit(erase, "erase.no: kept", "erase.no: {to: nowhere}")
    found = problems(repo)
    bad_action = [p for p in found if "unknown action 'grant_all'" in p]
    assert bad_action and bad_action[0].startswith(
        f"flows/optin.yaml:{line_of(optin, 'grant_all')}: "
    )
    assert f"flows/erase.yaml:{line_of(erase, 'nowhere')}: 'erase.nowhere' is not a state" in found
    assert not [p for p in found if "optin.notice" in p and "not a state" in p]  # no follow-ups


def test_unknown_inputs(repo: Path) -> None:
    optin, erase = repo / "flows/optin.yaml", repo / "flows/erase.yaml"
    edit(optin, "keywords: [join, start]", "keywords: [join, begin]")
    edit(optin, "      yes: {to: confirmed", "      yess: {to: confirmed")
    edit(erase, "erase.no: kept", "erase.nope: kept")
    found = "\n".join(problems(repo))
    assert f"flows/optin.yaml:{line_of(optin, 'begin')}: start_on keyword group 'begin'" in found
    assert f"flows/optin.yaml:{line_of(optin, 'yess:')}: on: 'yess' is not a keyword group" in found
    state = line_of(erase, "say: erase.explain")
    assert f"flows/erase.yaml:{state}: on: no state offers a button or row 'erase.nope'" in found


def test_unreachable_state_and_flow_that_never_starts(repo: Path) -> None:
    erase = repo / "flows/erase.yaml"
    erase.write_text(erase.read_text() + "  orphan:\n    say: erase.kept\n    end: true\n")
    lonely = repo / "flows/lonely.yaml"
    lonely.write_text(
        "flow: lonely\nentry: only\nstates:\n  only:\n    say: erase.kept\n    end: true\n"
    )
    found = problems(repo)
    line = line_of(erase, "say: erase.kept", after="orphan:")
    assert (
        f"flows/erase.yaml:{line}: state 'erase.orphan' is never reached: nothing leads to it"
        in found
    )
    assert any(p.startswith("flows/lonely.yaml:2: flow 'lonely' never starts") for p in found)


def test_state_with_no_way_out(repo: Path) -> None:
    residence = repo / "flows/residence.yaml"
    edit(residence, "    say: residence.done\n    end: true\n", "    say: residence.done\n")
    line = line_of(residence, "say: residence.done")
    expected = f"flows/residence.yaml:{line}: state 'residence.done' has no way out"
    assert any(p.startswith(expected) for p in problems(repo))


def test_back_cannot_wait_for_an_answer(repo: Path) -> None:
    media = repo / "flows/media.yaml"
    edit(media, "    back: true", "    back: true\n    on: {cancel: menu.main}")
    state = line_of(media, "say: common.media")
    expected = f"flows/media.yaml:{state}: back: true goes straight back; it cannot have on"
    assert expected in problems(repo)


def test_only_one_flow_starts_on_media(repo: Path) -> None:
    agent, media = repo / "flows/agent.yaml", repo / "flows/media.yaml"
    edit(agent, "  buttons: [menu.agent]\n", "  buttons: [menu.agent]\n  media: true\n")
    at = line_of(media, "media: true")
    expected = f"flows/media.yaml:{at}: start_on media: 'agent' already starts on media, and wins"
    assert expected in problems(repo)


def test_next_cycle(repo: Path) -> None:
    erase = repo / "flows/erase.yaml"
    edit(erase, "    say: erase.done\n    end: true", "    say: erase.done\n    next: kept")
    edit(erase, "    say: erase.kept\n    end: true", "    say: erase.kept\n    next: done")
    line = line_of(erase, "do: [erase_data]")
    expected = f"flows/erase.yaml:{line}: next: goes round: erase.done → erase.kept → erase.done"
    assert expected in problems(repo)


def test_too_many_buttons_and_rows_and_both_at_once(repo: Path) -> None:
    my_data, menu = repo / "flows/my_data.yaml", repo / "flows/menu.yaml"
    back = "      - {id: menu.back, title: button.menu}\n"
    more = "      - {id: my_data.x, title: button.yes}\n      - {id: my_data.y, title: button.no}\n"
    edit(my_data, back, back + more)
    row = "        - {id: menu.stop, title: menu.stop, description: menu.stop_hint}\n"
    extra = "".join(f"        - {{id: menu.x{i}, title: menu.stop}}\n" for i in range(3))
    edit(menu, row, row + extra)
    quiet = "    quiet_reprompt: true\n"
    edit(menu, quiet, quiet + "    buttons: [{id: menu.b, title: button.yes}]\n")
    found = problems(repo)
    state = line_of(my_data, "do: [show_data]")
    assert f"flows/my_data.yaml:{state}: 'my_data.summary': 5 buttons; WhatsApp allows 3" in found
    main = line_of(menu, "say: menu.main")
    assert f"flows/menu.yaml:{main}: 'menu.main': 11 list rows; WhatsApp allows 10" in found
    assert any(
        p.startswith(f"flows/menu.yaml:{main}: 'menu.main': buttons and a list") for p in found
    )


def test_keyword_group_missing_a_language_and_a_word_in_two_groups(repo: Path) -> None:
    keywords = repo / "flows/keywords.yaml"
    edit(keywords, "  fr: [AIDE, MENU]\n", "")
    edit(keywords, "de: [MITARBEITER, MENSCH]", "de: [MITARBEITER, MENSCH, ' ja ']")
    found = problems(repo)
    help_line = line_of(keywords, "en: [HELP")
    assert f"flows/keywords.yaml:{help_line}: keyword group 'help' has no 'fr' words" in found
    ja = line_of(keywords, "de: [JA]")
    assert f"flows/keywords.yaml:{ja}: 'JA' is in both 'agent' and 'yes'; 'agent' wins" in found


# --- texts ------------------------------------------------------------------------------------


def test_button_title_too_long_in_one_language_only(repo: Path) -> None:
    de = po(repo, "de")
    line = line_of(de, 'msgid "button.yes"')
    edit(de, 'msgid "button.yes"\nmsgstr "Ja"', f'msgid "button.yes"\nmsgstr "{"J" * 21}"')
    found = [p for p in problems(repo) if "button.yes" in p]
    assert found == [
        f"locales/de/LC_MESSAGES/bot.po:{line}: button title 'button.yes' is 21 characters "
        "with placeholders filled; WhatsApp allows 20"
    ]


def test_notice_too_long_in_one_law_variant(repo: Path) -> None:
    fr = po(repo, "fr")
    head = 'msgctxt "gdpr"\nmsgid "optin.notice"\nmsgstr ""\n'
    line = fr.read_text()[: fr.read_text().index(head)].count("\n") + 2  # the msgid line
    edit(fr, head, head + f'"{"x" * 4200}"\n')
    found = [p for p in problems(repo) if "optin.notice" in p]
    assert len(found) == 1
    assert found[0].startswith(
        f"locales/fr/LC_MESSAGES/bot.po:{line}: text 'optin.notice' (gdpr) is "
    )
    assert found[0].endswith("WhatsApp allows 4096")


def test_params_fill_placeholders_before_measuring(repo: Path) -> None:
    found = [p for p in problems(repo, company="C" * 1000) if "'menu.main'" in p]
    assert {p.split("/")[1] for p in found} == set(LANGUAGES)


def test_message_missing_in_one_locale(repo: Path) -> None:
    es = po(repo, "es")
    text = es.read_text()
    start = text.index('msgid "erase.kept"')
    es.write_text(text[:start] + text[text.index("\n\n", start) + 2 :])
    found = [p for p in problems(repo) if "erase.kept" in p]
    assert found == ["locales/es/LC_MESSAGES/bot.po: 'erase.kept' is missing"]


def test_law_variant_missing_in_a_translation(repo: Path) -> None:
    de = po(repo, "de")
    edit(de, 'msgctxt "pdpa"\nmsgid "optin.notice"', 'msgctxt "pdpa"\nmsgid "optin.notice_old"')
    found = problems(repo)
    expected = "locales/de/LC_MESSAGES/bot.po: no 'pdpa' variant of 'optin.notice'"
    assert any(p.startswith(expected) for p in found)


def test_placeholder_dropped_in_a_translation(repo: Path) -> None:
    pt = po(repo, "pt")
    line = line_of(pt, 'msgid "residence.done"')
    text = pt.read_text()
    entry = text[text.index('msgid "residence.done"') :].split("\n\n", 1)[0]
    assert "{law_name}" in entry
    pt.write_text(text.replace(entry, entry.replace("{law_name}", "a lei"), 1))
    expected = (
        f"locales/pt/LC_MESSAGES/bot.po:{line}: 'residence.done' has placeholders none; "
        "English has law_name"
    )
    assert expected in problems(repo)


def test_catalog_languages_must_be_the_shipped_ones(repo: Path) -> None:
    shutil.copytree(repo / "locales/de", repo / "locales/it")
    shutil.rmtree(repo / "locales/pt")
    found = problems(repo)
    unshipped = "locales/it/LC_MESSAGES/bot.po:1: 'it' is not a shipped language"
    assert any(p.startswith(unshipped) for p in found)
    assert "locales/pt/LC_MESSAGES/bot.po: missing: 'pt' is shipped but has no catalog" in found


def test_damaged_po_file(repo: Path) -> None:
    es = po(repo, "es")
    es.write_text(es.read_text() + "\nthis is not po\n")
    line = len(es.read_text().splitlines())
    expected = f"locales/es/LC_MESSAGES/bot.po:{line}: not a valid .po file"
    assert any(p.startswith(expected) for p in problems(repo))


# --- diagram ----------------------------------------------------------------------------------


def test_mermaid_for_every_flow() -> None:
    flows = load_flows(ROOT / "flows")
    for name, flow in flows.flows.items():
        text = mermaid(flows, name)
        assert text.startswith("stateDiagram-v2\n")
        assert f"[*] --> {flow.entry.replace('.', '_')}" in text
        for state in flow.states:
            assert f'state "{state}" as {state.replace(".", "_")}' in text
    optin = mermaid(flows, "optin")
    assert (
        "optin_notice --> optin_confirmed : optin.yes if consent_requested / grant_consent" in optin
    )
    assert "optin_notice --> menu_main : optin.yes otherwise" in optin
    assert "optin_notice --> menu_main : after 24h" in optin
    assert "optin_confirmed --> [*]" in optin
    assert "words join: JOIN" in optin


def test_mermaid_unknown_flow_lists_the_flows() -> None:
    with pytest.raises(KeyError, match="optin"):
        mermaid(load_flows(ROOT / "flows"), "nope")


# --- locales extract / update / compile -------------------------------------------------------


def test_extract_update_compile(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flows, locales = repo / "flows", repo / "locales"
    assert extract(flows, locales) == 0
    pot = (locales / "bot.pot").read_text()
    assert 'msgid "optin.notice"' in pot and 'msgctxt "gdpr"' in pot and "common.unknown" in pot

    optin = flows / "optin.yaml"
    optin.write_text(optin.read_text() + "  reminder:\n    say: optin.reminder\n    end: true\n")
    edit(flows / "erase.yaml", "say: erase.kept", "say: erase.done")
    assert extract(flows, locales) == 0
    assert update(locales) == 0
    for lang in LANGUAGES:
        with po(repo, lang).open("rb") as fh:
            catalog = read_po(fh, locale=lang)
        assert catalog.get("optin.reminder").string == ""
        assert catalog.get("optin.notice", context="gdpr").string  # translations kept
        assert "erase.kept" in catalog.obsolete

    assert compile(locales) == 0
    with (locales / "de/LC_MESSAGES/bot.mo").open("rb") as fh:
        assert Translations(fh).gettext("button.yes") == "Ja"
    assert capsys.readouterr().out.count("wrote") == 2 + len(LANGUAGES)


def test_compile_fails_on_a_damaged_catalog(repo: Path) -> None:
    es = po(repo, "es")
    es.write_text(es.read_text() + "\nthis is not po\n")
    assert compile(repo / "locales") == 1
    assert not (repo / "locales/es/LC_MESSAGES/bot.mo").exists()


def test_english_text_nobody_uses(repo: Path) -> None:
    edit(repo / "flows/erase.yaml", "say: erase.kept", "say: erase.done")
    line = line_of(po(repo, "en"), 'msgid "erase.kept"')
    expected = f"locales/en/LC_MESSAGES/bot.po:{line}: 'erase.kept' is used by no flow"
    assert any(p.startswith(expected) for p in problems(repo))
