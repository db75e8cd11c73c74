"""The parity table: every field of a ``ModelDeployment`` spec, on the local backend and on Kubernetes.

Each row is a small scenario run on both backends through the same harness (``tests/support/parity.py``):
``pier server --backend local|kubernetes`` (the one composition root) with ``pier gateway`` in front;
on Kubernetes a real API server whose node the test plays, so replicas are pods whose containers run
as real model servers on loopback pod IPs. A row says per backend whether the feature works (the
scenario asserts the behaviour), is refused at apply (422 naming the field), or is a known gap
(accepted but not honoured; the scenario pins today's behaviour, so closing the gap fails the row
until the table says so). ``test_every_spec_field_has_a_row`` fails when a spec field has none, and
``docs/kubernetes.md`` shows the table (``PIER_REWRITE_PARITY=1`` rewrites it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.platform_support import pier_down, replica_env
from tests.support import k8s
from tests.support.parity import (
    DOC,
    Image,
    Platform,
    Row,
    doc_section,
    field_paths,
    free_pod_ips,
    gap,
    refused,
    run_platform,
    with_section,
)
from tests.support.procs import ADMIN_HEADERS, BIN, pier_env, wait_until

pytestmark = pytest.mark.slow

SLOW_MODEL = '''
import time

import numpy as np


class Slow:
    def load(self, path):
        pass

    def predict(self, inputs):
        time.sleep(2)
        return {"y": np.asarray(inputs["input-0"])}
'''

BROKEN_MODEL = '''
import sys


class Broken:
    def load(self, path):
        if "server" in sys.argv[0] or "serve" in sys.argv:  # python -m modelpier.server, or pier serve (a pod)
            raise RuntimeError("this model cannot load: weights are corrupt")

    def predict(self, inputs):
        return inputs
'''

IMAGE = "registry.test/iris-in-image@sha256:" + "0" * 64


def save_models(home: Path) -> None:
    """iris:1 and iris:2 (two scikit-learn models), slow:1 (answers after 2 s), broken:1 (fails to load in
    a server), and the alias iris:stable -> 1."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import modelpier
    from modelpier.registry.factory import build_registry
    from modelpier.settings import load_settings

    settings = load_settings(home=home)
    x, y = load_iris(return_X_y=True)
    x = x.astype("float32")
    for c in (1.0, 0.01):
        modelpier.save_model("iris", LogisticRegression(C=c, max_iter=300).fit(x, y), input_example=x[:2],
                             settings=settings)
    for name, source, cls in (("slow", SLOW_MODEL, "Slow"), ("broken", BROKEN_MODEL, "Broken")):
        folder = home / f"{name}-src"
        folder.mkdir()
        (folder / "model.py").write_text(source)
        (folder / "python-model.json").write_text(json.dumps({"class": cls}))
        modelpier.save_model(name, folder, flavor="python", settings=settings)
    registry = build_registry(settings)
    try:
        registry.set_alias("iris", "stable", 1)
    finally:
        registry.close()


# -- the scenarios -------------------------------------------------------------------------------

def _predictors(answers: list[httpx.Response]) -> set[str]:
    return {a.headers.get("x-pier-predictor", "") for a in answers}


def check_serves(p: Platform, name: str) -> None:
    p.wait_served(name)
    answer = p.infer(name)
    assert answer.json()["outputs"][0]["data"] in ([0], [1], [2]), answer.text
    assert len(p.server_argvs(name)) == 2  # two model-server processes: replicas (local) or pods


def check_follow_alias(p: Platform, name: str) -> None:
    p.wait_served(name)
    assert p.infer(name).headers["x-pier-model-version"] == "iris:1"
    moved = httpx.put(f"{p.api}/api/v1/models/iris/aliases/stable", json={"version": 2}, headers=ADMIN_HEADERS,
                      timeout=10)
    assert moved.status_code == 200, moved.text

    def rolled() -> bool:
        status = p.status(name)
        return [s.get("modelVersion") for s in status["predictors"]] == ["iris:2"] and status["readyReplicas"] == 1
    wait_until(rolled, timeout=90, what="the deployment to follow the alias to iris:2")
    wait_until(lambda: p.infer(name).headers.get("x-pier-model-version") == "iris:2", timeout=30,
               what="the gateway to serve iris:2")


def check_image(p: Platform, name: str) -> None:
    p.wait_served(name)
    [argv] = p.server_argvs(name)
    assert argv[1:3] == ["serve", "iris"]  # the image's own entrypoint ran, nothing was pulled


def _pod_resources(p: Platform, name: str) -> dict[str, Any]:
    assert p.kubelet is not None
    pods = p.kubelet.kube.get("pods", "-n", p.kubelet.namespace, "-l", f"modelpier.io/deployment={name}")["items"]
    live = [pod for pod in pods if not pod["metadata"].get("deletionTimestamp")]
    assert len(live) == 1
    return dict(live[0]["spec"]["containers"][0]["resources"]["limits"])


def check_cpu(p: Platform, name: str) -> None:
    p.wait_served(name)
    [argv] = p.server_argvs(name)
    assert argv[argv.index("--workers") + 1] == "2"  # one server process per whole core
    if p.backend == "kubernetes":
        assert _pod_resources(p, name)["cpu"] == "2"


def check_memory_gpu(p: Platform, name: str) -> None:
    p.wait_served(name)
    if p.backend == "kubernetes":
        limits = _pod_resources(p, name)
        assert limits["memory"] == "300Mi"
        assert limits["nvidia.com/gpu"] == "1"


def check_server_options(p: Platform, name: str) -> None:
    p.wait_served(name)
    argvs = sorted(p.server_argvs(name), key=lambda a: "--no-batching" in a)
    assert len(argvs) == 2
    batched, unbatched = argvs
    assert batched[batched.index("--max-batch-size") + 1] == "8"
    assert batched[batched.index("--max-latency-ms") + 1] == "2"
    assert batched[batched.index("--workers") + 1] == "2"
    assert "--no-batching" in unbatched
    assert unbatched[unbatched.index("--workers") + 1] == "1"


def check_outputs(p: Platform, name: str) -> None:
    p.wait_served(name)
    assert [o["name"] for o in p.infer(name).json()["outputs"]] == ["predict"]


def check_isolated(p: Platform, name: str) -> None:
    p.wait_served(name, model="old-iris")
    meta = httpx.get(f"{p.gateway}/default/{name}/v2/models/old-iris", timeout=10).json()
    assert "parameters" not in meta  # scikit-learn 1.5 inside its own environment: no version skew


def check_scale_to_zero(p: Platform, name: str) -> None:
    def scaled_to_zero() -> bool:
        reasons = [e.get("reason") for e in p.events(name)]
        return "ScaledDown" in reasons and p.status(name)["readyReplicas"] == 0 and not p.server_argvs(name)
    wait_until(scaled_to_zero, timeout=120, what="the idle deployment to start, then scale to zero")
    answer = p.infer(name, timeout=120)  # held by the gateway while a replica starts
    assert answer.status_code == 200, answer.text
    assert p.status(name)["readyReplicas"] == 1


def check_weights(p: Platform, name: str) -> None:
    p.wait_served(name)
    with httpx.Client() as client:
        answers = [p.infer(name, client=client) for _ in range(40)]
    assert all(a.status_code == 200 for a in answers)
    assert _predictors(answers) == {"a", "b"}


def check_routes(p: Platform, name: str) -> None:
    p.wait_served(name)
    with httpx.Client() as client:
        routed = [p.infer(name, headers={"x-variant": "beta"}, client=client) for _ in range(5)]
        plain = [p.infer(name, client=client) for _ in range(5)]
    assert _predictors(routed) == {"b"}
    assert _predictors(plain) == {"a"}


def check_shadow(p: Platform, name: str) -> None:
    from modelpier.gateway.predlog import read_predictions

    p.wait_served(name)
    with httpx.Client() as client:
        answers = [p.infer(name, client=client) for _ in range(3)]
    assert _predictors(answers) == {"main"}  # the shadow only gets copies

    def logged() -> bool:
        try:
            records = read_predictions(p.home, "default", name)
        except Exception:
            return False
        return any((r.get("shadow") or {}).get("predictor") == "mirror" for r in records)
    wait_until(logged, timeout=30, what="a primary/shadow pair in the prediction log")


def check_prediction_log(p: Platform, name: str) -> None:
    from modelpier.gateway.predlog import read_predictions, sqlite_path

    p.wait_served(name)
    for _ in range(3):
        assert p.infer(name).status_code == 200

    def logged() -> bool:
        try:
            return len(read_predictions(p.home, "default", name)) >= 3
        except Exception:
            return False
    wait_until(logged, timeout=30, what="the requests in the prediction log")
    assert sqlite_path(p.home).is_file()  # sink: sqlite


def check_sticky(p: Platform, name: str) -> None:
    p.wait_served(name)
    with httpx.Client() as client:
        picked = {user: _predictors([p.infer(name, headers={"x-user": user}, client=client) for _ in range(4)])
                  for user in (f"u{i}" for i in range(8))}
    assert all(len(chosen) == 1 for chosen in picked.values()), picked
    assert set().union(*picked.values()) == {"a", "b"}


def check_cache(p: Platform, name: str) -> None:
    p.wait_served(name)
    other = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [6.7, 3.0, 5.2, 2.3]}]}
    assert p.infer(name, body=other).headers["x-pier-cache"] == "miss"  # maxEntries 1: evicts wait_served's
    assert p.infer(name).headers["x-pier-cache"] == "miss"
    assert p.infer(name).headers["x-pier-cache"] == "hit"
    time.sleep(2.5)  # ttlSeconds 2
    assert p.infer(name).headers["x-pier-cache"] == "miss"


def check_timeout(p: Platform, name: str) -> None:
    p.wait_ready(name, 1)
    wait_until(lambda: p.infer(name, model="slow").status_code == 504, timeout=30,
               what="a 504 once the gateway routes to the slow model")


def check_limits(p: Platform, name: str) -> None:
    wait_until(lambda: p.infer(name, model="slow", timeout=10).status_code == 200, timeout=30,
               what="a prediction of the slow model")
    big = {"inputs": [{"name": "input-0", "shape": [1, 100], "datatype": "FP32", "data": [0.5] * 100}]}
    assert p.infer(name, model="slow", body=big).status_code == 413  # maxBodyBytes
    with ThreadPoolExecutor(2) as pool:
        codes = sorted(pool.map(lambda _: p.infer(name, model="slow", timeout=20).status_code, range(2)))
    assert codes == [200, 503]  # maxInFlight 1: the second is refused, not queued


def check_canary(p: Platform, name: str) -> None:
    p.wait_served(name)
    started = httpx.post(f"{p.url(name)}/canary", json={"to": "iris:2", "steps": [50], "intervalSeconds": 2},
                         headers=ADMIN_HEADERS, timeout=30)
    assert started.status_code == 201, started.text
    deadline = time.monotonic() + 120
    with httpx.Client() as client:
        while time.monotonic() < deadline:
            p.infer(name, client=client)  # traffic for the analysis (minRequests 1)
            state = httpx.get(f"{p.url(name)}/canary", headers=ADMIN_HEADERS, timeout=10).json()
            if state["done"]:
                break
            time.sleep(0.1)
    assert state["phase"] == "promoted", state
    wait_until(lambda: [s.get("modelVersion") for s in p.status(name)["predictors"]] == ["iris:2"], timeout=60,
               what="the promoted canary to be the only predictor")


def check_auth(p: Platform, name: str) -> None:
    p.wait_served(name, headers=ADMIN_HEADERS)
    assert p.infer(name).status_code == 401
    assert p.infer(name, headers={"authorization": "Bearer pier_not-a-token"}).status_code == 401
    assert p.infer(name, headers=ADMIN_HEADERS).status_code == 200


def check_rolling_update(p: Platform, name: str) -> None:
    p.wait_served(name)
    spec = dict(ROLLING_SPEC, predictors=[{**ROLLING_SPEC["predictors"][0], "model": "iris:2"}])
    p.apply(name, spec)
    failures, answers = [], 0
    deadline = time.monotonic() + 120
    with httpx.Client() as client:
        while time.monotonic() < deadline:
            answer = p.infer(name, client=client)
            answers += 1
            if answer.status_code != 200:
                failures.append(answer.status_code)
            if answer.headers.get("x-pier-model-version") == "iris:2" and p.status(name)["observedRevision"] == 2:
                break
    assert answer.headers.get("x-pier-model-version") == "iris:2"
    assert failures == []
    assert answers > 1


def check_ready_timeout(p: Platform, name: str) -> None:
    p.wait_served(name)
    p.apply(name, dict(TIMEOUT_SPEC, predictors=[{"name": "main", "model": "broken:1"}]))

    def rolled_back() -> bool:
        return any(e.get("reason") == "RolloutFailed" or "rolled back" in e.get("message", "").lower()
                   for e in p.events(name))
    wait_until(rolled_back, timeout=90, what="the rollout of a model that cannot load to be rolled back")
    assert p.infer(name).headers["x-pier-model-version"] == "iris:1"


def prepare_isolated(p: Platform, environments: Path) -> None:
    from tests.support.isolated_envs import build_old_sklearn_env, python_path

    python, _ = build_old_sklearn_env(environments)
    save = ("import sys; from sklearn.datasets import load_iris; from sklearn.linear_model import LogisticRegression; "
            "import modelpier; x, y = load_iris(return_X_y=True); "
            "modelpier.save_model('old-iris', LogisticRegression(max_iter=500).fit(x, y), input_example=x[:2])")
    done = subprocess.run([str(python), "-c", save], env={**pier_env(p.home), "PYTHONPATH": python_path(environments),
                                                          "PIER_REGISTRY__ENVIRONMENTS_DIR": str(environments)},
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr


# -- the rows ------------------------------------------------------------------------------------

P = "predictors[]."
IRIS = {"name": "main", "model": "iris:1"}
ROLLING_SPEC: dict[str, Any] = {"predictors": [IRIS], "rollout": {"maxSurge": 1, "maxUnavailable": 0}}
TIMEOUT_SPEC: dict[str, Any] = {"predictors": [IRIS], "rollout": {"readyTimeoutSeconds": 8}}
TWO = [{"name": "a", "model": "iris:1", "weight": 50}, {"name": "b", "model": "iris:2", "weight": 50}]

ROWS: list[Row] = [
    Row("model, replicas", (f"{P}name", f"{P}model", f"{P}replicas"),
        "2 replicas of `iris:1` become ready, two server processes run, a prediction through the gateway",
        {"predictors": [{**IRIS, "replicas": 2}]}, check_serves, ready_replicas=2),
    Row("bundle", (f"{P}bundle",), "apply answers 422 naming the field",
        {"predictors": [{"name": "main", "bundle": "iris-bundle:1"}]}, check_serves,
        local=refused("spec.predictors.0.bundle", "no backend deploys bundles yet"),
        kubernetes=refused("spec.predictors.0.bundle", "no backend deploys bundles yet")),
    Row("followAlias", (f"{P}followAlias",), "moving the alias `iris:stable` from 1 to 2 rolls the deployment",
        {"predictors": [{"name": "main", "model": "iris:stable", "followAlias": True}]}, check_follow_alias),
    Row("image (model-in-image)", (f"{P}image",),
        "the pod runs the image's entrypoint (the played node maps the image to `pier serve iris`), no pull",
        {"predictors": [{**IRIS, "image": IMAGE}]}, check_image,
        local=refused("spec.predictors.0.image", "names `spec.predictors.0.image`: local replicas run the "
                                                 "platform's environment")),
    Row("resources.cpu", (f"{P}resources.cpu",),
        "`cpu: 2` gives the server 2 workers; on Kubernetes also the pod's CPU request and limit",
        {"predictors": [{**IRIS, "resources": {"cpu": "2"}}]}, check_cpu),
    Row("resources.memory, resources.gpu", (f"{P}resources.memory", f"{P}resources.gpu"),
        "`memory: 300Mi, gpu: 1`: the pod's limits carry both; locally the replica runs unbounded",
        {"predictors": [{**IRIS, "resources": {"memory": "300Mi", "gpu": 1}}]}, check_memory_gpu,
        local=gap("accepted but not enforced: a local replica has no memory limit and no GPU assigned")),
    Row("batching, workers", (f"{P}batching.enabled", f"{P}batching.maxBatchSize", f"{P}batching.maxLatencyMs",
                              f"{P}workers"),
        "the server processes run with `--max-batch-size 8 --max-latency-ms 2 --workers 2` and `--no-batching`",
        {"predictors": [{**IRIS, "name": "a", "weight": 50, "workers": 2,
                         "batching": {"maxBatchSize": 8, "maxLatencyMs": 2}},
                        {**IRIS, "name": "b", "weight": 50, "batching": {"enabled": False}}]},
        check_server_options, ready_replicas=2),
    Row("outputs", (f"{P}outputs",), "`outputs: [predict]`: a request naming no output gets only `predict`",
        {"predictors": [{**IRIS, "outputs": ["predict"]}]}, check_outputs),
    Row("isolated", (f"{P}isolated",),
        "a scikit-learn 1.5 model served in a virtualenv built from its lock; on Kubernetes 422 naming the field",
        {"predictors": [{"name": "main", "model": "old-iris:1", "isolated": True}]}, check_isolated,
        refused_spec={"predictors": [{**IRIS, "isolated": True}]},  # a model the control plane resolves
        kubernetes=refused("spec.predictors.0.isolated", "names `spec.predictors.0.isolated`: a pod's "
                                                         "environment is its image (use `image`)"),
        timeout=300),
    Row("autoscaling", (f"{P}autoscaling.minReplicas", f"{P}autoscaling.maxReplicas",
                        f"{P}autoscaling.targetInFlight", f"{P}autoscaling.stabilizationSeconds"),
        "`minReplicas: 0`: idle, it scales to zero; a request through the gateway wakes it (held, answered 200)",
        {"predictors": [{**IRIS, "autoscaling": {"minReplicas": 0, "maxReplicas": 1, "targetInFlight": 1,
                                                 "stabilizationSeconds": 1}}]},
        check_scale_to_zero, ready_replicas=None),
    Row("weight", (f"{P}weight",), "50/50 between two predictors: 40 requests reach both",
        {"predictors": TWO}, check_weights, ready_replicas=2),
    Row("routes", ("routes[].match.headers", "routes[].predictor"),
        "`x-variant: beta` goes to predictor b (weight 0), other requests to a",
        {"predictors": [{**TWO[0], "weight": 100}, {**TWO[1], "weight": 0}],
         "routes": [{"match": {"headers": {"x-variant": "beta"}}, "predictor": "b"}]}, check_routes,
        ready_replicas=2),
    Row("shadow", ("shadow.predictor", "shadow.percent", "shadow.log"),
        "answers come from the primary; the prediction log holds each primary/shadow pair",
        {"predictors": [IRIS, {"name": "mirror", "model": "iris:2", "weight": 0}],
         "shadow": {"predictor": "mirror", "percent": 100, "log": True}, "predictionLog": {"sampleRate": 1}},
        check_shadow, ready_replicas=2),
    Row("predictionLog", ("predictionLog.sampleRate", "predictionLog.sink"),
        "`sampleRate: 1, sink: sqlite`: every request is in the gateway's SQLite prediction log",
        {"predictors": [IRIS], "predictionLog": {"sampleRate": 1, "sink": "sqlite"}}, check_prediction_log),
    Row("sticky", ("sticky.header",), "the same `x-user` always reaches the same predictor, users spread over both",
        {"predictors": TWO, "sticky": {"header": "x-user"}}, check_sticky, ready_replicas=2),
    Row("cache", ("cache.ttlSeconds", "cache.maxEntries"),
        "a repeated request is a hit; `maxEntries: 1` evicts it, `ttlSeconds: 2` expires it",
        {"predictors": [IRIS], "cache": {"ttlSeconds": 2, "maxEntries": 1}}, check_cache),
    Row("timeouts", ("timeouts.requestSeconds",), "`requestSeconds: 0.5` on a model answering in 2 s: 504",
        {"predictors": [{"name": "main", "model": "slow:1"}], "timeouts": {"requestSeconds": 0.5}}, check_timeout),
    Row("limits", ("limits.maxInFlight", "limits.maxBodyBytes"),
        "a body over `maxBodyBytes` is refused 413; a second concurrent request over `maxInFlight: 1` 503",
        {"predictors": [{"name": "main", "model": "slow:1"}], "limits": {"maxInFlight": 1, "maxBodyBytes": 400}},
        check_limits),
    Row("canary", ("canary.maxErrorRateIncrease", "canary.maxLatencyRatio", "canary.minRequests"),
        "a progressive canary to `iris:2` (one 50% step of 2 s) is judged on live traffic and promoted",
        {"predictors": [IRIS], "canary": {"minRequests": 1, "maxLatencyRatio": 100, "maxErrorRateIncrease": 1}},
        check_canary, timeout=240),
    Row("auth", ("auth.mode",), "`mode: token`: 401 without a token or with a bad one, 200 with a valid one",
        {"predictors": [IRIS], "auth": {"mode": "token"}}, check_auth),
    Row("rollout", ("rollout.maxSurge", "rollout.maxUnavailable"),
        "`iris:1` -> `iris:2` with `maxSurge: 1, maxUnavailable: 0` under a request loop: 0 failed requests",
        ROLLING_SPEC, check_rolling_update),
    Row("rollout.readyTimeoutSeconds", ("rollout.readyTimeoutSeconds",),
        "a revision whose model cannot load is rolled back after 8 s; `iris:1` keeps serving",
        TIMEOUT_SPEC, check_ready_timeout),
]


# -- the meta tests: a row per field, and the docs show the rows ----------------------------------

def test_every_spec_field_has_a_row() -> None:
    covered = [f for row in ROWS for f in row.fields]
    paths = field_paths()
    missing = sorted(set(paths) - set(covered))
    assert not missing, f"spec fields without a parity row in {__file__}: {missing}"
    unknown = sorted(set(covered) - set(paths))
    assert not unknown, f"parity rows name fields the spec does not have: {unknown}"
    assert len({row.id for row in ROWS}) == len(ROWS)


def test_the_field_walk_sees_nested_and_listed_fields() -> None:
    paths = field_paths()
    for path in ("predictors[].autoscaling.minReplicas", "routes[].match.headers", "shadow.log",
                 "predictors[].outputs", "auth.mode"):
        assert path in paths
    assert "predictors" not in paths
    assert "predictors[].autoscaling" not in paths


def test_the_docs_show_the_parity_table() -> None:
    current = DOC.read_text() if DOC.exists() else ""
    wanted = with_section(current, doc_section(ROWS))
    if os.environ.get("PIER_REWRITE_PARITY"):
        DOC.write_text(wanted)
        current = wanted
    assert current == wanted, ("docs/kubernetes.md's parity table differs from the rows: "
                               "PIER_REWRITE_PARITY=1 pytest tests/integration/test_parity.py -k docs")


# -- the rows on both backends ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> k8s.ControlPlane:
    why = k8s.unavailable()
    if why is not None:
        pytest.skip(f"the kubernetes column needs a Kubernetes control plane: {why}")
    return k8s.shared_control_plane(request)  # the worker's, shared with tests/integration/kubernetes


@pytest.fixture(scope="module", params=["local"])
def platform(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             environments_dir: Path) -> Iterator[Platform]:
    """The local column here; the kubernetes column's fixture is in test_parity_kubernetes.py, a file of
    its own so that ``--dist loadfile`` runs the two columns on different workers."""
    yield from platform_on(request.param, request, tmp_path_factory, environments_dir)


def platform_on(backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                environments_dir: Path) -> Iterator[Platform]:
    """A control plane over ``backend`` with a gateway in front, for one module's rows."""
    home = tmp_path_factory.mktemp(f"parity-{backend}")
    save_models(home)
    env = {**replica_env(36000 + (os.getpid() % 40) * 100), "PIER_REGISTRY__ENVIRONMENTS_DIR": str(environments_dir),
           "PIER_PLATFORM__DEREGISTRATION_DELAY_S": "0.5"}
    if backend == "local":
        try:
            with run_platform("local", home, env) as p:
                yield p
        finally:
            pier_down(home, env)
        return
    kube: k8s.ControlPlane = request.getfixturevalue("cluster")
    ips = free_pod_ips()
    if isinstance(ips, str):
        pytest.skip(f"the played node cannot give pods their loopback IPs: {ips}")
    namespace = kube.new_namespace("parity")
    images = {IMAGE: Image([str(BIN / "pier"), "serve", "iris"], home)}
    try:
        with run_platform("kubernetes", home, env, kube=kube, namespace=namespace, images=images) as p:
            yield p
            assert p.kubelet is not None
            assert not p.kubelet.errors, p.kubelet.errors  # what the played node could not do
    finally:
        kube.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.mark.timeout(400)
@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_row(platform: Platform, row: Row, environments_dir: Path) -> None:
    outcome = row.outcome(platform.backend)
    name = f"p-{row.id}"[:40]
    if outcome.kind == "refused":
        answer = platform.put(name, row.refused_spec or row.spec)
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert outcome.field in error["message"], error
        assert error["details"].get("field") == outcome.field, error
        return
    if row.id == "isolated":
        prepare_isolated(platform, environments_dir)
    platform.apply(name, row.spec)
    try:
        if row.ready_replicas is not None:
            platform.wait_ready(name, row.ready_replicas, timeout=row.timeout)
        row.check(platform, name)
    except AssertionError as exc:
        logs = "\n".join(f"== {e.get('reason')}: {e.get('message')}" for e in platform.events(name)[-15:])
        raise AssertionError(f"{exc}\nlast events of {name} on {platform.backend}:\n{logs}") from exc
    finally:
        platform.delete(name)


if __name__ == "__main__":  # print the table
    sys.stdout.write(doc_section(ROWS) + "\n")
