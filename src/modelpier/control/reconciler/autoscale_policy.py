"""The local autoscaler's policy: ``decide_scale`` turns observed load into a replica count. Pure.

Inputs: a predictor's ``autoscaling`` spec, the count it runs now (kept in ``ScaleState``), the load
the gateways report (requests in flight, requests held for a cold start, requests seen lately),
the project's quota headroom, and the time. Output: the count to run, why, and the new state.

Algorithm (the shape of Kubernetes' HPA, on gateway in-flight counts instead of CPU):

* The *recommendation* is ``ceil((inFlight + waiting) / targetInFlight)``, at least 1 while there
  is any traffic (so light, fast traffic never scales to zero), clamped to
  ``[minReplicas, maxReplicas]``.
* Up at once: a recommendation above the current count is taken now.
* Down only after ``stabilizationSeconds``: the count goes down to the *highest* recommendation of
  the window, never lower (HPA's downscale stabilization), so a dip does not shed replicas that a
  burst a few seconds later needs, and the count does not flap.
* To zero only with ``minReplicas: 0`` and no traffic for the whole window (every recommendation
  in it was 0); from 0 to 1 at once when a request waits for a cold start.
* Never past quota: a scale-up is capped at what the project's quota leaves (``headroom``) and the
  decision says so; a scale-down is never refused.

Guarantee: the same state and inputs give the same decision; the state is all the memory needed
(the reconciler seeds it with the count it observes, so a restart resumes without a jump).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from modelpier.auth.quota import Exceeded, Limits, Resources, check_quota
from modelpier.control.deployments.quota import cpu_millis, memory_bytes
from modelpier.spec.deployment import Autoscaling, PredictorSpec


@dataclass(frozen=True, slots=True)
class ScaleState:
    replicas: int  # the count decided last (what the reconciler runs)
    recommendations: tuple[tuple[float, int], ...] = ()  # (epoch seconds, recommendation) within the window
    quota_note: str | None = None  # the quota refusal last reported, so it is recorded once


@dataclass(frozen=True, slots=True)
class Load:
    """What the gateways report for one predictor, summed over gateways."""

    in_flight: int = 0  # forwarded, not yet answered (latest)
    waiting: int = 0  # held for a cold start (latest)
    requests: int = 0  # answered since the previous decision

    @property
    def active(self) -> bool:
        return self.in_flight > 0 or self.waiting > 0 or self.requests > 0


@dataclass(frozen=True, slots=True)
class ScaleDecision:
    replicas: int
    previous: int
    reason: str  # why this count, for the event: "24 in flight, target 8 per replica"
    quota: str | None = None  # set when the quota kept the count below the recommendation: what and by how much

    @property
    def changed(self) -> bool:
        return self.replicas != self.previous


def initial_replicas(spec: Autoscaling) -> int:
    """The count of an autoscaled predictor before any load was seen (as the Kubernetes backend's HPA
    starts): ``minReplicas``, but at least 1, so a new deployment answers its first request warm."""
    return min(max(1, spec.min_replicas), spec.max_replicas)


def seed_state(spec: Autoscaling, observed: int, now: float) -> ScaleState:
    """The state for a predictor first seen with ``observed`` live replicas (0: a new one)."""
    count = min(max(observed, spec.min_replicas), spec.max_replicas) if observed > 0 else initial_replicas(spec)
    return ScaleState(count, ((now, count),))


def _recommend(spec: Autoscaling, load: Load) -> tuple[int, str]:
    demand = load.in_flight + load.waiting
    raw = math.ceil(demand / spec.target_in_flight - 1e-9) if demand > 0 else 0
    if load.active:
        raw = max(raw, 1)
    if load.waiting and not load.in_flight:
        why = f"{load.waiting} request(s) waiting for a cold start"
    else:
        why = f"{demand:g} in flight, target {spec.target_in_flight:g} per replica"
        if load.waiting:
            why += f" ({load.waiting} waiting for a cold start)"
    if raw > spec.max_replicas:
        return spec.max_replicas, f"{why}; capped at maxReplicas {spec.max_replicas}"
    if raw < spec.min_replicas:
        return spec.min_replicas, f"{why}; minReplicas is {spec.min_replicas}"
    return raw, why


def decide_scale(spec: Autoscaling, state: ScaleState, load: Load, now: float, *,
                 headroom: int | None = None, quota: str = "") -> tuple[ScaleDecision, ScaleState]:
    """The count to run now. ``headroom``: how many more replicas of this predictor the project's quota
    allows (None: no limit), ``quota``: what would be exceeded beyond it (for the decision's message)."""
    current = state.replicas
    window = spec.stabilization_seconds
    recommended, why = _recommend(spec, load)
    recent = (*((t, n) for t, n in state.recommendations if t > now - window), (now, recommended))
    if recommended >= current:
        wanted, reason = recommended, why
    else:
        ceiling = max(n for _, n in recent)
        wanted = min(max(ceiling, spec.min_replicas), current)
        if wanted == 0:
            reason = f"no traffic for {window:g}s (minReplicas 0: scaled to zero until the next request)"
        else:
            reason = f"{why}, below that for {window:g}s (stabilizationSeconds)"
    if wanted > spec.max_replicas:  # a lowered maxReplicas applies at once (old recommendations were higher)
        wanted, reason = spec.max_replicas, f"maxReplicas is {spec.max_replicas}"
    limited = None
    if headroom is not None and wanted > current and wanted - current > headroom:
        allowed = current + max(headroom, 0)
        limited = (f"predictor needs {wanted} replicas but the project quota allows {allowed}"
                   + (f" ({quota})" if quota else ""))
        wanted, reason = allowed, f"{why}; held at {allowed} by the project quota" + (f": {quota}" if quota else "")
    decision = ScaleDecision(wanted, current, reason, limited)
    return decision, ScaleState(wanted, recent, limited)


# -- quota ----------------------------------------------------------------------------------------

def replica_cost(predictor: PredictorSpec) -> Resources:
    """What one replica of ``predictor`` counts against the project's quota."""
    r = predictor.resources
    return Resources(replicas=1, cpu_millis=cpu_millis(r.cpu), memory_bytes=memory_bytes(r.memory), gpus=r.gpu)


def times(cost: Resources, n: int) -> Resources:
    return Resources(**{f.name: getattr(cost, f.name) * n for f in fields(Resources)})


def add(a: Resources, b: Resources) -> Resources:
    return Resources(**{f.name: getattr(a, f.name) + getattr(b, f.name) for f in fields(Resources)})


def headroom(usage: Resources, cost: Resources, limits: Limits) -> int | None:
    """How many more replicas costing ``cost`` fit under ``limits`` on top of ``usage`` (None: unlimited;
    negative when the project is already over, e.g. after its limits were lowered)."""
    rooms = [(limit - getattr(usage, f.name)) // per for f in fields(Resources)
             if (limit := getattr(limits, f.name)) is not None and (per := getattr(cost, f.name)) > 0]
    return min(rooms) if rooms else None


def exceeded(usage: Resources, cost: Resources, more: int, limits: Limits) -> list[Exceeded]:
    """The quotas ``more`` replicas would exceed (``auth.quota.check_quota``, the same check as apply)."""
    return check_quota(usage, times(cost, more), limits)
