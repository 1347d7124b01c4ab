"""`python -m bot staff add|list|revoke`: support staff tokens (`bot.support.staff`)."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable

from bot.config import Settings
from bot.crypto import Keyring
from bot.store.keystore import open_stores
from bot.support import staff


def register(sub: argparse._SubParsersAction, command: Callable[..., int]) -> None:  # type: ignore[type-arg]
    """Add the `staff` command; `command` runs it with the operator's settings."""
    p = sub.add_parser("staff", help="support staff tokens: add (printed once), list, revoke")
    p.add_argument("action", choices=["add", "list", "revoke"])
    p.add_argument("name", nargs="?", help="the staff member (add, revoke)")
    p.add_argument("--role", choices=[r.value for r in staff.Role], help="add: what they may do")
    p.add_argument(
        "--days", type=int, default=staff.DEFAULT_DAYS,
        help=f"add: days until the token expires (default {staff.DEFAULT_DAYS})",
    )  # fmt: skip
    p.add_argument("--dev", action="store_true", help="use the development secrets in var/")
    p.set_defaults(func=command)


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts)) if ts else "never"


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.action != "list" and not args.name:
        raise staff.StaffError(f"staff {args.action}: name the staff member")
    if args.action == "add" and not args.role:
        raise staff.StaffError("staff add: give --role agent, supervisor or privacy")
    return asyncio.run(_run(settings, args))


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    db, keys = await open_stores(
        settings.DATABASE_URL, settings.keystore_url, audit_key=settings.audit_key
    )
    try:
        if args.action == "add":
            keyring = Keyring(settings.master_keys, settings.index_key)
            issued = await staff.add(db, keyring, args.name, staff.Role(args.role), args.days)
            print(issued.token)
            print(
                f"token for {args.name} ({args.role}), valid until {_when(issued.expires_at)}; "
                "shown once: it is not stored, only a keyed hash of it",
                flush=True,
            )
        elif args.action == "revoke":
            count = await staff.revoke(db, args.name)
            print(f"revoked {count} token(s) of {args.name}")
        else:
            now = time.time()
            print(f"{'name':<20} {'role':<11} {'status':<8} {'expires':<21} last used")
            for row in await staff.listing(db):
                expired = "expired" if row.expires_at <= now else "active"
                status = "revoked" if row.revoked_at else expired
                print(
                    f"{row.name:<20} {row.role:<11} {status:<8} {_when(row.expires_at):<21} "
                    f"{_when(row.last_used_at)}"
                )
        return 0
    finally:
        await db.stop()
        await keys.stop()
