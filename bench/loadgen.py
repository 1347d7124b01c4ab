"""The load tool shared by `webhook.py`: signed Meta-shaped deliveries, POSTed fast.

Deliveries are built and signed before the clock starts, so the client spends
its time on the wire only. Two clients are available:

- `raw` (default): asyncio streams speaking HTTP/1.1 with keep-alive, one
  connection per concurrency slot. It costs a few tens of microseconds of CPU
  per request, which matters on a 2-core machine where the client shares the
  cores with the server under test.
- `httpx`: one pooled `httpx.AsyncClient`, for comparison. It costs several
  times more CPU per request and becomes the bottleneck first.

`clients > 1` splits the work over several processes (spawned), each with its
share of the connections, all starting at the same wall-clock instant.

Load is closed-loop (`rate == 0`: each connection sends its next delivery as
soon as the previous one is answered) or open-loop (`rate > 0`: delivery i is
due at start + i/rate; latency counts from when it was due, so a server that
falls behind is charged for the queueing, not hidden by it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import multiprocessing
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.simulator import webhooks

Item = tuple[str, bytes, str]  # (sender digits, body, X-Hub-Signature-256)


@dataclass(frozen=True)
class Plan:
    """What deliveries to build: which senders, how many, in what interleaving."""

    phone_number_id: str
    secret: str
    prefix: str  # sender numbers are prefix + 8 digits: unique per phase
    count: int
    per_sender: int = 4
    window: int = 256  # senders active at once; each sends per_sender messages within


def sender_of(plan: Plan, j: int) -> str:
    """Delivery j's sender: blocks of `window` senders, each sending `per_sender` messages
    spaced `window` deliveries apart, so any prefix of the plan is mostly whole senders and
    a sender's messages are often in flight together (exercising per-contact ordering)."""
    block_size = plan.window * plan.per_sender
    block, within = divmod(j, block_size)
    return f"{plan.prefix}{block * plan.window + within % plan.window:08d}"


def build_items(plan: Plan, indexes: range | None = None) -> list[Item]:
    items: list[Item] = []
    for j in indexes if indexes is not None else range(plan.count):
        digits = sender_of(plan, j)
        body, _ = webhooks.message(
            plan.phone_number_id, digits, webhooks.text(f"hello {j}"), name=f"Bench {j}"
        )
        raw, headers = webhooks.signed(body, plan.secret)
        items.append((digits, raw, headers["X-Hub-Signature-256"]))
    return items


@dataclass
class Result:
    """What one load run did; `merge` adds up the results of several client processes."""

    sent: int = 0
    acked: Counter[str] = field(default_factory=Counter)  # sender digits -> 200 answers
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0  # connection failures: outcome unknown
    unknown: Counter[str] = field(default_factory=Counter)  # sender digits -> such failures
    unsent: int = 0  # planned but not started before the deadline (server too slow)
    reconnects: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds
    sends: list[tuple[str, float]] = field(default_factory=list)  # (digits, wall time) of 200s
    started_at: float = 0.0  # wall clock
    elapsed: float = 0.0
    cpu: float = 0.0  # client CPU seconds (all client processes)

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    def merge(self, other: Result) -> None:
        self.sent += other.sent
        self.acked.update(other.acked)
        self.statuses.update(other.statuses)
        self.errors += other.errors
        self.unknown.update(other.unknown)
        self.unsent += other.unsent
        self.reconnects += other.reconnects
        self.latencies.extend(other.latencies)
        self.sends.extend(other.sends)
        self.elapsed = max(self.elapsed, other.elapsed)
        self.started_at = min(self.started_at or other.started_at, other.started_at)
        self.cpu += other.cpu


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


# --------------------------------------------------------------------------- raw HTTP/1.1


class RawConnection:
    """One keep-alive HTTP/1.1 connection; enough of the protocol for these servers."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def request(self, raw: bytes) -> int:
        """Send one request; return its status. Raises ConnectionError if the exchange failed."""
        if self._writer is None:
            await self.open()
        assert self._reader is not None and self._writer is not None
        self._writer.write(raw)
        try:
            head = await self._reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            self.close()
            raise ConnectionError("connection closed before the response") from exc
        lines = head.split(b"\r\n")
        status = int(lines[0][9:12])
        length, chunked, close = 0, False, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = b"close" in value.lower()
        try:
            if chunked:
                while True:
                    size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    await self._reader.readexactly(size + 2)
                    if size == 0:
                        break
            elif length:
                await self._reader.readexactly(length)
        except asyncio.IncompleteReadError as exc:
            self.close()
            raise ConnectionError("connection closed mid-response") from exc
        if close:
            self.close()
        return status


def raw_request(host: str, port: int, path: str, item: Item) -> bytes:
    _, body, sig = item
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nX-Hub-Signature-256: {sig}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# --------------------------------------------------------------------------- one process


@dataclass(frozen=True)
class Job:
    host: str
    port: int
    path: str
    plan: Plan
    first: int  # this process sends deliveries first, first + step, first + 2*step, ...
    step: int
    concurrency: int
    rate: float  # this process's share; 0 = closed loop
    duration: float  # 0 = until the plan is exhausted
    start_at: float  # wall-clock instant to start (all processes together)
    client: str = "raw"
    record_sends: bool = False
    limit: float = 60.0  # seconds, when there is no duration


async def _run_job(job: Job, items: list[Item] | None = None) -> Result:
    if items is None:
        items = build_items(job.plan, range(job.first, job.plan.count, job.step))
    result = Result()
    n = len(items)
    state = {"next": 0}

    if job.client == "raw":
        raws = [raw_request(job.host, job.port, job.path, it) for it in items]
        conns = [RawConnection(job.host, job.port) for _ in range(job.concurrency)]
        await asyncio.gather(*(c.open() for c in conns))
        http = None
    else:
        import httpx

        raws = []
        conns = []
        limits = httpx.Limits(
            max_connections=job.concurrency, max_keepalive_connections=job.concurrency
        )
        http = httpx.AsyncClient(limits=limits, timeout=60.0)
        url = f"http://{job.host}:{job.port}{job.path}"

    delay = job.start_at - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    t0 = time.perf_counter()
    wall0 = result.started_at = time.time()
    cpu0 = time.process_time()
    # No new delivery is started after the deadline: with a duration, at its end (plus 1 s of
    # grace for an open loop running late); otherwise after `limit` seconds in any case.
    deadline = t0 + job.duration if job.duration else t0 + job.limit
    stop_at = deadline + (1.0 if job.duration and job.rate else 0.0)

    async def send(i: int, slot: int) -> int:
        if http is None:
            conn = conns[slot]
            try:
                return await conns[slot].request(raws[i])
            except ConnectionError:
                # A connection the server closed (keep-alive limit) fails before any byte of
                # the answer: retry once on a fresh one. Webhooks are idempotent (dedup by id).
                result.reconnects += 1
                conn.close()
                return await conn.request(raws[i])
        _, body, sig = items[i]
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sig}
        response = await http.post(url, content=body, headers=headers)
        return response.status_code

    async def worker(slot: int) -> None:
        while True:
            i = state["next"]
            if i >= n:
                return
            state["next"] = i + 1
            if job.rate:
                due = t0 + i / job.rate
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
            else:
                due = time.perf_counter()
            if due > deadline or time.perf_counter() > stop_at:
                state["next"] = n  # the rest is not sent; counted in `unsent`
                return
            try:
                status = await send(i, slot)
            except Exception:
                result.errors += 1
                result.unknown[items[i][0]] += 1
                continue
            done = time.perf_counter()
            result.sent += 1
            result.statuses[status] += 1
            result.latencies.append(done - due)
            if status == 200:
                digits = items[i][0]
                result.acked[digits] += 1
                if job.record_sends:
                    result.sends.append((digits, wall0 + (due - t0)))

    try:
        await asyncio.gather(*(worker(s) for s in range(job.concurrency)))
        result.unsent = n - result.sent - result.errors
    finally:
        result.elapsed = time.perf_counter() - t0
        result.cpu = time.process_time() - cpu0
        for c in conns:
            c.close()
        if http is not None:
            await http.aclose()
    return result


def _child(job: Job) -> Result:
    return asyncio.run(_run_job(job))


async def run(
    *,
    host: str,
    port: int,
    path: str,
    plan: Plan,
    concurrency: int,
    rate: float = 0.0,
    duration: float = 0.0,
    client: str = "raw",
    processes: int = 1,
    items: list[Item] | None = None,
    record_sends: bool = False,
    limit: float = 60.0,
) -> Result:
    """Drive `plan` at the server; in this process when `processes == 1`."""
    job = Job(
        host=host,
        port=port,
        path=path,
        plan=plan,
        first=0,
        step=1,
        concurrency=concurrency,
        rate=rate,
        duration=duration,
        start_at=0.0,
        client=client,
        record_sends=record_sends,
        limit=limit,
    )
    if processes == 1:
        items = items if items is not None else build_items(plan)
        return await _run_job(dataclasses.replace(job, start_at=time.time() + 0.2), items)
    # Children start from scratch (interpreter, imports, building their deliveries).
    start_at = time.time() + 3.0 + 30e-6 * plan.count / processes
    jobs = [
        dataclasses.replace(
            job,
            first=p,
            step=processes,
            concurrency=max(1, concurrency // processes),
            rate=rate / processes,
            start_at=start_at,
        )
        for p in range(processes)
    ]
    ctx = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=ctx) as pool:
        results = await asyncio.gather(*(loop.run_in_executor(pool, _child, j) for j in jobs))
    total = Result()
    for r in results:
        total.merge(r)
    return total


def summary(result: Result) -> dict[str, Any]:
    lat = sorted(result.latencies)
    return {
        "requests": result.sent,
        "ok": result.ok,
        "non_200": result.sent - result.ok,
        "errors": result.errors,
        "unsent": result.unsent,
        "reconnects": result.reconnects,
        "seconds": round(result.elapsed, 3),
        "per_second": round(result.sent / result.elapsed, 1) if result.elapsed else 0.0,
        "p50_ms": round(percentile(lat, 50) * 1000, 2),
        "p90_ms": round(percentile(lat, 90) * 1000, 2),
        "p99_ms": round(percentile(lat, 99) * 1000, 2),
        "max_ms": round((lat[-1] if lat else float("nan")) * 1000, 2),
        "client_cpu_pct": round(100 * result.cpu / result.elapsed, 1) if result.elapsed else 0.0,
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
    }
