"""`python -m bot doctor`: FAIL on `make run`'s development set-up, exit 0 on a
production-like one, and never a secret in what it prints."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import secrets
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from dotenv import dotenv_values

from bot import cli
from bot.audit import write_checkpoint
from bot.config import dev_env_file
from bot.doctor import FAIL, PASS, WARN, DevFile, run_checks
from bot.doctor import settings_checks as checks
from bot.simulator.fake_graph import FakeGraph
from bot.store import keys as key_store
from bot.store.db import Database
from tests.conftest import PHONE_NUMBER_ID, TOKEN, make_settings, random_key
from tests.servers import free_port

DAY = 86400.0


def _values(found: dict[str, Any]) -> list[str]:
    """Every secret value in a settings mapping, master key material on its own too."""
    names = ("WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN", "WHATSAPP_ACCESS_TOKEN",
             "WHATSAPP_ACCESS_TOKEN_FALLBACK", "BOT_INDEX_KEY", "BOT_MASTER_KEYS")  # fmt: skip
    values = [str(found[n]) for n in names if found.get(n)]
    values += [k.partition(":")[2] for k in str(found.get("BOT_MASTER_KEYS", "")).split(",")]
    return [v for v in values if v]


def test_make_run_set_up_fails_and_prints_no_secret(tmp_path: Path) -> None:
    dev = dev_env_file(tmp_path / "var" / "dev.env")  # what `make run` writes first
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "doctor"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert any(x.startswith("FAIL simulator:") for x in lines), lines
    assert any(x.startswith("FAIL development secrets:") for x in lines), lines
    assert all(x.split(" ", 1)[0] in {PASS, WARN, FAIL} for x in lines[:-1])
    for secret in _values(dict(dotenv_values(dev))):
        assert secret not in done.stdout + done.stderr


def production(db_url: str, api_url: str, **overrides: Any) -> dict[str, Any]:
    values = {
        "WHATSAPP_APP_SECRET": secrets.token_hex(16),
        "WHATSAPP_VERIFY_TOKEN": secrets.token_urlsafe(24),
        "WHATSAPP_ACCESS_TOKEN": TOKEN,
        "WHATSAPP_ACCESS_TOKEN_FALLBACK": "fallback-token",
        "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
        "WHATSAPP_API_URL": api_url,
        "DATABASE_URL": db_url,
        "BOT_MASTER_KEYS": f"k1:{random_key()}",
        "BOT_INDEX_KEY": random_key(),
        "BOT_AUDIT_KEY": random_key(),
        "BOT_SIMULATOR": "false",
        "BOT_PUBLIC_URL": f"https://127.0.0.1:{free_port()}",  # nobody there: WARN
        "BOT_WEBHOOK_ALLOW_FROM": "173.252.64.0/18,2a03:2880::/32",
        "BOT_TRUSTED_PROXIES": "127.0.0.1/32",
        "BOT_ALERT_INBOUND_MESSAGES": "5000",
    }
    values.update(overrides)
    return values


async def test_a_production_like_set_up_passes_and_prints_no_secret(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sqlite_url: str,
    graph: tuple[FakeGraph, str],
) -> None:
    fake, api_url = graph
    fake.token_expires_at[TOKEN] = time.time() + 200 * DAY  # the fallback never expires
    values = production(sqlite_url, api_url)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no .env, no var/dev.env here
    code = await asyncio.to_thread(cli.main, ["doctor"])
    out = capsys.readouterr()
    assert code == 0, out.out
    lines = out.out.splitlines()
    assert not [x for x in lines if x.startswith(FAIL)]
    assert "PASS access token validity: valid for 199 more days" in lines
    assert (
        "PASS fallback token validity: valid and does not expire (a system user's token)" in lines
    )
    assert any(x.startswith("WARN HTTPS and HSTS: 127.0.0.1:") for x in lines)
    assert any(x.startswith("WARN master key age: key 'k1' was never recorded") for x in lines)
    assert any(x.startswith("WARN audit checkpoints: none yet in ") for x in lines)
    for secret in _values(values):
        assert secret not in out.out + out.err
    requests = [r for r in fake.requests if r.path.endswith("/debug_token")]
    assert len(requests) == 2
    # The age is recorded now: a second run counts from the first.
    assert await asyncio.to_thread(cli.main, ["doctor"]) == 0
    assert "PASS master key age: key 'k1' in use for 0 days of 90" in capsys.readouterr().out


async def _run(values: dict[str, Any], now: float | None = None) -> dict[str, tuple[str, str]]:
    settings = make_settings(values["DATABASE_URL"], values["WHATSAPP_API_URL"], **values)
    found = await run_checks(settings, DevFile(), now)
    return {c.what: (c.status, c.why) for c in found}


async def test_expiring_and_refused_tokens_fail(
    sqlite_url: str, graph: tuple[FakeGraph, str]
) -> None:
    fake, api_url = graph
    fake.token_expires_at[TOKEN] = time.time() + 3 * DAY
    fake.expire_token("fallback-token")
    found = await _run(production(sqlite_url, api_url))
    assert found["access token validity"] == (FAIL, "expires in 2 days: replace it now")
    assert found["fallback token validity"][0] == FAIL
    fake.token_expires_at[TOKEN] = time.time() + 20 * DAY
    fake.token_scopes = ["whatsapp_business_management"]
    found = await _run(production(sqlite_url, api_url))
    assert found["access token validity"] == (
        FAIL,
        "lacks the whatsapp_business_messaging permission",
    )


async def test_a_master_key_older_than_the_rotation_fails(
    sqlite_url: str, graph: tuple[FakeGraph, str]
) -> None:
    values = production(sqlite_url, graph[1])
    db = Database(sqlite_url)
    await db.start()
    await db.write(key_store.note_master_key, "k1", time.time() - 100 * DAY)
    await db.stop()
    found = await _run(values)
    assert found["master key age"][0] == FAIL
    assert "100 days" in found["master key age"][1]


async def test_settings_that_fail(sqlite_url: str, graph: tuple[FakeGraph, str]) -> None:
    weak = production(
        sqlite_url, graph[1], WHATSAPP_APP_SECRET="test-app-secret", WHATSAPP_VERIFY_TOKEN="abc",
        BOT_PUBLIC_URL="http://bot.example.com", BOT_LOG_LEVEL="DEBUG",
    )  # fmt: skip
    found = await _run(weak)
    assert found["secret strength"][0] == FAIL
    assert "WHATSAPP_VERIFY_TOKEN (3 characters" in found["secret strength"][1]
    assert found["HTTPS and HSTS"][0] == FAIL
    assert found["log level"][0] == FAIL
    assert "test-app-secret" not in repr(found)


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("postgresql+asyncpg://bot:pw@db.example.com/bot", FAIL),
        ("postgresql+asyncpg://bot:pw@db.example.com/bot?ssl=prefer", WARN),
        ("postgresql+asyncpg://bot:pw@db.example.com/bot?ssl=require", PASS),
        ("postgresql+asyncpg://bot:pw@10.0.0.5:5432/bot?sslmode=verify-full", PASS),
        ("postgresql+asyncpg://bot:pw@127.0.0.1/bot", PASS),
        ("sqlite+aiosqlite:///var/bot.db", PASS),
    ],
)
def test_database_tls(url: str, status: str) -> None:
    settings = make_settings(url, "http://x")
    found = checks.database_tls(settings)
    assert found.status == status
    assert "pw" not in found.why


def test_development_keys_are_recognised_outside_the_dev_file(tmp_path: Path) -> None:
    dev = dict(dotenv_values(dev_env_file(tmp_path / "dev.env")))
    mine = dict(dev, BOT_MASTER_KEYS=f"prod:{random_key()},old:{dev['BOT_MASTER_KEYS'][5:]}")
    settings = make_settings("sqlite+aiosqlite:///x.db", "http://x", **mine)
    found = checks.development_secrets(settings, DevFile(used=False, secrets=dev))
    assert found.status == FAIL
    assert "BOT_MASTER_KEYS (old)" in found.why and "BOT_INDEX_KEY" in found.why
    assert all(v not in found.why for v in _values(dev))


# ---- HTTPS and HSTS against a tiny local TLS server


def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@asynccontextmanager
async def tls_server(tmp_path: Path, headers: str) -> AsyncIterator[str]:
    cert, key = _certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            f"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n{headers}Connection: close\r\n\r\nok".encode()
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    os.environ["SSL_CERT_FILE"] = str(cert)
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        del os.environ["SSL_CERT_FILE"]
        server.close()


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ("Strict-Transport-Security: max-age=63072000; includeSubDomains\r\n", PASS),
        ("Strict-Transport-Security: max-age=600\r\n", WARN),
        ("", FAIL),
    ],
)
async def test_hsts_through_the_proxy(tmp_path: Path, headers: str, status: str) -> None:
    from bot.doctor.probes import public_url

    async with tls_server(tmp_path, headers) as url:
        settings = make_settings("sqlite+aiosqlite:///x.db", "http://x", BOT_PUBLIC_URL=url)
        found = await public_url(settings)
    assert found.status == status, found.why


def test_audit_checkpoints_missing_signed_or_forged(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints.jsonl"
    url, where = "sqlite+aiosqlite:///x.db", str(path)
    settings = make_settings(url, "http://x", BOT_AUDIT_CHECKPOINTS=where)
    assert checks.audit_checkpoints(settings).status == WARN  # none written yet
    write_checkpoint(path, settings.audit_key, 7, "k1:head")
    passed = checks.audit_checkpoints(settings)
    assert passed.status == PASS and "entry 7" in passed.why
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=40)
    assert checks.audit_checkpoints(settings, now=later).status == WARN  # nobody writes them
    forged = make_settings(url, "http://x", BOT_AUDIT_CHECKPOINTS=where, BOT_AUDIT_KEY=random_key())
    assert checks.audit_checkpoints(forged).status == FAIL  # not signed with this key
