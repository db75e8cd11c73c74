"""MLflow's scoring protocol (``mlflow models serve``): ``POST /invocations`` bodies and answers.

A JSON body holds one of ``dataframe_split`` (``{"columns": [...], "data": [[...], ...]}``),
``dataframe_records`` (``[{"col": value, ...}, ...]``), ``instances`` (rows, or objects keyed by
input) or ``inputs`` (a tensor, or an object of named tensors), plus optional ``params`` (kept as
request parameters); ``text/csv`` is a frame with a header row. Frames become one tensor per column
when the model's inputs are its columns, else one ``[rows, columns]`` tensor for a one-input model.
The answer is ``{"predictions": ...}``: the only output as a list, or an object of outputs by name.
Errors are MLflow's ``{"error_code": "BAD_REQUEST", "message": ...}``.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np

from modelpier.errors import InvalidInput
from modelpier.server.codecs.limits import DEFAULT_MAX_ELEMENTS, ElementBudget, check_decoded
from modelpier.server.codecs.tensors import to_list_data
from modelpier.server.codecs.v2_json import dumps, loads
from modelpier.server.types import Array, InferenceRequest, InferenceResponse

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def _array(values: Any, name: str, budget: ElementBudget) -> Array:
    # No declared shape: the array is as large as the values sent (the body limit bounds them).
    try:
        array = np.array(values)
    except (ValueError, TypeError, OverflowError):
        raise InvalidInput(f"input {name!r}: rows are ragged or of mixed types; every row needs the same shape",
                           details={"input": name}) from None
    check_decoded(name, array.shape, budget)
    if array.dtype.kind in "UO":
        array = array.astype(object)
    return array


def _frame(columns: list[str], rows: list[list[Any]], input_names: list[str],
           budget: ElementBudget) -> dict[str, Array]:
    """A frame as tensors: per column when the model's inputs are columns, else one matrix."""
    if any(len(r) != len(columns) for r in rows):
        raise InvalidInput(f"every row needs {len(columns)} values, one per column {columns}")
    if len(input_names) == 1 and not (len(columns) == 1 and columns[0] == input_names[0]):
        return {input_names[0]: _array(rows, input_names[0], budget)}
    return {c: _array([r[i] for r in rows], c, budget) for i, c in enumerate(columns)}


def _split(frame: Any, input_names: list[str], budget: ElementBudget) -> dict[str, Array]:
    if type(frame) is not dict or type(frame.get("data")) is not list:
        raise InvalidInput('dataframe_split must be {"columns": [...], "data": [[...], ...]}')
    rows = frame["data"]
    if not rows:
        raise InvalidInput("dataframe_split has no rows")
    rows = [r if type(r) is list else [r] for r in rows]
    columns = frame.get("columns")
    if columns is None:
        if len(input_names) > 1 and len(rows[0]) == len(input_names):
            columns = input_names  # unnamed columns: the signature's, in order
        else:
            name = input_names[0] if input_names else "input-0"
            return {name: _array(rows, name, budget)}
    if type(columns) is not list:
        raise InvalidInput("dataframe_split.columns must be a list of column names")
    return _frame([str(c) for c in columns], rows, input_names, budget)


def _records(records: Any, input_names: list[str], budget: ElementBudget) -> dict[str, Array]:
    if type(records) is not list or not records or not all(type(r) is dict for r in records):
        raise InvalidInput("dataframe_records must be a non-empty list of objects, one per row")
    columns = list(records[0])
    missing = [(i, c) for i, r in enumerate(records) for c in columns if c not in r]
    if missing:
        raise InvalidInput(f"dataframe_records row {missing[0][0]} lacks column {missing[0][1]!r}")
    return _frame(columns, [[r[c] for c in columns] for r in records], input_names, budget)


def _instances(rows: Any, input_names: list[str], budget: ElementBudget) -> dict[str, Array]:
    if type(rows) is not list or not rows:
        raise InvalidInput("instances must be a non-empty list of rows")
    if all(type(r) is dict for r in rows):
        names = list(rows[0])
        return {n: _array([r.get(n) for r in rows], n, budget) for n in names}
    name = input_names[0] if len(input_names) == 1 else "input-0"
    return {name: _array(rows, name, budget)}


def _inputs(value: Any, input_names: list[str], budget: ElementBudget) -> dict[str, Array]:
    if type(value) is dict:
        if not value:
            raise InvalidInput("inputs is an empty object")
        return {str(k): _array(v, str(k), budget) for k, v in value.items()}
    if type(value) is not list or not value:
        raise InvalidInput("inputs must be a non-empty list (a tensor) or an object of named tensors")
    name = input_names[0] if len(input_names) == 1 else "input-0"
    return {name: _array(value, name, budget)}


def _csv(body: bytes, input_names: list[str], budget: ElementBudget) -> dict[str, Array]:
    try:
        reader = csv.reader(io.StringIO(body.decode("utf-8")))
        header, *lines = [row for row in reader if row]
    except (UnicodeDecodeError, ValueError, csv.Error) as exc:
        raise InvalidInput(f"the CSV body cannot be read: {exc}") from None
    if not lines:
        raise InvalidInput("the CSV body needs a header row and at least one data row")
    return _frame(header, [[_number(v) for v in line] for line in lines], input_names, budget)


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def decode_request(body: bytes, content_type: str, input_names: list[str],
                   max_elements: int = DEFAULT_MAX_ELEMENTS) -> InferenceRequest:
    """An ``/invocations`` body as an inference request for a model taking ``input_names``; its
    tensors together hold at most ``max_elements`` elements."""
    budget = ElementBudget(max_elements)
    if content_type.split(";", maxsplit=1)[0].strip().lower() == "text/csv":
        return InferenceRequest(inputs=_csv(body, input_names, budget))
    doc = loads(body)
    given = [k for k in FORMATS if type(doc) is dict and k in doc]
    if len(given) != 1:
        raise InvalidInput(
            "the body must be a JSON object with exactly one of "
            f"{', '.join(FORMATS)}" + (f"; got {', '.join(given)}" if given else ""))
    kind = given[0]
    decoders = {"dataframe_split": _split, "dataframe_records": _records, "instances": _instances,
                "inputs": _inputs}
    params = doc.get("params")
    if params is not None and type(params) is not dict:
        raise InvalidInput("params must be an object")
    return InferenceRequest(inputs=decoders[kind](doc[kind], input_names, budget), parameters=params)


def _jsonable(data: Array) -> Any:
    return to_list_data(data).reshape(data.shape).tolist() if data.dtype.kind in "biuf" else data.tolist()


def encode_response(response: InferenceResponse) -> bytes:
    if len(response.outputs) == 1:
        return dumps({"predictions": _jsonable(response.outputs[0].data)})
    return dumps({"predictions": {o.name: _jsonable(o.data) for o in response.outputs}})


def encode_error(status: int, message: str) -> bytes:
    code = "BAD_REQUEST" if status < 500 else "SERVICE_UNAVAILABLE" if status == 503 else "INTERNAL_ERROR"
    if status == 404:
        code = "RESOURCE_DOES_NOT_EXIST"
    return dumps({"error_code": code, "message": message})
