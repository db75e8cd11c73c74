"""The same reconciler, planner and policies that drive local processes drive pods on a real API server.

The test plays the node, and its "containers" are real model servers: each pod the reconciler
creates gets a loopback address of its own (127.0.0.x), a real ``pier serve`` of iris listens on
that address's port 8080, and the played kubelet marks the pod Ready only once that server's
``/v2/health/ready`` answers. The routing table the reconciler publishes then points at the pods' IPs,
and a prediction through it is answered by the server behind the pod.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from modelpier._lib.clock import SystemClock
from modelpier.backends.kubernetes.backend import KubernetesBackend
from modelpier.control.reconciler.loop import Reconciler
from modelpier.settings import load_settings
from modelpier.spec.deployment import ModelDeploymentSpec
from modelpier.spec.revision import RevisionKind
from modelpier.spec.routing import RoutingTableCell
from tests.support.k8s import ControlPlane, PlayedNode
from tests.support.procs import http_ok, pier_env, wait_until
from tests.support.watchdog import watch
from tests.unit.control.fakes import FakeStore

ADDRESSES = ("127.0.0.41", "127.0.0.42")


def _free(address: str) -> bool:
    with socket.socket() as s:
        try:
            s.bind((address, 8080))
        except OSError:
            return False
    return True


@contextmanager
def model_server(home: Path, address: str) -> Iterator[str]:
    """``pier serve iris`` on ``address``:8080, as the pod's server container would listen."""
    log = (home / f"serve-{address}.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "modelpier.server", "iris", "--host", address, "--http-port",
                             "8080", "--grpc-port", "8081", "--no-batching"], env=pier_env(home), stdout=log,
                            stderr=subprocess.STDOUT)
    guard = watch(proc.pid)
    try:
        yield f"http://{address}:8080"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        guard.release()
        log.close()


@pytest.fixture(scope="module")
def iris_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import modelpier

    home = tmp_path_factory.mktemp("pods-home")
    x, y = load_iris(return_X_y=True)
    modelpier.save_model("iris", LogisticRegression(max_iter=300).fit(x, y), input_example=x[:2],
                         settings=load_settings(home=home))
    return home


def spec(replicas: int) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({"predictors": [
        {"name": "main", "model": "iris:1", "replicas": replicas, "resources": {"cpu": "1", "memory": "512Mi"}}]})


@pytest.mark.timeout(180)
def test_the_reconciler_rolls_out_scales_and_deletes_pods_routed_to_their_real_servers(
        kube: ControlPlane, kube_namespace: str, played_node: PlayedNode, iris_home: Path) -> None:
    if not all(_free(a) for a in ADDRESSES):
        pytest.skip(f"port 8080 is taken on one of {ADDRESSES} (a server on 0.0.0.0:8080?)")
    settings = load_settings(home=iris_home / "cp", kubernetes={
        "kubeconfig": str(kube.kubeconfig), "namespace": kube_namespace, "image": "registry.test/modelpier:1"},
        platform={"deregistration_delay_s": 0})
    store, cell = FakeStore(), RoutingTableCell()
    store.apply("default", "iris", spec(2), resolved={"main": "iris:1"}, created_by="t", kind=RevisionKind.APPLIED,
                cause="applied")

    def pod_names() -> dict[str, bool]:
        """Each pod's name, and whether it is being deleted."""
        items = kube.get("pods", "-n", kube_namespace)["items"]
        return {p["metadata"]["name"]: bool(p["metadata"].get("deletionTimestamp")) for p in items}

    async def scenario() -> None:
        backend = KubernetesBackend(settings)
        reconciler = Reconciler(store, backend, SystemClock(), endpoint_base="http://gw", publish=cell.set)
        try:
            await reconciler.reconcile_once()
            names = sorted(pod_names())
            assert len(names) == 2
            assert store.reasons("default", "iris").count("ReplicaStarted") == 2
            await reconciler.reconcile_once()
            assert len(pod_names()) == 2  # the cache saw its own writes: nothing started twice

            with ExitStack() as servers:
                for name, address in zip(names, ADDRESSES, strict=True):
                    url = servers.enter_context(model_server(iris_home, address))
                    played_node.bind(kube_namespace, name)
                    played_node.run(kube_namespace, name, address, ready=False)
                    await asyncio.to_thread(wait_until, http_ok(f"{url}/v2/health/ready"), timeout=60,
                                            what=f"the server of pod {name}")
                    played_node.run(kube_namespace, name, address, ready=True)  # the kubelet's probe passed
                for _ in range(100):
                    await reconciler.reconcile_once()
                    if store.get("default", "iris").serving_revision == 1:
                        break
                    await asyncio.sleep(0.1)
                record = store.get("default", "iris")
                assert record.serving_revision == 1
                assert record.status.ready_replicas == 2
                route = cell.get().get("default", "iris")
                assert route is not None
                urls = sorted(r.url for p in route.predictors for r in p.replicas)
                assert urls == [f"http://{a}:8080" for a in ADDRESSES]
                async with httpx.AsyncClient(trust_env=False) as client:
                    answer = await client.post(f"{urls[0]}/v2/models/iris/infer", json={"inputs": [
                        {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]})
                assert answer.status_code == 200, answer.text

                store.apply("default", "iris", spec(1), resolved={"main": "iris:1"}, created_by="t",
                            kind=RevisionKind.APPLIED, cause="applied")
                await reconciler.reconcile_once()
                for _ in range(100):
                    if sum(pod_names().values()) == 1:
                        break
                    await asyncio.sleep(0.05)
                going = [n for n, deleting in pod_names().items() if deleting]
                assert len(going) == 1  # draining: the node (here, the test) finishes the deletion
                played_node.finish_deletion(kube_namespace, going[0])

                store.request_delete("default", "iris")
                for _ in range(200):
                    await reconciler.reconcile_once()
                    for name, deleting in pod_names().items():
                        if deleting:
                            played_node.finish_deletion(kube_namespace, name)
                    if ("default", "iris") not in store.records:
                        break
                    await asyncio.sleep(0.05)
                assert ("default", "iris") not in store.records  # purged once every pod was gone
                assert pod_names() == {}
            assert reconciler.failures == {}
        finally:
            await backend.close()

    asyncio.run(scenario())
