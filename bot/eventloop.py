"""The event loop the long-running processes use: uvloop where it is installed.

Measured with the benchmark's drain probe on the project's 2-core machine,
uvloop cut the CPU of a turn (two Graph API requests, three reads, two commits)
and of an acknowledgement; the standard loop stays the fallback where uvloop
has no build (Windows).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms without a uvloop build
        return asyncio.run(main)
    return uvloop.run(main)


def freeze_heap() -> None:
    """Keep what start-up built (modules, flows, catalogs, table metadata) out of
    the garbage collector's full passes, and run young passes less often: the
    pauses they caused showed in the acknowledgement tail."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
