"""What every part of `flows check` shares: the problem list, where a problem points, the
countries file.

A finding is only useful if it names the line the privacy team opens, so the report
turns flow and catalog locations into paths relative to the checkout, and reads YAML
key lines itself (the loaded flows keep only each state's line).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.conversation.flowfile import Flow
from bot.i18n import po_path
from bot.privacy.jurisdiction import SHIPPED_LANGUAGES as SHIPPED_LANGUAGES  # for the checks
from bot.privacy.jurisdiction import Countries, Law
from bot.privacy.notices import Notices

LAWS: tuple[str, ...] = tuple(law.value for law in Law)
VARIANTS: tuple[str | None, ...] = (None, *LAWS)  # None: the text without a law's context


@dataclass(frozen=True, slots=True)
class Problem:
    where: str  # "flows/optin.yaml:12", as a person would open it
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class Report:
    def __init__(self, flows_dir: Path, locales_dir: Path) -> None:
        self.root = flows_dir.resolve().parent
        self.flows_dir, self.locales_dir = flows_dir, locales_dir
        self.problems: list[Problem] = []
        self.broken: set[str] = set()  # flows that did not load: no follow-up noise about them
        # The countries file of this flows folder (residence list rows), None if it is broken.
        self.countries: Countries | None = None
        self.notices: Notices | None = None  # the notices file, None if it is broken
        self._lines: dict[str, dict[str, int]] = {}

    def line(self, flow: Flow, key: str) -> int:
        """The line of a flow-level key ("entry", "start_on.buttons"), else the file's first."""
        if flow.where.file not in self._lines:
            self._lines[flow.where.file] = yaml_lines(self.flows_dir / flow.where.file)
        return self._lines[flow.where.file].get(key, flow.where.line)

    def path(self, path: Path, base: Path) -> str:
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return (Path(base.name) / path.relative_to(base)).as_posix()

    def flow(self, file: str, line: int | None, message: str) -> None:
        where = self.path(self.flows_dir / file, self.flows_dir)
        self.problems.append(Problem(f"{where}:{line}" if line else where, message))

    def po(self, lang: str, line: int | None, message: str) -> None:
        where = self.path(po_path(self.locales_dir, lang), self.locales_dir)
        self.problems.append(Problem(f"{where}:{line}" if line else where, message))


def yaml_lines(path: Path) -> dict[str, int]:
    """Line of each key's value, two levels deep ("start_on.buttons", "stop.en")."""
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # only lines are needed: fast
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=loader)
    except (OSError, yaml.YAMLError):
        return {}
    lines: dict[str, int] = {}
    for key, value in root.value if isinstance(root, yaml.MappingNode) else ():
        lines[key.value] = key.start_mark.line + 1
        for sub, subvalue in value.value if isinstance(value, yaml.MappingNode) else ():
            lines[f"{key.value}.{sub.value}"] = subvalue.start_mark.line + 1
    return lines
