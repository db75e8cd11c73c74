from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb
import yaml
from sklearn.linear_model import LogisticRegression

from modelpier.errors import InvalidArtifact, InvalidInput
from modelpier.runtimes.loader import load_runtime
from modelpier.spec.signature import TensorSpec
from tests.unit.runtimes.mlflow_dirs import column_signature, tensor_signature, write_sklearn_mlflow_model

Data = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]


@pytest.fixture(scope="module")
def model(iris: Data) -> LogisticRegression:
    return LogisticRegression(max_iter=500).fit(*iris)


def test_native_sklearn_fallback_without_mlflow(model: LogisticRegression, iris: Data, tmp_path: Path) -> None:
    assert "mlflow" not in sys.modules
    folder = write_sklearn_mlflow_model(tmp_path / "m", model, iris[0][:3].tolist())
    runtime = load_runtime("mlflow", folder)
    assert [(i.datatype, i.shape) for i in runtime.signature.inputs] == [("FP64", (-1,))] * 4  # one per column
    assert runtime.signature.outputs == (TensorSpec(name="predict", datatype="INT64", shape=(-1,)),)
    out = runtime.predict({"input-0": iris[0][:10]})  # or the columns as one tensor
    assert list(out) == ["predict"]  # MLflow's pyfunc answers predict only, so does the fallback
    np.testing.assert_array_equal(out["predict"], model.predict(iris[0][:10]))
    assert isinstance(runtime.native, LogisticRegression)
    with pytest.raises(InvalidInput, match="missing"):
        runtime.predict({"input-0": iris[0][:1, :2]})


def test_mixed_column_types_are_one_input_per_column(model: LogisticRegression, iris: Data,
                                                     tmp_path: Path) -> None:
    signature = column_signature(["double", "double", "float", "long"])
    folder = write_sklearn_mlflow_model(tmp_path / "m", model, iris[0][:3].tolist(), signature=signature)
    runtime = load_runtime("mlflow", folder)
    assert [(i.name, i.datatype, i.shape) for i in runtime.signature.inputs][2:] == [
        ("petal length (cm)", "FP32", (-1,)), ("petal width (cm)", "INT64", (-1,))]
    rows = np.array([[5.1, 3.5, 1.4, 0.0], [6.7, 3.0, 5.2, 2.0]])
    columns = {spec.name: rows[:, i].astype(np.dtype("int64") if spec.datatype == "INT64" else float)
               for i, spec in enumerate(runtime.signature.inputs)}
    np.testing.assert_array_equal(runtime.predict(columns)["predict"], model.predict(rows))


def test_tensor_signature(model: LogisticRegression, iris: Data, tmp_path: Path) -> None:
    folder = write_sklearn_mlflow_model(tmp_path / "m", model, [], signature=tensor_signature(),
                                        example={"inputs": iris[0][:2].tolist()})
    runtime = load_runtime("mlflow", folder)
    assert runtime.signature.inputs == (TensorSpec(name="input-0", datatype="FP64", shape=(-1, 4)),)
    np.testing.assert_array_equal(runtime.predict({"t": iris[0][:4]})["predict"], model.predict(iris[0][:4]))


def test_native_xgboost_fallback(iris: Data, tmp_path: Path) -> None:
    x, y = iris
    clf = xgb.XGBClassifier(n_estimators=3, max_depth=2).fit(x, y)
    folder = tmp_path / "m"
    folder.mkdir()
    clf.save_model(folder / "model.ubj")
    (folder / "model.ubj").rename(folder / "model.xgb")  # MLflow's default name, UBJSON inside
    (folder / "MLmodel").write_text(yaml.safe_dump({"flavors": {
        "python_function": {"loader_module": "mlflow.xgboost", "data": "model.xgb"},
        "xgboost": {"data": "model.xgb", "model_class": "xgboost.sklearn.XGBClassifier", "xgb_version": "3.2.0"},
    }}))
    runtime = load_runtime("mlflow", folder)
    out = runtime.predict({"x": x[:6]})
    np.testing.assert_array_equal(out["predict"], clf.predict(x[:6]))
    assert isinstance(runtime.native, xgb.XGBClassifier)


@pytest.fixture
def without_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a machine without mlflow (the test venv has it, to write real MLflow models)."""
    find_spec = importlib.util.find_spec

    def hidden(name: str, package: str | None = None) -> importlib.machinery.ModuleSpec | None:
        return None if name.split(".", maxsplit=1)[0] == "mlflow" else find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", hidden)


@pytest.mark.usefixtures("without_mlflow")
def test_flavors_modelpier_cannot_serve_without_mlflow(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text(yaml.safe_dump({"flavors": {"pytorch": {"model_data": "data"}}}))
    with pytest.raises(InvalidArtifact, match=r"\['pytorch'\] need mlflow.*pip install 'modelpier\[mlflow\]'"):
        load_runtime("mlflow", tmp_path)


def test_missing_native_file(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text(yaml.safe_dump({"flavors": {"sklearn": {"pickled_model": "gone.pkl"}}}))
    with pytest.raises(InvalidArtifact, match=r"names 'gone\.pkl'"):
        load_runtime("mlflow", tmp_path)


def test_pyfunc_is_used_when_mlflow_is_installed(model: LogisticRegression, iris: Data, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "MLmodel").write_text(yaml.safe_dump({
        "flavors": {"python_function": {"loader_module": "custom_loader", "data": "model.pkl"}},
        "signature": tensor_signature()}))
    loaded: list[str] = []

    class FakePyfunc:
        def predict(self, data: Any) -> Any:
            return model.predict(data)

    def load_model(uri: str) -> FakePyfunc:
        loaded.append(uri)
        return FakePyfunc()

    mlflow = types.ModuleType("mlflow")
    mlflow.__spec__ = importlib.machinery.ModuleSpec("mlflow", None)
    pyfunc = types.ModuleType("mlflow.pyfunc")
    pyfunc.__dict__["load_model"] = load_model
    mlflow.__dict__["pyfunc"] = pyfunc
    monkeypatch.setitem(sys.modules, "mlflow", mlflow)
    monkeypatch.setitem(sys.modules, "mlflow.pyfunc", pyfunc)

    runtime = load_runtime("mlflow", folder)
    assert loaded == [str(folder)]
    np.testing.assert_array_equal(runtime.predict({"x": iris[0][:3]})["predict"], model.predict(iris[0][:3]))


class Doubler(LogisticRegression):
    """A type skops does not trust by default (it is not scikit-learn's)."""


def test_skops_trusts_only_the_types_mlmodel_records(iris: Data, tmp_path: Path) -> None:
    import skops.io

    from modelpier.runtimes.mlflow import load_skops

    file = tmp_path / "model.skops"
    skops.io.dump(Doubler(max_iter=300).fit(*iris), file)
    name = f"{Doubler.__module__}.Doubler"
    with pytest.raises(InvalidArtifact, match=f"types MLmodel does not trust: {name}.*skops_trusted_types") as refused:
        load_skops(file, None)
    assert refused.value.details["untrusted"] == [name]
    assert isinstance(load_skops(file, [name]), Doubler)
