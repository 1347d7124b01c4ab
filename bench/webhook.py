"""Benchmark of the webhook path, end to end, on loopback.

    python bench/webhook.py [--deliveries N] [--concurrency C] [--rate R] [--duration S] [--json]

It starts the fake Graph API and the bot (`python -m bot serve`, fresh SQLite
database in a temporary directory, random keys, pointed at the fake), each as
its own process group, then runs:

1. ack: N signed, Meta-shaped single-message deliveries (unique wamids, many
   senders, a few messages each) POSTed to /webhook; acknowledged deliveries/s
   and acknowledgement latency. Closed loop at C connections by default,
   open loop with --ack-rate.
2. turns: deliveries for S seconds (open loop at --rate R, or as fast as they
   are acknowledged with --rate 0) while the fake's `/_fake/sent` is polled;
   completed turns/s counted on the fake's side (reply accepted), backlog,
   drain time and an end-to-end latency estimate (delivery due -> reply seen,
   +- the 0.1 s poll period).
3. check: every acknowledged inbound message must have got exactly one menu
   reply (read receipts are not replies): lost and duplicated replies.
4. baseline: the same load tool and the same N deliveries against a bare
   Quart-on-hypercorn app (`bench/baseline_app.py`) that only returns 200.

CPU use of each process (bot, fake, client), of other processes and the
hypervisor's steal is printed per phase, so a saturated client or a busy
neighbour is visible, with the bot's CPU milliseconds and context switches per
delivery (including its turn): the figures that move least with the machine's
load. Exits 1 if any reply was lost or duplicated, 2 if the run could not be
made.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import loadgen

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HOST = "127.0.0.1"
PHONE_NUMBER_ID = "106540352242922"
POLL_PERIOD = 0.1
PREFIX = {"warmup": "150", "ack": "151", "turns": "152"}


class BenchError(Exception):
    """The benchmark could not run (a process did not start, a port was not served...)."""


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Proc:
    """A child in its own process group, output to files; `stop` ends the whole group."""

    def __init__(self, name: str, argv: list[str], workdir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.out_path = workdir / f"{name}.out"
        self.err_path = workdir / f"{name}.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.popen = subprocess.Popen(
                argv, cwd=workdir, env=env, stdout=out, stderr=err, start_new_session=True
            )
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.err_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM to the group (the bot drains), SIGKILL after `grace` seconds."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # whatever of the group is left
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)


async def wait_ready(proc: Proc, url: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if not proc.alive():
                raise BenchError(f"{proc.name} exited at start:\n{proc.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise BenchError(f"{proc.name} not ready at {url} after {limit:.0f}s:\n{proc.tail()}")


async def start_fake(workdir: Path, env: dict[str, str], token: str) -> tuple[Proc, str]:
    argv = [PYTHON, "-m", "bot.simulator.fake_graph", "--host", HOST, "--port", "0"]
    argv += ["--phone-number-id", PHONE_NUMBER_ID, "--token", token]
    proc = Proc("fake_graph", argv, workdir, env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.out_path.read_text().strip()
        if "listening on" in line:
            url = line.rsplit(" ", 1)[-1]
            await wait_ready(proc, f"{url}/_fake/sent?after=0")
            return proc, url
        if not proc.alive():
            break
        await asyncio.sleep(0.05)
    proc.stop()
    raise BenchError(f"the fake Graph API did not start:\n{proc.tail()}")


@dataclass
class Bot:
    proc: Proc
    url: str
    secret: str


async def start_bot(
    workdir: Path,
    env: dict[str, str],
    fake_url: str,
    token: str,
    read: bool,
    extra: dict[str, str],
) -> Bot:
    def key() -> str:
        return base64.b64encode(os.urandom(32)).decode()

    port = free_port()
    secret = os.urandom(16).hex()
    env = {
        **env,
        "BOT_HOST": HOST,
        "BOT_PORT": str(port),
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bot.db'}",
        "WHATSAPP_API_URL": f"{fake_url}/v21.0",
        "WHATSAPP_ACCESS_TOKEN": token,
        "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
        "WHATSAPP_APP_SECRET": secret,
        "WHATSAPP_VERIFY_TOKEN": os.urandom(8).hex(),
        "BOT_MASTER_KEYS": f"bench1:{key()}",
        "BOT_INDEX_KEY": key(),
        "BOT_AUDIT_KEY": key(),
        "BOT_MARK_AS_READ": "true" if read else "false",
        "BOT_SIMULATOR": "false",
        # The targets (500 turns/s) need a number upgraded to Meta's top throughput;
        # at the default 80 messages/s the pacing itself would be measured.
        "BOT_SEND_PER_SECOND": "1000",
        **extra,
    }
    proc = Proc("bot", [PYTHON, "-m", "bot", "serve"], workdir, env)
    url = f"http://{HOST}:{port}"
    try:
        await wait_ready(proc, f"{url}/readyz")
    except BaseException:
        proc.stop()
        raise
    return Bot(proc, url, secret)


async def start_baseline(workdir: Path, env: dict[str, str]) -> tuple[Proc, int]:
    port = free_port()
    argv = [PYTHON, str(ROOT / "bench" / "baseline_app.py"), "--host", HOST, "--port", str(port)]
    proc = Proc("baseline", argv, workdir, env)
    try:
        await wait_ready(proc, f"http://{HOST}:{port}/readyz")
    except BaseException:
        proc.stop()
        raise
    return proc, port


# --------------------------------------------------------------------------- measuring


class CpuMeter:
    """CPU time of given processes (all their threads) and of the machine, over an interval.

    `steal` is time the hypervisor gave to other guests: on a shared VM it can be large, and
    then every figure here is lower than the same code would reach on a quiet machine.
    """

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._switches0 = {n: self._switches(p) for n, p in pids.items()}
        self._start = self._sample()

    @staticmethod
    def _group(pgid: int) -> list[int]:
        """Every process of a child's process group: a bot with several workers is
        a supervisor and its children, all started in the group."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[2]) == pgid:
                    pids.append(int(entry.name))
        return pids or [pgid]

    @staticmethod
    def _proc(pgid: int) -> float:
        total = 0.0
        for pid in CpuMeter._group(pgid):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / CpuMeter.TICK  # utime + stime
        return total

    @staticmethod
    def _machine() -> tuple[float, float]:
        """(busy, steal) seconds of all cores: user nice system idle iowait irq softirq steal."""
        parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        steal = parts[7] if len(parts) > 7 else 0
        busy = sum(parts) - parts[3] - parts[4] - steal
        return busy / CpuMeter.TICK, steal / CpuMeter.TICK

    def _sample(self) -> tuple[float, dict[str, float], float, float]:
        busy, steal = self._machine()
        return time.monotonic(), {n: self._proc(p) for n, p in self.pids.items()}, busy, steal

    @staticmethod
    def _switches(pgid: int) -> int:
        """Context switches of all the group's threads (a thread hop costs two or more)."""
        total = 0
        for pid in CpuMeter._group(pgid):
            total += CpuMeter._thread_switches(pid)
        return total

    @staticmethod
    def _thread_switches(pid: int) -> int:
        total = 0
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    for line in (task / "status").read_text().splitlines():
                        if "ctxt_switches:" in line:
                            total += int(line.split(":")[1])
        return total

    def per_unit_ms(self, units: int) -> dict[str, float]:
        """CPU milliseconds each process spent per unit of work since the meter was made."""
        _, procs0, _, _ = self._start
        _, procs1, _, _ = self._sample()
        return {n: round(1000 * (procs1[n] - procs0[n]) / max(units, 1), 2) for n in self.pids}

    def switches_per_unit(self, units: int) -> dict[str, float]:
        now = {n: self._switches(p) for n, p in self.pids.items()}
        return {n: round((now[n] - self._switches0[n]) / max(units, 1), 1) for n in self.pids}

    def read(self, client_cpu: float | None = None) -> dict[str, float]:
        """Percent of one core since the meter was made (machine: of all cores together)."""
        t0, procs0, busy0, steal0 = self._start
        t1, procs1, busy1, steal1 = self._sample()
        span = max(t1 - t0, 1e-9)
        out = {n: round(100 * (procs1[n] - procs0[n]) / span, 1) for n in self.pids}
        if client_cpu is not None:
            out["client"] = round(100 * client_cpu / span, 1)
        machine = 100 * (busy1 - busy0) / span
        ours = sum(out.values())
        out["others"] = round(max(0.0, machine - ours), 1)
        out["steal"] = round(100 * (steal1 - steal0) / span, 1)
        out["machine"] = round(machine, 1)
        return out


@dataclass
class Replies:
    """Menu replies the fake accepted (interactive messages), polled from `/_fake/sent` as
    it happens; other sends are only counted by type."""

    seen: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    other_kinds: Counter[str] = field(default_factory=Counter)
    by_prefix: Counter[str] = field(default_factory=Counter)
    last_index: int = -1
    last_at: float = 0.0
    poll_errors: int = 0

    def total(self, prefix: str | None = None) -> int:
        return self.by_prefix[prefix] if prefix else sum(self.by_prefix.values())


async def poll_replies(fake_url: str, replies: Replies, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(timeout=10.0) as client:
        while True:
            try:
                resp = await client.get(
                    f"{fake_url}/_fake/sent", params={"after": replies.last_index}
                )
                resp.raise_for_status()
                now = time.time()
                for m in orjson.loads(resp.content):
                    replies.last_index = max(replies.last_index, m["index"])
                    to = str(m["to"]).lstrip("+")
                    kind = (m.get("body") or {}).get("type")
                    if kind != "interactive":  # not the menu: reported, not matched
                        replies.other_kinds[str(kind)] += 1
                        continue
                    replies.seen[to].append(now)
                    replies.by_prefix[to[:3]] += 1
                    replies.last_at = now
            except (httpx.HTTPError, ValueError):
                replies.poll_errors += 1
            if stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_PERIOD)


async def wait_replies(
    replies: Replies, expected: int, prefix: str | None, stall: float, cap: float
) -> bool:
    """Wait until `expected` replies were seen (for senders under `prefix`), or no progress
    for `stall` seconds, or `cap` seconds in all. True when all arrived."""
    start = time.monotonic()
    last_count, last_change = -1, start
    while time.monotonic() - start < cap:
        count = replies.total(prefix)
        if count >= expected:
            return True
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > stall:
            return False
        await asyncio.sleep(POLL_PERIOD)
    return False


async def bot_metrics(url: str) -> dict[str, float]:
    """The bot's counters (turns, sends, deliveries) from /metrics, by sample name."""
    out: dict[str, float] = {}
    with contextlib.suppress(httpx.HTTPError):
        async with httpx.AsyncClient(timeout=5.0) as client:
            text = (await client.get(f"{url}/metrics")).text
        for line in text.splitlines():
            if line.startswith("bot_") and "_created" not in line:
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    out[name] = float(value)
    return out


def e2e_latencies(sends: list[tuple[str, float]], replies: Replies) -> list[float]:
    """Pair each sender's i-th acknowledged delivery with its i-th reply seen."""
    by_sender: dict[str, list[float]] = defaultdict(list)
    for digits, at in sends:
        by_sender[digits].append(at)
    out = []
    for digits, times in by_sender.items():
        times.sort()
        for sent_at, seen_at in zip(times, replies.seen.get(digits, []), strict=False):
            out.append(seen_at - sent_at)
    return sorted(out)


def rate_between(times: list[float], start: float, end: float) -> float:
    n = sum(1 for t in times if start <= t <= end)
    return n / (end - start) if end > start else 0.0


# --------------------------------------------------------------------------- the run


def profile(pid: int, seconds: float, out: Path | None) -> subprocess.Popen[bytes] | None:
    """py-spy in the background for `seconds` (collapsed stacks), when asked and installed."""
    if out is None:
        return None
    spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy not found; no profile", file=sys.stderr)
        return None
    argv = [spy, "record", "--pid", str(pid), "--duration", str(math.ceil(seconds))]
    argv += ["--rate", "200", "--format", "raw", "--output", str(out), "--nonblocking", "--gil"]
    argv += ["--subprocesses"]  # a bot with several workers is a group of processes
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@dataclass
class Run:
    """What the phases share: the arguments, the processes, what was acknowledged."""

    args: argparse.Namespace
    workdir: Path
    env: dict[str, str]
    report: dict[str, Any]
    procs: list[Proc] = field(default_factory=list)
    acked: Counter[str] = field(default_factory=Counter)
    unknown: Counter[str] = field(default_factory=Counter)

    async def drive(self, port: int, plan: loadgen.Plan, **kw: Any) -> loadgen.Result:
        args = self.args
        result = await loadgen.run(
            host=HOST,
            port=port,
            path="/webhook",
            plan=plan,
            concurrency=args.concurrency,
            client=args.client,
            processes=args.clients,
            **kw,
        )
        self.acked.update(result.acked)
        self.unknown.update(result.unknown)
        return result


def stop_profile(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            spy.wait(10)


def phase_times(replies: Replies, phase: str) -> list[float]:
    return sorted(t for d, ts in replies.seen.items() if d.startswith(PREFIX[phase]) for t in ts)


async def ack_phase(run: Run, bot: Bot, port: int, replies: Replies, pids: dict[str, int]):
    args = run.args
    plan = loadgen.Plan(
        PHONE_NUMBER_ID, bot.secret, PREFIX["ack"], args.deliveries, args.per_sender, args.window
    )
    items = loadgen.build_items(plan) if args.clients == 1 else None
    meter = CpuMeter(pids)
    spy = profile(bot.proc.pid, 30 + args.drain_cap, args.profile and args.profile / "ack.txt")
    try:
        ack = await run.drive(port, plan, rate=args.ack_rate, items=items, limit=30)
        cpu = meter.read(ack.cpu)
        done = await wait_replies(replies, ack.ok, PREFIX["ack"], args.stall, args.drain_cap)
        cost = meter.per_unit_ms(ack.ok)
        switches = meter.switches_per_unit(ack.ok)
    finally:
        stop_profile(spy)
    times = phase_times(replies, "ack")
    last = times[-1] if times else ack.started_at
    run.report["ack"] = {
        **loadgen.summary(ack),
        "cpu_pct": cpu,
        "cpu_ms_per_delivery_incl_turn": cost,
        "context_switches_per_delivery_incl_turn": switches,
        "replies": len(times),
        "all_replied": done,
        "turns_per_second_incl_drain": round(len(times) / max(last - ack.started_at, 1e-9), 1),
        "drain_seconds_after_last_ack": round(max(0.0, last - ack.started_at - ack.elapsed), 2),
    }


async def turns_phase(run: Run, bot: Bot, port: int, replies: Replies, pids: dict[str, int]):
    args = run.args
    count = math.ceil(args.rate * args.duration) if args.rate else int(args.duration * 3000)
    plan = loadgen.Plan(
        PHONE_NUMBER_ID, bot.secret, PREFIX["turns"], count, args.per_sender, args.window
    )
    items = loadgen.build_items(plan) if args.clients == 1 else None
    meter = CpuMeter(pids)
    seconds = args.duration + args.drain_cap
    spy = profile(bot.proc.pid, seconds, args.profile and args.profile / "turns.txt")
    try:
        turns = await run.drive(
            port, plan, rate=args.rate, duration=args.duration, items=items, record_sends=True
        )
        t_end = time.time()
        cpu = meter.read(turns.cpu)
        backlog = turns.ok - replies.total(PREFIX["turns"])
        done = await wait_replies(replies, turns.ok, PREFIX["turns"], args.stall, args.drain_cap)
        cost = meter.per_unit_ms(turns.ok)
        switches = meter.switches_per_unit(turns.ok)
    finally:
        stop_profile(spy)
    t0 = turns.started_at
    times = phase_times(replies, "turns")
    last = times[-1] if times else t0
    settle = min(3.0, args.duration / 4)
    e2e = e2e_latencies(turns.sends, replies)
    run.report["turns"] = {
        "offered_per_second": args.rate or "closed loop",
        "deliveries": loadgen.summary(turns),
        "replies": len(times),
        "all_replied": done,
        "turns_per_second_during_load": round(rate_between(times, t0 + settle, t_end), 1),
        "turns_per_second_incl_drain": round(len(times) / max(last - t0, 1e-9), 1),
        "backlog_at_end_of_load": backlog,
        "drain_seconds": round(max(0.0, last - t_end), 2),
        "e2e_p50_ms": round(loadgen.percentile(e2e, 50) * 1000, 1),
        "e2e_p99_ms": round(loadgen.percentile(e2e, 99) * 1000, 1),
        "cpu_pct_during_load": cpu,
        "cpu_ms_per_delivery_incl_turn": cost,
        "context_switches_per_delivery_incl_turn": switches,
    }


async def check(run: Run, bot: Bot, replies: Replies) -> None:
    """Exactly one menu reply per acknowledged inbound message, none to anybody else.

    A delivery whose exchange failed (connection dropped) may or may not have been stored,
    so its sender may have one reply more without that counting as a duplicate."""
    await asyncio.sleep(1.0)  # late duplicates have a chance to show up
    lost = duplicated = unexpected = 0
    for digits, n in run.acked.items():
        got = len(replies.seen.get(digits, []))
        lost += max(0, n - got)
        duplicated += max(0, got - n - run.unknown.get(digits, 0))
    for digits, seen in replies.seen.items():
        if digits not in run.acked and digits not in run.unknown:
            unexpected += len(seen)
    metrics = await bot_metrics(bot.url)
    log = bot.proc.tail(10**6).splitlines()
    run.report["check"] = {
        "acknowledged": sum(run.acked.values()),
        "replies": replies.total(),
        "lost": lost,
        "duplicated": duplicated + unexpected,
        "to_unknown_senders": unexpected,
        "non_menu_replies": dict(replies.other_kinds),
        "deliveries_with_unknown_outcome": sum(run.unknown.values()),
        "poll_errors": replies.poll_errors,
        "bot_counters": {
            k: v for k, v in metrics.items() if k.startswith(("bot_turns", "bot_sends"))
        },
        "bot_log_errors": sum(1 for line in log if '"level":"error"' in line),
        "bot_log_warnings": sum(1 for line in log if '"level":"warning"' in line),
        "bot_send_retries": sum(1 for line in log if "send will be retried" in line),
    }


async def bot_phases(run: Run) -> None:
    token = "bench-" + os.urandom(8).hex()
    fake, fake_url = await start_fake(run.workdir, run.env, token)
    run.procs.append(fake)
    extra = dict(kv.split("=", 1) for kv in run.args.bot_env)
    bot = await start_bot(run.workdir, run.env, fake_url, token, run.args.mark_as_read, extra)
    run.procs.append(bot.proc)
    port = int(bot.url.rsplit(":", 1)[1])
    pids = {"bot": bot.proc.pid, "fake": fake.pid}
    replies = Replies()
    stop = asyncio.Event()
    poller = asyncio.create_task(poll_replies(fake_url, replies, stop))
    try:
        # Warm-up: first connections, first contacts, SQLite pages in the cache.
        args = run.args
        warm_plan = loadgen.Plan(
            PHONE_NUMBER_ID, bot.secret, PREFIX["warmup"], args.warmup, args.per_sender
        )
        warm = await run.drive(port, warm_plan, limit=15)
        await wait_replies(replies, warm.ok, PREFIX["warmup"], stall=10, cap=20)
        await ack_phase(run, bot, port, replies, pids)
        await turns_phase(run, bot, port, replies, pids)
        await check(run, bot, replies)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(poller, 10)
        bot.proc.stop()
        fake.stop()


async def baseline_phase(run: Run) -> None:
    """The same load on a bare Quart app, with the machine to itself."""
    args = run.args
    base, port = await start_baseline(run.workdir, run.env)
    run.procs.append(base)
    try:
        plan = loadgen.Plan(
            PHONE_NUMBER_ID, "unused", PREFIX["ack"], args.deliveries, args.per_sender, args.window
        )
        items = loadgen.build_items(plan) if args.clients == 1 else None
        meter = CpuMeter({"baseline": base.pid})
        result = await loadgen.run(
            host=HOST,
            port=port,
            path="/webhook",
            plan=plan,
            concurrency=args.concurrency,
            rate=args.ack_rate,
            client=args.client,
            processes=args.clients,
            items=items,
            limit=20,
        )
        run.report["baseline"] = {
            **loadgen.summary(result),
            "cpu_pct": meter.read(result.cpu),
            "cpu_ms_per_request": meter.per_unit_ms(result.sent)["baseline"],
            "context_switches_per_request": meter.switches_per_unit(result.sent)["baseline"],
        }
    finally:
        base.stop()


def bot_version() -> str:
    """The commit measured, and whether `bot/` had changes not committed yet."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "bot"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head or 'unknown'}{'+uncommitted' if dirty else ''}"


async def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bot-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "WHATSAPP_"))}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env["PYTHONPATH"] = str(ROOT)
    report: dict[str, Any] = {
        "config": {
            "deliveries": args.deliveries,
            "concurrency": args.concurrency,
            "ack_rate": args.ack_rate,
            "rate": args.rate,
            "duration": args.duration,
            "mark_as_read": args.mark_as_read,
            "client": args.client,
            "client_processes": args.clients,
            "bot_env": args.bot_env,
            "cores": os.cpu_count(),
            "bot_version": bot_version(),
            "load_avg_before": os.getloadavg()[0],
        }
    }
    run = Run(args, workdir, env, report)
    try:
        if not args.baseline_only:
            await bot_phases(run)
        if not args.no_baseline:
            await baseline_phase(run)
        return report
    finally:
        for p in reversed(run.procs):
            p.stop()
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- output


def table(report: dict[str, Any]) -> str:
    cfg = report["config"]
    base = report.get("baseline")
    ack_mode = f"open loop {cfg['ack_rate']}/s" if cfg["ack_rate"] else "closed loop"
    rows = bot_rows(report, ack_mode) if "check" in report else []
    if base:
        rows += [
            (
                f"baseline: bare Quart, {base['requests']} requests, {ack_mode}",
                f"{base['per_second']:.0f} /s",
                f"p50 {base['p50_ms']:.1f} ms  p99 {base['p99_ms']:.1f} ms",
            ),
            ("baseline: CPU % server client others steal", _cpu(base["cpu_pct"]), ""),
            (
                "baseline: server CPU ms per request",
                f"{base['cpu_ms_per_request']:.2f}",
                f"context switches {base['context_switches_per_request']:.1f}",
            ),
        ]
        if "ack" in report and base["per_second"]:
            ratio = report["ack"]["per_second"] / base["per_second"]
            rows.append(("bot ack rate / baseline", f"{ratio:.2f}", ""))
    width = max(len(r[0]) for r in rows)
    mark = "on" if cfg["mark_as_read"] else "off"
    head = (
        f"webhook benchmark: {cfg['cores']} cores, mark-as-read {mark}, client {cfg['client']}"
        f" x{cfg['client_processes']}, bot {cfg['bot_version']},"
        f" load avg before {cfg['load_avg_before']:.2f}"
    )
    lines = [head, "-" * len(head)]
    lines += [f"{a:<{width}}  {b:>18}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def bot_rows(report: dict[str, Any], ack_mode: str) -> list[tuple[str, str, str]]:
    cfg = report["config"]
    ack, turns, check = report["ack"], report["turns"], report["check"]
    return [
        (
            f"ack: {ack['requests']} deliveries, {cfg['concurrency']} conns, {ack_mode}",
            f"{ack['per_second']:.0f} /s",
            f"p50 {ack['p50_ms']:.1f} ms  p99 {ack['p99_ms']:.1f} ms  non-200 {ack['non_200']}",
        ),
        ("ack: CPU % bot fake client others steal", _cpu(ack["cpu_pct"]), ""),
        (
            "ack: CPU ms per delivery incl. its turn",
            f"bot {ack['cpu_ms_per_delivery_incl_turn']['bot']:.2f}",
            f"fake {ack['cpu_ms_per_delivery_incl_turn']['fake']:.2f}; context switches: bot "
            f"{ack['context_switches_per_delivery_incl_turn']['bot']:.0f}"
            f" fake {ack['context_switches_per_delivery_incl_turn']['fake']:.0f}",
        ),
        (
            "ack: turns/s incl. drain",
            f"{ack['turns_per_second_incl_drain']:.0f} /s",
            f"drain {ack['drain_seconds_after_last_ack']} s after the last ack",
        ),
        (
            f"turns: {cfg['duration']:.0f} s at {turns['offered_per_second']}"
            + ("/s" if cfg["rate"] else ""),
            f"{turns['turns_per_second_during_load']:.0f} /s",
            f"acked {turns['deliveries']['per_second']:.0f}/s "
            f"(p99 {turns['deliveries']['p99_ms']:.0f} ms)",
        ),
        (
            "turns: incl. drain",
            f"{turns['turns_per_second_incl_drain']:.0f} /s",
            f"backlog {turns['backlog_at_end_of_load']}, drain {turns['drain_seconds']} s",
        ),
        (
            "turns: end to end (+-0.1 s)",
            f"p50 {turns['e2e_p50_ms']:.0f} ms",
            f"p99 {turns['e2e_p99_ms']:.0f} ms",
        ),
        ("turns: CPU % bot fake client others steal", _cpu(turns["cpu_pct_during_load"]), ""),
        (
            "turns: CPU ms per delivery incl. its turn",
            f"bot {turns['cpu_ms_per_delivery_incl_turn']['bot']:.2f}",
            f"fake {turns['cpu_ms_per_delivery_incl_turn']['fake']:.2f}",
        ),
        (
            "replies: lost / duplicated",
            f"{check['lost']} / {check['duplicated']}",
            f"of {check['acknowledged']} acknowledged, unknown outcome "
            f"{check['deliveries_with_unknown_outcome']}",
        ),
    ]


def _cpu(cpu: dict[str, float]) -> str:
    return " ".join(f"{v:.0f}" for k, v in cpu.items() if k not in {"machine"})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--deliveries", type=int, default=6000, help="ack phase deliveries")
    p.add_argument("--concurrency", type=int, default=32, help="client connections")
    p.add_argument(
        "--ack-rate", type=float, default=0, help="ack phase open-loop rate/s (0: closed loop)"
    )
    p.add_argument(
        "--rate", type=float, default=600, help="turns phase offered deliveries/s (0: max)"
    )
    p.add_argument("--duration", type=float, default=20, help="turns phase seconds")
    p.add_argument("--per-sender", type=int, default=4, help="messages per sender")
    p.add_argument("--window", type=int, default=256, help="senders active at once")
    p.add_argument("--warmup", type=int, default=300, help="deliveries before measuring")
    p.add_argument("--client", choices=["raw", "httpx"], default="raw")
    p.add_argument("--clients", type=int, default=1, help="client processes")
    p.add_argument(
        "--no-mark-as-read",
        dest="mark_as_read",
        action="store_false",
        help="run the bot with BOT_MARK_AS_READ=false (default: the bot's default, true)",
    )
    p.add_argument(
        "--bot-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the bot, e.g. BOT_SEND_CONCURRENCY=8 (repeatable)",
    )
    p.add_argument("--no-baseline", action="store_true", help="skip the bare Quart baseline")
    p.add_argument("--baseline-only", action="store_true", help="only the bare Quart baseline")
    p.add_argument("--stall", type=float, default=10, help="give up waiting after s w/o reply")
    p.add_argument("--drain-cap", type=float, default=20, help="max s to wait for replies")
    p.add_argument("--profile", type=Path, help="directory for py-spy collapsed stacks")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (DB, logs)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # unwinds through every `finally`: children are stopped

    signal.signal(signal.SIGTERM, terminate)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    try:
        report = asyncio.run(run_bench(args))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        print(table(report))
    check = report.get("check", {})
    return 1 if check.get("lost") or check.get("duplicated") else 0


if __name__ == "__main__":
    sys.exit(main())
