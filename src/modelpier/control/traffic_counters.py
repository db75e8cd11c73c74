"""What a gateway reports, as frozen values, and the arithmetic on them. Pure.

A gateway keeps cumulative counters per deployment and predictor (``docs/autoscaling.md`` has the
wire form, fixed in the gateway/control-plane contract); ``TrafficStore`` keeps its snapshots and
asks this module for increases between two of them, merged histograms and their quantiles.

Increases follow Prometheus ``increase()`` semantics: a counter that went down was reset (the
gateway restarted its counting), so the increase is its new value, not a negative number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType

INF = math.inf


@dataclass(frozen=True, slots=True)
class Histogram:
    """A cumulative latency histogram, Prometheus style: ``counts[i]`` observations ``<= bounds[i]``;
    the last bound is ``inf``. Seconds."""

    bounds: tuple[float, ...] = ()
    counts: tuple[int, ...] = ()
    sum: float = 0.0

    @property
    def total(self) -> int:
        return self.counts[-1] if self.counts else 0


@dataclass(frozen=True, slots=True)
class PredictorCounters:
    requests: int = 0
    errors: int = 0
    rejected: int = 0
    retries: int = 0
    cache_hits: int = 0
    in_flight: int = 0  # gauge
    waiting: int = 0  # gauge
    replicas: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))  # gauge: in flight by replica
    latency: Histogram = Histogram()


@dataclass(frozen=True, slots=True)
class ShadowCounters:
    predictor: str
    mirrored: int = 0
    failed: int = 0
    compared: int = 0
    agreed: int = 0
    numeric: int = 0
    abs_error_sum: float = 0.0


@dataclass(frozen=True, slots=True)
class DeploymentCounters:
    predictors: Mapping[str, PredictorCounters]
    shadow: ShadowCounters | None = None


DeploymentKey = tuple[str, str]  # (project, deployment)


@dataclass(frozen=True, slots=True)
class GatewayReport:
    gateway: str  # random per gateway process start
    started_at: float  # gateway clock, unix seconds
    at: float  # gateway clock, unix seconds
    deployments: Mapping[DeploymentKey, DeploymentCounters]


# -- increases ------------------------------------------------------------------------------------

_COUNTERS = ("requests", "errors", "rejected", "retries", "cache_hits")


@dataclass(slots=True)
class PredictorIncrease:
    """Increases of one predictor's counters over some interval, summed over gateways and pairs."""

    requests: int = 0
    errors: int = 0
    rejected: int = 0
    retries: int = 0
    cache_hits: int = 0
    latency: dict[tuple[float, ...], list[int]] = field(default_factory=dict)  # bounds → cumulative counts
    latency_sum: float = 0.0

    def add(self, other: PredictorIncrease) -> None:
        for name in _COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for bounds, counts in other.latency.items():
            mine = self.latency.setdefault(bounds, [0] * len(counts))
            for i, c in enumerate(counts):
                mine[i] += c
        self.latency_sum += other.latency_sum

    def histogram(self) -> tuple[tuple[float, ...], list[int]]:
        return merge_histograms(self.latency)


@dataclass(slots=True)
class ShadowIncrease:
    predictor: str
    mirrored: int = 0
    failed: int = 0
    compared: int = 0
    agreed: int = 0
    numeric: int = 0
    abs_error_sum: float = 0.0

    def add(self, other: ShadowIncrease) -> None:
        self.predictor = other.predictor
        for f in fields(ShadowCounters):
            if f.name != "predictor":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def _reset(before: PredictorCounters, after: PredictorCounters) -> bool:
    if any(getattr(after, n) < getattr(before, n) for n in _COUNTERS):
        return True
    if before.latency.bounds != after.latency.bounds:
        return True  # a different histogram: nothing to subtract from
    return any(a < b for a, b in zip(after.latency.counts, before.latency.counts, strict=True))


def predictor_increase(before: PredictorCounters | None, after: PredictorCounters) -> PredictorIncrease:
    """What happened between two snapshots of one predictor (``before`` None: counting started at 0)."""
    base = PredictorCounters() if before is None or _reset(before, after) else before
    out = PredictorIncrease(**{n: getattr(after, n) - getattr(base, n) for n in _COUNTERS})
    if after.latency.counts:
        if base.latency.counts:
            counts = [a - b for a, b in zip(after.latency.counts, base.latency.counts, strict=True)]
        else:
            counts = list(after.latency.counts)
        out.latency[after.latency.bounds] = counts
        out.latency_sum = max(after.latency.sum - base.latency.sum, 0.0)
    return out


def shadow_increase(before: ShadowCounters | None, after: ShadowCounters) -> ShadowIncrease:
    names = [f.name for f in fields(ShadowCounters) if f.name != "predictor"]
    reset = before is None or any(getattr(after, n) < getattr(before, n) for n in names)
    out = ShadowIncrease(after.predictor)
    for n in names:
        setattr(out, n, getattr(after, n) - (0 if reset or before is None else getattr(before, n)))
    return out


# -- histograms -----------------------------------------------------------------------------------

def merge_histograms(groups: Mapping[tuple[float, ...], list[int]]) -> tuple[tuple[float, ...], list[int]]:
    """One cumulative histogram from several with possibly different bounds (each gateway's own).

    Identical bounds (the contract's fixed buckets) just add up. Otherwise each histogram is read as a
    step function at the union of the bounds: at a bound it lacks, it counts what its largest
    bound below holds, which never overstates a count below a bound."""
    if not groups:
        return (), []
    if len(groups) == 1:
        bounds, counts = next(iter(groups.items()))
        return bounds, list(counts)
    union = tuple(sorted({b for bounds in groups for b in bounds}))
    merged = [0] * len(union)
    for bounds, counts in groups.items():
        j = -1
        for i, edge in enumerate(union):
            while j + 1 < len(bounds) and bounds[j + 1] <= edge:
                j += 1
            merged[i] += counts[j] if j >= 0 else 0
    return union, merged


def quantile(q: float, bounds: Iterable[float], counts: Iterable[int]) -> float | None:
    """``histogram_quantile`` as Prometheus computes it: linear interpolation inside the bucket that
    holds the rank; the first bucket starts at 0; a rank in the ``+Inf`` bucket answers the largest
    finite bound. None when the histogram is empty."""
    b, c = list(bounds), list(counts)
    if not c or c[-1] <= 0:
        return None
    rank = q * c[-1]
    for i, (edge, cum) in enumerate(zip(b, c, strict=True)):
        if cum >= rank and cum > 0:
            if math.isinf(edge):
                finite = [x for x in b if not math.isinf(x)]
                return finite[-1] if finite else None
            lower, below = (b[i - 1], c[i - 1]) if i > 0 else (0.0, 0)
            inside = cum - below
            return edge if inside <= 0 else lower + (edge - lower) * (rank - below) / inside
    return None
