"""One checklist line: its verdict, what was checked, and why."""

from __future__ import annotations

from dataclasses import dataclass

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"


@dataclass(frozen=True)
class Check:
    status: str  # PASS, WARN or FAIL
    what: str
    why: str

    def line(self) -> str:
        return f"{self.status} {self.what}: {self.why}"


def render(checks: list[Check]) -> str:
    fails = sum(c.status == FAIL for c in checks)
    warns = sum(c.status == WARN for c in checks)
    lines = [c.line() for c in checks]
    lines.append(f"{len(checks)} checks: {fails} failed, {warns} to look at")
    return "\n".join(lines)
