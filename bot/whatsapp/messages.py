"""Outbound messages, checked against WhatsApp's limits before they are queued.

A message that Meta would refuse (a fourth button, a 21-character title) is a
bug in a flow or a template, so it fails here, loudly, at construction time,
rather than as an error from the Graph API minutes later.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from bot.errors import BotError

TEXT_MAX = 4096
INTERACTIVE_BODY_MAX = 1024
BUTTONS_MAX = 3
BUTTON_TITLE_MAX = 20
BUTTON_ID_MAX = 256
LIST_ROWS_MAX = 10
LIST_ROW_TITLE_MAX = 24
LIST_ROW_DESCRIPTION_MAX = 72
LIST_BUTTON_MAX = 20
HEADER_MAX = 60
FOOTER_MAX = 60


class MessageTooLarge(BotError, ValueError):
    """A message breaks one of WhatsApp's limits."""


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise MessageTooLarge(what)


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who to send to: a phone number (digits) or, for username users, a BSUID."""

    wa_id: str | None = None
    user_id: str | None = None

    def fields(self) -> dict[str, str]:
        if self.wa_id:
            return {"to": self.wa_id}
        if self.user_id:
            return {"recipient": self.user_id}
        raise ValueError("a recipient needs a phone number or a business-scoped user id")


@dataclass(frozen=True, slots=True)
class Text:
    body: str
    preview_url: bool = False
    kind: str = field(default="text", init=False)

    def __post_init__(self) -> None:
        _check(0 < len(self.body) <= TEXT_MAX, f"text body must be 1..{TEXT_MAX} characters")

    def content(self) -> dict[str, Any]:
        return {"type": "text", "text": {"body": self.body, "preview_url": self.preview_url}}


@dataclass(frozen=True, slots=True)
class Button:
    id: str
    title: str


@dataclass(frozen=True, slots=True)
class Buttons:
    """Reply buttons: at most 3, titles of at most 20 characters."""

    body: str
    buttons: tuple[Button, ...]
    header: str | None = None
    footer: str | None = None
    kind: str = field(default="buttons", init=False)

    def __post_init__(self) -> None:
        _check(0 < len(self.body) <= INTERACTIVE_BODY_MAX, "button message body too long")
        _check(0 < len(self.buttons) <= BUTTONS_MAX, f"1..{BUTTONS_MAX} buttons allowed")
        for b in self.buttons:
            _check(0 < len(b.title) <= BUTTON_TITLE_MAX, f"button title over {BUTTON_TITLE_MAX}")
            _check(0 < len(b.id) <= BUTTON_ID_MAX, "button id must be 1..256 characters")
        _check(len({b.id for b in self.buttons}) == len(self.buttons), "button ids must differ")
        _check(self.header is None or len(self.header) <= HEADER_MAX, "header too long")
        _check(self.footer is None or len(self.footer) <= FOOTER_MAX, "footer too long")

    def content(self) -> dict[str, Any]:
        interactive: dict[str, Any] = {
            "type": "button",
            "body": {"text": self.body},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": b.id, "title": b.title}} for b in self.buttons
                ]
            },
        }
        return _interactive(interactive, self.header, self.footer)


@dataclass(frozen=True, slots=True)
class Row:
    id: str
    title: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ListMessage:
    """A list: one button opens up to 10 rows, grouped in sections."""

    body: str
    button: str
    sections: tuple[tuple[str, tuple[Row, ...]], ...]
    header: str | None = None
    footer: str | None = None
    kind: str = field(default="list", init=False)

    def __post_init__(self) -> None:
        rows = [r for _, section in self.sections for r in section]
        _check(0 < len(self.body) <= TEXT_MAX, "list body too long")
        _check(0 < len(self.button) <= LIST_BUTTON_MAX, "list button label too long")
        _check(0 < len(rows) <= LIST_ROWS_MAX, f"1..{LIST_ROWS_MAX} list rows allowed")
        for r in rows:
            _check(0 < len(r.title) <= LIST_ROW_TITLE_MAX, "list row title too long")
            _check(
                r.description is None or len(r.description) <= LIST_ROW_DESCRIPTION_MAX,
                "list row description too long",
            )
        _check(len({r.id for r in rows}) == len(rows), "list row ids must differ")

    def content(self) -> dict[str, Any]:
        sections = []
        for title, rows in self.sections:
            section: dict[str, Any] = {
                "rows": [
                    {"id": r.id, "title": r.title}
                    | ({"description": r.description} if r.description else {})
                    for r in rows
                ]
            }
            if title:
                section["title"] = title
            sections.append(section)
        interactive: dict[str, Any] = {
            "type": "list",
            "body": {"text": self.body},
            "action": {"button": self.button, "sections": sections},
        }
        return _interactive(interactive, self.header, self.footer)


@dataclass(frozen=True, slots=True)
class Template:
    """An approved template, the only thing WhatsApp lets through outside 24 hours."""

    name: str
    language: str
    components: tuple[dict[str, Any], ...] = ()
    kind: str = field(default="template", init=False)

    def content(self) -> dict[str, Any]:
        template: dict[str, Any] = {"name": self.name, "language": {"code": self.language}}
        if self.components:
            template["components"] = list(self.components)
        return {"type": "template", "template": template}


UPLOAD_KEY = "_upload"  # in a queued body: a file to upload just before sending


@dataclass(frozen=True, slots=True)
class Document:
    """A file: already uploaded (`media_id`), or `upload` bytes the outbox uploads
    just before sending, so the file is queued durably with the message."""

    media_id: str
    filename: str
    caption: str | None = None
    upload: bytes | None = None
    mime_type: str = "application/json"
    kind: str = field(default="document", init=False)

    def content(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"id": self.media_id, "filename": self.filename}
        if self.caption:
            doc["caption"] = self.caption
        body: dict[str, Any] = {"type": "document", "document": doc}
        if self.upload is not None:
            body[UPLOAD_KEY] = {
                "filename": self.filename,
                "mime_type": self.mime_type,
                "data": base64.b64encode(self.upload).decode(),
            }
        return body


def _interactive(
    interactive: dict[str, Any], header: str | None, footer: str | None
) -> dict[str, Any]:
    if header:
        interactive["header"] = {"type": "text", "text": header}
    if footer:
        interactive["footer"] = {"text": footer}
    return {"type": "interactive", "interactive": interactive}


Outbound = Text | Buttons | ListMessage | Template | Document


def graph_body(message: Outbound, recipient: Recipient) -> dict[str, Any]:
    """The JSON body of `POST /{phone-number-id}/messages` for one message."""
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        **recipient.fields(),
        **message.content(),
    }


def read_receipt(message_id: str) -> dict[str, Any]:
    """Marks an inbound message as read (blue ticks)."""
    return {"messaging_product": "whatsapp", "status": "read", "message_id": message_id}
