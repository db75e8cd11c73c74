"""The HTTP transport in-process (ASGI), on an in-memory runtime: routes, codecs, error shapes."""

from __future__ import annotations

import gzip
import json
from typing import Any

import httpx
import numpy as np

from modelpier.server.codecs.v2_binary import array_to_raw
from modelpier.server.config import ServerConfig

from .fakes import Doubler, run, serve

INFER = "/v2/models/m/infer"
GOOD = {"id": "r1", "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [1, 2, 3, 4]}]}


async def _exchange(calls: list[tuple[str, str, Any]], runtime: Any = None, **options: Any) -> list[httpx.Response]:
    server = serve(runtime or Doubler(), **options)
    await server.repository.load_all()
    transport = httpx.ASGITransport(app=server.http)
    out = []
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for method, path, body in calls:
            if isinstance(body, bytes | str):
                out.append(await client.request(method, path, content=body))
            elif isinstance(body, tuple):
                content, headers = body
                out.append(await client.request(method, path, content=content, headers=headers))
            else:
                out.append(await client.request(method, path, json=body))
    return out


def exchange(*calls: tuple[str, str, Any], runtime: Any = None, **options: Any) -> list[httpx.Response]:
    return run(lambda: _exchange(list(calls), runtime, **options))  # type: ignore[no-any-return]


def test_v2_infer_round_trip_echoes_the_id_and_parameters() -> None:
    body = {**GOOD, "parameters": {"tenant": "a", "binary_data_output": False}}
    (r,) = exchange(("POST", INFER, body))
    assert r.status_code == 200
    doc = r.json()
    assert doc["id"] == "r1"
    assert doc["model_name"] == "m"
    assert doc["model_version"] == "1"
    assert doc["parameters"] == {"tenant": "a"}
    outputs = {o["name"]: o for o in doc["outputs"]}
    assert outputs["y"] == {"name": "y", "datatype": "FP64", "shape": [2, 2], "data": [2.0, 4.0, 6.0, 8.0]}
    assert outputs["label"]["data"] == [0, 1]


def test_requested_outputs_select_and_order_the_response() -> None:
    (r,) = exchange(("POST", "/v2/models/m/versions/1/infer", {**GOOD, "outputs": [{"name": "label"}]}))
    assert [o["name"] for o in r.json()["outputs"]] == ["label"]


def test_binary_extension_in_and_out() -> None:
    x = np.array([[1.0, 2.0]])
    raw = array_to_raw(x)
    header = json.dumps({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64",
                                     "parameters": {"binary_data_size": len(raw)}}],
                         "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}).encode()
    headers = {"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"}
    (r,) = exchange(("POST", INFER, (header + raw, headers)))
    assert r.status_code == 200, r.text
    length = int(r.headers["inference-header-content-length"])
    doc = json.loads(r.content[:length])
    assert doc["outputs"][0]["parameters"]["binary_data_size"] == 16
    assert np.frombuffer(r.content[length:], dtype="<f8").tolist() == [2.0, 4.0]


def test_gzip_bodies_are_accepted() -> None:
    (r,) = exchange(("POST", INFER, (gzip.compress(json.dumps(GOOD).encode()), {"Content-Encoding": "gzip"})))
    assert r.status_code == 200


def test_errors_use_the_v2_shape_and_status() -> None:
    responses = exchange(
        ("POST", "/v2/models/nope/infer", GOOD),
        ("POST", INFER, b"{not json"),
        ("POST", INFER, {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}),
        ("POST", INFER, {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP99", "data": [1, 2]}]}),
        ("POST", INFER, {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1]}]}),
        ("POST", INFER, {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [-1, 1]}]}),
        ("GET", "/v2/models/m/versions/7", None),
        ("GET", INFER, None),
        ("POST", INFER, GOOD),
    )
    assert [r.status_code for r in responses] == [404, 400, 400, 400, 400, 500, 404, 405, 200]
    messages = [r.json()["error"] for r in responses[:-1]]
    assert "'nope'" in messages[0]
    assert "malformed JSON" in messages[1]
    assert "'x'" in messages[2]
    assert "[-1, 2]" in messages[2]
    assert "FP99" in messages[3]
    assert "needs 2 values" in messages[4]
    assert "error id" in messages[5]
    assert "Traceback" not in messages[5]


def test_413_for_a_body_over_the_limit() -> None:
    big = {"inputs": [{"name": "x", "shape": [300, 2], "datatype": "FP64", "data": [1.5] * 600}]}
    r, ok = exchange(("POST", INFER, big), ("POST", INFER, GOOD), max_body_bytes=2048)
    assert r.status_code == 413
    assert "limit" in r.json()["error"]
    assert ok.status_code == 200


def test_health_metadata_and_readiness() -> None:
    live, ready, server, model, model_ready = exchange(
        ("GET", "/v2/health/live", None), ("GET", "/v2/health/ready", None), ("GET", "/v2", None),
        ("GET", "/v2/models/m", None), ("GET", "/v2/models/m/ready", None))
    assert live.json() == {"live": True}
    assert ready.json() == {"ready": True}
    assert server.json()["name"] == "modelpier"
    assert "binary_tensor_data" in server.json()["extensions"]
    assert model.json() == {"name": "m", "versions": ["1"], "platform": "python",
                            "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 2]}],
                            "outputs": [{"name": "y", "datatype": "FP64", "shape": [-1, 2]},
                                        {"name": "label", "datatype": "INT64", "shape": [-1]}]}
    assert model_ready.status_code == 200


def test_not_ready_until_loaded() -> None:
    async def go() -> tuple[int, int]:
        server = serve(Doubler())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server.http), base_url="http://t") as c:
            before = (await c.get("/v2/health/ready")).status_code
            infer = await c.post(INFER, json=GOOD)
            assert infer.headers["retry-after"] == "1"
            return before, infer.status_code

    assert run(go) == (503, 503)


def test_kserve_v1() -> None:
    status, predict, bad, missing = exchange(
        ("GET", "/v1/models/m", None),
        ("POST", "/v1/models/m:predict", {"instances": [[1, 2], [3, 4]]}),
        ("POST", "/v1/models/m:predict", {"instances": [[1, 2, 3]]}),
        ("POST", "/v1/models/zz:predict", {"instances": [[1, 2]]}),
    )
    assert status.json() == {"name": "m", "ready": True}
    assert predict.json() == {"predictions": [[2.0, 4.0], [6.0, 8.0]]}
    assert bad.status_code == 400
    assert "'x'" in bad.json()["error"]
    assert missing.status_code == 404


def test_seldon_ndarray_tensor_and_json_data() -> None:
    nd, tensor, jd, bad = exchange(
        ("POST", "/api/v1.0/predictions", {"data": {"names": ["a", "b"], "ndarray": [[1, 2]]}, "meta": {"puid": "p"}}),
        ("POST", "/api/v0.1/predictions", {"data": {"tensor": {"shape": [1, 2], "values": [1, 2]}}}),
        ("POST", "/api/v1.0/predictions", {"jsonData": {"x": [[1, 2]]}}),
        ("POST", "/api/v1.0/predictions", {"data": {"strData": "hi"}}),
    )
    assert nd.json() == {"data": {"names": ["y:0", "y:1"], "ndarray": [[2.0, 4.0]]},
                         "meta": {"requestPath": {"m": "1"}, "puid": "p"}}
    assert tensor.json()["data"]["tensor"] == {"shape": [1, 2], "values": [2.0, 4.0]}
    assert jd.json()["jsonData"] == {"y": [[2.0, 4.0]], "label": [0]}
    assert bad.status_code == 400
    assert bad.json()["status"]["status"] == "FAILURE"
    assert bad.json()["status"]["code"] == 400


def test_metrics_count_requests_by_status() -> None:
    *_, metrics = exchange(("POST", INFER, GOOD), ("POST", INFER, b"{"), ("GET", "/metrics", None))
    text = metrics.text
    assert 'modelpier_requests_total{model="m",protocol="v2-rest",status="ok"} 1.0' in text
    assert 'modelpier_requests_total{model="m",protocol="v2-rest",status="invalid_input"} 1.0' in text
    assert 'modelpier_model_ready{model="m"} 1.0' in text
    assert "modelpier_request_duration_seconds_bucket" in text


def test_docs_are_served_offline() -> None:
    page, spec, js, missing = exchange(("GET", "/docs", None), ("GET", "/openapi.json", None),
                                       ("GET", "/docs/static/swagger-ui-bundle.js", None),
                                       ("GET", "/docs/static/nope.js", None))
    # Relative: through the gateway the page is /{project}/{deployment}/docs, and so must be what it loads.
    assert "'docs/static/swagger-ui-bundle.js'" in page.text or '"docs/static/swagger-ui-bundle.js"' in page.text
    assert "url: 'openapi.json'" in page.text
    assert "'/openapi.json'" not in page.text
    assert "cdn" not in page.text.lower()
    assert spec.json()["servers"] == [{"url": "."}]
    paths = spec.json()["paths"]
    assert "/v2/models/{name}/infer" in paths
    assert "/api/v1.0/predictions" in paths
    assert len(js.content) > 100_000
    assert missing.status_code == 404


def test_unknown_routes() -> None:
    (r,) = exchange(("GET", "/nowhere", None))
    assert r.status_code == 404


def test_config_rejects_bad_values() -> None:
    import pytest

    from modelpier.errors import InvalidSpec

    with pytest.raises(InvalidSpec):
        ServerConfig(models=())
