"""Push and pull: move a version (metadata + blobs) between a local ``Registry`` and a remote.

Guarantees:
- Idempotent: blobs the other side has are skipped; a version whose digest exists is returned,
  not duplicated (the store enforces it), so pushing twice is a no-op.
- Resumable push: each blob upload's id is journaled under ``PIER_HOME``; a push that was cut off
  asks the server for the upload's offset and sends only the rest.
- Nothing half-visible: the version row is written only after every blob is stored and verified.
- Bounded memory: bytes stream in ``chunk_bytes`` pieces in both directions.

The remote is reached through the one API client (``ControlClient``). This module moved here from
``registry/`` with the old ``registry/remote.py`` client: ``registry`` sits below ``sdk`` and may not
import the client, and push/pull are the client's use cases, not the store's.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from modelpier._lib.ids import new_id
from modelpier._lib.prefetch import prefetch
from modelpier.errors import Conflict, NotFound, RemoteError
from modelpier.registry.domain import ModelVersion
from modelpier.registry.service import Registry
from modelpier.registry.wire import CreatedVersionBody, NewVersionBody
from modelpier.sdk.control_api import blobs, models
from modelpier.sdk.control_api.sync import ControlClient
from modelpier.spec.names import ModelRef

# Called once per file with (label, total bytes); returns the function to call with each advance.
ProgressFactory = Callable[[str, int], Callable[[int], None]]


def no_progress(_label: str, _total: int) -> Callable[[int], None]:
    return lambda _n: None


class UploadJournal:
    """Upload ids of unfinished pushes, keyed by remote and digest, in a small JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _write(self, data: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{new_id(4)}")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.path)  # atomic: a crash never leaves a torn journal

    def get(self, remote: str, digest: str) -> str | None:
        with self._lock:
            return self._read().get(f"{remote}|{digest}")

    def put(self, remote: str, digest: str, upload_id: str) -> None:
        with self._lock:
            data = self._read()
            data[f"{remote}|{digest}"] = upload_id
            self._write(data)

    def drop(self, remote: str, digest: str) -> None:
        with self._lock:
            data = self._read()
            if data.pop(f"{remote}|{digest}", None) is not None:
                self._write(data)


def push(local: Registry, client: ControlClient, ref: str, *, project: str | None = None, journal: UploadJournal,
         chunk_bytes: int, progress: ProgressFactory = no_progress) -> tuple[ModelVersion, CreatedVersionBody]:
    """Push the local version ``ref`` to the remote ``project``'s registry (None: the default project's);
    returns (local version, remote answer)."""
    version = local.resolve(ref)
    for entry in version.files:
        advance = progress(entry.path, entry.size)
        upload_blob(local, client, entry.digest, journal=journal, chunk_bytes=chunk_bytes, advance=advance)
    return version, client.send(models.create_version(project, version.model, NewVersionBody.from_version(version)))


def upload_blob(local: Registry, client: ControlClient, digest: str, *, journal: UploadJournal,
                chunk_bytes: int, advance: Callable[[int], None]) -> None:
    size = local.blobs.size(digest)
    if client.send(blobs.blob_exists(digest)):
        advance(size)
        return
    upload_id, offset = _resume_or_begin(client, journal, digest)
    advance(offset)
    while offset < size:
        # The rest of the blob goes as one streamed request; the server writes as it receives.
        # Reading and hashing the next chunk overlaps with sending this one.
        rest = _from_offset(prefetch(local.blobs.iter_chunks(digest, chunk_size=chunk_bytes)), offset, advance)
        try:
            moved = client.send(blobs.append(upload_id, offset, rest))
            if moved <= offset:
                raise RemoteError(f"the server took none of the bytes of {digest} from offset {offset}")
            offset = moved
        except Conflict:
            # A parallel push of the same blob moved the upload on; continue from its offset.
            moved = client.send(blobs.upload_offset(upload_id))
            advance(max(moved - offset, 0))
            offset = moved
    try:
        client.send(blobs.finish_upload(upload_id, digest))
    except NotFound:
        # A parallel push finished this upload first; fine as long as the blob is there now.
        if not client.send(blobs.blob_exists(digest)):
            raise
    journal.drop(client.base_url, digest)


def _from_offset(chunks: Iterable[bytes], offset: int, advance: Callable[[int], None]) -> Iterator[bytes]:
    """The bytes of ``chunks`` from ``offset`` on, reporting each piece as it is handed on."""
    position = 0
    for chunk in chunks:
        end = position + len(chunk)
        if end > offset:
            piece = chunk[offset - position:] if position < offset else chunk
            advance(len(piece))
            yield piece
        position = end


def _resume_or_begin(client: ControlClient, journal: UploadJournal, digest: str) -> tuple[str, int]:
    upload_id = journal.get(client.base_url, digest)
    if upload_id is not None:
        try:
            return upload_id, client.send(blobs.upload_offset(upload_id))
        except NotFound:
            journal.drop(client.base_url, digest)
    upload_id = client.send(blobs.begin_upload()).upload_id
    journal.put(client.base_url, digest, upload_id)
    return upload_id, 0


def pull(local: Registry, client: ControlClient, ref: str, *, project: str | None = None, chunk_bytes: int,
         progress: ProgressFactory = no_progress) -> tuple[ModelVersion, bool]:
    """Pull the remote version ``ref`` into the local registry; returns (local version, created).

    The pulled version keeps its remote number (and metadata), so ``iris:2`` is served as version 2
    wherever it was pulled to; a local version with the same digest is returned instead, and one
    with that number but other content is a ``Conflict`` naming both digests.
    """
    parsed = ModelRef.parse(ref)
    selector = str(parsed.version or parsed.alias or "latest")
    remote = client.send(models.get_version(project, parsed.name, selector)).to_domain()
    for entry in remote.files:
        advance = progress(entry.path, entry.size)
        if local.blobs.exists(entry.digest):
            advance(entry.size)
            continue
        # Receiving the next chunk overlaps with hashing and writing this one.
        chunks = prefetch(client.download(blobs.blob_path(entry.digest), chunk_size=chunk_bytes))
        local.blobs.put_stream(_counted(chunks, advance), expected_digest=entry.digest)
    new = replace(NewVersionBody.from_version(remote).to_domain(remote.model), number=remote.version)
    return local.register(new)


def _counted(chunks: Iterable[bytes], advance: Callable[[int], None]) -> Iterator[bytes]:
    for chunk in chunks:
        advance(len(chunk))
        yield chunk
