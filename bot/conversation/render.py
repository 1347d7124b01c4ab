"""Turn what the engine says (message ids and options) into WhatsApp messages.

Texts come from the person's language and law (`bot.i18n`); a state's
buttons become reply buttons, its list a list message, and a list with
`rows_from` is filled with the countries (`flows/policy/countries.yaml`) or
languages on offer.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Any

from babel import Locale

from bot.conversation.engine import Say
from bot.conversation.flowfile import FlowSet, Option, State
from bot.i18n import Texts, placeholders
from bot.privacy.countries import Countries, shipped_countries
from bot.privacy.jurisdiction import SHIPPED_LANGUAGES, residence_choices
from bot.privacy.notices import FACTS, NoticeFacts
from bot.whatsapp.messages import (
    INTERACTIVE_BODY_MAX,
    TEXT_MAX,
    Button,
    Buttons,
    ListMessage,
    Outbound,
    Row,
    Text,
)

# The ids of the rows a `rows_from` list is filled with: a prefix, then the value.
ROW_ID_PREFIX = {"countries": "residence.", "languages": "language."}


def picked(input_id: str | None, rows_from: str) -> str:
    """What the person chose from a `rows_from` list (the row id's value), or, for
    typed text, the text as it is."""
    return (input_id or "").removeprefix(ROW_ID_PREFIX[rows_from])


def language_name(code: str) -> str:
    """Each language in its own words: people look for the one they read."""
    name = Locale.parse(code).get_display_name(code) or code
    return name[:1].upper() + name[1:]


def prefaced(preface: str, replies: list[Outbound]) -> list[Outbound]:
    """`preface` (the short notice) at the top of the first reply, or as a message of its
    own before it when that reply has no text or the two would be too long together."""
    first = replies[0]
    limit = TEXT_MAX if isinstance(first, Text) else INTERACTIVE_BODY_MAX
    if isinstance(first, Text | Buttons | ListMessage):
        body = f"{preface}\n\n{first.body}"
        if len(body) <= limit:
            return [replace(first, body=body), *replies[1:]]
    return [Text(preface), *replies]


@lru_cache(maxsize=4096)
def _facts_in(template: str) -> frozenset[str]:
    """The notice facts a text asks for; texts are few and fixed, so parsed once each."""
    return frozenset(placeholders(template) & FACTS)


class Renderer:
    def __init__(
        self,
        flows: FlowSet,
        texts: Texts,
        params: dict[str, str],
        countries: Countries | None = None,
        facts: NoticeFacts | None = None,
    ) -> None:
        """`countries` gives the residence list; by default the shipped file, read now, so a
        broken file stops start-up rather than the first person who asks for the list.
        `facts` fills a notice's facts (`{retention}`, `{rights}` …)."""
        self._flows = flows
        self._texts = texts
        self._params = params
        self._countries = countries if countries is not None else shipped_countries()
        self._facts = facts

    def text(
        self, lang: str, law: str, message_id: str, *, lives_in: str | None = None, **params: Any
    ) -> str:
        """The text in `lang` for `law`; `lives_in` (where the person lives, "DE", "US-CA")
        picks the facts that depend on it, such as the supervisory authority."""
        wanted = _facts_in(self._texts.template(lang, law, message_id) or "") - params.keys()
        if wanted and self._facts is not None:

            def part(part_id: str, **more: Any) -> str:
                return self.text(lang, law, part_id, lives_in=lives_in, **more)

            params = self._facts.fill(wanted, lang, law, lives_in, part) | params
        return self._texts.get(lang, law, message_id, **(self._params | params))

    def render(
        self, say: Say, lang: str, law: str, *, lives_in: str | None = None, **params: Any
    ) -> Outbound:
        body = self.text(lang, law, say.message_id, lives_in=lives_in, **params)
        state = self._flows.state(say.state) if self._flows.has_state(say.state) else None
        if state is None or say.plain:
            return Text(body)
        if state.buttons:
            return Buttons(
                body=body,
                buttons=tuple(Button(o.id, self.text(lang, law, o.title)) for o in state.buttons),
            )
        rows = self._rows(state, lang, law)
        if rows:
            label = self.text(lang, law, state.list_button or "menu.list_button")
            return ListMessage(body=body, button=label, sections=(("", rows),))
        return Text(body)

    def _rows(self, state: State, lang: str, law: str) -> tuple[Row, ...]:
        if state.rows_from == "countries":
            return tuple(
                Row(
                    ROW_ID_PREFIX["countries"] + c.code,
                    self.text(lang, law, c.message_id) if c.message_id else c.name,
                )
                for c in residence_choices(lang, self._countries)
            )
        if state.rows_from == "languages":
            prefix = ROW_ID_PREFIX["languages"]
            return tuple(Row(prefix + c, language_name(c)) for c in SHIPPED_LANGUAGES)
        return tuple(self._row(o, lang, law) for o in state.rows)

    def _row(self, option: Option, lang: str, law: str) -> Row:
        description = self.text(lang, law, option.description) if option.description else None
        return Row(option.id, self.text(lang, law, option.title), description)
