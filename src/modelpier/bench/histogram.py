"""A latency histogram with fixed log-spaced buckets: constant memory, bounded relative error.

Bucket ``i`` holds values in ``[low·g^i, low·g^(i+1))`` with ``g = 1 + precision``. With the
defaults (1 µs to 120 s, 1 %) that is 1,870 integer counters however many samples are recorded, and a
percentile read from it is within ±0.5 % of the true sample value (the bucket's geometric middle is
reported, clamped to the exact minimum and maximum). Values outside the range fall into the first or
last bucket; the exact minimum, maximum and sum are kept beside the buckets. This is the HdrHistogram
idea (used by wrk2 and Gatling) reduced to what a report needs.
"""

from __future__ import annotations

import math


class LatencyHistogram:
    def __init__(self, *, lowest_s: float = 1e-6, highest_s: float = 120.0, precision: float = 0.01) -> None:
        if not 0 < lowest_s < highest_s or not 0 < precision < 1:
            raise ValueError("need 0 < lowest_s < highest_s and 0 < precision < 1")
        self.lowest_s, self.highest_s, self.precision = lowest_s, highest_s, precision
        self._log_growth = math.log1p(precision)
        self._buckets = [0] * (self._index(highest_s) + 1)
        self.count = 0
        self.total_s = 0.0
        self.min_s = math.inf
        self.max_s = 0.0

    def __len__(self) -> int:
        """How many buckets: the memory bound, whatever the number of samples."""
        return len(self._buckets)

    def _index(self, seconds: float) -> int:
        if seconds <= self.lowest_s:
            return 0
        return int(math.log(seconds / self.lowest_s) / self._log_growth)

    def record(self, seconds: float) -> None:
        index = min(self._index(seconds), len(self._buckets) - 1)
        self._buckets[index] += 1
        self.count += 1
        self.total_s += seconds
        self.min_s = min(self.min_s, seconds)
        self.max_s = max(self.max_s, seconds)

    def merge(self, other: LatencyHistogram) -> None:
        if len(other) != len(self) or other.lowest_s != self.lowest_s or other.precision != self.precision:
            raise ValueError("can only merge histograms with the same buckets")
        for i, n in enumerate(other._buckets):
            self._buckets[i] += n
        self.count += other.count
        self.total_s += other.total_s
        self.min_s = min(self.min_s, other.min_s)
        self.max_s = max(self.max_s, other.max_s)

    @property
    def mean_s(self) -> float:
        return self.total_s / self.count if self.count else 0.0

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100) in seconds by nearest rank; 0.0 when empty."""
        if not 0 <= q <= 100:
            raise ValueError(f"percentile {q} is not within 0-100")
        if self.count == 0:
            return 0.0
        if q == 0:
            return self.min_s
        if q == 100:
            return self.max_s
        rank = max(1, math.ceil(q / 100 * self.count))
        seen = 0
        for i, n in enumerate(self._buckets):
            seen += n
            if seen >= rank:
                middle = self.lowest_s * math.exp((i + 0.5) * self._log_growth)
                return min(max(middle, self.min_s), self.max_s)
        return self.max_s  # not reached: the buckets sum to count
