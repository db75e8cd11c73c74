"""The reconcile loop: observe the backend, read desired state, plan, act, write status and events.

Level-triggered: a pass runs every ``interval_s`` and at once after ``trigger()`` (called after API
writes, from any thread). The loop never dies: each step and each action is isolated; failures
are logged and counted in ``failures`` by step, and the next pass starts from fresh observations.
Store calls are synchronous (SQL) and run on one worker thread, off the event loop the gateway
shares in ``pier up``. After each pass the routing table is published, without the replicas the
pass is about to stop, so traffic leaves them before they drain. With an ``Autoscaler``, each pass
first decides the replica counts of autoscaled predictors from the gateways' traffic; the planner
and the status use them (``docs/autoscaling.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

from modelpier._lib.clock import Clock
from modelpier.backends.base import Backend, ReplicaObservation
from modelpier.control.deployments.state import DeploymentRecord, DeploymentStore, Revision
from modelpier.control.reconciler.actions import (
    ROLLBACK_CAUSE,
    Action,
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
from modelpier.control.reconciler.autoscaling import Autoscaler
from modelpier.control.reconciler.plan import DeploymentKey, DeploymentTarget, plan
from modelpier.control.reconciler.status import build_routing_table, derive_status
from modelpier.errors import NotFound, PierError
from modelpier.spec.deployment import ModelDeploymentStatus
from modelpier.spec.revision import RevisionKind
from modelpier.spec.routing import RoutingTable

log = logging.getLogger("modelpier.reconciler")

T = TypeVar("T")


class Reconciler:
    def __init__(self, store: DeploymentStore, backend: Backend, clock: Clock, *, endpoint_base: str,
                 publish: Callable[[RoutingTable], None] | None = None, policy: PlanPolicy | None = None,
                 interval_s: float = 0.5, start_retry_s: float = 5.0, autoscaler: Autoscaler | None = None,
                 on_status: Callable[[DeploymentKey, ModelDeploymentStatus], None] | None = None) -> None:
        self._store, self._backend, self._clock = store, backend, clock
        self._on_status = on_status  # sees every status derived, written or not (ReplicaHistory.record_status)
        self._endpoint_base = endpoint_base.rstrip("/")
        self._publish = publish or (lambda _table: None)
        self._policy = policy or PlanPolicy()
        self._interval = interval_s
        self._start_retry = start_retry_s
        self._states: dict[DeploymentKey, DeploymentState] = {}
        self._revisions: dict[tuple[str, str, int], Revision] = {}  # immutable: cached forever
        self._db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconciler-db")
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self.failures: Counter[str] = Counter()  # by step, for metrics and tests
        self.passes = 0
        self._mark: dict[DeploymentKey, int] = {}  # MarkRolledOut of this pass, applied with the status
        self._autoscaler = autoscaler
        self._scale: dict[DeploymentKey, dict[str, int]] = {}  # the autoscaler's counts of this pass

    # -- running ----------------------------------------------------------------------------------
    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        log.info("reconciler running (every %.1fs and on changes)", self._interval)
        try:
            while not self._stopping:
                await self.reconcile_once()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._interval)
                self._wake.clear()
        finally:
            self._db_thread.shutdown(wait=False)

    def trigger(self) -> None:
        """Run a pass soon; safe from any thread (API routes run in a thread pool)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def stop(self) -> None:
        self._stopping = True
        self.trigger()

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db_thread, lambda: fn(*args, **kwargs))

    # -- one pass ---------------------------------------------------------------------------------
    async def reconcile_once(self) -> None:
        """One observe → plan → act → status pass. Never raises."""
        self.passes += 1
        try:
            observed = await self._backend.observe()
        except Exception:
            self._fail("observe", "observing the backend failed")
            return
        try:
            records = await self._db(self._read_targets)
        except Exception:
            self._fail("read", "reading desired state failed")
            return
        targets = [t for _, t in records]
        now = self._clock.now().timestamp()
        scaling = await self._autoscale(targets, observed, now)
        try:
            result = plan(targets, observed, now, self._states, policy=self._policy, scale=self._scale)
        except Exception:
            self._fail("plan", "planning failed")
            return
        self._states = dict(result.states)
        stopping = {a.replica_id for a in result.actions if isinstance(a, StopReplica)}
        try:
            self._publish(build_routing_table(targets, observed, exclude=stopping))
        except Exception:
            self._fail("publish", "publishing the routing table failed")
        changed: dict[DeploymentKey, DeploymentTarget | None] = {}
        for action in [*scaling, *result.actions]:
            try:
                await self._act(action, changed)
            except Exception:
                self._fail(type(action).__name__, f"action {action} failed")
        await self._write_statuses(records, observed, changed)

    async def _autoscale(self, targets: Sequence[DeploymentTarget], observed: Sequence[ReplicaObservation],
                         now: float) -> list[RecordEvent]:
        """Decide the autoscaled counts of this pass (``self._scale``); the events narrating changes."""
        autoscaler = self._autoscaler
        if autoscaler is None:
            return []
        try:
            projects = sorted({t.key[0] for t in targets if any(p.autoscaling for p in t.desired.spec.predictors)})
            limits = await self._db(autoscaler.read_limits, projects)
            decided = autoscaler.decide(targets, observed, now, limits)
        except Exception:
            self._fail("autoscale", "autoscaling failed; keeping the last counts")
            self._scale = autoscaler.hold(targets, observed)
            return []
        self._scale = {k: dict(v) for k, v in decided.counts.items()}
        return decided.events

    def _fail(self, step: str, what: str) -> None:
        self.failures[step] += 1
        log.exception("%s (%d %s failures so far); the next pass retries", what, self.failures[step], step)

    def _read_targets(self) -> list[tuple[DeploymentRecord, DeploymentTarget]]:
        out = []
        for record in self._store.list_deployments():
            try:
                desired = self._revision(record.project, record.name, record.latest_revision)
                serving = (self._revision(record.project, record.name, record.serving_revision)
                           if record.serving_revision is not None else None)
            except PierError as exc:
                self.failures["read"] += 1
                log.warning("skipping %s/%s this pass: %s", record.project, record.name, exc.message)
                continue
            out.append((record, DeploymentTarget(desired, serving, record.deleting)))
        return out

    def _revision(self, project: str, name: str, number: int) -> Revision:
        key = (project, name, number)
        if key not in self._revisions:
            self._revisions[key] = self._store.revision(project, name, number)
        return self._revisions[key]

    # -- acting -----------------------------------------------------------------------------------
    async def _event(self, e: RecordEvent) -> None:
        with contextlib.suppress(NotFound):  # the deployment is gone: an orphan's events have nowhere to go
            await self._db(self._store.add_event, e.project, e.deployment, e.type, e.reason, e.message,
                           revision=e.revision)

    async def _act(self, action: Action, changed: dict[DeploymentKey, DeploymentTarget | None]) -> None:
        if isinstance(action, RecordEvent):
            await self._event(action)
        elif isinstance(action, StartReplica):
            await self._start(action)
        elif isinstance(action, StopReplica):
            await self._backend.stop(action.replica_id, action.reason)
            await self._event(RecordEvent(action.project, action.deployment, "Normal", "ReplicaStopping",
                              f"replica {action.replica_id}: {action.reason}"))
        elif isinstance(action, RestartReplica):
            await self._backend.restart(action.replica_id)
            why = f"({action.cause})" if action.cause else f"after {action.attempt} crash(es) in a row"
            await self._event(RecordEvent(action.project, action.deployment, "Normal", "ReplicaRestarted",
                              f"replica {action.replica_id} restarted {why}"))
        elif isinstance(action, MarkRolledOut):
            changed[(action.project, action.deployment)] = None  # re-read: status written below
            self._mark[(action.project, action.deployment)] = action.revision
        elif isinstance(action, RollBack):
            await self._roll_back(action)
            changed[(action.project, action.deployment)] = None
        elif isinstance(action, Purge):
            await self._db(self._store.purge, action.project, action.deployment)
            self._states.pop((action.project, action.deployment), None)
            changed[(action.project, action.deployment)] = None
            log.info("purged deployment %s/%s", action.project, action.deployment)

    async def _start(self, action: StartReplica) -> None:
        key = (action.project, action.deployment)
        state = self._states.get(key, DeploymentState())
        try:
            replica_id = await self._backend.start(action.spec)
        except PierError as exc:
            now = self._clock.now().timestamp()
            if state.start_error != exc.message:
                    await self._event(RecordEvent(action.project, action.deployment, "Warning", "StartFailed",
                                              exc.message, action.revision))
            self._states[key] = replace(state, start_error=exc.message, start_blocked_until=now + self._start_retry)
            return
        if state.start_error is not None:
            self._states[key] = replace(state, start_error=None, start_blocked_until=0.0)
        await self._event(RecordEvent(action.project, action.deployment, "Normal", "ReplicaStarted",
                          f"replica {replica_id} of predictor {action.predictor} started ({action.spec.model})",
                                      action.revision))

    async def _roll_back(self, action: RollBack) -> None:
        target = await self._db(self._store.revision, action.project, action.deployment, action.to)
        _, revision, _ = await self._db(
            self._store.apply, action.project, action.deployment, target.spec, resolved=dict(target.resolved),
            created_by="reconciler", kind=RevisionKind.AUTO_ROLLBACK, cause=f"{ROLLBACK_CAUSE}: {action.reason}")
        log.warning("rolled %s/%s back to revision %d: %s", action.project, action.deployment, action.to,
                    action.reason)
        await self._event(RecordEvent(action.project, action.deployment, "Warning", "RolledBack",
                          f"revision {action.failed} rolled back to revision {action.to} (as revision "
                          f"{revision.number}): {action.reason}", revision.number))

    # -- status -----------------------------------------------------------------------------------
    async def _write_statuses(self, records: Sequence[tuple[DeploymentRecord, DeploymentTarget]],
                              observed: Sequence[ReplicaObservation],
                              changed: dict[DeploymentKey, DeploymentTarget | None]) -> None:
        marks, self._mark = self._mark, {}
        by_key: dict[DeploymentKey, list[ReplicaObservation]] = {}
        for r in observed:
            by_key.setdefault((r.spec.project, r.spec.deployment), []).append(r)
        for record, target in records:
            key = target.key
            if target.deleting or (key in changed and key not in marks):
                continue
            try:
                serving = self._revision(*key, marks[key]) if key in marks else target.serving
                status = derive_status(
                    DeploymentTarget(target.desired, serving), by_key.get(key, []),
                    self._states.get(key, DeploymentState()),
                    url=f"{self._endpoint_base}/{key[0]}/{key[1]}", now=self._clock.now(),
                    previous=record.status, policy=self._policy, scale=self._scale.get(key))
                if self._on_status is not None:
                    self._on_status(key, status)
                if status != record.status or key in marks:
                    await self._db(self._store.set_status, key[0], key[1], status,
                                   serving_revision=serving.number if serving else None)
            except Exception:
                self._fail("status", f"writing the status of {key[0]}/{key[1]} failed")
