"""Every protocol against one real server (iris LogisticRegression + a python model), over loopback.

Each bad request is followed by a good one: the server must keep serving after every error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from modelpier.spec.proto import grpc_predict_v2_pb2 as pb

from .conftest import Served, start_server, write_gated_model

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
GOOD = {"id": "req-1", "parameters": {"tenant": "acme"},
        "inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": ROWS}]}


@pytest.fixture(scope="module")
def server(iris_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("pier-home")
    gated = write_gated_model(home / "gated")
    with start_server([f"iris={iris_model}", f"gated={gated}"], home) as served:
        yield served


def infer(server: Served, body: Any, model: str = "iris") -> httpx.Response:
    return httpx.post(f"{server.url}/v2/models/{model}/infer", json=body)


def assert_good(server: Served) -> None:
    r = infer(server, GOOD)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [0, 2]


def test_v2_rest_infer(server: Served) -> None:
    r = infer(server, GOOD)
    doc = r.json()
    assert r.status_code == 200
    assert doc["id"] == "req-1"
    assert doc["parameters"] == {"tenant": "acme"}
    outputs = {o["name"]: o for o in doc["outputs"]}
    assert outputs["predict"]["data"] == [0, 2]
    assert outputs["predict"]["datatype"] == "INT64"
    assert outputs["predict_proba"]["shape"] == [2, 3]


def test_v2_rest_health_and_metadata(server: Served) -> None:
    assert httpx.get(f"{server.url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{server.url}/v2/health/ready").json() == {"ready": True}
    assert httpx.get(f"{server.url}/v2/models/iris/ready").status_code == 200
    meta = httpx.get(f"{server.url}/v2/models/iris").json()
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert httpx.get(f"{server.url}/v2").json()["name"] == "modelpier"


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}, 400,
     ["'input-0'", "[-1, 4]", "[1, 3]"]),
    ({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "BYTES", "data": ["a", "b", "c", "d"]}]}, 400,
     ["'input-0'", "FP64", "BYTES"]),
    ({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64"}]}, 400, ["'input-0'", "no 'data'"]),
    ({"inputs": []}, 400, ["inputs"]),
], ids=["shape", "datatype", "no-data", "missing-input"])
def test_v2_rest_bad_inputs_name_the_input(server: Served, body: Any, status: int, words: list[str]) -> None:
    r = infer(server, body)
    assert r.status_code == status
    for word in words:
        assert word in r.json()["error"]
    assert_good(server)


def test_v2_rest_malformed_json_unknown_model_and_model_failure(server: Served) -> None:
    r = httpx.post(f"{server.url}/v2/models/iris/infer", content=b'{"inputs": [',
                   headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "malformed JSON" in r.json()["error"]
    assert_good(server)
    r = infer(server, GOOD, model="nope")
    assert r.status_code == 404
    assert "'nope'" in r.json()["error"]
    assert_good(server)
    r = infer(server, {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP64", "data": [-1]}]}, model="gated")
    assert r.status_code == 500
    assert "error id" in r.json()["error"]
    assert "Traceback" not in r.text
    error_id = r.json()["error"].rsplit(" ", 1)[1]
    assert error_id in server.log.read_text()  # the log has it, with the traceback
    assert_good(server)


def test_tritonclient_http_binary_and_json(server: Served) -> None:
    client = triton_http.InferenceServerClient(url=server.url.removeprefix("http://"))
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert client.get_model_metadata("iris")["platform"] == "sklearn"
    data = np.array(ROWS, dtype=np.float64)
    for binary in (True, False):
        tensor = triton_http.InferInput("input-0", list(data.shape), "FP64")
        tensor.set_data_from_numpy(data, binary_data=binary)
        outputs = [triton_http.InferRequestedOutput("predict_proba", binary_data=binary)]
        result = client.infer("iris", [tensor], outputs=outputs, request_id="t-1")
        proba = result.as_numpy("predict_proba")
        assert proba.shape == (2, 3)
        assert proba.argmax(axis=1).tolist() == [0, 2]
        assert result.get_response()["id"] == "t-1"
    result = client.infer("iris", [tensor])  # no outputs named: every output, as binary
    assert result.as_numpy("predict").tolist() == [0, 2]
    bad = triton_http.InferInput("input-0", [1, 3], "FP64")
    bad.set_data_from_numpy(np.ones((1, 3)))
    with pytest.raises(InferenceServerException, match="input-0"):
        client.infer("iris", [bad])
    client.close()


def test_tritonclient_grpc(server: Served) -> None:
    client = triton_grpc.InferenceServerClient(url=server.grpc)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    meta = client.get_model_metadata("iris")
    assert meta.name == "iris"
    assert meta.inputs[0].shape == [-1, 4]
    assert client.get_server_metadata().name == "modelpier"
    tensor = triton_grpc.InferInput("input-0", [2, 4], "FP64")
    tensor.set_data_from_numpy(np.array(ROWS))
    result = client.infer("iris", [tensor], request_id="g-1")
    assert result.as_numpy("predict").tolist() == [0, 2]
    assert result.get_response().id == "g-1"
    with pytest.raises(InferenceServerException, match="not served"):
        client.infer("nope", [tensor])
    bad = triton_grpc.InferInput("input-0", [1, 3], "FP64")
    bad.set_data_from_numpy(np.ones((1, 3)))
    with pytest.raises(InferenceServerException, match="input-0"):
        client.infer("iris", [bad])
    assert client.infer("iris", [tensor]).as_numpy("predict").tolist() == [0, 2]
    client.close()


def _grpc_call(server: Served, method: str, payload: bytes) -> bytes:
    with grpc.insecure_channel(server.grpc) as channel:
        call = channel.unary_unary(f"/inference.GRPCInferenceService/{method}")
        return call(payload, timeout=10)  # type: ignore[no-any-return]


def test_grpcio_typed_contents_and_malformed_protobuf(server: Served) -> None:
    request = pb.ModelInferRequest(model_name="iris", id="typed")
    tensor = request.inputs.add(name="input-0", datatype="FP64", shape=[2, 4])
    tensor.contents.fp64_contents.extend(np.array(ROWS).ravel().tolist())
    response = pb.ModelInferResponse.FromString(_grpc_call(server, "ModelInfer", request.SerializeToString()))
    predict = next(o for o in response.outputs if o.name == "predict")
    assert list(predict.contents.int64_contents) == [0, 2]
    assert response.id == "typed"
    with pytest.raises(grpc.RpcError) as info:
        _grpc_call(server, "ModelInfer", b"\xff\xff\xff garbage")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed ModelInferRequest" in (info.value.details() or "")
    tensor.ClearField("contents")
    tensor.contents.fp64_contents.extend([1.0, 2.0])
    with pytest.raises(grpc.RpcError) as info:
        _grpc_call(server, "ModelInfer", request.SerializeToString())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'input-0'" in (info.value.details() or "")
    assert pb.ServerLiveResponse.FromString(_grpc_call(server, "ServerLive", b"")).live


def test_kserve_v1(server: Served) -> None:
    assert httpx.get(f"{server.url}/v1/models/iris").json() == {"name": "iris", "ready": True}
    r = httpx.post(f"{server.url}/v1/models/iris:predict", json={"instances": ROWS})
    assert r.json() == {"predictions": [0, 2]}
    bad = httpx.post(f"{server.url}/v1/models/iris:predict", json={"instances": [[1, 2]]})
    assert bad.status_code == 400
    assert "'input-0'" in bad.json()["error"]
    bad = httpx.post(f"{server.url}/v1/models/iris:predict", content=b"nope")
    assert bad.status_code == 400
    assert httpx.post(f"{server.url}/v1/models/iris:predict", json={"instances": ROWS}).status_code == 200


def test_seldon(server: Served) -> None:
    url = f"{server.url}/api/v1.0/predictions?model=iris"
    r = httpx.post(url, json={"data": {"names": ["a", "b", "c", "d"], "ndarray": ROWS}})
    assert r.json()["data"] == {"names": ["predict"], "ndarray": [0, 2]}
    r = httpx.post(url, json={"data": {"tensor": {"shape": [2, 4], "values": np.ravel(ROWS).tolist()}}})
    assert r.json()["data"]["tensor"] == {"shape": [2], "values": [0, 2]}
    r = httpx.post(url, json={"jsonData": {"input-0": ROWS}})
    assert r.json()["jsonData"]["predict"] == [0, 2]
    bad = httpx.post(url, json={"data": {"ndarray": [[1, 2]]}})
    status = bad.json()["status"]
    assert bad.status_code == 400
    assert status["status"] == "FAILURE"
    assert "'input-0'" in status["info"]
    several = httpx.post(f"{server.url}/api/v1.0/predictions", json={"data": {"ndarray": ROWS}})
    assert several.status_code == 400
    assert "?model=" in several.json()["status"]["info"]
    assert httpx.post(url, json={"data": {"ndarray": ROWS}}).status_code == 200


def test_metrics_and_docs(server: Served) -> None:
    assert_good(server)
    assert server.metric("modelpier_requests_total", model="iris", protocol="v2-rest", status="ok") >= 1
    assert server.metric("modelpier_model_load_seconds", model="iris") > 0
    assert server.metric("modelpier_model_ready", model="gated") == 1
    page = httpx.get(f"{server.url}/docs")
    assert page.status_code == 200
    assert "swagger-ui-bundle.js" in page.text
    assert httpx.get(f"{server.url}/docs/static/swagger-ui.css").status_code == 200
    assert "/v1/models/{name}:predict" in httpx.get(f"{server.url}/openapi.json").json()["paths"]
