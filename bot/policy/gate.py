"""The send gate: the rules every message must pass before it may reach Meta.

One pure function, `decide`, says whether a message may go to a person given
what is known about them right now (`Facts`). It is asked twice: when a
business-initiated message is queued (so `python -m bot send` can answer at
once) and again by the outbox just before each send, because consent, the
24-hour window and suppression can all change while a message waits. What it
refuses is recorded (`policy_refused` in the audit log, a metric by reason)
and never sent.

The rules, in the order they are checked:
- an erased person gets nothing but the one erasure confirmation;
- a suppressed person (STOP, erasure) gets no business-initiated message; a
  reply to something they wrote themselves is still answered;
- a number Meta reported undeliverable (131026) gets nothing for
  `BOT_UNREACHABLE_DAYS`, or until the person writes again: each send would be
  refused by Meta and still cost its quota;
- a template must be registered, approved and of the category it is sent as;
- marketing needs active marketing consent;
- outside the 24-hour customer service window only templates may go.
The messaging tier (unique people written to first in 24 hours) is counted
where the message is queued, in the store; see `bot.policy.business`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

WINDOW = 24 * 3600  # Meta's customer service window, from the person's last message


class Category(StrEnum):
    SERVICE = "service"  # a reply inside the 24-hour window
    UTILITY = "utility"
    AUTHENTICATION = "authentication"
    MARKETING = "marketing"


class Reason(StrEnum):
    """Why a message was refused: stable names for metrics, the audit log and the CLI."""

    ERASED = "erased"
    SUPPRESSED = "suppressed"
    UNKNOWN_TEMPLATE = "unknown_template"
    TEMPLATE_NOT_APPROVED = "template_not_approved"
    TEMPLATE_LANGUAGE = "template_language"
    TEMPLATE_PARAMS = "template_params"
    CATEGORY_MISMATCH = "category_mismatch"
    NO_CONSENT = "no_consent"
    OUTSIDE_WINDOW = "outside_window"
    TIER_EXHAUSTED = "tier_exhausted"
    UNREACHABLE = "unreachable"


# What each reason means, in words, for whoever asked to send (`python -m bot send` prints
# `refused: <code>: <words>`). `{template}` and `{category}` are what was asked for; a
# template's own detail (which parameter, which language) replaces these when there is one.
EXPLANATIONS: dict[Reason, str] = {
    Reason.ERASED: "this person's data was erased; nothing may be sent to them",
    Reason.SUPPRESSED: (
        "this person said STOP or erased their data; no business-initiated message may go to them"
    ),
    Reason.UNKNOWN_TEMPLATE: "no template named {template} is registered",
    Reason.TEMPLATE_NOT_APPROVED: "the template {template} is not approved by Meta",
    Reason.TEMPLATE_LANGUAGE: "the template {template} has no text in that language",
    Reason.TEMPLATE_PARAMS: "the parameters do not match those of the template {template}",
    Reason.CATEGORY_MISMATCH: "the template {template} is not registered as {category}",
    Reason.NO_CONSENT: "this person has not opted in to marketing",
    Reason.OUTSIDE_WINDOW: (
        "this person has not written in the last 24 hours; only a template may go"
    ),
    Reason.UNREACHABLE: (
        "this number was reported undeliverable by WhatsApp recently; nothing is sent to it "
        "until the person writes again or the pause ends"
    ),
    Reason.TIER_EXHAUSTED: (
        "the messaging tier is used up: no more new people may be written to first "
        "in these 24 hours"
    ),
}


def explain(reason: Reason, detail: str = "", *, template: str = "", category: str = "") -> str:
    """What is wrong, in words: the detail when there is one, else the reason's sentence.
    Names only (template, category, parameter names): never a parameter's value."""
    return detail or EXPLANATIONS[reason].format(template=template, category=category)


@dataclass(frozen=True, slots=True)
class Request:
    """What is about to be sent."""

    category: Category
    template: str | None = None  # a template's name; None for a free-form message
    confirmation: bool = False  # the one confirmation after an erasure


@dataclass(frozen=True, slots=True)
class TemplateStatus:
    """What the registry says of a template (see `flows/templates.yaml`)."""

    category: str
    status: str


@dataclass(frozen=True, slots=True)
class Facts:
    """What the store knows about the recipient at the moment of asking."""

    known: bool  # a contact row exists (False: never met, or erased)
    marketing: str | None  # marketing consent: granted, pending, revoked or None
    last_inbound_at: float | None
    suppressed: bool
    unreachable_until: float | None = None  # see `unreachable_until`

    def window_open(self, now: float) -> bool:
        return self.last_inbound_at is not None and now - self.last_inbound_at < WINDOW


def unreachable_until(
    marked_at: float | None, last_inbound_at: float | None, days: int
) -> float | None:
    """Until when a number Meta called undeliverable (131026) at `marked_at` gets
    nothing; None when it was never marked, or the person wrote since."""
    if marked_at is None or (last_inbound_at is not None and last_inbound_at >= marked_at):
        return None
    return marked_at + days * 86400


UNKNOWN = Facts(known=False, marketing=None, last_inbound_at=None, suppressed=False)


def decide(
    request: Request,
    facts: Facts,
    now: float,
    template: TemplateStatus | None = None,
    *,
    erased_if_unknown: bool = True,
) -> Reason | None:
    """None when the message may go, else the first rule it breaks.

    `erased_if_unknown`: at send time a queued message whose person is gone was
    erased meanwhile; when queuing, an unknown number is simply someone new.
    """
    if request.confirmation:
        return None
    if not facts.known and erased_if_unknown:
        return Reason.ERASED
    service = request.category is Category.SERVICE and request.template is None
    if facts.suppressed and not (service and facts.window_open(now)):
        return Reason.SUPPRESSED
    if facts.unreachable_until is not None and now < facts.unreachable_until:
        return Reason.UNREACHABLE
    if request.template is not None:
        if template is None:
            return Reason.UNKNOWN_TEMPLATE
        if template.status != "approved":
            return Reason.TEMPLATE_NOT_APPROVED
        if template.category != request.category:
            return Reason.CATEGORY_MISMATCH
    if request.category is Category.MARKETING and facts.marketing != "granted":
        return Reason.NO_CONSENT
    if request.template is None and not facts.window_open(now):
        return Reason.OUTSIDE_WINDOW
    return None


def business_initiated(request: Request, facts: Facts, now: float) -> bool:
    """A template sent while the person's window is closed opens a conversation
    the business started: those count toward the messaging tier."""
    return request.template is not None and not facts.window_open(now)
