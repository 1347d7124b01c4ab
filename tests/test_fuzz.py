"""Arbitrary JSON and bytes at POST /webhook, signed and unsigned: only 200 or 4xx, no crash."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import create_app
from bot.simulator import webhooks
from bot.simulator.fake_graph import FakeGraph
from bot.simulator.fake_graph import create_app as create_fake_app
from tests.conftest import APP_SECRET, PHONE_NUMBER_ID, TOKEN, make_settings
from tests.servers import running

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


class ThreadedBot:
    """The bot and the fake Graph API on their own event loop, for synchronous hypothesis."""

    def __init__(self, tmp: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.stop_event: asyncio.Event | None = None
        self.url = ""
        self.tmp = tmp
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),))
        self.errors: list[BaseException] = []

    async def _main(self) -> None:
        self.stop_event = asyncio.Event()
        try:
            fake = FakeGraph(phone_number_id=PHONE_NUMBER_ID, tokens=[TOKEN])
            async with running(create_fake_app(fake)) as graph_url:
                settings_ = make_settings(
                    f"sqlite+aiosqlite:///{self.tmp / 'bot.db'}", graph_url + "/v21.0"
                )
                self.app = create_app(settings_)
                async with running(self.app) as url:
                    self.url = url
                    self.ready.set()
                    await self.stop_event.wait()
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)
            self.ready.set()

    def __enter__(self) -> ThreadedBot:
        self.thread.start()
        assert self.ready.wait(30) and not self.errors, self.errors
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.stop_event is not None
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(30)
        assert not self.errors, self.errors


@pytest.fixture(scope="module")
def threaded_bot(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ThreadedBot, httpx.Client]]:
    with ThreadedBot(tmp_path_factory.mktemp("fuzz")) as tb, httpx.Client(timeout=30) as http:
        yield tb, http


def post(http: httpx.Client, url: str, raw: bytes, sign: bool) -> int:
    headers = webhooks.signed(raw, APP_SECRET)[1] if sign else {}
    return http.post(url + "/webhook", content=raw, headers=headers).status_code


FUZZ = settings(
    max_examples=150,
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
    time.sleep(1.0)  # let the turns of everything accepted above run
    with sqlite3.connect(tb.tmp / "bot.db") as db:
        failed = db.execute("SELECT count(*) FROM inbox WHERE state='failed' OR attempts > 1")
        assert failed.fetchone()[0] == 0, "a fuzzed delivery made a turn crash"
