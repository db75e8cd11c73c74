"""Errors of the tree raised inside a real ``pier serve`` reach every protocol as the one map says.

A python model raises the error class its input names; V2 REST, KServe V1, Seldon and gRPC must
answer with ``errors.inference_http_status``, ``retry_after_s``, ``seldon_error`` and ``grpc_code`` of
that same error (the unit test walks every class through the adapters; this one checks the
transports really use them). An exception outside the tree is a 500 / INTERNAL with an error id.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import httpx
import pytest

from modelpier import errors
from modelpier.spec.proto import grpc_predict_v2_pb2 as pb
from tests.support.raiser import RAISED, raised, write_raiser_model

from .conftest import Served, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("pier-home")
    with start_server([f"raiser={write_raiser_model(home / 'raiser')}"], home) as served:
        yield served


def v2_body(index: int) -> dict[str, object]:
    return {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP64", "data": [float(index)]}]}


@pytest.mark.parametrize("name", RAISED)
def test_http_protocols_answer_with_the_maps_status_and_retry_after(server: Served, name: str) -> None:
    error = raised(name)
    hint = errors.retry_after_s(error)
    index = RAISED.index(name)
    v2 = httpx.post(f"{server.url}/v2/models/raiser/infer", json=v2_body(index), timeout=10)
    v1 = httpx.post(f"{server.url}/v1/models/raiser:predict", json={"instances": [[float(index)]]}, timeout=10)
    for answer in (v2, v1):
        assert answer.status_code == errors.inference_http_status(error), answer.text
        assert answer.json() == {"error": error.message}
        assert answer.headers.get("retry-after") == (None if hint is None else str(hint))


@pytest.mark.parametrize("name", RAISED)
def test_seldon_answers_the_maps_body(server: Served, name: str) -> None:
    error = raised(name)
    answer = httpx.post(f"{server.url}/api/v1.0/predictions?model=raiser",
                        json={"data": {"names": ["x"], "ndarray": [[float(RAISED.index(name))]]}}, timeout=10)
    assert answer.status_code == errors.inference_http_status(error)
    assert answer.json() == errors.seldon_error(error)


def grpc_infer(server: Served, index: int) -> grpc.RpcError:
    request = pb.ModelInferRequest(model_name="raiser")
    request.inputs.add(name="x", datatype="FP64", shape=[1, 1]).contents.fp64_contents.append(float(index))
    with grpc.insecure_channel(server.grpc) as channel, pytest.raises(grpc.RpcError) as info:
        channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")(request.SerializeToString(), timeout=10)
    return info.value


@pytest.mark.parametrize("name", RAISED)
def test_grpc_answers_the_maps_code(server: Served, name: str) -> None:
    error = raised(name)
    failure = grpc_infer(server, RAISED.index(name))
    assert failure.code() == grpc.StatusCode[errors.grpc_code(error)]
    assert failure.details() == error.message


def test_an_error_outside_the_tree_is_internal_with_an_error_id_everywhere(server: Served) -> None:
    bug = len(RAISED)
    v2 = httpx.post(f"{server.url}/v2/models/raiser/infer", json=v2_body(bug), timeout=10)
    assert v2.status_code == 500
    assert "error id" in v2.json()["error"]
    seldon = httpx.post(f"{server.url}/api/v1.0/predictions?model=raiser",
                        json={"data": {"names": ["x"], "ndarray": [[float(bug)]]}}, timeout=10).json()
    assert (seldon["status"]["code"], seldon["status"]["reason"]) == (500, "INTERNAL")
    failure = grpc_infer(server, bug)
    assert failure.code() == grpc.StatusCode.INTERNAL
    assert "error id" in (failure.details() or "")
    assert "the model hit a bug" not in v2.text + (failure.details() or "")  # never the exception itself
    assert "the model hit a bug" in server.log.read_text()  # the log has it, under the error id
