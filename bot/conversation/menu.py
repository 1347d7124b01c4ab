"""The main menu, the bot's answer to anything it does not yet understand.

Until the flow engine takes over conversations, every message a person types
or taps gets this menu, so the whole path (webhook, inbox, turn, outbox,
Graph API) is visible end to end. Messages without a person's content in them
(reactions, system notices) get no answer.
"""

from __future__ import annotations

from bot.whatsapp.events import InboundMessage
from bot.whatsapp.messages import Button, Buttons, Outbound, Text

MENU = Buttons(
    body=(
        "Hi! I am the privacy assistant. I can show what data we hold about you, "
        "send you a copy, or erase it. Send STOP at any time to stop messages."
    ),
    buttons=(
        Button(id="menu.my_data", title="My data"),
        Button(id="menu.join", title="Join"),
        Button(id="menu.help", title="Help"),
    ),
)
UNREADABLE = Text("Sorry, I can only read text and button replies for now.")


def respond(message: InboundMessage) -> list[Outbound]:
    if message.type in {"text", "interactive", "button"}:
        return [MENU]
    return [UNREADABLE, MENU]
