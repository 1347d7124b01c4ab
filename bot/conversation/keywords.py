"""Keyword groups: what a typed word means, in every shipped language at once.

Matching follows how people type, and its rules are the privacy team's
(`flows/keywords.yaml`, explained in `flows/README.md`): case, accents,
surrounding punctuation, emoji and repeated spaces do not matter ("Stop!!",
"stop.", "ARRET" for "ARRÊT"), and the words of the `filler` group are
ignored around a keyword ("please stop", "unsubscribe me", "bitte STOPP").
The whole message, less its filler words, must be the keyword: a longer
sentence that merely contains one is not taken as it. Only the groups a flow
names under `start_on: contains:` are looked for inside a sentence, and a flow
decides what that does (a question, never an action on a guess). The titles of
the flows' buttons and rows, in every language, are matched the same way.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Collection, Iterable, Iterator, Mapping

FILLER = "filler"  # the group of words ignored around a keyword
# How alike a near-miss must be (difflib's ratio): "stpo" for STOP is 0.75, "my dta"
# for MY DATA 0.92, while "hello" for HELP (0.67) is a word of its own, not a typo.
NEAR = 0.75
_WORDS = re.compile(r"[\w']+")


def normalize(text: str) -> str:
    """Lower case, accents folded, only the words: punctuation and emoji dropped."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    plain = "".join(c for c in folded if not unicodedata.combining(c)).replace("\u2019", "'")
    return " ".join(_WORDS.findall(plain))


def _tokens(key: str) -> tuple[str, ...]:
    """A normalized text's words, French elisions split off ("l'arret" -> "l", "arret")."""
    return tuple(re.split(r"[\s']+", key.strip(" '")))


def _phrases(tokens: tuple[str, ...], longest: int) -> Iterator[tuple[str, ...]]:
    """Every run of up to `longest` consecutive words."""
    for size in range(1, longest + 1):
        for start in range(len(tokens) - size + 1):
            yield tokens[start : start + size]


class KeywordMatcher:
    def __init__(
        self,
        groups: dict[str, dict[str, tuple[str, ...]]],
        contained: Collection[str] = (),
        titles: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        """`contained`: the groups that count inside a longer message (and only there).
        `titles`: each button or row id with its titles in every language, so typing a
        title is understood as tapping it."""
        self._index: dict[str, str] = {}
        self._inside: dict[tuple[str, ...], str] = {}
        self._written: dict[str, dict[str, str]] = {}  # group -> normalized -> as written
        self._languages: dict[tuple[str, ...], set[str]] = {}  # every word -> its languages
        fillers: set[str] = set()
        for group, by_language in groups.items():
            for language, words in by_language.items():
                for word in words:
                    self._languages.setdefault(_tokens(normalize(word)), set()).add(language)
                    if group == FILLER:
                        fillers.add(normalize(word))
                    elif group in contained:
                        self._inside.setdefault(_tokens(normalize(word)), group)
                    else:
                        # The first group to claim a word keeps it; `flows check` reports clashes.
                        self._index.setdefault(normalize(word), group)
                        self._written.setdefault(group, {}).setdefault(normalize(word), word)
        # Longest first, so "thank you" goes before "you" would.
        self._fillers = sorted(fillers, key=len, reverse=True)
        self._longest = max((len(p) for p in self._inside), default=0)
        self._longest_word = max((len(p) for p in self._languages), default=0)
        self._titles: dict[str, set[str]] = {}
        self._titles_written: dict[str, dict[str, str]] = {}  # id -> key -> title in capitals
        for option_id, readings in (titles or {}).items():
            for reading in readings:
                self._titles.setdefault(self.key(reading), set()).add(option_id)
                written = self._titles_written.setdefault(option_id, {})
                written.setdefault(self.key(reading), reading.upper())

    def key(self, text: str) -> str:
        """What the message says once normalized and stripped of its filler words."""
        key = normalize(text)
        if key in self._index:
            return key
        rest = f" {key} "
        for filler in self._fillers:
            rest = rest.replace(f" {filler} ", " ")
        return " ".join(rest.split())

    def match(self, text: str) -> str | None:
        """The group the whole message is a word of, or None."""
        return self._index.get(self.key(text)) if text else None

    def titled(self, text: str) -> tuple[str, ...]:
        """The ids of the buttons and rows whose title the whole message is."""
        return tuple(sorted(self._titles.get(self.key(text), ())))

    def languages(self, text: str) -> set[str]:
        """The languages of the message's words that only one language has ("hola":
        es; "menu", shared by three, says nothing)."""
        tokens = _tokens(normalize(text))
        found = (self._languages.get(p, ()) for p in _phrases(tokens, self._longest_word))
        return {next(iter(languages)) for languages in found if len(languages) == 1}

    def contains(self, text: str) -> str | None:
        """The `contained` group one of the message's words belongs to, or None."""
        tokens = _tokens(normalize(text))
        return next(
            (self._inside[p] for p in _phrases(tokens, self._longest) if p in self._inside), None
        )

    def suggestions(self, groups: Iterable[str], option_ids: Iterable[str]) -> dict[str, str]:
        """What a near-miss may be taken for: the groups' words and the options' titles,
        each as the person would type it (keywords as written, titles in capitals)."""
        found: dict[str, str] = {}
        for group in groups:
            for key, word in self._written.get(group, {}).items():
                found.setdefault(key, word)
        for option_id in option_ids:
            for key, title in self._titles_written.get(option_id, {}).items():
                found.setdefault(key, title)
        return found

    def near(self, text: str, suggestions: Mapping[str, str]) -> str | None:
        """The one of `suggestions` the message nearly is ("delet my data"), or None."""
        key = self.key(text)
        close = difflib.get_close_matches(key, list(suggestions), n=1, cutoff=NEAR) if key else []
        return suggestions[close[0]] if close else None
