"""What `pier predict` reads: --data JSON shapes, CSV, .npy, Parquet, and the mapping to model inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelpier.cli.predict_input import Table, data_for, parse_json, read_csv, read_file
from modelpier.errors import InvalidInput
from modelpier.sdk.client import ModelInfo, TensorInfo

IRIS = ModelInfo("iris", inputs=(TensorInfo("input-0", "FP64", (-1, 4)),))
COLUMNS = ModelInfo("m", inputs=(TensorInfo("age", "INT64", (-1,)), TensorInfo("city", "BYTES", (-1, 1))))


@pytest.mark.parametrize(("text", "rows", "inputs"), [
    ("[[1, 2, 3, 4]]", [[1, 2, 3, 4]], None),
    ("[1, 2, 3, 4]", [[1, 2, 3, 4]], None),  # one flat row is one row
    ('{"input-0": [[1, 2, 3, 4]]}', None, {"input-0": [[1, 2, 3, 4]]}),
])
def test_json_shapes(text: str, rows: list[list[int]] | None, inputs: dict[str, object] | None) -> None:
    table = parse_json(text, "--data")
    assert table.rows == rows
    assert table.inputs == inputs


def test_a_v2_request_body_is_accepted_as_inputs() -> None:
    table = parse_json('{"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", '
                       '"data": [1, 2, 3, 4]}]}', "--data")
    assert table.inputs is not None
    assert table.inputs["input-0"].shape == (1, 4)


def test_records_become_columns() -> None:
    table = parse_json('[{"age": 3, "city": "Oslo"}, {"age": 4, "city": "Lima"}]', "--data")
    assert table.columns == ["age", "city"]
    assert data_for(table, COLUMNS) == {"age": [3, 4], "city": [["Oslo"], ["Lima"]]}


@pytest.mark.parametrize("text", ["not json", "[]", "3", '"x"'])
def test_bad_json_names_the_problem(text: str) -> None:
    with pytest.raises(InvalidInput, match="--data"):
        parse_json(text, "--data")


def test_csv_with_and_without_header() -> None:
    assert read_csv("a,b\n1,2.5\n3,4\n") == Table(rows=[[1, 2.5], [3, 4]], columns=["a", "b"])
    assert read_csv("1,2\n3,4\n").columns is None
    with pytest.raises(InvalidInput, match="3 fields, not 2"):
        read_csv("1,2\n3,4,5\n")
    with pytest.raises(InvalidInput, match="no rows"):
        read_csv("a,b\n")


def test_a_model_input_missing_from_the_columns_is_named() -> None:
    with pytest.raises(InvalidInput, match=r"no column\(s\) \['city'\]"):
        data_for(Table(rows=[[1]], columns=["age"]), COLUMNS)


def test_rows_are_the_one_input_of_a_one_input_model() -> None:
    assert data_for(Table(rows=[[1, 2, 3, 4]], columns=list("abcd")), IRIS) == [[1, 2, 3, 4]]


def test_files(tmp_path: Path) -> None:
    npy = tmp_path / "x.npy"
    np.save(npy, np.ones((2, 4)))
    assert read_file(npy).rows == [[1.0] * 4] * 2
    import pandas as pd

    parquet = tmp_path / "x.parquet"
    pd.DataFrame({"age": [1, 2], "city": ["a", "b"]}).to_parquet(parquet)
    assert read_file(parquet) == Table(rows=[[1, "a"], [2, "b"]], columns=["age", "city"])
    (tmp_path / "x.txt").write_text("1")
    with pytest.raises(InvalidInput, match=r"unknown type \.txt"):
        read_file(tmp_path / "x.txt")
    with pytest.raises(InvalidInput, match="no such file"):
        read_file(tmp_path / "missing.csv")
