"""The bot and the fake Graph API on an event loop of their own, for synchronous
tests (hypothesis drives plain functions, not coroutines)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from bot.app import Services, create_app
from bot.simulator.fake_graph import FakeGraph
from bot.simulator.fake_graph import serve as serve_fake
from tests.conftest import PHONE_NUMBER_ID, TOKEN, make_settings, wait_idle
from tests.servers import running

T = TypeVar("T")


class ThreadedBot:
    def __init__(self, tmp: Path, **settings: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.stop_event: asyncio.Event | None = None
        self.url = ""
        self.tmp = tmp
        self.settings = settings
        self.fake = FakeGraph(phone_number_id=PHONE_NUMBER_ID, tokens=[TOKEN])
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),))
        self.errors: list[BaseException] = []

    async def _main(self) -> None:
        self.stop_event = asyncio.Event()
        try:
            async with serve_fake(self.fake) as graph_url:
                settings_ = make_settings(
                    f"sqlite+aiosqlite:///{self.tmp / 'bot.db'}", graph_url + "/v21.0",
                    **self.settings,
                )  # fmt: skip
                self.app = create_app(settings_)
                async with running(self.app) as url:
                    self.url = url
                    self.ready.set()
                    await self.stop_event.wait()
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)
            self.ready.set()

    @property
    def services(self) -> Services:
        return self.app.extensions["bot"]

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def idle(self, timeout: float = 15) -> None:
        """Block until every turn and send under way has finished."""

        self.run(wait_idle(self.services, timeout), timeout + 5)

    def __enter__(self) -> ThreadedBot:
        self.thread.start()
        assert self.ready.wait(30) and not self.errors, self.errors
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.stop_event is not None
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(30)
        assert not self.errors, self.errors
