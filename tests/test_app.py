"""The app factory: keys first, then every service built complete, nothing patched later."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import text

from bot.app import EXTENSION, create_app
from bot.config import Settings
from bot.crypto import DataKey, Keyring, WrappedKey
from bot.runtime.inbox import INBOX_KEY_ID
from bot.services import OUTBOX_KEY_ID, Services, load_content, open_services
from tests.conftest import make_settings
from tests.servers import running

NOWHERE = "http://127.0.0.1:9/v21.0"  # nothing is sent in these tests


def fresh(tmp_path: Path) -> Settings:
    """A database file that does not exist yet: opening it runs every migration."""
    return make_settings(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", NOWHERE)


async def stored_keys(services: Services) -> tuple[DataKey, DataKey]:
    """The inbox's and the outbox's keys as the store holds them, unwrapped."""
    query = text("SELECT kid, wrapped FROM data_keys WHERE id = :id")
    keyring = Keyring(services.settings.master_keys, services.settings.index_key)  # no cache
    keys = []
    for key_id in (INBOX_KEY_ID, OUTBOX_KEY_ID):
        kid, wrapped = await services.keys.read(
            lambda c, k=key_id: c.execute(query, {"id": k}).one()
        )
        keys.append(keyring.unwrap(key_id, WrappedKey(kid, wrapped)))
    return keys[0], keys[1]


async def test_open_services_builds_every_service_with_its_keys(tmp_path: Path) -> None:
    settings = fresh(tmp_path)
    services = await open_services(settings, load_content(settings))
    try:
        inbox, outbox = await stored_keys(services)
        held = await services.keys.read(
            lambda c: c.execute(text("SELECT id FROM data_keys ORDER BY id")).all()
        )
    finally:
        await services.stop()
    assert [row[0] for row in held] == sorted([INBOX_KEY_ID, OUTBOX_KEY_ID])
    # What the webhook seals with, the turns open with; what a turn queues with no
    # person's key left (the farewell), the outbox feed opens with.
    assert services.webhook.inbox_key == inbox
    assert services.turns._inbox_key == inbox
    assert services.turns._conversation._system_key == outbox
    assert services.feed._system_key == outbox
    # One quiet revocation, for WhatsApp's own STOP and for Meta's error 131050.
    assert services.outbox._stops is services.turns._stops
    assert services.outbox._observer is services.metrics
    assert services.turns._observer is services.metrics


async def test_the_system_keys_are_made_once_and_kept(tmp_path: Path) -> None:
    settings = fresh(tmp_path)
    content = load_content(settings)
    first = await open_services(settings, content)
    await first.stop()
    again = await open_services(settings, content)
    try:
        assert again.webhook.inbox_key == first.webhook.inbox_key
        assert again.feed._system_key == first.feed._system_key
        assert await stored_keys(again) == (first.webhook.inbox_key, first.feed._system_key)
    finally:
        await again.stop()


async def test_routes_are_registered_at_once_and_services_built_at_start(
    tmp_path: Path,
) -> None:
    settings = fresh(tmp_path)
    app = create_app(settings)
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    assert {"/webhook", "/healthz", "/readyz", "/metrics"} <= routes
    assert EXTENSION not in app.extensions  # nothing is opened before the app serves
    async with running(app) as url, httpx.AsyncClient(base_url=url) as http:
        services = app.extensions[EXTENSION]
        assert isinstance(services, Services)
        assert (await http.get("/readyz")).status_code == 200
        assert (await http.get("/metrics")).status_code == 200
        inbox, _ = await stored_keys(services)
        assert services.webhook.inbox_key == inbox
