"""`python -m bot flows check`: what would break in a chat, found before deploy.

Loading (`flowfile.py`) checks each file's shape. This module checks what only
shows across files: states that lead nowhere or are never reached, keywords
and buttons nobody defines or offers, texts missing in a language or a law's
variant, and texts longer than WhatsApp accepts, in every language and law.
It also reads the countries file (`policy/countries.yaml`), whose residence
list rows the flows offer and whose row titles the catalogs must have.
Each finding names the file and line the privacy team has to open.

The checks live in `check_flows.py` (states, inputs, keywords) and `check_texts.py`
(catalogs, every language and law); `check_report.py` holds what both share. This
module runs them in order and keeps the names other modules import from here.
"""

from __future__ import annotations

from pathlib import Path

from bot.conversation.check_flows import SPECIAL_INPUTS, check_flows, offered_ids
from bot.conversation.check_notices import check_notices, read_notices
from bot.conversation.check_report import (
    LAWS,
    SHIPPED_LANGUAGES,
    VARIANTS,
    Problem,
    Report,
    yaml_lines,
)
from bot.conversation.check_texts import (
    CAPTION_MAX,
    CODE_MESSAGE_IDS,
    DEFAULT_PARAM,
    Use,
    check_texts,
    language_title,
    message_uses,
    resolve,
)
from bot.datafile import DataFileError
from bot.privacy.countries import COUNTRIES_FILE, Countries, load_countries
from bot.privacy.jurisdiction import OTHER

__all__ = [
    "CAPTION_MAX",
    "CODE_MESSAGE_IDS",
    "DEFAULT_PARAM",
    "LAWS",
    "OTHER",
    "SHIPPED_LANGUAGES",
    "SPECIAL_INPUTS",
    "VARIANTS",
    "Problem",
    "Use",
    "check",
    "language_title",
    "message_uses",
    "offered_ids",
    "resolve",
    "yaml_lines",
]


def check(
    flows_dir: Path, locales_dir: Path, params: dict[str, str] | None = None
) -> list[Problem]:
    """Every problem in the flows and their texts, grouped by kind; empty means ready to ship."""
    report = Report(flows_dir, locales_dir)
    report.countries = _countries(flows_dir, report)
    report.notices = read_notices(report)
    flows = check_flows(flows_dir, report)
    catalogs = check_texts(flows, locales_dir, params or {}, report)
    if report.notices is not None:
        check_notices(report.notices, flows, catalogs, report)
    return list(dict.fromkeys(report.problems))


def _countries(flows_dir: Path, report: Report) -> Countries | None:
    """The flows folder's countries file (the residence list), or None with its problem."""
    try:
        return load_countries(flows_dir / COUNTRIES_FILE)
    except DataFileError as exc:
        report.flow(COUNTRIES_FILE, exc.line, exc.reason)
        return None
