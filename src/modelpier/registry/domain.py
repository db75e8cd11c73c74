"""Frozen domain objects the registry hands out; the ORM never leaves ``registry/sql``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from modelpier.registry.lock import EnvironmentLock, lock_of
from modelpier.spec.signature import Signature


class Flavor(StrEnum):
    SKLEARN = "sklearn"
    XGBOOST = "xgboost"
    LIGHTGBM = "lightgbm"
    ONNX = "onnx"
    TORCH = "torch"
    MLFLOW = "mlflow"
    PYTHON = "python"


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a version's artifact: its path inside the artifact and its blob."""

    path: str
    digest: str  # "sha256:<64 hex>"
    size: int


@dataclass(frozen=True, slots=True)
class NewVersion:
    """What a caller supplies to register a version; the store assigns the number unless ``number`` is
    given (a pull keeps the remote's)."""

    model: str
    flavor: Flavor
    files: tuple[FileEntry, ...]
    signature: Signature | None = None
    input_example: Any = None
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    environment: dict[str, Any] = field(default_factory=dict)
    created_by: str = "unknown"
    source: str | None = None
    number: int | None = None  # keep this version number (``pier models pull``); None: the model's next one

    @property
    def digest(self) -> str:
        from modelpier.registry.digests import manifest_digest

        return manifest_digest(self.files)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True, slots=True)
class ModelVersion:
    model: str
    version: int
    flavor: Flavor
    digest: str  # manifest digest: sha256 over the sorted (path, digest) list
    size: int
    files: tuple[FileEntry, ...]
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
    aliases: tuple[str, ...] = ()
    # The last OCI image `pier build image` pushed of this version, by digest:
    # "ghcr.io/acme/iris@sha256:…" (docs/images.md).
    image: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.model}:{self.version}"

    @property
    def lock(self) -> EnvironmentLock | None:
        """The locked environment of this version (``environment["lock"]``), if one was recorded."""
        return lock_of(self.environment)


@dataclass(frozen=True, slots=True)
class Model:
    name: str
    description: str
    tags: dict[str, str]
    created_at: datetime
    updated_at: datetime
    latest_version: int | None
    aliases: dict[str, int]
    version_count: int = 0
    project: str = "default"
