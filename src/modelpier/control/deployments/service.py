"""``DeploymentService``: the deployment use cases over a ``DeploymentStore`` and the ``Registry``.

The API routes and the alias poller call this; the reconciler reads what it writes. Every write
of desired state goes through ``_apply``: references are resolved against the registry first
(nothing is written when one does not resolve), then the store makes a revision or, for the same
spec and versions, nothing. Rollbacks and alias moves are applies of another ``RevisionKind``, with a
cause for people. Decisions over the history are pure functions in ``control/deployments/history.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from modelpier.backends.local.supervisor import refuse_local
from modelpier.control.deployments import history
from modelpier.control.deployments.logs import MAX_TAIL, LogSource, no_logs
from modelpier.control.deployments.quota import LimitsSource, require_within_quota
from modelpier.control.deployments.state import DeploymentRecord, DeploymentStore, Event, EventType, Revision
from modelpier.errors import AlreadyExists, Conflict, InvalidInput, InvalidSpec, NotFound, PierError
from modelpier.registry.domain import ModelVersion
from modelpier.registry.service import Registry
from modelpier.spec.deployment import (
    ModelDeployment,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    PredictorSpec,
    parse_deployment,
)
from modelpier.spec.names import ModelRef, validate_name
from modelpier.spec.revision import RevisionKind

log = logging.getLogger("modelpier.control.deployments")
# Models of the default project are the shared catalog every project may deploy (the quick start's
# iris lives there); models of any other project deploy only within it.
SHARED_PROJECT = "default"

# Who alias-driven revisions are recorded as created by.
SYSTEM_USER = "modelpier"


@dataclass(frozen=True, slots=True)
class ApplyResult:
    record: DeploymentRecord
    revision: Revision  # the latest revision: the new one, or the unchanged one
    created: bool


@dataclass(frozen=True, slots=True)
class DeploymentView:
    """A deployment as the API shows it: its record and the spec of its latest revision."""

    record: DeploymentRecord
    revision: Revision


class DeploymentService:
    def __init__(self, store: DeploymentStore, registry: Registry, *, log_source: LogSource | None = None,
                 limits: LimitsSource | None = None,
                 refuse: Callable[[ModelDeploymentSpec], None] = refuse_local) -> None:
        self.store = store
        # The backend's refusal of what it cannot run (``Backend.refuse``), checked on every apply, so a
        # field is never silently dropped; the local backend's unless the composition root passes its own.
        self._refuse = refuse
        self.registry = registry
        self._limits = limits  # the project's quota; None: unlimited
        self._log_source: LogSource = log_source or no_logs
        # Last alias-refresh failure reported per deployment, so a broken alias gives one warning
        # event, not one per poll.
        self._alias_failures: dict[tuple[str, str], str] = {}
        self._alias_deferred: dict[tuple[str, str], str] = {}  # the move last announced as waiting for a canary

    # -- projects -------------------------------------------------------------------------------
    def list_projects(self) -> list[str]:
        return self.store.list_projects()

    def create_project(self, name: str) -> None:
        """Create the project; ``AlreadyExists`` when it does (as creating a Kubernetes namespace)."""
        validate_name(name, what="project name")
        if name in self.store.list_projects():
            raise AlreadyExists(f"project {name!r} already exists", details={"project": name})
        self.store.ensure_project(name)

    def get_project(self, name: str) -> str:
        self._require_project(name)
        return name

    def delete_project(self, name: str) -> None:
        self.store.delete_project(name)

    def _require_project(self, project: str) -> None:
        if project not in self.store.list_projects():
            raise NotFound(f"project {project!r} does not exist; create it first (POST /api/v1/projects)",
                           details={"project": project})

    # -- desired state --------------------------------------------------------------------------
    def apply(self, project: str, document: ModelDeployment | ModelDeploymentSpec | Mapping[str, Any],
              created_by: str, *, name: str | None = None) -> ApplyResult:
        """Create or replace a deployment from a document (or a bare spec with ``name``).

        ``name`` and ``project`` are where it is applied (the URL); a document naming another
        deployment or project is refused with both names, as ``kubectl apply`` refuses a namespace
        mismatch. A document without ``metadata`` takes them from the call.
        """
        name, spec = self._spec_of(project, document, name)
        self._require_project(project)
        resolved = self.resolve(spec, project=project)
        result = self._apply(project, name, spec, resolved, created_by=created_by, kind=RevisionKind.APPLIED,
                             cause="applied")
        if result.created:
            self._event(result, "Normal", "RevisionCreated",
                        f"revision {result.revision.number} applied by {created_by}: {_versions(resolved)}")
        return result

    def _spec_of(self, project: str, document: ModelDeployment | ModelDeploymentSpec | Mapping[str, Any],
                 name: str | None) -> tuple[str, ModelDeploymentSpec]:
        if isinstance(document, ModelDeploymentSpec):
            if name is None:
                raise InvalidInput("a bare spec needs the deployment's name")
            return validate_name(name, what="deployment name"), document
        if not isinstance(document, ModelDeployment):
            if isinstance(document, Mapping) and "metadata" not in document and name is not None:
                document = {**document, "metadata": {"name": name}}
            document = parse_deployment(dict(document) if isinstance(document, Mapping) else document)
        meta = document.metadata
        if name is not None and meta.name != name:
            raise InvalidSpec(f"metadata.name {meta.name!r} in the document does not match the deployment "
                              f"{name!r} it is applied to", details={"field": "metadata.name"})
        if meta.project is not None and meta.project != project:
            raise InvalidSpec(f"metadata.project {meta.project!r} in the document does not match the project "
                              f"{project!r} it is applied to", details={"field": "metadata.project"})
        return meta.name, document.spec

    def resolve(self, spec: ModelDeploymentSpec, *, project: str | None = None) -> dict[str, str]:
        """``{predictor: "model:version"}`` for every predictor, as the registry resolves it now. With
        ``project``, only models of that project or of the shared ``default`` project resolve."""
        resolved = {}
        for i, predictor in enumerate(spec.predictors):
            field = f"spec.predictors.{i}"
            if predictor.bundle is not None:
                raise InvalidSpec(f"{field}.bundle: predictor {predictor.name!r} references bundle "
                                  f"{predictor.bundle!r}, but bundles cannot be deployed yet; use a model",
                                  details={"field": f"{field}.bundle", "predictor": predictor.name})
            ref = predictor.model_ref
            assert ref is not None  # the spec guarantees exactly one of model and bundle
            version = self._resolve_ref(ref, predictor.name, f"{field}.model", project)
            resolved[predictor.name] = _check_outputs(predictor, version, field).ref
        return resolved

    def _resolve_ref(self, ref: ModelRef, predictor: str, field: str, project: str | None = None) -> ModelVersion:
        try:
            # The project's own model, else the shared catalog's; another tenant's model is not
            # looked at, so it is answered exactly as a missing one.
            return self.registry.resolve_shared(ref, project=project or SHARED_PROJECT)
        except NotFound as exc:
            raise NotFound(f"{field}: predictor {predictor!r} references {str(ref)!r}, which does not resolve: "
                           f"{exc.message}",
                           details={"field": field, "predictor": predictor, "reference": str(ref)}) from exc

    def _apply(self, project: str, name: str, spec: ModelDeploymentSpec, resolved: dict[str, str], *,
               created_by: str, kind: RevisionKind, cause: str) -> ApplyResult:
        self._refuse(spec)
        if self._limits is not None:
            # An early refusal with the same message; the SQL store checks again inside its write
            # transaction, where two applies racing for the last of a quota cannot both pass.
            views = [v for v in self.list_deployments(project) if not v.record.deleting]
            others = [v.revision.spec for v in views if v.record.name != name]
            current = next((v.revision.spec for v in views if v.record.name == name), None)
            require_within_quota(others, current, spec, self._limits(project))
        record, revision, created = self.store.apply(project, name, spec, resolved=resolved,
                                                     created_by=created_by, kind=kind, cause=cause)
        return ApplyResult(record, revision, created)

    def rollback(self, project: str, name: str, to_revision: int | None, *, created_by: str) -> ApplyResult:
        """Re-apply an old revision's spec and versions as a new revision (``None``: the previous one)."""
        target = history.choose_rollback_target(self.store.revisions(project, name), to_revision)
        for predictor, ref in target.resolved.items():
            try:
                self.registry.resolve_shared(ModelRef.parse(ref), project=project)
            except NotFound as exc:
                raise Conflict(f"cannot roll back {project}/{name} to revision {target.number}: its predictor "
                               f"{predictor!r} ran {ref}, which is no longer in the registry",
                               details={"revision": target.number, "predictor": predictor}) from exc
        result = self._apply(project, name, target.spec, dict(target.resolved), created_by=created_by,
                             kind=RevisionKind.ROLLBACK, cause=history.rollback_cause(target.number))
        if result.created:
            self._event(result, "Normal", "RollbackRequested",
                        f"revision {result.revision.number} rolls back to revision {target.number} "
                        f"({_versions(target.resolved)}), requested by {created_by}")
        return result

    def delete(self, project: str, name: str) -> DeploymentRecord:
        """Ask for deletion; the reconciler stops the replicas and then purges the record."""
        before = self.store.get(project, name)
        self.store.request_delete(project, name)
        if not before.deleting:
            self.store.add_event(project, name, "Normal", "DeletionRequested", "deletion requested")
        return self.store.get(project, name)

    # -- reads ----------------------------------------------------------------------------------
    def get(self, project: str, name: str) -> DeploymentView:
        record = self.store.get(project, name)
        return DeploymentView(record, self.store.revision(project, name, record.latest_revision))

    def list_deployments(self, project: str | None = None) -> list[DeploymentView]:
        return [DeploymentView(r, self.store.revision(r.project, r.name, r.latest_revision))
                for r in self.store.list_deployments(project)]

    def status(self, project: str, name: str) -> ModelDeploymentStatus:
        return self.store.get(project, name).status

    def events(self, project: str, name: str, *, limit: int = 100) -> list[Event]:
        return self.store.events(project, name, limit=limit)

    def revisions(self, project: str, name: str) -> list[Revision]:
        return self.store.revisions(project, name)

    def revision(self, project: str, name: str, number: int) -> Revision:
        return self.store.revision(project, name, number)

    def logs(self, project: str, name: str, *, predictor: str | None, tail: int) -> list[str]:
        """The last ``tail`` lines per replica, ``[replica id]``-prefixed, from the backend's ``LogSource``."""
        if not 1 <= tail <= MAX_TAIL:
            raise InvalidInput(f"tail must be between 1 and {MAX_TAIL}, got {tail}")
        view = self.get(project, name)
        names = [p.name for p in view.revision.spec.predictors]
        if predictor is not None and predictor not in names:
            raise NotFound(f"deployment {project}/{name} has no predictor {predictor!r} (it has {names})")
        return list(self._log_source(project, name, predictor=predictor, tail=tail))

    # -- follow-alias ---------------------------------------------------------------------------
    def refresh_aliases(self, held: Callable[[str, str], bool] | None = None) -> list[ApplyResult]:
        """Roll out new revisions for deployments whose followed aliases moved; one pass.

        For each moved alias the new version is materialised into the local cache first, so the
        rollout that follows does not pay for the download. A deployment that fails (alias
        deleted, blob unreadable) gets one warning event and is retried on the next pass. A
        deployment ``held(project, name)`` (a canary runs on it) is left alone: the move gets one
        ``AliasMoveDeferred`` event and rolls out on the first pass after the hold ends.
        """
        results = []
        for record in self.store.list_deployments():
            if record.deleting:
                continue
            key = (record.project, record.name)
            try:
                result = self._refresh_one(record, held=held is not None and held(*key))
            except PierError as exc:
                if self._alias_failures.get(key) != exc.message:
                    self._alias_failures[key] = exc.message
                    log.warning("alias refresh of %s/%s failed: %s", *key, exc.message)
                    self._safe_event(record, "Warning", "AliasRefreshFailed", exc.message)
                continue
            self._alias_failures.pop(key, None)
            if result is not None:
                results.append(result)
        return results

    def _refresh_one(self, record: DeploymentRecord, *, held: bool = False) -> ApplyResult | None:
        latest = self.store.revision(record.project, record.name, record.latest_revision)
        current: dict[str, ModelVersion] = {}
        for i, p in enumerate(latest.spec.predictors):
            if p.follow_alias and p.model_ref is not None:
                current[p.name] = self._resolve_ref(p.model_ref, p.name, f"spec.predictors.{i}.model",
                                                    record.project)
        if not current:
            return None
        # Only a revision that pinned versions (a rollback, a canary step) needs the older history
        # (see history.alias_baseline).
        revisions = self.store.revisions(record.project, record.name) \
            if latest.kind.pins_versions else [latest]
        moves = history.plan_alias_moves(latest, history.alias_baseline(revisions),
                                         {p: v.ref for p, v in current.items()})
        key = (record.project, record.name)
        if not moves or not held:
            self._alias_deferred.pop(key, None)
        if not moves:
            return None
        cause = history.alias_moves_cause(moves)
        if held:
            if self._alias_deferred.get(key) != cause:
                self._alias_deferred[key] = cause
                self._safe_event(record, "Normal", "AliasMoveDeferred",
                                 f"{cause}: a canary runs, so it rolls out once the canary ends")
            return None
        for move in moves:
            self.registry.materialize(current[move.predictor])
        resolved = {**latest.resolved, **{m.predictor: m.new for m in moves}}
        result = self._apply(record.project, record.name, latest.spec, resolved, created_by=SYSTEM_USER,
                             kind=RevisionKind.ALIAS_FOLLOW, cause=cause)
        if result.created:
            log.info("%s/%s: %s; revision %d", record.project, record.name, cause, result.revision.number)
            self._event(result, "Normal", "AliasMoved", f"{cause}: revision {result.revision.number} rolls out")
        return result

    # -- events ---------------------------------------------------------------------------------
    def _event(self, result: ApplyResult, type: EventType, reason: str, message: str) -> None:
        self._safe_event(result.record, type, reason, message, revision=result.revision.number)

    def _safe_event(self, record: DeploymentRecord, type: EventType, reason: str, message: str, *,
                    revision: int | None = None) -> None:
        # The change is already stored; failing to narrate it must not fail the request.
        try:
            self.store.add_event(record.project, record.name, type, reason, message, revision=revision)
        except PierError as exc:
            log.warning("could not record event %s for %s/%s: %s", reason, record.project, record.name,
                        exc.message)

    # -- revisions made by the control plane itself (the canary driver) ---------------------------
    def apply_revision(self, project: str, name: str, spec: ModelDeploymentSpec, *, created_by: str,
                       kind: RevisionKind, cause: str, pinned: Mapping[str, str] | None = None) -> ApplyResult:
        """Store ``spec`` as the next revision of an existing deployment, recorded as ``kind`` with ``cause``.

        Predictors named in ``pinned`` keep the version given there (``"model:version"``, checked to
        still exist) instead of resolving their reference again, so an alias that moves meanwhile does
        not swap the version of a predictor under analysis; the others resolve as on apply. Quotas
        are checked as on apply.
        """
        pinned = pinned or {}
        view = self.get(project, name)
        if view.record.deleting:
            raise Conflict(f"deployment {project}/{name} is being deleted", details={"deployment": name})
        resolved = {}
        for i, p in enumerate(spec.predictors):
            ref = ModelRef.parse(pinned[p.name]) if p.name in pinned else p.model_ref
            if ref is None:
                raise InvalidSpec(f"spec.predictors.{i}.bundle: predictor {p.name!r} references a bundle, which "
                                  "cannot be deployed yet", details={"field": f"spec.predictors.{i}.bundle"})
            version = self._resolve_ref(ref, p.name, f"spec.predictors.{i}.model", project)
            resolved[p.name] = _check_outputs(p, version, f"spec.predictors.{i}").ref
        return self._apply(project, name, spec, resolved, created_by=created_by, kind=kind, cause=cause)

    def record_event(self, project: str, name: str, type: EventType, reason: str, message: str, *,
                     revision: int | None = None) -> None:
        """Add an event to a deployment's history (what ``pier describe`` shows); never fails the caller."""
        self._safe_event(self.store.get(project, name), type, reason, message, revision=revision)


def _versions(resolved: Mapping[str, str]) -> str:
    return ", ".join(f"{p}={ref}" for p, ref in sorted(resolved.items()))


def _check_outputs(predictor: PredictorSpec, version: ModelVersion, field: str) -> ModelVersion:
    """Refuse default ``outputs`` the model's recorded signature lacks (a replica could not load them)."""
    known = [o.name for o in version.signature.outputs] if version.signature is not None else []
    unknown = [o for o in predictor.outputs or () if known and o not in known]
    if unknown:
        raise InvalidSpec(f"{field}.outputs: model {version.ref} has no output {unknown[0]!r}; its outputs are "
                          f"{known}", details={"field": f"{field}.outputs", "predictor": predictor.name,
                                               "outputs": known})
    return version
