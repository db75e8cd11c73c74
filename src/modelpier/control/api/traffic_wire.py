"""JSON bodies of the traffic API's answer: a deployment's window (``GET .../traffic``), camelCase.

The gateway's report (``POST /api/v1/traffic``) and the per-predictor window are messages between
processes, defined once in ``spec/traffic.py``; this module builds the rest of the answer (shadow,
series) from the ``TrafficStore``'s window.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from modelpier.control.traffic.store import PredictorWindow, ShadowWindow, TrafficWindow, milliseconds
from modelpier.spec.deployment import ModelDeploymentStatus
from modelpier.spec.traffic import PredictorTrafficWindow


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class ShadowTrafficWindow(_Out):
    predictor: str
    mirrored: int
    failed: int
    compared: int
    agreement_rate: float | None = Field(description="Share of class-like pairs (int/bool/str outputs) that agreed.")
    mean_abs_error: float | None = Field(description="Mean absolute difference over numeric (float) pairs.")

    @classmethod
    def of(cls, s: ShadowWindow) -> ShadowTrafficWindow:
        return cls(predictor=s.predictor, mirrored=s.mirrored, failed=s.failed, compared=s.compared,
                   agreement_rate=s.agreement_rate, mean_abs_error=s.mean_abs_error)


class SeriesPredictorPoint(_Out):
    request_rate: float
    error_rate: float
    p50_ms: float | None
    p99_ms: float | None
    in_flight: int
    replicas: int = Field(description="Replicas with requests in flight at the step's end (busy, not running).")
    ready_replicas: int | None = Field(None, description="Ready replicas at the step's end; null when unknown "
                                                         "(before the control plane's first reconcile pass).")
    desired_replicas: int | None = Field(None, description="Desired replicas at the step's end; null when unknown.")


class SeriesPointBody(_Out):
    t: float = Field(description="End of the step (unix seconds).")
    predictors: dict[str, SeriesPredictorPoint]


class TrafficBody(_Out):
    window: float
    step: float
    predictors: list[PredictorTrafficWindow]
    shadow: ShadowTrafficWindow | None = None
    series: list[SeriesPointBody] = Field(description="One point per step, oldest first.")

    @classmethod
    def of(cls, w: TrafficWindow, names: list[str], status: ModelDeploymentStatus,
           replicas_at: Callable[[float], Mapping[str, tuple[int, int]] | None] | None = None) -> TrafficBody:
        """The window for the predictors ``names`` (the deployment's, in spec order, then any that served in
        the window). ``replicas_at(t)``: ready and desired replicas per predictor at ``t`` (the control plane's
        ``ReplicaHistory``); without it every point gets the status's counts of now."""
        seen = {p.name: p for p in status.predictors}
        now = {n: (p.ready_replicas, p.desired_replicas) for n, p in seen.items()}
        predictors = [w.predictor(n).summary(*now.get(n, (0, 0))) for n in names]
        series = []
        for p in w.series:
            counts = replicas_at(p.t) if replicas_at is not None else now
            series.append(SeriesPointBody(t=round(p.t, 3), predictors={
                n: SeriesPredictorPoint(request_rate=round(x.request_rate, 4), error_rate=round(x.error_rate, 6),
                                        p50_ms=milliseconds(x.p50_s), p99_ms=milliseconds(x.p99_s),
                                        in_flight=x.in_flight, replicas=x.replicas,
                                        ready_replicas=None if counts is None else counts.get(n, (0, 0))[0],
                                        desired_replicas=None if counts is None else counts.get(n, (0, 0))[1])
                for n in names for x in [p.predictors.get(n) or PredictorWindow(n)]}))
        return cls(window=w.window_s, step=w.step_s, predictors=predictors,
                   shadow=ShadowTrafficWindow.of(w.shadow) if w.shadow else None, series=series)
