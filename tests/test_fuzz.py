"""Arbitrary JSON and bytes at POST /webhook, signed and unsigned: only 200 or 4xx, no crash."""

from __future__ import annotations

import contextlib
import copy
import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.simulator import webhooks
from tests.conftest import APP_SECRET, PHONE_NUMBER_ID
from tests.threaded import ThreadedBot

ALLOWED = {200, 400, 401, 413}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)
meta_keys = st.sampled_from(
    [
        "object",
        "entry",
        "changes",
        "value",
        "messages",
        "statuses",
        "contacts",
        "id",
        "from",
        "type",
        "text",
        "body",
        "timestamp",
        "errors",
        "metadata",
        "phone_number_id",
        "field",
    ]
)


@pytest.fixture(scope="module")
def threaded_bot(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ThreadedBot, httpx.Client]]:
    # Every mutated delivery that still parses is a message from one person, far more than
    # a person writes: pacing would hold their replies for minutes (it has its own tests).
    # Bad input, not floods, is fuzzed here: unsigned posts stay 401 (test_webhook_floods).
    pacing = {"BOT_RECIPIENT_BURST": 1000, "BOT_WEBHOOK_FAILURE_LIMIT": 1_000_000}
    tmp = tmp_path_factory.mktemp("fuzz")
    with ThreadedBot(tmp, **pacing) as tb, httpx.Client(timeout=30) as http:
        yield tb, http


def post(http: httpx.Client, url: str, raw: bytes, sign: bool) -> int:
    headers = webhooks.signed(raw, APP_SECRET)[1] if sign else {}
    return http.post(url + "/webhook", content=raw, headers=headers).status_code


FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(value=json_values, sign=st.booleans())
def test_arbitrary_json(
    threaded_bot: tuple[ThreadedBot, httpx.Client], value: Any, sign: bool
) -> None:
    tb, http = threaded_bot
    status = post(http, tb.url, json.dumps(value).encode(), sign)
    assert status in ALLOWED
    if not sign:
        assert status == 401


@FUZZ
@given(raw=st.binary(max_size=2048), sign=st.booleans())
def test_arbitrary_bytes(
    threaded_bot: tuple[ThreadedBot, httpx.Client], raw: bytes, sign: bool
) -> None:
    tb, http = threaded_bot
    assert post(http, tb.url, raw, sign) in ALLOWED


@FUZZ
@given(
    path=st.lists(meta_keys | st.integers(0, 3), min_size=1, max_size=6),
    replacement=json_values,
)
def test_mutated_meta_payloads(
    threaded_bot: tuple[ThreadedBot, httpx.Client], path: list[Any], replacement: Any
) -> None:
    """A real-looking delivery with one part replaced by anything at all."""
    tb, http = threaded_bot
    body, _ = webhooks.message(PHONE_NUMBER_ID, "+447700900123", webhooks.text("hi"))
    body = copy.deepcopy(body)
    node: Any = body
    for key in path[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            break
    with contextlib.suppress(KeyError, IndexError, TypeError):
        node[path[-1]] = replacement
    assert post(http, tb.url, json.dumps(body).encode(), sign=True) in {200, 400}


def test_bot_still_healthy_after_fuzzing(threaded_bot: tuple[ThreadedBot, httpx.Client]) -> None:
    tb, http = threaded_bot
    assert http.get(tb.url + "/readyz").status_code == 200
    body, _ = webhooks.message(PHONE_NUMBER_ID, "+447700900123", webhooks.text("still there?"))
    assert post(http, tb.url, orjson.dumps(body), sign=True) == 200
    tb.idle()  # the turns of everything accepted above have run (or were set aside)
    with sqlite3.connect(tb.tmp / "bot.db") as db:
        failed = db.execute("SELECT count(*) FROM inbox WHERE state='failed' OR attempts > 1")
        assert failed.fetchone()[0] == 0, "a fuzzed delivery made a turn crash"
