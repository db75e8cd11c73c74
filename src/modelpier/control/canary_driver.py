"""``CanaryDriver``: runs progressive canaries inside the control plane, so they outlive the CLI.

``start`` checks the request and makes the first revision at once (so a bad reference or an
exceeded quota is the caller's 4xx); a task then drives the canary on the control plane's event
loop. Per step: make a revision with the canary at the step's weight (the stable predictor takes
the rest), wait until it is rolled out, let one interval of traffic pass, and ask
``decide_canary`` about that interval's stats from the ``TrafficStore``: hold (another interval),
next step, or roll back. After the last step below 100 the canary is promoted: the stable predictor
takes the canary's model version and the canary predictor goes (one more revision). A rollback
removes the canary predictor, with an event naming the metric that failed. Every transition is an
event, so ``pier describe`` tells the story.

State is in memory (``CanaryRun``) and in events; a control-plane restart ends the drive where it
stands (docs/canary.md says how to finish by hand). A deployment changed by someone else while a
canary runs stops the canary, untouched; one the reconciler rolled back (the canary never became
ready) is a failed canary and is rolled back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from modelpier._lib.clock import Clock
from modelpier.control.canary import CanaryVerdict, Hold, PromoteStep, Rollback, Sample, decide_canary
from modelpier.control.deployments import DeploymentService, DeploymentView
from modelpier.control.reconciler.actions import ROLLBACK_CAUSE
from modelpier.control.traffic import TrafficStore
from modelpier.control.traffic_wire import PredictorTrafficWindow
from modelpier.errors import Conflict, InvalidInput, NotFound, PierError
from modelpier.spec.deployment import ModelDeploymentSpec, PredictorSpec
from modelpier.spec.names import ModelRef

log = logging.getLogger("modelpier.control.canary")

CanaryPhase = Literal["progressing", "analyzing", "promoting", "promoted", "rolled-back", "aborted", "stopped",
                      "failed"]
DONE: frozenset[str] = frozenset({"promoted", "rolled-back", "aborted", "stopped", "failed"})
# Waiting for a step's revision to be rolled out, beyond the spec's readyTimeoutSeconds (after which the
# reconciler itself rolls a revision back, which the driver notices).
_READY_GRACE_S = 30.0


@dataclass(frozen=True, slots=True)
class CanaryRequest:
    to: str
    steps: tuple[int, ...]
    interval_s: float
    predictor: str = "canary"


@dataclass(frozen=True, slots=True)
class StepResult:
    weight: int
    verdict: str  # promote-step | hold | rollback
    reason: str
    stable: PredictorTrafficWindow
    canary: PredictorTrafficWindow
    at: float


@dataclass(slots=True)
class CanaryRun:
    project: str
    deployment: str
    predictor: str
    stable: str
    to: str
    version: str  # the canary's resolved version, e.g. iris:2
    stable_version: str
    steps: tuple[int, ...]
    interval_s: float
    started_by: str
    started_at: float
    phase: CanaryPhase = "progressing"
    step: int = 0  # index into steps
    weight: int = 0
    revision: int = 0  # the last revision the driver made
    message: str = ""
    updated_at: float = 0.0
    finished_at: float | None = None
    results: list[StepResult] = field(default_factory=list)
    abort_by: str | None = None
    task: asyncio.Task[None] | None = None

    @property
    def done(self) -> bool:
        return self.phase in DONE


class _Stop(Exception):  # control flow inside the drive, never leaves this module
    def __init__(self, phase: CanaryPhase, message: str, *, roll_back: bool) -> None:
        super().__init__(message)
        self.phase, self.message, self.roll_back = phase, message, roll_back


def _without(spec: ModelDeploymentSpec, canary: str, stable: PredictorSpec) -> ModelDeploymentSpec:
    """``spec`` with the canary predictor (and routes to it) removed and ``stable`` serving everything."""
    predictors = [stable.model_copy(update={"weight": 100}) if p.name == stable.name else p
                  for p in spec.predictors if p.name != canary]
    return spec.model_copy(update={"predictors": predictors,
                                   "routes": [r for r in spec.routes if r.predictor != canary]})


def _at_weight(spec: ModelDeploymentSpec, canary: PredictorSpec, stable: str, weight: int) -> ModelDeploymentSpec:
    """``spec`` with ``canary`` at ``weight`` percent (added after the stable one if new) and the stable
    predictor at the rest."""
    predictors = []
    for p in spec.predictors:
        if p.name == stable:
            predictors.append(p.model_copy(update={"weight": 100 - weight}))
        elif p.name != canary.name:
            predictors.append(p)
        if p.name == stable:
            predictors.append(canary.model_copy(update={"weight": weight}))
    return ModelDeploymentSpec.model_validate({**spec.model_dump(by_alias=True),
                                               "predictors": [p.model_dump(by_alias=True) for p in predictors]})


class CanaryDriver:
    def __init__(self, service: DeploymentService, traffic: TrafficStore, clock: Clock, *, poll_s: float = 0.5,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._service, self._traffic, self._clock = service, traffic, clock
        self._poll = poll_s
        self._sleep = sleep
        self._runs: dict[tuple[str, str], CanaryRun] = {}

    def _now(self) -> float:
        return self._clock.now().timestamp()

    # -- the API --------------------------------------------------------------------------------
    async def start(self, project: str, name: str, request: CanaryRequest, user: str) -> CanaryRun:
        key = (project, name)
        running = self._runs.get(key)
        if running is not None and not running.done:
            raise Conflict(f"a canary of {project}/{name} is already running (step {running.step + 1} of "
                           f"{len(running.steps)}); abort it first (DELETE .../canary, `pier rollout canary "
                           f"{name} --abort`)", details={"deployment": name})
        run = await asyncio.to_thread(self._begin, project, name, request, user)
        self._runs[key] = run
        run.task = asyncio.create_task(self._drive(run), name=f"canary {project}/{name}")
        return run

    def get(self, project: str, name: str) -> CanaryRun:
        run = self._runs.get((project, name))
        if run is None:
            self._service.get(project, name)  # NotFound for an unknown deployment
            raise NotFound(f"no canary of {project}/{name} has run since the control plane started",
                           details={"deployment": name})
        return run

    async def abort(self, project: str, name: str, user: str, *, wait_s: float = 20.0) -> CanaryRun:
        run = self.get(project, name)
        if run.phase == "promoting":
            raise Conflict(f"the canary of {project}/{name} is being promoted; to go back afterwards use "
                           f"`pier rollout undo {name}`", details={"phase": run.phase})
        if run.done:
            raise Conflict(f"the canary of {project}/{name} is not running (it {run.phase.replace('-', ' ')}: "
                           f"{run.message})", details={"phase": run.phase})
        run.abort_by = user
        if run.task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(run.task), wait_s)
        return run

    def runs(self) -> list[CanaryRun]:
        return list(self._runs.values())

    async def close(self) -> None:
        """Stop driving (the control plane shuts down); deployments stay as they are."""
        tasks = [r.task for r in self._runs.values() if r.task is not None and not r.task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- the first step (sync: runs in a worker thread) ------------------------------------------
    def _begin(self, project: str, name: str, request: CanaryRequest, user: str) -> CanaryRun:
        view = self._service.get(project, name)
        if view.record.deleting:
            raise Conflict(f"deployment {project}/{name} is being deleted")
        spec = view.revision.spec
        if spec.shadow is not None and spec.shadow.predictor == request.predictor:
            raise InvalidInput(f"predictor {request.predictor!r} is the shadow of {project}/{name}; name another "
                               "canary predictor with --predictor", details={"field": "predictor"})
        stables = [p for p in spec.predictors if p.name != request.predictor
                   and (spec.shadow is None or p.name != spec.shadow.predictor)]
        if len(stables) != 1:
            raise InvalidInput(f"a canary needs exactly one stable predictor besides {request.predictor!r}; "
                               f"{project}/{name} has {[p.name for p in stables]}",
                               details={"field": "predictor"})
        stable = stables[0]
        if stable.model is None:
            raise InvalidInput(f"the stable predictor {stable.name!r} runs a bundle; canaries need models")
        ModelRef.parse(request.to)  # InvalidReference (422) before anything is written
        canary = stable.model_copy(update={"name": request.predictor, "model": request.to, "bundle": None,
                                           "follow_alias": False})
        weight = request.steps[0]
        pinned = {p: v for p, v in view.revision.resolved.items() if p != request.predictor}
        result = self._service.apply_revision(
            project, name, _at_weight(spec, canary, stable.name, weight), created_by=user,
            cause=f"canary {request.to} at {weight}%", pinned=pinned)
        now = self._now()
        version = result.revision.resolved[request.predictor]
        run = CanaryRun(project=project, deployment=name, predictor=request.predictor, stable=stable.name,
                        to=request.to, version=version, stable_version=view.revision.resolved.get(stable.name, ""),
                        steps=request.steps, interval_s=request.interval_s, started_by=user, started_at=now,
                        weight=weight, revision=result.revision.number, updated_at=now)
        self._service.record_event(
            project, name, "Normal", "CanaryStarted",
            f"canary {request.predictor} ({version}) started by {user}: steps "
            f"{','.join(map(str, request.steps))}% every {request.interval_s:g}s against {stable.name} "
            f"({run.stable_version}); at {weight}% in revision {run.revision}", revision=run.revision)
        self._set(run, "progressing", f"step 1 of {len(run.steps)}: waiting for revision {run.revision} "
                                      f"({weight}% to {request.predictor}) to be ready")
        return run

    # -- the drive --------------------------------------------------------------------------------
    def _set(self, run: CanaryRun, phase: CanaryPhase, message: str) -> None:
        run.phase, run.message, run.updated_at = phase, message, self._now()
        if phase in DONE:
            run.finished_at = run.updated_at

    async def _event(self, run: CanaryRun, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        await asyncio.to_thread(self._service.record_event, run.project, run.deployment, type_, reason, message,
                                revision=run.revision)

    async def _drive(self, run: CanaryRun) -> None:
        try:
            for index, weight in enumerate(run.steps):
                if weight >= 100:
                    break
                if index > 0:
                    await self._step(run, index, weight)
                await self._wait_rolled_out(run)
                if not await self._analyze(run):
                    return
            await self._promote(run)
        except _Stop as stop:
            await self._finish(run, stop)
        except asyncio.CancelledError:
            self._set(run, "stopped", "the control plane stopped while the canary ran; the deployment stays at "
                                      f"{run.weight}% (see docs/canary.md)")
            raise
        except Exception as exc:
            message = exc.message if isinstance(exc, PierError) else f"{type(exc).__name__}: {exc}"
            log.exception("canary of %s/%s failed", run.project, run.deployment)
            await self._finish(run, _Stop("failed", f"the canary failed: {message}", roll_back=True))

    async def _finish(self, run: CanaryRun, stop: _Stop) -> None:
        message = stop.message
        if stop.roll_back:
            try:
                revision = await asyncio.to_thread(self._remove_canary, run, message)
                message += f"; rolled back: {run.stable} serves 100% ({run.stable_version})" + \
                    (f" in revision {revision}" if revision else "")
            except PierError as exc:
                message += f"; rolling back failed too: {exc.message}"
        self._set(run, stop.phase, message)
        reason = {"rolled-back": "CanaryRolledBack", "aborted": "CanaryAborted", "stopped": "CanaryStopped"}
        with contextlib.suppress(PierError):
            await self._event(run, "Warning", reason.get(stop.phase, "CanaryFailed"), message)

    def _remove_canary(self, run: CanaryRun, why: str) -> int | None:
        view = self._service.get(run.project, run.deployment)
        spec = view.revision.spec
        names = [p.name for p in spec.predictors]
        if run.predictor not in names or run.stable not in names:
            return None
        target = _without(spec, run.predictor, spec.predictor(run.stable))
        pinned = {p: v for p, v in view.revision.resolved.items() if p != run.predictor}
        result = self._service.apply_revision(run.project, run.deployment, target, created_by=run.started_by,
                                              cause=f"canary {run.to} rolled back: {why}"[:500], pinned=pinned)
        run.revision = result.revision.number
        return run.revision if result.created else None

    async def _step(self, run: CanaryRun, index: int, weight: int) -> None:
        def apply() -> int:
            view = self._latest_ours(run)
            spec = view.revision.spec
            target = _at_weight(spec, spec.predictor(run.predictor), run.stable, weight)
            result = self._service.apply_revision(run.project, run.deployment, target, created_by=run.started_by,
                                                  cause=f"canary {run.to} at {weight}%",
                                                  pinned=dict(view.revision.resolved))
            return result.revision.number

        run.revision = await asyncio.to_thread(apply)
        run.step, run.weight = index, weight
        self._set(run, "progressing", f"step {index + 1} of {len(run.steps)}: waiting for revision {run.revision} "
                                      f"({weight}% to {run.predictor}) to be ready")
        await self._event(run, "Normal", "CanaryStep", f"canary {run.predictor} moved to {weight}% "
                                                       f"({run.stable} {100 - weight}%) in revision {run.revision}")

    def _latest_ours(self, run: CanaryRun) -> DeploymentView:
        """The deployment, if its latest revision is still the driver's; else why the canary stops."""
        if run.abort_by is not None:
            raise _Stop("aborted", f"aborted by {run.abort_by} at {run.weight}%", roll_back=True)
        view = self._service.get(run.project, run.deployment)
        if view.record.deleting:
            raise _Stop("stopped", "the deployment is being deleted", roll_back=False)
        latest = view.revision
        if latest.number != run.revision:
            if latest.created_by == "reconciler" and latest.cause.startswith(ROLLBACK_CAUSE):
                raise _Stop("failed", f"revision {run.revision} never became ready: {latest.cause}", roll_back=True)
            raise _Stop("stopped", f"revision {latest.number} by {latest.created_by} ({latest.cause}) replaced the "
                                   f"canary's revision {run.revision}; the canary stops and leaves it as it is",
                        roll_back=False)
        return view

    async def _wait_rolled_out(self, run: CanaryRun) -> None:
        view = await asyncio.to_thread(self._latest_ours, run)
        deadline = self._now() + view.revision.spec.rollout.ready_timeout_seconds + _READY_GRACE_S
        while True:
            status = view.record.status
            if status.observed_revision is not None and status.observed_revision >= run.revision:
                return
            if self._now() > deadline:
                raise _Stop("failed", f"revision {run.revision} was not ready in time", roll_back=True)
            await self._sleep(self._poll)
            view = await asyncio.to_thread(self._latest_ours, run)

    async def _analyze(self, run: CanaryRun) -> bool:
        """Judge intervals of the current step until one is conclusive; False when the canary rolled back."""
        first_hold = True
        view = await asyncio.to_thread(self._latest_ours, run)
        while True:
            self._set(run, "analyzing", f"step {run.step + 1} of {len(run.steps)}: {run.weight}% to {run.predictor}, "
                                        f"judging the next {run.interval_s:g}s of traffic")
            deadline = self._now() + run.interval_s
            while self._now() < deadline:
                await self._sleep(min(self._poll, max(deadline - self._now(), 0.0)))
                view = await asyncio.to_thread(self._latest_ours, run)
            spec = view.revision.spec
            window = self._traffic.window(run.project, run.deployment, min(run.interval_s, self._traffic.retention_s))
            stable, canary = window.predictor(run.stable), window.predictor(run.predictor)
            verdict: CanaryVerdict = decide_canary(Sample(stable.requests, stable.errors, stable.p99_s),
                                                   Sample(canary.requests, canary.errors, canary.p99_s), spec.canary)
            run.results.append(StepResult(run.weight, verdict.kind, verdict.reason, PredictorTrafficWindow.of(stable),
                                          PredictorTrafficWindow.of(canary), self._now()))
            del run.results[:-100]  # bounded: a canary holding for hours keeps its last 100 judgements
            if isinstance(verdict, Hold):
                if first_hold:
                    await self._event(run, "Normal", "CanaryHold", f"step {run.weight}%: {verdict.reason}")
                first_hold = False
                continue
            if isinstance(verdict, Rollback):
                raise _Stop("rolled-back", f"canary {run.predictor} ({run.version}) failed at {run.weight}% on "
                                           f"{verdict.metric}: {verdict.reason}", roll_back=True)
            assert isinstance(verdict, PromoteStep)
            await self._event(run, "Normal", "CanaryStepPassed", f"step {run.weight}%: {verdict.reason}")
            return True

    async def _promote(self, run: CanaryRun) -> None:
        def apply() -> int:
            view = self._latest_ours(run)
            spec = view.revision.spec
            stable = spec.predictor(run.stable)
            follow = stable.follow_alias and ModelRef.parse(run.to).alias is not None
            promoted = stable.model_copy(update={"model": run.to, "follow_alias": follow})
            pinned = {p: v for p, v in view.revision.resolved.items() if p != run.predictor}
            pinned[run.stable] = run.version
            result = self._service.apply_revision(run.project, run.deployment,
                                                  _without(spec, run.predictor, promoted), created_by=run.started_by,
                                                  cause=f"canary {run.to} promoted", pinned=pinned)
            return result.revision.number

        run.revision = await asyncio.to_thread(apply)
        run.step, run.weight = len(run.steps) - 1, 100
        self._set(run, "promoting", f"promoting: {run.stable} rolls out {run.version} in revision {run.revision}; "
                                    f"{run.predictor} is removed")
        await self._wait_rolled_out(run)
        self._set(run, "promoted", f"promoted: {run.stable} serves {run.version} (revision {run.revision})")
        await self._event(run, "Normal", "CanaryPromoted", f"canary {run.version} promoted: predictor {run.stable} "
                                                           f"now runs it; predictor {run.predictor} removed "
                                                           f"(revision {run.revision})")
