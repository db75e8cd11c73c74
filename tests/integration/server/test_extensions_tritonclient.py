"""tritonclient, a real third-party client, against the server's V2 extensions: statistics, the model
repository, per-output binary_data, and its request timeout parameter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from tests.integration.sdk.client_support import executions, write_counting_model

from .conftest import Served, start_server

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])


@pytest.fixture(scope="module")
def server(iris_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("ext")
    log = home / "calls.log"
    folder = write_counting_model(home / "counting", log)
    with start_server([f"iris={iris_model}", f"counting={folder}"], home, "--repository-api",
                      "--inline-predict-us", "0") as served:
        yield served


def _client(server: Served) -> triton_http.InferenceServerClient:
    return triton_http.InferenceServerClient(server.url.removeprefix("http://"))


def _inputs(binary: bool = True) -> list[triton_http.InferInput]:
    tensor = triton_http.InferInput("input-0", list(ROWS.shape), "FP64")
    tensor.set_data_from_numpy(ROWS, binary_data=binary)
    return [tensor]


def test_statistics(server: Served) -> None:
    client = _client(server)
    for _ in range(3):
        client.infer("iris", _inputs())
    (stat,) = client.get_inference_statistics("iris")["model_stats"]
    assert stat["name"] == "iris"
    assert stat["inference_count"] >= 6  # rows
    assert stat["inference_stats"]["success"]["count"] >= 3
    assert stat["execution_count"] >= 1
    every = client.get_inference_statistics()["model_stats"]
    assert {s["name"] for s in every} == {"iris", "counting"}
    with pytest.raises(InferenceServerException, match="not served here"):
        client.get_inference_statistics("nope")


def test_repository_index_unload_load(server: Served) -> None:
    client = _client(server)
    assert {m["name"]: m["state"] for m in client.get_model_repository_index()} == {"iris": "READY",
                                                                                    "counting": "READY"}
    client.unload_model("iris")
    assert not client.is_model_ready("iris")
    with pytest.raises(InferenceServerException, match="load it with"):
        client.infer("iris", _inputs())
    client.load_model("iris")
    assert client.is_model_ready("iris")
    assert client.infer("iris", _inputs()).as_numpy("predict").tolist() == [0, 2]
    with pytest.raises(InferenceServerException, match="not in this server's repository"):
        client.load_model("nope")


@pytest.mark.parametrize("proba_binary", [False, True])
def test_each_output_gets_the_encoding_it_asked_for(server: Served, proba_binary: bool) -> None:
    outputs = [triton_http.InferRequestedOutput("predict", binary_data=not proba_binary),
               triton_http.InferRequestedOutput("predict_proba", binary_data=proba_binary)]
    result = _client(server).infer("iris", _inputs(), outputs=outputs)
    assert result.as_numpy("predict").tolist() == [0, 2]
    assert result.as_numpy("predict_proba").shape == (2, 3)
    by_name = {o["name"]: o for o in result.get_response()["outputs"]}
    assert ("binary_data_size" in (by_name["predict_proba"].get("parameters") or {})) is proba_binary
    assert ("binary_data_size" in (by_name["predict"].get("parameters") or {})) is (not proba_binary)


def test_the_timeout_parameter_bounds_the_request(server: Served) -> None:
    log = Path((server.log.parent / "counting" / "log-path").read_text())
    tensor = triton_http.InferInput("x", [1, 1], "FP64")
    tensor.set_data_from_numpy(np.array([[201.0]]))
    try:
        with pytest.raises(InferenceServerException, match=r"did not answer within 0\.2s"):
            _client(server).infer("counting", [tensor], timeout=200_000)  # microseconds
    finally:
        (log.parent / "gate-1").touch()
    assert executions(log) == [201]
