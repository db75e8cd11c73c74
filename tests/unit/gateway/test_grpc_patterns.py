"""Every serving pattern over gRPC, through the HTTP gateway's own dispatcher: cache, limits.maxInFlight,
shadow mirroring and comparison, the prediction log, the cold-start wait. ``ModelInfer`` gets them all;
metadata calls are forwarded but never cached, mirrored or logged.

The replicas are real ``grpc.aio`` servers answering real V2 messages (``ModelInferResponse`` with a
label), so the gateway's server, dispatcher, channels and decoding all run, in one event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from modelpier.gateway.cache import MemoryCache
from modelpier.gateway.caching import CacheOnPath
from modelpier.gateway.dispatch import CacheAdapter, Dispatcher, Recorder
from modelpier.gateway.grpc_proxy import GrpcGateway, metadata_lookup, start_grpc_gateway
from modelpier.gateway.grpc_upstream import GrpcReplicaProxy
from modelpier.gateway.predlog import PredictionLogger, read_predictions
from modelpier.gateway.recording import PredictionRecorder
from modelpier.gateway.stats import TrafficStats
from modelpier.gateway.table_client import StaticTable
from modelpier.gateway.upstream import FastReplicaProxy
from modelpier.spec.proto import grpc_predict_v2_pb2 as pb
from modelpier.spec.routing import DeploymentRoute, PredictorRoute, ReplicaEndpoint, RoutingTable, TrafficPolicy

SERVICE = "/inference.GRPCInferenceService/"
DEPLOYMENT = (("x-pier-deployment", "acme/iris"),)


class V2Replica:
    """ModelInfer answers ``label`` (or fails with INTERNAL when ``label`` is None); ModelMetadata answers.
    ``gate``, when set, holds every ModelInfer until it opens."""

    def __init__(self, label: int | None) -> None:
        self.label = label
        self.calls: list[str] = []
        self.gate: asyncio.Event | None = None
        self.arrived = asyncio.Event()
        self.server: Any = grpc.aio.server()  # bound now, so the routing table can name its address
        self.server.add_generic_rpc_handlers((self,))
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"

    def service(self, details: Any) -> Any:
        method = str(details.method)
        if method == SERVICE + "ModelInfer":
            return grpc.unary_unary_rpc_method_handler(self.infer)
        if method == SERVICE + "ModelMetadata":
            return grpc.unary_unary_rpc_method_handler(self.metadata)
        return None

    async def infer(self, request: bytes, context: Any) -> bytes:
        self.calls.append("ModelInfer")
        self.arrived.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.label is None:
            await context.abort(grpc.StatusCode.INTERNAL, "this model always fails")
        asked = pb.ModelInferRequest.FromString(request)
        answer = pb.ModelInferResponse(model_name=asked.model_name, model_version="2", id=asked.id)
        answer.outputs.add(name="predict", datatype="INT64", shape=[1]).contents.int64_contents.append(
            self.label or 0)
        return bytes(answer.SerializeToString())

    async def metadata(self, request: bytes, context: Any) -> bytes:
        self.calls.append("ModelMetadata")
        return bytes(pb.ModelMetadataResponse(name="iris", platform="sklearn").SerializeToString())

    async def start(self) -> None:
        await self.server.start()


def route(*predictors: PredictorRoute, policy: TrafficPolicy | None = None) -> RoutingTable:
    return RoutingTable.of([DeploymentRoute("acme", "iris", 1, predictors, timeout_s=5.0,
                                            policy=policy or TrafficPolicy())])


def predictor(name: str, *replicas: V2Replica, weight: int = 100, version: str = "iris:2") -> PredictorRoute:
    return PredictorRoute(name, weight, tuple(ReplicaEndpoint(f"{name}-{i}", "http://127.0.0.1:1", 1, version,
                                                              r.address) for i, r in enumerate(replicas)))


@dataclass
class Gateway:
    dispatcher: Dispatcher
    grpc: GrpcGateway
    tables: StaticTable
    channel: Any

    async def call(self, method: str, message: Any, metadata: tuple[tuple[str, str], ...] = DEPLOYMENT
                   ) -> tuple[bytes, dict[str, str]]:
        c = self.channel.unary_unary(SERVICE + method)(message.SerializeToString(), metadata=metadata, timeout=10)
        response: bytes = await c
        return response, metadata_lookup(list(await c.trailing_metadata()))

    async def refused(self, method: str, message: Any) -> tuple[Any, str, dict[str, str]]:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await self.call(method, message)
        return info.value.code(), info.value.details(), metadata_lookup(list(info.value.trailing_metadata() or ()))


@asynccontextmanager
async def gateway(table: RoutingTable, *replicas: V2Replica, cache: CacheAdapter | None = None,
                  record: Recorder | None = None, nudge: Callable[[], None] = lambda: None
                  ) -> AsyncIterator[Gateway]:
    """The gRPC port over a dispatcher wired as ``build_gateway`` wires it (no HTTP replica is called)."""
    for replica in replicas:
        await replica.start()
    tables = StaticTable(table)
    upstream = GrpcReplicaProxy(tables.get)
    dispatcher = Dispatcher(tables, FastReplicaProxy(), TrafficStats(), rand=lambda: 0.0, cache=cache,
                            record=record, nudge=nudge, grpc_proxy=upstream)
    gw = await start_grpc_gateway(dispatcher, tables.get, host="127.0.0.1", port=0, verifier=None)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}")
    try:
        yield Gateway(dispatcher, gw, tables, channel)
    finally:
        await channel.close()
        await gw.stop(0)
        await dispatcher.drain()
        await upstream.aclose()
        for replica in replicas:
            await replica.server.stop(None)


def infer(value: float = 5.1) -> Any:
    request = pb.ModelInferRequest(model_name="iris", id="q-1")
    tensor = request.inputs.add(name="input-0", datatype="FP64", shape=[1, 4])
    tensor.contents.fp64_contents.extend([value, 3.5, 1.4, 0.2])
    return request


METADATA = pb.ModelMetadataRequest(name="iris")


def label_of(response: bytes) -> int:
    return int(pb.ModelInferResponse.FromString(response).outputs[0].contents.int64_contents[0])


def test_model_infer_is_cached_per_message_and_metadata_never() -> None:
    async def scenario() -> None:
        replica = V2Replica(2)
        policy = TrafficPolicy(cache_ttl_s=60, cache_max_entries=100)
        async with gateway(route(predictor("main", replica), policy=policy), replica,
                           cache=CacheOnPath(MemoryCache())) as gw:
            seen = []
            for value in (5.1, 5.1, 6.7):
                seen.append(await gw.call("ModelInfer", infer(value)))
                await gw.dispatcher.drain()  # the cache write runs beside the answer
            [(first, miss), (again, hit), (_, other_miss)] = seen
            assert [miss["x-pier-cache"], hit["x-pier-cache"], other_miss["x-pier-cache"]] == ["miss", "hit", "miss"]
            assert again == first
            assert label_of(again) == 2
            assert "x-pier-replica" not in hit  # no replica answered a hit
            assert hit["x-pier-model-version"] == "iris:2"
            for _ in range(2):
                _, trailing = await gw.call("ModelMetadata", METADATA)
                assert "x-pier-cache" not in trailing
            assert gw.dispatcher.stats.predictor("acme", "iris", "main").cache_hits == 1
            assert replica.calls == ["ModelInfer", "ModelInfer", "ModelMetadata", "ModelMetadata"]

    asyncio.run(scenario())


def test_max_in_flight_refuses_the_excess_with_resource_exhausted_while_accepted_calls_succeed() -> None:
    async def scenario() -> None:
        replica = V2Replica(1)
        replica.gate = asyncio.Event()
        async with gateway(route(predictor("main", replica), policy=TrafficPolicy(max_in_flight=1)), replica) as gw:
            accepted = asyncio.ensure_future(gw.call("ModelInfer", infer()))
            await replica.arrived.wait()  # the accepted call reached the replica: the deployment is at its limit
            code, details, trailing = await gw.refused("ModelInfer", infer())
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "limits.maxInFlight" in details
            assert trailing["retry-after"] == "1"
            assert trailing["x-pier-predictor"] == "main"
            replica.gate.set()
            response, _ = await accepted
            assert label_of(response) == 1
            stats = gw.dispatcher.stats.predictor("acme", "iris", "main")
            assert (stats.rejected, stats.codes) == (1, {503: 1, 200: 1})  # one count for HTTP and gRPC

    asyncio.run(scenario())


def test_shadow_copies_of_model_infer_are_compared_and_their_failures_stay_invisible() -> None:
    async def scenario() -> None:
        main, agreeing, failing = V2Replica(2), V2Replica(2), V2Replica(None)
        compared = route(predictor("main", main), predictor("candidate", agreeing, weight=0),
                         policy=TrafficPolicy(shadow="candidate", shadow_percent=100))
        async with gateway(compared, main, agreeing, failing) as gw:
            for _ in range(3):
                response, trailing = await gw.call("ModelInfer", infer())
                assert (label_of(response), trailing["x-pier-predictor"]) == (2, "main")
            await gw.call("ModelMetadata", METADATA)  # not a prediction: not mirrored
            await gw.dispatcher.drain()
            shadow = gw.dispatcher.stats.shadow("acme", "iris", "candidate")
            assert (shadow.mirrored, shadow.failed, shadow.compared, shadow.agreed) == (3, 0, 3, 3)
            assert agreeing.calls == ["ModelInfer"] * 3
            gw.tables.set(route(predictor("main", main), predictor("broken", failing, weight=0),
                                policy=TrafficPolicy(shadow="broken", shadow_percent=100)))
            for _ in range(2):
                response, _ = await gw.call("ModelInfer", infer())
                assert label_of(response) == 2
            await gw.dispatcher.drain()
            broken = gw.dispatcher.stats.shadow("acme", "iris", "broken")
            assert (broken.mirrored, broken.failed, broken.compared) == (2, 2, 0)

    asyncio.run(scenario())


def test_model_infer_is_logged_as_v2_json_and_metadata_is_not(tmp_path: Path) -> None:
    logger = PredictionLogger(tmp_path)

    async def scenario() -> None:
        replica = V2Replica(1)
        policy = TrafficPolicy(log_sample_rate=1.0)
        async with gateway(route(predictor("main", replica), policy=policy), replica,
                           record=PredictionRecorder(logger)) as gw:
            await gw.call("ModelInfer", infer(), (*DEPLOYMENT, ("x-request-id", "grpc-1")))
            await gw.call("ModelMetadata", METADATA)
            await logger.aclose()

    asyncio.run(scenario())
    [record] = read_predictions(tmp_path, "acme", "iris")
    assert (record["requestId"], record["predictor"], record["modelVersion"], record["status"]) == (
        "grpc-1", "main", "iris:2", 200)
    assert record["request"]["body"]["inputs"][0]["data"] == [5.1, 3.5, 1.4, 0.2]
    assert record["response"]["body"]["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [1],
                                                      "data": [1]}]


def test_a_predictor_scaled_to_zero_is_woken_instead_of_refused() -> None:
    async def scenario() -> None:
        replica = V2Replica(2)
        asleep = route(PredictorRoute("main", 100, (), scales_to_zero=True))
        nudged = asyncio.Event()
        async with gateway(asleep, replica, nudge=nudged.set) as gw:
            waiting = asyncio.ensure_future(gw.call("ModelInfer", infer()))
            await nudged.wait()  # held for the cold start, and the control plane told at once
            stats = gw.dispatcher.stats.predictor("acme", "iris", "main")
            assert stats.waiting == 1
            gw.tables.set(route(predictor("main", replica)))  # the replica is up: the table says so
            response, trailing = await waiting
            assert (label_of(response), trailing["x-pier-replica"]) == (2, "main-0")
            assert stats.waiting == 0

    asyncio.run(scenario())
