"""``CanaryDriver``: runs progressive canaries inside the control plane, so they outlive the CLI, and
resumes them after the control plane restarts.

``start`` checks the request and makes the first revision at once (so a bad reference or an
exceeded quota is the caller's 4xx); a task then drives the canary on the control plane's event
loop. Per step: make a revision with the canary at the step's weight (the stable predictor takes
the rest), wait until it is rolled out, let one interval of traffic pass, and ask
``decide_canary`` about that interval's stats from the ``TrafficStore``: hold (another interval),
next step, or roll back. After the last step below 100 the canary is promoted: the stable predictor
takes the canary's model version and the canary predictor goes (one more revision). A rollback
removes the canary predictor, with an event naming the metric that failed. Every transition is an
event, so ``pier describe`` tells the story.

Durability. Every transition is written to the ``CanaryStore`` before the drive acts on the next
one, and a revision the driver is about to make is written down first (``PendingApply``), then its
number once made. ``resume`` (at control-plane start) loads the runs that are not done and asks
``canary_resume.decide_resume`` what to do with each given the deployment as it is now: carry on,
make the pending revision (it never happened), adopt it (it happened; its number was not written
yet), or end the run. A resumed step waits for its revision to be rolled out and judges a fresh
full interval: the traffic store is in memory and restarts empty. Stopping the control plane
cancels the drives without writing anything, so they resume where they stood.

A deployment changed by someone else while a canary runs stops the canary, untouched; one the
reconciler rolled back (the canary never became ready) is a failed canary and is rolled back. When
that change kept the canary predictor, the stop says so and ``abort`` still removes it, so no split
outlives its canary. Followed aliases do not move under a running canary: the alias poller holds
their moves (``running``) until it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from modelpier._lib.clock import Clock
from modelpier.control.canary.plan import CanaryVerdict, Hold, PromoteStep, Rollback, Sample, decide_canary
from modelpier.control.canary.resume import (
    Adopt,
    Finish,
    LatestRevision,
    Redo,
    ResumeDecision,
    decide_resume,
    judge_replaced,
)
from modelpier.control.canary.state import (
    DONE,
    CanaryPhase,
    CanaryRecord,
    CanaryRequest,
    CanaryStore,
    EndPhase,
    PendingApply,
    StepResult,
)
from modelpier.control.deployments.service import DeploymentService, DeploymentView
from modelpier.control.deployments.state import Revision
from modelpier.control.traffic.store import TrafficStore
from modelpier.errors import Conflict, InvalidInput, NotFound, PierError
from modelpier.spec.deployment import ModelDeploymentSpec, PredictorSpec
from modelpier.spec.names import ModelRef
from modelpier.spec.revision import RevisionKind

log = logging.getLogger("modelpier.control.canary")

# Waiting for a step's revision to be rolled out, beyond the spec's readyTimeoutSeconds (after which the
# reconciler itself rolls a revision back, which the driver notices).
_READY_GRACE_S = 30.0
# Judgements kept per run: a canary holding for hours keeps its last 100.
_MAX_RESULTS = 100


@dataclass(slots=True)
class CanaryRun:
    """A run as the driver holds it while it drives it; ``record()`` is what the store keeps."""

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
    pending: PendingApply | None = None
    id: int = 0
    task: asyncio.Task[None] | None = None
    # Saves of one run go one after the other, each writing the run as it is then: a later state never
    # lands before an earlier one.
    saving: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def done(self) -> bool:
        return self.phase in DONE

    def record(self) -> CanaryRecord:
        return CanaryRecord(
            project=self.project, deployment=self.deployment, predictor=self.predictor, stable=self.stable,
            to=self.to, version=self.version, stable_version=self.stable_version, steps=self.steps,
            interval_s=self.interval_s, started_by=self.started_by, started_at=self.started_at, phase=self.phase,
            step=self.step, weight=self.weight, revision=self.revision, message=self.message,
            updated_at=self.updated_at, finished_at=self.finished_at, results=tuple(self.results),
            abort_by=self.abort_by, pending=self.pending, id=self.id)

    @classmethod
    def of(cls, r: CanaryRecord) -> CanaryRun:
        return cls(project=r.project, deployment=r.deployment, predictor=r.predictor, stable=r.stable, to=r.to,
                   version=r.version, stable_version=r.stable_version, steps=r.steps, interval_s=r.interval_s,
                   started_by=r.started_by, started_at=r.started_at, phase=r.phase, step=r.step, weight=r.weight,
                   revision=r.revision, message=r.message, updated_at=r.updated_at, finished_at=r.finished_at,
                   results=list(r.results), abort_by=r.abort_by, pending=r.pending, id=r.id)


class _Stop(Exception):  # control flow inside the drive, never leaves this module
    def __init__(self, phase: EndPhase, message: str, *, roll_back: bool) -> None:
        super().__init__(message)
        self.phase, self.message, self.roll_back = phase, message, roll_back

    @classmethod
    def of(cls, finish: Finish) -> _Stop:
        return cls(finish.phase, finish.message, roll_back=finish.roll_back)


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
    """Drives the canaries of one control plane; ``store`` is the driver's own (``close`` closes it)."""

    def __init__(self, service: DeploymentService, traffic: TrafficStore, clock: Clock, store: CanaryStore, *,
                 poll_s: float = 0.5, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._service, self._traffic, self._clock, self._store = service, traffic, clock, store
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
        run = await asyncio.to_thread(self._prepare, project, name, request, user)
        try:
            revision = await asyncio.to_thread(self._make_revision, run)
        except Exception as exc:
            # Refused (a bad reference, a quota, a change in between): nothing happened, so no run is kept.
            with contextlib.suppress(PierError):
                await asyncio.to_thread(self._store.discard, run.id)
            if isinstance(exc, _Stop):
                raise Conflict(f"{project}/{name} changed while the canary started ({exc.message}); nothing was "
                               "changed, start it again", details={"deployment": name}) from None
            raise
        self._runs[key] = run
        try:
            await self._made(run, revision)
        except PierError as exc:
            # The revision is made; the drive writes the run down at its next transition (and a restart
            # before that adopts the revision: it is the one the stored run has pending).
            log.warning("canary of %s/%s: could not write its start down: %s", project, name, exc.message)
        run.task = asyncio.create_task(self._drive(run), name=f"canary {project}/{name}")
        return run

    async def resume(self) -> list[CanaryRun]:
        """Drive on the runs a previous control plane left not done (at start-up; see the module docstring)."""
        try:
            records = await asyncio.to_thread(self._store.unfinished)
        except PierError as exc:
            # The control plane still starts; the runs stay stored and the next start resumes them.
            log.error("could not read the canaries to resume: %s", exc.message)
            return []
        resumed = []
        for record in records:
            key = (record.project, record.deployment)
            current = self._runs.get(key)
            if current is not None and not current.done:
                continue
            run = CanaryRun.of(record)
            self._runs[key] = run
            run.task = asyncio.create_task(self._drive(run, resumed=True), name=f"canary {key[0]}/{key[1]}")
            resumed.append(run)
        if resumed:
            log.info("resuming %d canary run(s): %s", len(resumed),
                     ", ".join(f"{r.project}/{r.deployment}" for r in resumed))
        return resumed

    def get(self, project: str, name: str) -> CanaryRun:
        """The running or latest canary of the deployment: driven here, else as the store keeps it."""
        run = self._runs.get((project, name))
        if run is not None:
            return run
        record = self._store.latest(project, name)  # NotFound for an unknown deployment
        if record is None:
            raise NotFound(f"no canary of {project}/{name} has run", details={"deployment": name})
        return CanaryRun.of(record)

    def running(self, project: str, name: str) -> bool:
        """Is a canary of the deployment being driven here now? (The alias poller holds its moves meanwhile.)"""
        run = self._runs.get((project, name))
        return run is not None and not run.done

    async def abort(self, project: str, name: str, user: str, *, wait_s: float = 20.0) -> CanaryRun:
        run = self.get(project, name)
        if run.phase == "promoting":
            raise Conflict(f"the canary of {project}/{name} is being promoted; to go back afterwards use "
                           f"`pier rollout undo {name}`", details={"phase": run.phase})
        if run.done and await asyncio.to_thread(self._leftover, run):
            return await self._clear_leftover(run, user)
        if run.done:
            raise Conflict(f"the canary of {project}/{name} is not running (it {run.phase.replace('-', ' ')}: "
                           f"{run.message})", details={"phase": run.phase})
        run.abort_by = user
        try:
            await self._save(run)  # an abort asked for just before a restart is carried out after it
        except PierError as exc:
            log.warning("canary of %s/%s: could not write the abort down: %s", project, name, exc.message)
        if run.task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(run.task), wait_s)
        return run

    def runs(self) -> list[CanaryRun]:
        return list(self._runs.values())

    async def suspend(self) -> None:
        """Stop driving (this control plane no longer leads); deployments and stored runs stay as they are,
        and the next leader resumes the runs (so does this one when it leads again)."""
        await self._cancel_drives()
        self._runs = {k: r for k, r in self._runs.items() if r.done}  # resumed runs are read again from the store

    async def _cancel_drives(self) -> None:
        tasks = [r.task for r in self._runs.values() if r.task is not None and not r.task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def close(self) -> None:
        """Stop driving (the control plane shuts down) and close the store; deployments and stored runs stay
        as they are, and the next start resumes the runs."""
        await self._cancel_drives()
        self._store.close()

    # -- starting (sync: runs in a worker thread) -------------------------------------------------
    def _prepare(self, project: str, name: str, request: CanaryRequest, user: str) -> CanaryRun:
        """Check the request against the deployment and store the run, its first revision pending."""
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
        now, weight = self._now(), request.steps[0]
        run = CanaryRun(project=project, deployment=name, predictor=request.predictor, stable=stable.name,
                        to=request.to, version="", stable_version=view.revision.resolved.get(stable.name, ""),
                        steps=request.steps, interval_s=request.interval_s, started_by=user, started_at=now,
                        weight=weight, revision=view.revision.number, updated_at=now,
                        message="starting: making the first revision",
                        pending=PendingApply("start", cause=f"canary {request.to} at {weight}%", weight=weight))
        run.id = self._store.begin(run.record())  # Conflict while another run of the deployment is going
        return run

    # -- revisions the driver makes ---------------------------------------------------------------
    def _make_revision(self, run: CanaryRun) -> Revision:
        """Make the revision ``run.pending`` describes (a start, a step or the promotion), from the
        deployment's latest revision, which must still be the run's. Sync: runs in a worker thread."""
        pending = run.pending
        assert pending is not None
        assert pending.action != "rollback"
        view = self._latest_ours(run)
        spec, resolved = view.revision.spec, view.revision.resolved
        if pending.action == "promote":
            stable = spec.predictor(run.stable)
            follow = stable.follow_alias and ModelRef.parse(run.to).alias is not None
            target = _without(spec, run.predictor, stable.model_copy(update={"model": run.to, "follow_alias": follow}))
            pinned = {p: v for p, v in resolved.items() if p != run.predictor}
            pinned[run.stable] = run.version
        elif pending.action == "start":
            canary = spec.predictor(run.stable).model_copy(update={"name": run.predictor, "model": run.to,
                                                                   "bundle": None, "follow_alias": False})
            target = _at_weight(spec, canary, run.stable, pending.weight)
            pinned = {p: v for p, v in resolved.items() if p != run.predictor}
        else:
            target = _at_weight(spec, spec.predictor(run.predictor), run.stable, pending.weight)
            pinned = dict(resolved)
        kind = RevisionKind.CANARY_PROMOTE if pending.action == "promote" else RevisionKind.CANARY_STEP
        result = self._service.apply_revision(run.project, run.deployment, target, created_by=run.started_by,
                                              kind=kind, cause=pending.cause, pinned=pinned)
        return result.revision

    async def _make(self, run: CanaryRun, pending: PendingApply | None = None) -> None:
        """Write ``pending`` down, make its revision, then write the run with that revision. Without
        ``pending``: make the one the run already has pending (a resumed run whose revision never came)."""
        if pending is not None:
            run.pending = pending
            await self._save(run)
        revision = await asyncio.to_thread(self._make_revision, run)
        await self._made(run, revision)

    async def _made(self, run: CanaryRun, revision: Revision) -> None:
        """``revision`` is the one ``run.pending`` asked for: take it, write the run, tell the story."""
        pending = run.pending
        assert pending is not None
        run.revision, run.pending = revision.number, None
        if pending.action == "promote":
            run.step, run.weight = len(run.steps) - 1, 100
            await self._transition(run, "promoting", f"promoting: {run.stable} rolls out {run.version} in revision "
                                                     f"{run.revision}; {run.predictor} is removed")
            return
        run.step, run.weight = pending.step, pending.weight
        if pending.action == "start":
            run.version = revision.resolved.get(run.predictor, run.version)
        await self._transition(run, "progressing", f"step {run.step + 1} of {len(run.steps)}: waiting for revision "
                                                   f"{run.revision} ({run.weight}% to {run.predictor}) to be ready")
        if pending.action == "start":
            await self._event(run, "Normal", "CanaryStarted",
                              f"canary {run.predictor} ({run.version}) started by {run.started_by}: steps "
                              f"{','.join(map(str, run.steps))}% every {run.interval_s:g}s against {run.stable} "
                              f"({run.stable_version}); at {run.weight}% in revision {run.revision}")
        else:
            await self._event(run, "Normal", "CanaryStep", f"canary {run.predictor} moved to {run.weight}% "
                                                           f"({run.stable} {100 - run.weight}%) in revision "
                                                           f"{run.revision}")

    def _remove_canary(self, run: CanaryRun, why: str) -> int | None:
        """The rollback revision: the canary predictor goes, the stable one serves everything; its number, or
        ``None`` when there was no canary predictor left to remove."""
        view = self._service.get(run.project, run.deployment)
        spec = view.revision.spec
        names = [p.name for p in spec.predictors]
        if run.predictor not in names or run.stable not in names:
            return None
        target = _without(spec, run.predictor, spec.predictor(run.stable))
        pinned = {p: v for p, v in view.revision.resolved.items() if p != run.predictor}
        result = self._service.apply_revision(run.project, run.deployment, target, created_by=run.started_by,
                                              kind=RevisionKind.CANARY_ROLLBACK,
                                              cause=f"canary {run.to} rolled back: {why}"[:500], pinned=pinned)
        return result.revision.number if result.created else None

    def _leftover(self, run: CanaryRun) -> bool:
        """Does the deployment still split traffic to the (ended) run's canary predictor?"""
        try:
            names = [p.name for p in self._service.get(run.project, run.deployment).revision.spec.predictors]
        except PierError:  # gone, or the store cannot tell now: nothing to point at
            return False
        return run.predictor in names and run.stable in names

    async def _clear_leftover(self, run: CanaryRun, user: str) -> CanaryRun:
        """An abort of an ended canary whose predictor was left in the spec (a change by someone else kept it):
        remove it, so no split outlives its canary."""
        why = f"aborted by {user} after it {run.phase.replace('-', ' ')}"
        revision = await asyncio.to_thread(self._remove_canary, run, why)
        if revision is not None:
            run.revision = revision
        await self._transition(run, "aborted", f"{why}: {run.predictor} removed, {run.stable} serves 100%"
                                               + (f" in revision {revision}" if revision else ""))
        self._runs[(run.project, run.deployment)] = run
        with contextlib.suppress(PierError):
            await self._event(run, "Warning", "CanaryAborted", run.message)
        return run

    # -- the drive --------------------------------------------------------------------------------
    async def _save(self, run: CanaryRun) -> None:
        async with run.saving:
            await asyncio.to_thread(self._store.save, run.record())

    async def _transition(self, run: CanaryRun, phase: CanaryPhase, message: str) -> None:
        run.phase, run.message, run.updated_at = phase, message, self._now()
        if phase in DONE:
            run.finished_at = run.updated_at
        await self._save(run)

    async def _event(self, run: CanaryRun, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        await asyncio.to_thread(self._service.record_event, run.project, run.deployment, type_, reason, message,
                                revision=run.revision)

    async def _drive(self, run: CanaryRun, *, resumed: bool = False) -> None:
        try:
            if resumed:
                await self._resume(run)
            while run.phase != "promoting":
                await self._wait_rolled_out(run)
                await self._analyze(run)
                following = run.step + 1
                if following < len(run.steps) and run.steps[following] < 100:
                    await self._make(run, PendingApply("step", cause=f"canary {run.to} at {run.steps[following]}%",
                                                       step=following, weight=run.steps[following]))
                else:
                    await self._promote(run)
            await self._wait_rolled_out(run)
            await self._transition(run, "promoted", f"promoted: {run.stable} serves {run.version} (revision "
                                                    f"{run.revision})")
            await self._event(run, "Normal", "CanaryPromoted", f"canary {run.version} promoted: predictor "
                                                               f"{run.stable} now runs it; predictor {run.predictor} "
                                                               f"removed (revision {run.revision})")
        except _Stop as stop:
            await self._finish(run, stop)
        except asyncio.CancelledError:
            # The control plane stops: nothing is written, so the next start resumes the run where it stood.
            raise
        except Exception as exc:
            message = exc.message if isinstance(exc, PierError) else f"{type(exc).__name__}: {exc}"
            log.exception("canary of %s/%s failed", run.project, run.deployment)
            await self._finish(run, _Stop("failed", f"the canary failed: {message}", roll_back=True))

    async def _resume(self, run: CanaryRun) -> None:
        """A run a previous control plane left not done: decide what to do with it, and do it."""
        decision = await asyncio.to_thread(self._decide_resume, run)
        if isinstance(decision, Finish):
            raise _Stop.of(decision)
        if isinstance(decision, Redo):
            assert run.pending is not None
            what = f"making the revision it was about to make ({run.pending.cause})"
        elif isinstance(decision, Adopt):
            what = f"revision {decision.revision} was made before the restart"
        elif run.phase == "promoting":
            what = f"waiting for the promotion's revision {run.revision} to be rolled out"
        else:
            what = (f"at step {run.step + 1} of {len(run.steps)} ({run.weight}%, revision {run.revision}): a fresh "
                    f"{run.interval_s:g}s interval is judged once the revision is rolled out")
        await self._event(run, "Normal", "CanaryResumed", f"canary {run.predictor} ({run.version or run.to}) resumed "
                                                          f"after a control-plane restart: {what}")
        if isinstance(decision, Redo):
            await self._make(run)
        elif isinstance(decision, Adopt):
            await self._made(run, await asyncio.to_thread(self._service.revision, run.project, run.deployment,
                                                          decision.revision))

    def _decide_resume(self, run: CanaryRun) -> ResumeDecision:
        try:
            view = self._service.get(run.project, run.deployment)
        except NotFound:
            return decide_resume(run.revision, run.started_by, run.pending, None)
        latest = view.revision
        return decide_resume(run.revision, run.started_by, run.pending,
                             LatestRevision(latest.number, latest.created_by, latest.kind, latest.cause),
                             deleting=view.record.deleting)

    async def _finish(self, run: CanaryRun, stop: _Stop) -> None:
        message = stop.message
        if stop.roll_back:
            # Written down first: a restart in the middle finishes the rollback (canary_resume).
            run.pending = PendingApply("rollback", phase=stop.phase, message=stop.message)
            with contextlib.suppress(PierError):
                await self._save(run)
            try:
                revision = await asyncio.to_thread(self._remove_canary, run, message)
                if revision is not None:
                    run.revision = revision
                message += f"; rolled back: {run.stable} serves 100% ({run.stable_version})" + \
                    (f" in revision {revision}" if revision else "")
            except PierError as exc:
                message += f"; rolling back failed too: {exc.message}"
        elif await asyncio.to_thread(self._leftover, run):
            message += (f"; predictor {run.predictor} is still in the spec: `pier rollout canary {run.deployment} "
                        "--abort` removes it")
        run.pending = None
        try:
            await self._transition(run, stop.phase, message)
        except PierError as exc:
            log.warning("canary of %s/%s: could not write its end down: %s", run.project, run.deployment,
                        exc.message)
        reason = {"rolled-back": "CanaryRolledBack", "aborted": "CanaryAborted", "stopped": "CanaryStopped"}
        with contextlib.suppress(PierError):
            await self._event(run, "Warning", reason.get(stop.phase, "CanaryFailed"), message)

    def _latest_ours(self, run: CanaryRun) -> DeploymentView:
        """The deployment, if its latest revision is still the driver's; else why the canary stops."""
        if run.abort_by is not None:
            raise _Stop("aborted", f"aborted by {run.abort_by} at {run.weight}%", roll_back=True)
        view = self._service.get(run.project, run.deployment)
        if view.record.deleting:
            raise _Stop("stopped", "the deployment is being deleted", roll_back=False)
        latest = view.revision
        if latest.number != run.revision:
            raise _Stop.of(judge_replaced(run.revision, LatestRevision(latest.number, latest.created_by,
                                                                       latest.kind, latest.cause)))
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

    async def _analyze(self, run: CanaryRun) -> None:
        """Judge intervals of the current step until one says the next step; ``_Stop`` when it says roll back."""
        first_hold = True
        view = await asyncio.to_thread(self._latest_ours, run)
        while True:
            await self._transition(run, "analyzing", f"step {run.step + 1} of {len(run.steps)}: {run.weight}% to "
                                                     f"{run.predictor}, judging the next {run.interval_s:g}s of "
                                                     "traffic")
            deadline = self._now() + run.interval_s
            while self._now() < deadline:
                await self._sleep(min(self._poll, max(deadline - self._now(), 0.0)))
                view = await asyncio.to_thread(self._latest_ours, run)
            spec = view.revision.spec
            window = self._traffic.window(run.project, run.deployment, min(run.interval_s, self._traffic.retention_s))
            stable, canary = window.predictor(run.stable), window.predictor(run.predictor)
            verdict: CanaryVerdict = decide_canary(Sample(stable.requests, stable.errors, stable.p99_s),
                                                   Sample(canary.requests, canary.errors, canary.p99_s), spec.canary)
            run.results.append(StepResult(run.weight, verdict.kind, verdict.reason, stable.summary(), canary.summary(),
                                          self._now()))
            del run.results[:-_MAX_RESULTS]
            if isinstance(verdict, Rollback):
                raise _Stop("rolled-back", f"canary {run.predictor} ({run.version}) failed at {run.weight}% on "
                                           f"{verdict.metric}: {verdict.reason}", roll_back=True)
            await self._save(run)  # the verdict, before acting on it
            if isinstance(verdict, Hold):
                if first_hold:
                    await self._event(run, "Normal", "CanaryHold", f"step {run.weight}%: {verdict.reason}")
                first_hold = False
                continue
            assert isinstance(verdict, PromoteStep)
            await self._event(run, "Normal", "CanaryStepPassed", f"step {run.weight}%: {verdict.reason}")
            return

    async def _promote(self, run: CanaryRun) -> None:
        # "promoting" from the moment the promotion is written down: an abort is refused from then on, so it
        # cannot race the revision that gives the stable predictor the canary's version.
        run.phase, run.message = "promoting", f"promoting: {run.stable} takes {run.version}"
        await self._make(run, PendingApply("promote", cause=f"canary {run.to} promoted"))
