"""What ``pier predict`` sends: ``--data`` JSON or a ``--file`` (.json, .csv, .parquet, .npy) as a table.

A ``Table`` is rows with optional column names; ``data_for`` turns it into what ``modelpier.Client``
takes for the model at hand: one input per column when the model's inputs are the columns, else the
rows as the model's one input. JSON may be rows (``[[5.1, 3.5, 1.4, 0.2]]``), records
(``[{"a": 1, "b": 2}]``), inputs by name (``{"input-0": [[...]]}``) or a whole V2 request body
(``{"inputs": [...]}``). CSV is read with the standard library (a first row that is not all numbers
is the header); Parquet needs pyarrow (or pandas), said plainly when missing.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelpier.errors import InvalidInput
from modelpier.sdk.client import ModelInfo

SUFFIXES = (".json", ".csv", ".parquet", ".npy")


@dataclass(frozen=True, slots=True)
class Table:
    """Rows to predict; ``inputs`` instead when the caller named the inputs themselves."""

    rows: list[list[Any]] | None = None
    columns: list[str] | None = None
    inputs: dict[str, Any] | None = None

    @property
    def count(self) -> int:
        if self.rows is not None:
            return len(self.rows)
        first: Any = next(iter((self.inputs or {}).values()), [])
        return len(first) if isinstance(first, list | np.ndarray) else 1


def parse_json(text: str, where: str) -> Table:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{where} is not valid JSON: {exc}") from None
    return table_of(doc, where)


def table_of(doc: Any, where: str) -> Table:
    if isinstance(doc, dict) and isinstance(doc.get("inputs"), list):  # a V2 request body
        inputs = {}
        for entry in doc["inputs"]:
            if not isinstance(entry, dict) or "name" not in entry or "data" not in entry:
                raise InvalidInput(f"{where}: each of 'inputs' needs a 'name' and 'data'")
            data = np.asarray(entry["data"])
            inputs[str(entry["name"])] = data.reshape(entry["shape"]) if "shape" in entry else data
        return Table(inputs=inputs)
    if isinstance(doc, dict) and doc:
        return Table(inputs={str(k): v for k, v in doc.items()})
    if isinstance(doc, list) and doc and all(isinstance(r, dict) for r in doc):
        columns = list(doc[0])
        return Table(rows=[[r.get(c) for c in columns] for r in doc], columns=columns)
    if isinstance(doc, list) and doc:
        rows = doc if isinstance(doc[0], list) else [doc]  # one flat row is one row
        return Table(rows=rows)
    raise InvalidInput(f"{where}: expected rows ([[...], ...]), records ([{{...}}]), inputs by name "
                       "({\"input-0\": ...}) or a V2 request body ({\"inputs\": [...]})")


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def read_csv(text: str) -> Table:
    reader = list(csv.reader(io.StringIO(text)))
    lines = [r for r in reader if r]
    if not lines:
        raise InvalidInput("the CSV file has no rows")
    columns = None
    if not all(isinstance(_number(v), int | float) for v in lines[0]):
        columns, lines = [c.strip() for c in lines[0]], lines[1:]
    if not lines:
        raise InvalidInput("the CSV file has a header and no rows")
    width = len(lines[0])
    for i, row in enumerate(lines):
        if len(row) != width:
            raise InvalidInput(f"CSV row {i + 1 + (columns is not None)} has {len(row)} fields, not {width}")
    return Table(rows=[[_number(v.strip()) for v in row] for row in lines], columns=columns)


def read_parquet(path: Path) -> Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        pq = None
    if pq is not None:
        table = pq.read_table(path)
        columns = [str(c) for c in table.column_names]
        data = table.to_pydict()
        return Table(rows=[list(r) for r in zip(*(data[c] for c in columns), strict=True)], columns=columns)
    try:
        import pandas
    except ImportError:
        raise InvalidInput(f"reading {path.name} needs pyarrow (or pandas): pip install 'modelpier[dataframes]'") \
            from None
    frame = pandas.read_parquet(path)
    return Table(rows=frame.to_numpy().tolist(), columns=[str(c) for c in frame.columns])


def read_file(path: Path) -> Table:
    if not path.is_file():
        raise InvalidInput(f"--file {path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return parse_json(path.read_text(), str(path))
    if suffix == ".csv":
        return read_csv(path.read_text())
    if suffix == ".parquet":
        return read_parquet(path)
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise InvalidInput(f"{path} is not a numeric .npy array: {exc}") from None
        return Table(rows=(array if array.ndim > 1 else array.reshape(1, -1)).tolist())
    raise InvalidInput(f"--file {path}: unknown type {suffix or '(none)'}; use one of {', '.join(SUFFIXES)}")


def data_for(table: Table, model: ModelInfo) -> Any:
    """What to pass to ``Client.predict`` for ``model``."""
    if table.inputs is not None:
        return table.inputs
    names = [i.name for i in model.inputs]
    columns = table.columns or []
    if len(names) > 1 or (names and columns == names):
        missing = [n for n in names if n not in columns]
        if missing:
            raise InvalidInput(f"the model's inputs are {names}; the data has no column(s) {missing}"
                               + (f" (columns: {columns})" if columns else " (no header row)"))
        inputs = {}
        for spec in model.inputs:
            values = [row[columns.index(spec.name)] for row in table.rows or []]
            inputs[spec.name] = [[v] for v in values] if len(spec.shape) == 2 else values
        return inputs
    return table.rows
