"""Two projects each hold a model named ``iris``; each project's deployment serves its own.

A real ``pier up``: the control plane resolves ``iris:1`` within the deployment's project (then the
shared ``default`` catalog), and the replica, started with ``PIER_PROJECT`` set to that project,
loads the same model. The two models differ in their signatures (4 inputs and 2), which the
replicas' V2 metadata shows through the gateway.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from tests.integration.platform_support import Platform, pier_down, replica_env, run_platform, save_models
from tests.support.procs import ADMIN_HEADERS

import modelpier
from modelpier.settings import load_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("project-models")
    save_models(home)  # default's iris:1 and iris:2 take four features
    x, y = load_iris(return_X_y=True)
    two = x[:, :2].astype("float32")
    acme = load_settings(home=home, project="acme")  # the SDK registers into PIER_PROJECT's registry
    modelpier.save_model("iris", LogisticRegression(max_iter=300).fit(two, y), input_example=two[:2], settings=acme)
    env = replica_env(38000 + (os.getpid() % 50) * 200 % 20000)
    try:
        with run_platform(home, env) as p:
            yield p
    finally:
        pier_down(home, env)


def _deploy(platform: Platform, project: str, name: str, model: str) -> None:
    document = {"apiVersion": "modelpier.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": name},
                "spec": {"predictors": [{"name": "main", "model": model, "replicas": 1}]}}
    r = httpx.put(f"{platform.api}/api/v1/projects/{project}/deployments/{name}", json=document,
                  headers=ADMIN_HEADERS, timeout=30)
    assert r.status_code in (200, 201), r.text


def _ready(platform: Platform, project: str, name: str) -> None:
    from tests.support.procs import wait_until

    def ready() -> bool:
        s = httpx.get(f"{platform.api}/api/v1/projects/{project}/deployments/{name}/status",
                      headers=ADMIN_HEADERS, timeout=10).json()
        return bool(s.get("readyReplicas") == 1 and s.get("observedRevision") == s.get("desiredRevision"))
    wait_until(ready, timeout=90, what=f"{project}/{name} ready")


def _inputs(platform: Platform, project: str, name: str) -> list[int]:
    meta = httpx.get(f"{platform.gateway}/{project}/{name}/v2/models/iris", timeout=10).json()
    return list(meta["inputs"][0]["shape"])


def test_each_project_serves_its_own_model_of_a_shared_name(platform: Platform) -> None:
    assert httpx.post(f"{platform.api}/api/v1/projects", json={"name": "acme"}, headers=ADMIN_HEADERS).status_code \
        == 201
    assert httpx.post(f"{platform.api}/api/v1/projects", json={"name": "beta"}, headers=ADMIN_HEADERS).status_code \
        == 201
    _deploy(platform, "acme", "own", "iris:1")  # acme's own iris
    _deploy(platform, "beta", "shared", "iris:1")  # beta has none: the default catalog's
    _deploy(platform, "default", "catalog", "iris:1")
    for project, name in (("acme", "own"), ("beta", "shared"), ("default", "catalog")):
        _ready(platform, project, name)
    assert _inputs(platform, "acme", "own")[-1] == 2
    assert _inputs(platform, "beta", "shared")[-1] == 4
    assert _inputs(platform, "default", "catalog")[-1] == 4
    # acme's model is not beta's to deploy: answered as if it did not exist.
    r = httpx.get(f"{platform.api}/api/v1/projects/beta/models/iris", headers=ADMIN_HEADERS, timeout=10)
    assert r.status_code == 404
