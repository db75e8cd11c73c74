"""``open_blob_store``: which URL gives which store, and clear errors for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelpier.errors import InvalidSpec
from modelpier.registry.blobs import LocalBlobStore, open_blob_store
from modelpier.registry.blobs.s3 import S3BlobStore


def test_a_plain_path_is_a_local_folder(tmp_path: Path) -> None:
    store = open_blob_store(str(tmp_path / "blobs"))
    assert isinstance(store, LocalBlobStore)
    assert store.root == (tmp_path / "blobs").resolve()
    assert store.url == (tmp_path / "blobs").resolve().as_uri()


def test_a_file_url_is_a_local_folder(tmp_path: Path) -> None:
    store = open_blob_store((tmp_path / "with space").as_uri())
    assert isinstance(store, LocalBlobStore)
    assert store.root == (tmp_path / "with space").resolve()


def test_an_s3_url_is_a_bucket_and_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    store = open_blob_store("s3://models/team/a/", s3_endpoint_url="http://127.0.0.1:9")
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix, store.url) == ("models", "team/a", "s3://models/team/a")
    assert store.key_of("sha256:" + "ab" * 32) == "team/a/sha256/" + "ab" * 32
    bare = open_blob_store("s3://models")
    assert isinstance(bare, S3BlobStore)
    assert bare.key_of("sha256:" + "cd" * 32) == "sha256/" + "cd" * 32


@pytest.mark.parametrize(("url", "message"), [
    ("", "must not be empty"),
    ("gs://bucket/x", "unsupported scheme 'gs'"),
    ("s3:///prefix", "names no bucket"),
    ("file://otherhost/data", "must be local"),
])
def test_other_urls_are_invalid_spec_naming_the_url(url: str, message: str) -> None:
    with pytest.raises(InvalidSpec, match=message):
        open_blob_store(url)


def test_s3_part_size_below_the_minimum_is_rejected() -> None:
    with pytest.raises(InvalidSpec, match="below S3's minimum"):
        S3BlobStore("bucket", part_size=1024)
