from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelpier.errors import InvalidArtifact, InvalidSpec
from modelpier.registry.domain import Flavor
from modelpier.runtimes import loader
from modelpier.runtimes.loader import guess_flavor, load_runtime, prepare_plain_path

Data = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]


@pytest.mark.parametrize(("name", "content", "flavor"), [
    ("iris.joblib", b"x", Flavor.SKLEARN),
    ("iris.pkl", b"x", Flavor.SKLEARN),
    ("iris.onnx", b"x", Flavor.ONNX),
    ("net.pt", b"x", Flavor.TORCH),
    ("net.pth", b"x", Flavor.TORCH),
    ("model.ubj", b"x", Flavor.XGBOOST),
    ("model.xgb", b"x", Flavor.XGBOOST),
    ("booster.txt", b"tree\nversion=v4\n", Flavor.LIGHTGBM),
])
def test_guess_flavor_of_files(tmp_path: Path, name: str, content: bytes, flavor: Flavor) -> None:
    (tmp_path / name).write_bytes(content)
    assert guess_flavor(tmp_path / name) is flavor
    # A folder holding one such file has that file's flavor.
    assert guess_flavor(tmp_path) is flavor


@pytest.mark.parametrize(("marker", "flavor"), [("MLmodel", Flavor.MLFLOW), ("python-model.json", Flavor.PYTHON),
                                                ("model.joblib", Flavor.SKLEARN), ("model.onnx", Flavor.ONNX)])
def test_guess_flavor_of_folders(tmp_path: Path, marker: str, flavor: Flavor) -> None:
    (tmp_path / marker).write_text("{}")
    (tmp_path / "notes.md").write_text("readme")
    assert guess_flavor(tmp_path) is flavor


@pytest.mark.parametrize("name", ["notes.txt", "data.csv"])
def test_unknown_files_name_the_path_and_the_supported_kinds(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("hello")
    with pytest.raises(InvalidArtifact, match=rf"{name}.*supported: \.joblib/\.pkl"):
        guess_flavor(tmp_path / name)
    with pytest.raises(InvalidArtifact, match="cannot tell which kind of model"):
        guess_flavor(tmp_path)


def test_missing_paths_and_ambiguous_folders(tmp_path: Path) -> None:
    with pytest.raises(InvalidArtifact, match="does not exist"):
        guess_flavor(tmp_path / "nope.joblib")
    (tmp_path / "a.onnx").write_bytes(b"x")
    (tmp_path / "b.joblib").write_bytes(b"x")
    with pytest.raises(InvalidArtifact, match="several model files"):
        guess_flavor(tmp_path)


def test_prepare_plain_path_presents_a_file_as_a_folder(iris: Data, tmp_path: Path) -> None:
    model = LogisticRegression(max_iter=300).fit(*iris)
    joblib.dump(model, tmp_path / "iris.pkl")
    flavor, folder = prepare_plain_path(tmp_path / "iris.pkl", cache_dir=tmp_path)
    assert flavor is Flavor.SKLEARN
    assert [p.name for p in folder.iterdir()] == ["model.joblib"]
    out = load_runtime(flavor, folder).predict({"x": iris[0][:3]})
    np.testing.assert_array_equal(out["predict"], model.predict(iris[0][:3]))


def test_prepare_plain_path_keeps_folders_in_layout(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"x")
    assert prepare_plain_path(tmp_path) == (Flavor.ONNX, tmp_path)


def test_unknown_flavor_lists_the_flavors(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpec, match=r"unknown flavor 'keras'.*'sklearn', 'xgboost'"):
        load_runtime("keras", tmp_path)


def test_a_missing_framework_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def without_xgboost(name: str, package: str | None = None) -> Any:
        return None if name == "xgboost" else real(name, package)

    monkeypatch.setattr(loader.importlib.util, "find_spec", without_xgboost)
    with pytest.raises(InvalidArtifact, match=r"needs xgboost.*pip install 'modelpier\[xgboost\]'"):
        load_runtime(Flavor.XGBOOST, tmp_path)


def test_importing_the_loader_and_packaging_imports_no_framework() -> None:
    code = (
        "import sys, modelpier.runtimes.loader, modelpier.sdk.packaging, modelpier.runtimes.environment\n"
        "heavy = {'sklearn', 'xgboost', 'lightgbm', 'onnx', 'onnxruntime', 'torch', 'joblib'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
