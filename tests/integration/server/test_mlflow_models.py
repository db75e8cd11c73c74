"""MLflow models as MLflow 3 writes them, imported and served: V2 per column, MLflow's scoring protocol.

The models are written by the real ``mlflow`` package (``tests/support/mlflow_models.py``), once per
session; each is imported with ``pier models import-mlflow`` and served by ``pier serve``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.mlflow_models import KINDS, write_mlflow_models
from tests.support.procs import run_pier

from .conftest import Served, start_server

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
# What each model answers for ROWS (the classifiers: setosa, virginica).
EXPECTED = {"skops": [0, 2], "pickle": [0, 2], "cloudpickle": [0, 2], "xgboost": [0, 2], "lightgbm": [0, 2],
            "loader": [102.0, 172.0], "pythonmodel": [101.4, 105.2]}


@pytest.fixture(scope="session")
def mlflow_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_mlflow_models(tmp_path_factory.mktemp("mlflow-models"))


@pytest.fixture(scope="module")
def served(mlflow_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("mlflow-home")
    for kind in KINDS:
        run_pier(["models", "import-mlflow", str(mlflow_models[kind]), "--name", kind], home, check=True)
    # Seven models, two through mlflow.pyfunc (importing MLflow takes seconds, more on a loaded machine).
    with start_server(list(KINDS), home, "--no-grpc", ready_timeout=240) as server:
        yield server


def per_column(rows: list[list[float]]) -> list[dict[str, object]]:
    return [{"name": c, "datatype": "FP64", "shape": [len(rows)], "data": [r[i] for r in rows]}
            for i, c in enumerate(COLUMNS)]


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_serves_over_v2_per_column_and_as_one_tensor(served: Served, kind: str) -> None:
    meta = httpx.get(f"{served.url}/v2/models/{kind}").json()
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [(c, "FP64", [-1]) for c in COLUMNS]
    r = httpx.post(f"{served.url}/v2/models/{kind}/infer", json={"inputs": per_column(ROWS)}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == pytest.approx(EXPECTED[kind])
    flat = [v for r in ROWS for v in r]
    matrix = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [2, 4], "data": flat}]}
    assert httpx.post(f"{served.url}/v2/models/{kind}/infer", json=matrix).json()["outputs"][0]["data"] == \
        pytest.approx(EXPECTED[kind])


@pytest.mark.parametrize("body", [
    {"dataframe_split": {"columns": COLUMNS, "data": ROWS}},
    {"dataframe_records": [dict(zip(COLUMNS, r, strict=True)) for r in ROWS]},
    {"instances": [dict(zip(COLUMNS, r, strict=True)) for r in ROWS]},
    {"inputs": {c: [r[i] for r in ROWS] for i, c in enumerate(COLUMNS)}},
])
def test_mlflow_scoring_protocol_per_model(served: Served, body: dict[str, object]) -> None:
    for kind in ("skops", "pythonmodel"):
        r = httpx.post(f"{served.url}/models/{kind}/invocations", json=body, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == pytest.approx(EXPECTED[kind])


def test_invocations_needs_a_model_name_when_several_are_served(served: Served) -> None:
    assert httpx.get(f"{served.url}/ping").status_code == 200
    r = httpx.post(f"{served.url}/invocations", json={"dataframe_split": {"columns": COLUMNS, "data": ROWS}})
    assert r.status_code == 400
    assert "/models/NAME/invocations" in r.json()["message"]
    bad = httpx.post(f"{served.url}/models/skops/invocations", json={"dataframe_split": {"columns": COLUMNS[:2],
                                                                                          "data": [[1.0, 2.0]]}})
    assert bad.status_code == 400
    assert bad.json()["error_code"] == "BAD_REQUEST"
    assert "petal_length" in bad.json()["message"]


def test_one_model_answers_mlflow_clients_at_invocations(mlflow_models: dict[str, Path], tmp_path: Path) -> None:
    with start_server([f"iris={mlflow_models['skops']}"], tmp_path / "home", "--no-grpc") as server:
        assert httpx.get(f"{server.url}/ping").status_code == 200
        csv = "\n".join([",".join(COLUMNS), *(",".join(map(str, r)) for r in ROWS)])
        r = httpx.post(f"{server.url}/invocations", content=csv, headers={"Content-Type": "text/csv"})
        assert r.json() == {"predictions": [0, 2]}
        split = httpx.post(f"{server.url}/invocations", json={"dataframe_split": {"columns": COLUMNS, "data": ROWS}})
        assert split.json() == {"predictions": [0, 2]}
