"""`python -m bot templates check`: what Meta, or a person, would object to in a template.

Meta rejects templates whose parameters do not add up, that are too long or that
start or end with a parameter, and refuses links in code messages; it restricts
numbers whose templates touch high-risk subjects (gambling, payday loans, drugs ...).
Marketing that does not say how to stop breaks the consent the bot asked for. Each
finding names the file, line, template and language to open, as `flows check` does.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bot.conversation.flowfile import FlowError, load_keywords
from bot.policy.templates import (
    META,
    NAME,
    PLACEHOLDER,
    Registry,
    TemplateFileError,
    TemplateSpec,
    Variant,
    load_templates,
    read_yaml,
    shown_path,
)
from bot.whatsapp.messages import FOOTER_MAX

# In the flows folder. The risk words sit one folder down: every `*.yaml` beside the
# flows is read as a flow (keywords.yaml and templates.yaml excepted).
TEMPLATES, RISK_WORDS, KEYWORDS = "templates.yaml", "policy/risk_words.yaml", "keywords.yaml"
BODY_MAX = 1024
URL = re.compile(r"(?i)\bhttps?://|\bwww\.|\b[a-z0-9-]+\.(?:com|net|org|io|co|app|link|ly|me)\b")
WORD = re.compile(r"[^\W_]+")
UNSWAP = str.maketrans("013457", "oieast")  # digits standing in for letters: cas1no, b3t

RiskWords = dict[str, dict[str, tuple[str, ...]]]  # category -> language -> words and phrases


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    template: str
    language: str | None  # None: about the whole template
    reason: str

    def __str__(self) -> str:
        lang = f" ({self.language})" if self.language else ""
        return f"{self.file}:{self.line}: {self.template}{lang}: {self.reason}"


def normalize(text: str) -> str:
    """Words only, separated by one space, without case, accents or full-width forms:
    'CASINO', 'Casinò' and a full-width 'casino' all read 'casino'. A word that mixes
    letters and digits has the usual swaps undone ('cas1no'); plain numbers stay."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    words = WORD.findall(text)
    return " ".join(w if w.isalpha() or w.isdigit() else w.translate(UNSWAP) for w in words)


def _risks(variant: Variant, risk_words: RiskWords) -> list[str]:
    """Whole words and phrases only: spaces on both sides keep 'bet' out of 'alphabet'."""
    text = f" {normalize(' '.join(filter(None, (variant.body, variant.footer))))} "
    found = []
    for category, by_language in risk_words.items():
        for word in dict.fromkeys(w for words in by_language.values() for w in words):
            if f" {normalize(word)} " in text:
                found.append(f'high-risk content ({category}: "{word}")')
    return found


def _opt_out(stop_words: Iterable[str]) -> re.Pattern[str]:
    """A STOP word as a whole word, in capitals as keywords.yaml has it: the person must
    see what to type, and 'until the end' is no opt-out even though END stops."""
    words = sorted({w for w in stop_words if w.strip()}, key=len, reverse=True)
    if not words:
        return re.compile(r"(?!)")  # nothing to find: every marketing template is reported
    return re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, words)) + r")(?!\w)")


def _params(spec: TemplateSpec, variant: Variant) -> list[str]:
    found = []
    used = PLACEHOLDER.findall(variant.body)
    for inner in dict.fromkeys(used):
        if not NAME.match(inner):
            found.append(f"'{{{{{inner}}}}}' is not a parameter name (lowercase letters, 0-9, _)")
        elif inner not in spec.params:
            found.append(f"{{{{{inner}}}}} is used but not declared in params")
    found += [f"parameter '{p}' is declared but not used" for p in spec.params if p not in used]
    if re.match(r"\s*\{\{", variant.body) or re.search(r"\}\}\s*$", variant.body):
        found.append("the body starts or ends with a parameter, which Meta rejects")
    if variant.footer and PLACEHOLDER.search(variant.footer):
        found.append("a footer cannot hold parameters")
    return found


def check_templates(
    registry: Registry, risk_words: RiskWords, stop_words: Iterable[str]
) -> list[Problem]:
    """Every problem in the registry, in file order."""
    opt_out = _opt_out(stop_words)
    problems: list[Problem] = []
    for spec in registry:
        if not spec.languages:
            problems.append(
                Problem(registry.file, spec.line, spec.name, None, "no languages: add at least one")
            )
        for lang, variant in spec.languages.items():
            texts = [variant.body, variant.footer or ""]
            reasons = _risks(variant, risk_words) + _params(spec, variant)
            if len(variant.body) > BODY_MAX:
                reasons.append(f"body is {len(variant.body)} characters, at most {BODY_MAX}")
            if variant.footer and len(variant.footer) > FOOTER_MAX:
                reasons.append(f"footer is {len(variant.footer)} characters, at most {FOOTER_MAX}")
            if spec.category == "marketing" and not any(opt_out.search(t) for t in texts):
                reasons.append(
                    "marketing without an opt-out line: name a word of keywords.yaml's "
                    'stop group in capitals, e.g. "Reply STOP to unsubscribe."'
                )
            if spec.category == "authentication" and any(URL.search(t) for t in texts):
                reasons.append("an authentication template cannot hold a link")
            problems += [Problem(registry.file, variant.line, spec.name, lang, r) for r in reasons]
    return problems


def load_risk_words(path: Path) -> RiskWords:
    """`flows/policy/risk_words.yaml`: category -> language -> words, like keywords.yaml."""
    data, file = read_yaml(path), shown_path(path)
    words: RiskWords = {}
    for category, by_language in data.items():
        if category in META:
            continue
        line = data["__lines__"].get(category) or 1
        if not isinstance(by_language, dict):
            raise TemplateFileError(file, line, f"'{category}' must list words per language")
        words[str(category)] = {}
        for lang, listed in by_language.items():
            if lang in META:
                continue
            at = by_language["__lines__"].get(lang) or line
            if not isinstance(listed, list) or not all(
                isinstance(w, str) and normalize(w) for w in listed
            ):
                raise TemplateFileError(file, at, f"{category}.{lang} must be a list of words")
            words[str(category)][str(lang)] = tuple(listed)
    return words


def load_stop_words(path: Path) -> tuple[str, ...]:
    """Every language's words of the `stop` group, read by the flows' own loader."""
    file = shown_path(path)
    try:
        groups, _ = load_keywords(path)
    except FlowError as exc:
        reason = str(exc).split(": ", 1)[-1].splitlines()[0]
        raise TemplateFileError(file, exc.where.line, reason) from None
    except OSError as exc:
        raise TemplateFileError(file, None, f"cannot read it ({exc.strerror})") from None
    if "stop" not in groups:
        raise TemplateFileError(file, None, "there is no `stop` group")
    return tuple(w for words in groups["stop"].values() for w in words)


def run(templates_path: Path, risk_path: Path, keywords_path: Path) -> tuple[int, list[str]]:
    """Exit code and lines to print: 0 ready, 1 one line per problem, 2 a file is unreadable."""
    try:
        registry = load_templates(templates_path)
        problems = check_templates(
            registry, load_risk_words(risk_path), load_stop_words(keywords_path)
        )
    except TemplateFileError as exc:
        return 2, [f"error: {exc}"]
    if problems:
        return 1, [*map(str, problems), f"{len(problems)} problem(s) found"]
    variants = sum(len(spec.languages) for spec in registry)
    return 0, [
        f"templates are ready to ship: {len(registry)} templates, {variants} language variants"
    ]
