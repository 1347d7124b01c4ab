"""The bot as a real server process (`python -m bot serve`), for crash and multi-worker tests."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import APP_SECRET, PHONE_NUMBER_ID, TOKEN


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
