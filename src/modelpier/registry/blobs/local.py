"""``LocalBlobStore``: blobs as files in a folder, the embedded default.

Layout: ``root/sha256/ab/<hex>`` (two-character fan-out keeps directories small); writers stream
into ``root/tmp/<random>``, fsync, then ``os.replace`` into place, so a blob is either absent or
complete, even across a crash. Readers verify the sha256 as they stream (``verify.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from modelpier._lib.ids import new_id
from modelpier.errors import NotFound
from modelpier.registry.blobs.base import DEFAULT_CHUNK
from modelpier.registry.blobs.verify import (
    IO_CHUNK,
    VerifiedChunks,
    check_expected,
    corrupt,
    hash_stream,
    read_chunks,
    write_atomically,
)
from modelpier.registry.digests import format_digest, hex_of, validate_digest

# A temporary file untouched this long belongs to a writer that died (a live one writes steadily).
STALE_TEMP_SECONDS = 24 * 3600


class LocalBlobStore:
    """Content-addressed blobs under ``root``. Safe for concurrent writers (threads or processes)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.url = self.root.as_uri()
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        (self.root / "sha256").mkdir(exist_ok=True)
        self._remove_stale_temporaries()

    def path_of(self, digest: str) -> Path:
        """Where the blob for ``digest`` lives (whether or not it exists)."""
        hexdigest = hex_of(digest)
        return self.root / "sha256" / hexdigest[:2] / hexdigest

    def exists(self, digest: str) -> bool:
        return self.path_of(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path_of(digest).stat().st_size
        except FileNotFoundError:
            raise self._not_found(digest) from None

    def put_file(self, path: Path, *, expected_digest: str | None = None) -> tuple[str, int]:
        with open(path, "rb") as source:
            return self.put_stream(read_chunks(source, IO_CHUNK), expected_digest=expected_digest)

    def adopt_file(self, path: Path, digest: str) -> tuple[str, int]:
        final = self.path_of(validate_digest(digest))
        size = path.stat().st_size
        if final.is_file():
            path.unlink()
            # Written again just now, as far as garbage collection's grace period is concerned: a push
            # that re-uploads an unreferenced blob is about to reference it.
            with contextlib.suppress(FileNotFoundError):
                os.utime(final)
            return digest, size
        with open(path, "rb+") as f:
            os.fsync(f.fileno())  # durable before it becomes visible under its address
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, final)
        except OSError:
            # Another filesystem (EXDEV): copy through the verifying writer instead.
            result = self.put_file(path, expected_digest=digest)
            path.unlink()
            return result
        _fsync_dir(final.parent)
        return digest, size

    def put_stream(self, chunks: Iterable[bytes], *, expected_digest: str | None = None) -> tuple[str, int]:
        if expected_digest is not None:
            validate_digest(expected_digest)
            if self.exists(expected_digest):
                # Deduplicated: nothing to write, but the caller's bytes must still be what they claim.
                digest, size = hash_stream(chunks)
                check_expected(digest, size, expected_digest)
                return digest, size
        tmp = self._tmp / new_id()
        try:
            hasher = hashlib.sha256()
            size = 0
            with open(tmp, "xb") as out:
                started = 0  # bytes already handed to the kernel for writeback
                for chunk in chunks:
                    out.write(chunk)
                    hasher.update(chunk)
                    size += len(chunk)
                    if size - started >= _WRITEBACK_BYTES:
                        started = _start_writeback(out, started, size)
                out.flush()
                os.fsync(out.fileno())
            digest = format_digest(hasher.hexdigest())
            if expected_digest is not None:
                check_expected(digest, size, expected_digest)
            final = self.path_of(digest)
            if not final.is_file():
                final.parent.mkdir(exist_ok=True)
                os.replace(tmp, final)
                _fsync_dir(final.parent)
            return digest, size
        finally:
            tmp.unlink(missing_ok=True)

    def iter_chunks(self, digest: str, *, chunk_size: int = DEFAULT_CHUNK) -> Iterator[bytes]:
        # Open now, so an absent blob raises NotFound at the call, not at the first next().
        source = self._open(digest)
        return VerifiedChunks(read_chunks(source, chunk_size), digest, self.url, on_close=source.close)

    def fetch_to(self, digest: str, dest: Path) -> None:
        write_atomically(self.iter_chunks(digest, chunk_size=IO_CHUNK), Path(dest))

    def delete(self, digest: str) -> None:
        self.path_of(digest).unlink(missing_ok=True)

    def list_blobs(self) -> Iterator[tuple[str, float]]:
        for path in (self.root / "sha256").glob("??/*"):
            try:
                written = path.stat().st_mtime
            except FileNotFoundError:
                continue  # deleted meanwhile
            if len(path.name) == 64:
                yield f"sha256:{path.name}", written

    def verify(self, digest: str) -> None:
        with self._open(digest) as source:
            actual, _ = hash_stream(read_chunks(source, IO_CHUNK))
        if actual != digest:
            raise corrupt(digest, actual, self.url)

    def _remove_stale_temporaries(self) -> None:
        """Remove what writers killed mid-write left behind; young files may belong to live writers."""
        cutoff = time.time() - STALE_TEMP_SECONDS
        for tmp in self._tmp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()

    def _open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path_of(digest), "rb")  # closed by the caller or VerifiedChunks
        except FileNotFoundError:
            raise self._not_found(digest) from None

    def _not_found(self, digest: str) -> NotFound:
        return NotFound(f"blob {digest} is not in {self.url}", details={"digest": digest})


# Start writeback every 64 MiB, so the fsync before the rename finds little left to write: on a
# 1 GiB pull this overlaps the disk with the network instead of waiting for both in turn.
_WRITEBACK_BYTES = 64 * 1024 * 1024


def _start_writeback(out: BinaryIO, start: int, end: int) -> int:
    out.flush()
    if hasattr(os, "posix_fadvise"):
        # On Linux, DONTNEED starts asynchronous writeback of the dirty range (and frees those
        # pages once clean): a nudge, not a wait. Elsewhere the final fsync does all the work.
        os.posix_fadvise(out.fileno(), start, end - start, os.POSIX_FADV_DONTNEED)
    return end


def _fsync_dir(path: Path) -> None:
    """Persist a rename: the directory entry must reach the disk too, not only the file."""
    with contextlib.suppress(OSError):  # some filesystems do not support fsync on directories
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
