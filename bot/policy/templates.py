"""The template registry (`flows/templates.yaml`): what Meta approved, and how to send it.

Outside the 24-hour customer service window WhatsApp delivers only templates Meta
approved, filled with exactly the parameters they were approved with. The privacy
team keeps the registry beside the flows. This module reads it, keeping each
template's line so a mistake is reported where it is, and builds the Graph API
message. It refuses what Meta would refuse, with a short machine reason, so a bad
send fails here rather than as a Graph API error minutes later. Whether the texts
are fit to ship is `template_check.py`'s question.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.datafile import META, DataFileError, shown_path
from bot.datafile import line_of as _line
from bot.datafile import read_yaml as read_data_file
from bot.errors import BotError
from bot.privacy.jurisdiction import SHIPPED_LANGUAGES
from bot.whatsapp.messages import Template

CATEGORIES = ("utility", "authentication", "marketing")
STATUSES = ("approved", "pending", "rejected", "paused", "disabled")
NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # Meta's rule for template and parameter names
PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")
# Meta takes 32768 characters only while the body is a template's sole component, and a
# template's whole body is at most 1024: a longer value is a mistake, whatever the template.
PARAM_MAX = 1024
BAD_SPACING = re.compile(r"[\r\n\t]| {5,}")  # Meta refuses these in a parameter (132018)

UNKNOWN_TEMPLATE = "unknown_template"
TEMPLATE_NOT_APPROVED = "template_not_approved"
TEMPLATE_LANGUAGE = "template_language"
TEMPLATE_PARAMS = "template_params"


class TemplateRefused(BotError):
    """Meta would refuse this send. `reason` is one of the names above (as in `policy.gate`);
    the detail names parameters, never their values, which may be personal."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail  # in words, for whoever asked to send


@dataclass(frozen=True, slots=True)
class Variant:
    body: str
    footer: str | None
    line: int  # of the language's entry in the file
    code: str  # Meta's language code: `pt_BR` where the bot says `pt`


@dataclass(frozen=True, slots=True)
class TemplateSpec:
    name: str
    category: str
    status: str
    params: tuple[str, ...]
    languages: dict[str, Variant]
    line: int = 0


@dataclass(frozen=True)
class Registry:
    file: str  # as a person would open it, e.g. `flows/templates.yaml`
    specs: dict[str, TemplateSpec]

    def __iter__(self) -> Iterator[TemplateSpec]:
        return iter(self.specs.values())

    def __len__(self) -> int:
        return len(self.specs)

    def get(self, name: str) -> TemplateSpec | None:
        return self.specs.get(name)

    def message(self, name: str, language: str, params: Mapping[str, str]) -> Template:
        """The Graph API template message, parameters named and in declared order."""
        spec, variant = self._resolve(name, language, params)
        if spec.status != "approved":
            raise TemplateRefused(
                TEMPLATE_NOT_APPROVED, f"the template {name} is {spec.status}, not approved"
            )
        parameters = [{"type": "text", "parameter_name": p, "text": params[p]} for p in spec.params]
        components = ({"type": "body", "parameters": parameters},) if parameters else ()
        return Template(spec.name, variant.code, components)

    def render(self, name: str, language: str, params: Mapping[str, str]) -> str:
        """The body as the person would read it. Not approved yet is fine: drafts are previewed."""
        _, variant = self._resolve(name, language, params)
        return PLACEHOLDER.sub(lambda m: params.get(m.group(1), m.group(0)), variant.body)

    def _resolve(
        self, name: str, language: str, params: Mapping[str, str]
    ) -> tuple[TemplateSpec, Variant]:
        spec = self.specs.get(name)
        if spec is None:
            raise TemplateRefused(UNKNOWN_TEMPLATE, f"the template {name} is not in {self.file}")
        variant = spec.languages.get(language)
        if variant is None:
            has = ", ".join(sorted(spec.languages))
            raise TemplateRefused(
                TEMPLATE_LANGUAGE, f"the template {name} has no '{language}' text (it has: {has})"
            )
        missing = [p for p in spec.params if p not in params]
        extra = sorted(set(params) - set(spec.params))
        if missing or extra:
            wrong = [f"{what}: {', '.join(names)}" for what, names in
                     (("missing", missing), ("unexpected", extra)) if names]  # fmt: skip
            needs = f"the parameters {', '.join(spec.params)}" if spec.params else "no parameters"
            raise TemplateRefused(
                TEMPLATE_PARAMS, f"the template {name} needs {needs}; " + "; ".join(wrong)
            )
        for p in spec.params:
            problem = _value_problem(params[p])
            if problem:
                raise TemplateRefused(
                    TEMPLATE_PARAMS, f"the template {name}'s parameter {p} {problem}"
                )
        return spec, variant


def _value_problem(value: Any) -> str | None:
    """What Meta would refuse in a parameter's value, said without the value."""
    if not isinstance(value, str) or not value.strip():
        return "is empty"
    if len(value) > PARAM_MAX:
        return f"is over {PARAM_MAX} characters"
    if BAD_SPACING.search(value):
        return "holds a line break, a tab or 5 spaces in a row"
    return None


# --- reading the file -----------------------------------------------------------------------

TemplateFileError = DataFileError  # the registry (or a list the checker reads) is malformed


def read_yaml(path: Path) -> dict[str, Any]:
    """The registry's YAML (or a list the checker reads); see `bot.datafile.read_yaml`."""
    return read_data_file(path, "a list of names with their entries")


def _text(value: Any, file: str, line: int, what: str, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise TemplateFileError(file, line, f"{what} must be a text in quotes")
    return value


def _unknown(raw: dict[str, Any], allowed: set[str], file: str, what: str) -> None:
    for key in raw:
        if key not in allowed | META:
            raise TemplateFileError(file, _line(raw, key), f"{what}: unknown key '{key}'")


def _variant(file: str, name: str, language: Any, raw: Any, line: int) -> Variant:
    what = f"{name} ({language})"
    if language not in SHIPPED_LANGUAGES:
        known = ", ".join(SHIPPED_LANGUAGES)
        raise TemplateFileError(file, line, f"{name}: unknown language '{language}' ({known})")
    if not isinstance(raw, dict):
        raise TemplateFileError(file, line, f"{what} needs body: (and maybe footer:)")
    _unknown(raw, {"body", "footer", "code"}, file, what)
    body = _text(raw.get("body"), file, _line(raw, "body"), f"{what} body", True)
    footer = _text(raw.get("footer"), file, _line(raw, "footer"), f"{what} footer", False)
    code = _text(raw.get("code", language), file, _line(raw, "code"), f"{what} code", True)
    return Variant(str(body), footer, line, str(code))


def _spec(file: str, name: Any, raw: Any, line: int) -> TemplateSpec:
    if not isinstance(name, str) or not NAME.match(name):
        raise TemplateFileError(file, line, f"'{name}' is not a name: lowercase letters, 0-9, _")
    if not isinstance(raw, dict):
        raise TemplateFileError(file, line, f"{name} needs category, status, params, languages")
    _unknown(raw, {"category", "status", "params", "languages"}, file, name)
    for key, allowed in (("category", CATEGORIES), ("status", STATUSES)):
        if raw.get(key) not in allowed:
            raise TemplateFileError(
                file,
                _line(raw, key),
                f"{name}: {key} must be one of {', '.join(allowed)}, not {raw.get(key)!r}",
            )
    params = raw.get("params") or []
    if not isinstance(params, list) or not all(
        isinstance(p, str) and NAME.match(p) for p in params
    ):
        raise TemplateFileError(
            file, _line(raw, "params"), f"{name}: params must be a list of names, like [name]"
        )
    if len(set(params)) != len(params):
        raise TemplateFileError(file, _line(raw, "params"), f"{name}: a parameter is listed twice")
    languages = raw.get("languages") or {}
    if not isinstance(languages, dict):
        raise TemplateFileError(
            file, _line(raw, "languages"), f"{name}: languages must name en, de, ... with a body"
        )
    variants = {
        lang: _variant(file, name, lang, v, _line(languages, lang))
        for lang, v in languages.items()
        if lang not in META
    }
    return TemplateSpec(name, raw["category"], raw["status"], tuple(params), variants, line)


def load_templates(path: Path) -> Registry:
    """The registry, or `TemplateFileError` naming the first thing wrong and its line."""
    data = read_yaml(path)
    file = shown_path(path)
    specs = {
        name: _spec(file, name, raw, _line(data, name))
        for name, raw in data.items()
        if name not in META
    }
    return Registry(file, specs)
