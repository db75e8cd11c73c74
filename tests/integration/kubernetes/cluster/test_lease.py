"""Leader election against a real API server: one of two electors leads; the other takes over when it
stops (released at once) or stops renewing (after the lease duration)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from modelpier._lib.leadership import while_leading
from modelpier.backends.kubernetes.kubeapi import KubeApi
from modelpier.backends.kubernetes.lease import LeaderElector, LeaseLeadership
from tests.support.k8s import ControlPlane

FAST = {"lease_duration_s": 3.0, "renew_deadline_s": 2.0, "retry_period_s": 0.3}


async def _until(condition: object, seconds: float) -> float:
    """Seconds until ``condition()`` holds."""
    start = time.monotonic()
    while not condition():  # type: ignore[operator]
        if time.monotonic() - start > seconds:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


def test_one_leads_and_the_other_takes_over_when_it_stops(cluster: ControlPlane, namespace: str) -> None:
    async def scenario() -> None:
        api = KubeApi.connect(str(cluster.kubeconfig))
        a = LeaderElector(api, namespace=namespace, name="control", identity="a", **FAST)
        b = LeaderElector(api, namespace=namespace, name="control", identity="b", **FAST)
        lost: list[str] = []

        async def a_lost() -> None:
            lost.append("a")

        task_a = asyncio.create_task(a.run(on_lost=a_lost))
        await _until(a.is_leader.is_set, 10)
        task_b = asyncio.create_task(b.run())
        await asyncio.sleep(FAST["lease_duration_s"] + 1)  # longer than a lease: a renews, b must not take over
        assert a.is_leader.is_set()
        assert not b.is_leader.is_set()
        lease = cluster.get("lease", "control", "-n", namespace)
        assert lease["spec"]["holderIdentity"] == "a"
        assert lease["spec"]["leaseDurationSeconds"] == 3

        task_a.cancel()  # a rolling update: a releases the lease on its way out
        await asyncio.gather(task_a, return_exceptions=True)
        assert lost == ["a"]
        handover = await _until(b.is_leader.is_set, 10)
        assert handover < FAST["lease_duration_s"]  # released, not expired: b need not wait a lease out
        lease = cluster.get("lease", "control", "-n", namespace)
        assert lease["spec"]["holderIdentity"] == "b"
        assert lease["spec"]["leaseTransitions"] == 1
        task_b.cancel()
        await asyncio.gather(task_b, return_exceptions=True)
        await api.close()

    asyncio.run(scenario())


def test_a_holder_that_stops_renewing_is_replaced_after_the_lease_expires(cluster: ControlPlane,
                                                                          namespace: str) -> None:
    async def scenario() -> None:
        crashed = KubeApi.connect(str(cluster.kubeconfig))
        a = LeaderElector(crashed, namespace=namespace, name="control", identity="a", **FAST)
        task_a = asyncio.create_task(a.run())
        await _until(a.is_leader.is_set, 10)
        await crashed.close()  # a's process hangs: its requests fail, it cannot renew (and cannot release)

        api = KubeApi.connect(str(cluster.kubeconfig))
        b = LeaderElector(api, namespace=namespace, name="control", identity="b", **FAST)
        task_b = asyncio.create_task(b.run())
        await _until(lambda: not a.is_leader.is_set(), FAST["renew_deadline_s"] + 2)
        assert not b.is_leader.is_set()  # a gave up at its renew deadline, before b may take over
        waited = await _until(b.is_leader.is_set, 10)
        assert waited > 0.3
        lease = cluster.get("lease", "control", "-n", namespace)
        assert lease["spec"]["holderIdentity"] == "b"
        for task in (task_a, task_b):
            task.cancel()
        await asyncio.gather(task_a, task_b, return_exceptions=True)
        await api.close()

    asyncio.run(scenario())


def test_the_platforms_leadership_runs_work_on_the_leader_only(cluster: ControlPlane, namespace: str) -> None:
    """``LeaseLeadership`` is the composition root's gate: ``while_leading`` runs the CR synchroniser (here a
    counter) on one replica; when that one shuts down (``release``), the other's starts at once."""
    async def scenario() -> None:
        api = KubeApi.connect(str(cluster.kubeconfig))
        replicas = {name: LeaseLeadership(LeaderElector(api, namespace=namespace, name="control", identity=name,
                                                        **FAST)) for name in ("a", "b")}
        working: list[str] = []

        def work(name: str) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                working.append(name)
                await asyncio.Event().wait()
            return run

        await replicas["a"].acquire()
        tasks = {name: asyncio.create_task(while_leading(lead, work(name))) for name, lead in replicas.items()}
        await _until(lambda: working == ["a"], 10)
        await asyncio.sleep(1)
        assert working == ["a"]
        await replicas["a"].release()  # a shuts down: b takes over without waiting for the lease to expire
        took = await _until(lambda: working == ["a", "b"], 10)
        assert took < FAST["lease_duration_s"]
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        await replicas["b"].release()
        await api.close()

    asyncio.run(scenario())
