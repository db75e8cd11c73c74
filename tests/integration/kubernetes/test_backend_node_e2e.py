"""The Kubernetes backend with a real node: real pods pull a real model from a real control plane and serve it.

The cluster with its node and the platform image come from ``tests/support/k8s_node.py`` and
``tests/support/platform_image.py`` (skipped, saying why, where they cannot run: no
``KUBEBUILDER_ASSETS``, not root). A ``pier server`` on the host holds iris; the pods reach it at the
node's bridge address and pull with the token of the namespace's registry Secret, as the platform's
pods would. The kubelet probes readiness, runs and kills containers and serves their logs: every
phase the backend reports here comes from a real kubelet.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from modelpier.backends.base import ReplicaObservation, ReplicaSpec
from modelpier.backends.kubernetes.backend import KubernetesBackend
from modelpier.settings import load_settings
from tests.support.procs import ADMIN_TOKEN, BIN, free_port, http_ok, pier_env, run_pier, wait_until
from tests.support.watchdog import watch

k8s_node = pytest.importorskip("tests.support.k8s_node", reason="the real node's fixtures (branch k8se2e) are not here")
platform_image = pytest.importorskip("tests.support.platform_image", reason="the platform image builder is not here")

pytestmark = [pytest.mark.xdist_group("kubernetes-node"), pytest.mark.timeout(900)]
NAMESPACE = "models"


@pytest.fixture(scope="module")
def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, str]]:
    why = k8s_node.unavailable()
    if why is not None:
        pytest.skip(f"no Kubernetes node: {why}")
    with k8s_node.start_cluster(tmp_path_factory.mktemp("node-cluster")) as cluster:
        try:
            image = platform_image.build_platform_image(cluster.registry)
        except platform_image.ImageUnavailable as exc:
            pytest.skip(f"no platform image: {exc}")
        cluster.kubectl("create", "namespace", NAMESPACE)
        cluster.kubectl("label", "namespace", NAMESPACE, "pod-security.kubernetes.io/enforce=restricted")
        cluster.kubectl("-n", NAMESPACE, "create", "secret", "generic", "modelpier-registry-token",
                        f"--from-literal=token={ADMIN_TOKEN}")
        yield cluster, image.by_digest


@pytest.fixture(scope="module")
def registry_on_bridge(tmp_path_factory: pytest.TempPathFactory, node_cluster: tuple[object, str]) -> Iterator[str]:
    """A ``pier server`` holding iris:1, on every interface so pods reach it at the bridge address."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    home = tmp_path_factory.mktemp("bridge-registry")
    x, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), home / "iris.joblib")
    laptop = home / "laptop"
    run_pier(["models", "save", str(home / "iris.joblib"), "--name", "iris"], laptop, check=True)
    port = free_port()
    log = (home / "server.log").open("w")
    proc = subprocess.Popen([str(BIN / "pier"), "server", "--host", "0.0.0.0",  # noqa: S104  # pods reach it via the bridge
                             "--port", str(port)], env=pier_env(home / "control"), stdout=log, stderr=subprocess.STDOUT)
    guard = watch(proc.pid)
    try:
        wait_until(http_ok(f"http://127.0.0.1:{port}/healthz"), timeout=60, what="pier server")
        local = f"http://127.0.0.1:{port}"
        run_pier(["models", "push", "iris:1", "--remote", local], laptop, check=True)
        # A model only project team-b has: its pods must pull in their own project.
        run_pier(["create", "project", "team-b", "--remote", local], laptop, check=True)
        run_pier(["models", "save", str(home / "iris.joblib"), "--name", "lily"], laptop, check=True)
        run_pier(["models", "push", "lily:1", "--remote", local], laptop, check=True, PIER_PROJECT="team-b")
        yield f"http://{k8s_node.BRIDGE_ADDRESS}:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        guard.release()
        log.close()


async def until(backend: KubernetesBackend, replica_id: str, check: Callable[[ReplicaObservation | None], bool],
                what: str, seconds: float = 180) -> ReplicaObservation | None:
    found: ReplicaObservation | None = None
    for _ in range(int(seconds / 0.2)):
        found = {r.replica_id: r for r in await backend.observe()}.get(replica_id)
        if check(found):
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"replica {replica_id} never {what}; last seen {found}")


def test_pods_pull_serve_crash_restart_and_stop_on_a_real_node(
        node_cluster: tuple[object, str], registry_on_bridge: str, tmp_path: Path) -> None:
    cluster, image = node_cluster
    settings = load_settings(home=tmp_path, kubernetes={
        "kubeconfig": str(cluster.kubeconfig), "namespace": NAMESPACE,  # type: ignore[attr-defined]
        "image": image, "registry_url": registry_on_bridge, "ready_probe_period_s": 1},
        platform={"deregistration_delay_s": 0.5, "stop_grace_s": 5})
    spec = ReplicaSpec(project="default", deployment="iris", predictor="main", revision=1, template="t1",
                       model="iris:1", cpu="500m", memory="512Mi")

    async def scenario() -> None:
        backend = KubernetesBackend(settings)
        try:
            replica_id = await backend.start(spec)
            ready = await until(backend, replica_id, lambda r: r is not None and r.phase in ("ready", "exited"),
                                "became ready")
            assert ready is not None
            assert ready.phase == "ready", (ready, backend.logs("default", "iris"))
            assert ready.url is not None
            assert ready.url.startswith("http://10.199.0.")
            async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
                answer = await client.post(f"{ready.url}/v2/models/iris/infer", json={"inputs": [
                    {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]})
                assert answer.status_code == 200, answer.text
            assert any("iris" in line for line in backend.logs("default", "iris"))

            await backend.restart(replica_id)
            again = await until(backend, replica_id, lambda r: r is not None and r.phase == "ready" and r.restarts == 1,
                                "became ready again")
            assert again is not None
            assert again.pid == 2

            unknown = await backend.start(ReplicaSpec(**{**_fields(spec), "model": "nosuchmodel:1"}))
            crashed = await until(backend, unknown, lambda r: r is not None and r.phase == "exited", "crashed")
            assert crashed is not None
            assert crashed.exit_code not in (None, 0)
            assert any("nosuchmodel" in line for line in crashed.last_log), crashed.last_log

            theirs = await backend.start(ReplicaSpec(**{**_fields(spec), "project": "team-b", "deployment": "lily",
                                                         "model": "lily:1"}))
            served = await until(backend, theirs, lambda r: r is not None and r.phase in ("ready", "exited"),
                                 "served team-b's own model")
            assert served is not None
            assert served.phase == "ready", (served, backend.logs("team-b", "lily"))

            await backend.stop(replica_id, "test")
            await backend.stop(unknown, "test")
            await backend.stop(theirs, "test")
            await until(backend, replica_id, lambda r: r is None, "went", seconds=60)
        finally:
            await backend.close()

    asyncio.run(scenario())


def _fields(spec: ReplicaSpec) -> dict[str, object]:
    return {name: getattr(spec, name) for name in ReplicaSpec.__dataclass_fields__}
