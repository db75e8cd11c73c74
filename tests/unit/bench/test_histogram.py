"""The fixed-bucket latency histogram: bounded memory, percentiles within the stated precision."""

from __future__ import annotations

import math
import random

import pytest

from modelpier.bench.histogram import LatencyHistogram


def exact(samples: list[float], q: float) -> float:
    """Nearest-rank percentile of the raw samples: what the histogram approximates."""
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def test_empty_histogram_reports_zeros() -> None:
    h = LatencyHistogram()
    assert (h.count, h.percentile(50), h.percentile(99), h.mean_s) == (0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("distribution", ["uniform", "lognormal", "bimodal"])
@pytest.mark.parametrize("q", [1.0, 50.0, 90.0, 99.0, 99.9])
def test_percentiles_are_within_half_the_bucket_width(distribution: str, q: float) -> None:
    rng = random.Random(7)  # noqa: S311  # a seeded sample, not a secret
    draw = {"uniform": lambda: rng.uniform(0.0005, 0.05),
            "lognormal": lambda: rng.lognormvariate(math.log(0.002), 1.0),
            "bimodal": lambda: rng.choice([rng.gauss(0.001, 0.0001), rng.gauss(0.2, 0.01)])}[distribution]
    samples = [max(draw(), 1e-6) for _ in range(20_000)]
    h = LatencyHistogram()
    for s in samples:
        h.record(s)
    assert h.percentile(q) == pytest.approx(exact(samples, q), rel=0.0051)


def test_memory_is_fixed_whatever_the_sample_count() -> None:
    h = LatencyHistogram()
    buckets = len(h)
    for i in range(100_000):
        h.record((i % 1000 + 1) / 1e5)
    assert len(h) == buckets < 2000
    assert h.count == 100_000


def test_min_max_and_mean_are_exact_and_clamp_percentiles() -> None:
    h = LatencyHistogram()
    for s in (0.010, 0.020, 0.030):
        h.record(s)
    assert (h.min_s, h.max_s) == (0.010, 0.030)
    assert h.mean_s == pytest.approx(0.020)
    assert h.percentile(0) == 0.010
    assert h.percentile(100) == 0.030
    single = LatencyHistogram()
    single.record(0.0042)
    assert single.percentile(50) == single.percentile(99) == 0.0042  # clamped to the one exact value


def test_values_outside_the_range_land_in_the_edge_buckets() -> None:
    h = LatencyHistogram(lowest_s=1e-3, highest_s=1.0)
    h.record(1e-9)
    h.record(500.0)
    assert h.count == 2
    assert h.percentile(100) == 500.0
    assert h.percentile(1) <= 1e-3 * 1.01  # the first bucket: below the range reads as its lowest value
    assert h.min_s == 1e-9  # while the exact minimum is kept


def test_merge_adds_counts() -> None:
    a, b = LatencyHistogram(), LatencyHistogram()
    for s in (0.001, 0.002):
        a.record(s)
    b.record(0.5)
    a.merge(b)
    assert (a.count, a.max_s, a.min_s) == (3, 0.5, 0.001)
    with pytest.raises(ValueError, match="same buckets"):
        a.merge(LatencyHistogram(precision=0.05))


@pytest.mark.parametrize("q", [-1, 100.5])
def test_percentile_out_of_range_is_refused(q: float) -> None:
    with pytest.raises(ValueError, match="within 0-100"):
        LatencyHistogram().percentile(q)
