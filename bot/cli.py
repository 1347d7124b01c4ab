"""`python -m bot …`: the operator's commands. Each exits non-zero with one line on failure."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bot import eventloop, logs
from bot.config import Settings, SettingsError, dev_env_file, given_required, load_settings
from bot.conversation.flowfile import FlowError
from bot.crypto import CryptoError
from bot.operator import OperatorError
from bot.policy.templates import TemplateFileError
from bot.support.staff import StaffError

if TYPE_CHECKING:
    from bot.services import Role

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


def _operator_settings(dev: bool) -> Settings:
    """Like `_settings`, and when nothing is configured here (no secret in the environment
    or `.env`) but `make run` left its secrets in `var/dev.env`, those, said on stderr: the
    commands then work on the database `make run` serves. One secret set is configuration:
    a gap in it is named, never filled from the dev file."""
    if not dev and _dev_fallback():
        print(
            f"*** DEVELOPMENT MODE: nothing configured in the environment or .env; "
            f"using the development secrets in {DEV_ENV} (from `make run`). ***",
            file=sys.stderr,
        )
        dev_env_file(DEV_ENV)  # a file from before a key was added gets it
        return load_settings(env_file=(DEV_ENV, ".env"))
    return _settings(dev)


def _dev_fallback() -> bool:
    """Nothing configured here, but `make run` left its secrets: operator commands use them."""
    return DEV_ENV.exists() and not given_required()


async def _serve(settings: Settings, fd: int | None = None, role: Role = "all") -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    from bot.app import create_app

    config = Config()
    config.bind = [f"fd://{fd}" if fd is not None else f"{settings.BOT_HOST}:{settings.BOT_PORT}"]
    config.accesslog = None
    config.errorlog = logs.hypercorn_error_logger()
    config.graceful_timeout = 15
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    logs.install_asyncio_handler(loop)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    app = create_app(settings, role=role)

    @app.before_serving
    async def freeze_heap() -> None:  # after the app's own start: its services are built
        eventloop.freeze_heap()

    if fd is None:
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


async def _turn_worker(settings: Settings, share: tuple[int, int]) -> None:
    from bot.app import run_turn_worker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    logs.install_asyncio_handler(loop)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # When the cores are busy, the acknowledgements Meta waits for come first; the
    # turns catch up from the inbox.
    os.nice(10)
    eventloop.freeze_heap()
    await run_turn_worker(settings, share, stop)


def _share(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise argparse.ArgumentTypeError("expected i/n, e.g. 0/2")
    return int(index), int(count)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args.dev)
    logs.configure(settings.BOT_LOG_LEVEL)
    logs.install_excepthooks()
    if args.role == "turns":
        eventloop.run(_turn_worker(settings, args.share))
        return 0
    if args.role is None and (settings.BOT_WORKERS > 1 or settings.BOT_TURN_WORKERS):
        from bot.workers import Plan, supervise

        plan = Plan(
            settings.BOT_HOST, settings.BOT_PORT, settings.BOT_WORKERS,
            settings.BOT_TURN_WORKERS, args.dev,
        )  # fmt: skip
        return supervise(plan)
    eventloop.run(_serve(settings, args.fd, args.role or "all"))
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from bot.simulator.chat import run_chat

    return run_chat(_settings(args.dev), args.as_number, base_url=args.url)


def cmd_flows(args: argparse.Namespace) -> int:
    from bot.conversation.check import check
    from bot.conversation.diagram import mermaid
    from bot.conversation.flowfile import load_flows

    settings = _settings_or_defaults()
    if args.action == "check":
        problems = check(settings.flows_dir, settings.locales_dir)
        for problem in problems:
            print(problem)
        if problems:
            print(f"{len(problems)} problem(s) found", file=sys.stderr)
            return 1
        print("flows and texts are ready to ship")
        return 0
    if not args.name:
        raise SettingsError("flows diagram: name a flow, e.g. `flows diagram optin`")
    try:
        print(mermaid(load_flows(settings.flows_dir), args.name))
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 1
    return 0


def cmd_locales(args: argparse.Namespace) -> int:
    from bot import locales_cli

    settings = _settings_or_defaults()
    if args.action == "extract":
        return locales_cli.extract(settings.flows_dir, settings.locales_dir)
    if args.action == "update":
        return locales_cli.update(settings.locales_dir)
    return locales_cli.compile(settings.locales_dir)


def cmd_templates(args: argparse.Namespace) -> int:
    from bot.policy.template_check import KEYWORDS, RISK_WORDS, TEMPLATES, run

    flows = _settings_or_defaults().flows_dir
    code, lines = run(
        args.file or flows / TEMPLATES, args.words or flows / RISK_WORDS, flows / KEYWORDS
    )
    for line in lines:
        print(line, file=sys.stderr if code == 2 else sys.stdout)
    return code


def _settings_or_defaults() -> Settings:
    """Flows and locales commands need no secrets; they only read BOT_FLOWS_DIR/BOT_LOCALES_DIR."""
    import os

    return Settings.model_construct(
        BOT_FLOWS_DIR=os.environ.get("BOT_FLOWS_DIR", ""),
        BOT_LOCALES_DIR=os.environ.get("BOT_LOCALES_DIR", ""),
    )


def cmd_export(args: argparse.Namespace) -> int:
    import orjson

    from bot.operator import export_person

    doc = asyncio.run(export_person(_operator_settings(args.dev), args.number))
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    from bot.operator import erase_person

    counts = asyncio.run(erase_person(_operator_settings(args.dev), args.number))
    print("erased: " + ", ".join(f"{table}={n}" for table, n in counts.items()))
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    from bot.operator import OperatorError, send_template

    params: dict[str, str] = {}
    for pair in args.param:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise OperatorError("--param must be written name=value")
        params[name] = value
    settings = _operator_settings(args.dev)
    queued = asyncio.run(
        send_template(settings, args.to, args.template, args.category, params, args.lang)
    )
    initiated = " (opens a business-initiated conversation)" if queued.initiated else ""
    print(f"accepted: message {queued.message_id} queued in {queued.language}{initiated}")
    return 0


def cmd_handoff(args: argparse.Namespace) -> int:
    from bot.operator import end_handoff

    asyncio.run(end_handoff(_operator_settings(args.dev), args.number))
    print("handed back: the bot answers this person again")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from bot.operator import verify_audit

    settings = _operator_settings(args.dev)
    verdict = asyncio.run(verify_audit(settings, args.expect_head))
    print(
        f"entries: {verdict.count} ({verdict.keyed} keyed, {verdict.count - verdict.keyed} "
        "from before the audit key)"
    )
    print(f"checkpoints: {verdict.checkpoints} in {settings.audit_checkpoints}")
    if args.expect_head and verdict.head_at is not None:
        print(f"expected head: entry {verdict.head_at}")
    print(f"head: {verdict.head}")
    if not verdict.ok:
        print(f"error: {verdict.problem}", file=sys.stderr)
        return 1
    print(
        "audit chain intact" + ("" if verdict.checkpoints else " (no checkpoints to compare with)")
    )
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from bot.privacy.retention import purge
    from bot.store.keystore import open_stores

    settings = _operator_settings(args.dev)

    async def run() -> dict[str, int]:
        db, keys = await open_stores(
            settings.DATABASE_URL, settings.keystore_url, audit_key=settings.audit_key
        )
        try:
            return await purge(db, settings.retention_days, settings.BOT_INBOX_KEEP_DAYS)
        finally:
            await db.stop()
            await keys.stop()

    counts = asyncio.run(run())
    print("purged: " + ", ".join(f"{name}={n}" for name, n in counts.items()))
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from bot.crypto import Keyring
    from bot.keys import rotate
    from bot.store.keystore import open_stores

    settings = _operator_settings(args.dev)
    keyring = Keyring(settings.master_keys, settings.index_key)

    async def run() -> int:
        db, keys = await open_stores(
            settings.DATABASE_URL, settings.keystore_url, audit_key=settings.audit_key
        )
        try:
            result = await rotate(db, keys, keyring, batch_size=args.batch)
        finally:
            await db.stop()
            await keys.stop()
        print(
            f"re-wrapped {result.rewrapped} data keys in {result.batches} batches "
            f"under {keyring.active_kid}; {result.left} left under other keys"
        )
        return 0 if result.left == 0 else 1

    return asyncio.run(run())


def cmd_staff(args: argparse.Namespace) -> int:
    from bot import staff_cli

    return staff_cli.run(_operator_settings(args.dev), args)


def cmd_doctor(args: argparse.Namespace) -> int:
    from dotenv import dotenv_values

    from bot.doctor import FAIL, DevFile, render, run_checks

    settings = _operator_settings(dev=False)
    made = dotenv_values(DEV_ENV) if DEV_ENV.is_file() else {}
    dev = DevFile(used=_dev_fallback(), secrets={k: v for k, v in made.items() if v})
    checks = asyncio.run(run_checks(settings, dev))
    print(render(checks))
    return 1 if any(c.status == FAIL for c in checks) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the bot (HTTP server, turns, outbox)")
    p.add_argument("--dev", action="store_true", help="generate development secrets in var/")
    p.add_argument("--fd", type=int, default=None, help=argparse.SUPPRESS)  # a worker's socket
    p.add_argument(
        "--role",
        choices=["all", "web", "turns"],
        default=None,
        help="run one kind of process only: web (acknowledge deliveries) or turns "
        "(turns and sends); default: as BOT_WORKERS and BOT_TURN_WORKERS say",
    )
    p.add_argument("--share", type=_share, default=(0, 1), help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("chat", help="chat with the bot in the terminal as a WhatsApp user")
    p.add_argument("--as", dest="as_number", required=True, help="your number, +E164")
    p.add_argument("--url", default=None, help="a running bot (default: BOT_HOST:BOT_PORT)")
    p.add_argument("--dev", action="store_true", help="use the development secrets in var/")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("flows", help="check the flow files and texts, or draw a flow")
    p.add_argument("action", choices=["check", "diagram"])
    p.add_argument("name", nargs="?", help="the flow to draw (diagram)")
    p.set_defaults(func=cmd_flows)

    p = sub.add_parser("locales", help="extract, update or compile the text catalogs (Babel)")
    p.add_argument("action", choices=["extract", "update", "compile"])
    p.set_defaults(func=cmd_locales)

    p = sub.add_parser("templates", help="check the message templates before they go to Meta")
    p.add_argument("action", choices=["check"])
    p.add_argument("--file", type=Path, help="the registry (default: flows/templates.yaml)")
    p.add_argument(
        "--words", type=Path, help="high-risk words (default: flows/policy/risk_words.yaml)"
    )
    p.set_defaults(func=cmd_templates)

    for name, func, text in [
        ("export", cmd_export, "print everything held about a number, as JSON"),
        ("erase", cmd_erase, "erase a person (crypto-shredding), like the chat flow"),
    ]:
        p = sub.add_parser(name, help=text)
        p.add_argument("number", help="+E164")
        p.add_argument("--dev", action="store_true", help="use the development secrets in var/")
        p.set_defaults(func=func)

    p = sub.add_parser("send", help="queue a template to a person through the send gate")
    p.add_argument("--to", required=True, help="+E164")
    p.add_argument("--template", required=True, help="a name from flows/templates.yaml")
    p.add_argument(
        "--category", required=True, choices=["utility", "authentication", "marketing", "service"]
    )
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--lang", default=None, help="language code (default: the person's)")
    p.add_argument("--dev", action="store_true", help="use the development secrets in var/")
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("handoff", help="give a handed-off conversation back to the bot")
    p.add_argument("action", choices=["end"])
    p.add_argument("number", help="+E164")
    p.add_argument("--dev", action="store_true", help="use the development secrets in var/")
    p.set_defaults(func=cmd_handoff)

    p = sub.add_parser("purge", help="delete what is past its retention period (audited)")
    p.add_argument("--dev", action="store_true", help="use the development secrets in var/")
    p.set_defaults(func=cmd_purge)

    p = sub.add_parser("keys", help="re-wrap every data key under the active master key")
    p.add_argument("action", choices=["rotate"])
    p.add_argument("--batch", type=int, default=500, help="data keys per transaction")
    p.add_argument("--dev", action="store_true", help="use the development secrets in var/")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("audit", help="verify the hash-chained audit log")
    p.add_argument("action", choices=["verify"])
    p.add_argument(
        "--expect-head", default=None, help="a head hash noted earlier: it must be in the chain"
    )
    p.add_argument("--dev", action="store_true", help="use the development secrets in var/")
    p.set_defaults(func=cmd_audit)

    from bot import staff_cli

    staff_cli.register(sub, cmd_staff)

    p = sub.add_parser("doctor", help="check this deployment against the security checklist")
    p.set_defaults(func=cmd_doctor)

    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (SettingsError, FlowError, TemplateFileError) as exc:
        for line in str(exc).splitlines():  # a bad setting is one line each
            print(f"error: {line}", file=sys.stderr)
        return 2
    except (OperatorError, CryptoError, StaffError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
