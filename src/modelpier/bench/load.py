"""The load generator: N asyncio workers on keep-alive connections, bounded by time or count.

Each worker holds one HTTP/1.1 connection (``client.py``), sends one request, reads the whole answer,
records the latency (``time.perf_counter`` from the write to the last byte, plus the connect when
the connection is new) and sends the next: a closed loop, so the load adapts to the
server and never queues without bound on the client. The run ends when ``duration_s`` has passed or
``requests`` were sent, whichever comes first; the requests then in flight finish and count.
Requests that started during the warm-up are sent but not recorded. Memory is constant: latencies go
into a fixed-bucket ``LatencyHistogram``, statuses and transport errors into counters (distinct error
kinds capped at ``MAX_ERROR_KINDS``).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from modelpier.bench.client import BadResponse, Connection, Disconnected, Endpoint
from modelpier.bench.histogram import LatencyHistogram
from modelpier.errors import InvalidInput, RemoteUnreachable

MAX_ERROR_KINDS = 20
PROGRESS_INTERVAL_S = 0.2
_CONNECT_PAUSE_S = 0.01  # after a refused connection, so a dead server does not spin the workers


@dataclass(frozen=True, slots=True)
class LoadPlan:
    url: str
    body: bytes | None
    method: str = "POST"
    headers: tuple[tuple[str, str], ...] = ()
    concurrency: int = 8
    duration_s: float | None = 10.0  # None: until ``requests`` were sent
    requests: int | None = None  # None: until ``duration_s`` passed
    warmup_s: float = 0.0
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.duration_s is None and self.requests is None:
            raise InvalidInput("bound the load: give a duration, a number of requests, or both")
        if self.concurrency < 1:
            raise InvalidInput("concurrency must be at least 1")


@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot for a progress display; ``fraction`` of the run done (time or count, whichever leads)."""

    elapsed_s: float
    warming_up: bool
    completed: int
    ok: int
    failed: int
    fraction: float


@dataclass(slots=True)
class LoadResult:
    histogram: LatencyHistogram = field(default_factory=LatencyHistogram)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0  # the measured window: end of warm-up to the last answer
    first_failure: str | None = None  # the first non-2xx answer, status and the start of its body: the why

    @property
    def completed(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())

    @property
    def ok(self) -> int:
        return sum(n for s, n in self.statuses.items() if 200 <= s < 300)

    def record_error(self, kind: str) -> None:
        if kind not in self.errors and len(self.errors) >= MAX_ERROR_KINDS:
            kind = "other errors"
        self.errors[kind] += 1


def error_kind(exc: BaseException) -> str:
    """A short, bounded name for a transport failure (the counter key)."""
    if isinstance(exc, TimeoutError):  # before OSError: TimeoutError is one
        return "timeout"
    if isinstance(exc, Disconnected):
        return "server disconnected"
    if isinstance(exc, BadResponse):
        return "bad response"
    if isinstance(exc, OSError):  # from connecting: refused, unreachable, no such host, TLS
        return f"connect: {exc.strerror or type(exc).__name__}"
    return type(exc).__name__


_FAILURES = (OSError, Disconnected, BadResponse)  # TimeoutError is an OSError


class _Run:
    def __init__(self, plan: LoadPlan, clock: Callable[[], float]) -> None:
        self.plan, self.clock = plan, clock
        self.endpoint = Endpoint.of(plan.url, plan.method, plan.headers, plan.body)
        self.result = LoadResult()
        self.started = clock()
        self.measure_from = self.started + plan.warmup_s
        self.deadline = None if plan.duration_s is None else self.measure_from + plan.duration_s
        self.sent = 0  # measured requests sent (the --requests budget)
        self.last_answer = self.measure_from

    def next_is_measured(self) -> bool | None:
        """Claim the next request: measured (True), warm-up (False), or None when the run is over."""
        now = self.clock()
        if self.deadline is not None and now >= self.deadline:
            return None
        if now < self.measure_from:
            return False
        if self.plan.requests is not None and self.sent >= self.plan.requests:
            return None
        self.sent += 1
        return True

    def progress(self) -> Progress:
        now = self.clock()
        warming = now < self.measure_from
        fractions = []
        if self.deadline is not None and self.plan.duration_s:
            fractions.append((now - self.measure_from) / self.plan.duration_s)
        if self.plan.requests:
            fractions.append(self.sent / self.plan.requests)
        r = self.result
        return Progress(elapsed_s=now - self.started, warming_up=warming, completed=r.completed, ok=r.ok,
                        failed=r.completed - r.ok, fraction=0.0 if warming else min(1.0, max(fractions, default=0)))

    async def worker(self) -> None:
        plan, endpoint = self.plan, self.endpoint
        connection: Connection | None = None
        try:
            while (measured := self.next_is_measured()) is not None:
                begun = self.clock()
                try:
                    async with asyncio.timeout(plan.timeout_s):
                        if connection is None or connection.closed:
                            connection = await Connection.open(endpoint)
                        status, sample = await connection.exchange(endpoint.payload)
                except _FAILURES as exc:
                    if connection is not None:  # a late answer may still come: never reuse the connection
                        connection.close()
                        connection = None
                    if measured:
                        self.result.record_error(error_kind(exc))
                        self.last_answer = self.clock()
                    if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
                        await asyncio.sleep(_CONNECT_PAUSE_S)
                    continue
                if not connection.keep_alive:
                    connection.close()
                    connection = None
                if measured:
                    done = self.clock()
                    self.result.histogram.record(done - begun)
                    self.result.statuses[status] += 1
                    self.last_answer = done
                    if not 200 <= status < 300 and self.result.first_failure is None:
                        self.result.first_failure = f"{status}: {sample.decode(errors='replace')}"
        finally:
            if connection is not None:
                connection.close()


async def probe(plan: LoadPlan) -> int:
    """One request before the load: its status. ``RemoteUnreachable`` when nothing answers at the URL,
    so a wrong URL or a stopped gateway is one clear error, not a run full of connection failures."""
    endpoint = Endpoint.of(plan.url, plan.method, plan.headers, plan.body)
    try:
        async with asyncio.timeout(plan.timeout_s):
            connection = await Connection.open(endpoint)
    except TimeoutError:
        raise RemoteUnreachable(f"cannot reach {plan.url}: no connection within {plan.timeout_s:g}s",
                                details={"url": plan.url}) from None
    except OSError as exc:
        raise RemoteUnreachable(f"cannot reach {plan.url}: {exc.strerror or exc}; is the gateway (or server) "
                                "running there?", details={"url": plan.url}) from None
    try:
        async with asyncio.timeout(plan.timeout_s):
            status, _ = await connection.exchange(endpoint.payload)
    except _FAILURES as exc:
        raise RemoteUnreachable(f"{plan.url} did not answer a first request ({error_kind(exc)})",
                                details={"url": plan.url}) from None
    finally:
        connection.close()
    return status


async def run_load(plan: LoadPlan, *, on_progress: Callable[[Progress], None] | None = None,
                   clock: Callable[[], float] = time.perf_counter) -> LoadResult:
    """Drive the load described by ``plan``; what was measured."""
    run = _Run(plan, clock)
    workers = [asyncio.create_task(run.worker(), name=f"bench worker {i}") for i in range(plan.concurrency)]
    ticker = None
    if on_progress is not None:
        async def tick() -> None:
            while True:
                on_progress(run.progress())
                await asyncio.sleep(PROGRESS_INTERVAL_S)
        ticker = asyncio.create_task(tick(), name="bench progress")
    tasks = [*workers, *([ticker] if ticker else [])]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    run.result.elapsed_s = max(0.0, run.last_answer - run.measure_from)
    if on_progress is not None:
        on_progress(run.progress())
    return run.result
