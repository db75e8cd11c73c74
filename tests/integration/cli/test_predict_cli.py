"""`pier predict` against a real `pier serve`: data from the command line and from files, predictions
beside their rows, and one-line errors with the usual exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.integration.server.conftest import Served, start_server
from tests.support.procs import free_port, run_pier

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    home = tmp_path_factory.mktemp("predict-cli")
    x, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), home / "iris.joblib")
    with start_server([f"iris={home / 'iris.joblib'}"], home) as served:
        yield served


def _predict(server: Served, home: Path, *args: str) -> tuple[int, str, str]:
    result = run_pier(["predict", "iris", "--url", server.url, "--grpc-url", server.grpc, *args], home, timeout=60,
                      COLUMNS="200")  # a table as wide as a terminal's, each row on one line
    return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize("transport", [[], ["--binary"], ["--grpc"], ["--protocol", "kserve-v1"],
                                       ["--protocol", "seldon"]])
def test_data_as_json_out(server: Served, tmp_path: Path, transport: list[str]) -> None:
    code, out, err = _predict(server, tmp_path, "--data", json.dumps(ROWS), "-o", "json", *transport)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["model_name"] == "iris"
    assert doc["outputs"]["predict"] == [0, 2]


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".npy", ".json"])
def test_files_print_predictions_beside_their_rows(server: Served, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"rows{suffix}"
    frame = pd.DataFrame(ROWS, columns=["sepal_length", "sepal_width", "petal_length", "petal_width"])
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    elif suffix == ".npy":
        np.save(path, np.array(ROWS))
    else:
        path.write_text(json.dumps(frame.to_dict(orient="records")))
    code, out, err = _predict(server, tmp_path, "--file", str(path))
    assert code == 0, err
    (header,) = [line for line in out.splitlines() if "┃" in line and "predict" in line]
    rows = [line for line in out.splitlines() if "│" in line]
    assert len(rows) == 2  # one line per row
    assert "6.7" in rows[1]
    assert rows[0].split("│")[-3].strip() == "0"  # the prediction beside its row
    assert rows[1].split("│")[-3].strip() == "2"
    if suffix in (".csv", ".parquet", ".json"):
        assert "sepal_length" in header


@pytest.mark.parametrize(("args", "code", "words"), [
    (["--data", "[[1, 2]]"], 3, "expected shape"),  # the server's message
    (["--data", "nope"], 3, "--data is not valid JSON"),
    ([], 3, "exactly one of --data"),
    (["--file", "missing.csv"], 3, "no such file"),
    (["--data", "[[1, 2, 3, 4]]", "--model", "nope"], 4, "not served here"),
])
def test_errors_are_one_line_with_an_exit_code(server: Served, tmp_path: Path, args: list[str], code: int,
                                               words: str) -> None:
    got, out, err = _predict(server, tmp_path, *args)
    assert got == code, (out, err)
    assert words in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_an_unreachable_server_exits_9(tmp_path: Path) -> None:
    result = run_pier(["predict", "iris", "--url", f"http://127.0.0.1:{free_port()}", "--data", "[[1, 2, 3, 4]]",
                       "--timeout", "3"], tmp_path, timeout=60)
    assert result.returncode == 9
    assert "cannot connect" in result.stderr
