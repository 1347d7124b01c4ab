"""The privacy team's YAML data files, read with the line of everything in them.

The flows (`flows/*.yaml`), the template registry (`flows/templates.yaml`), the risk words
(`flows/policy/risk_words.yaml`) and the countries (`flows/policy/countries.yaml`) are
written by people who do not read Python. A mistake in one has to come back as one line
naming the file and the line to open, at start-up and in the checkers alike.

`read_yaml` reads a file with the flow files' YAML rules (only true/false are booleans, so
`no:` and `NO` (Norway) stay words; every mapping keeps its `__line__`) and two more: a key
written twice is an error rather than silently the last one, and each mapping keeps the line
of each of its keys (`__lines__`), so an error points at the key itself. Anything wrong
raises `DataFileError`, whose text is `file:line: reason`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bot.config import PROJECT
from bot.errors import BotError

META = {"__line__", "__lines__"}  # added by the loader, not written in the file


class DataFileError(BotError):
    """A data file is malformed: `file:line: reason`."""

    def __init__(self, file: str, line: int | None, reason: str) -> None:
        super().__init__(f"{file}:{line}: {reason}" if line else f"{file}: {reason}")
        self.file, self.line, self.reason = file, line, reason


class LineLoader(yaml.SafeLoader):
    """Safe YAML that remembers the line of every mapping (for error messages): the
    flow files' reader, and the base of `read_yaml`'s."""


def _construct_mapping(loader: LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# YAML 1.1 reads `on`, `yes`, `no` and `off` as booleans; in these files they are
# words (`on:` lists transitions, `yes:`/`no:` are keyword groups, NO is Norway).
# Only true/false are booleans here.
LineLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
LineLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class _Twice(BotError, yaml.constructor.ConstructorError):
    """A key written twice: valid YAML, but the first entry would silently be lost."""


class _Loader(LineLoader):
    """The flow files' YAML with keys written twice refused and each key's line kept."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in lines:
                    raise _Twice(
                        None, None, f"'{key_node.value}' is written twice", key_node.start_mark
                    )
                lines[key_node.value] = key_node.start_mark.line + 1
        mapping = super().construct_mapping(node, deep=deep)
        mapping["__lines__"] = {k: lines.get(str(k), 0) for k in mapping}
        return mapping


def line_of(raw: dict[str, Any], key: Any) -> int:
    """The line of `key` in a mapping read by `read_yaml`, else of the mapping itself."""
    return raw["__lines__"].get(key) or raw["__line__"]


def shown_path(path: Path) -> str:
    """Relative to the checkout when inside it, so problems read `flows/templates.yaml:14`."""
    try:
        return path.resolve().relative_to(PROJECT).as_posix()
    except ValueError:
        return str(path)


def read_yaml(path: Path, shape: str) -> dict[str, Any]:
    """A YAML mapping whose mappings carry `__line__` and `__lines__`; any failure is one
    `file:line:` line. `shape` says what the file must be, for a file that is no mapping."""
    shown = shown_path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 - safe
    except OSError as exc:
        raise DataFileError(shown, None, f"cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "unreadable"
        hint = "; put texts in quotes" if "{" in str(exc) or "mapping" in problem else ""
        line = mark.line + 1 if mark else 1
        reason = problem if isinstance(exc, _Twice) else f"not valid YAML: {problem}{hint}"
        raise DataFileError(shown, line, reason) from None
    if data is None:
        return {"__line__": 1, "__lines__": {}}
    if not isinstance(data, dict):
        raise DataFileError(shown, 1, f"the file must be {shape}")
    return data
