"""Checks that read only the settings: nothing is asked over the network.

Each takes the settings (and what `make run` left in `var/dev.env`) and returns one
`Check`. They quote names, hosts and counts; a secret is only ever compared.
"""

from __future__ import annotations

import hmac
import ipaddress
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from bot.audit import read_checkpoints
from bot.config import DEFAULT_API_URL, Settings
from bot.doctor.report import FAIL, PASS, WARN, Check

MIN_SECRET_BITS = 96  # estimated; Meta's app secrets are 32 hex digits (~120 bits)
STRONG_TLS = {"require", "verify-ca", "verify-full", "true"}


@dataclass(frozen=True)
class DevFile:
    """What `make run` generated (`var/dev.env`), and whether these settings came from it."""

    used: bool = False
    secrets: dict[str, str] = field(default_factory=dict)


def simulator(settings: Settings) -> Check:
    if settings.simulator:
        return Check(
            FAIL,
            "simulator",
            "on (no WHATSAPP_ACCESS_TOKEN, or BOT_SIMULATOR=true): "
            "nothing reaches WhatsApp, and anyone who reaches the port can chat as "
            "any number at /simulator",
        )
    api = urlsplit(settings.api_url)
    if settings.api_url != DEFAULT_API_URL and api.hostname != "graph.facebook.com":
        return Check(
            WARN,
            "simulator",
            f"off, but the Graph API is {api.scheme}://{api.hostname}"
            f", not Meta's (WHATSAPP_API_URL)",
        )
    if api.scheme != "https":
        return Check(FAIL, "simulator", "off, but WHATSAPP_API_URL is not https")
    return Check(PASS, "simulator", "off; the Graph API is Meta's")


def _key_material(settings: Settings) -> dict[str, bytes]:
    keys = {f"BOT_MASTER_KEYS ({k.kid})": k.key for k in settings.master_keys}
    keys["BOT_INDEX_KEY"] = settings.index_key
    return keys


def development_secrets(settings: Settings, dev: DevFile) -> Check:
    if dev.used:
        return Check(
            FAIL,
            "development secrets",
            "these settings are `make run`'s throwaway "
            "secrets from var/dev.env; set real ones in the environment or .env",
        )
    mine = {
        "WHATSAPP_APP_SECRET": settings.WHATSAPP_APP_SECRET,
        "WHATSAPP_VERIFY_TOKEN": settings.WHATSAPP_VERIFY_TOKEN,
        "BOT_INDEX_KEY": settings.BOT_INDEX_KEY,
        "BOT_AUDIT_KEY": settings.BOT_AUDIT_KEY,
    }
    same = [n for n, v in mine.items() if dev.secrets.get(n) and _equal(v, dev.secrets[n])]
    dev_keys = {
        part.partition(":")[2] for part in dev.secrets.get("BOT_MASTER_KEYS", "").split(",")
    }
    for key in settings.BOT_MASTER_KEYS.split(","):
        kid, _, material = key.strip().partition(":")
        if any(d and _equal(material, d) for d in dev_keys):
            same.append(f"BOT_MASTER_KEYS ({kid})")
    if same:
        return Check(
            FAIL,
            "development secrets",
            f"{', '.join(same)} equal the development ones in var/dev.env",
        )
    return Check(PASS, "development secrets", "none of the secrets is a development one")


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.strip().encode(), b.strip().encode())


def _bits(text: str) -> float:
    """Estimated entropy: the length times the Shannon entropy of its characters."""
    if not text:
        return 0.0
    counts = Counter(text)
    per_char = -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())
    return per_char * len(text)


def secret_strength(settings: Settings) -> Check:
    weak = []
    for n, secret in enumerate(settings.app_secrets, 1):
        if len(secret) < 16 or _bits(secret.decode("utf-8", "replace")) < MIN_SECRET_BITS:
            weak.append(f"WHATSAPP_APP_SECRET #{n} ({len(secret)} characters)")
    token = settings.WHATSAPP_VERIFY_TOKEN
    if len(token) < 20 or _bits(token) < 64:
        weak.append(f"WHATSAPP_VERIFY_TOKEN ({len(token)} characters; use 20+ random ones)")
    keys = _key_material(settings)
    for name, key in keys.items():
        if len(set(key)) < 16:  # 32 random bytes have ~28 distinct values
            weak.append(f"{name} (not random)")
    masters = [v for n, v in keys.items() if n != "BOT_INDEX_KEY"]
    if any(hmac.compare_digest(settings.index_key, k) for k in masters):
        weak.append("BOT_INDEX_KEY (the same as a master key)")
    if weak:
        return Check(FAIL, "secret strength", "weak: " + "; ".join(weak))
    return Check(
        PASS, "secret strength", "app secret, verify token and keys look random and long enough"
    )


def fallback_token(settings: Settings) -> Check:
    fallback = settings.WHATSAPP_ACCESS_TOKEN_FALLBACK
    if not fallback:
        return Check(
            WARN,
            "fallback token",
            "WHATSAPP_ACCESS_TOKEN_FALLBACK not set: a revoked "
            "or expired token stops every send until someone replaces it",
        )
    if _equal(fallback, settings.WHATSAPP_ACCESS_TOKEN):
        return Check(WARN, "fallback token", "the same as WHATSAPP_ACCESS_TOKEN: no fallback")
    return Check(PASS, "fallback token", "set, and not the main token")


def database_tls(settings: Settings) -> Check:
    url = settings.DATABASE_URL
    if settings.sqlite_path is not None or url.startswith("sqlite"):
        return Check(PASS, "database TLS", "SQLite: a local file, no network")
    parts = urlsplit(url)
    host = parts.hostname or ""
    if _local(host):
        return Check(
            PASS, "database TLS", f"PostgreSQL on {host or 'a local socket'}: no network between"
        )
    query = {k.lower(): v[-1].lower() for k, v in parse_qs(parts.query).items()}
    mode = query.get("ssl") or query.get("sslmode") or ""
    if mode in STRONG_TLS:
        return Check(PASS, "database TLS", f"PostgreSQL on {host} with ssl={mode}")
    if mode in {"prefer", "allow"}:
        return Check(
            WARN,
            "database TLS",
            f"PostgreSQL on {host} with ssl={mode} falls back "
            "to plain text; use ssl=require or verify-full",
        )
    return Check(
        FAIL,
        "database TLS",
        f"PostgreSQL on {host} without TLS: add ?ssl=require (or verify-full) to DATABASE_URL",
    )


def _local(host: str) -> bool:
    if host in {"", "localhost"}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def audit_checkpoints(settings: Settings, now: datetime | None = None) -> Check:
    """The audit head noted outside the database (`BOT_AUDIT_CHECKPOINTS`): present, signed
    with the audit key, and written lately. The server writes one only when the head moved,
    so a quiet week is possible; a month without one means no server is writing them."""
    path = settings.audit_checkpoints
    found, problem = read_checkpoints(path, settings.audit_key)
    if problem:
        return Check(FAIL, "audit checkpoints", problem)
    if not found:
        return Check(WARN, "audit checkpoints", f"none yet in {path}: the server writes them")
    last = found[-1]
    age = (now or datetime.now(UTC)) - datetime.fromisoformat(last.at.replace("Z", "+00:00"))
    where = f"{len(found)} in {path}, the last at {last.at} (entry {last.id})"
    if age > timedelta(days=30):
        return Check(WARN, "audit checkpoints", f"{where}: none for {age.days} days")
    return Check(PASS, "audit checkpoints", f"{where}; ship the file off this machine")


def retention(settings: Settings) -> Check:
    days = settings.retention_days
    summary = ", ".join(f"{k} {v} d" for k, v in sorted(days.items()))
    if settings.BOT_PURGE_INTERVAL <= 0:
        return Check(
            WARN,
            "retention",
            f"{summary}; but the purge timer is off "
            "(BOT_PURGE_INTERVAL=0): run `python -m bot purge` on a schedule",
        )
    return Check(PASS, "retention", f"{summary}; purged every {settings.BOT_PURGE_INTERVAL} s")


def log_level(settings: Settings) -> Check:
    if settings.BOT_LOG_LEVEL == "DEBUG":
        return Check(
            FAIL,
            "log level",
            "DEBUG: far more is written than an operator needs; use INFO in production",
        )
    return Check(PASS, "log level", settings.BOT_LOG_LEVEL)


def allow_list(settings: Settings) -> Check:
    allowed = settings.webhook_allow_from
    if not allowed:
        return Check(
            WARN,
            "webhook allow-list",
            "BOT_WEBHOOK_ALLOW_FROM not set: anyone may "
            "POST /webhook (signatures are still checked)",
        )
    if settings.BOT_PUBLIC_URL and not settings.trusted_proxies:
        return Check(
            WARN,
            "webhook allow-list",
            f"{len(allowed)} ranges, but "
            "BOT_TRUSTED_PROXIES is not set: behind a proxy every request comes from "
            "the proxy's address",
        )
    return Check(
        PASS,
        "webhook allow-list",
        f"{len(allowed)} ranges, {len(settings.trusted_proxies)} trusted proxy ranges",
    )


def spike_alerts(settings: Settings) -> Check:
    if not (settings.BOT_ALERT_INBOUND_DELIVERIES or settings.BOT_ALERT_INBOUND_MESSAGES):
        return Check(
            WARN,
            "inbound spike alerts",
            "off: set BOT_ALERT_INBOUND_MESSAGES (and/or "
            "…_DELIVERIES) well above a normal window's traffic",
        )
    return Check(PASS, "inbound spike alerts", "on")
