"""Queued failures: how a test spells one, and what the fake answers when it is used.

A fault is spelled the same way from the test's process (`FakeGraph.fail_next`) and from
another process (`POST /_fake/faults`): a Meta error code (`131056`), an HTTP status of Meta's
edge (`"503"`), `"disconnect"` to drop the connection, or `"slow:SECONDS"` to answer late.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.simulator.fake_graph.errors import http_fault, meta_error
from bot.simulator.fake_graph.reply import Reply

HTTP_FAULTS = frozenset({"500", "502", "503"})


@dataclass(frozen=True, slots=True)
class Fault:
    """A queued failure; `to_key` limits it to one recipient."""

    kind: str  # "code", "http", "disconnect" or "slow"
    value: int | float
    to_key: str | None


def parse_fault(fault: int | str) -> tuple[str, int | float]:
    """Turn a `fail_next` fault spec into (kind, value); raises ValueError on nonsense."""
    if isinstance(fault, bool):
        raise ValueError(f"unknown fault {fault!r}")
    if isinstance(fault, int):
        return "code", fault
    text = str(fault).strip()
    if text in HTTP_FAULTS:
        return "http", int(text)
    if text == "disconnect":
        return "disconnect", 0
    if text.startswith("slow:"):
        seconds = float(text[5:])
        if seconds < 0:
            raise ValueError("slow delay must be >= 0")
        return "slow", seconds
    if text.isdigit():
        return "code", int(text)
    raise ValueError(f"unknown fault {fault!r}")


def fault_reply(fault: Fault) -> Reply:
    """The answer for a used fault; "slow" faults only delay, so they never get here."""
    if fault.kind == "code":
        return meta_error(int(fault.value))
    if fault.kind == "http":
        return http_fault(int(fault.value))
    return Reply(0, disconnect=True)
