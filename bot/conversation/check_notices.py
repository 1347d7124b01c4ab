"""The notices half of `flows check`: each notice holds what its law requires.

`flows/policy/notices.yaml` lists, per law, the elements a notice must contain
and the placeholder that carries each (`retention: retention`). A notice in any
language, for any law, without one of its law's placeholders fails the check,
named by law, language and element, so a notice cannot ship without its
retention or its supervisory authority. The rights' ways must exist too: a
right that points at a keyword group nobody defined would name a word the bot
does not understand.
"""

from __future__ import annotations

from babel.messages.catalog import Catalog

from bot.conversation.check_report import Report
from bot.conversation.check_texts import resolve
from bot.conversation.flowfile import FlowSet
from bot.datafile import DataFileError
from bot.i18n import placeholders
from bot.privacy.notices import FACTS, NOTICES_FILE, TEXT_PARTS, Checklist, Notices, load_notices

KNOWN = FACTS | {"company", "dpo_contact", "local_contact", "privacy_url", "policy_version"}


def read_notices(report: Report) -> Notices | None:
    """The flows folder's notices file, or None with its problem reported."""
    try:
        return load_notices(report.flows_dir / NOTICES_FILE)
    except DataFileError as exc:
        report.flow(NOTICES_FILE, exc.line, exc.reason)
        return None


def check_notices(
    notices: Notices, flows: FlowSet, catalogs: dict[str, Catalog], report: Report
) -> None:
    for law, checklist in notices.required.items():
        _check_checklist(checklist, (law,), catalogs, report)
    _check_checklist(notices.first_contact, tuple(notices.required), catalogs, report)
    for name, how in notices.how.items():
        if how.kind == "keyword" and how.value not in flows.keywords:
            problem = f"how: {name} names the keyword group '{how.value}'; keywords.yaml lacks it"
            report.flow(NOTICES_FILE, notices.lines.get(f"how.{name}"), problem)
    for lang, catalog in catalogs.items():
        for part in sorted(TEXT_PARTS):
            for law in notices.required:
                m = resolve(catalog, law, f"notice.{part}")
                if m is not None and part in placeholders(m.string):
                    problem = f"'notice.{part}' fills {{{part}}}: it cannot hold it"
                    report.po(lang, m.lineno, problem)


def _check_checklist(
    checklist: Checklist, laws: tuple[str, ...], catalogs: dict[str, Catalog], report: Report
) -> None:
    for _, placeholder in checklist.elements:
        if placeholder not in KNOWN:
            problem = f"{checklist.notice}: '{placeholder}' is not a placeholder the bot fills"
            report.flow(NOTICES_FILE, checklist.line, problem)
    for lang, catalog in catalogs.items():
        for law in laws:
            m = resolve(catalog, law, checklist.notice)
            if m is None:
                continue  # reported as missing by the texts' check
            have = placeholders(m.string)
            for element, placeholder in checklist.elements:
                if placeholder not in have:
                    variant = f" ({m.context})" if m.context else ""
                    report.po(
                        lang, m.lineno,
                        f"{law}: '{checklist.notice}'{variant} lacks the {element} "
                        f"({{{placeholder}}}) that {checklist.source} requires",
                    )  # fmt: skip
