"""``Registry``: the registry's use cases over a ``MetadataStore`` and a ``BlobStore``.

Order of writes is what keeps the store consistent: blobs first (content-addressed, atomic), then
the version row in one transaction. A crash between the two leaves only an unreferenced blob, never
a version whose bytes are missing. Materialising a version for loading writes into a temporary
folder and renames it into the cache, so a half-fetched version is never loaded; a cached folder is
re-hashed against the version's digests each time it is materialised (a bit flipped on disk would
otherwise be served silently), and fetched again when it does not match.

Blobs no version references are collected (``collect_garbage``): uploads that were never pushed,
versions deleted. A blob written less than a grace period ago is kept, since a push uploads its
blobs before it registers the version that references them. The reference check and the delete
run under the registry's blob lock, which ``register`` holds from its blob checks to its commit:
in this process a push and the collector never interleave, so a collected blob is either gone
before a push checks it (the push is refused with "not uploaded first" and uploads it again) or
referenced by the time the collector looks. Control planes sharing one database each run their
own collector; the grace period is what protects a push served by another one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from modelpier._lib.ids import new_id
from modelpier.errors import InvalidArtifact, InvalidInput, NotFound
from modelpier.registry.blobs.base import BlobStore
from modelpier.registry.blobs.verify import hash_stream, read_chunks
from modelpier.registry.digests import hex_of
from modelpier.registry.domain import FileEntry, Model, ModelVersion, NewVersion
from modelpier.registry.lock import EnvironmentLock, with_lock
from modelpier.registry.store import DEFAULT_PROJECT, Admission, MetadataStore
from modelpier.spec.names import ModelRef, validate_alias, validate_name, validate_tag_key

_COMPLETE_MARKER = ".pier-complete"
_HASH_CHUNK = 1024 * 1024

log = logging.getLogger("modelpier.registry")


class Registry:
    """The registry of every project. A call names its project; one that names none acts in
    ``project``, the registry's own (``PIER_PROJECT``, else ``default``): the local CLI, the SDK and
    model servers work there."""

    def __init__(self, metadata: MetadataStore, blobs: BlobStore, cache_dir: Path, *,
                 project: str = DEFAULT_PROJECT) -> None:
        self.metadata = metadata
        self.blobs = blobs
        self.cache_dir = cache_dir
        self.project = validate_name(project, what="project name")
        self._blob_lock = threading.RLock()  # register's checks-to-commit vs. collecting blobs

    def _in(self, project: str | None) -> str:
        return self.project if project is None else validate_name(project, what="project name")

    # -- models -------------------------------------------------------------------------------
    def list_models(self, *, search: str | None = None, project: str | None = None) -> list[Model]:
        return self.metadata.list_models(search=search, project=self._in(project))

    def storage_bytes(self, project: str | None = None) -> int:
        return self.metadata.storage_bytes(self._in(project))

    def get_model(self, name: str, *, project: str | None = None) -> Model:
        return self.metadata.get_model(validate_name(name), project=self._in(project))

    def update_model(self, name: str, *, description: str, project: str | None = None) -> Model:
        return self.metadata.update_model(validate_name(name), description=description, project=self._in(project))

    def delete_model(self, name: str, *, project: str | None = None) -> list[ModelVersion]:
        deleted = self.metadata.delete_model(validate_name(name), project=self._in(project))
        self._collect_blobs(f for v in deleted for f in v.files)
        return deleted

    # -- versions -----------------------------------------------------------------------------
    def store_files(self, directory: Path) -> tuple[FileEntry, ...]:
        """Put every file under ``directory`` into the blob store; return the artifact's entries."""
        if not directory.is_dir():
            raise InvalidArtifact(f"{directory} is not a folder")
        entries = []
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            digest, size = self.blobs.put_file(path)
            entries.append(FileEntry(path=path.relative_to(directory).as_posix(), digest=digest, size=size))
        if not entries:
            raise InvalidArtifact(f"{directory} holds no files to register")
        return tuple(entries)

    def register(self, new: NewVersion, *, project: str | None = None,
                 admit: Admission | None = None) -> tuple[ModelVersion, bool]:
        """Record a version whose blobs are already stored; ``(version, created)``. The model is
        created in ``project`` if new there. ``admit(stored_bytes, added_bytes)`` is asked in the
        same transaction as the write (a storage quota); a version the project holds already is
        returned without asking, since it adds nothing."""
        validate_name(new.model)
        check_file_entries(new.files)
        with self._blob_lock:
            return self._register(new, project, admit)

    def _register(self, new: NewVersion, project: str | None, admit: Admission | None) -> tuple[ModelVersion, bool]:
        stored: dict[str, int] = {}
        missing = []
        for entry in new.files:
            try:
                stored[entry.path] = self.blobs.size(entry.digest)
            except NotFound:
                missing.append(entry.path)
        if missing:
            raise InvalidInput(
                f"cannot register {new.model}: the blobs of {', '.join(missing)} were not uploaded first",
                details={"missing": missing})
        for entry in new.files:
            # Sizes are declared by the client; quotas count them, so they must be the blobs' own.
            if entry.size != stored[entry.path]:
                raise InvalidInput(f"file {entry.path!r} declares {entry.size} bytes, but its blob {entry.digest} "
                                   f"holds {stored[entry.path]}", details={"path": entry.path})
        return self.metadata.create_version(new, project=self._in(project), admit=admit)

    def resolve(self, ref: str | ModelRef, *, project: str | None = None) -> ModelVersion:
        """The version ``ref`` points at in ``project``. Without a project: in the registry's own,
        else in ``default``, the shared catalog (as deployments resolve; see ``resolve_shared``)."""
        parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
        if project is None:
            return self.resolve_shared(parsed, project=self.project)
        return self.metadata.resolve(parsed, project=self._in(project))

    def resolve_shared(self, ref: str | ModelRef, *, project: str) -> ModelVersion:
        """``ref`` in ``project``, else in ``default``: the models a deployment of ``project`` may
        run (its own, then the shared catalog). A ``NotFound`` names the project's registry."""
        parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
        project = self._in(project)
        if project != DEFAULT_PROJECT:
            try:
                self.metadata.get_model(parsed.name, project=project)
            except NotFound as missing:
                # The project has no model of that name: the catalog's, if it has one. (A project's
                # own model always wins, also when the version or alias asked for is not there.)
                try:
                    self.metadata.get_model(parsed.name, project=DEFAULT_PROJECT)
                except NotFound:
                    raise missing from None
                return self.metadata.resolve(parsed, project=DEFAULT_PROJECT)
        return self.metadata.resolve(parsed, project=project)

    def get_version(self, name: str, version: int, *, project: str | None = None) -> ModelVersion:
        return self.metadata.get_version(validate_name(name), version, project=self._in(project))

    def list_versions(self, name: str, *, project: str | None = None) -> list[ModelVersion]:
        return self.metadata.list_versions(validate_name(name), project=self._in(project))

    def delete_version(self, name: str, version: int, *, project: str | None = None) -> ModelVersion:
        deleted = self.metadata.delete_version(validate_name(name), version, project=self._in(project))
        self._collect_blobs(deleted.files)
        return deleted

    # -- environment locks --------------------------------------------------------------------
    def get_lock(self, ref: str | ModelRef, *, project: str | None = None) -> EnvironmentLock | None:
        """The locked environment of the version ``ref`` points at (None: it records none).

        What isolated replicas and OCI images build their environment from."""
        return self.resolve(ref, project=project).lock

    def set_lock(self, ref: str | ModelRef, lock: EnvironmentLock, *, project: str | None = None) -> ModelVersion:
        """Re-lock a version: record ``lock`` as its environment lock (the artifact is unchanged)."""
        parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
        where = self._in(project)
        version = self.metadata.resolve(parsed, project=where)
        return self.metadata.set_version_environment(version.model, version.version,
                                                     with_lock(version.environment, lock), project=where)

    def set_image(self, name: str, version: int, image: str | None, *, project: str | None = None) -> ModelVersion:
        """Record the image built from a version (``pier build image``), by digest."""
        return self.metadata.set_version_image(validate_name(name), version, image, project=self._in(project))

    # -- aliases and tags ---------------------------------------------------------------------
    def set_alias(self, name: str, alias: str, version: int, *, project: str | None = None) -> ModelVersion:
        return self.metadata.set_alias(validate_name(name), validate_alias(alias), version,
                                       project=self._in(project))

    def delete_alias(self, name: str, alias: str, *, project: str | None = None) -> None:
        self.metadata.delete_alias(validate_name(name), validate_alias(alias), project=self._in(project))

    def set_tag(self, ref: str, key: str, value: str, *, project: str | None = None) -> Model | ModelVersion:
        """Tag a model (``name``) or a version (``name:3``, ``name:alias``)."""
        parsed = ModelRef.parse(ref)
        validate_tag_key(key)
        where = self._in(project)
        if parsed.version is None and parsed.alias is None:
            return self.metadata.set_model_tag(parsed.name, key, value, project=where)
        version = self.metadata.resolve(parsed, project=where)
        return self.metadata.set_version_tag(version.model, version.version, key, value, project=where)

    def delete_tag(self, ref: str, key: str, *, project: str | None = None) -> Model | ModelVersion:
        parsed = ModelRef.parse(ref)
        validate_tag_key(key)
        where = self._in(project)
        if parsed.version is None and parsed.alias is None:
            return self.metadata.delete_model_tag(parsed.name, key, project=where)
        version = self.metadata.resolve(parsed, project=where)
        return self.metadata.delete_version_tag(version.model, version.version, key, project=where)

    # -- loading ------------------------------------------------------------------------------
    def materialize(self, version: ModelVersion) -> Path:
        """A local folder holding the version's files, each verified against its digest.

        Cached under ``cache_dir/<name>/<version>-<digest prefix>``; a completed folder carries a
        marker file, so a crash mid-fetch is redone rather than loaded. A cached folder is verified
        again (sizes, then sha256 of every file: about a second per GB): one that changed on disk
        is logged, discarded and fetched again; if the blob store's copy is corrupt too, fetching
        raises ``CorruptBlob`` rather than serve wrong bytes.
        """
        target = self.cache_dir / version.model / f"{version.version}-{hex_of(version.digest)[:16]}"
        if (target / _COMPLETE_MARKER).is_file():
            problem = cached_mismatch(target, version.files)
            if problem is None:
                return target
            log.warning("the cached copy of %s:%d in %s is corrupt (%s); fetching it again from the blob store",
                        version.model, version.version, target, problem)
            discard = self.cache_dir / ".staging" / f"corrupt-{new_id()}"
            discard.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):  # another process discarded it first
                os.replace(target, discard)
            shutil.rmtree(discard, ignore_errors=True)
        staging = self.cache_dir / ".staging" / new_id()
        try:
            for entry in version.files:
                dest = staging / entry.path
                dest.parent.mkdir(parents=True, exist_ok=True)
                self.blobs.fetch_to(entry.digest, dest)
            (staging / _COMPLETE_MARKER).write_text(version.digest)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(staging, target)
            except OSError:
                # Another process finished the same version first; its copy is as good as ours.
                if not (target / _COMPLETE_MARKER).is_file():
                    shutil.rmtree(target, ignore_errors=True)
                    os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def _collect_blobs(self, files: Iterable[FileEntry]) -> None:
        """Delete blobs no version references any more (blobs are shared across versions)."""
        for digest in {f.digest for f in files}:
            with self._blob_lock:
                if self.metadata.count_blob_references(digest) == 0:
                    self.blobs.delete(digest)

    def collect_garbage(self, grace_s: float, *, now: float | None = None) -> list[str]:
        """Delete every blob no version references that was written more than ``grace_s`` ago; the
        digests deleted. Safe against pushes in this process (see the module docstring)."""
        cutoff = (time.time() if now is None else now) - grace_s
        deleted = []
        for digest, written in list(self.blobs.list_blobs()):
            if written > cutoff:
                continue
            with self._blob_lock:
                if self.metadata.count_blob_references(digest) == 0:
                    self.blobs.delete(digest)
                    deleted.append(digest)
        if deleted:
            log.info("collected %d unreferenced blobs older than %gs", len(deleted), grace_s)
        return deleted

    def close(self) -> None:
        self.metadata.close()


def cached_mismatch(folder: Path, files: Iterable[FileEntry]) -> str | None:
    """Why the files under ``folder`` differ from ``files`` (missing, size, digest), or None."""
    for entry in files:
        path = folder / entry.path
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return f"{entry.path} is missing"
        if size != entry.size:
            return f"{entry.path} has {size} bytes, not {entry.size}"
        with path.open("rb") as source:
            actual, _ = hash_stream(read_chunks(source, _HASH_CHUNK))
        if actual != entry.digest:
            return f"{entry.path} hashes to {actual}, not {entry.digest}"
    return None


def check_file_entries(files: tuple[FileEntry, ...]) -> None:
    """Reject artifact paths that could escape the version folder or collide."""
    if not files:
        raise InvalidInput("a version needs at least one file")
    seen: set[str] = set()
    for entry in files:
        path = entry.path
        parts = path.split("/")
        if not path or path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
            raise InvalidInput(f"file path {path!r} must be relative, with no '.', '..' or empty parts")
        if path in seen:
            raise InvalidInput(f"file path {path!r} is listed twice")
        if path == _COMPLETE_MARKER:
            raise InvalidInput(f"file path {path!r} is reserved")
        if entry.size < 0:
            raise InvalidInput(f"file {path!r} has a negative size")
        seen.add(path)

