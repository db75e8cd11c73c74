from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from onnx import TensorProto, helper
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelpier.errors import InvalidArtifact, InvalidInput, InvalidSpec
from modelpier.registry.domain import Flavor
from modelpier.runtimes.loader import load_runtime
from modelpier.sdk.packaging import detect_flavor, package_model
from modelpier.spec.signature import Signature, TensorSpec

Data = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]


class UserModel:
    def load(self, path: Path) -> None: ...

    def predict(self, inputs: dict[str, Any]) -> Any:
        return inputs


@pytest.fixture(scope="module")
def logreg(iris: Data) -> LogisticRegression:
    return LogisticRegression(max_iter=300).fit(*iris)


def _onnx_model() -> Any:
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])])
    return helper.make_model(graph)


def _torch_module() -> Any:
    import torch

    return torch.nn.Linear(4, 2)


@pytest.mark.parametrize(("build", "flavor"), [
    (lambda x, y: LogisticRegression(max_iter=300).fit(x, y), Flavor.SKLEARN),
    (lambda x, y: make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(x, y), Flavor.SKLEARN),
    (lambda x, y: xgb.XGBClassifier(n_estimators=2).fit(x, y), Flavor.XGBOOST),
    (lambda x, y: xgb.train({}, xgb.DMatrix(x, label=y), num_boost_round=1), Flavor.XGBOOST),
    (lambda x, y: lgb.LGBMRegressor(n_estimators=2, verbose=-1).fit(x, y), Flavor.LIGHTGBM),
    (lambda x, y: lgb.train({"verbose": -1}, lgb.Dataset(x, label=y), num_boost_round=1), Flavor.LIGHTGBM),
    (lambda x, y: _torch_module(), Flavor.TORCH),
    (lambda x, y: _onnx_model(), Flavor.ONNX),
    (lambda x, y: UserModel(), Flavor.PYTHON),
])
def test_detect_flavor_of_objects(iris: Data, build: Any, flavor: Flavor) -> None:
    assert detect_flavor(build(*iris)) is flavor


def test_detect_flavor_of_paths(logreg: LogisticRegression, tmp_path: Path) -> None:
    joblib.dump(logreg, tmp_path / "iris.joblib")
    assert detect_flavor(tmp_path / "iris.joblib") is Flavor.SKLEARN
    assert detect_flavor(str(tmp_path / "iris.joblib")) is Flavor.SKLEARN
    (tmp_path / "mlflow").mkdir()
    (tmp_path / "mlflow" / "MLmodel").write_text("flavors: {}")
    assert detect_flavor(tmp_path / "mlflow") is Flavor.MLFLOW


@pytest.mark.parametrize("obj", [object(), {"weights": [1, 2]}, StandardScaler()])
def test_unknown_objects_name_their_type_and_the_flavors(obj: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidArtifact, match=rf"cannot package a .*{type(obj).__name__}.*supported.*sklearn"):
        package_model(obj, tmp_path / "m")


def test_a_contradicting_flavor_is_refused(logreg: LogisticRegression, tmp_path: Path) -> None:
    with pytest.raises(InvalidArtifact, match="object is a sklearn LogisticRegression, not a xgboost model"):
        package_model(logreg, tmp_path / "m", flavor="xgboost")
    with pytest.raises(InvalidSpec, match="unknown flavor 'caffe'"):
        package_model(logreg, tmp_path / "m", flavor="caffe")


def test_sklearn_api_wrappers_may_be_pickled_as_sklearn(iris: Data, tmp_path: Path) -> None:
    model = xgb.XGBClassifier(n_estimators=2).fit(*iris)
    packaged = package_model(model, tmp_path / "m", flavor="sklearn", input_example=iris[0][:2])
    assert packaged.flavor is Flavor.SKLEARN
    assert (packaged.directory / "model.joblib").is_file()
    out = load_runtime("sklearn", packaged.directory).predict({"x": iris[0][:3]})
    np.testing.assert_array_equal(out["predict"], model.predict(iris[0][:3]))


def test_params_environment_and_example(logreg: LogisticRegression, iris: Data, tmp_path: Path) -> None:
    packaged = package_model(logreg, tmp_path / "m", input_example=iris[0][:20])
    assert packaged.params["max_iter"] == "300"
    assert all(isinstance(v, str) for v in packaged.params.values())
    assert packaged.environment["framework"]["name"] == "scikit-learn"
    assert len(packaged.input_example) == 5
    assert json.loads(json.dumps(packaged.input_example)) == iris[0][:5].tolist()


def test_examples_are_truncated_per_input_and_made_json_safe(tmp_path: Path) -> None:
    from modelpier.sdk.signature_inference import example_inputs, stored_example

    stored = stored_example(example_inputs({"a": np.arange(10), "b": [[np.nan, 1.0]] * 8,
                                            "c": np.array([b"x", b"y"], dtype=object)}))
    assert stored == {"a": [0, 1, 2, 3, 4], "b": [[None, 1.0]] * 5, "c": ["x", "y"]}
    assert stored_example(example_inputs([1.0, 2.0], tabular=True)) == [[1.0, 2.0]]


def test_a_user_signature_is_validated(logreg: LogisticRegression, iris: Data, tmp_path: Path) -> None:
    good = {"inputs": [{"name": "features", "datatype": "FP64", "shape": [-1, 4]}],
            "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]}]}
    packaged = package_model(logreg, tmp_path / "a", signature=good, input_example=iris[0][:2])
    assert packaged.signature == Signature.model_validate(good)
    assert packaged.signature.inputs[0] == TensorSpec(name="features", datatype="FP64", shape=(-1, 4))

    bad = {"inputs": [{"name": "features", "datatype": "FLOAT", "shape": [-1, 4]}]}
    with pytest.raises(InvalidSpec, match=r"signature\.inputs\.0\.datatype"):
        package_model(logreg, tmp_path / "b", signature=bad)
    with pytest.raises(InvalidSpec, match=r"signature\.extra: Extra inputs"):
        package_model(logreg, tmp_path / "c", signature={"extra": 1})


def test_an_example_that_does_not_fit_is_refused(logreg: LogisticRegression, iris: Data, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"rejected its input example.*expected shape \[-1, 4\]"):
        package_model(logreg, tmp_path / "a", signature={"inputs": [
            {"name": "x", "datatype": "FP64", "shape": [-1, 4]}]}, input_example=iris[0][:2, :3])
    with pytest.raises(InvalidInput, match="rejected its input example"):
        package_model(logreg, tmp_path / "b", input_example=iris[0][:2, :3])


def test_the_destination_must_be_empty(logreg: LogisticRegression, tmp_path: Path) -> None:
    (tmp_path / "junk").write_text("x")
    with pytest.raises(InvalidInput, match="not empty"):
        package_model(logreg, tmp_path)


def test_a_file_path_and_a_folder_holding_one_file(logreg: LogisticRegression, iris: Data,
                                                   tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    joblib.dump(logreg, tmp_path / "src" / "iris.pkl")
    from_file = package_model(tmp_path / "src" / "iris.pkl", tmp_path / "a", input_example=iris[0][:2])
    from_folder = package_model(tmp_path / "src", tmp_path / "b")
    for packaged in (from_file, from_folder):
        assert packaged.flavor is Flavor.SKLEARN
        assert [p.name for p in packaged.directory.iterdir()] == ["model.joblib"]
    assert from_file.signature is not None
    assert from_file.signature.outputs[0].name == "predict"


def test_an_unreadable_file_is_refused_at_packaging(tmp_path: Path) -> None:
    (tmp_path / "broken.joblib").write_bytes(b"garbage")
    with pytest.raises(InvalidArtifact, match="cannot read"):
        package_model(tmp_path / "broken.joblib", tmp_path / "m")
