"""The gateway's HTTP and gRPC ports answer with the error tree's one map, over loopback.

A real ``pier serve`` process is the replica (the raiser model, which raises the error its input
names); the gateway's HTTP server and gRPC port run in this event loop over a routing table the test
sets. Each of the gateway's own refusals must carry the same class's HTTP status and gRPC code on
both ports, and a replica's error must pass through with the replica's status and code.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest

from modelpier import errors
from modelpier.gateway.compose import build_gateway
from modelpier.gateway.grpc_proxy import start_grpc_gateway
from modelpier.gateway.http1 import GatewayHttpServer
from modelpier.gateway.table_client import StaticTable
from modelpier.spec.proto import grpc_predict_v2_pb2 as pb
from modelpier.spec.routing import DeploymentRoute, PredictorRoute, ReplicaEndpoint, RoutingTable, TrafficPolicy
from tests.integration.server.conftest import Served, start_server
from tests.support.raiser import RAISED, raised, write_raiser_model

INFER = "/inference.GRPCInferenceService/ModelInfer"


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("pier-home")
    with start_server([f"raiser={write_raiser_model(home / 'raiser')}"], home) as served:
        yield served


def routes(replica: Served) -> RoutingTable:
    endpoint = ReplicaEndpoint("main-1", replica.url, 1, "raiser:1", replica.grpc)

    def route(name: str, **extra: Any) -> DeploymentRoute:
        return DeploymentRoute("acme", name, 1, (PredictorRoute("main", 100, (endpoint,)),), timeout_s=10, **extra)

    return RoutingTable.of([route("open"), route("guarded", auth_mode="token"),
                            route("tiny", policy=TrafficPolicy(max_body_bytes=8))])


@dataclass
class Ports:
    http: httpx.AsyncClient
    infer: Any  # the gRPC ModelInfer callable


@asynccontextmanager
async def gateway(table: RoutingTable) -> AsyncIterator[Ports]:
    tables = StaticTable(table)
    app = build_gateway(tables)
    await app.startup()
    http = GatewayHttpServer(app)
    await http.start("127.0.0.1", 0)
    rpc = await start_grpc_gateway(app.dispatcher, tables.get, host="127.0.0.1", port=0, verifier=None)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{rpc.port}")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http.port}", timeout=10) as client:
            yield Ports(client, channel.unary_unary(INFER))
    finally:
        await channel.close()
        await rpc.stop(0)
        await http.stop(1.0)
        await app.shutdown()


def v2_json(value: float) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP64", "data": [value]}]}


def v2_grpc(value: float) -> bytes:
    request = pb.ModelInferRequest(model_name="raiser")
    request.inputs.add(name="x", datatype="FP64", shape=[1, 1]).contents.fp64_contents.append(value)
    return request.SerializeToString()


async def grpc_failure(ports: Ports, deployment: str, message: bytes) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await ports.infer(message, metadata=(("x-pier-deployment", f"acme/{deployment}"),), timeout=10)
    return info.value


# The gateway's own refusals: (deployment, HTTP body, gRPC message, the class both must map).
REFUSALS = [
    ("nope", v2_json(0), v2_grpc(0), errors.NotFound),
    ("guarded", v2_json(0), v2_grpc(0), errors.Unauthenticated),
    ("tiny", v2_json(0), v2_grpc(0), errors.PayloadTooLarge),
]


def test_the_gateways_own_refusals_map_alike_on_both_ports(replica: Served) -> None:
    async def scenario() -> None:
        async with gateway(routes(replica)) as ports:
            for deployment, body, message, cls in REFUSALS:
                answer = await ports.http.post(f"/acme/{deployment}/v2/models/raiser/infer", json=body)
                assert answer.status_code == cls.wire.http, answer.text
                assert answer.json()["error"]["code"] == cls.code
                failure = await grpc_failure(ports, deployment, message)
                assert failure.code() == grpc.StatusCode[cls.wire.grpc], failure.details()

    asyncio.run(scenario())


def test_a_replicas_errors_pass_through_with_its_status_and_code(replica: Served) -> None:
    async def scenario() -> None:
        async with gateway(routes(replica)) as ports:
            for name in ("Conflict", "NotFound", "Overloaded", "InvalidSpec"):
                error, index = raised(name), float(RAISED.index(name))
                answer = await ports.http.post("/acme/open/v2/models/raiser/infer", json=v2_json(index))
                assert answer.status_code == errors.inference_http_status(error), answer.text
                assert answer.json() == {"error": error.message}
                failure = await grpc_failure(ports, "open", v2_grpc(index))
                assert failure.code() == grpc.StatusCode[errors.grpc_code(error)]
                assert failure.details() == error.message

    asyncio.run(scenario())
