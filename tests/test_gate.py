"""The send gate, through the real app: signed webhooks in, `send` through the gate,
and what reached the fake Graph API (or, for every refusal, did not).

The bot runs on a clock the tests move, so "25 hours later" takes no time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.policy.business import SendRefused, TemplateSend, queue_template, queue_text
from bot.policy.gate import (
    Category,
    Facts,
    Reason,
    Request,
    TemplateStatus,
    decide,
    explain,
)
from tests.conftest import Bot, Clock
from tests.flowkit import GERMANY, UK, say, tap, text_of
from tests.processes import run_cli

HOUR = 3600.0
PARAMS = {"name": "Ada", "offer": "10% off", "until": "Friday"}
ORDER = {"name": "Ada", "order": "A-17", "status": "shipped"}


@pytest.fixture
def gated(bot: Bot) -> Bot:
    return bot


@pytest.fixture
def clock(bot: Bot) -> Clock:
    return bot.clock


async def send(
    bot: Bot, clock: Clock, to: str, template: str, category: str, params: dict[str, str]
) -> str:
    s = bot.services
    queued = await queue_template(
        s.db, s.people, s.templates, TemplateSend(to, template, category, params),
        tier=bot.settings.messaging_tier, now=clock(),
    )  # fmt: skip
    return queued.message_id


async def refused(bot: Bot, clock: Clock, to: str, template: str, category: str) -> Reason:
    with pytest.raises(SendRefused) as caught:
        await send(bot, clock, to, template, category, ORDER if "order" in template else PARAMS)
    return caught.value.reason


async def templates_sent(bot: Bot, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Wait for the outbox to pick the queued rows up, then list the templates Meta got."""
    await bot.idle()
    await wait_queue_empty(bot, timeout)
    return [m.body for m in bot.fake.sent if m.body.get("type") == "template"]


async def wait_queue_empty(bot: Bot, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = await bot.sql("SELECT count(*) FROM messages WHERE status='queued'")
        if not rows[0][0] and not bot.services.outbox.depth:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("queued messages were not sent")


async def audit_refusals(bot: Bot) -> list[str]:
    rows = await bot.sql("SELECT outcome FROM audit WHERE event='policy_refused' ORDER BY id")
    return [r[0] for r in rows]


async def opt_in(bot: Bot, who: str) -> None:
    await say(bot, who, "JOIN", 2)
    await tap(bot, who, "optin.yes")
    await bot.idle()


# Refusals --------------------------------------------------------------------------------


async def test_marketing_without_consent_is_refused_and_audited(gated: Bot, clock: Clock) -> None:
    await say(gated, UK, "hello")
    assert await refused(gated, clock, UK, "promo_offer", "marketing") == Reason.NO_CONSENT
    assert await templates_sent(gated) == []
    assert await audit_refusals(gated) == ["no_consent"]
    rows = await gated.sql("SELECT count(*) FROM messages WHERE kind='template'")
    assert rows[0][0] == 0


async def test_after_stop_nothing_business_initiated_goes(gated: Bot, clock: Clock) -> None:
    await opt_in(gated, UK)
    (confirmed,) = await say(gated, UK, "STOP")
    assert "START" in text_of(confirmed)
    await gated.idle()
    assert await refused(gated, clock, UK, "promo_offer", "marketing") == Reason.SUPPRESSED
    assert await refused(gated, clock, UK, "order_update", "utility") == Reason.SUPPRESSED
    assert await templates_sent(gated) == []
    # START and a new yes lift the suppression: the same utility message now goes.
    await opt_in(gated, UK)
    await send(gated, clock, UK, "order_update", "utility", ORDER)
    assert len(await templates_sent(gated)) == 1


async def test_free_form_outside_the_window_is_refused(gated: Bot, clock: Clock) -> None:
    await say(gated, UK, "hello")
    clock.advance(25 * HOUR)
    s = gated.services
    with pytest.raises(SendRefused) as caught:
        await queue_text(s.db, s.people, UK, "Are you still there?", now=clock())
    assert caught.value.reason == Reason.OUTSIDE_WINDOW
    assert await audit_refusals(gated) == ["outside_window"]


async def test_an_erased_number_is_suppressed(gated: Bot, clock: Clock) -> None:
    await say(gated, UK, "DELETE MY DATA")
    await tap(gated, UK, "erase.yes")
    await gated.idle()
    assert await refused(gated, clock, UK, "order_update", "utility") == Reason.SUPPRESSED
    assert await gated.sql("SELECT count(*) FROM contacts") == [(0,)]  # nothing recreated


async def test_unknown_or_miscategorised_templates_are_refused(gated: Bot, clock: Clock) -> None:
    await opt_in(gated, UK)
    assert await refused(gated, clock, UK, "casino_bonus", "marketing") == Reason.UNKNOWN_TEMPLATE
    assert await refused(gated, clock, UK, "promo_offer", "utility") == Reason.CATEGORY_MISMATCH
    assert await refused(gated, clock, UK, "order_update", "service") == Reason.CATEGORY_MISMATCH
    with pytest.raises(SendRefused) as caught:
        await send(gated, clock, UK, "order_update", "utility", {"name": "Ada"})
    assert caught.value.reason == Reason.TEMPLATE_PARAMS
    assert await templates_sent(gated) == []


@pytest.mark.parametrize("bot", [{"BOT_MESSAGING_TIER": "250"}], indirect=True)
async def test_the_messaging_tier_caps_new_people_in_24_hours(gated: Bot, clock: Clock) -> None:
    numbers = [f"+4477009{i:05d}" for i in range(251)]
    for number in numbers[:250]:
        await send(gated, clock, number, "order_update", "utility", ORDER)
    assert await refused(gated, clock, numbers[250], "order_update", "utility") == (
        Reason.TIER_EXHAUSTED
    )
    # Someone already written to in these 24 hours costs no new place.
    await send(gated, clock, numbers[0], "order_update", "utility", ORDER)
    assert await gated.sql("SELECT count(*) FROM contacts") == [(250,)]
    # A day later the places are free again.
    clock.advance(24 * HOUR + 1)
    await send(gated, clock, numbers[250], "order_update", "utility", ORDER)


# Acceptances -----------------------------------------------------------------------------


async def test_marketing_with_consent_goes_as_a_template(gated: Bot, clock: Clock) -> None:
    await opt_in(gated, GERMANY)
    await send(gated, clock, GERMANY, "promo_offer", "marketing", PARAMS)
    (body,) = await templates_sent(gated)
    assert body["to"] == GERMANY.lstrip("+")
    template = body["template"]
    assert template["name"] == "promo_offer"
    assert template["language"] == {"code": "de"}  # the person's language
    names = [p["parameter_name"] for p in template["components"][0]["parameters"]]
    assert names == ["name", "offer", "until"]
    rows = await gated.sql("SELECT category, status FROM messages WHERE kind='template'")
    assert rows == [("marketing", "sent")]


async def test_free_form_inside_the_window_goes(gated: Bot, clock: Clock) -> None:
    await say(gated, UK, "hello")
    clock.advance(23 * HOUR)
    s = gated.services
    await queue_text(s.db, s.people, UK, "Your parcel left the warehouse.", now=clock())
    await gated.idle()
    await wait_queue_empty(gated, 5.0)
    assert "Your parcel left the warehouse." in [text_of(m.body) for m in gated.fake.sent]


async def test_a_template_outside_the_window_opens_a_conversation(gated: Bot, clock: Clock) -> None:
    await say(gated, UK, "hello")
    clock.advance(30 * HOUR)
    await send(gated, clock, UK, "order_update", "utility", ORDER)
    assert len(await templates_sent(gated)) == 1
    rows = await gated.sql("SELECT initiated_at IS NOT NULL FROM contacts")
    assert rows == [(True,)]


async def test_utility_to_a_new_number_creates_a_sealed_contact(gated: Bot, clock: Clock) -> None:
    await send(gated, clock, UK, "order_update", "utility", ORDER)
    (body,) = await templates_sent(gated)
    assert body["to"] == UK.lstrip("+")
    rows = await gated.sql("SELECT phone_sealed IS NOT NULL, last_inbound_at FROM contacts")
    assert rows == [(True, None)]


# At send time ----------------------------------------------------------------------------


async def test_the_gate_is_asked_again_just_before_sending(gated: Bot, clock: Clock) -> None:
    await opt_in(gated, UK)
    gated.services.outbox.timing.quality_pause = 1.5
    await gated.services.outbox.quality_signal(368)  # everything waits 1.5 s
    await send(gated, clock, UK, "promo_offer", "marketing", PARAMS)
    await say(gated, UK, "STOP", count=0)  # meanwhile, the person says STOP
    await gated.idle(timeout=10)
    await wait_queue_empty(gated, 10.0)
    assert [m.body for m in gated.fake.sent if m.body["type"] == "template"] == []
    assert any("START" in text_of(m.body) for m in gated.fake.sent)  # STOP still confirmed
    rows = await gated.sql("SELECT status, error_title FROM messages WHERE kind='template'")
    assert rows == [("refused", "suppressed")]
    assert "suppressed" in await audit_refusals(gated)
    metrics = (await gated.http.get(gated.url + "/metrics")).text
    assert 'bot_policy_refusals_total{category="marketing",reason="suppressed"} 1.0' in metrics


async def test_a_reply_still_queued_when_the_window_closes_is_refused(
    gated: Bot, clock: Clock
) -> None:
    await say(gated, UK, "hello")
    s = gated.services
    s.outbox.timing.quality_pause = 1.0
    await s.outbox.quality_signal(368)
    await queue_text(s.db, s.people, UK, "late answer", now=clock())
    clock.advance(24 * HOUR + 60)
    await wait_queue_empty(gated, 10.0)
    assert "late answer" not in [text_of(m.body) for m in gated.fake.sent]
    rows = await gated.sql("SELECT error_title FROM messages WHERE status='refused'")
    assert rows == [("outside_window",)]


# The rules alone -------------------------------------------------------------------------


def facts(**kw: Any) -> Facts:
    base: dict[str, Any] = {
        "known": True, "marketing": None, "last_inbound_at": 0.0, "suppressed": False
    }  # fmt: skip
    return Facts(**{**base, **kw})


APPROVED = TemplateStatus("marketing", "approved")


@pytest.mark.parametrize(
    ("request_", "facts_", "template", "reason"),
    [
        (Request(Category.SERVICE), facts(known=False), None, Reason.ERASED),
        (Request(Category.SERVICE, confirmation=True), facts(known=False), None, None),
        (Request(Category.SERVICE), facts(suppressed=True), None, None),
        (Request(Category.UTILITY, "t"), facts(suppressed=True), APPROVED, Reason.SUPPRESSED),
        (Request(Category.MARKETING, "t"), facts(), None, Reason.UNKNOWN_TEMPLATE),
        (
            Request(Category.MARKETING, "t"),
            facts(marketing="granted"),
            TemplateStatus("marketing", "paused"),
            Reason.TEMPLATE_NOT_APPROVED,
        ),
        (Request(Category.MARKETING, "t"), facts(marketing="revoked"), APPROVED, Reason.NO_CONSENT),
        (Request(Category.MARKETING, "t"), facts(marketing="granted"), APPROVED, None),
        (Request(Category.MARKETING), facts(marketing="granted"), None, None),
        (Request(Category.SERVICE), facts(last_inbound_at=-25 * HOUR), None, Reason.OUTSIDE_WINDOW),
    ],
)
def test_decide(request_: Request, facts_: Facts, template: Any, reason: Reason | None) -> None:
    assert decide(request_, facts_, 0.0, template) == reason


# The command line --------------------------------------------------------------------------


async def test_send_command_answers_with_the_gates_reason(gated: Bot) -> None:
    """`python -m bot send` as an operator runs it; the running bot sends what it queued."""
    await say(gated, UK, "hello")
    await gated.idle()
    base = ["send", "--to", UK, "--param", "name=Ada"]
    code, _, err = await run_cli(
        gated, *base, "--template", "promo_offer", "--category", "marketing",
        "--param", "offer=10% off", "--param", "until=Friday",
    )  # fmt: skip
    no_consent = "error: refused: no_consent: this person has not opted in to marketing"
    assert (code, err.strip()) == (1, no_consent)
    code, out, _ = await run_cli(
        gated, *base, "--template", "order_update", "--category", "utility",
        "--param", "order=A-17", "--param", "status=shipped",
    )  # fmt: skip
    assert code == 0 and out.startswith("accepted: message ")
    (body,) = await templates_sent(gated)
    assert body["template"]["name"] == "order_update"
    assert await audit_refusals(gated) == ["no_consent"]


async def test_send_refusals_say_what_is_wrong_naming_parameters_not_values(gated: Bot) -> None:
    """The code first (scripts parse it), then in words what is wrong; a parameter's
    value may be personal, so it is in neither the answer nor the audit."""
    await say(gated, UK, "hello")
    await gated.idle()
    base = ["send", "--to", UK, "--template", "order_update", "--category", "utility"]
    cases = [
        (
            ["--param", "name=Marie Curie"],
            "template_params: the template order_update needs the parameters name, order, "
            "status; missing: order, status",
        ),
        (
            ["--param", "name=Marie Curie", "--param", "order=A-17", "--param", "status=",
             "--param", "coupon=Marie-10"],
            "template_params: the template order_update needs the parameters name, order, "
            "status; unexpected: coupon",
        ),
        (
            ["--param", "name=Marie Curie", "--param", "order=A-17", "--param", "status=  "],
            "template_params: the template order_update's parameter status is empty",
        ),
        (
            ["--param", "name=Marie Curie", "--param", "order=A-17", "--param", "status=x",
             "--lang", "it"],
            "template_language: the template order_update has no 'it' text (it has: de, en, "
            "es, fr, pt)",
        ),
    ]  # fmt: skip
    for extra, expected in cases:
        code, out, err = await run_cli(gated, *base, *extra)
        assert (code, out) == (1, ""), err
        assert err.strip() == f"error: refused: {expected}"
        assert "Marie" not in err
    code, _, err = await run_cli(gated, *base[:4], "casino_bonus", "--category", "utility")
    assert err.strip() == (
        "error: refused: unknown_template: no template named casino_bonus is registered"
    )
    code, _, err = await run_cli(gated, *base[:4], "promo_offer", "--category", "utility")
    assert err.strip() == (
        "error: refused: category_mismatch: the template promo_offer is not registered as utility"
    )
    audit = await gated.sql("SELECT outcome, detail FROM audit WHERE event='policy_refused'")
    assert [outcome for outcome, _ in audit] == ["template_params"] * 3 + [
        "template_language", "unknown_template", "category_mismatch"
    ]  # fmt: skip
    assert not any("Marie" in str(detail) for _, detail in audit)


def test_every_refusal_reason_is_explained_in_words() -> None:
    for reason in Reason:
        words = explain(reason, template="t", category="utility")
        assert words and words[0].islower() and "{" not in words, reason


@given(
    category=st.sampled_from(list(Category)),
    template=st.sampled_from([None, "t"]),
    confirmation=st.booleans(),
    known=st.booleans(),
    marketing=st.sampled_from([None, "pending", "granted", "revoked"]),
    last=st.one_of(st.none(), st.floats(-3 * 24 * HOUR, 0)),
    suppressed=st.booleans(),
    registered=st.sampled_from(
        [None, ("marketing", "approved"), ("utility", "approved"), ("marketing", "paused")]
    ),
)
def test_the_rules_hold_for_any_facts(
    category: Category, template: str | None, confirmation: bool, known: bool,
    marketing: str | None, last: float | None, suppressed: bool, registered: Any,
) -> None:  # fmt: skip
    request = Request(category, template, confirmation)
    f = Facts(known, marketing, last, suppressed)
    status = TemplateStatus(*registered) if registered else None
    if decide(request, f, 0.0, status) is not None or confirmation:
        return
    # Whatever was allowed (the confirmation aside) obeys every rule at once.
    assert known
    assert category is not Category.MARKETING or marketing == "granted"
    assert template is not None or f.window_open(0.0)
    assert template is None or (status and status.status == "approved")
    assert template is None or (status and status.category == category)
    assert not suppressed or (template is None and category is Category.SERVICE)
