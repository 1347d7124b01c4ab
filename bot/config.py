"""Settings, read once at start from the environment or a `.env` file.

Every variable is listed with a comment in `.env.example`. A missing or
malformed value stops start-up with one line naming the variable, because an
operator reading a crash log should not have to parse a traceback.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.errors import BotError

DEFAULT_API_URL = "https://graph.facebook.com/v21.0"
SIMULATOR_PHONE_NUMBER_ID = "100000000000001"
PROJECT = Path(__file__).resolve().parents[1]  # the checkout: flows/ and locales/ live here


class SettingsError(BotError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class MasterKey:
    kid: str
    key: bytes


Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def _b64_32(value: str) -> bytes:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("is not valid base64") from exc
    if len(raw) != 32:
        raise ValueError(f"must decode to 32 bytes, got {len(raw)}")
    return raw


class Settings(BaseSettings):
    """The bot's configuration; see `.env.example` for what each one means."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        case_sensitive=True,
    )

    WHATSAPP_APP_SECRET: str = Field(min_length=1)
    WHATSAPP_VERIFY_TOKEN: str = Field(min_length=1)
    WHATSAPP_ACCESS_TOKEN: str = ""
    WHATSAPP_ACCESS_TOKEN_FALLBACK: str = ""
    WHATSAPP_PHONE_NUMBER_ID: str = ""
    WHATSAPP_API_URL: str = ""
    DATABASE_URL: str = "sqlite+aiosqlite:///var/bot.db"
    BOT_KEYSTORE_URL: str = ""
    REDIS_URL: str = ""
    BOT_REDIS_PREFIX: str = Field(default="bot:", min_length=1, max_length=64)
    BOT_MASTER_KEYS: str = Field(min_length=1)
    BOT_INDEX_KEY: str = Field(min_length=1)
    BOT_AUDIT_KEY: str = Field(min_length=1)
    BOT_AUDIT_CHECKPOINTS: str = ""
    BOT_AUDIT_CHECKPOINT_INTERVAL: int = Field(default=300, ge=0)
    BOT_WEBHOOK_FAILURE_WINDOW: int = Field(default=60, ge=1, le=86400)
    BOT_WEBHOOK_FAILURE_LIMIT: int = Field(default=20, ge=1)
    BOT_HOST: str = "127.0.0.1"
    BOT_PORT: int = Field(default=8000, ge=0, le=65535)
    BOT_WORKERS: int = Field(default=1, ge=1, le=64)
    BOT_TURN_WORKERS: int = Field(default=0, ge=0, le=64)
    BOT_LOG_LEVEL: str = "INFO"
    BOT_MARK_AS_READ: bool = True
    BOT_SEND_CONCURRENCY: int = Field(default=32, ge=1, le=1024)
    BOT_SEND_MAX_ATTEMPTS: int = Field(default=8, ge=1, le=100)
    BOT_MAX_BODY_BYTES: int = Field(default=4 * 1024 * 1024, ge=1024)
    BOT_SIMULATOR: bool | None = None
    BOT_COMPANY_NAME: str = "Example Company"
    BOT_PRIVACY_URL: str = "https://example.com/privacy"
    BOT_DPO_CONTACT: str = "privacy@example.com"
    BOT_LOCAL_CONTACT: str = "privacy-sg@example.com"
    BOT_POLICY_VERSION: str = "2026-01"
    BOT_INBOUND_PER_MINUTE: float = Field(default=20, gt=0)
    BOT_INBOUND_BURST: int = Field(default=5, ge=1)
    BOT_SEND_PER_SECOND: float = Field(default=80, gt=0, le=1000)
    BOT_RECIPIENT_PER_MINUTE: float = Field(default=10, gt=0)
    BOT_RECIPIENT_BURST: int = Field(default=45, ge=1)
    BOT_MESSAGING_TIER: str = "250"
    BOT_HANDOFF_TIMEOUT: int = Field(default=86400, ge=0)
    BOT_ALERT_FAILURE_RATE: float = Field(default=0.2, gt=0, le=1)
    BOT_ALERT_WINDOW: int = Field(default=300, ge=10)
    BOT_ALERT_MIN_SENDS: int = Field(default=20, ge=1)
    BOT_RETENTION: str = (
        "otp:1,authentication:1,marketing:30,transactional:90,service:90,utility:90,support:180"
    )
    BOT_INBOX_KEEP_DAYS: int = Field(default=7, ge=1, le=365)
    BOT_PURGE_INTERVAL: int = Field(default=3600, ge=0)
    BOT_FLOWS_DIR: str = ""
    BOT_LOCALES_DIR: str = ""
    BOT_WEBHOOK_ALLOW_FROM: str = ""
    BOT_TRUSTED_PROXIES: str = ""
    BOT_ACCESS_LOG: bool = True
    BOT_UNREACHABLE_DAYS: int = Field(default=30, ge=0, le=3650)
    BOT_ALERT_INBOUND_MESSAGES: int = Field(default=0, ge=0)
    BOT_ALERT_INBOUND_DELIVERIES: int = Field(default=0, ge=0)
    BOT_ALERT_BAD_SIGNATURES: int = Field(default=100, ge=0)
    BOT_PUBLIC_URL: str = ""

    @field_validator("WHATSAPP_APP_SECRET")
    @classmethod
    def _check_app_secret(cls, value: str) -> str:
        # A blank secret verifies nothing: every delivery would be answered 401.
        if not all(part.strip() for part in value.split(",")):
            raise ValueError("is blank, or has a blank entry between commas")
        return value

    @field_validator(
        "WHATSAPP_VERIFY_TOKEN", "WHATSAPP_ACCESS_TOKEN", "WHATSAPP_ACCESS_TOKEN_FALLBACK"
    )
    @classmethod
    def _check_not_blank(cls, value: str) -> str:
        # Only spaces: the handshake or every Graph API call would fail, long after start-up.
        if value and not value.strip():
            raise ValueError("is blank (only whitespace)")
        return value

    @field_validator("BOT_MASTER_KEYS")
    @classmethod
    def _check_master_keys(cls, value: str) -> str:
        parse_master_keys(value)
        return value

    @field_validator("BOT_RETENTION")
    @classmethod
    def _check_retention(cls, value: str) -> str:
        parse_retention(value)
        return value

    @field_validator("BOT_MESSAGING_TIER")
    @classmethod
    def _check_tier(cls, value: str) -> str:
        parse_tier(value)
        return value.strip().lower()

    @field_validator("BOT_INDEX_KEY", "BOT_AUDIT_KEY")
    @classmethod
    def _check_index_key(cls, value: str) -> str:
        _b64_32(value)
        return value

    @field_validator("DATABASE_URL")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("BOT_KEYSTORE_URL")
    @classmethod
    def _check_keystore_url(cls, value: str) -> str:
        return cls._check_database_url(value) if value else value

    @field_validator("WHATSAPP_API_URL")
    @classmethod
    def _check_api_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("BOT_WEBHOOK_ALLOW_FROM", "BOT_TRUSTED_PROXIES")
    @classmethod
    def _check_networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    @field_validator("BOT_PUBLIC_URL")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL, e.g. https://bot.example.com")
        return value.rstrip("/")

    @field_validator("BOT_LOG_LEVEL")
    @classmethod
    def _check_level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value.upper()

    @model_validator(mode="after")
    def _check_keystore_apart(self) -> Settings:
        if not self.BOT_KEYSTORE_URL and self.sqlite_path is None:
            raise ValueError(
                "BOT_KEYSTORE_URL: required when DATABASE_URL is PostgreSQL "
                "(a database of its own for the data keys, not the data's)"
            )
        if self.keystore_url == self.DATABASE_URL:
            raise ValueError("BOT_KEYSTORE_URL: must not be DATABASE_URL (keys apart from data)")
        return self

    @model_validator(mode="after")
    def _check_live_needs_number_id(self) -> Settings:
        if self.WHATSAPP_ACCESS_TOKEN and not self.WHATSAPP_PHONE_NUMBER_ID:
            raise ValueError("WHATSAPP_PHONE_NUMBER_ID: required when WHATSAPP_ACCESS_TOKEN is set")
        if self.turn_processes > 1 and not self.REDIS_URL:
            name = "BOT_TURN_WORKERS" if self.BOT_TURN_WORKERS else "BOT_WORKERS"
            raise ValueError(
                f"{name}: more than one process running turns needs REDIS_URL "
                "for shared per-contact locks"
            )
        if (self.BOT_WORKERS > 1 or self.BOT_TURN_WORKERS) and self.simulator:
            name = "BOT_WORKERS" if self.BOT_WORKERS > 1 else "BOT_TURN_WORKERS"
            raise ValueError(
                f"{name}: the simulator keeps its chats in one process; use one worker"
            )
        return self

    # Derived values -------------------------------------------------------

    @property
    def turn_processes(self) -> int:
        """How many processes run turns and sends: the web workers themselves, or
        `BOT_TURN_WORKERS` processes of their own while the web workers only acknowledge."""
        return self.BOT_TURN_WORKERS or self.BOT_WORKERS

    @property
    def simulator(self) -> bool:
        """The simulator runs when asked, or by default when there is no Meta token."""
        if self.BOT_SIMULATOR is not None:
            return self.BOT_SIMULATOR
        return not self.WHATSAPP_ACCESS_TOKEN

    @property
    def app_secrets(self) -> list[bytes]:
        return [s.strip().encode() for s in self.WHATSAPP_APP_SECRET.split(",") if s.strip()]

    @property
    def phone_number_id(self) -> str:
        return self.WHATSAPP_PHONE_NUMBER_ID or SIMULATOR_PHONE_NUMBER_ID

    @property
    def api_url(self) -> str:
        if self.WHATSAPP_API_URL:
            return self.WHATSAPP_API_URL
        if self.simulator:
            return f"{self.own_url}/simulator/graph/v21.0"
        return DEFAULT_API_URL

    @property
    def own_url(self) -> str:
        """Where this process can reach itself (loopback when listening on all addresses)."""
        host = self.BOT_HOST
        if host in {"0.0.0.0", "::", "[::]", ""}:  # noqa: S104 - comparing, not binding
            host = "127.0.0.1"
        elif ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.BOT_PORT}"

    @property
    def access_token(self) -> str:
        return self.WHATSAPP_ACCESS_TOKEN or "simulator-token"

    @property
    def master_keys(self) -> list[MasterKey]:
        return parse_master_keys(self.BOT_MASTER_KEYS)

    @property
    def index_key(self) -> bytes:
        return _b64_32(self.BOT_INDEX_KEY)

    @property
    def webhook_allow_from(self) -> Networks:
        """Sources that may POST /webhook; empty: everyone."""
        return parse_networks(self.BOT_WEBHOOK_ALLOW_FROM)

    @property
    def trusted_proxies(self) -> Networks:
        """Reverse proxies whose `X-Forwarded-For` names the real source."""
        return parse_networks(self.BOT_TRUSTED_PROXIES)

    @property
    def audit_key(self) -> bytes:
        return _b64_32(self.BOT_AUDIT_KEY)

    @property
    def audit_checkpoints(self) -> Path:
        """The checkpoint file: as set, else beside the SQLite database, else under var/."""
        if self.BOT_AUDIT_CHECKPOINTS:
            return Path(self.BOT_AUDIT_CHECKPOINTS)
        base = self.sqlite_path
        folder = base.parent if base is not None and base.name != ":memory:" else Path("var")
        return folder / "audit-checkpoints.jsonl"

    @property
    def retention_days(self) -> dict[str, int]:
        return parse_retention(self.BOT_RETENTION)

    @property
    def messaging_tier(self) -> int | None:
        """Unique people the business may write to first in 24 h; None: unlimited."""
        return parse_tier(self.BOT_MESSAGING_TIER)

    @property
    def templates_path(self) -> Path:
        return self.flows_dir / "templates.yaml"

    @property
    def flows_dir(self) -> Path:
        return Path(self.BOT_FLOWS_DIR) if self.BOT_FLOWS_DIR else PROJECT / "flows"

    @property
    def locales_dir(self) -> Path:
        return Path(self.BOT_LOCALES_DIR) if self.BOT_LOCALES_DIR else PROJECT / "locales"

    @property
    def keystore_url(self) -> str:
        """Where the wrapped data keys live: BOT_KEYSTORE_URL, else a SQLite file beside
        the database file (`var/bot.db` → `var/bot.keys.db`)."""
        if self.BOT_KEYSTORE_URL:
            return self.BOT_KEYSTORE_URL
        path = self.sqlite_path
        assert path is not None  # PostgreSQL without BOT_KEYSTORE_URL is refused above
        return f"sqlite+aiosqlite:///{path.with_name(f'{path.stem}.keys{path.suffix}')}"

    @property
    def sqlite_path(self) -> Path | None:
        prefix = "sqlite+aiosqlite:///"
        if self.DATABASE_URL.startswith(prefix):
            return Path(self.DATABASE_URL[len(prefix) :])
        return None


def parse_networks(value: str) -> Networks:
    """`173.252.64.0/18, 2a03:2880::/32` → networks; a bare address is a /32 (or /128)."""
    networks = []
    for part in value.split(","):
        if not part.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(part.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{part.strip()!r} is not an address or CIDR range") from None
    return tuple(networks)


def parse_retention(value: str) -> dict[str, int]:
    """`otp:1,marketing:30` → days to keep messages of each category."""
    days: dict[str, int] = {}
    for part in value.split(","):
        category, sep, number = part.strip().partition(":")
        if not sep or not category or not number.strip().isdigit() or int(number) < 1:
            raise ValueError("write category:days pairs, e.g. otp:1,marketing:30")
        days[category.strip()] = int(number)
    return days


TIERS = {"250": 250, "1k": 1000, "1000": 1000, "10k": 10_000, "10000": 10_000,
         "100k": 100_000, "100000": 100_000, "unlimited": None}  # fmt: skip


def parse_tier(value: str) -> int | None:
    """Meta's messaging tiers: 250, 1K, 10K, 100K or unlimited."""
    key = value.strip().lower()
    if key not in TIERS:
        raise ValueError("must be one of 250, 1K, 10K, 100K, unlimited")
    return TIERS[key]


def parse_master_keys(value: str) -> list[MasterKey]:
    keys: list[MasterKey] = []
    for part in value.split(","):
        kid, sep, material = part.strip().partition(":")
        if not sep or not kid:
            raise ValueError("each key must be written kid:base64(32 bytes)")
        keys.append(MasterKey(kid=kid, key=_b64_32(material)))
    if len({k.kid for k in keys}) != len(keys):
        raise ValueError("key ids must be unique")
    return keys


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Read settings, turning pydantic's report into one line per bad variable."""
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        lines: dict[str, str] = {}
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                message = "is required but not set"
            # A check across variables names its variable itself.
            lines.setdefault(name, f"{name}: {message}" if name else message)
        raise SettingsError("\n".join(lines.values())) from None


def given_required(env_file: str | Path | None = ".env") -> list[str]:
    """The required settings (the secrets) that the environment or `env_file` sets.

    None of them set means nothing is configured here; some but not all is a
    configuration with a gap, which `load_settings` names.
    """
    from dotenv import dotenv_values

    required = [name for name, field in Settings.model_fields.items() if field.is_required()]
    file = dotenv_values(env_file) if env_file and Path(env_file).is_file() else {}
    return [name for name in required if os.environ.get(name) or file.get(name)]


def dev_env_file(path: Path) -> Path:
    """Create development secrets once, so `make run` works on a fresh clone.

    They are random per checkout, kept under `var/` (ignored by git) and never
    meant for production; the caller announces them loudly.
    """

    def rand() -> str:
        return base64.b64encode(os.urandom(32)).decode()

    if path.exists():
        # A file from before the audit key: add one, keeping the rest as it was.
        text = path.read_text()
        if "BOT_AUDIT_KEY=" not in text:
            path.write_text(text.rstrip("\n") + f"\nBOT_AUDIT_KEY={rand()}\n")
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Generated by `make run` for local development only. Do not use in production.\n"
        f"WHATSAPP_APP_SECRET={os.urandom(16).hex()}\n"
        f"WHATSAPP_VERIFY_TOKEN={os.urandom(12).hex()}\n"
        f"BOT_MASTER_KEYS=dev1:{rand()}\n"
        f"BOT_INDEX_KEY={rand()}\n"
        f"BOT_AUDIT_KEY={rand()}\n"
    )
    path.chmod(0o600)
    return path
