"""JSON bodies of the projects and deployments API, shared by the routes, the client and the CLI.

Deployment bodies use camelCase like the ``ModelDeployment`` document they carry (Kubernetes
style); ``of(...)`` builds each from the service's frozen objects.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from modelpier.control.deployments.service import ApplyResult, DeploymentView
from modelpier.control.deployments.state import Event, EventType, Revision
from modelpier.spec.bounds import Id
from modelpier.spec.deployment import API_VERSION, KIND, ModelDeploymentSpec, ModelDeploymentStatus
from modelpier.spec.revision import RevisionKind


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class ProjectBody(_Wire):
    name: str


class NewProjectBody(_Wire):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Project name (DNS-1123 label).")


class RollbackBody(_Wire):
    model_config = ConfigDict(extra="forbid")

    revision: Id | None = Field(None, description="Revision to roll back to; default: the previous one.")


class DeploymentMetaBody(_Wire):
    name: str
    project: str
    revision: int = Field(description="The latest (desired) revision.")
    serving_revision: int | None = Field(None, description="The last revision that became fully ready.")
    deleting: bool = Field(description="Deletion was requested; replicas are being stopped.")
    created_at: datetime
    updated_at: datetime


class DeploymentBody(_Wire):
    """A deployment: the spec of its latest revision, the versions it resolved to, and its status."""

    api_version: str = API_VERSION
    kind: str = KIND
    metadata: DeploymentMetaBody
    spec: ModelDeploymentSpec
    resolved: dict[str, str] = Field(description="Predictor → model version of the latest revision.")
    status: ModelDeploymentStatus

    @classmethod
    def of(cls, view: DeploymentView) -> DeploymentBody:
        r = view.record
        meta = DeploymentMetaBody(name=r.name, project=r.project, revision=r.latest_revision,
                                  serving_revision=r.serving_revision, deleting=r.deleting,
                                  created_at=r.created_at, updated_at=r.updated_at)
        return cls(metadata=meta, spec=view.revision.spec, resolved=view.revision.resolved, status=r.status)


class RevisionBody(_Wire):
    number: int
    spec: ModelDeploymentSpec
    resolved: dict[str, str]
    created_at: datetime
    created_by: str
    kind: RevisionKind = Field(description="Which writer made it: applied, rollback, auto-rollback (the reconciler: "
                                           "the revision never became ready), alias-follow, canary-step, "
                                           "canary-promote or canary-rollback.")
    cause: str = Field(description="Why, in words: `rollback to revision 2`, `canary iris:7 at 10%`.")

    @classmethod
    def of(cls, revision: Revision) -> RevisionBody:
        return cls(number=revision.number, spec=revision.spec, resolved=revision.resolved,
                   created_at=revision.created_at, created_by=revision.created_by, kind=revision.kind,
                   cause=revision.cause)


class ApplyResultBody(_Wire):
    created: bool = Field(description="Whether a new revision was made (false: the same spec and versions).")
    revision: RevisionBody
    deployment: DeploymentBody

    @classmethod
    def of(cls, result: ApplyResult) -> ApplyResultBody:
        return cls(created=result.created, revision=RevisionBody.of(result.revision),
                   deployment=DeploymentBody.of(DeploymentView(result.record, result.revision)))


class EventBody(_Wire):
    time: datetime
    type: EventType
    reason: str
    message: str
    revision: int | None = None

    @classmethod
    def of(cls, event: Event) -> EventBody:
        return cls(time=event.time, type=event.type, reason=event.reason, message=event.message,
                   revision=event.revision)


class LogsBody(_Wire):
    lines: list[str] = Field(description="Oldest first per replica, each prefixed with [replica id].")
