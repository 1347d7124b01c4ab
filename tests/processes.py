"""The bot as a real server process (`python -m bot serve`), for crash and multi-worker tests."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import APP_SECRET, PHONE_NUMBER_ID, TOKEN, Bot

ROOT = Path(__file__).resolve().parents[1]


def bot_env(tmp: Path, port: int, api_url: str) -> dict[str, str]:
    key = base64.b64encode(os.urandom(32)).decode()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WHATSAPP_", "BOT_", "DATABASE", "REDIS"))
    }
    env.update(
        WHATSAPP_APP_SECRET=APP_SECRET,
        WHATSAPP_VERIFY_TOKEN="verify-me",
        WHATSAPP_ACCESS_TOKEN=TOKEN,
        WHATSAPP_PHONE_NUMBER_ID=PHONE_NUMBER_ID,
        WHATSAPP_API_URL=api_url,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'bot.db'}",
        BOT_MASTER_KEYS=f"k1:{key}",
        BOT_INDEX_KEY=base64.b64encode(os.urandom(32)).decode(),
        BOT_AUDIT_KEY=base64.b64encode(os.urandom(32)).decode(),
        BOT_PORT=str(port),
        BOT_MARK_AS_READ="false",
        BOT_LOG_LEVEL="WARNING",
    )
    return env


def start_bot(env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


async def wait_ready(http: httpx.AsyncClient, url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"bot exited with {proc.returncode}: {err[-2000:]}")
        try:
            if (await http.get(url + "/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise TimeoutError("bot did not become ready")


def metric(text: str, sample: str) -> float:
    """One sample's value from a /metrics page (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def run_cli(bot: Bot, *args: str) -> tuple[int, str, str]:
    """Run `python -m bot ARGS` with the same settings as the running test bot."""
    s = bot.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "BOT_"))}
    env |= {
        "WHATSAPP_APP_SECRET": s.WHATSAPP_APP_SECRET,
        "WHATSAPP_VERIFY_TOKEN": s.WHATSAPP_VERIFY_TOKEN,
        "DATABASE_URL": s.DATABASE_URL,
        "BOT_MASTER_KEYS": s.BOT_MASTER_KEYS,
        "BOT_INDEX_KEY": s.BOT_INDEX_KEY,
        "BOT_AUDIT_KEY": s.BOT_AUDIT_KEY,
        "BOT_AUDIT_CHECKPOINTS": str(s.audit_checkpoints),
        "BOT_KEYSTORE_URL": s.BOT_KEYSTORE_URL,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
