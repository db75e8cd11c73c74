"""JSON shapes of the registry API, shared by the server routes and the API client (``sdk/control_api``).

One pydantic model per body; conversions to and from the frozen domain objects live here so the
two ends of the wire cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from modelpier.registry.domain import FileEntry, Flavor, Model, ModelVersion, NewVersion
from modelpier.registry.lock import EnvironmentLock, LockedPackage, LockSource
from modelpier.spec.bounds import Count, Id
from modelpier.spec.signature import Signature


class FileEntryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, max_length=1024)
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    size: Count


class NewVersionBody(BaseModel):
    """Body of ``POST /api/v1/models/{name}/versions``: files must be uploaded as blobs first."""

    model_config = ConfigDict(extra="forbid")

    flavor: Flavor
    files: list[FileEntryBody] = Field(min_length=1)
    signature: Signature | None = None
    input_example: Any = None
    metrics: dict[str, float] = Field(default_factory=dict)
    params: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    environment: dict[str, Any] = Field(default_factory=dict)
    created_by: str = "unknown"
    source: str | None = None

    def to_domain(self, model: str) -> NewVersion:
        return NewVersion(
            model=model, flavor=self.flavor,
            files=tuple(FileEntry(path=f.path, digest=f.digest, size=f.size) for f in self.files),
            signature=self.signature, input_example=self.input_example, metrics=dict(self.metrics),
            params=dict(self.params), tags=dict(self.tags), description=self.description,
            environment=dict(self.environment), created_by=self.created_by, source=self.source)

    @classmethod
    def from_version(cls, version: ModelVersion) -> NewVersionBody:
        """The body that re-creates ``version`` on another store (what push sends)."""
        return cls(
            flavor=version.flavor,
            files=[FileEntryBody(path=f.path, digest=f.digest, size=f.size) for f in version.files],
            signature=version.signature, input_example=version.input_example,
            metrics=version.metrics, params=version.params, tags=version.tags,
            description=version.description, environment=version.environment,
            created_by=version.created_by, source=version.source)


class VersionBody(BaseModel):
    model: str
    version: int
    ref: str
    flavor: Flavor
    digest: str
    size: int
    files: list[FileEntryBody]
    signature: Signature | None
    input_example: Any
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]
    description: str
    environment: dict[str, Any]
    created_by: str
    created_at: datetime
    source: str | None
    aliases: list[str]
    image: str | None = Field(None, description="The last OCI image `pier build image` pushed of this version, "
                                                "by digest.")

    @classmethod
    def of(cls, v: ModelVersion) -> VersionBody:
        return cls(
            model=v.model, version=v.version, ref=v.ref, flavor=v.flavor, digest=v.digest, size=v.size,
            files=[FileEntryBody(path=f.path, digest=f.digest, size=f.size) for f in v.files],
            signature=v.signature, input_example=v.input_example, metrics=v.metrics, params=v.params,
            tags=v.tags, description=v.description, environment=v.environment, created_by=v.created_by,
            created_at=v.created_at, source=v.source, aliases=list(v.aliases), image=v.image)

    def to_domain(self) -> ModelVersion:
        return ModelVersion(
            model=self.model, version=self.version, flavor=self.flavor, digest=self.digest,
            size=self.size,
            files=tuple(FileEntry(path=f.path, digest=f.digest, size=f.size) for f in self.files),
            signature=self.signature, input_example=self.input_example, metrics=self.metrics,
            params=self.params, tags=self.tags, description=self.description,
            environment=self.environment, created_by=self.created_by, created_at=self.created_at,
            source=self.source, aliases=tuple(self.aliases), image=self.image)


class CreatedVersionBody(VersionBody):
    created: bool = Field(description="False when a version with the same digest existed already.")


class ModelBody(BaseModel):
    name: str
    description: str
    tags: dict[str, str]
    created_at: datetime
    updated_at: datetime
    latest_version: int | None
    aliases: dict[str, int]
    version_count: int
    project: str = Field("default", description="The project whose registry holds it; names are unique per project.")

    @classmethod
    def of(cls, m: Model) -> ModelBody:
        return cls(name=m.name, description=m.description, tags=m.tags, created_at=m.created_at,
                   updated_at=m.updated_at, latest_version=m.latest_version, aliases=m.aliases,
                   version_count=m.version_count, project=m.project)

    def to_domain(self) -> Model:
        return Model(name=self.name, description=self.description, tags=self.tags,
                     created_at=self.created_at, updated_at=self.updated_at,
                     latest_version=self.latest_version, aliases=self.aliases,
                     version_count=self.version_count, project=self.project)


class ModelUpdateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = Field(max_length=10_000)


class AliasBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Id


class TagBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str = Field(max_length=5000)


class UploadBody(BaseModel):
    upload_id: str
    offset: int


class BlobBody(BaseModel):
    digest: str
    size: int


class CollectedBody(BaseModel):
    deleted: list[str] = Field(description="Digests of the blobs deleted.")


class LockedPackageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    version: str = Field(min_length=1, max_length=100)
    hashes: list[str] = Field(default_factory=list)


class LockBody(BaseModel):
    """A version's locked environment (``PUT``/``GET .../versions/{selector}/lock``); ``digest`` is
    computed by the server, never taken from a request."""

    model_config = ConfigDict(extra="forbid")

    python: str = Field(min_length=1, max_length=20)
    packages: list[LockedPackageBody] = Field(default_factory=list)
    source: LockSource = LockSource.USER
    digest: str | None = None

    @classmethod
    def of(cls, lock: EnvironmentLock) -> LockBody:
        return cls(python=lock.python, source=lock.source, digest=lock.digest,
                   packages=[LockedPackageBody(name=p.name, version=p.version, hashes=list(p.hashes))
                             for p in lock.packages])

    def to_domain(self) -> EnvironmentLock:
        return EnvironmentLock.of(self.python, (LockedPackage(p.name, p.version, tuple(p.hashes))
                                                for p in self.packages), self.source)
