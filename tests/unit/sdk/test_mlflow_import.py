from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from sklearn.linear_model import LogisticRegression

from modelpier.errors import InvalidArtifact, InvalidInput
from modelpier.registry.domain import Flavor
from modelpier.sdk.mlflow_import import read_mlflow_model, resolve_mlflow_uri
from modelpier.sdk.packaging import package_model
from modelpier.spec.signature import Signature, TensorSpec
from tests.unit.runtimes.mlflow_dirs import COLUMNS, column_signature, tensor_signature, write_sklearn_mlflow_model

Data = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]


@pytest.fixture(scope="module")
def model(iris: Data) -> LogisticRegression:
    return LogisticRegression(max_iter=300).fit(*iris)


def test_read_a_column_based_model(model: LogisticRegression, iris: Data, tmp_path: Path) -> None:
    rows = iris[0][:8].tolist()
    folder = write_sklearn_mlflow_model(tmp_path / "m", model, rows, metadata={"team": "iris", "stage": 2})
    info = read_mlflow_model(folder)
    assert info.flavor is Flavor.MLFLOW
    assert info.directory == folder
    assert info.signature == Signature(  # one input per column, as MLServer's and KServe's runtimes take them
        inputs=tuple(TensorSpec(name=c, datatype="FP64", shape=(-1,)) for c in COLUMNS),
        outputs=(TensorSpec(name="predict", datatype="INT64", shape=(-1,)),),
    )
    assert info.input_example == {c: [row[i] for row in rows[:5]] for i, c in enumerate(COLUMNS)}
    assert info.params == {"team": "iris", "stage": "2"}
    assert info.environment["requirements"] == [
        "mlflow==2.10.2", "cloudpickle==3.0.0", "numpy==1.26.4", "scikit-learn==1.9.1"]
    assert info.environment["python"] == "3.11.7"
    assert info.environment["framework"] == {"name": "scikit-learn", "version": "1.9.1"}


def test_mixed_columns_give_one_input_and_example_per_column(model: LogisticRegression,
                                                             tmp_path: Path) -> None:
    rows = [[5.1, 3.5, 1.4, 0], [4.9, 3.0, 1.4, 0]]
    folder = write_sklearn_mlflow_model(tmp_path / "m", model, rows,
                                        signature=column_signature(["double", "double", "double", "long"]))
    info = read_mlflow_model(folder)
    assert info.signature is not None
    assert [i.name for i in info.signature.inputs] == COLUMNS
    assert info.input_example == {COLUMNS[0]: [5.1, 4.9], COLUMNS[1]: [3.5, 3.0], COLUMNS[2]: [1.4, 1.4],
                                  COLUMNS[3]: [0, 0]}


def test_tensor_signature_and_inputs_example(model: LogisticRegression, iris: Data, tmp_path: Path) -> None:
    example = {"inputs": iris[0][:9].tolist()}
    folder = write_sklearn_mlflow_model(tmp_path / "m", model, [], signature=tensor_signature(), example=example)
    info = read_mlflow_model(folder)
    assert info.signature is not None
    assert info.signature.inputs == (TensorSpec(name="input-0", datatype="FP64", shape=(-1, 4)),)
    assert info.signature.outputs == (TensorSpec(name="predict", datatype="INT64", shape=(-1,)),)
    assert info.input_example == iris[0][:5].tolist()


def test_file_uris_work_and_mlflow_uris_need_mlflow(model: LogisticRegression, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",  # as on a machine without mlflow
                        lambda name, package=None: None if name == "mlflow" else find_spec(name, package))
    folder = write_sklearn_mlflow_model(tmp_path / "m", model, [[1.0, 2.0, 3.0, 4.0]])
    assert read_mlflow_model(folder.as_uri()).directory == folder
    assert resolve_mlflow_uri(str(folder)) == folder
    for uri in ("runs:/0a1b2c/model", "models:/iris/3"):
        with pytest.raises(InvalidInput, match="need mlflow"):
            read_mlflow_model(uri)
    with pytest.raises(InvalidInput, match="unsupported URI scheme 'hdfs'"):
        read_mlflow_model("hdfs://cluster/models/iris")


def test_package_model_copies_an_mlflow_folder(model: LogisticRegression, tmp_path: Path) -> None:
    folder = write_sklearn_mlflow_model(tmp_path / "m", model, [[1.0, 2.0, 3.0, 4.0]])
    packaged = package_model(folder, tmp_path / "copy")
    assert packaged.flavor is Flavor.MLFLOW
    assert (packaged.directory / "MLmodel").is_file()
    assert (packaged.directory / "model.pkl").is_file()
    assert packaged.input_example == {c: [v] for c, v in zip(COLUMNS, [1.0, 2.0, 3.0, 4.0], strict=True)}


@pytest.mark.parametrize(("mlmodel", "message"), [
    ("flavors: [unclosed", "not valid YAML"),
    ("- a list", "must be a YAML mapping"),
    ("artifact_path: model", "no 'flavors' mapping"),
    ({"flavors": {"sklearn": {}}, "signature": {"inputs": "[{not json"}}, r"signature\.inputs is not JSON"),
    ({"flavors": {"sklearn": {}}, "signature": {"inputs": json.dumps([{"type": "map", "name": "m"}])}},
     r"signature\.inputs: column 'm' has type 'map'"),
    ({"flavors": {"sklearn": {}}, "signature": {"inputs": json.dumps([{"type": "tensor"}])}},
     "lacks a tensor-spec"),
])
def test_malformed_mlmodel_files(tmp_path: Path, mlmodel: Any, message: str) -> None:
    text = mlmodel if isinstance(mlmodel, str) else yaml.safe_dump(mlmodel)
    (tmp_path / "MLmodel").write_text(text)
    with pytest.raises(InvalidArtifact, match=message):
        read_mlflow_model(tmp_path)


def test_missing_mlmodel_and_bad_example(tmp_path: Path) -> None:
    with pytest.raises(InvalidArtifact, match="no MLmodel file"):
        read_mlflow_model(tmp_path)
    (tmp_path / "MLmodel").write_text(yaml.safe_dump({"flavors": {"sklearn": {}}}))
    (tmp_path / "input_example.json").write_text("{oops")
    with pytest.raises(InvalidArtifact, match=r"input_example\.json is not JSON"):
        read_mlflow_model(tmp_path)
