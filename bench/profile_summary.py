"""Summarise a py-spy profile in collapsed-stack form (`webhook.py --profile DIR` writes them).

    python bench/profile_summary.py DIR/ack.txt [--top 25]

Prints where the bot's samples go by component (Graph API sends, turn runner, store
writer, SQLAlchemy in greenlets, the webhook request itself ...), then the frames with
the most samples of their own and the most samples under them. The profiles are taken
with `--gil`, so a sample is a moment some thread held the GIL: Python work, not waiting.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

# First match wins: order from the most specific to the most general.
COMPONENTS = [
    ("Graph API send (httpx)", "GraphClient._post"),
    ("outbox bookkeeping", "Outbox."),
    ("turn runner", "TurnRunner."),
    ("store writer (group commit)", "Writer._"),
    ("webhook route", "create_blueprint.<locals>.deliver"),
    ("Quart request handling", "quart/"),
    ("hypercorn", "hypercorn/"),
    ("SQLAlchemy in a greenlet (reads and units)", "sqlalchemy/"),
    ("aiosqlite threads", "_connection_worker_thread"),
    ("event loop", "asyncio/"),
]


def load(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    stacks = load(args.profile)
    total = sum(n for _, n in stacks) or 1
    by_component: Counter[str] = Counter()
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    for frames, n in stacks:
        joined = ";".join(frames)
        name = next((c for c, key in COMPONENTS if key in joined), "other")
        by_component[name] += n
        own[frames[-1]] += n
        for frame in set(frames):
            under[frame] += n
    print(f"{total} samples\n\nby component:")
    for name, n in by_component.most_common():
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("\nown samples:")
    for frame, n in own.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {frame}")
    print("\nsamples under (bot and httpcore frames):")
    shown = 0
    for frame, n in under.most_common():
        if ("bot/" in frame or "httpcore/" in frame) and shown < args.top:
            print(f"  {100 * n / total:5.1f}%  {frame}")
            shown += 1


if __name__ == "__main__":
    main()
