"""Checks that ask something: the store (master key age), Meta (`debug_token`) and the
public URL (HTTPS and HSTS through the proxy)."""

from __future__ import annotations

import re
import ssl

import aiohttp

from bot.config import Settings
from bot.doctor.report import FAIL, PASS, WARN, Check
from bot.store import StoreUnavailable
from bot.store import keys as key_store
from bot.store.db import Database
from bot.whatsapp.client import GraphClient
from bot.whatsapp.errors import Action, GraphError

DAY = 86400
ROTATION_DAYS = 90  # master keys are rotated at least this often
TOKEN_FAIL_DAYS, TOKEN_WARN_DAYS = 7, 30
HSTS_MIN = 31_536_000  # a year, what browsers' preload lists ask for
MESSAGING = "whatsapp_business_messaging"


async def master_key_age(settings: Settings, now: float) -> Check:
    """The active master key's age, from when this deployment first used its id
    (recorded at start and by `keys rotate`; recorded now if it never was)."""
    kid = settings.master_keys[0].kid
    db = Database(settings.DATABASE_URL)
    try:
        await db.start()
        first = await db.read(key_store.master_key_first_seen, kid)
        if first is None:
            await db.write(key_store.note_master_key, kid, now)
    except StoreUnavailable as exc:
        return Check(FAIL, "master key age", f"the database cannot be read ({type(exc).__name__})")
    finally:
        await db.stop()
    older = len(settings.master_keys) - 1
    still = (
        f"; {older} older key(s) still listed: remove them once `keys rotate` reports nothing left"
        if older
        else ""
    )
    if first is None:
        return Check(
            WARN,
            "master key age",
            f"key {kid!r} was never recorded; its age counts "
            f"from now (rotate every {ROTATION_DAYS} days){still}",
        )
    days = int((now - first) // DAY)
    if days > ROTATION_DAYS:
        return Check(
            FAIL,
            "master key age",
            f"key {kid!r} in use for {days} days, over the "
            f"{ROTATION_DAYS}-day rotation: `python -m bot keys rotate`{still}",
        )
    status = WARN if days > ROTATION_DAYS - 10 or older else PASS
    return Check(
        status, "master key age", f"key {kid!r} in use for {days} days of {ROTATION_DAYS}{still}"
    )


async def access_tokens(settings: Settings, now: float) -> list[Check]:
    """Each Graph API token's validity, expiry and permission, as Meta's `debug_token`
    tells it."""
    tokens = [("access token validity", settings.WHATSAPP_ACCESS_TOKEN)]
    if settings.WHATSAPP_ACCESS_TOKEN_FALLBACK:
        tokens.append(("fallback token validity", settings.WHATSAPP_ACCESS_TOKEN_FALLBACK))
    if not settings.WHATSAPP_ACCESS_TOKEN:
        return [Check(WARN, "access token validity", "not set: nothing to ask Meta about")]
    client = GraphClient(
        base_url=settings.api_url, phone_number_id=settings.phone_number_id, token="", timeout=10
    )
    try:
        return [await _token(client, what, token, now) for what, token in tokens]
    finally:
        await client.aclose()


async def _token(client: GraphClient, what: str, token: str, now: float) -> Check:
    try:
        data = await client.debug_token(token)
    except GraphError as err:
        if err.http_status is None or err.action is Action.RETRY:
            return Check(WARN, what, f"could not ask Meta's debug_token ({err.title or err})")
        return Check(FAIL, what, f"Meta refuses it (code {err.code}): replace it")
    if not data.get("is_valid"):
        return Check(FAIL, what, "Meta says it is not valid (expired or revoked): replace it")
    scopes = data.get("scopes")
    if isinstance(scopes, list) and MESSAGING not in scopes:
        return Check(FAIL, what, f"lacks the {MESSAGING} permission")
    expires = data.get("expires_at") or 0
    if not isinstance(expires, int | float) or expires <= 0:
        return Check(PASS, what, "valid and does not expire (a system user's token)")
    days = int((expires - now) // DAY)
    if days < TOKEN_FAIL_DAYS:
        return Check(FAIL, what, f"expires in {max(days, 0)} days: replace it now")
    if days < TOKEN_WARN_DAYS:
        return Check(WARN, what, f"expires in {days} days: plan its replacement")
    return Check(PASS, what, f"valid for {days} more days")


async def public_url(settings: Settings) -> Check:
    """Meta calls only HTTPS webhooks, and the proxy in front must keep the bot's HSTS."""
    url = settings.BOT_PUBLIC_URL
    if not url:
        return Check(
            WARN,
            "HTTPS and HSTS",
            "BOT_PUBLIC_URL not set: the public side (TLS at the proxy, HSTS) is not checked",
        )
    if not url.startswith("https://"):
        return Check(
            FAIL,
            "HTTPS and HSTS",
            "BOT_PUBLIC_URL is not https: Meta calls only "
            "HTTPS webhooks, and nothing on the way may read them",
        )
    host = url.split("/")[2]
    timeout = aiohttp.ClientTimeout(total=10, connect=5)
    tls = ssl.create_default_context()  # the system's trust store (SSL_CERT_FILE too)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.get(f"{url}/healthz", ssl=tls, allow_redirects=False) as resp,
        ):
            hsts = resp.headers.get("Strict-Transport-Security", "")
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return Check(
            WARN,
            "HTTPS and HSTS",
            f"{host} not reachable from here ({type(exc).__name__}); check it from outside",
        )
    found = re.search(r"max-age=(\d+)", hsts)
    if not found:
        return Check(
            FAIL,
            "HTTPS and HSTS",
            f"{host} answers over HTTPS without "
            "Strict-Transport-Security: the proxy drops the bot's header",
        )
    if int(found[1]) < HSTS_MIN:
        return Check(WARN, "HTTPS and HSTS", f"{host}: HSTS max-age {found[1]} is under a year")
    return Check(PASS, "HTTPS and HSTS", f"{host} answers over HTTPS with HSTS")
