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
