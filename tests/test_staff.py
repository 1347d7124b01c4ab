"""Support staff: tokens made on the command line, judged on every API request, and the
first route of the desk (the queue of handed-off conversations)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import Bot
from tests.flowkit import UK
from tests.processes import run_cli

DAY = 86400.0


async def add(bot: Bot, name: str, role: str, *extra: str) -> str:
    code, out, err = await run_cli(bot, "staff", "add", name, "--role", role, *extra)
    assert code == 0, err
    token, note = out.strip().splitlines()
    assert name in note and "shown once" in note
    return token


async def api(bot: Bot, path: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await bot.http.get(bot.url + "/api/v1" + path, headers=headers)


async def in_raw_files(bot: Bot, needle: str) -> bool:
    """Whether `needle` is in any byte of the SQLite database, its key store and their WAL
    files. Read by another process: closing a file this process also has open through
    SQLite would drop SQLite's locks on it."""
    directory = Path(bot.settings.sqlite_path or "").parent
    code = (
        "import pathlib, sys; d = pathlib.Path(sys.argv[1]); "
        "print(any(sys.argv[2].encode() in p.read_bytes() for p in d.glob('bot*.db*')))"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, str(directory), needle, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    return out.decode().strip() == "True"


async def audit_of(bot: Bot, event: str) -> list[tuple[str, dict]]:
    rows = await bot.sql("SELECT actor, detail FROM audit WHERE event=:e ORDER BY id", e=event)
    return [(r[0], orjson.loads(r[1])) for r in rows]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_token_is_printed_once_stored_as_a_keyed_hash_and_never_listed(bot: Bot) -> None:
    token = await add(bot, "ada", "agent", "--days", "7")
    assert len(token) >= 40
    assert not await in_raw_files(bot, token)
    assert await in_raw_files(bot, "staff_added")  # the search does find what is there
    (stored,) = await bot.sql("SELECT token_index, role, name FROM staff_tokens")
    assert stored[0] != token and stored[1:] == ("agent", "ada")
    code, out, err = await run_cli(bot, "staff", "list")
    assert code == 0, err
    assert "ada" in out and "agent" in out and "active" in out and "never" in out
    assert token not in out and stored[0] not in out
    assert await audit_of(bot, "staff_added") == [("operator", {"name": "ada", "role": "agent"})]

    assert (await api(bot, "/conversations", token)).status_code == 200
    code, out, _ = await run_cli(bot, "staff", "list")
    assert "never" not in out.splitlines()[1]  # its last use is shown


async def test_the_command_refuses_bad_input_in_one_line(bot: Bot) -> None:
    for args in (
        ["add", "Not A Name", "--role", "agent"],
        ["add", "ada"],
        ["revoke", "nobody"],
        ["add", "ada", "--role", "agent", "--days", "0"],
    ):
        code, out, err = await run_cli(bot, "staff", *args)
        assert code != 0 and out == "", args
        assert len(err.strip().splitlines()) == 1 and err.startswith("error:"), (args, err)
    assert await bot.sql("SELECT count(*) FROM staff_tokens") == [(0,)]


async def test_missing_unknown_expired_and_revoked_tokens_get_401(bot: Bot) -> None:
    ada = await add(bot, "ada", "agent")
    brief = await add(bot, "bo", "agent", "--days", "1")
    assert (await api(bot, "/conversations", ada)).status_code == 200
    assert (await api(bot, "/conversations", brief)).status_code == 200
    refused = [
        await api(bot, "/conversations"),
        await api(bot, "/conversations", "not-a-token"),
        await bot.http.get(bot.url + "/api/v1/conversations", headers={"Authorization": ada}),
        await api(bot, "/no/such/route", "not-a-token"),  # says nothing of what exists
    ]
    bot.clock.advance(DAY + 1)
    refused.append(await api(bot, "/conversations", brief))
    assert (await api(bot, "/conversations", ada)).status_code == 200
    code, out, err = await run_cli(bot, "staff", "revoke", "ada")
    assert code == 0 and "revoked 1" in out, err
    refused.append(await api(bot, "/conversations", ada))  # at once, no restart
    for response in refused:
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized" and response.json()["detail"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert len({r.text for r in refused}) == 1  # the same words whatever was wrong
    assert await audit_of(bot, "staff_revoked") == [("operator", {"name": "ada", "tokens": 1})]
    code, out, _ = await run_cli(bot, "staff", "list")
    assert "revoked" in out  # (expiry is judged by the real clock there, not the test's)
    # a known route for a valid token that does not exist: 404 in the API's shape
    fresh = await add(bot, "cy", "supervisor")
    missing = await api(bot, "/no/such/route", fresh)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


async def test_roles_without_the_right_get_403_and_bad_input_400(bot: Bot) -> None:
    privacy = await add(bot, "pia", "privacy")
    agent = await add(bot, "ada", "agent")
    supervisor = await add(bot, "sue", "supervisor")
    for state in ("waiting", "mine", "all"):
        got = await api(bot, f"/conversations?state={state}", privacy)
        assert got.status_code == 403 and got.json()["error"] == "forbidden"
    assert (await api(bot, "/conversations?state=all", agent)).status_code == 403
    for state in ("waiting", "mine"):
        assert (await api(bot, f"/conversations?state={state}", agent)).status_code == 200
    for state in ("waiting", "mine", "all"):
        assert (await api(bot, f"/conversations?state={state}", supervisor)).status_code == 200
    bad = await api(bot, "/conversations?state=everything", supervisor)
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"
    assert "state" in bad.json()["detail"] and "everything" not in bad.json()["detail"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_bad_tokens_from_one_source_get_429_without_an_audit_row_each(bot: Bot) -> None:
    from bot.api.auth import FAILURE_LIMIT

    good = await add(bot, "ada", "agent")
    before = (await bot.sql("SELECT count(*) FROM audit"))[0][0]
    codes = [(await api(bot, "/conversations", f"guess-{n}")).status_code for n in range(40)]
    assert codes == [401] * FAILURE_LIMIT + [429] * (40 - FAILURE_LIMIT)
    limited = await api(bot, "/conversations", "guess")
    assert limited.json()["error"] == "too_many_requests"
    assert (await bot.sql("SELECT count(*) FROM audit"))[0][0] == before
    assert (await api(bot, "/conversations", good)).status_code == 429  # until the window ends
    bot.clock.advance(61)
    assert (await api(bot, "/conversations", good)).status_code == 200
    assert (await api(bot, "/conversations", "guess-again")).status_code == 401
    bursts = await audit_of(bot, "api_token_refused")
    assert bursts == [("system", {"count": 42, "throttled": 32, "window_s": 60})]


async def test_the_queue_shows_a_handed_off_person_masked_and_the_read_is_audited(
    bot: Bot,
) -> None:
    agent = await add(bot, "ada", "agent")
    assert (await api(bot, "/conversations", agent)).json() == {"conversations": []}
    await bot.say(UK, "AGENT", name="Grace Hopper")
    await bot.idle()
    (pseudonym,) = [r[0] for r in await bot.sql("SELECT id FROM contacts")]
    got = await api(bot, "/conversations?state=waiting", agent)
    assert got.status_code == 200
    (item,) = got.json()["conversations"]
    assert item["number"] == "•••123" and UK[1:] not in got.text and UK[-6:] not in got.text
    assert item["profile_name"] == "Grace Hopper"
    assert item["state"] == "waiting" and item["assignee"] is None
    assert (item["language"], item["law"]) == ("en", "gdpr")
    assert item["window_open"] is True
    assert item["waiting_since"].endswith("Z") and item["window_until"].endswith("Z")
    assert item["id"] != pseudonym and len(item["id"]) == 64  # the pseudonym, not the row id
    reads = await audit_of(bot, "staff_read")
    assert reads == [
        ("staff:ada", {"what": "conversations", "state": "waiting", "subjects": [item["id"]]})
    ]
    assert "Grace" not in str(await bot.sql("SELECT * FROM audit"))
    assert (await api(bot, "/conversations?state=mine", agent)).json() == {"conversations": []}
    bot.clock.advance(DAY + 1)  # the window closed, and the unanswered handoff went back
    assert (await api(bot, "/conversations", agent)).json() == {"conversations": []}


@pytest.mark.parametrize("bot", [{"BOT_HANDOFF_TIMEOUT": 0}], indirect=True)
async def test_the_window_closes_a_day_after_the_last_message(bot: Bot) -> None:
    supervisor = await add(bot, "sue", "supervisor")
    await bot.say(UK, "AGENT")
    await bot.idle()
    bot.clock.advance(DAY + 1)
    (item,) = (await api(bot, "/conversations?state=all", supervisor)).json()["conversations"]
    assert item["window_open"] is False and item["profile_name"] is None


async def test_the_openapi_document_describes_the_api(bot: Bot) -> None:
    got = await bot.http.get(bot.url + "/api/v1/openapi.json")
    assert got.status_code == 200
    doc = got.json()
    assert "/api/v1/conversations" in doc["paths"]
    assert all(path.startswith("/api/v1/") for path in doc["paths"])
    operation = doc["paths"]["/api/v1/conversations"]["get"]
    assert {"200", "401", "403", "429"} <= set(operation["responses"])
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    params = {p["name"] for p in operation["parameters"]}
    assert "state" in params
