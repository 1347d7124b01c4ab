"""`python -m bot doctor`: a deployment held against the security checklist.

Each check gives one line, PASS, WARN or FAIL, with what was checked and why it
matters; the command exits non-zero on any FAIL. A line names settings, key ids,
hosts and counts, never a secret's value. The checks that read only the settings
are in `settings_checks.py`; those that ask something (the store, Meta's
`debug_token`, the public URL) in `probes.py`.
"""

from __future__ import annotations

from bot.doctor.report import FAIL, PASS, WARN, Check, render
from bot.doctor.run import run_checks
from bot.doctor.settings_checks import DevFile

__all__ = ["FAIL", "PASS", "WARN", "Check", "DevFile", "render", "run_checks"]
