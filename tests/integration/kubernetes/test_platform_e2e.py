"""The platform running as pods on a real Kubernetes v1.28 cluster with a real node.

One cluster per module (``tests/support/k8s_node.py``): etcd, kube-apiserver, controller manager,
scheduler, kubelet with containerd and runc, kube-proxy for ClusterIP Services, and the node's
OCI registry. The platform image is built without Docker (``tests/support/platform_image.py``) and
pushed there; PostgreSQL and S3 (moto) run on the host, reached by the pods at the bridge address.
``deploy/kubernetes/overlays/e2e`` installs the platform with a kustomization written here (image,
Secret, blob settings) into ``modelpier-system``, whose namespace enforces PodSecurity
``restricted``. The tests talk to pods by their IPs, as the README of ``../shared/k8s`` allows.

Skipped, saying why, without ``KUBEBUILDER_ASSETS`` or root. Every test here shares one cluster, so
the module runs in one xdist worker (``--dist loadfile`` keeps a file together).
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.k8s_node import unavailable
from tests.support.k8s_platform import ADMIN, NAMESPACE, Platform, pod_ready, start_platform
from tests.support.platform_image import ImageUnavailable
from tests.support.procs import ADMIN_TOKEN, run_pier, wait_until

pytestmark = [pytest.mark.xdist_group("kubernetes-node"), pytest.mark.timeout(600)]


@dataclass
class Load:
    """Predictions through the gateway pods in turn (as their Service would spread them), on a
    background thread until stopped or ``limit`` requests; every non-200 is a failure."""

    platform: Platform
    name: str
    project: str = "default"
    limit: int = 50_000
    pause_s: float = 0.01  # a steady, bounded load (~50-100 requests/s here), not a benchmark
    headers: dict[str, str] | None = None
    failures: list[str] = field(default_factory=list)
    versions: Counter[str] = field(default_factory=Counter)
    predictors: Counter[str] = field(default_factory=Counter)
    revisions: Counter[str] = field(default_factory=Counter)  # x-pier-revision: which rollout answered
    count: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self, gateways: list[str]) -> None:
        with httpx.Client() as client:
            for gateway in itertools.cycle(gateways):
                if self._stop.is_set() or self.count >= self.limit:
                    return
                self.count += 1
                try:
                    r = self.platform.infer(self.name, project=self.project, gateway=gateway, client=client,
                                            headers=self.headers)
                except httpx.HTTPError as exc:
                    self.failures.append(f"{gateway}: {type(exc).__name__}: {exc}")
                    continue
                if r.status_code != 200:
                    self.failures.append(f"{gateway}: {r.status_code}: {r.text[:200]}")
                    continue
                self.versions[r.json()["model_version"]] += 1
                self.predictors[r.headers.get("x-pier-predictor", "?")] += 1
                self.revisions[r.headers.get("x-pier-revision", "?")] += 1
                self._stop.wait(self.pause_s)

    def __enter__(self) -> Load:
        self._thread = threading.Thread(target=self._run, args=(self.platform.gateway_urls(),), daemon=True)
        self._thread.start()
        wait_until(lambda: self.count >= 20 or not self._thread or not self._thread.is_alive(), what="load")
        return self

    def wait(self, count: int, timeout: float = 120) -> None:
        assert count <= self.limit, f"the load stops at {self.limit} requests"
        wait_until(lambda: self.count >= count, timeout=timeout, what=f"{count} requests")

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    with ExitStack() as stack:
        try:
            platform = stack.enter_context(start_platform(tmp_path_factory.mktemp("k8s-e2e")))
        except ImageUnavailable as e:
            pytest.skip(str(e))
        print(f"platform up: {platform.seconds} s; image {platform.image.seconds}")
        yield platform


@pytest.fixture(scope="module")
def pushed_iris(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> str:
    """iris:1 pushed from a laptop store to the control plane pod (its files land in S3)."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path_factory.mktemp("iris")
    x, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), folder / "iris.joblib")
    run_pier(["models", "save", str(folder / "iris.joblib"), "--name", "iris"], platform.home, check=True)
    platform.pier("models", "push", "iris:1", "--remote", platform.control_url)
    return "iris:1"


def test_the_platform_runs_as_restricted_non_root_pods(platform: Platform) -> None:
    namespace = platform.cluster.get("namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    pods = platform.cluster.get("pods", "-n", NAMESPACE)["items"]
    components = sorted(p["metadata"]["labels"]["app.kubernetes.io/component"] for p in pods)
    assert components == ["control-plane", "gateway", "gateway"]
    for pod in pods:
        assert pod_ready(pod), pod["metadata"]["name"]
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert pod["spec"]["containers"][0]["image"] == platform.image.by_digest
    # The gateway found the control plane through its Service (ClusterIP, no DNS).
    for url in platform.gateway_urls():
        health = httpx.get(f"{url}/healthz", timeout=5).json()
        assert health["routing"]["control"].startswith("http://10.96."), health
    gateway = platform.cluster.get("hpa", "-n", NAMESPACE, "modelpier-gateway")
    assert gateway["spec"]["minReplicas"] == 2
    assert platform.cluster.get("pdb", "-n", NAMESPACE, "modelpier-gateway")["spec"]["minAvailable"] == 1


def test_a_root_pod_is_refused_by_the_namespace(platform: Platform) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root", "namespace": NAMESPACE},
           "spec": {"containers": [{"name": "c", "image": platform.image.by_digest, "args": ["--help"]}]}}
    done = platform.cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(pod), check=False)
    assert done.returncode != 0
    assert "violates PodSecurity" in done.stderr, done.stderr


def test_the_control_plane_keeps_models_in_postgres_and_s3_across_pod_restarts(platform: Platform, pushed_iris: str,
                                                                               tmp_path: Path) -> None:
    old = platform.pod_ips("control-plane")
    platform.cluster.kubectl("-n", NAMESPACE, "delete", "pod", "-l", "app.kubernetes.io/component=control-plane",
                             "--wait=true", timeout=90)
    wait_until(lambda: bool(platform.pod_ips("control-plane")) and platform.pod_ips("control-plane") != old,
               timeout=120, what="a new control-plane pod")
    listed = platform.pier("models", "list", "-o", "json").stdout
    assert "iris" in listed
    pulled = run_pier(["models", "pull", pushed_iris, "--remote", platform.control_url], tmp_path / "other", check=True)
    assert pulled.returncode == 0


# -- the Kubernetes backend: everything below drives the control plane's reconciler on pods ----------


@pytest.fixture(scope="module")
def backend(platform: Platform, pushed_iris: str) -> Platform:
    """The platform whose control plane runs deployments as pods; iris:1 and iris:2 in its registry."""
    # Pods pull with the token in their namespace's Secret (the project's namespace: default here).
    platform.cluster.kubectl("-n", "default", "create", "secret", "generic", "modelpier-registry-token",
                             f"--from-literal=token={ADMIN_TOKEN}")
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import modelpier
    from modelpier.settings import load_settings

    x, y = load_iris(return_X_y=True)
    version = modelpier.save_model("iris", LogisticRegression(C=0.5, max_iter=500).fit(x, y),
                                   settings=load_settings(home=platform.home))
    assert str(version.version) == "2", version
    platform.pier("models", "push", "iris:2", "--remote", platform.control_url)
    return platform


def iris(version: int, replicas: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"name": "main", "model": f"iris:{version}", "replicas": replicas,
             "resources": {"cpu": "250m", "memory": "512Mi"}, **extra}]


@pytest.fixture(scope="module")
def example(backend: Platform) -> str:
    """``example``: iris:1 on one pod, shared by the tests that only need a deployment serving (each
    deployment costs a pod start; the module keeps them few)."""
    backend.apply("example", iris(1, 1))
    backend.wait_ready("example", 1)
    return "example"


@pytest.fixture(scope="module")
def pair(backend: Platform) -> str:
    """``pair``: iris:1 on two pods, healed and then rolled to iris:2 by the tests below, in file order."""
    backend.apply("pair", iris(1, 2))
    backend.wait_ready("pair", 2)
    return "pair"


def test_deploy_the_example_and_predict_through_each_gateway_pod(backend: Platform, example: str) -> None:
    for gateway in backend.gateway_urls():
        response = backend.infer(example, gateway=gateway)
        assert response.status_code == 200, response.text
        assert response.json()["model_version"] == "1"
        assert response.headers["x-pier-predictor"] == "main"
    pods = backend.model_pods(example)
    assert len(pods) == 1
    assert pods[0]["spec"]["securityContext"]["runAsNonRoot"] is True
    # Its pod is a child of the ModelDeployment resource the API's deployment is mirrored into.
    def owned() -> bool:
        resources = {r["metadata"]["name"]: r["metadata"]["uid"]
                     for r in backend.cluster.get("modeldeployments", "-n", "default")["items"]}
        owners = backend.model_pods(example)[0]["metadata"].get("ownerReferences", [])
        return example in resources and any(o["uid"] == resources[example] for o in owners)

    wait_until(owned, timeout=30, what="the pod owned by its ModelDeployment")


def test_token_auth_refuses_a_caller_without_a_token_and_admits_one_with_it(backend: Platform) -> None:
    backend.apply("guarded", iris(1, 1), auth={"mode": "token"})
    backend.wait_ready("guarded", 1)
    gateway = backend.gateway_urls()[0]
    assert backend.infer("guarded", gateway=gateway).status_code == 401
    assert backend.infer("guarded", gateway=gateway, headers={"Authorization": "Bearer pier_wrong"}).status_code in (
        401, 403)
    assert backend.infer("guarded", gateway=gateway, headers=ADMIN).status_code == 200
    backend.delete("guarded")


def test_deleting_a_model_pod_under_load_fails_no_request(backend: Platform, pair: str) -> None:
    before = {p["metadata"]["name"] for p in backend.model_pods(pair)}
    victim = backend.model_pods(pair)[0]
    with Load(backend, pair) as load:
        backend.cluster.kubectl("-n", victim["metadata"]["namespace"], "delete", "pod", victim["metadata"]["name"],
                                "--wait=false")
        load.wait(load.count + 200)
        wait_until(lambda: len({p["metadata"]["name"] for p in backend.model_pods(pair)} - before) >= 1,
                   timeout=120, what="a new model pod")
        load.wait(load.count + 100)
    assert load.failures == []
    backend.wait_ready(pair, 2)


def test_a_rolling_update_under_load_fails_no_request(backend: Platform, pair: str) -> None:
    with Load(backend, pair) as load:
        backend.apply(pair, iris(2, 2))
        backend.wait_ready(pair, 2, revision=2)
        try:
            wait_until(lambda: load.revisions["2"] >= 20, timeout=60, what="the gateways routing to revision 2")
        except AssertionError as e:
            raise AssertionError(f"{e}: {load.revisions}, {load.failures[:3]}, {backend.status(pair)}") from None
    assert load.failures == []
    assert set(load.revisions) <= {"1", "2"}
    assert {backend.infer(pair).headers["x-pier-revision"] for _ in range(10)} == {"2"}


def test_a_pod_reports_the_registry_version_it_serves(backend: Platform, pair: str) -> None:
    backend.apply(pair, iris(2, 2))  # where the rolling update left it (the same spec: no new revision)
    backend.wait_ready(pair, 2)
    assert {backend.infer(pair).json()["model_version"] for _ in range(10)} == {"2"}
    backend.delete(pair)  # its last user: the node has room for few pods (the tests below need theirs)


def test_deleting_the_control_plane_pod_under_load_fails_no_request(backend: Platform, example: str) -> None:
    old = backend.pod_ips("control-plane")
    with Load(backend, example) as load:
        backend.cluster.kubectl("-n", NAMESPACE, "delete", "pod", "-l", "app.kubernetes.io/component=control-plane",
                                "--wait=false")
        wait_until(lambda: bool(backend.pod_ips("control-plane")) and backend.pod_ips("control-plane") != old,
                   timeout=120, what="a new control-plane pod")
        load.wait(load.count + 100)
    assert load.failures == []
    backend.wait_ready(example, 1)
    backend.delete(example)  # its last user


def _control_metric(platform: Platform, name: str, **labels: str) -> float | None:
    """One sample of the control plane's ``/api/v1/metrics``, or None while it is not there."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{platform.control_url}/api/v1/metrics", headers=ADMIN, timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def test_shadow_with_comparison(backend: Platform) -> None:
    """Every request is mirrored to the shadow predictor's pod; callers only see the primary, and the
    gateway pods' comparisons reach the control plane (its metrics, as `pier describe` reads them)."""
    predictors = [iris(1, 1)[0], {**iris(2, 1)[0], "name": "mirror", "weight": 0}]
    backend.apply("shadowed", predictors, shadow={"predictor": "mirror", "percent": 100})
    backend.wait_ready("shadowed", 2)
    with Load(backend, "shadowed", limit=200) as load:
        load.wait(200)
    assert load.failures == []
    assert set(load.predictors) == {"main"}, load.predictors
    labels = {"project": "default", "deployment": "shadowed", "predictor": "mirror"}
    wait_until(lambda: (_control_metric(backend, "modelpier_shadow_compared", **labels) or 0) >= 100, timeout=60,
               what="the gateways' shadow comparisons at the control plane")
    agreement = _control_metric(backend, "modelpier_shadow_agreement_ratio", **labels)
    assert agreement is not None
    assert agreement > 0.9  # iris:1 and iris:2 are two fits of one model: they nearly always agree
    backend.delete("shadowed")


def test_kubectl_and_pier_deploy_share_one_history_and_deleting_the_resource_removes_its_pods(
        backend: Platform) -> None:
    """The GitOps door: a ModelDeployment applied with kubectl is deployed like `pier deploy` (one revision,
    recorded as kubectl's), the same spec through the API adds none, and `kubectl delete md` removes the
    deployment and, through the cluster's garbage collector, its pods."""
    spec = {"predictors": iris(1, 1)}
    document = {"apiVersion": "modelpier.io/v1alpha1", "kind": "ModelDeployment",
                "metadata": {"name": "gitops", "namespace": "default"}, "spec": spec}
    backend.cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(document))
    wait_until(lambda: httpx.get(backend.deployment("gitops"), headers=ADMIN, timeout=10).status_code == 200,
               timeout=60, what="the resource taken in by the control plane")
    backend.wait_ready("gitops", 1)
    backend.apply("gitops", spec["predictors"])  # the same spec through the API: nothing new to roll out

    def revisions() -> list[dict[str, Any]]:
        return list(httpx.get(backend.deployment("gitops") + "/revisions", headers=ADMIN, timeout=10).json())

    history = revisions()
    assert len(history) == 1, history
    assert history[0]["createdBy"].startswith("kubernetes/"), history[0]
    assert len(backend.model_pods("gitops")) == 1
    backend.cluster.kubectl("delete", "md", "gitops", "-n", "default", "--timeout=60s")
    wait_until(lambda: not backend.model_pods("gitops"), timeout=120, what="the resource's pods deleted")
    wait_until(lambda: httpx.get(backend.deployment("gitops"), headers=ADMIN, timeout=10).status_code == 404,
               timeout=60, what="the deployment gone from the control plane")


def test_canary_weights_and_header_routes(backend: Platform) -> None:
    predictors = [{**iris(1, 1)[0], "weight": 70}, {**iris(2, 1)[0], "name": "canary", "weight": 30}]
    backend.apply("split", predictors, routes=[{"match": {"headers": {"x-segment": "beta"}}, "predictor": "canary"}])
    backend.wait_ready("split", 2)
    with Load(backend, "split", limit=300) as load:
        load.wait(300)
    assert load.failures == []
    assert 0.15 < load.predictors["canary"] / load.count < 0.45, load.predictors
    beta = [backend.infer("split", headers={"x-segment": "beta"}) for _ in range(10)]
    assert {r.headers["x-pier-predictor"] for r in beta} == {"canary"}
    backend.delete("split")


def test_scale_to_zero_and_wake_on_a_request(backend: Platform) -> None:
    backend.apply("sleepy", iris(1, 1, autoscaling={"minReplicas": 0, "maxReplicas": 1,
                                                     "stabilizationSeconds": 2}))
    def predictor() -> dict[str, Any]:
        return dict((backend.status("sleepy").get("predictors") or [{}])[0])  # none before its first status

    wait_until(lambda: predictor().get("readyReplicas") == 0 and predictor().get("desiredReplicas") == 0, timeout=120,
               what="sleepy scaled to zero")
    wait_until(lambda: not backend.model_pods("sleepy"), timeout=60, what="its pod deleted")
    woken = backend.infer("sleepy", timeout=120)  # held by the gateway while a pod starts
    assert woken.status_code == 200, woken.text
    assert len(backend.model_pods("sleepy")) == 1
    backend.delete("sleepy")


def test_a_second_projects_deployment_pulls_its_own_model(backend: Platform, tmp_path: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    import modelpier
    from modelpier.settings import load_settings

    created = httpx.post(f"{backend.control_url}/api/v1/projects", json={"name": "acme"}, headers=ADMIN, timeout=10)
    assert created.status_code in (200, 201, 409), created.text
    # The project's namespace, made by its administrator with the pull token (a project = a namespace).
    backend.cluster.kubectl("create", "namespace", "acme")
    backend.cluster.kubectl("label", "namespace", "acme", "pod-security.kubernetes.io/enforce=restricted")
    backend.cluster.kubectl("-n", "acme", "create", "secret", "generic", "modelpier-registry-token",
                            f"--from-literal=token={ADMIN_TOKEN}")
    home = tmp_path / "acme"
    x, y = load_iris(return_X_y=True)
    modelpier.save_model("tree", DecisionTreeClassifier().fit(x, y), settings=load_settings(home=home))
    run_pier(["models", "push", "tree:1", "--remote", backend.control_url], home, check=True, PIER_PROJECT="acme")
    backend.apply("trees", [{"name": "main", "model": "tree:1", "replicas": 1,
                             "resources": {"cpu": "250m", "memory": "512Mi"}}], project="acme")
    backend.wait_ready("trees", 1, project="acme")
    response = backend.infer("trees", project="acme", model="tree")
    assert response.status_code == 200, response.text
    backend.delete("trees", project="acme")
