"""The reconcile planner: desired revisions + observed replicas + time → actions. Pure, no I/O.

Algorithm, per deployment (``plan_deployment``):

* A replica *matches* a predictor of the desired revision when its template (model version,
  batching, workers) is the one that revision would start; replica counts and weights are not part
  of it, so scaling and re-weighting never restart anything, and a rollback revision (a copy of an
  older spec) adopts the replicas of that older revision at once.
* Crashed replicas are counted once per process, restarted after an exponential backoff, and
  replicas that stopped matching are stopped instead. Liveness: a matching replica that was ready,
  is still alive, and has failed ``liveness_failures`` probes in a row over at least
  ``liveness_failures * liveness_period_s`` seconds is restarted at once (the wait was its
  backoff); it counts as a crash of its slot, so a replica that keeps hanging reports Degraded.
* Rolling update per predictor: start matching replicas while the total stays within
  ``replicas + maxSurge``; stop non-matching ready ones while the ready total stays at least
  ``replicas - maxUnavailable``. When every predictor has exactly its replicas, all matching and
  ready, the revision is marked rolled out (it becomes the serving revision).
* A new revision whose replicas are not all ready ``readyTimeoutSeconds`` after the rollout started,
  or one of whose replicas crashed ``rollback_after_start_failures`` times without ever being ready,
  is rolled back to the serving revision.
* A deployment being deleted stops every replica, then is purged once none is left.
* The replica count of a predictor is ``replicas``, or for an autoscaled one the count the
  autoscaler decided (``scale``, see ``control/reconciler/autoscaling.py``); without a decision yet,
  its initial count (``control.autoscale.initial_replicas``).

Guarantee: applying a plan's actions and planning again on the resulting observation (same ``now``)
yields no action; the returned ``DeploymentState`` is all the memory the planner needs.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from modelpier.backends.base import ReplicaObservation, ReplicaSpec
from modelpier.control.deployments.state import EventType, Revision
from modelpier.control.reconciler.actions import (
    Action,
    CrashRecord,
    DeploymentPlan,
    DeploymentState,
    MarkRolledOut,
    PlanPolicy,
    Purge,
    RecordEvent,
    RestartReplica,
    RollBack,
    StartReplica,
    StopReplica,
)
from modelpier.control.reconciler.autoscale_policy import initial_replicas
from modelpier.settings import MIN_MAX_BODY_BYTES
from modelpier.spec.deployment import DEFAULT_MAX_BODY_BYTES, PredictorSpec, Resources

DeploymentKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class DeploymentTarget:
    desired: Revision  # the newest revision
    serving: Revision | None  # the last revision that was fully rolled out
    deleting: bool = False

    @property
    def key(self) -> DeploymentKey:
        return (self.desired.project, self.desired.deployment)


@dataclass(frozen=True, slots=True)
class Plan:
    actions: list[Action]
    states: Mapping[DeploymentKey, DeploymentState] = field(default_factory=dict)


def replica_count(predictor: PredictorSpec, scale: Mapping[str, int] | None = None) -> int:
    """How many replicas ``predictor`` should run: its ``replicas``, or the autoscaler's count in ``scale``."""
    if predictor.autoscaling is None:
        return predictor.replicas
    if scale is not None and predictor.name in scale:
        return scale[predictor.name]
    return initial_replicas(predictor.autoscaling)


_DEFAULT_RESOURCES = Resources()  # built once: a pydantic model per call was a third of a plan pass's time


def replica_template(revision: Revision, predictor: PredictorSpec) -> ReplicaSpec | None:
    """What a replica of ``predictor`` runs under ``revision``; None when no backend can run it yet (a
    bundle)."""
    model = revision.resolved.get(predictor.name) or predictor.model
    if model is None:
        return None
    batching = predictor.batching.enabled
    size = predictor.batching.max_batch_size
    latency = predictor.batching.max_latency_ms
    outputs = predictor.outputs or ()
    workers = predictor.worker_count  # computed from resources.cpu: once, this runs per replica per pass
    content = f"{predictor.name}|{model}|w{workers}|" + (f"b{size}:{latency}" if batching else "nob")
    if outputs:  # only when set, so templates of specs without it keep their key (no restart on upgrade)
        content += "|o" + ",".join(outputs)
    if predictor.isolated:  # likewise only when set
        content += "|isolated"
    if predictor.image is not None:  # likewise: a pod runs this image instead of pulling the model
        content += f"|i{predictor.image}"
    resources = predictor.resources
    if resources != _DEFAULT_RESOURCES:  # likewise: a pod's requests and limits (the workers are above already)
        content += f"|r{resources.cpu},{resources.memory},{resources.gpu}"
    # The gateway refuses a body over the deployment's limit, so below the server's minimum the minimum will do.
    max_body = max(revision.spec.limits.max_body_bytes, MIN_MAX_BODY_BYTES)
    if max_body != DEFAULT_MAX_BODY_BYTES:  # likewise: replicas started with the default are not rolled
        content += f"|m{max_body}"
    key = hashlib.blake2b(content.encode(), digest_size=5).hexdigest()
    return ReplicaSpec(project=revision.project, deployment=revision.deployment, predictor=predictor.name,
                       revision=revision.number, template=key, model=model, workers=workers,
                       batching=batching, max_batch_size=size, max_latency_ms=latency, outputs=outputs,
                       isolated=predictor.isolated, image=predictor.image, cpu=resources.cpu,
                       memory=resources.memory, gpu=resources.gpu, max_body_bytes=max_body)


def templates_of(revision: Revision) -> dict[str, ReplicaSpec | None]:
    return {p.name: replica_template(revision, p) for p in revision.spec.predictors}


def _template_keys(revision: Revision) -> dict[str, str | None]:
    return {name: t.template if t else None for name, t in templates_of(revision).items()}


class _Pass:
    """The actions and state of planning one deployment; a helper to keep the steps short."""

    def __init__(self, desired: Revision, state: DeploymentState, now: float, policy: PlanPolicy,
                 scale: Mapping[str, int] | None = None) -> None:
        self.desired, self.now, self.policy = desired, now, policy
        self.scale = scale
        self.project, self.name = desired.project, desired.deployment
        self.actions: list[Action] = []
        self.crashes = dict(state.crashes)
        self.announced = set(state.announced_ready)
        self.stopped: set[str] = set()

    def want(self, predictor: PredictorSpec) -> int:
        return replica_count(predictor, self.scale)

    def event(self, type_: EventType, reason: str, message: str) -> None:
        self.actions.append(RecordEvent(self.project, self.name, type_, reason, message, self.desired.number))

    def stop(self, replica: ReplicaObservation, reason: str) -> None:
        if replica.replica_id not in self.stopped:
            self.stopped.add(replica.replica_id)
            self.actions.append(StopReplica(self.project, self.name, replica.replica_id, reason))

    def account(self, replicas: Sequence[ReplicaObservation]) -> None:
        """Count crashes once per process, announce readiness once per process, reset stable slots."""
        ids = {r.replica_id for r in replicas}
        self.crashes = {k: v for k, v in self.crashes.items() if k in ids}
        self.announced = {k for k in self.announced if k.split("@", 1)[0] in ids}
        for r in replicas:
            key = f"{r.replica_id}@{r.pid}"
            if r.phase == "ready":
                if key not in self.announced:
                    self.announced.add(key)
                    if not r.adopted:
                        self.event("Normal", "ReplicaReady",
                                   f"replica {r.replica_id} of predictor {r.spec.predictor} ({r.spec.model}) "
                                   f"is ready at {r.url}")
                record = self.crashes.get(r.replica_id)
                if record is not None and r.ready_since is not None and \
                        self.now - r.ready_since >= self.policy.stable_after_s:
                    del self.crashes[r.replica_id]
            elif r.phase == "exited":
                self._count_crash(r, was_ready=key in self.announced)

    def _count_crash(self, r: ReplicaObservation, *, was_ready: bool) -> None:
        record = self.crashes.get(r.replica_id)
        if record is not None and record.counted_pid == r.pid:
            return
        failures = (record.failures if record else 0) + 1
        delay = self.policy.backoff(failures)
        self.crashes[r.replica_id] = CrashRecord(
            failures=failures, counted_pid=r.pid, next_attempt_at=self.now + delay, exit_code=r.exit_code,
            last_log=r.last_log[-self.policy.log_lines:], ever_ready=was_ready or bool(record and record.ever_ready))
        code = "unknown" if r.exit_code is None else str(r.exit_code)
        self.event("Warning", "ReplicaCrashed",
                   f"replica {r.replica_id} (pid {r.pid}) exited with code {code}; crash {failures} in a row, "
                   f"restart in {delay:g}s" + _log_suffix(r.last_log[-3:]))

    def restart_unresponsive(self, r: ReplicaObservation) -> None:
        """Liveness: count the hung process as a crash of its slot (once per pid) and restart it now."""
        record = self.crashes.get(r.replica_id)
        failures = (record.failures if record else 0) + (0 if record and record.counted_pid == r.pid else 1)
        unready_for = self.now - (r.unready_since or self.now)
        cause = (f"unresponsive: alive but failed {r.failed_probes} readiness probes in a row over "
                 f"{unready_for:.0f}s")
        if record is None or record.counted_pid != r.pid:
            self.crashes[r.replica_id] = CrashRecord(
                failures=failures, counted_pid=r.pid, next_attempt_at=self.now, exit_code=None,
                last_log=(f"(pid {r.pid} {cause})",), ever_ready=True)
            self.event("Warning", "ReplicaUnresponsive", f"replica {r.replica_id} (pid {r.pid}) is {cause}; "
                       f"restarting it ({failures} failure(s) in a row)")
        self.actions.append(RestartReplica(self.project, self.name, r.replica_id, failures, cause=cause))

    def state(self, rollout_revision: int | None, rollout_started_at: float | None,
              previous: DeploymentState) -> DeploymentState:
        return DeploymentState(
            rollout_revision=rollout_revision, rollout_started_at=rollout_started_at,
            crashes=MappingProxyType(self.crashes), announced_ready=frozenset(self.announced),
            start_blocked_until=previous.start_blocked_until, start_error=previous.start_error)


def _log_suffix(lines: Sequence[str]) -> str:
    return (": " + " | ".join(line.strip() for line in lines if line.strip())) if lines else ""


def _stop_preference(r: ReplicaObservation) -> tuple[int, float]:
    """Which replicas go first when scaling down: dead, then not ready, then the newest."""
    rank = {"exited": 0, "starting": 1, "unready": 1}.get(r.phase, 2)
    return (rank, -r.started_at)


def plan_deployment(desired: Revision, serving: Revision | None, observed: Sequence[ReplicaObservation],
                    now: float, state: DeploymentState | None = None, *, deleting: bool = False,
                    policy: PlanPolicy | None = None, scale: Mapping[str, int] | None = None) -> DeploymentPlan:
    """Plan one deployment. ``observed`` are its replicas; ``now`` is epoch seconds; ``scale`` the
    autoscaler's counts by predictor name."""
    state = state or DeploymentState()
    step = _Pass(desired, state, now, policy or PlanPolicy(), scale)
    if deleting:
        for r in observed:
            if r.phase != "stopping":
                step.stop(r, "deployment deleted")
        if not observed:
            step.actions.append(Purge(desired.project, desired.deployment))
        return DeploymentPlan(step.actions, DeploymentState())
    live = [r for r in observed if r.phase != "stopping"]
    step.account(live)
    rolling = serving is None or serving.number != desired.number
    started_at = (state.rollout_started_at if state.rollout_revision == desired.number else None) or now
    rollout_revision, rollout_started = (desired.number, started_at) if rolling else (None, None)
    templates = templates_of(desired)
    rolled_back = False
    if rolling and serving is not None and _template_keys(serving) != _template_keys(desired):
        failure = _rollout_failure(step, desired, templates, live, started_at)
        if failure is not None:
            step.actions.append(RollBack(desired.project, desired.deployment, to=serving.number,
                                         failed=desired.number, reason=failure))
            # Plan the rest of this pass as the rollback revision will (a copy of the serving one), so
            # the broken replicas go now and the next pass on the applied state has nothing to add.
            rolled_back, rollout_revision, rollout_started = True, None, None
            step.desired, templates = serving, templates_of(serving)
    spec = step.desired.spec
    complete = all(_plan_predictor(step, p, templates[p.name], observed, state) for p in spec.predictors)
    names = set(templates)
    for r in live:
        if r.spec.predictor not in names and (complete or r.phase != "ready"):
            step.stop(r, f"predictor {r.spec.predictor} is not in revision {step.desired.number}")
    # Done only once the replaced replicas have drained: until then the old revision still serves.
    draining = len(live) != len(observed)
    complete = complete and all(r.spec.predictor in names for r in live) and not step.stopped and not draining
    if complete and rolling and not rolled_back:
        step.actions.append(MarkRolledOut(desired.project, desired.deployment, desired.number))
        models = ", ".join(f"{p.name}={desired.resolved.get(p.name, p.model)}x{step.want(p)}"
                           for p in desired.spec.predictors)
        step.event("Normal", "RolloutComplete", f"revision {desired.number} is serving: {models}")
        rollout_revision, rollout_started = None, None
    return DeploymentPlan(step.actions, step.state(rollout_revision, rollout_started, state))


def _plan_predictor(step: _Pass, predictor: PredictorSpec, template: ReplicaSpec | None,
                    observed: Sequence[ReplicaObservation], state: DeploymentState) -> bool:
    """Rolling update / scaling of one predictor; True when it is fully rolled out."""
    if template is None:
        return False
    mine = [r for r in observed if r.spec.predictor == predictor.name and r.phase != "stopping"]
    new = [r for r in mine if r.spec.template == template.template]
    old = [r for r in mine if r.spec.template != template.template]
    want = step.want(predictor)
    rollout = step.desired.spec.rollout
    old_ready = [r for r in old if r.phase == "ready"]
    for r in old:
        if r.phase != "ready":  # contributes nothing to availability: replace it now
            step.stop(r, f"replaced by revision {step.desired.number}")
    if len(new) > want:
        for r in sorted(new, key=_stop_preference)[: len(new) - want]:
            step.stop(r, f"scaling {predictor.name} down to {want}")
        new = [r for r in new if r.replica_id not in step.stopped]
    for r in new:
        record = step.crashes.get(r.replica_id)
        if r.phase == "exited" and record is not None and step.now >= record.next_attempt_at:
            step.actions.append(RestartReplica(step.project, step.name, r.replica_id, record.failures))
        elif r.phase == "unready" and step.policy.unresponsive(r.failed_probes, r.unready_since, step.now):
            step.restart_unresponsive(r)
    # Draining replicas still hold their resources: they count against the surge.
    draining = sum(r.phase == "stopping" for r in observed if r.spec.predictor == predictor.name)
    room = want + rollout.max_surge - len(new) - len(old_ready) - draining
    if step.now >= state.start_blocked_until:
        for _ in range(max(0, min(want - len(new), room))):
            step.actions.append(StartReplica(step.project, step.name, predictor.name, step.desired.number,
                                             template))
    new_ready = sum(r.phase == "ready" for r in new)
    can_stop = new_ready + len(old_ready) - max(want - rollout.max_unavailable, 0)
    for r in sorted(old_ready, key=lambda r: r.started_at)[: max(0, min(can_stop, len(old_ready)))]:
        step.stop(r, f"replaced by revision {step.desired.number}")
    return new_ready == want == len(new) and not old


def _rollout_failure(step: _Pass, desired: Revision, templates: Mapping[str, ReplicaSpec | None],
                     live: Sequence[ReplicaObservation], started_at: float) -> str | None:
    """Why the rollout to ``desired`` failed, or None while it may still succeed."""
    keys = {t.template for t in templates.values() if t is not None}
    new = [r for r in live if r.spec.template in keys]
    ready: dict[str, int] = defaultdict(int)
    for r in new:
        ready[r.spec.predictor] += r.phase == "ready"
    if all(ready[p.name] >= step.want(p) for p in desired.spec.predictors):
        return None
    for r in new:
        record = step.crashes.get(r.replica_id)
        if record and not record.ever_ready and record.failures >= step.policy.rollback_after_start_failures:
            code = "unknown" if record.exit_code is None else str(record.exit_code)
            return (f"revision {desired.number} never became ready: replica {r.replica_id} ({r.spec.model}) "
                    f"crashed {record.failures} times while starting (exit code {code})"
                    + _log_suffix(record.last_log[-step.policy.log_lines:]))
    timeout = desired.spec.rollout.ready_timeout_seconds
    if step.now - started_at < timeout:
        return None
    details = []
    for r in new:
        record = step.crashes.get(r.replica_id)
        log = record.last_log if record else r.last_log
        details.append(f"replica {r.replica_id} is {r.phase}" + _log_suffix(log[-3:]))
    missing = "; ".join(details) or "no replica could be started"
    return f"revision {desired.number} never became ready within {timeout:g}s (readyTimeoutSeconds): {missing}"


def plan(targets: Sequence[DeploymentTarget], observed: Sequence[ReplicaObservation], now: float,
         states: Mapping[DeploymentKey, DeploymentState] | None = None, *,
         policy: PlanPolicy | None = None, scale: Mapping[DeploymentKey, Mapping[str, int]] | None = None) -> Plan:
    """Plan every deployment; replicas of deployments that no longer exist are stopped. ``scale``: the
    autoscaler's counts by deployment and predictor."""
    states = states or {}
    scale = scale or {}
    policy = policy or PlanPolicy()
    by_deployment: dict[DeploymentKey, list[ReplicaObservation]] = defaultdict(list)
    for r in observed:
        by_deployment[(r.spec.project, r.spec.deployment)].append(r)
    actions: list[Action] = []
    new_states: dict[DeploymentKey, DeploymentState] = {}
    for target in targets:
        key = target.key
        result = plan_deployment(target.desired, target.serving, by_deployment.pop(key, []), now,
                                 states.get(key), deleting=target.deleting, policy=policy, scale=scale.get(key))
        actions.extend(result.actions)
        if not target.deleting:
            new_states[key] = result.state
    for (project, name), orphans in by_deployment.items():
        actions.extend(StopReplica(project, name, r.replica_id, "its deployment no longer exists")
                       for r in orphans if r.phase != "stopping")
    return Plan(actions, new_states)
