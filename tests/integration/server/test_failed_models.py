"""A model that fails to load never takes the other models of its server down."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from .conftest import start_server

BODY = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [6.7, 3.0, 5.2, 2.3]}]}
BROKEN = '''
class Broken:
    def load(self, path):
        raise RuntimeError("the weights file is truncated")

    def predict(self, inputs):
        return inputs
'''


def test_the_others_serve_and_the_failed_one_reports_why(iris_model: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.py").write_text(BROKEN)
    (broken / "python-model.json").write_text(json.dumps({"class": "Broken"}))
    with start_server([f"iris={iris_model}", f"broken={broken}"], tmp_path / "home", "--no-grpc") as server:
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
        assert httpx.post(f"{server.url}/v2/models/iris/infer", json=BODY).json()["outputs"][0]["data"] == [2]
        ready = httpx.get(f"{server.url}/v2/models/broken/ready")
        assert ready.status_code == 503
        assert "truncated" in ready.json()["reason"]
        meta = httpx.get(f"{server.url}/v2/models/broken").json()
        assert meta["parameters"]["state"] == "failed"
        assert "truncated" in meta["parameters"]["reason"]
        infer = httpx.post(f"{server.url}/v2/models/broken/infer", json=BODY)
        assert infer.status_code == 503
        assert "failed to load" in infer.json()["error"]
        assert "truncated" in infer.json()["error"]
    log = server.log.read_text()
    assert "model broken failed to load" in log
    assert "failed to load: broken" in log
