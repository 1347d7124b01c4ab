"""Keyword groups: what a typed word means, in every shipped language at once."""

from __future__ import annotations

import re

_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Exact match, but forgiving of case, surrounding spaces and doubled spaces."""
    return _SPACES.sub(" ", text.strip()).casefold()


class KeywordMatcher:
    def __init__(self, groups: dict[str, dict[str, tuple[str, ...]]]) -> None:
        self._index: dict[str, str] = {}
        for group, by_language in groups.items():
            for words in by_language.values():
                for word in words:
                    # The first group to claim a word keeps it; `flows check` reports clashes.
                    self._index.setdefault(normalize(word), group)

    def match(self, text: str) -> str | None:
        return self._index.get(normalize(text))
