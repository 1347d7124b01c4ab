"""Keyword groups: what a typed word means, in every shipped language at once.

Matching follows how people type, and its rules are the privacy team's
(`flows/keywords.yaml`, explained in `flows/README.md`): case, accents,
surrounding punctuation, emoji and repeated spaces do not matter ("Stop!!",
"stop.", "ARRET" for "ARRÊT"), and the words of the `filler` group are
ignored around a keyword ("please stop", "unsubscribe me", "bitte STOPP").
The whole message, less its filler words, must be the keyword: a longer
sentence that merely contains one is not taken as it.
"""

from __future__ import annotations

import re
import unicodedata

FILLER = "filler"  # the group of words ignored around a keyword
_WORDS = re.compile(r"[\w']+")


def normalize(text: str) -> str:
    """Lower case, accents folded, only the words: punctuation and emoji dropped."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    plain = "".join(c for c in folded if not unicodedata.combining(c)).replace("\u2019", "'")
    return " ".join(_WORDS.findall(plain))


class KeywordMatcher:
    def __init__(self, groups: dict[str, dict[str, tuple[str, ...]]]) -> None:
        self._index: dict[str, str] = {}
        fillers: set[str] = set()
        for group, by_language in groups.items():
            for words in by_language.values():
                for word in words:
                    if group == FILLER:
                        fillers.add(normalize(word))
                    else:
                        # The first group to claim a word keeps it; `flows check` reports clashes.
                        self._index.setdefault(normalize(word), group)
        # Longest first, so "thank you" goes before "you" would.
        self._fillers = sorted(fillers, key=len, reverse=True)

    def match(self, text: str) -> str | None:
        key = normalize(text)
        group = self._index.get(key)
        if group is not None or not key:
            return group
        rest = f" {key} "
        for filler in self._fillers:
            rest = rest.replace(f" {filler} ", " ")
        return self._index.get(" ".join(rest.split()))
