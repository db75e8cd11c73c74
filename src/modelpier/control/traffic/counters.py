"""The arithmetic on gateway reports: increases between two snapshots, merged histograms, quantiles. Pure.

A gateway reports cumulative counters per deployment and predictor (``spec/traffic.TrafficReport``,
the one type both sides use); ``TrafficStore`` keeps its snapshots and asks this module for
increases between two of them, merged histograms and their quantiles.

Increases follow Prometheus ``increase()`` semantics: a counter that went down was reset (the
gateway restarted its counting), so the increase is its new value, not a negative number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from modelpier.spec.traffic import LatencyHistogram, PredictorTraffic, ShadowTraffic

INF = math.inf

# -- increases ------------------------------------------------------------------------------------

_COUNTERS = ("requests", "errors", "rejected", "retries", "cache_hits")
_SHADOW_COUNTERS = ("mirrored", "failed", "compared", "agreed", "numeric", "abs_error_sum")
_NO_LATENCY: tuple[tuple[float, ...], tuple[int, ...], float] = ((), (), 0.0)
_ZERO = PredictorTraffic(name="-")


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
        for name in _SHADOW_COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def _latency(h: LatencyHistogram | None) -> tuple[tuple[float, ...], tuple[int, ...], float]:
    return _NO_LATENCY if h is None else (h.le, h.counts, h.sum)


def _reset(before: PredictorTraffic, after: PredictorTraffic) -> bool:
    if any(getattr(after, n) < getattr(before, n) for n in _COUNTERS):
        return True
    (b_bounds, b_counts, _), (a_bounds, a_counts, _) = _latency(before.latency), _latency(after.latency)
    if b_bounds != a_bounds:
        return True  # a different histogram: nothing to subtract from
    return any(a < b for a, b in zip(a_counts, b_counts, strict=True))


def predictor_increase(before: PredictorTraffic | None, after: PredictorTraffic) -> PredictorIncrease:
    """What happened between two snapshots of one predictor (``before`` None: counting started at 0)."""
    base = _ZERO if before is None or _reset(before, after) else before
    out = PredictorIncrease(**{n: getattr(after, n) - getattr(base, n) for n in _COUNTERS})
    bounds, counts, total = _latency(after.latency)
    if counts:
        _, base_counts, base_total = _latency(base.latency)
        if base_counts:
            out.latency[bounds] = [a - b for a, b in zip(counts, base_counts, strict=True)]
        else:
            out.latency[bounds] = list(counts)
        out.latency_sum = max(total - base_total, 0.0)
    return out


def shadow_increase(before: ShadowTraffic | None, after: ShadowTraffic) -> ShadowIncrease:
    reset = before is None or any(getattr(after, n) < getattr(before, n) for n in _SHADOW_COUNTERS)
    out = ShadowIncrease(after.predictor)
    for n in _SHADOW_COUNTERS:
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
