"""All the checks, in the order of the README's checklist."""

from __future__ import annotations

import time

from bot.config import Settings
from bot.doctor import probes
from bot.doctor import settings_checks as s
from bot.doctor.report import Check


async def run_checks(settings: Settings, dev: s.DevFile, now: float | None = None) -> list[Check]:
    now = time.time() if now is None else now
    checks = [
        s.simulator(settings),
        s.development_secrets(settings, dev),
        s.secret_strength(settings),
        await probes.master_key_age(settings, now),
        *await probes.access_tokens(settings, now),
        s.fallback_token(settings),
        await probes.public_url(settings),
        s.database_tls(settings),
        s.audit_checkpoints(settings),
        s.retention(settings),
        s.log_level(settings),
        s.allow_list(settings),
        s.spike_alerts(settings),
    ]
    return checks
