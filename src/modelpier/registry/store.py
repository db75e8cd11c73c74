"""The ``MetadataStore`` protocol: what the registry needs from a metadata database.

One contract test suite (``tests/integration/registry/test_metadata_store_contract.py``) runs against
every implementation. Implementations raise only ``modelpier.errors`` classes: ``NotFound`` for
unknown models/versions/aliases, ``StoreBusy`` when the database is locked.

Models belong to a project and a name is unique within its project: every call about one model
names its project (default ``default``), and a model of another project is exactly as absent as a
missing one. Blobs are shared by every project (content-addressed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from modelpier.registry.domain import Model, ModelVersion, NewVersion
from modelpier.spec.names import ModelRef

DEFAULT_PROJECT = "default"

# Asked inside ``create_version``'s transaction with (bytes the project stores, bytes the new version
# adds); raises to refuse the version, which then is not stored.
Admission = Callable[[int, int], None]


class MetadataStore(Protocol):
    def ensure_model(self, name: str, *, description: str = "", project: str = DEFAULT_PROJECT) -> Model:
        """Return the model, creating it (with ``description``, in ``project``) when it does not exist yet."""

    def get_model(self, name: str, *, project: str = DEFAULT_PROJECT) -> Model: ...

    def list_models(self, *, search: str | None = None, project: str | None = None) -> list[Model]:
        """All models (of ``project``; None: of every project), by name; ``search`` is a
        case-insensitive substring of the name."""

    def update_model(self, name: str, *, description: str, project: str = DEFAULT_PROJECT) -> Model: ...

    def delete_model(self, name: str, *, project: str = DEFAULT_PROJECT) -> list[ModelVersion]:
        """Delete the model with all versions, aliases and tags; return the deleted versions."""

    def create_version(self, new: NewVersion, *, project: str = DEFAULT_PROJECT,
                       admit: Admission | None = None) -> tuple[ModelVersion, bool]:
        """Register a version and return ``(version, created)``.

        Versions are numbered 1, 2, 3... per model, or ``new.number`` when given (a pulled version
        keeps its remote number; later versions are numbered after it); ``Conflict`` when another
        version has that number. If a version with the same manifest digest exists already, return
        it with ``created=False`` instead (idempotent push and pull; ``admit`` is not asked). Safe
        under concurrent callers, in one process or many: each gets a consistent, distinct number
        or the same existing version, and ``admit`` sees the bytes every version
        committed before it stored (the check and the write are one atomic step per project).
        """

    def get_version(self, name: str, version: int, *, project: str = DEFAULT_PROJECT) -> ModelVersion: ...

    def list_versions(self, name: str, *, project: str = DEFAULT_PROJECT) -> list[ModelVersion]:
        """All versions of a model, oldest first."""

    def resolve(self, ref: ModelRef, *, project: str = DEFAULT_PROJECT) -> ModelVersion:
        """The version a reference points at: a number, an alias, or the latest."""

    def delete_version(self, name: str, version: int, *, project: str = DEFAULT_PROJECT) -> ModelVersion:
        """Delete a version (and the aliases pointing at it); return what was deleted."""

    def set_alias(self, name: str, alias: str, version: int, *, project: str = DEFAULT_PROJECT) -> ModelVersion: ...

    def delete_alias(self, name: str, alias: str, *, project: str = DEFAULT_PROJECT) -> None: ...

    def set_model_tag(self, name: str, key: str, value: str, *, project: str = DEFAULT_PROJECT) -> Model: ...

    def delete_model_tag(self, name: str, key: str, *, project: str = DEFAULT_PROJECT) -> Model: ...

    def set_version_tag(self, name: str, version: int, key: str, value: str, *,
                        project: str = DEFAULT_PROJECT) -> ModelVersion: ...

    def set_version_image(self, name: str, version: int, image: str | None, *,
                          project: str = DEFAULT_PROJECT) -> ModelVersion:
        """Record the OCI image built from a version (``REGISTRY/REPO@sha256:…``; None forgets it)."""

    def delete_version_tag(self, name: str, version: int, key: str, *,
                           project: str = DEFAULT_PROJECT) -> ModelVersion: ...

    def set_version_environment(self, name: str, version: int, environment: dict[str, Any], *,
                                project: str = DEFAULT_PROJECT) -> ModelVersion:
        """Replace a version's environment record (re-locking it); its artifact stays as it is."""

    def storage_bytes(self, project: str) -> int:
        """What the project's storage quota counts: the size of every distinct blob its versions
        reference, once each (blobs are deduplicated)."""

    def count_blob_references(self, digest: str) -> int:
        """How many version files, of any project, point at a blob digest (for deleting unreferenced blobs)."""

    def close(self) -> None: ...
