"""Streaming helpers shared by the blob stores: hash while reading, hold back the last chunk until
the digest is checked, write a file atomically. No I/O of their own beyond what callers pass in.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from modelpier._lib.ids import new_id
from modelpier.errors import CorruptBlob, DigestMismatch
from modelpier.registry.digests import format_digest

# Chunk size for the stores' own file and network reads (put_file, verify, fetch_to). Streaming
# with verification holds up to three chunks (the held-back one, the one being handed out, the
# next one read), so this bounds memory; 1 MiB already keeps disk and socket I/O efficient.
IO_CHUNK = 1024 * 1024


def read_chunks(source: BinaryIO, chunk_size: int) -> Iterator[bytes]:
    while chunk := source.read(chunk_size):
        yield chunk


def hash_stream(chunks: Iterable[bytes]) -> tuple[str, int]:
    """Consume ``chunks``; return their ``(digest, size)``."""
    hasher = hashlib.sha256()
    size = 0
    for chunk in chunks:
        hasher.update(chunk)
        size += len(chunk)
    return format_digest(hasher.hexdigest()), size


def check_expected(digest: str, size: int, expected: str) -> None:
    if digest != expected:
        raise DigestMismatch(
            f"received {size} bytes with digest {digest}, but {expected} was announced; nothing was stored",
            details={"expected": expected, "actual": digest, "size": size})


def corrupt(digest: str, actual: str, url: str) -> CorruptBlob:
    return CorruptBlob(
        f"blob {digest} in {url} is corrupt: its bytes hash to {actual}; restore it from a copy or push "
        "the version again", details={"digest": digest, "actual": actual})


class VerifiedChunks(Iterator[bytes]):
    """Yield ``chunks`` while hashing them, holding the last one back until the hash matches.

    A consumer therefore never receives a complete copy of a corrupt blob: ``CorruptBlob`` is
    raised in place of the final chunk. ``on_close`` (closing the file or HTTP body) runs when
    the stream ends, fails, is closed, or is dropped unread.
    """

    def __init__(self, chunks: Iterator[bytes], digest: str, url: str,
                 on_close: Callable[[], object]) -> None:
        self._chunks = chunks
        self._digest = digest
        self._url = url
        self._on_close: Callable[[], object] | None = on_close
        self._hasher = hashlib.sha256()
        self._held: bytes | None = None

    def __iter__(self) -> VerifiedChunks:
        return self

    def __next__(self) -> bytes:
        if self._on_close is None:
            raise StopIteration
        try:
            for chunk in self._chunks:
                if not chunk:
                    continue
                self._hasher.update(chunk)
                previous, self._held = self._held, chunk
                if previous is not None:
                    return previous
            actual = format_digest(self._hasher.hexdigest())
            if actual != self._digest:
                raise corrupt(self._digest, actual, self._url)
        except BaseException:
            self.close()
            raise
        last, self._held = self._held, None
        self.close()
        if last is None:
            raise StopIteration
        return last

    def close(self) -> None:
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    def __del__(self) -> None:
        self.close()


def write_atomically(chunks: Iterable[bytes], dest: Path) -> None:
    """Write ``chunks`` to a temporary file next to ``dest``, fsync, rename; on failure leave
    ``dest`` as it was and no temporary file behind."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{new_id(6)}.tmp")
    try:
        with open(tmp, "xb") as out:
            for chunk in chunks:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
