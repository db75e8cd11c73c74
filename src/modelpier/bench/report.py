"""The bench report: pure functions from what the load recorded to what ``pier bench`` prints and saves."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from modelpier.bench.histogram import LatencyHistogram

PERCENTILES = (50.0, 90.0, 99.0)
REPORT_FORMAT = 1


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Milliseconds, over every response received (whatever its status); transport errors have none."""

    count: int
    mean_ms: float
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True, slots=True)
class BenchReport:
    target: str  # "project/deployment", or the URL when benchmarking one directly
    url: str
    method: str
    concurrency: int
    warmup_s: float
    duration_s: float  # measured: from the end of the warm-up to the last response
    requests: int  # completed, warm-up excluded: responses of any status, and transport errors
    ok: int  # 2xx responses
    throughput_rps: float  # requests / duration_s
    ok_rps: float
    latency: LatencySummary
    status_counts: dict[str, int] = field(default_factory=dict)  # "200" → how many
    errors: dict[str, int] = field(default_factory=dict)  # transport errors by kind → how many
    histogram: str = ""  # how latencies were aggregated, so a reader knows the precision
    first_failure: str | None = None  # status and start of the body of the first non-2xx answer

    @property
    def failed(self) -> int:
        return self.requests - self.ok

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with a format number for readers of saved reports."""
        return {"format": REPORT_FORMAT, **asdict(self)}


def summarize_latency(histogram: LatencyHistogram) -> LatencySummary:
    def ms(seconds: float) -> float:
        return round(seconds * 1000, 3)

    p50, p90, p99 = (histogram.percentile(q) for q in PERCENTILES)
    return LatencySummary(count=histogram.count, mean_ms=ms(histogram.mean_s),
                          min_ms=ms(histogram.min_s if histogram.count else 0.0), p50_ms=ms(p50), p90_ms=ms(p90),
                          p99_ms=ms(p99), max_ms=ms(histogram.max_s))


def build_report(*, target: str, url: str, method: str, concurrency: int, warmup_s: float, elapsed_s: float,
                 histogram: LatencyHistogram, statuses: Mapping[int, int], errors: Mapping[str, int],
                 first_failure: str | None = None) -> BenchReport:
    """The report of one run; ``elapsed_s`` is the measured window (after the warm-up)."""
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    requests = sum(statuses.values()) + sum(errors.values())
    rate = (lambda n: round(n / elapsed_s, 2)) if elapsed_s > 0 else (lambda n: 0.0)
    precision = f"{histogram.precision:.0%}"
    return BenchReport(
        target=target, url=url, method=method, concurrency=concurrency, warmup_s=warmup_s,
        duration_s=round(elapsed_s, 3), requests=requests, ok=ok, throughput_rps=rate(requests), ok_rps=rate(ok),
        latency=summarize_latency(histogram),
        status_counts={str(s): statuses[s] for s in sorted(statuses)},
        errors=dict(sorted(errors.items(), key=lambda kv: (-kv[1], kv[0]))),
        histogram=f"{len(histogram)} fixed log buckets, {histogram.lowest_s * 1e6:g} us to {histogram.highest_s:g} s, "
                  f"{precision} wide (percentiles within half of that)",
        first_failure=first_failure)


def outcome_line(report: BenchReport) -> str:
    """One line naming what came back: ``200 x 990, 503 x 10, connect refused x 2``."""
    parts = [f"{status} x {n}" for status, n in report.status_counts.items()]
    parts += [f"{kind} x {n}" for kind, n in report.errors.items()]
    return ", ".join(parts) or "nothing"
