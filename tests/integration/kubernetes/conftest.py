"""Fixtures for the Kubernetes assets: a small sklearn model, and a control plane holding it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import control_plane, run_pier


@pytest.fixture(scope="module")
def registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real control plane (`pier server`) whose registry holds iris:1 (pushed from a laptop store)."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    base = tmp_path_factory.mktemp("k8s-registry")
    x, y = load_iris(return_X_y=True)
    model = base / "iris.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), model)
    laptop = base / "laptop"
    run_pier(["models", "save", str(model), "--name", "iris"], laptop, check=True)
    with control_plane(base / "control") as url:
        run_pier(["models", "push", "iris:1", "--remote", url], laptop, check=True)
        yield url


def pier_args_ok(args: list[str], home: Path) -> str | None:
    """``None`` when ``pier ARGS --help`` parses (every option exists), else the error output."""
    result = run_pier([*args, "--help"], home)
    return None if result.returncode == 0 else result.stderr + result.stdout
