"""``Autoscaler``: the reconciler's link between the gateways' traffic and ``decide_scale``.

Once per reconcile pass, for every autoscaled predictor of every desired revision, it reads the
predictor's load from the ``TrafficStore`` (in flight and waiting now, requests since the previous
pass), works out the project's quota headroom from what every deployment of the project runs, and
asks the pure policy (``control.autoscale``) for a count. The counts go to the planner (``plan(...,
scale=...)``) and into the status (``desiredReplicas``); each change, and each quota refusal (once
while it lasts), becomes an event. The policy state lives here between passes; a restarted control
plane seeds it from the replicas it observes. The Kubernetes backend is scaled by it too (the
control plane makes the pods; there is no HorizontalPodAutoscaler).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from modelpier.auth.quota import Limits, Resources
from modelpier.backends.base import ReplicaObservation
from modelpier.control.reconciler.actions import RecordEvent
from modelpier.control.reconciler.autoscale_policy import (
    Load,
    ScaleState,
    add,
    decide_scale,
    exceeded,
    headroom,
    replica_cost,
    seed_state,
    times,
)
from modelpier.control.reconciler.plan import DeploymentKey, DeploymentTarget, replica_count
from modelpier.control.traffic.store import TrafficStore

PredictorKey = tuple[str, str, str]  # project, deployment, predictor
LimitsSource = Callable[[str], Limits]
# How far back "requests since the previous pass" looks at least: gateways report every second.
_MIN_RECENT_S = 3.0


@dataclass(frozen=True, slots=True)
class ScaleView:
    """One autoscaled predictor as the metrics and tests see it."""

    project: str
    deployment: str
    predictor: str
    desired: int
    ready: int
    limited_by_quota: bool
    min_replicas: int  # the desired revision's autoscaling bounds
    max_replicas: int


@dataclass(frozen=True, slots=True)
class Scaling:
    counts: Mapping[DeploymentKey, Mapping[str, int]]
    events: list[RecordEvent]


class Autoscaler:
    def __init__(self, traffic: TrafficStore, limits: LimitsSource | None = None) -> None:
        self._traffic = traffic
        self._limits_source = limits
        self._states: dict[PredictorKey, ScaleState] = {}
        self._last_at: float | None = None
        self._ready: dict[PredictorKey, int] = {}
        self._bounds: dict[PredictorKey, tuple[int, int]] = {}  # (minReplicas, maxReplicas), keyed as _states
        self.decisions: Counter[tuple[str, str, str, str]] = Counter()  # (project, deployment, predictor, up|down)

    # -- the pass -------------------------------------------------------------------------------
    def read_limits(self, projects: Iterable[str]) -> dict[str, Limits]:
        """Each project's quota, read every pass (one keyed read per project with autoscaled predictors;
        the loop calls this on its store thread), so a lowered quota holds from the next pass on."""
        source = self._limits_source
        return {project: source(project) if source else Limits() for project in projects}

    def counts(self) -> dict[DeploymentKey, dict[str, int]]:
        """The counts decided last (used when a pass cannot decide, so nothing jumps back to defaults)."""
        out: dict[DeploymentKey, dict[str, int]] = {}
        for (project, deployment, predictor), state in self._states.items():
            out.setdefault((project, deployment), {})[predictor] = state.replicas
        return out

    def hold(self, targets: Sequence[DeploymentTarget], observed: Sequence[ReplicaObservation]
             ) -> dict[DeploymentKey, dict[str, int]]:
        """Counts for a pass that could not decide: the last decided, else what runs now (clamped to the
        bounds), so a failure changes nothing that runs."""
        counts = self.counts()
        live: Counter[PredictorKey] = Counter(
            (r.spec.project, r.spec.deployment, r.spec.predictor) for r in observed if r.phase != "stopping")
        for t in targets:
            for p in t.desired.spec.predictors:
                mine = counts.setdefault(t.key, {})
                if p.autoscaling is not None and p.name not in mine:
                    mine[p.name] = seed_state(p.autoscaling, live[(*t.key, p.name)], 0.0).replicas
        return counts

    def decide(self, targets: Sequence[DeploymentTarget], observed: Sequence[ReplicaObservation], now: float,
               limits: Mapping[str, Limits] | None = None) -> Scaling:
        limits = limits or {}
        recent = max(_MIN_RECENT_S, now - self._last_at) if self._last_at is not None else _MIN_RECENT_S
        self._last_at = now
        live: Counter[PredictorKey] = Counter()
        ready: Counter[PredictorKey] = Counter()
        for r in observed:
            key = (r.spec.project, r.spec.deployment, r.spec.predictor)
            live[key] += r.phase != "stopping"
            ready[key] += r.phase == "ready"
        active = [t for t in targets if not t.deleting]
        seen: set[PredictorKey] = set()
        events: list[RecordEvent] = []
        for target in active:
            for p in target.desired.spec.predictors:
                if p.autoscaling is None:
                    continue
                key = (target.key[0], target.key[1], p.name)
                seen.add(key)
                self._bounds[key] = (p.autoscaling.min_replicas, p.autoscaling.max_replicas)
                if key not in self._states:
                    self._states[key] = seed_state(p.autoscaling, live[key], now)
        self._states = {k: v for k, v in self._states.items() if k in seen}
        self._bounds = {k: v for k, v in self._bounds.items() if k in seen}
        self._ready = {k: ready[k] for k in seen}
        for target in active:
            autoscaled = [p for p in target.desired.spec.predictors if p.autoscaling is not None]
            if not autoscaled:
                continue
            project, name = target.key
            window = self._traffic.window(project, name, min(recent, self._traffic.retention_s))
            for p in autoscaled:
                assert p.autoscaling is not None
                key = (project, name, p.name)
                state = self._states[key]
                w = window.predictor(p.name)
                cost = replica_cost(p)
                usage = self._usage(project, active)
                room = headroom(usage, cost, limits.get(project, Limits()))
                over = exceeded(usage, cost, max(room or 0, 0) + 1, limits.get(project, Limits())) \
                    if room is not None else []
                decision, new_state = decide_scale(
                    p.autoscaling, state, Load(w.in_flight, w.waiting, w.requests), now, headroom=room,
                    quota="; ".join(e.message() for e in over))
                self._states[key] = new_state
                revision = target.desired.number
                if decision.changed:
                    direction = "up" if decision.replicas > decision.previous else "down"
                    self.decisions[(project, name, p.name, direction)] += 1
                    events.append(RecordEvent(project, name, "Normal", f"Scaled{direction.capitalize()}",
                                              f"Scaled predictor {p.name} from {decision.previous} to "
                                              f"{decision.replicas}: {decision.reason}", revision))
                if decision.quota is not None and decision.quota != state.quota_note:
                    events.append(RecordEvent(project, name, "Warning", "ScaleLimitedByQuota",
                                              f"predictor {p.name}: {decision.quota}", revision))
        return Scaling(self.counts(), events)

    def _usage(self, project: str, targets: Sequence[DeploymentTarget]) -> Resources:
        """What the project's deployments run now: autoscaled predictors at their current counts."""
        total = Resources(deployments=sum(t.key[0] == project for t in targets))
        for t in targets:
            if t.key[0] != project:
                continue
            counts = {k[2]: s.replicas for k, s in self._states.items() if k[:2] == t.key}
            for p in t.desired.spec.predictors:
                total = add(total, times(replica_cost(p), replica_count(p, counts)))
        return total

    # -- reading --------------------------------------------------------------------------------
    def views(self) -> list[ScaleView]:
        bounds = self._bounds  # read first: a pass in between may have replaced both maps (the API's thread)
        return [ScaleView(k[0], k[1], k[2], s.replicas, self._ready.get(k, 0), s.quota_note is not None,
                          *bounds[k])
                for k, s in sorted(self._states.items()) if k in bounds]
