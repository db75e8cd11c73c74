"""Isolated predictors on a real ``pier up``: two deployments needing different scikit-learn versions
run side by side, and a lock that cannot be installed fails its rollout with an event naming the package."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.integration.platform_support import Platform, pier_down, replica_env, run_platform
from tests.support.isolated_envs import build_old_sklearn_env, python_path
from tests.support.procs import ADMIN_HEADERS, pier_env, run_pier, wait_until

pytestmark = pytest.mark.slow

BODY = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [6.7, 3.0, 5.2, 2.3]}]}
SAVE = """
import sys
import sklearn
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
import modelpier
x, y = load_iris(return_X_y=True)
modelpier.save_model(sys.argv[1], LogisticRegression(max_iter=500).fit(x, y), input_example=x[:2])
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, environments_dir: Path) -> Iterator[tuple[Platform, Path]]:
    home = tmp_path_factory.mktemp("isolated-platform")
    environments = environments_dir
    python, _plan = build_old_sklearn_env(environments)
    env = {**replica_env(34000 + (os.getpid() % 50) * 40), "PIER_REGISTRY__ENVIRONMENTS_DIR": str(environments)}
    for name, interpreter, path in (("old-iris", str(python), python_path(environments)),
                                    ("new-iris", None, None), ("bad-iris", None, None)):
        extra = {"PYTHONPATH": path} if path else {}
        saved = subprocess.run([interpreter or sys.executable, "-c", SAVE, name],
                               env={**pier_env(home, **env), **extra}, capture_output=True, text=True,
                               timeout=120, check=False)
        assert saved.returncode == 0, saved.stderr
    bad = home / "bad.txt"
    bad.write_text("scikit-learn==99.0.0\nnumpy==2.1.3\n")
    run_pier(["models", "lock", "bad-iris", "--requirements", str(bad)], home, check=True, **env)
    try:
        with run_platform(home, env) as platform:
            yield platform, home
    finally:
        pier_down(home, env)


def test_two_scikit_learn_versions_in_two_deployments(setup: tuple[Platform, Path]) -> None:
    platform, _home = setup
    platform.apply("old", [{"name": "main", "model": "old-iris:1", "isolated": True}])
    platform.apply("new", [{"name": "main", "model": "new-iris:1"}])
    platform.wait_ready("old", 1, timeout=180)
    platform.wait_ready("new", 1)
    for name, model in (("old", "old-iris"), ("new", "new-iris")):
        r = httpx.post(f"{platform.gateway}/default/{name}/v2/models/{model}/infer", json=BODY, timeout=10)
        assert r.json()["outputs"][0]["data"] == [2], r.text
    meta = httpx.get(f"{platform.gateway}/default/old/v2/models/old-iris", timeout=10).json()
    assert "parameters" not in meta  # scikit-learn 1.5.2 inside: no skew to report


def test_a_lock_that_cannot_be_installed_fails_the_rollout_naming_the_package(setup: tuple[Platform, Path]) -> None:
    platform, _home = setup
    platform.apply("bad", [{"name": "main", "model": "bad-iris:1", "isolated": True}],
                   rollout={"readyTimeoutSeconds": 120})

    def reported() -> bool:
        text = " ".join(e.get("message", "") for e in platform.events("bad"))
        return "scikit-learn==99.0.0" in text
    wait_until(reported, timeout=180, what="an event naming the package that cannot be installed")
    httpx.delete(platform.deployment("bad"), headers=ADMIN_HEADERS)
