"""What Meta's error codes mean for a sender: retry, slow down, stop, or give up.

Codes from Meta's Cloud API error table. Anything not listed is treated by
its HTTP status: 5xx and 429 are retried, other 4xx are permanent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from bot.errors import BotError


class Action(Enum):
    RETRY = "retry"  # transient: back off exponentially and try again
    THROTTLE = "throttle"  # the business number is over a limit: every send waits
    THROTTLE_RECIPIENT = "throttle_recipient"  # 131056: too many to this one person
    AUTH = "auth"  # token expired or invalid: try the fallback token once
    PAUSE = "pause"  # quality or policy signal: stop and alert a human
    FAIL = "fail"  # permanent for this message: mark failed with the reason


TRANSIENT = {1, 2, 131000, 131016, 133004}
THROTTLING = {4, 80007, 130429}
RECIPIENT_THROTTLING = {131056}
AUTHENTICATION = {0, 190}
QUALITY = {131048, 368}
# Not exhaustive: any other 4xx code is permanent too. Listed for readers.
PERMANENT = {100, 131008, 131009, 131021, 131026, 131047, 131049, 131050, 131051, 132000}


@dataclass(frozen=True)
class GraphError(BotError):
    """An error answer from the Graph API, or a failure to get one.

    Only Meta's code, subcode and short title are kept: `error_data.details`
    can quote message ids, which encode phone numbers.
    """

    http_status: int | None
    code: int | None
    subcode: int | None = None
    title: str = ""

    def __str__(self) -> str:
        return f"Graph API error code={self.code} subcode={self.subcode} http={self.http_status}"

    @property
    def action(self) -> Action:
        return classify(self.http_status, self.code)


def classify(http_status: int | None, code: int | None) -> Action:
    if http_status is None:  # network error or timeout: nothing was answered
        return Action.RETRY
    if code in AUTHENTICATION or http_status == 401:
        return Action.AUTH
    if code in THROTTLING:
        return Action.THROTTLE
    if code in RECIPIENT_THROTTLING:
        return Action.THROTTLE_RECIPIENT
    if code in QUALITY:
        return Action.PAUSE
    if code in TRANSIENT or http_status >= 500 or http_status == 429:
        return Action.RETRY
    return Action.FAIL


_TITLE = re.compile(r"(\(#\d+\) )?[A-Za-z][A-Za-z ,()'-]{0,99}")


def safe_title(title: object, fallback: str = "") -> str:
    """Meta's error titles are generic ("(#131047) Re-engagement message",
    "Message undeliverable"); anything else could quote a number or a message id,
    so only titles of letters and spaces are kept."""
    text = str(title or "")
    return text if _TITLE.fullmatch(text) else fallback[:64]
