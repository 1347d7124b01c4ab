"""`serve` with several processes: web workers on one socket, and turn workers.

The parent binds the port once and starts each web worker as `python -m bot
serve --fd N --role …`, handing the socket down; the kernel spreads
connections between them. With `BOT_TURN_WORKERS` = 0 each web worker is a
whole bot (turns, outbox, timers). Otherwise the web workers only verify,
store and acknowledge deliveries, and `BOT_TURN_WORKERS` processes of their
own (`serve --role turns --share i/n`) run the turns and the sends, so a burst
of turns never slows the acknowledgements Meta waits for. What several
processes must agree on (per-contact turn locks, rate limits, pauses) lives in
Redis, and outbox rows are leased in the database, so two workers never send
the same message.

All of them write metrics to one `PROMETHEUS_MULTIPROC_DIR`, so a scrape of
any web worker sees the whole bot. A worker that dies is started again;
SIGINT/SIGTERM stop them all gracefully.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from prometheus_client import multiprocess

from bot.metrics import MULTIPROC_ENV

log = logging.getLogger(__name__)
RESTART_PAUSE = 1.0


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@dataclass
class Plan:
    """Which processes to run: `web` on the socket, `turns` on their own."""

    host: str
    port: int
    web: int
    turns: int
    dev: bool = False


def _metrics_dir() -> tuple[Path, bool]:
    """The operator's PROMETHEUS_MULTIPROC_DIR (emptied: samples of an earlier run
    would be added in), or a temporary one removed at exit."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for old in path.glob("*.db"):
            old.unlink()
        return path, False
    return Path(tempfile.mkdtemp(prefix="bot-metrics-")), True


def supervise(plan: Plan) -> int:
    sock = bind(plan.host, plan.port)
    fd = sock.fileno()
    base = [sys.executable, "-m", "bot", "serve"] + (["--dev"] if plan.dev else [])
    web_role = "web" if plan.turns else "all"
    commands = [[*base, "--fd", str(fd), "--role", web_role] for _ in range(plan.web)]
    commands += [
        [*base, "--role", "turns", "--share", f"{i}/{plan.turns}"] for i in range(plan.turns)
    ]
    metrics_dir, temporary = _metrics_dir()
    env = {**os.environ, MULTIPROC_ENV: str(metrics_dir)}
    stopping = False

    def start(command: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, pass_fds=(fd,), env=env)  # noqa: S603 - our interpreter

    children = [start(command) for command in commands]
    turns = f" and {plan.turns} turn workers" if plan.turns else ""
    print(
        f"bot listening on http://{plan.host}:{plan.port} with {plan.web} web workers{turns}",
        file=sys.stderr,
    )

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        for i, child in enumerate(children):
            code = child.poll()
            if code is not None and not stopping:
                log.error("worker %d exited with %s; starting it again", child.pid, code)
                multiprocess.mark_process_dead(child.pid, str(metrics_dir))
                time.sleep(RESTART_PAUSE)
                children[i] = start(commands[i])
        time.sleep(0.2)
    for child in children:
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
    sock.close()
    if temporary:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0
