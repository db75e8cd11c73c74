"""V2 gRPC through the gateway of a real ``pier up``: the deployment named by metadata, real replicas.

The replicas are started by the local backend with a gRPC port each; the control plane publishes
their gRPC addresses in the routing table; the gateway forwards gRPC calls to them through the same
dispatcher as HTTP, so the serving patterns apply: shadow mirroring and comparison, the cache,
limits.maxInFlight, the prediction log, waking a predictor scaled to zero. Every wait polls a condition.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from modelpier.spec.proto import grpc_predict_v2_pb2 as pb
from tests.integration.platform_support import (
    FAILING_MODEL,
    SLOW_MODEL,
    Platform,
    pier_down,
    replica_env,
    run_platform,
    save_models,
    save_python_model,
)
from tests.support.procs import ADMIN_HEADERS, ADMIN_TOKEN, run_pier, wait_until

pytestmark = pytest.mark.slow

INFER = "/inference.GRPCInferenceService/ModelInfer"
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
IRIS = (("x-pier-deployment", "default/iris"),)
SETOSA = [[5.1, 3.5, 1.4, 0.2]]  # the same class under iris:1 and iris:2

@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return replica_env(34000 + (os.getpid() % 50) * 200 % 20000)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("grpc-gateway")
    save_models(home)
    save_python_model(home, "slow", SLOW_MODEL, "Slow")
    save_python_model(home, "failing", FAILING_MODEL, "Failing")
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
    return f"127.0.0.1:{env['PIER_GATEWAY__GRPC_PORT']}"


@pytest.fixture(scope="module")
def channel(address: str, platform: Platform) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(address) as ch:
        yield ch


def infer_request(rows: list[list[float]], model: str = "iris") -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model, id="g-1")
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
    assert argv[argv.index("--grpc-port") + 1] == platform.env["PIER_GATEWAY__GRPC_PORT"]


# -- the serving patterns over gRPC --------------------------------------------------------------------
def deployed(platform: Platform, name: str, predictors: list[dict[str, Any]], ready: int, **spec: Any) -> None:
    platform.apply(name, predictors, **spec)
    platform.wait_ready(name, ready)


def undeploy(platform: Platform, name: str) -> None:
    """Free the replicas for the next test (the machine is small)."""
    assert httpx.delete(platform.deployment(name), headers=ADMIN_HEADERS, timeout=30).status_code in (200, 202, 204)


def metric(platform: Platform, line_start: str) -> float:
    text = httpx.get(f"{platform.gateway}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))


def to(name: str) -> tuple[tuple[str, str], ...]:
    return (("x-pier-deployment", f"default/{name}"),)


def predicted(response: bytes) -> list[int]:
    decoded = pb.ModelInferResponse.FromString(response)
    return list(next(o for o in decoded.outputs if o.name == "predict").contents.int64_contents)


def test_shadow_over_grpc_is_invisible_to_callers_and_agreement_is_measured(platform: Platform,
                                                                             channel: grpc.Channel) -> None:
    deployed(platform, "g-shadowed", [{"name": "main", "model": "iris:1"},
                                      {"name": "broken", "model": "failing:1", "weight": 0}], 2,
             shadow={"predictor": "broken"})
    deployed(platform, "g-compared", [{"name": "main", "model": "iris:1"},
                                      {"name": "candidate", "model": "iris:2", "weight": 0}], 2,
             shadow={"predictor": "candidate"})
    body = infer_request(SETOSA).SerializeToString()
    try:
        for name in ("g-shadowed", "g-compared"):
            for _ in range(20):
                response, call = channel.unary_unary(INFER).with_call(body, metadata=to(name), timeout=10)
                assert predicted(response) == [0]
                assert dict(call.trailing_metadata())["x-pier-predictor"] == "main"
        broken = 'project="default",deployment="g-shadowed",predictor="broken"'
        wait_until(lambda: metric(platform, f'pier_gateway_shadow_requests_total{{{broken},result="failed"}}') == 20,
                   what="20 failed shadow copies counted")
        assert metric(platform, f'pier_gateway_shadow_requests_total{{{broken},result="mirrored"}}') == 20
        candidate = 'project="default",deployment="g-compared",predictor="candidate"'
        wait_until(lambda: metric(platform, f'pier_gateway_shadow_requests_total{{{candidate},result="compared"}}')
                   == 20, what="20 shadow comparisons")
        assert metric(platform, f'pier_gateway_shadow_requests_total{{{candidate},result="agreed"}}') == 20
        # gRPC calls count in the same per-predictor series as HTTP ones.
        main = 'project="default",deployment="g-compared",predictor="main"'
        assert metric(platform, f'pier_gateway_requests_total{{{main},code="200"}}') == 20
    finally:
        undeploy(platform, "g-shadowed")
        undeploy(platform, "g-compared")


def test_cache_over_grpc_answers_identical_messages_without_the_replica(platform: Platform,
                                                                          channel: grpc.Channel) -> None:
    deployed(platform, "g-cached", [{"name": "main", "model": "iris:1"}], 1, cache={"ttlSeconds": 60})
    try:
        infer = channel.unary_unary(INFER)
        same, other = infer_request(SETOSA).SerializeToString(), infer_request(ROWS[1:]).SerializeToString()
        answers = [infer.with_call(body, metadata=to("g-cached"), timeout=10) for body in (same, same, other)]
        trailers = [dict(call.trailing_metadata()) for _, call in answers]
        assert [t["x-pier-cache"] for t in trailers] == ["miss", "hit", "miss"]
        assert answers[0][0] == answers[1][0]
        assert predicted(answers[2][0]) == [2]
        assert trailers[1]["x-pier-model-version"] == "iris:1"
        assert "x-pier-replica" not in trailers[1]  # no replica answered it
        # Metadata calls are no predictions: never cached.
        metadata = channel.unary_unary("/inference.GRPCInferenceService/ModelMetadata")
        _, call = metadata.with_call(pb.ModelMetadataRequest(name="iris").SerializeToString(),
                                     metadata=to("g-cached"), timeout=10)
        assert "x-pier-cache" not in dict(call.trailing_metadata())
        labels = 'project="default",deployment="g-cached",predictor="main"'
        assert metric(platform, f"pier_gateway_cache_hits_total{{{labels}}}") == 1
    finally:
        undeploy(platform, "g-cached")


def test_max_in_flight_over_grpc_refuses_the_excess_while_accepted_calls_succeed(platform: Platform,
                                                                                  address: str) -> None:
    deployed(platform, "g-limited", [{"name": "main", "model": "slow:1"}], 1, limits={"maxInFlight": 2})
    body = infer_request(SETOSA, model="slow").SerializeToString()

    def one(_: int) -> tuple[grpc.StatusCode, str, dict[str, Any]]:
        try:
            _, call = infer.with_call(body, metadata=to("g-limited"), timeout=30)
            return grpc.StatusCode.OK, "", dict(call.trailing_metadata())
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or "", dict(exc.trailing_metadata() or ())

    try:
        with grpc.insecure_channel(address) as own, ThreadPoolExecutor(8) as pool:
            infer = own.unary_unary(INFER)
            outcomes = list(pool.map(one, range(8)))
        codes = Counter(code for code, _, _ in outcomes)
        assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
        assert codes[grpc.StatusCode.OK] >= 2
        _, message, trailing = next(o for o in outcomes if o[0] == grpc.StatusCode.RESOURCE_EXHAUSTED)
        assert "limits.maxInFlight" in message
        assert trailing["retry-after"] == "1"
        labels = 'project="default",deployment="g-limited",predictor="main"'
        assert metric(platform, f"pier_gateway_rejected_total{{{labels}}}") == codes[grpc.StatusCode.RESOURCE_EXHAUSTED]
    finally:
        undeploy(platform, "g-limited")


def test_grpc_predictions_are_logged_and_read_back_by_the_cli(platform: Platform, channel: grpc.Channel) -> None:
    deployed(platform, "g-logged", [{"name": "main", "model": "iris:1"}], 1, predictionLog={"sampleRate": 1})
    try:
        channel.unary_unary(INFER)(infer_request(ROWS).SerializeToString(),
                                   metadata=(*to("g-logged"), ("x-request-id", "grpc-trace-1")), timeout=10)
        channel.unary_unary("/inference.GRPCInferenceService/ModelReady")(
            pb.ModelReadyRequest(name="iris").SerializeToString(), metadata=to("g-logged"), timeout=10)

        def read() -> list[dict[str, Any]]:
            out = run_pier(["logs", "predictions", "g-logged", "-o", "json"], platform.home, **platform.env)
            return list(json.loads(out.stdout)) if out.returncode == 0 else []
        wait_until(lambda: any(r["requestId"] == "grpc-trace-1" for r in read()), timeout=20,
                   what="the gRPC call in the prediction log")
        records = read()
        assert len(records) == 1  # ModelReady is no prediction: not logged
        [record] = records
        assert (record["predictor"], record["modelVersion"], record["status"]) == ("main", "iris:1", 200)
        assert record["request"]["body"]["inputs"][0]["data"] == [x for row in ROWS for x in row]
        outputs = {o["name"]: o for o in record["response"]["body"]["outputs"]}
        assert outputs["predict"]["data"] == [0, 2]
    finally:
        undeploy(platform, "g-logged")


def test_a_grpc_call_wakes_a_predictor_scaled_to_zero(platform: Platform, channel: grpc.Channel) -> None:
    platform.apply("g-sleepy", [{"name": "main", "model": "iris:1", "autoscaling": {
        "minReplicas": 0, "maxReplicas": 1, "targetInFlight": 2, "stabilizationSeconds": 2}}])

    def status() -> dict[str, Any]:
        return dict(platform.status("g-sleepy")["predictors"][0])

    try:
        wait_until(lambda: status()["readyReplicas"] == 0 and status()["desiredReplicas"] == 0, timeout=90,
                   what="scaled to zero")
        wait_until(lambda: platform.replica_pids("g-sleepy") == {}, timeout=60, what="its process stopped")
        response, call = channel.unary_unary(INFER).with_call(infer_request(SETOSA).SerializeToString(),
                                                              metadata=to("g-sleepy"), timeout=60)
        assert predicted(response) == [0]
        assert dict(call.trailing_metadata())["x-pier-predictor"] == "main"
        woken = [e["message"] for e in platform.events("g-sleepy") if e["reason"] == "ScaledUp"]
        assert any(m.startswith("Scaled predictor main from 0 to 1") and "waiting for a cold start" in m
                   for m in woken), woken
    finally:
        undeploy(platform, "g-sleepy")
