"""``UploadStager``: offsets, resume (also after a restart), verification, expiry, concurrency."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modelpier.errors import Conflict, DigestMismatch, InvalidInput, NotFound, ServiceUnavailable
from modelpier.registry.blobs import LocalBlobStore
from modelpier.registry.digests import digest_bytes
from modelpier.registry.uploads import UploadStager


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return self.current.timestamp()


class FailingBlobStore(LocalBlobStore):
    """A blob store whose backend is down."""

    def put_file(self, path: Path, *, expected_digest: str | None = None) -> tuple[str, int]:
        raise ServiceUnavailable("blob store is down")

    def adopt_file(self, path: Path, digest: str) -> tuple[str, int]:
        raise ServiceUnavailable("blob store is down")


@pytest.fixture
def stager(tmp_path: Path) -> UploadStager:
    return UploadStager(tmp_path / "uploads")


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def test_append_in_pieces_then_finish(stager: UploadStager, blobs: LocalBlobStore) -> None:
    upload = stager.begin()
    assert stager.offset(upload) == 0
    assert stager.append(upload, 0, [b"hello ", b"wide "]) == 11
    assert stager.append(upload, 11, [b"world"]) == 16
    assert stager.offset(upload) == 16
    digest = digest_bytes(b"hello wide world")
    assert stager.finish(upload, digest, blobs) == (digest, 16)
    assert b"".join(blobs.iter_chunks(digest)) == b"hello wide world"
    with pytest.raises(NotFound, match="does not exist"):
        stager.offset(upload)  # a finished upload is gone


def test_a_wrong_offset_is_a_conflict_naming_the_right_one(stager: UploadStager) -> None:
    upload = stager.begin()
    stager.append(upload, 0, [b"12345"])
    for wrong in (0, 3, 9):
        with pytest.raises(Conflict, match=r"is at offset 5, not .*; resume from 5") as info:
            stager.append(upload, wrong, [b"x"])
        assert info.value.details["offset"] == 5
    assert stager.offset(upload) == 5


def test_an_interrupted_append_keeps_what_arrived(stager: UploadStager, blobs: LocalBlobStore) -> None:
    upload = stager.begin()

    def dropped() -> Iterator[bytes]:
        yield b"first half "
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        stager.append(upload, 0, dropped())
    resumed_at = stager.offset(upload)
    assert resumed_at == len(b"first half ")
    stager.append(upload, resumed_at, [b"second half"])
    digest = digest_bytes(b"first half second half")
    assert stager.finish(upload, digest, blobs) == (digest, 22)


def test_resume_after_a_restart(tmp_path: Path, blobs: LocalBlobStore) -> None:
    before = UploadStager(tmp_path / "uploads")
    upload = before.begin()
    before.append(upload, 0, [b"part one, "])
    after = UploadStager(tmp_path / "uploads")  # a new process: no in-memory hasher
    assert after.offset(upload) == 10
    after.append(upload, 10, [b"part two"])
    digest = digest_bytes(b"part one, part two")
    assert after.finish(upload, digest, blobs) == (digest, 18)


def test_digest_mismatch_stores_nothing_and_discards_the_upload(
        stager: UploadStager, blobs: LocalBlobStore) -> None:
    upload = stager.begin()
    stager.append(upload, 0, [b"actual bytes"])
    announced = digest_bytes(b"other bytes")
    with pytest.raises(DigestMismatch, match=f"but {announced} was announced; the upload was discarded"):
        stager.finish(upload, announced, blobs)
    assert not blobs.exists(announced)
    assert not blobs.exists(digest_bytes(b"actual bytes"))
    with pytest.raises(NotFound):
        stager.offset(upload)


def test_digest_mismatch_after_a_restart_is_detected_by_rehashing(
        tmp_path: Path, blobs: LocalBlobStore) -> None:
    upload = UploadStager(tmp_path / "uploads").begin()
    UploadStager(tmp_path / "uploads").append(upload, 0, [b"abc"])
    with pytest.raises(DigestMismatch):
        UploadStager(tmp_path / "uploads").finish(upload, digest_bytes(b"abd"), blobs)


def test_a_failing_blob_store_keeps_the_upload_for_a_retry(stager: UploadStager, tmp_path: Path) -> None:
    upload = stager.begin()
    stager.append(upload, 0, [b"precious"])
    digest = digest_bytes(b"precious")
    with pytest.raises(ServiceUnavailable):
        stager.finish(upload, digest, FailingBlobStore(tmp_path / "down"))
    assert stager.offset(upload) == 8
    assert stager.finish(upload, digest, LocalBlobStore(tmp_path / "up")) == (digest, 8)


def test_finish_rejects_a_malformed_digest(stager: UploadStager, blobs: LocalBlobStore) -> None:
    upload = stager.begin()
    with pytest.raises(InvalidInput, match="sha256:<64 lowercase hex"):
        stager.finish(upload, "md5:1234", blobs)
    assert stager.offset(upload) == 0


@pytest.mark.parametrize("upload_id", ["0" * 24, "../../etc/passwd", "", "ABCDEF" * 4])
def test_unknown_or_malformed_ids_are_not_found(stager: UploadStager, blobs: LocalBlobStore,
                                                upload_id: str) -> None:
    with pytest.raises(NotFound):
        stager.offset(upload_id)
    with pytest.raises(NotFound):
        stager.append(upload_id, 0, [b"x"])
    with pytest.raises(NotFound):
        stager.finish(upload_id, digest_bytes(b"x"), blobs)
    with pytest.raises(NotFound):
        stager.abort(upload_id)


def test_abort(stager: UploadStager) -> None:
    upload = stager.begin()
    stager.append(upload, 0, [b"data"])
    stager.abort(upload)
    with pytest.raises(NotFound):
        stager.offset(upload)
    with pytest.raises(NotFound):
        stager.abort(upload)


def test_purge_removes_only_stale_uploads(tmp_path: Path) -> None:
    stager = UploadStager(tmp_path / "uploads")
    old, fresh = stager.begin(), stager.begin()
    two_hours_ago = (datetime.now(UTC) - timedelta(hours=2)).timestamp()
    os.utime(tmp_path / "uploads" / old, (two_hours_ago, two_hours_ago))  # last append long ago
    assert stager.purge_older_than(3600) == [old]
    with pytest.raises(NotFound):
        stager.offset(old)
    assert stager.offset(fresh) == 0


def test_purge_follows_the_injected_clock(tmp_path: Path) -> None:
    clock = FakeClock(datetime.now(UTC))
    stager = UploadStager(tmp_path / "uploads", clock=clock)
    upload = stager.begin()
    assert stager.purge_older_than(3600) == []
    clock.current += timedelta(hours=2)
    assert stager.purge_older_than(3600) == [upload]


def test_purge_keeps_recent_uploads(stager: UploadStager) -> None:
    upload = stager.begin()
    assert stager.purge_older_than(3600) == []
    assert stager.offset(upload) == 0


def test_concurrent_appends_at_one_offset_let_exactly_one_win(stager: UploadStager) -> None:
    upload = stager.begin()
    start = threading.Barrier(8)

    def attempt(i: int) -> str:
        start.wait()
        try:
            stager.append(upload, 0, [bytes([65 + i]) * 1000])
        except Conflict:
            return "conflict"
        return "won"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, range(8)))
    assert sorted(outcomes) == ["conflict"] * 7 + ["won"]
    assert stager.offset(upload) == 1000


def test_many_uploads_in_parallel(stager: UploadStager, blobs: LocalBlobStore) -> None:
    def one(i: int) -> tuple[str, int]:
        upload = stager.begin()
        data = f"payload {i} ".encode() * 100
        offset = 0
        for start in range(0, len(data), 128):
            offset = stager.append(upload, offset, [data[start:start + 128]])
        return stager.finish(upload, digest_bytes(data), blobs)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(16)))
    assert all(blobs.exists(digest) for digest, _ in results)
    assert len({digest for digest, _ in results}) == 16
