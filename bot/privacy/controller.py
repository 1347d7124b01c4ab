"""The controller: who keeps the data, named in every notice and every export.

Built once from the settings; texts take their fixed parameters from here and
exports name the controller from here, so a notice and a copy never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.config import Settings


@dataclass(frozen=True)
class Controller:
    company: str
    privacy_url: str
    dpo_contact: str
    local_contact: str
    policy_version: str
    retention_days: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Controller:
        return cls(
            company=settings.BOT_COMPANY_NAME,
            privacy_url=settings.BOT_PRIVACY_URL,
            dpo_contact=settings.BOT_DPO_CONTACT,
            local_contact=settings.BOT_LOCAL_CONTACT,
            policy_version=settings.BOT_POLICY_VERSION,
            retention_days=settings.retention_days,
        )

    @property
    def params(self) -> dict[str, str]:
        """The texts' fixed parameters (`{company}`, `{privacy_url}` …)."""
        return {
            "company": self.company,
            "privacy_url": self.privacy_url,
            "dpo_contact": self.dpo_contact,
            "local_contact": self.local_contact,
            "policy_version": self.policy_version,
        }

    @property
    def named(self) -> dict[str, str]:
        """The controller as an export names it."""
        return {
            "name": self.company,
            "privacy_policy": self.privacy_url,
            "contact": self.dpo_contact,
            "policy_version": self.policy_version,
        }
