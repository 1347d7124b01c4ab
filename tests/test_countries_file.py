"""`flows/policy/countries.yaml` is what the bot uses, and a mistake in it names file and line.

The privacy team edits which places fall under which law, the US area codes, the residence
list and the words people type for a place. Editing a copy of the file changes what the code
decides; a malformed copy is one `file:line: reason` line at load and in `flows check`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.conversation.check import check
from bot.conversation.engine import Say
from bot.conversation.flowfile import load_flows
from bot.conversation.render import Renderer
from bot.datafile import DataFileError
from bot.i18n import Texts
from bot.locales_cli import template
from bot.privacy.countries import COUNTRIES_FILE, Countries, load_countries, shipped_countries
from bot.privacy.jurisdiction import (
    OTHER,
    SHIPPED_LANGUAGES,
    Jurisdiction,
    Law,
    decide,
    parse_residence,
    region_of_number,
    residence_choices,
)
from bot.whatsapp.messages import ListMessage

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "flows" / COUNTRIES_FILE


def edited(tmp_path: Path, old: str, new: str) -> Countries:
    """A copy of the shipped file with one edit, loaded."""
    text = SHIPPED.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {SHIPPED}"
    path = tmp_path / "countries.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return load_countries(path)


# --- the file is what the code uses -----------------------------------------------------------


def test_an_alias_added_to_the_file_parses(tmp_path: Path) -> None:
    countries = edited(tmp_path, "NL: [Holland,", "NL: [Nederlandene, Holland,")
    assert parse_residence("Nederlandene", countries) == ("NL", None)
    assert parse_residence("I live in the Nederlandene", countries) == ("NL", None)
    assert parse_residence("Nederlandene") is None  # the shipped file does not have it


def test_a_country_moved_under_a_law_changes_the_decision(tmp_path: Path) -> None:
    countries = edited(tmp_path, "    - SG  # Singapore", "    - SG  # Singapore\n    - CH")
    assert decide(("CH", None), None, countries) == Jurisdiction(Law.PDPA, "CH", None, "stated")
    assert decide(None, "+41791234567", countries).law is Law.PDPA
    assert decide(None, "+41791234567").law is Law.STRICT


def test_an_area_code_added_to_the_file_places_a_number(tmp_path: Path) -> None:
    countries = edited(tmp_path, "US-CA: [209,", "US-CA: [212, 209,")
    assert region_of_number("+12125550123", countries) == "US-CA"
    assert decide(None, "+12125550123", countries).law is Law.CCPA
    assert decide(None, "+12125550123").law is Law.STRICT


def test_whole_answer_words_come_from_the_file(tmp_path: Path) -> None:
    assert parse_residence("tell us") is None
    countries = edited(tmp_path, "whole_answer_only: [US, ", "whole_answer_only: [")
    assert parse_residence("tell us", countries) == ("US", None)


def test_the_residence_list_comes_from_the_file(tmp_path: Path) -> None:
    countries = edited(tmp_path, "  - BR\n", "  - IE\n")
    codes = [c.code for c in residence_choices("en", countries)]
    assert codes == ["GB", "DE", "FR", "ES", "PT", "US-CA", "US", "IE", "SG", OTHER]
    assert "IE" not in [c.code for c in residence_choices("en")]


def test_the_shipped_file_reads_norway_as_a_country() -> None:
    """YAML 1.1 would read NO as false; the file is read with the flow files' rules."""
    assert "NO" in shipped_countries().places(Law.GDPR)
    assert parse_residence("Norge") == ("NO", None)


# --- the rows the bot shows -------------------------------------------------------------------


def rows(language: str, countries: Countries | None = None) -> dict[str, str]:
    """id -> title of the residence list as the bot sends it."""
    flows = load_flows(ROOT / "flows")
    renderer = Renderer(flows, Texts(ROOT / "locales"), {}, countries)
    message = renderer.render(Say("residence.ask", "residence.ask"), language, "gdpr")
    assert isinstance(message, ListMessage)
    return {row.id: row.title for _, section in message.sections for row in section}


@pytest.mark.parametrize("language", [*SHIPPED_LANGUAGES, "xx"])
def test_every_row_has_a_title_whatsapp_accepts(language: str) -> None:
    shown = rows(language)
    assert 1 < len(shown) <= 10  # WhatsApp list limit
    assert all(0 < len(title) <= 24 for title in shown.values())  # WhatsApp row title limit
    assert list(shown)[-1] == f"residence.{OTHER}"
    assert all(parse_residence(i.removeprefix("residence.")) for i in list(shown)[:-1])


def test_titles_that_are_texts_come_from_the_catalogs() -> None:
    assert rows("fr")["residence.US-CA"] == "Californie"
    assert rows("de")["residence.US-CA"] == "Kalifornien"
    assert rows("en")["residence.US"] == "USA (other state)"
    assert rows("de")["residence.DE"] == "Deutschland"
    assert rows("en")["residence.OTHER"] == "Another country"
    assert rows("xx") == rows("en")


def test_locales_extract_knows_the_titles_of_the_list() -> None:
    ids = {m.id for m in template(ROOT / "flows", ROOT / "locales")}
    assert {"residence.california", "residence.us_other", "residence.other"} <= ids


# --- mistakes -----------------------------------------------------------------------------------

GOOD = "laws:\n  gdpr: [DE, NO]\nresidence_list: [DE]\n"
MISTAKES = [
    ("laws:\n  gdpr: [DE\nresidence_list: [DE]\n", 3, "not valid YAML"),
    ("laws:\n  gdrp: [DE]\nresidence_list: [DE]\n", 2, "'gdrp' is not a law"),
    ("laws:\n  strict: [DE]\nresidence_list: [DE]\n", 2, "every place not listed gets it"),
    ("laws:\n  gdpr: [DE, QQ]\nresidence_list: [DE]\n", 2, "QQ is not a country code"),
    ("laws:\n  gdpr: [Germany]\nresidence_list: [DE]\n", 2, "'Germany' is not a country code"),
    ("laws:\n  gdpr: [DE]\n  pdpa: [DE]\nresidence_list: [DE]\n", 3, "under both gdpr and pdpa"),
    ("laws:\n  gdpr: [DE]\nlaws:\n  pdpa: [SG]\nresidence_list: [DE]\n", 3, "written twice"),
    ("residence_list: [DE]\n", 1, "laws is missing"),
    (GOOD + "countries: [DE]\n", 4, "unknown section 'countries'"),
    (GOOD.replace("[DE]\n", "[DE, FR, ES, PT, GB, IE, IT, NL, BE, AT]\n"), 3, "10 rows"),
    (GOOD.replace("[DE]\n", "[DE, DE]\n"), 3, "DE is listed twice"),
    (GOOD.replace("[DE]\n", "\n  - DE\n  - US-CA\n"), 3, "US-CA needs a title"),
    (GOOD.replace("[DE]\n", "\n  - DE\n  - US-CA: California\n"), 5, "'California' is not a"),
    (GOOD + "area_codes:\n  US-CA: [415, 41]\n", 5, "'41' is not a 3-digit area code"),
    (GOOD + "area_codes:\n  DE-BY: [415]\n", 5, "'DE-BY' is not a US state"),
    (GOOD + "area_codes:\n  US-CA: [415]\n  US-NY: [415]\n", 6, "415 is listed under US-CA"),
    (GOOD + "aliases:\n  NL: [Holland]\n  DE: [holland]\n", 6, "'holland' names both NL"),
    (GOOD + "aliases:\n  NL: Holland\n", 5, "aliases.NL must be a list of words"),
    (GOOD + "aliases:\n  NL: ['...']\n", 5, "'...' is not a word"),
    (GOOD + "own_names: [DE, US-CA]\n", 4, "'US-CA' is not a country code like DE"),
    ("- DE\n", 1, "the file must be sections: laws"),
]


@pytest.mark.parametrize(("text", "line", "reason"), MISTAKES)
def test_a_mistake_is_one_line_naming_file_and_line(
    tmp_path: Path, text: str, line: int, reason: str
) -> None:
    path = tmp_path / "countries.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataFileError) as caught:
        load_countries(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: "), message
    assert reason in message


def test_a_good_small_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "countries.yaml"
    path.write_text(GOOD, encoding="utf-8")
    countries = load_countries(path)
    assert countries.places(Law.GDPR) == {"DE", "NO"}
    assert decide(("FR", None), None, countries).law is Law.STRICT  # listed nowhere here
    assert load_countries(SHIPPED).file == f"flows/{COUNTRIES_FILE}"  # shown from the checkout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "flows", tmp_path / "flows")
    shutil.copytree(ROOT / "locales", tmp_path / "locales")
    return tmp_path


def test_flows_check_names_a_broken_countries_file(repo: Path) -> None:
    path = repo / "flows" / COUNTRIES_FILE
    path.write_text(path.read_text(encoding="utf-8").replace("  ccpa:", "  ccpa2:"), "utf-8")
    line = next(i for i, t in enumerate(path.read_text("utf-8").splitlines(), 1) if "ccpa2" in t)
    found = [str(p) for p in check(repo / "flows", repo / "locales")]
    assert found == [f"flows/{COUNTRIES_FILE}:{line}: laws: 'ccpa2' is not a law to list here "
                     "(gdpr, ccpa, pdpa, lgpd)"]  # fmt: skip


def test_flows_check_wants_a_row_title_in_every_catalog(repo: Path) -> None:
    path = repo / "flows" / COUNTRIES_FILE
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("  - SG\n", "  - US-NY: residence.new_york\n"), "utf-8")
    found = [str(p) for p in check(repo / "flows", repo / "locales")]
    assert found == [
        f"locales/{lang}/LC_MESSAGES/bot.po: 'residence.new_york' is missing"
        for lang in ("de", "en", "es", "fr", "pt")
    ]


def test_serve_names_a_broken_countries_file_in_one_line(tmp_path: Path) -> None:
    """The running bot reads the file shipped beside its code: a copy of the checkout shows it."""
    for part in ("bot", "flows", "locales"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp_path / "flows" / COUNTRIES_FILE
    path.write_text(path.read_text("utf-8").replace("  lgpd:", "  lgdp:"), "utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "BOT_"))}
    env |= {"PYTHONPATH": str(tmp_path), "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/b.db"}
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "serve", "--dev"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: flows/{COUNTRIES_FILE}:") and "'lgdp' is not a law" in last
