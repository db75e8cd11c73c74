"""The Kubernetes backend over a fake API: timing decisions that a real cluster would make slow to test."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from typing import Any

from modelpier.backends.base import ReplicaSpec
from modelpier.backends.kubernetes.backend import KubernetesBackend
from modelpier.control.reconciler.actions import PlanPolicy
from modelpier.settings import load_settings
from tests.unit.control.fakes import FakeClock

SPEC = ReplicaSpec(project="default", deployment="iris", predictor="main", revision=1, template="t", model="iris:1")


class FakeApi:
    """Stores applied pods; the test plays the kubelet by sending their new status down the watch."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.versions = itertools.count(100)
        self.deleted: list[str] = []
        self.pods: list[dict[str, Any]] = []
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def kubelet(self, pod: dict[str, Any], *, ready: bool) -> None:
        """The pod runs; its readiness probe passes when ``ready``. Returns once the watch delivered it."""
        await self.events.put({"type": "MODIFIED", "object": {
            **pod, "metadata": {**pod["metadata"], "resourceVersion": str(next(self.versions))}, "status": {
                "phase": "Running", "podIP": "10.0.0.7",
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                "containerStatuses": [{"name": "server", "ready": ready, "state": {"running": {}}}]}}})
        await self.events.join()

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        self.requests[f"{method} {path.rsplit('/', 1)[-1]}"] += 1
        return {"metadata": {"resourceVersion": "1"}, "items": []}

    async def watch(self, path: str, *, resource_version: str, timeout_s: int,
                    params: Mapping[str, Any] | None = None) -> AsyncIterator[dict[str, Any]]:
        queue = self.events if path.endswith("/pods") else asyncio.Queue()
        while True:
            event = await queue.get()
            yield event
            queue.task_done()  # the informer handled it before asking for the next

    async def apply(self, path: str, obj: dict[str, Any], *, field_manager: str) -> dict[str, Any]:
        self.requests["PATCH pods"] += 1
        stored = {**obj, "metadata": {**obj["metadata"], "uid": obj["metadata"]["name"],
                                      "resourceVersion": str(next(self.versions)),
                                      "creationTimestamp": "2026-01-01T00:00:00Z"}}
        self.pods.append(stored)
        return stored

    async def delete(self, path: str, *, grace_s: int, uid: str | None = None) -> None:
        self.deleted.append(path.rsplit("/", 1)[-1])

    async def close(self) -> None:
        return None


def test_an_unready_pod_counts_probe_periods_until_the_liveness_policy_restarts_it() -> None:
    async def scenario() -> None:
        clock, api = FakeClock(), FakeApi()
        settings = load_settings(kubernetes={"namespace": "models", "ready_probe_period_s": 2,
                                             "ready_probe_failures": 3}, platform={"deregistration_delay_s": 0})
        backend = KubernetesBackend(settings, clock=clock, api=api)  # type: ignore[arg-type]  # a fake API
        replica_id = await backend.start(SPEC)
        [pod] = api.pods
        await api.kubelet(pod, ready=True)
        [ready] = await backend.observe()
        assert (ready.phase, ready.ready_since) == ("ready", clock.now().timestamp())

        clock.advance(5)
        await api.kubelet(pod, ready=False)
        [unready] = await backend.observe()
        assert (unready.phase, unready.failed_probes, unready.unready_since) == ("unready", 3, clock.now().timestamp())
        policy = PlanPolicy()  # liveness_failures 10 x liveness_period_s 1 s
        assert not policy.unresponsive(unready.failed_probes, unready.unready_since, clock.now().timestamp())
        clock.advance(14)  # 3 failures took the condition away, then one more per 2 s period: 3 + 7 = 10
        [hung] = await backend.observe()
        assert hung.failed_probes == 10
        assert policy.unresponsive(hung.failed_probes, hung.unready_since, clock.now().timestamp())
        assert api.requests == Counter({"GET pods": 1, "GET modeldeployments": 1, "PATCH pods": 1})
        await backend.restart(replica_id)
        assert api.deleted == [pod["metadata"]["name"]]
        await backend.close()

    asyncio.run(scenario())
