"""The ``MetadataStore`` protocol: what the registry needs from a metadata database.

One contract test suite (``tests/integration/registry/test_metadata_store_contract.py``) runs against
every implementation. Implementations raise only ``modelpier.errors`` classes: ``NotFound`` for
unknown models/versions/aliases, ``StoreBusy`` when the database is locked.
"""

from __future__ import annotations

from typing import Protocol

from modelpier.registry.domain import Model, ModelVersion, NewVersion
from modelpier.spec.names import ModelRef


class MetadataStore(Protocol):
    def ensure_model(self, name: str, *, description: str = "", project: str = "default") -> Model:
        """Return the model, creating it (with ``description``, in ``project``) when it does not exist yet."""

    def get_model(self, name: str) -> Model: ...

    def list_models(self, *, search: str | None = None, project: str | None = None) -> list[Model]:
        """All models (of ``project``), by name; ``search`` is a case-insensitive substring of the name."""

    def update_model(self, name: str, *, description: str) -> Model: ...

    def delete_model(self, name: str) -> list[ModelVersion]:
        """Delete the model with all versions, aliases and tags; return the deleted versions."""

    def create_version(self, new: NewVersion) -> tuple[ModelVersion, bool]:
        """Register a version and return ``(version, created)``.

        Versions are numbered 1, 2, 3... per model. If a version with the same manifest digest
        exists already, return it with ``created=False`` instead (idempotent push). Safe under
        concurrent callers, in one process or many: each gets a consistent, distinct number or
        the same existing version.
        """

    def get_version(self, name: str, version: int) -> ModelVersion: ...

    def list_versions(self, name: str) -> list[ModelVersion]:
        """All versions of a model, oldest first."""

    def resolve(self, ref: ModelRef) -> ModelVersion:
        """The version a reference points at: a number, an alias, or the latest."""

    def delete_version(self, name: str, version: int) -> ModelVersion:
        """Delete a version (and the aliases pointing at it); return what was deleted."""

    def set_alias(self, name: str, alias: str, version: int) -> ModelVersion: ...

    def delete_alias(self, name: str, alias: str) -> None: ...

    def set_model_tag(self, name: str, key: str, value: str) -> Model: ...

    def delete_model_tag(self, name: str, key: str) -> Model: ...

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> ModelVersion: ...

    def delete_version_tag(self, name: str, version: int, key: str) -> ModelVersion: ...

    def storage_bytes(self, project: str) -> int:
        """Total size of every version of the project's models (what its storage quota counts)."""

    def count_blob_references(self, digest: str) -> int:
        """How many version files point at a blob digest (for deleting unreferenced blobs)."""

    def close(self) -> None: ...
