"""The ``BlobStore`` protocol: content-addressed, deduplicated, atomic, streamed, verified.

A blob's address is the sha256 of its bytes (``sha256:<hex>``). Writers never expose a partly
written blob: local files are written to a temporary name and renamed, S3 objects are completed
multipart uploads. Readers verify the digest; a blob whose bytes no longer match is reported as
``CorruptBlob`` and never handed out as good. Nothing here holds a whole blob in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

DEFAULT_CHUNK = 8 * 1024 * 1024


class BlobStore(Protocol):
    url: str

    def exists(self, digest: str) -> bool: ...

    def size(self, digest: str) -> int:
        """Size in bytes; ``NotFound`` if absent."""

    def put_file(self, path: Path, *, expected_digest: str | None = None) -> tuple[str, int]:
        """Store a local file; return ``(digest, size)``. ``DigestMismatch`` if it is not the
        expected one (and then nothing is stored). Storing an existing digest is a cheap no-op."""

    def adopt_file(self, path: Path, digest: str) -> tuple[str, int]:
        """Take over a local file whose bytes the caller has verified to hash to ``digest``.

        The file is gone afterwards (moved into the store, or deleted if the blob existed). The
        local store renames it, so committing an upload costs no second pass over its bytes.
        """

    def put_stream(self, chunks: Iterable[bytes], *, expected_digest: str | None = None) -> tuple[str, int]:
        """Like ``put_file`` for a stream of chunks."""

    def iter_chunks(self, digest: str, *, chunk_size: int = DEFAULT_CHUNK) -> Iterator[bytes]:
        """Stream a blob, verifying as it goes: the last chunk is held back until the digest is
        checked, so a corrupt blob raises ``CorruptBlob`` before it is complete. ``NotFound`` if
        absent."""

    def fetch_to(self, digest: str, dest: Path) -> None:
        """Write a verified copy to ``dest`` atomically (temp + rename); ``CorruptBlob`` leaves
        ``dest`` untouched."""

    def delete(self, digest: str) -> None:
        """Remove a blob; absent blobs are fine."""

    def list_blobs(self) -> Iterator[tuple[str, float]]:
        """Every stored blob as ``(digest, last written, epoch seconds)``, for garbage collection."""
        ...

    def verify(self, digest: str) -> None:
        """Re-read and check a blob; ``CorruptBlob`` or ``NotFound``."""
