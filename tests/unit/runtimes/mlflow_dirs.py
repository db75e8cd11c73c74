"""Build MLflow model folders by hand, as MLflow 2.x writes them (mlflow itself is not installed)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import yaml

COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def column_signature(types: list[str] | None = None, output: str = "long") -> dict[str, Any]:
    types = types or ["double"] * len(COLUMNS)
    inputs = [{"type": t, "name": n, "required": True} for n, t in zip(COLUMNS, types, strict=True)]
    return {"inputs": json.dumps(inputs), "outputs": json.dumps([{"type": output, "required": True}]),
            "params": None}


def tensor_signature() -> dict[str, str]:
    spec = [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 4]}}]
    out = [{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]
    return {"inputs": json.dumps(spec), "outputs": json.dumps(out)}


def write_sklearn_mlflow_model(
    folder: Path,
    model: Any,
    rows: list[list[float]],
    *,
    signature: dict[str, Any] | None = None,
    example: Any = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    folder.mkdir(parents=True)
    with (folder / "model.pkl").open("wb") as fh:
        pickle.dump(model, fh)
    mlmodel: dict[str, Any] = {
        "artifact_path": "model",
        "flavors": {
            "python_function": {
                "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                "loader_module": "mlflow.sklearn",
                "model_path": "model.pkl",
                "predict_fn": "predict",
                "python_version": "3.11.7",
            },
            "sklearn": {"code": None, "pickled_model": "model.pkl", "serialization_format": "cloudpickle",
                        "sklearn_version": "1.9.1"},
        },
        "mlflow_version": "2.10.2",
        "model_uuid": "3f0e5a2c1d7b4e6f8a9b0c1d2e3f4a5b",
        "signature": signature if signature is not None else column_signature(),
        "saved_input_example_info": {"artifact_path": "input_example.json", "type": "dataframe",
                                     "pandas_orient": "split"},
    }
    if metadata is not None:
        mlmodel["metadata"] = metadata
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel, sort_keys=False))
    body = example if example is not None else {"columns": COLUMNS, "data": rows}
    (folder / "input_example.json").write_text(json.dumps(body))
    (folder / "requirements.txt").write_text(
        "mlflow==2.10.2\ncloudpickle==3.0.0\nnumpy==1.26.4\nscikit-learn==1.9.1\n# a comment\n"
    )
    (folder / "python_env.yaml").write_text("python: 3.11.7\nbuild_dependencies:\n- pip==24.0\n")
    return folder
