"""The outbox sender against the fake Graph API's real error answers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from bot.runtime.outbox import Timing
from bot.simulator import webhooks
from bot.whatsapp.client import GraphClient
from bot.whatsapp.errors import Action, GraphError, classify
from bot.whatsapp.messages import Document, Recipient, graph_body
from tests.conftest import PHONE_NUMBER_ID, SQLITE_ONLY, TOKEN, Bot, eventually

ALICE = "+447700900123"
BOB = "+6581234567"
# Retry logic does not depend on the database: most of these run on SQLite only;
# the transient and permanent cases also run on PostgreSQL for the row updates.
FAST = Timing(
    backoff_base=0.02, backoff_cap=0.1, throttle_pause=0.6, recipient_pause=0.6, quality_pause=0.6
)


@pytest.fixture
def fast(bot: Bot) -> Bot:
    bot.services.outbox.timing = FAST
    return bot


def attempts_to(bot: Bot, digits: str) -> int:
    return sum(
        1
        for r in bot.fake.requests
        if r.json and r.json.get("to") == digits and "status" not in r.json
    )


async def out_rows(bot: Bot) -> list[tuple]:
    rows = await bot.sql("SELECT status, attempts, error_code FROM messages WHERE direction='out'")
    return [tuple(r) for r in rows]


def retry_recorded(bot: Bot, code: int) -> Callable[[], Awaitable[bool]]:
    """The one reply failed once with `code` and its retry is scheduled in the store."""

    async def check() -> bool:
        return await out_rows(bot) == [("queued", 1, code)]

    return check


@pytest.mark.parametrize("fault", ["500", "502", "503", "disconnect", 131000, 2])
async def test_transient_errors_are_retried_until_sent(fast: Bot, fault: object) -> None:
    fast.fake.fail_next(fault, times=2)
    await fast.say(ALICE, "hi")
    (reply,) = await fast.replies(1)
    await fast.idle()
    assert reply.to == ALICE[1:]
    assert (await out_rows(fast))[0][:2] == ("sent", 3)
    assert attempts_to(fast, ALICE[1:]) == 3


@pytest.mark.parametrize(
    ("code", "title_part"),
    [(131026, "131026"), (131047, "131047"), (100, "100"), (131050, "131050")],
)
async def test_permanent_errors_mark_failed_without_retry(
    fast: Bot, code: int, title_part: str
) -> None:
    fast.fake.fail_next(code)
    await fast.say(ALICE, "hi")
    # Idle: the failure is recorded, and a retry would still be held in the outbox (a
    # backoff timer keeps it queued), so nothing more can be sent after this.
    await fast.idle()
    rows = await fast.sql(
        "SELECT status, attempts, error_code, error_title FROM messages WHERE direction='out'"
    )
    assert [tuple(r[:3]) for r in rows] == [("failed", 1, code)]
    assert title_part in rows[0][3]
    assert attempts_to(fast, ALICE[1:]) == 1
    assert not fast.fake.sent


@SQLITE_ONLY
@pytest.mark.parametrize("bot", [{"BOT_SEND_MAX_ATTEMPTS": 3}], indirect=True)
async def test_gives_up_after_max_attempts(fast: Bot) -> None:
    fast.fake.fail_next("503", times=10)
    await fast.say(ALICE, "hi")

    async def failed() -> bool:
        rows = await out_rows(fast)
        return bool(rows) and rows[0][0] == "failed"

    await eventually(failed)
    assert (await out_rows(fast))[0][:2] == ("failed", 3)
    assert attempts_to(fast, ALICE[1:]) == 3


@SQLITE_ONLY
async def test_throughput_limit_pauses_every_recipient(fast: Bot) -> None:
    fast.fake.fail_next(130429, to=ALICE[1:])
    await fast.say(ALICE, "hi")
    await eventually(retry_recorded(fast, 130429))  # the pause starts before this is written
    start = asyncio.get_running_loop().time()
    await fast.say(BOB, "hi")
    replies = await fast.replies(2)
    waited = asyncio.get_running_loop().time() - start
    assert {r.to for r in replies} == {ALICE[1:], BOB[1:]}
    assert waited >= 0.3  # Bob waited for the number-wide pause too


@SQLITE_ONLY
async def test_pair_rate_limit_slows_only_that_recipient(fast: Bot) -> None:
    fast.services.outbox.timing = Timing(
        backoff_base=0.02, backoff_cap=0.1, throttle_pause=0.6, recipient_pause=2.0
    )
    fast.fake.fail_next(131056, to=ALICE[1:])
    await fast.say(ALICE, "hi")
    await eventually(retry_recorded(fast, 131056))  # Alice's pause starts before this is written
    start = asyncio.get_running_loop().time()
    await fast.say(BOB, "hi")
    (first,) = await fast.replies(1)
    assert first.to == BOB[1:]  # Bob is not held back by Alice's pacing
    assert asyncio.get_running_loop().time() - start < 1.5
    (second,) = await fast.replies(1)
    assert second.to == ALICE[1:]
    assert asyncio.get_running_loop().time() - start >= 1.5  # Alice waited her pause


@SQLITE_ONLY
async def test_quality_signal_pauses_and_alerts(fast: Bot) -> None:
    fast.fake.fail_next(131048)
    await fast.say(ALICE, "hi")
    await fast.replies(1)
    metrics = (await fast.http.get(fast.url + "/metrics")).text
    assert 'bot_alerts_total{event="sending_paused"} 1.0' in metrics


@SQLITE_ONLY
async def test_a_send_the_store_cannot_record_is_recorded_later_not_sent_again(
    fast: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Meta accepted the reply, then the store failed: what is retried is the record,
    never the send (a second send would reach the person twice)."""
    from bot.runtime import outbox as outbox_module
    from bot.store import StoreUnavailable

    real = outbox_module.store.mark_sent
    failures = []

    def flaky(conn, message_id: str, wamid_index: str | None, now: float):
        if not failures:
            failures.append(message_id)
            raise StoreUnavailable("the store is away")
        return real(conn, message_id, wamid_index, now)

    monkeypatch.setattr(outbox_module.store, "mark_sent", flaky)
    monkeypatch.setattr(outbox_module, "STORE_RETRY", 0.05)
    await fast.say(ALICE, "hi")
    await fast.replies(1)

    async def recorded() -> bool:
        return await out_rows(fast) == [("sent", 1, None)]

    await eventually(recorded)
    await fast.idle()
    assert failures, "the first record failed"
    assert attempts_to(fast, ALICE[1:]) == 1


@SQLITE_ONLY
async def test_one_recipient_keeps_order_through_retries(fast: Bot) -> None:
    """MY DATA gets two replies; a retry of the first holds back the second."""
    fast.fake.fail_next("500", times=2, to=ALICE[1:])
    await fast.say(ALICE, "MY DATA")
    first, second = await fast.replies(2)
    assert first.body["type"] == "text"
    assert second.body["type"] == "interactive"


async def test_expired_token_switches_to_fallback_once_and_alerts(
    db_url: str, graph: tuple
) -> None:
    from bot.app import create_app
    from tests.conftest import make_settings
    from tests.servers import running

    fake, api_url = graph
    settings = make_settings(db_url, api_url, WHATSAPP_ACCESS_TOKEN_FALLBACK="fallback-token")
    app = create_app(settings)
    fake.expire_token(TOKEN)
    async with running(app) as url:
        import httpx

        async with httpx.AsyncClient() as http:
            for sender in (ALICE, BOB):
                body, _ = webhooks.message(PHONE_NUMBER_ID, sender, webhooks.text("hi"))
                raw, headers = webhooks.signed(body, "test-app-secret")
                assert (
                    await http.post(url + "/webhook", content=raw, headers=headers)
                ).status_code == 200
            sent = await fake.wait_for_sent(2)
            metrics = (await http.get(url + "/metrics")).text
    assert {s.to for s in sent} == {ALICE[1:], BOB[1:]}
    sends = [r for r in fake.requests if r.path.endswith("/messages")]
    assert sends[0].headers.get("authorization") == f"Bearer {TOKEN}"
    old = [r for r in sends if r.headers.get("authorization") == f"Bearer {TOKEN}"]
    # Requests already under way with the old token (two replies, two read receipts at
    # most) come back refused; each is repeated with the fallback, and nothing else
    # is ever sent with the old token.
    assert {r.status for r in old} == {401}
    assert len(old) <= 4
    accepted = [r for r in sends if r.status == 200]
    assert {r.headers.get("authorization") for r in accepted} == {"Bearer fallback-token"}
    assert 'bot_alerts_total{event="access_token_fallback"} 1.0' in metrics  # switched once
    assert "access_token_refused" not in metrics


@SQLITE_ONLY
async def test_expired_token_without_fallback_keeps_message_queued(fast: Bot) -> None:
    fast.fake.expire_token(TOKEN)
    await fast.say(ALICE, "hi")

    async def tried() -> bool:
        rows = await out_rows(fast)
        return bool(rows) and rows[0][1] >= 1

    await eventually(tried)
    status, attempts, code = (await out_rows(fast))[0]
    assert (status, code) == ("queued", 190)
    assert attempts >= 1
    assert not fast.fake.sent


async def test_client_sends_every_message_kind_and_uploads_media(
    graph: tuple,
) -> None:
    fake, api_url = graph
    client = GraphClient(base_url=api_url, phone_number_id=PHONE_NUMBER_ID, token=TOKEN)
    try:
        media_id = await client.upload_media(b'{"contact": null}', "application/json", "data.json")
        assert fake.media[media_id][0] == b'{"contact": null}'
        doc = graph_body(
            Document(media_id, "data.json", "Your data"), Recipient(wa_id="447700900123")
        )
        sent = await client.send(doc)
        assert sent.wamid and sent.wamid.startswith("wamid.")
        by_bsuid = graph_body(Document(media_id, "x.json"), Recipient(user_id="US.1349120865530"))
        assert (await client.send(by_bsuid)).wamid
        with pytest.raises(GraphError) as err:
            await client.send({"messaging_product": "whatsapp", "to": "1", "type": "nope"})
        assert err.value.code == 100 and err.value.action is Action.FAIL
    finally:
        await client.aclose()


def test_classification_table() -> None:
    assert classify(None, None) is Action.RETRY
    assert classify(500, 1) is Action.RETRY
    assert classify(429, None) is Action.RETRY
    assert classify(400, 130429) is Action.THROTTLE
    assert classify(400, 80007) is Action.THROTTLE
    assert classify(400, 4) is Action.THROTTLE
    assert classify(400, 131056) is Action.THROTTLE_RECIPIENT
    assert classify(401, 190) is Action.AUTH
    assert classify(400, 131048) is Action.PAUSE
    assert classify(400, 368) is Action.PAUSE
    for code in (100, 131026, 131047, 131049, 131050, 131051):
        assert classify(400, code) is Action.FAIL
