"""``decide_canary``: is a canary healthy enough to take the next step? Pure.

Inputs: what the stable and the canary predictor answered over one analysis interval (request and
error counts, p99 latency, from the gateways' traffic) and the deployment's ``spec.canary``
thresholds. The answer is one of

* ``PromoteStep``: healthy, move to the next weight (or promote after the last step);
* ``Hold``: inconclusive, fewer canary requests than ``minRequests``: judge another interval;
* ``Rollback``: worse beyond a threshold; ``metric`` names which and ``reason`` gives both values.

Checks, in order: enough canary requests; error rate (canary minus stable must not exceed
``maxErrorRateIncrease``); p99 latency (canary at most ``maxLatencyRatio`` times the stable's). The
latency check ignores differences under ``LATENCY_SLACK_S``: percentiles are interpolated from
histogram buckets (the finest is 1 ms wide), so at sub-millisecond latencies a ratio is bucket noise,
not evidence. Without stable requests in the interval there is no latency baseline and the stable
error rate counts as 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from modelpier.spec.deployment import CanaryAnalysis

# Latency differences below this never fail a canary (histogram resolution, see the module docstring).
LATENCY_SLACK_S = 0.005


@dataclass(frozen=True, slots=True)
class Sample:
    """One predictor over one analysis interval."""

    requests: int = 0
    errors: int = 0
    p99_s: float | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True, slots=True)
class PromoteStep:
    reason: str
    kind: Literal["promote-step"] = "promote-step"


@dataclass(frozen=True, slots=True)
class Hold:
    reason: str
    kind: Literal["hold"] = "hold"


@dataclass(frozen=True, slots=True)
class Rollback:
    metric: Literal["error rate", "p99 latency"]
    reason: str
    kind: Literal["rollback"] = "rollback"


CanaryVerdict = PromoteStep | Hold | Rollback


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def decide_canary(stable: Sample, canary: Sample, thresholds: CanaryAnalysis) -> CanaryVerdict:
    if canary.requests < thresholds.min_requests:
        return Hold(f"inconclusive: {canary.requests} canary request(s) in the interval, at least "
                    f"{thresholds.min_requests} needed (spec.canary.minRequests)")
    increase = canary.error_rate - stable.error_rate
    if increase > thresholds.max_error_rate_increase + 1e-12:
        return Rollback("error rate", f"error rate: canary {_pct(canary.error_rate)} ({canary.errors} of "
                                      f"{canary.requests}) vs stable {_pct(stable.error_rate)} ({stable.errors} of "
                                      f"{stable.requests}), more than {thresholds.max_error_rate_increase * 100:g} "
                                      f"points above (spec.canary.maxErrorRateIncrease)")
    if stable.requests and stable.p99_s is not None and canary.p99_s is not None \
            and canary.p99_s > stable.p99_s * thresholds.max_latency_ratio \
            and canary.p99_s - stable.p99_s > LATENCY_SLACK_S:
        return Rollback("p99 latency", f"p99 latency: canary {_ms(canary.p99_s)} vs stable {_ms(stable.p99_s)}, more "
                                       f"than {thresholds.max_latency_ratio:g}x (spec.canary.maxLatencyRatio)")
    baseline = "" if stable.requests else " (no stable requests in the interval: no latency baseline)"
    return PromoteStep(f"healthy over {canary.requests} canary request(s): error rate canary "
                       f"{_pct(canary.error_rate)} vs stable {_pct(stable.error_rate)}, p99 canary {_ms(canary.p99_s)} "
                       f"vs stable {_ms(stable.p99_s)}{baseline}")
