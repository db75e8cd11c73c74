"""Streaming verification: the last chunk is held back until the digest matches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelpier.errors import CorruptBlob, DigestMismatch
from modelpier.registry.blobs.verify import VerifiedChunks, check_expected, hash_stream, write_atomically
from modelpier.registry.digests import digest_bytes


class Closer:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def test_good_stream_passes_through_and_closes() -> None:
    closer = Closer()
    chunks = [b"ab", b"", b"cd", b"e"]
    stream = VerifiedChunks(iter(chunks), digest_bytes(b"abcde"), "mem://", closer)
    assert list(stream) == [b"ab", b"cd", b"e"]
    assert closer.calls == 1
    assert list(stream) == []


def test_corrupt_stream_raises_instead_of_the_last_chunk() -> None:
    closer = Closer()
    stream = VerifiedChunks(iter([b"ab", b"cd", b"ef"]), digest_bytes(b"abcdeX"), "mem://x", closer)
    assert next(stream) == b"ab"
    assert next(stream) == b"cd"
    with pytest.raises(CorruptBlob, match="mem://x is corrupt"):
        next(stream)
    assert closer.calls == 1


def test_empty_stream() -> None:
    assert list(VerifiedChunks(iter([]), digest_bytes(b""), "mem://", Closer())) == []
    with pytest.raises(CorruptBlob):
        list(VerifiedChunks(iter([]), digest_bytes(b"x"), "mem://", Closer()))


def test_source_errors_propagate_and_close() -> None:
    closer = Closer()

    def failing() -> Iterator[bytes]:
        yield b"a"
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(VerifiedChunks(failing(), digest_bytes(b"a"), "mem://", closer))
    assert closer.calls == 1


def test_closing_early_or_dropping_closes_once() -> None:
    closer = Closer()
    stream = VerifiedChunks(iter([b"a", b"b"]), digest_bytes(b"ab"), "mem://", closer)
    stream.close()
    stream.close()
    assert closer.calls == 1
    dropped = Closer()
    VerifiedChunks(iter([b"a"]), digest_bytes(b"a"), "mem://", dropped)
    assert dropped.calls == 1  # the unreferenced iterator was collected and closed


def test_hash_stream_and_check_expected() -> None:
    assert hash_stream([b"ab", b"c"]) == (digest_bytes(b"abc"), 3)
    check_expected(digest_bytes(b"abc"), 3, digest_bytes(b"abc"))
    with pytest.raises(DigestMismatch, match="received 3 bytes"):
        check_expected(digest_bytes(b"abc"), 3, digest_bytes(b"abd"))


def test_write_atomically_leaves_nothing_on_failure(tmp_path: Path) -> None:
    def failing() -> Iterator[bytes]:
        yield b"partial"
        raise CorruptBlob("bad")

    dest = tmp_path / "sub" / "file.bin"
    with pytest.raises(CorruptBlob):
        write_atomically(failing(), dest)
    assert list((tmp_path / "sub").iterdir()) == []
    write_atomically(iter([b"whole"]), dest)
    assert dest.read_bytes() == b"whole"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["file.bin"]
