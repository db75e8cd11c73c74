"""Observed state out of one reconcile pass: a deployment's status and the gateway's routing table.

Pure functions of the targets, the observed replicas and the planner's state. Conditions keep
their ``lastTransitionTime`` while their status does not change, so writing an unchanged status is
recognisable (and skipped) by the loop.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from modelpier.backends.base import ReplicaObservation
from modelpier.control.reconciler.actions import DeploymentState, PlanPolicy
from modelpier.control.reconciler.plan import DeploymentTarget, replica_count, templates_of
from modelpier.spec.deployment import (
    Condition,
    ConditionType,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    PredictorStatus,
)
from modelpier.spec.revision import RevisionKind
from modelpier.spec.routing import (
    DeploymentRoute,
    HeaderRoute,
    PredictorRoute,
    ReplicaEndpoint,
    RoutingTable,
    TrafficPolicy,
)

_Cond = tuple[ConditionType, bool, str, str]  # type, status, reason, message


def _ready_condition(target: DeploymentTarget, ready: dict[str, int], state: DeploymentState,
                     crashed: bool, scale: Mapping[str, int] | None = None) -> _Cond:
    desired = target.desired
    unsupported = [p.name for p, t in zip(desired.spec.predictors, templates_of(desired).values(), strict=True)
                   if t is None]
    if unsupported:
        return ("Ready", False, "Unsupported",
                f"predictors {unsupported} reference a bundle, which the local backend cannot run yet")
    wanted = [p for p in desired.spec.predictors if replica_count(p, scale) > 0]
    missing = [p.name for p in wanted if ready.get(p.name, 0) == 0]
    if not missing:
        full = all(ready.get(p.name, 0) >= replica_count(p, scale) for p in wanted)
        return ("Ready", True, "ReplicasReady" if full else "MinimumReplicasAvailable",
                "every predictor has ready replicas" if full else "some replicas are not ready yet")
    if state.start_error:
        return ("Ready", False, "StartFailed", state.start_error)
    return ("Ready", False, "ReplicasCrashing" if crashed else "ReplicasStarting",
            f"no ready replica for predictors {missing}")


def _progressing_condition(target: DeploymentTarget, ready_total: int, desired_total: int) -> _Cond:
    desired, serving = target.desired, target.serving
    if serving is None or serving.number != desired.number:
        return ("Progressing", True, "RolloutInProgress",
                f"rolling out revision {desired.number}" + (f" (serving revision {serving.number})" if serving else ""))
    if ready_total != desired_total:
        return ("Progressing", True, "ScalingReplicas", f"{ready_total} of {desired_total} replicas ready")
    if desired.kind is RevisionKind.AUTO_ROLLBACK:
        return ("Progressing", False, "RolledBack", desired.cause)
    return ("Progressing", False, "RolloutComplete", f"revision {desired.number} is fully rolled out")


def _degraded_condition(state: DeploymentState, policy: PlanPolicy) -> _Cond:
    for replica_id, record in sorted(state.crashes.items()):
        if record.failures >= policy.degraded_after:
            code = "unknown" if record.exit_code is None else str(record.exit_code)
            log = "\n".join(record.last_log) or "(no output)"
            return ("Degraded", True, "CrashLoop",
                    f"replica {replica_id} crashed {record.failures} times in a row (last exit code {code}); "
                    f"last log lines:\n{log}")
    if state.start_error:
        return ("Degraded", True, "StartFailed", state.start_error)
    return ("Degraded", False, "ReplicasHealthy", "")


def derive_status(target: DeploymentTarget, observed: Sequence[ReplicaObservation], state: DeploymentState, *,
                  url: str, now: datetime, previous: ModelDeploymentStatus | None = None,
                  policy: PlanPolicy | None = None, scale: Mapping[str, int] | None = None) -> ModelDeploymentStatus:
    """``scale``: the autoscaler's counts by predictor, the desired replicas of autoscaled predictors."""
    policy = policy or PlanPolicy()
    desired = target.desired
    templates = templates_of(desired)
    live = [r for r in observed if r.phase != "stopping"]
    ready: dict[str, int] = {}
    models: dict[str, str] = {}
    for r in live:
        if r.phase == "ready":
            ready[r.spec.predictor] = ready.get(r.spec.predictor, 0) + 1
            template = templates.get(r.spec.predictor)
            if r.spec.predictor not in models or (template is not None and r.spec.template == template.template):
                models[r.spec.predictor] = r.spec.model
    desired_total = sum(replica_count(p, scale) for p in desired.spec.predictors)
    ready_total = sum(ready.get(p.name, 0) for p in desired.spec.predictors)
    conditions = [
        _ready_condition(target, ready, state, crashed=any(r.phase == "exited" for r in live), scale=scale),
        _progressing_condition(target, ready_total, desired_total),
        _degraded_condition(state, policy),
    ]
    before = {c.type: c for c in previous.conditions} if previous else {}
    merged = []
    for kind, status, reason, message in conditions:
        text = "True" if status else "False"
        old = before.get(kind)
        moved = old is None or old.status != text
        merged.append(Condition(type=kind, status=text, reason=reason, message=message,
                                last_transition_time=now if moved or old is None else old.last_transition_time))
    predictors = [
        PredictorStatus(name=p.name, model_version=models.get(p.name) or desired.resolved.get(p.name) or p.model,
                        ready_replicas=ready.get(p.name, 0), desired_replicas=replica_count(p, scale), weight=p.weight)
        for p in desired.spec.predictors]
    return ModelDeploymentStatus(
        observed_revision=target.serving.number if target.serving else None, desired_revision=desired.number,
        conditions=merged, ready_replicas=ready_total, desired_replicas=desired_total, url=url,
        predictors=predictors)


def same_status(a: ModelDeploymentStatus | None, b: ModelDeploymentStatus) -> bool:
    return a is not None and a == b


def _route(target: DeploymentTarget, replicas: Sequence[ReplicaObservation], exclude: Collection[str]
           ) -> DeploymentRoute:
    desired, serving = target.desired, target.serving
    desired_keys = {n: t.template for n, t in templates_of(desired).items() if t is not None}
    serving_keys = {n: t.template for n, t in templates_of(serving).items() if t is not None} if serving else {}
    weights = {p.name: p.weight for p in desired.spec.predictors}
    if desired.spec.shadow is not None:
        weights[desired.spec.shadow.predictor] = 0  # mirrored to, never chosen by weight
    endpoints: dict[str, list[ReplicaEndpoint]] = {p.name: [] for p in desired.spec.predictors}
    for r in replicas:
        if r.phase != "ready" or r.url is None or r.replica_id in exclude:
            continue
        name = r.spec.predictor
        if desired_keys.get(name) == r.spec.template:
            revision = desired.number
        elif serving is not None and serving_keys.get(name) == r.spec.template:
            revision = serving.number
        else:
            revision = r.spec.revision
        endpoints.setdefault(name, []).append(ReplicaEndpoint(r.replica_id, r.url, revision, r.spec.model,
                                                              grpc_url=r.grpc_url))
    to_zero = {p.name for p in desired.spec.predictors if p.autoscaling is not None and p.autoscaling.min_replicas == 0}
    predictors = tuple(PredictorRoute(name, weights.get(name, 0), tuple(sorted(eps, key=lambda e: e.replica_id)),
                                      scales_to_zero=name in to_zero)
                       for name, eps in endpoints.items())
    return DeploymentRoute(desired.project, desired.deployment, desired.number, predictors,
                           timeout_s=desired.spec.timeouts.request_seconds, auth_mode=desired.spec.auth.mode,
                           policy=traffic_policy(desired.spec))


def traffic_policy(spec: ModelDeploymentSpec) -> TrafficPolicy:
    """What the gateway applies per request, from the desired revision's spec."""
    shadow, cache, log = spec.shadow, spec.cache, spec.prediction_log
    return TrafficPolicy(
        routes=tuple(HeaderRoute(tuple(sorted((k.lower(), v) for k, v in r.match.headers.items())), r.predictor)
                     for r in spec.routes),
        sticky_header=spec.sticky.header.lower() if spec.sticky else None,
        shadow=shadow.predictor if shadow else None, shadow_percent=shadow.percent if shadow else 0,
        shadow_log=bool(shadow and shadow.log),
        cache_ttl_s=cache.ttl_seconds if cache else None, cache_max_entries=cache.max_entries if cache else 0,
        max_in_flight=spec.limits.max_in_flight, max_body_bytes=spec.limits.max_body_bytes,
        log_sample_rate=log.sample_rate if log else None, log_sink=log.sink if log else "jsonl")


def build_routing_table(targets: Sequence[DeploymentTarget], observed: Sequence[ReplicaObservation],
                        exclude: Collection[str] = ()) -> RoutingTable:
    """Ready replicas by deployment and predictor; ``exclude`` names replicas about to be stopped, so
    traffic leaves them before they drain."""
    by_key: dict[tuple[str, str], list[ReplicaObservation]] = {}
    for r in observed:
        by_key.setdefault((r.spec.project, r.spec.deployment), []).append(r)
    return RoutingTable.of([_route(t, by_key.get(t.key, []), exclude) for t in targets if not t.deleting])
