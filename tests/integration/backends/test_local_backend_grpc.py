"""Local replicas serve V2 gRPC on a port of their own, recorded so adoption and restarts keep it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal

import grpc
import pytest
from tests.support.procs import free_port

from modelpier.backends.base import ReplicaObservation, ReplicaSpec
from modelpier.backends.local.supervisor import LocalBackend
from modelpier.settings import Settings, load_settings
from modelpier.spec.proto import grpc_predict_v2_pb2 as pb

pytestmark = pytest.mark.slow

SPEC = ReplicaSpec(project="default", deployment="iris", predictor="main", revision=1, template="t1", model="iris:1")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import modelpier

    home = tmp_path_factory.mktemp("backend-grpc")
    low = free_port()
    settings = load_settings(home=home, platform={"replica_port_min": low, "replica_port_max": low + 50,
                                                   "stop_grace_s": 5, "deregistration_delay_s": 0})
    x, y = load_iris(return_X_y=True)
    modelpier.save_model("iris", LogisticRegression(max_iter=300).fit(x, y), input_example=x[:2], settings=settings)
    return settings


async def ready(backend: LocalBackend, replica_id: str) -> ReplicaObservation:
    for _ in range(600):
        found = {r.replica_id: r for r in await backend.observe()}.get(replica_id)
        if found is not None and found.phase == "ready":
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"replica {replica_id} never became ready")


async def live(address: str) -> bool:
    async with grpc.aio.insecure_channel(address) as channel:
        answer = await channel.unary_unary("/inference.GRPCInferenceService/ServerLive")(b"", timeout=5)
    return bool(pb.ServerLiveResponse.FromString(answer).live)


def recorded_grpc(settings: Settings) -> str:
    [record] = json.loads((settings.home / "replicas" / "state.json").read_text())["replicas"]
    return f"127.0.0.1:{record['grpc_port']}"


def test_grpc_port_is_served_recorded_adopted_and_restarted(settings: Settings) -> None:
    pids: set[int] = set()  # every replica process seen, killed at the end whatever happened

    async def scenario() -> None:
        first = LocalBackend(settings)
        replica_id = await first.start(SPEC)
        observed = await ready(first, replica_id)
        pids.add(observed.pid or 0)
        assert observed.grpc_url is not None
        assert observed.url is not None
        assert observed.grpc_url != observed.url.removeprefix("http://")
        assert await live(observed.grpc_url)
        assert await asyncio.to_thread(recorded_grpc, settings) == observed.grpc_url
        await first.close()  # the control plane goes away; the replica keeps running

        second = LocalBackend(settings)
        adopted = await ready(second, replica_id)
        assert adopted.adopted
        assert adopted.grpc_url == observed.grpc_url

        await second.restart(replica_id)  # same slot; the old ports if they are free to bind again
        again = await ready(second, replica_id)
        pids.add(again.pid or 0)
        assert again.pid != observed.pid
        assert again.grpc_url is not None
        assert await asyncio.to_thread(recorded_grpc, settings) == again.grpc_url
        assert await live(again.grpc_url)
        await second.stop(replica_id, "test over")
        for _ in range(150):
            if not await second.observe():
                break
            await asyncio.sleep(0.1)
        await second.close()

    try:
        asyncio.run(scenario())
    finally:
        for pid in pids - {0}:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
