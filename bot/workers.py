"""`serve` with `BOT_WORKERS` > 1: one listening socket, several worker processes.

The parent binds the port once and starts each worker as `python -m bot serve
--fd N`, handing the socket down; the kernel spreads connections between them.
Each worker is a whole bot (turns, outbox, timers); what they must agree on
(per-contact turn locks, rate limits, pauses) lives in Redis, and the outbox
rows are leased in the database, so two workers never send the same message.
A worker that dies is started again; SIGINT/SIGTERM stop them all gracefully.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

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


def supervise(host: str, port: int, count: int, dev: bool) -> int:
    sock = bind(host, port)
    fd = sock.fileno()
    command = [sys.executable, "-m", "bot", "serve", "--fd", str(fd)] + (["--dev"] if dev else [])
    stopping = False

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, pass_fds=(fd,))  # noqa: S603 - our own interpreter

    children = [start() for _ in range(count)]
    print(f"bot listening on http://{host}:{port} with {count} workers", file=sys.stderr)

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
                time.sleep(RESTART_PAUSE)
                children[i] = start()
        time.sleep(0.2)
    for child in children:
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
    sock.close()
    return 0
