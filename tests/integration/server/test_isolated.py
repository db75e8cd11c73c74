"""`pier serve --isolated`: a version runs in a virtualenv built from its lock, beside one that does not.

A model saved inside a scikit-learn 1.5 environment (``tests/support/isolated_envs.py``) records that
environment as its lock. Served isolated, it runs there (no skew); served in the test venv (scikit-learn
1.9), it still answers but its metadata and log warn of the skew.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.support.isolated_envs import build_old_sklearn_env, python_path
from tests.support.procs import pier_env, run_pier

from .conftest import start_server

BODY = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [6.7, 3.0, 5.2, 2.3]}]}
SAVE = """
import sklearn
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
import modelpier
x, y = load_iris(return_X_y=True)
v = modelpier.save_model("old-iris", LogisticRegression(max_iter=500).fit(x, y), input_example=x[:2])
print(sklearn.__version__, v.ref)
"""


def test_two_scikit_learn_versions_side_by_side(environments_dir: Path, iris_model: Path, tmp_path: Path) -> None:
    environments = environments_dir
    python, plan = build_old_sklearn_env(environments)
    home = tmp_path / "home"
    env = pier_env(home, PIER_REGISTRY__ENVIRONMENTS_DIR=str(environments))
    saved = subprocess.run([str(python), "-c", SAVE], env={**env, "PYTHONPATH": python_path(environments)},
                           capture_output=True, text=True, timeout=120, check=False)
    assert saved.returncode == 0, saved.stderr
    assert saved.stdout.split() == ["1.5.2", "old-iris:1"]
    lock = run_pier(["models", "get", "old-iris", "-o", "json"], home, check=True).stdout
    assert '"scikit-learn"' in lock
    assert '"1.5.2"' in lock
    run_pier(["models", "save", str(iris_model), "--name", "new-iris"], home, check=True)

    extra = {"PIER_REGISTRY__ENVIRONMENTS_DIR": str(environments)}
    with start_server(["old-iris"], home, "--no-grpc", "--isolated", "--log-level", "info", env=extra) as old, \
            start_server(["new-iris"], home, "--no-grpc", env=extra) as new, \
            start_server(["skewed=old-iris"], home, "--no-grpc", env=extra) as skewed:
        for server, name in ((old, "old-iris"), (new, "new-iris"), (skewed, "skewed")):
            r = httpx.post(f"{server.url}/v2/models/{name}/infer", json=BODY)
            assert r.json()["outputs"][0]["data"] == [2], r.text
        # The isolated server runs in the environment's Python (same pid: the command replaced itself).
        command = Path(f"/proc/{old.proc.pid}/cmdline").read_bytes().split(b"\0")
        assert command[0].decode() == str(environments / plan.key / "bin" / "python")
        assert "parameters" not in httpx.get(f"{old.url}/v2/models/old-iris").json()  # no skew inside
        warnings = httpx.get(f"{skewed.url}/v2/models/skewed").json()["parameters"]["environment_warnings"]
        assert any("scikit-learn: the model was saved with 1.5.2, this environment has 1.9" in w for w in warnings)
    assert "scikit-learn: the model was saved with 1.5.2" in skewed.log.read_text()

