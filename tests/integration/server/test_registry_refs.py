"""Serving by registry reference: the version is resolved, materialised and served under its name."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.procs import run_pier

from .conftest import start_server

BODY = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [6.7, 3.0, 5.2, 2.3]}]}


def test_serve_a_registered_model_by_alias(iris_model: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    run_pier(["models", "save", str(iris_model), "--name", "iris"], home, check=True)
    run_pier(["models", "alias", "iris", "production", "1"], home, check=True)
    with start_server(["iris:production"], home, "--no-grpc") as server:
        meta = httpx.get(f"{server.url}/v2/models/iris").json()
        assert meta["versions"] == ["1"]
        assert meta["platform"] == "sklearn"
        r = httpx.post(f"{server.url}/v2/models/iris/versions/1/infer", json=BODY)
        assert r.json()["model_version"] == "1"
        assert r.json()["outputs"][0]["data"] == [2]
        wrong = httpx.post(f"{server.url}/v2/models/iris/versions/2/infer", json=BODY)
        assert wrong.status_code == 404
        assert "no version '2'" in wrong.json()["error"]


def test_an_unknown_reference_stops_the_server(tmp_path: Path) -> None:
    import pytest

    with pytest.raises(AssertionError, match="exited with 1"), \
            start_server(["ghost:3"], tmp_path / "home", "--no-grpc"):
        pass


def _flip_a_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def _cached_files(home: Path) -> list[Path]:
    return [p for p in (home / "cache").rglob("*") if p.is_file() and p.name != ".pier-complete"
            and ".staging" not in p.parts]


def test_a_corrupted_cached_model_is_fetched_again_and_logged(iris_model: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    run_pier(["models", "save", str(iris_model), "--name", "iris"], home, check=True)
    with start_server(["iris:1"], home, "--no-grpc"):
        pass  # fills the cache
    cached = _cached_files(home)
    assert cached
    for path in cached:
        _flip_a_bit(path)
    with start_server(["iris:1"], home, "--no-grpc") as server:
        r = httpx.post(f"{server.url}/v2/models/iris/infer", json=BODY)
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["data"] == [2]
    log = server.log.read_text()
    assert "the cached copy of iris:1" in log
    assert "is corrupt" in log


def test_a_model_corrupt_in_the_cache_and_the_blob_store_is_refused(iris_model: Path, tmp_path: Path) -> None:
    import pytest

    home = tmp_path / "home"
    run_pier(["models", "save", str(iris_model), "--name", "iris"], home, check=True)
    with start_server(["iris:1"], home, "--no-grpc"):
        pass
    for path in _cached_files(home):
        _flip_a_bit(path)
    blobs = list((home / "blobs" / "sha256").rglob("*"))
    assert [b for b in blobs if b.is_file()], "the local blob store keeps blobs under blobs/sha256/"
    blobs = [b for b in blobs if b.is_file()]
    for blob in blobs:
        _flip_a_bit(blob)
    with pytest.raises(AssertionError, match="exited with 1") as failed, start_server(["iris:1"], home, "--no-grpc"):
        pass
    assert "corrupt" in str(failed.value)
