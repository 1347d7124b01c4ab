"""The template registry and `templates check`, on the shipped files and on broken copies.

Each broken-copy test copies flows/templates.yaml into tmp_path, changes one thing
the way a person editing it would, and expects the checker to name the file, line,
template and language to open.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.policy.template_check import check_templates, load_risk_words, normalize
from bot.policy.templates import (
    PARAM_MAX,
    TemplateFileError,
    TemplateRefused,
    load_templates,
)
from bot.whatsapp.messages import Recipient, graph_body

ROOT = Path(__file__).resolve().parents[1]
FLOWS = ROOT / "flows"
LANGUAGES = ("en", "de", "fr", "es", "pt")
PROMO = {"name": "Anna", "offer": "20% off all shoes", "until": "31 May"}

CASINO = """
casino_night:
  category: marketing
  status: approved
  params: [name]
  languages:
    en:
      body: "Hi {{name}}, claim your casino bonus tonight!"
      footer: "Reply STOP to unsubscribe."
"""


@pytest.fixture(autouse=True)
def _shipped_flows_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOT_FLOWS_DIR", raising=False)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "templates.yaml"
    shutil.copy(FLOWS / "templates.yaml", target)
    return target


def edit(path: Path, old: str, new: str, after: str | None = None) -> None:
    """Replace the first `old` (after the first `after`, if given)."""
    text = path.read_text(encoding="utf-8")
    start = text.index(after) if after else 0
    at = text.index(old, start)
    path.write_text(text[:at] + new + text[at + len(old) :], encoding="utf-8")


def line_of(path: Path, needle: str, after: str | None = None) -> int:
    """1-based line of the first `needle` (after the first `after`, if given)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if after in line) if after else 0
    return next(i + 1 for i in range(start, len(lines)) if needle in lines[i])


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = main(["templates", "check", *args])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def problems(capsys: pytest.CaptureFixture[str], path: Path) -> list[str]:
    code, out, err = check(capsys, "--file", str(path))
    assert code == 1, (out, err)
    assert out[-1] == f"{len(out) - 1} problem(s) found"
    return out[:-1]


# --- the shipped files ------------------------------------------------------------------------


def test_shipped_registry_loads_with_every_language() -> None:
    registry = load_templates(FLOWS / "templates.yaml")
    assert registry.file == "flows/templates.yaml"
    promo, order = registry.get("promo_offer"), registry.get("order_update")
    assert promo is not None and order is not None
    assert (promo.category, promo.status, promo.params) == (
        "marketing",
        "approved",
        ("name", "offer", "until"),
    )
    assert order.category == "utility" and {"order", "status"} <= set(order.params)
    for spec in (promo, order):
        assert tuple(spec.languages) == LANGUAGES
    assert promo.languages["pt"].code == "pt_BR" and promo.languages["de"].code == "de"
    assert registry.get("nope") is None
    assert [s.name for s in registry] == list(registry.specs)


def test_shipped_templates_pass_the_real_command(capsys: pytest.CaptureFixture[str]) -> None:
    registry = load_templates(FLOWS / "templates.yaml")
    variants = sum(len(s.languages) for s in registry)
    code, out, err = check(capsys)
    assert code == 0, (out, err)
    assert out == [
        f"templates are ready to ship: {len(registry)} templates, {variants} language variants"
    ]


def test_the_module_command_from_another_folder(copy: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "BOT_FLOWS_DIR"}
    command = [sys.executable, "-m", "bot", "templates", "check"]
    shipped = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert shipped.returncode == 0, shipped.stdout + shipped.stderr
    assert shipped.stdout.startswith("templates are ready to ship")
    copy.write_text(copy.read_text(encoding="utf-8") + CASINO, encoding="utf-8")
    planted = subprocess.run(
        [*command, "--file", str(copy)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert planted.returncode == 1
    assert "casino_night (en): high-risk content" in planted.stdout


def test_shipped_marketing_names_a_stop_word_of_its_own_language() -> None:
    """Each language's opt-out uses that language's word, so people read what to type."""
    from bot.conversation.flowfile import load_keywords

    stop = load_keywords(FLOWS / "keywords.yaml")[0]["stop"]
    promo = load_templates(FLOWS / "templates.yaml").get("promo_offer")
    assert promo is not None
    for lang, variant in promo.languages.items():
        words = re.findall(r"\w+", f"{variant.body} {variant.footer}")
        assert any(word in words for word in stop[lang]), lang


# --- what the checker finds -------------------------------------------------------------------


def test_a_planted_casino_template_is_named(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy.write_text(copy.read_text(encoding="utf-8") + CASINO, encoding="utf-8")
    line = line_of(copy, "    en:", after="casino_night:")
    found = problems(capsys, copy)
    assert found == [f'{copy}:{line}: casino_night (en): high-risk content (gambling: "casino")']


@pytest.mark.parametrize(
    "text",
    [
        "CASINO",
        "Casinò",
        "cAsInÓ",
        "".join(chr(ord(c) + 0xFEE0) for c in "CASINO"),  # full-width letters
        "cas1no",
        "C4SINO",
    ],
)
def test_case_accent_width_and_digit_variants_are_caught(
    copy: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    edit(copy, "good news", f"the {text} night", after="promo_offer:")
    line = line_of(copy, "    en:", after="promo_offer:")
    assert problems(capsys, copy) == [
        f'{copy}:{line}: promo_offer (en): high-risk content (gambling: "casino")'
    ]


def test_risk_words_match_whole_words_in_every_language(copy: Path) -> None:
    edit(copy, "gute Nachrichten", "Sportwetten und Onlinecasino", after="promo_offer:")
    edit(copy, "bonne nouvelle", "jeux d\u2019argent", after="promo_offer:")  # curly apostrophe
    edit(copy, "Hola, {{name}}.", "Hola, {{name}}. Our cryptography keeps you safe.")
    registry = load_templates(copy)
    found = check_templates(registry, load_risk_words(FLOWS / "policy/risk_words.yaml"), ["STOP"])
    reasons = {(p.language, p.reason) for p in found if "high-risk" in p.reason}
    assert reasons == {
        ("de", 'high-risk content (gambling: "Onlinecasino")'),
        ("de", 'high-risk content (gambling: "Sportwetten")'),
        ("fr", 'high-risk content (gambling: "jeux d\'argent")'),
    }


def test_normalize_folds_case_accents_and_width_but_keeps_numbers() -> None:
    assert normalize("GLÜCKSSPIEL, Casinò!") == "glucksspiel casino"
    assert normalize("ｃａｓｉｎｏ") == normalize("CAS1NO") == "casino"  # noqa: RUF001
    assert normalize("Order 1045, 10:30") == "order 1045 10 30"


def test_another_word_list_can_be_named(
    copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    words = tmp_path / "words.yaml"
    words.write_text("test:\n  en: [good news]\n", encoding="utf-8")
    code, out, _ = check(capsys, "--file", str(copy), "--words", str(words))
    line = line_of(copy, "    en:", after="promo_offer:")
    assert code == 1
    assert out[0] == f'{copy}:{line}: promo_offer (en): high-risk content (test: "good news")'


def test_marketing_without_an_opt_out_line_fails(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(copy, '      footer: "Antworten Sie STOPP, um sich abzumelden."\n', "")
    # `END` stops, but "the end" in lower case tells nobody what to type.
    edit(copy, "Reply STOP to unsubscribe.", "Offer valid until the end of May.")
    en = line_of(copy, "    en:", after="promo_offer:")
    de = line_of(copy, "    de:", after="promo_offer:")
    found = problems(capsys, copy)
    assert [p.split(": marketing without an opt-out line")[0] for p in found] == [
        f"{copy}:{en}: promo_offer (en)",
        f"{copy}:{de}: promo_offer (de)",
    ]


def test_utility_needs_no_opt_out(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        "STOP"
        not in copy.read_text(encoding="utf-8").split("order_update:")[1].split("login_code:")[0]
    )
    code, _, _ = check(capsys, "--file", str(copy))
    assert code == 0


def test_undeclared_and_unused_parameters_fail(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(copy, "Hallo {{name}}", "Hallo {{customer}}", after="order_update:")
    edit(copy, "params: [code]", "params: [code, expiry]")
    de = line_of(copy, "    de:", after="order_update:")
    login = [line_of(copy, f"    {lang}:", after="login_code:") for lang in LANGUAGES]
    assert problems(capsys, copy) == [
        f"{copy}:{de}: order_update (de): {{{{customer}}}} is used but not declared in params",
        f"{copy}:{de}: order_update (de): parameter 'name' is declared but not used",
        *(
            f"{copy}:{line}: login_code ({lang}): parameter 'expiry' is declared but not used"
            for lang, line in zip(LANGUAGES, login, strict=True)
        ),
    ]


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ('"Your verification', '"{{code}} Your verification', "starts or ends with a parameter"),
        ("anyone.", "anyone. {{code}}", "starts or ends with a parameter"),
        ("anyone.", "anyone " + "x" * 1024, "body is 1088 characters, at most 1024"),
        ("expires in 10 minutes.", "expires in {{code}} minutes.", "footer cannot hold"),
        ("This code expires in 10 minutes.", "x" * 61, "footer is 61 characters, at most 60"),
        ("Do not share", "See https://example.com/verify. Do not share", "cannot hold a link"),
        ("Do not share", "See www.example.org. Do not share", "cannot hold a link"),
        ("Do not share", "See example.com/v. Do not share", "cannot hold a link"),
    ],
)
def test_shape_problems_in_one_language(
    copy: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, reason: str
) -> None:
    edit(copy, old, new, after="login_code:")
    line = line_of(copy, "    en:", after="login_code:")
    found = problems(capsys, copy)
    assert len(found) == 1 and found[0].startswith(f"{copy}:{line}: login_code (en): ")
    assert reason in found[0]


def test_a_link_is_fine_outside_authentication(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(copy, "If you need help", "Track it at https://example.com/track. If you need help")
    assert check(capsys, "--file", str(copy))[0] == 0


def test_a_template_without_languages_fails(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy.write_text(
        copy.read_text(encoding="utf-8")
        + "\nempty_one:\n  category: utility\n  status: pending\n  languages: {}\n",
        encoding="utf-8",
    )
    line = line_of(copy, "empty_one:")
    assert problems(capsys, copy) == [f"{copy}:{line}: empty_one: no languages: add at least one"]


# --- malformed files: exit 2 with file:line ---------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "needle", "reason"),
    [
        (
            'body: "Your verification code is {{code}}. Do not share it with anyone."',
            "body: {{code}} is your code",
            "body: {{code}}",
            "not valid YAML",
        ),
        ("category: marketing", "category: gambling", "category: gambling", "category must be"),
        ("status: approved", "status: yes", "status: yes", "status must be one of"),
        ("status: approved", "status: true", "status: true", "status must be one of"),
        ("params: [name, offer, until]", "params: name", "params: name", "params must be a list"),
        ("status: approved", "status: approved\n  status: paused", "status: paused", "twice"),
        ('footer: "Reply STOP', 'footnote: "Reply STOP', "footnote:", "unknown key 'footnote'"),
        ("    es:\n", "    it:\n", "    it:", "unknown language 'it'"),
        ('footer: "Reply STOP to unsubscribe."', "footer: false", "footer: false", "in quotes"),
    ],
)
def test_malformed_registry_exits_2_with_file_and_line(
    copy: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, needle: str, reason: str
) -> None:
    edit(copy, old, new)
    code, out, err = check(capsys, "--file", str(copy))
    assert code == 2 and out == []
    assert err.startswith(f"error: {copy}:{line_of(copy, needle)}: "), err
    assert reason in err and len(err.splitlines()) == 1


def test_missing_or_malformed_word_list_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = check(capsys, "--words", str(tmp_path / "missing.yaml"))
    assert code == 2 and err.startswith(f"error: {tmp_path / 'missing.yaml'}: cannot read")
    words = tmp_path / "words.yaml"
    words.write_text("gambling:\n  en: casino\n", encoding="utf-8")
    with pytest.raises(TemplateFileError, match=r"words\.yaml:2: gambling\.en must be a list"):
        load_risk_words(words)


# --- sending: the Graph API message and what is refused ----------------------------------------


def test_message_builds_the_exact_graph_body() -> None:
    registry = load_templates(FLOWS / "templates.yaml")
    params = {"until": "31. Mai", "name": "Anna", "offer": "20 % auf alle Schuhe"}  # any order
    body = graph_body(registry.message("promo_offer", "de", params), Recipient("491701234567"))
    assert body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "491701234567",
        "type": "template",
        "template": {
            "name": "promo_offer",
            "language": {"code": "de"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "parameter_name": "name", "text": "Anna"},
                        {"type": "text", "parameter_name": "offer", "text": "20 % auf alle Schuhe"},
                        {"type": "text", "parameter_name": "until", "text": "31. Mai"},
                    ],
                }
            ],
        },
    }


def test_portuguese_goes_out_under_metas_code() -> None:
    registry = load_templates(FLOWS / "templates.yaml")
    message = registry.message("login_code", "pt", {"code": "482913"})
    assert message.content()["template"]["language"] == {"code": "pt_BR"}


def test_render_fills_in_the_body() -> None:
    registry = load_templates(FLOWS / "templates.yaml")
    params = {"name": "Anna", "order": "A-1045", "status": "shipped"}
    assert registry.render("order_update", "en", params) == (
        "Hi Anna, there is news about your order A-1045: shipped. "
        "If you need help with it, just reply to this message."
    )


@pytest.mark.parametrize(
    ("name", "language", "params", "reason"),
    [
        ("promo_offerr", "en", PROMO, "unknown_template"),
        ("promo_offer", "it", PROMO, "template_language"),
        ("promo_offer", "en", {"name": "Anna", "offer": "shoes"}, "template_params"),
        ("promo_offer", "en", {**PROMO, "coupon": "X1"}, "template_params"),
        ("promo_offer", "en", {**PROMO, "name": ""}, "template_params"),
        ("promo_offer", "en", {**PROMO, "name": "   "}, "template_params"),
        ("promo_offer", "en", {**PROMO, "name": "Anna\nMarie"}, "template_params"),
        ("promo_offer", "en", {**PROMO, "name": "Anna\tMarie"}, "template_params"),
        ("promo_offer", "en", {**PROMO, "name": "Anna     Marie"}, "template_params"),
        ("promo_offer", "en", {**PROMO, "offer": "x" * (PARAM_MAX + 1)}, "template_params"),
    ],
)
def test_each_refusal_has_its_reason(
    name: str, language: str, params: dict[str, str], reason: str
) -> None:
    registry = load_templates(FLOWS / "templates.yaml")
    with pytest.raises(TemplateRefused) as refused:
        registry.message(name, language, params)
    assert refused.value.reason == reason
    assert "Marie" not in str(refused.value)  # a value may be personal: never in the reason
    assert refused.value.detail.startswith(f"the template {name}")  # says what is wrong
    with pytest.raises(TemplateRefused):
        registry.render(name, language, params)


def test_values_at_the_limits_are_accepted() -> None:
    registry = load_templates(FLOWS / "templates.yaml")
    params = {**PROMO, "name": "Anna    Marie", "offer": "x" * PARAM_MAX}
    sent = registry.message("promo_offer", "en", params).components[0]["parameters"]
    assert [p["text"] for p in sent] == ["Anna    Marie", "x" * PARAM_MAX, "31 May"]


def test_a_template_not_approved_is_refused_but_previewed(copy: Path) -> None:
    edit(copy, "status: approved", "status: pending", after="order_update:")
    registry = load_templates(copy)
    params = {"name": "Anna", "order": "A-1045", "status": "shipped"}
    with pytest.raises(TemplateRefused) as refused:
        registry.message("order_update", "en", params)
    assert refused.value.reason == "template_not_approved"
    assert registry.render("order_update", "en", params).startswith("Hi Anna,")
    assert registry.message("promo_offer", "en", PROMO).name == "promo_offer"
