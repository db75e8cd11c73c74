"""``UploadStager``: server-side staging of chunked, resumable blob uploads (OCI distribution style).

A client ``begin``s an upload, ``append``s chunks at the offset the server reports (a dropped
connection resumes from ``offset``), then ``finish``es with the sha256 it expects; only verified
bytes reach the ``BlobStore``. Each upload is a file ``root/<id>``, so uploads survive a restart.
The sha256 is kept incrementally in memory while the process lives; after a restart the file is
hashed again at ``finish``. Thread-safe: one lock per upload serialises its appends and finish.

An upload may be charged to a project (``begin(project)``, kept beside it in ``root/<id>.project``
so it survives a restart too): ``pending_bytes(project)`` is what that project's unfinished uploads
hold on disk, which the control plane counts against the project's storage quota as bytes arrive.
Aborting, finishing or expiring an upload (``purge_older_than``, on a timer) releases it.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelpier._lib.clock import Clock, SystemClock
from modelpier._lib.ids import new_id
from modelpier.errors import Conflict, DigestMismatch, NotFound
from modelpier.registry.blobs.base import DEFAULT_CHUNK, BlobStore
from modelpier.registry.digests import format_digest, validate_digest

_ID = re.compile(r"^[0-9a-f]{24}$")


@dataclass
class _Upload:
    """In-memory state of one upload; ``hasher`` covers exactly the first ``hashed`` bytes."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    hasher: Any = None  # hashlib's sha256 object has no public type
    hashed: int = 0


class UploadStager:
    """Uploads in progress, as files under ``root``."""

    def __init__(self, root: Path, *, clock: Clock | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._clock = clock or SystemClock()
        self._uploads: dict[str, _Upload] = {}
        self._registry_lock = threading.Lock()  # guards ``_uploads`` only, never held during I/O

    def begin(self, project: str | None = None) -> str:
        """Open an upload, charged to ``project`` (None: to none) until it ends."""
        upload_id = new_id()
        if project is not None:
            self._project_path(upload_id).write_text(project)
        self._path(upload_id).touch(exist_ok=False)
        with self._registry_lock:
            self._uploads[upload_id] = _Upload(hasher=hashlib.sha256())
        return upload_id

    def project_of(self, upload_id: str) -> str | None:
        self._size(upload_id)  # NotFound for unknown ids
        try:
            return self._project_path(upload_id).read_text()
        except FileNotFoundError:
            return None

    def pending_bytes(self, project: str) -> int:
        """Bytes the unfinished uploads charged to ``project`` hold (a scan of ``root``: uploads are few)."""
        total = 0
        for marker in self.root.glob("*.project"):
            try:
                if marker.read_text() == project:
                    total += (self.root / marker.stem).stat().st_size
            except FileNotFoundError:
                continue  # finished or aborted meanwhile
        return total

    def offset(self, upload_id: str) -> int:
        return self._size(upload_id)

    def append(self, upload_id: str, offset: int, chunks: Iterable[bytes]) -> int:
        """Write ``chunks`` at ``offset``, which must be where the upload stands; return the new offset.

        A wrong offset is ``Conflict`` naming the right one. If ``chunks`` fails half-way (the
        client went away), what was written stays: the client resumes from ``offset()``.
        """
        state = self._state(upload_id)
        with state.lock:
            current = self._size(upload_id)
            if offset != current:
                raise Conflict(
                    f"upload {upload_id} is at offset {current}, not {offset}; resume from {current}",
                    details={"upload": upload_id, "offset": current})
            if state.hasher is None or state.hashed != current:
                state.hasher = None  # unknown history (restart, another process): rehash at finish
            written = current
            try:
                with open(self._path(upload_id), "ab") as out:
                    for chunk in chunks:
                        out.write(chunk)
                        written += len(chunk)
                        if state.hasher is not None:
                            state.hasher.update(chunk)
                            state.hashed = written
            except BaseException:
                state.hasher = None  # what reached the disk may differ from what was hashed
                raise
            return written

    def finish(self, upload_id: str, expected_digest: str, blob_store: BlobStore) -> tuple[str, int]:
        """Verify the upload against ``expected_digest`` and move it into ``blob_store``.

        A mismatch is ``DigestMismatch``: nothing is stored and the upload is discarded. Should
        the blob store fail (unreachable, say), the upload stays, and ``finish`` can be retried.
        """
        validate_digest(expected_digest)
        state = self._state(upload_id)
        with state.lock:
            path = self._path(upload_id)
            size = self._size(upload_id)
            if state.hasher is not None and state.hashed == size:
                digest = format_digest(state.hasher.hexdigest())
            else:
                digest = _hash_file(path)
            if digest != expected_digest:
                self._discard(upload_id)
                raise DigestMismatch(
                    f"upload {upload_id}: received {size} bytes with digest {digest}, but {expected_digest} "
                    "was announced; the upload was discarded, start again",
                    details={"upload": upload_id, "expected": expected_digest, "actual": digest})
            result = blob_store.adopt_file(path, expected_digest)
            self._discard(upload_id)
            return result

    def abort(self, upload_id: str) -> None:
        state = self._state(upload_id)
        with state.lock:
            self._size(upload_id)  # NotFound if another thread finished or aborted it meanwhile
            self._discard(upload_id)

    def purge_older_than(self, seconds: float) -> list[str]:
        """Discard uploads untouched for ``seconds``; return their ids. Busy uploads are skipped."""
        cutoff = self._clock.now().timestamp() - seconds
        purged: list[str] = []
        for path in self.root.iterdir():
            if not _ID.match(path.name):
                continue
            try:
                if path.stat().st_mtime >= cutoff:
                    continue
            except FileNotFoundError:
                continue
            with self._registry_lock:
                state = self._uploads.setdefault(path.name, _Upload())
            if not state.lock.acquire(blocking=False):
                continue  # an append or finish is running: the upload is alive
            try:
                self._discard(path.name)
                purged.append(path.name)
            finally:
                state.lock.release()
        return purged

    # -- internals --------------------------------------------------------------------------------

    def _path(self, upload_id: str) -> Path:
        # The id becomes a file name: anything but our own hex ids could escape ``root``.
        if not isinstance(upload_id, str) or not _ID.match(upload_id):
            raise NotFound(f"upload {upload_id!r} does not exist", details={"upload": upload_id})
        return self.root / upload_id

    def _size(self, upload_id: str) -> int:
        try:
            return self._path(upload_id).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"upload {upload_id} does not exist (finished, aborted or expired); begin a new one",
                           details={"upload": upload_id}) from None

    def _state(self, upload_id: str) -> _Upload:
        self._size(upload_id)  # NotFound for unknown ids, before any state is made up for them
        with self._registry_lock:
            # Known only on disk (the process restarted): no hasher, so finish rehashes the file.
            return self._uploads.setdefault(upload_id, _Upload())

    def _project_path(self, upload_id: str) -> Path:
        return self._path(upload_id).with_suffix(".project")

    def _discard(self, upload_id: str) -> None:
        self._path(upload_id).unlink(missing_ok=True)
        self._project_path(upload_id).unlink(missing_ok=True)
        with self._registry_lock:
            self._uploads.pop(upload_id, None)


def _hash_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(DEFAULT_CHUNK):
            hasher.update(chunk)
    return format_digest(hasher.hexdigest())
