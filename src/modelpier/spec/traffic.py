"""Traffic messages between processes, defined once: the gateway's report and a predictor's window.

``TrafficReport`` is what every gateway POSTs to ``/api/v1/traffic`` every second: its cumulative
counters per deployment and predictor (the wire form is in docs/autoscaling.md, camelCase). The
gateway builds it from its live counters (``gateway/stats.py``); the control plane validates it as
the route's body and keeps it as it is in its ``TrafficStore``, whose arithmetic
(``control/traffic/counters.py``) reads it. Validation here is the only check a report gets:
counters are non-negative, a histogram has one cumulative count per bound, bounds increase and end
with ``+Inf``. Unknown fields are ignored, so a newer gateway can send more than a control plane reads.

``PredictorTrafficWindow`` is what the control plane answers about one predictor over a window
(``GET .../traffic``, read by ``pier describe`` and the dashboard), and what a canary's judgement
keeps of both predictors (``control/canary/state.StepResult``, stored with the run).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    WithJsonSchema,
    field_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel

# A cumulative counter or a gauge; absent counts as 0.
_Count = Annotated[int, Field(ge=0, le=2**63 - 1)]
INF_WIRE = "+Inf"  # how the last bound of a histogram travels (JSON has no infinity)


def _bound(value: Any) -> Any:
    if value == INF_WIRE:
        return math.inf
    if isinstance(value, str):
        raise ValueError(f"a bound is a number of seconds or \"{INF_WIRE}\", got {value!r}")
    return value


# A histogram bound in seconds; math.inf in Python, "+Inf" on the wire.
_Bound = Annotated[float, BeforeValidator(_bound),
                   WithJsonSchema({"anyOf": [{"type": "number"}, {"const": INF_WIRE, "type": "string"}]})]


class _In(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")


class LatencyHistogram(_In):
    """A cumulative latency histogram, Prometheus style: ``counts[i]`` observations ``<= le[i]``; the
    last bound is infinite. Seconds."""

    le: tuple[_Bound, ...] = Field(min_length=1, max_length=64,
                                   description="Upper bounds in seconds, increasing, the last \"+Inf\".")
    counts: tuple[int, ...] = Field(min_length=1, max_length=64, description="Cumulative counts (<= le).")
    sum: float = Field(ge=0, description="Sum of observed seconds.")

    @model_validator(mode="after")
    def _shape(self) -> LatencyHistogram:
        bounds = self.le
        if len(self.counts) != len(bounds):
            raise ValueError(f"counts has {len(self.counts)} entries but le has {len(bounds)}")
        if any(math.isnan(b) for b in bounds) or not math.isinf(bounds[-1]) \
                or any(b >= a for a, b in zip(bounds[1:], bounds, strict=False)):
            raise ValueError("le must increase and end with \"+Inf\"")
        if any(c < 0 for c in self.counts) or any(b < a for a, b in zip(self.counts, self.counts[1:], strict=False)):
            raise ValueError("counts must be cumulative: non-negative and never decreasing")
        return self

    @field_serializer("le")
    def _le_out(self, bounds: tuple[float, ...]) -> list[float | str]:
        return [INF_WIRE if math.isinf(b) else b for b in bounds]

    @property
    def total(self) -> int:
        return self.counts[-1]


class PredictorTraffic(_In):
    """One predictor's counters at one gateway: cumulative since the gateway started, except the gauges."""

    name: str = Field(min_length=1, max_length=63)
    requests: _Count = 0
    errors: _Count = 0
    rejected: _Count = 0
    retries: _Count = 0
    cache_hits: _Count = 0
    in_flight: _Count = 0  # gauge
    waiting: _Count = 0  # gauge: held for a cold start
    replicas: dict[str, int] = Field(default_factory=dict, max_length=1000, description="In flight per replica id.")
    latency: LatencyHistogram | None = None


class ShadowTraffic(_In):
    predictor: str = Field(min_length=1, max_length=63)
    mirrored: _Count = 0
    failed: _Count = 0
    compared: _Count = 0
    agreed: _Count = 0
    numeric: _Count = 0
    abs_error_sum: float = Field(0.0, ge=0)


class DeploymentTraffic(_In):
    project: str = Field(min_length=1, max_length=63)
    deployment: str = Field(min_length=1, max_length=63)
    predictors: tuple[PredictorTraffic, ...] = Field(default=(), max_length=64)
    shadow: ShadowTraffic | None = None
    _by_name: dict[str, PredictorTraffic] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        self._by_name = {p.name: p for p in self.predictors}  # a name sent twice: the later one counts

    def predictor(self, name: str) -> PredictorTraffic | None:
        return self._by_name.get(name)

    def by_name(self) -> Iterator[tuple[str, PredictorTraffic]]:
        return iter(self._by_name.items())


DeploymentKey = tuple[str, str]  # (project, deployment)


class TrafficReport(_In):
    """One gateway's cumulative counters at ``at``."""

    gateway: str = Field(min_length=1, max_length=128, description="Random id per gateway process start.")
    started_at: float = Field(ge=0, description="When the gateway started (unix seconds).")
    at: float = Field(ge=0, description="When the snapshot was taken (unix seconds).")
    deployments: tuple[DeploymentTraffic, ...] = Field(default=(), max_length=10_000)
    _by_key: dict[DeploymentKey, DeploymentTraffic] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        self._by_key = {(d.project, d.deployment): d for d in self.deployments}

    def deployment(self, key: DeploymentKey) -> DeploymentTraffic | None:
        return self._by_key.get(key)

    def deployment_keys(self) -> Iterator[DeploymentKey]:
        return iter(self._by_key)

    def waiting(self) -> bool:
        """Does some predictor hold requests for a cold start? (The reconciler is woken at once.)"""
        return any(p.waiting > 0 for d in self.deployments for p in d.predictors)


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class PredictorTrafficWindow(_Out):
    """One predictor over a window, as the control plane reports it (latencies in milliseconds)."""

    name: str
    requests: int = Field(description="Answered requests in the window.")
    errors: int
    request_rate: float = Field(description="Requests per second.")
    error_rate: float = Field(description="errors / requests (0 without requests).")
    p50_ms: float | None = Field(description="Median latency (ms), interpolated from the histogram; null without "
                                             "requests.")
    p99_ms: float | None
    in_flight: int = Field(description="Forwarded, not yet answered: latest, summed over gateways.")
    waiting: int = Field(description="Held for a cold start (scale-to-zero): latest.")
    cache_hit_rate: float
    ready_replicas: int = 0
    desired_replicas: int = 0
