"""Two control planes (``build_platform`` with the Kubernetes backend) on one real API server and one store:
one holds the Lease and acts; the other serves a routing table without acting; the first one's shutdown
hands over at once. CRs mirror the API's deployments; the pods the leader makes are owned by them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from modelpier.backends.kubernetes.backend import KubernetesBackend
from modelpier.backends.kubernetes.platform import LEASE_NAME
from modelpier.control.platform import Platform, build_platform
from modelpier.settings import Settings
from modelpier.spec.deployment import ModelDeploymentSpec
from modelpier.spec.revision import RevisionKind
from tests.support.k8s import ControlPlane as Cluster

SPEC = ModelDeploymentSpec.model_validate({"predictors": [{"name": "main", "model": "iris:1", "replicas": 1}]})


async def _until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < seconds, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def test_one_control_plane_acts_the_other_routes_and_takes_over(cluster: Cluster, namespace: str,
                                                                 tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, platform={"reconcile_interval_s": 0.2},
                        kubernetes={"namespace": namespace, "kubeconfig": cluster.kubeconfig})

    def control_plane() -> Platform:
        return build_platform(settings, KubernetesBackend(settings), announce_admin_token=lambda _t: None)

    def routed(p: Platform) -> bool:
        table = p.feed.current()
        return table is not None and f"{namespace}/iris" in table.deployments

    def pods() -> list[dict]:  # type: ignore[type-arg]
        return list(cluster.get("pods", "-n", namespace)["items"])

    async def scenario() -> None:
        first, second = control_plane(), control_plane()
        assert first.parts is not None
        first.store.ensure_project(namespace)  # a project is a namespace
        first.store.apply(namespace, "iris", SPEC, resolved={"main": "iris:1"}, created_by="t",
                          kind=RevisionKind.APPLIED, cause="applied")
        await first.start()
        await _until(lambda: first.reconciler is not None, 30, "the first control plane leading")
        await second.start()
        await _until(lambda: routed(second), 30, "the standby's routing table")
        await _until(lambda: len(pods()) == 1, 30, "the leader's pod")
        assert second.reconciler is None
        lease = cluster.get("lease", LEASE_NAME, "-n", namespace)
        assert lease["spec"]["holderIdentity"] == first.parts.elector.identity  # type: ignore[attr-defined]
        # The API's deployment is mirrored into its ModelDeployment, which owns the pod.
        await _until(lambda: any(o.get("kind") == "ModelDeployment" for o in
                                 pods()[0]["metadata"].get("ownerReferences", [])), 30, "the pod owned by its CR")
        await asyncio.sleep(1)
        assert len(pods()) == 1  # the standby started nothing

        await first.stop()  # a rolling update: the leader releases the Lease on its way out
        await first.close()
        started = time.monotonic()
        await _until(lambda: second.reconciler is not None, 10, "the standby taking over")
        assert time.monotonic() - started < 10  # released: no lease duration (15 s) waited out
        await asyncio.sleep(1)
        assert len(pods()) == 1  # the new leader adopts the pod rather than starting another
        await second.stop()
        await second.close()

    asyncio.run(scenario())
