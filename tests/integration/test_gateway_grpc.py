"""V2 gRPC through the gateway of a real ``pier up``: the deployment named by metadata, real replicas.

The replicas are started by the local backend with a gRPC port each; the control plane publishes
their gRPC addresses in the routing table; the gateway forwards raw gRPC calls to them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from modelpier.server.proto import grpc_predict_v2_pb2 as pb
from tests.integration.platform_support import Platform, pier_down, replica_env, run_platform, save_models
from tests.support.procs import ADMIN_TOKEN

pytestmark = pytest.mark.slow

INFER = "/inference.GRPCInferenceService/ModelInfer"
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
IRIS = (("x-pier-deployment", "default/iris"),)


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return replica_env(34000 + (os.getpid() % 50) * 200 % 20000)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("grpc-gateway")
    save_models(home)
    try:
        with run_platform(home, env) as p:
            p.apply("iris", [{"name": "main", "model": "iris:1", "replicas": 1}])
            p.apply("guarded", [{"name": "main", "model": "iris:1", "replicas": 1}], auth={"mode": "token"})
            p.wait_ready("iris", 1)
            p.wait_ready("guarded", 1)
            yield p
    finally:
        pier_down(home, env)


@pytest.fixture(scope="module")
def address(env: dict[str, str]) -> str:
    return f"127.0.0.1:{env['PIER_PLATFORM__GATEWAY_GRPC_PORT']}"


@pytest.fixture(scope="module")
def channel(address: str, platform: Platform) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(address) as ch:
        yield ch


def infer_request(rows: list[list[float]]) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="iris", id="g-1")
    tensor = request.inputs.add(name="input-0", datatype="FP64", shape=[len(rows), len(rows[0])])
    tensor.contents.fp64_contents.extend(np.array(rows).ravel().tolist())
    return request


def replica_grpc_address(platform: Platform, deployment: str) -> str:
    state = json.loads((platform.home / "replicas" / "state.json").read_text())
    [replica] = [r for r in state["replicas"] if r["spec"]["deployment"] == deployment]
    return f"127.0.0.1:{replica['grpc_port']}"


def test_tritonclient_infers_through_the_gateway(platform: Platform, address: str) -> None:
    client = triton_grpc.InferenceServerClient(url=address)
    headers = dict(IRIS)
    assert client.is_server_live(headers=headers)
    assert client.is_model_ready("iris", headers=headers)
    assert client.get_model_metadata("iris", headers=headers).inputs[0].shape == [-1, 4]
    tensor = triton_grpc.InferInput("input-0", [2, 4], "FP64")
    tensor.set_data_from_numpy(np.array(ROWS))
    result = client.infer("iris", [tensor], headers=headers)
    flat = [x for row in ROWS for x in row]
    over_http = httpx.post(f"{platform.gateway}/default/iris/v2/models/iris/infer", timeout=10, json={
        "inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": flat}]}).json()
    expected = next(o["data"] for o in over_http["outputs"] if o["name"] == "predict")
    assert result.as_numpy("predict").tolist() == expected == [0, 2]
    assert result.get_response().model_version == "1"
    client.close()


def test_trailing_metadata_says_predictor_and_version(channel: grpc.Channel) -> None:
    response, call = channel.unary_unary(INFER).with_call(
        infer_request(ROWS).SerializeToString(), metadata=(*IRIS, ("x-request-id", "trace-7")), timeout=10)
    trailing = dict(call.trailing_metadata())
    assert trailing["x-pier-predictor"] == "main"
    assert trailing["x-pier-model-version"] == "iris:1"
    assert trailing["x-request-id"] == "trace-7"
    decoded = pb.ModelInferResponse.FromString(response)
    assert list(next(o for o in decoded.outputs if o.name == "predict").contents.int64_contents) == [0, 2]
    assert decoded.id == "g-1"


@pytest.mark.parametrize(("metadata", "code", "message"), [
    ((("x-pier-deployment", "default/nope"),), grpc.StatusCode.NOT_FOUND, "no deployment default/nope"),
    ((("x-pier-deployment", "nope"), ("x-pier-project", "acme")), grpc.StatusCode.NOT_FOUND,
     "no deployment acme/nope"),
    ((), grpc.StatusCode.INVALID_ARGUMENT, "x-pier-deployment: PROJECT/DEPLOYMENT"),
    ((("x-pier-deployment", "a/b/c"),), grpc.StatusCode.INVALID_ARGUMENT, "is not PROJECT/DEPLOYMENT"),
])
def test_routing_errors_are_status_codes(channel: grpc.Channel, metadata: tuple[tuple[str, str], ...],
                                         code: grpc.StatusCode, message: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        channel.unary_unary(INFER)(infer_request(ROWS).SerializeToString(), metadata=metadata, timeout=10)
    assert info.value.code() == code
    assert message in (info.value.details() or "")


def test_model_errors_pass_through_with_their_code_and_message(platform: Platform, channel: grpc.Channel) -> None:
    bad = infer_request([[1.0, 2.0, 3.0]]).SerializeToString()  # 3 features, the model takes 4
    with grpc.insecure_channel(replica_grpc_address(platform, "iris")) as direct, \
            pytest.raises(grpc.RpcError) as from_replica:
        direct.unary_unary(INFER)(bad, timeout=10)
    with pytest.raises(grpc.RpcError) as through_gateway:
        channel.unary_unary(INFER)(bad, metadata=IRIS, timeout=10)
    assert through_gateway.value.code() == from_replica.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert through_gateway.value.details() == from_replica.value.details()
    assert "input-0" in (through_gateway.value.details() or "")
    with pytest.raises(grpc.RpcError) as garbage:
        channel.unary_unary(INFER)(b"\xff\xff garbage", metadata=IRIS, timeout=10)
    assert garbage.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed ModelInferRequest" in (garbage.value.details() or "")



def test_an_unknown_model_is_the_replicas_not_found(address: str) -> None:
    client = triton_grpc.InferenceServerClient(url=address)
    tensor = triton_grpc.InferInput("input-0", [1, 4], "FP64")
    tensor.set_data_from_numpy(np.array(ROWS[:1]))
    with pytest.raises(InferenceServerException, match="not served") as info:
        client.infer("nope", [tensor], headers=dict(IRIS))
    assert info.value.status() == "StatusCode.NOT_FOUND"
    client.close()


def test_token_deployments_need_a_bearer_the_control_plane_accepts(channel: grpc.Channel) -> None:
    guarded = (("x-pier-deployment", "default/guarded"),)
    body = infer_request(ROWS).SerializeToString()
    for metadata in (guarded, (*guarded, ("authorization", "Bearer pier_not-a-token"))):
        with pytest.raises(grpc.RpcError) as info:
            channel.unary_unary(INFER)(body, metadata=metadata, timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "authorization: Bearer" in (info.value.details() or "")
    response = channel.unary_unary(INFER)(body, metadata=(*guarded, ("authorization", f"Bearer {ADMIN_TOKEN}")),
                                          timeout=10)
    assert pb.ModelInferResponse.FromString(response).model_name == "iris"


def test_http_and_grpc_share_the_gateway_process(platform: Platform) -> None:
    assert platform.infer("iris").status_code == 200
    argv = json.loads((platform.home / "gateway.json").read_text())["argv"]
    assert argv[argv.index("--grpc-port") + 1] == platform.env["PIER_PLATFORM__GATEWAY_GRPC_PORT"]
