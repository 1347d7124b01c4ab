"""`python -m bot …`: the operator's commands. Each exits non-zero with one line on failure."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from bot.config import Settings, SettingsError, dev_env_file, load_settings

DEV_ENV = Path("var/dev.env")


def _settings(dev: bool) -> Settings:
    """Real environment first, then `.env`, then (only for `--dev`) generated dev secrets."""
    if dev:
        fresh = not DEV_ENV.exists()
        dev_env_file(DEV_ENV)
        if fresh:
            print(
                f"*** DEVELOPMENT MODE: generated throwaway secrets and keys in {DEV_ENV}. "
                "Never use them in production. ***",
                file=sys.stderr,
            )
        return load_settings(env_file=(DEV_ENV, ".env"))
    return load_settings()


async def _serve(settings: Settings) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    from bot.app import create_app

    config = Config()
    config.bind = [f"{settings.BOT_HOST}:{settings.BOT_PORT}"]
    config.accesslog = None
    config.graceful_timeout = 15
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    app = create_app(settings)
    print(f"bot listening on http://{settings.BOT_HOST}:{settings.BOT_PORT}", file=sys.stderr)
    if settings.simulator:
        print(f"simulator: open {settings.own_url}/simulator", file=sys.stderr)
        if settings.BOT_HOST not in {"127.0.0.1", "localhost", "::1"}:
            print(
                "WARNING: the simulator has no login; anyone who reaches "
                f"{settings.BOT_HOST} can chat as any number. Listen on 127.0.0.1.",
                file=sys.stderr,
            )
    await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


def cmd_serve(args: argparse.Namespace) -> int:
    from bot import logs

    settings = _settings(args.dev)
    if settings.BOT_WORKERS > 1:
        raise SettingsError(
            "BOT_WORKERS: several workers in one process group are not supported yet; "
            "run one worker per process behind a load balancer with PostgreSQL and REDIS_URL"
        )
    logs.configure(settings.BOT_LOG_LEVEL)
    asyncio.run(_serve(settings))
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from bot.simulator.chat import run_chat

    return run_chat(_settings(args.dev), args.as_number, base_url=args.url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the bot (HTTP server, turns, outbox)")
    p.add_argument("--dev", action="store_true", help="generate development secrets in var/")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("chat", help="chat with the bot in the terminal as a WhatsApp user")
    p.add_argument("--as", dest="as_number", required=True, help="your number, +E164")
    p.add_argument("--url", default=None, help="a running bot (default: BOT_HOST:BOT_PORT)")
    p.add_argument("--dev", action="store_true", help="use the development secrets in var/")
    p.set_defaults(func=cmd_chat)

    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
