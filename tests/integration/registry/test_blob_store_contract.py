"""The ``BlobStore`` contract, run against the local folder store and S3 (a real moto server).

Both stores must: address blobs by sha256, deduplicate, never expose a partly written or
unverified blob, detect corruption before handing out the last byte, and stream in flat memory.
"""

from __future__ import annotations

import hashlib
import os
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from tests.support.procs import free_port

from modelpier.errors import CorruptBlob, DigestMismatch, InvalidSpec, NotFound, ServiceUnavailable
from modelpier.registry.blobs import BlobStore, LocalBlobStore
from modelpier.registry.blobs.s3 import S3BlobStore
from modelpier.registry.digests import digest_bytes

MiB = 1024 * 1024


class Backend:
    """A store under test plus the out-of-band access a test needs (corrupting, listing leftovers)."""

    def __init__(self, store: LocalBlobStore | S3BlobStore, client: Any = None) -> None:
        self.store: BlobStore = store
        self._raw = store
        self._client = client

    def overwrite(self, digest: str, data: bytes) -> None:
        if isinstance(self._raw, LocalBlobStore):
            self._raw.path_of(digest).write_bytes(data)
        else:
            self._client.put_object(Bucket=self._raw.bucket, Key=self._raw.key_of(digest), Body=data)

    def stored_objects(self) -> list[str]:
        """Every file or object the store holds, finished or not (temporaries, open multipart uploads)."""
        if isinstance(self._raw, LocalBlobStore):
            return sorted(str(p.relative_to(self._raw.root)) for p in self._raw.root.rglob("*") if p.is_file())
        listing = self._client.list_objects_v2(Bucket=self._raw.bucket)
        uploads = self._client.list_multipart_uploads(Bucket=self._raw.bucket).get("Uploads", [])
        return sorted([o["Key"] for o in listing.get("Contents", [])] + [f"upload:{u['Key']}" for u in uploads])


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        return Backend(LocalBlobStore(tmp_path / "blobs"))
    bucket: str = request.getfixturevalue("s3_bucket")
    endpoint: str = request.getfixturevalue("s3_endpoint")
    return Backend(S3BlobStore(bucket, "pier/blobs", endpoint), request.getfixturevalue("s3_client"))


@pytest.fixture
def blob_store(backend: Backend) -> BlobStore:
    return backend.store


def pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic, non-repeating-looking bytes (so a corrupt copy of the same length differs)."""
    block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def test_put_stream_then_read_back(blob_store: BlobStore, tmp_path: Path) -> None:
    data = pattern(300_000)
    digest, size = blob_store.put_stream(chunked(data, 70_000))
    assert (digest, size) == (digest_bytes(data), len(data))
    assert blob_store.exists(digest)
    assert blob_store.size(digest) == len(data)
    chunks = list(blob_store.iter_chunks(digest, chunk_size=64 * 1024))
    assert b"".join(chunks) == data
    assert max(len(c) for c in chunks) <= 64 * 1024
    blob_store.verify(digest)
    blob_store.fetch_to(digest, tmp_path / "out" / "model.bin")
    assert (tmp_path / "out" / "model.bin").read_bytes() == data
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["model.bin"]


def test_put_file_with_expected_digest(blob_store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(pattern(10_000, seed=1))
    digest = digest_bytes(source.read_bytes())
    assert blob_store.put_file(source, expected_digest=digest) == (digest, 10_000)
    assert b"".join(blob_store.iter_chunks(digest)) == source.read_bytes()


def test_empty_blob(blob_store: BlobStore, tmp_path: Path) -> None:
    digest, size = blob_store.put_stream(iter([]))
    assert (digest, size) == (digest_bytes(b""), 0)
    assert list(blob_store.iter_chunks(digest)) == []
    blob_store.fetch_to(digest, tmp_path / "empty")
    assert (tmp_path / "empty").read_bytes() == b""


def test_storing_the_same_bytes_twice_keeps_one_blob(backend: Backend, tmp_path: Path) -> None:
    data = pattern(50_000, seed=2)
    source = tmp_path / "w.bin"
    source.write_bytes(data)
    first = backend.store.put_stream(chunked(data, 10_000))
    assert backend.store.put_stream(chunked(data, 7_000), expected_digest=first[0]) == first
    assert backend.store.put_file(source) == first
    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(lambda _: backend.store.put_stream(chunked(data, 9_000)), range(8))) == {first}
    assert len(backend.stored_objects()) == 1


def test_expected_digest_mismatch_stores_nothing(backend: Backend, tmp_path: Path) -> None:
    data, announced = pattern(20_000, seed=3), digest_bytes(b"something else")
    with pytest.raises(DigestMismatch, match=f"{announced} was announced; nothing was stored"):
        backend.store.put_stream(chunked(data, 4096), expected_digest=announced)
    source = tmp_path / "w.bin"
    source.write_bytes(data)
    with pytest.raises(DigestMismatch):
        backend.store.put_file(source, expected_digest=announced)
    assert not backend.store.exists(announced)
    assert not backend.store.exists(digest_bytes(data))
    assert backend.stored_objects() == []


def test_mismatch_against_an_existing_blob_leaves_it_intact(backend: Backend) -> None:
    good = pattern(5_000, seed=4)
    digest, _ = backend.store.put_stream([good])
    with pytest.raises(DigestMismatch):
        backend.store.put_stream([b"impostor"], expected_digest=digest)
    assert b"".join(backend.store.iter_chunks(digest)) == good
    assert len(backend.stored_objects()) == 1


def test_absent_blobs(blob_store: BlobStore, tmp_path: Path) -> None:
    digest = digest_bytes(b"never stored")
    assert not blob_store.exists(digest)
    for call in (lambda: blob_store.size(digest), lambda: blob_store.iter_chunks(digest),
                 lambda: blob_store.verify(digest), lambda: blob_store.fetch_to(digest, tmp_path / "x")):
        with pytest.raises(NotFound, match=digest):
            call()
    assert not (tmp_path / "x").exists()
    blob_store.delete(digest)  # deleting an absent blob is fine


def test_delete(blob_store: BlobStore) -> None:
    digest, _ = blob_store.put_stream([b"short-lived"])
    blob_store.delete(digest)
    assert not blob_store.exists(digest)


def test_a_corrupt_blob_is_never_handed_out_whole(backend: Backend, tmp_path: Path) -> None:
    data = pattern(256 * 1024, seed=5)
    digest, _ = backend.store.put_stream([data])
    backend.overwrite(digest, pattern(len(data), seed=6))  # same size, other bytes
    received: list[bytes] = []
    with pytest.raises(CorruptBlob, match=f"blob {digest} .* is corrupt"):
        received.extend(backend.store.iter_chunks(digest, chunk_size=64 * 1024))
    assert sum(map(len, received)) == len(data) - 64 * 1024  # the last chunk was held back
    dest = tmp_path / "dest" / "model.bin"
    with pytest.raises(CorruptBlob):
        backend.store.fetch_to(digest, dest)
    assert list(dest.parent.iterdir()) == []  # no dest, no temporary file
    with pytest.raises(CorruptBlob):
        backend.store.verify(digest)


def test_fetch_to_keeps_an_existing_dest_when_the_blob_is_corrupt(backend: Backend, tmp_path: Path) -> None:
    digest, _ = backend.store.put_stream([b"original"])
    backend.overwrite(digest, b"tampered")
    dest = tmp_path / "model.bin"
    dest.write_bytes(b"previous copy")
    with pytest.raises(CorruptBlob):
        backend.store.fetch_to(digest, dest)
    assert dest.read_bytes() == b"previous copy"


def test_a_crash_mid_write_leaves_no_visible_blob(backend: Backend) -> None:
    data = pattern(12 * MiB, seed=7)  # more than one S3 part, so a multipart upload is under way

    def dying_stream() -> Iterator[bytes]:
        yield from chunked(data[: 10 * MiB], MiB)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        backend.store.put_stream(dying_stream())
    with pytest.raises(ConnectionResetError):
        backend.store.put_stream(dying_stream(), expected_digest=digest_bytes(data))
    assert not backend.store.exists(digest_bytes(data))
    assert not backend.store.exists(digest_bytes(data[: 10 * MiB]))
    assert backend.stored_objects() == []


def test_large_upload_with_a_wrong_digest_is_aborted(backend: Backend) -> None:
    data = pattern(11 * MiB, seed=8)
    with pytest.raises(DigestMismatch):
        backend.store.put_stream(chunked(data, MiB), expected_digest=digest_bytes(b"other"))
    digest, size = backend.store.put_stream(chunked(data, MiB), expected_digest=digest_bytes(data))
    assert (digest, size) == (digest_bytes(data), len(data))
    assert len(backend.stored_objects()) == 1


@pytest.mark.slow
def test_streaming_64_mib_keeps_memory_flat(backend: Backend, tmp_path: Path) -> None:
    total, chunk = 64 * MiB, MiB

    def generate() -> Iterator[bytes]:
        for i in range(total // chunk):
            yield bytes([i % 251]) * chunk

    expected = hashlib.sha256()
    for piece in generate():
        expected.update(piece)
    tracemalloc.start()
    try:
        digest, size = backend.store.put_stream(generate())
        hasher = hashlib.sha256()
        for piece in backend.store.iter_chunks(digest, chunk_size=chunk):
            hasher.update(piece)
        backend.store.fetch_to(digest, tmp_path / "big.bin")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (digest, size) == (f"sha256:{expected.hexdigest()}", total)
    assert hasher.hexdigest() == expected.hexdigest()
    assert (tmp_path / "big.bin").stat().st_size == total
    assert len(backend.stored_objects()) == 1  # no temporary object or upload left behind
    # At most one S3 part (8 MiB) plus a few chunks in flight; a whole-blob copy would be 64 MiB.
    assert peak < 20 * MiB, f"peak traced memory {peak / MiB:.1f} MiB"


# -- S3-specific failures --------------------------------------------------------------------------------


@pytest.mark.s3
def test_s3_missing_bucket_is_a_clear_invalid_spec(s3_endpoint: str) -> None:
    store = S3BlobStore("no-such-bucket-here", "x", s3_endpoint)
    with pytest.raises(InvalidSpec, match="bucket 'no-such-bucket-here' does not exist"):
        store.exists(digest_bytes(b"x"))
    with pytest.raises(InvalidSpec, match="does not exist"):
        store.put_stream([b"x"])


def test_s3_unreachable_endpoint_is_service_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = S3BlobStore("bucket", "", endpoint)
    with pytest.raises(ServiceUnavailable, match=f"S3 endpoint {endpoint} is unreachable"):
        store.exists(digest_bytes(b"x"))


def test_local_store_removes_temporaries_of_dead_writers(tmp_path: Path) -> None:
    LocalBlobStore(tmp_path / "blobs")
    stale, live = tmp_path / "blobs" / "tmp" / "dead-writer", tmp_path / "blobs" / "tmp" / "live-writer"
    stale.write_bytes(b"half")
    live.write_bytes(b"half")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(stale, (two_days_ago, two_days_ago))
    LocalBlobStore(tmp_path / "blobs")  # a restart
    assert not stale.exists()
    assert live.exists()


def test_adopt_file_takes_over_a_verified_file(blob_store: BlobStore, tmp_path: Path) -> None:
    data = pattern(300_000, seed=7)
    path = tmp_path / "staged.bin"
    path.write_bytes(data)
    digest = digest_bytes(data)
    assert blob_store.adopt_file(path, digest) == (digest, len(data))
    assert not path.exists()
    assert b"".join(blob_store.iter_chunks(digest)) == data
    again = tmp_path / "again.bin"
    again.write_bytes(data)
    assert blob_store.adopt_file(again, digest) == (digest, len(data))  # already there: just dropped
    assert not again.exists()
