"""What a caller passes to ``predict`` turned into named tensors, and the answer's tensors turned back.

Pure functions, no I/O. In: a numpy array or nested list (the model's one input), a dict of
array-likes (one input per key), or a pandas DataFrame (one V2 input per column when the model's
signature names its columns as inputs; otherwise the whole frame as the one input). Each tensor is
cast to the datatype the model declares, so float64 data from pandas reaches an FP32 input as FP32.
Out: the outputs by name, as numpy arrays; a DataFrame (one column per output, 2-D outputs spread
over ``name[0]``, ``name[1]``...) when the input was one. pandas is imported only when the caller
already uses it: it is not a dependency of modelpier.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelpier.errors import InvalidInput, RemoteError
from modelpier.spec.signature import numpy_dtype, v2_datatype

Array = np.ndarray[Any, Any]
# V2 datatype -> numpy dtype, made once: this runs on every call.
NUMPY: dict[str, np.dtype[Any]] = {
    name: numpy_dtype(name) for name in ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
                                         "INT64", "FP16", "FP32", "FP64", "BYTES")}


@dataclass(frozen=True, slots=True)
class TensorInfo:
    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A model's V2 metadata (``GET /v2/models/{name}``)."""

    name: str
    versions: tuple[str, ...] = ()
    platform: str = ""
    inputs: tuple[TensorInfo, ...] = ()
    outputs: tuple[TensorInfo, ...] = ()

    @classmethod
    def from_wire(cls, doc: Any) -> ModelInfo:
        if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
            raise InvalidInput(f"model metadata is not a V2 metadata object: {str(doc)[:200]}")

        def tensors(items: Any) -> tuple[TensorInfo, ...]:
            return tuple(TensorInfo(str(t["name"]), str(t.get("datatype", "")), tuple(t.get("shape") or ()))
                         for t in items or () if isinstance(t, dict) and "name" in t)

        return cls(doc["name"], tuple(str(v) for v in doc.get("versions") or ()), str(doc.get("platform", "")),
                   tensors(doc.get("inputs")), tensors(doc.get("outputs")))


@dataclass(slots=True)
class Tensor:
    name: str
    datatype: str
    array: Array


class Prediction(dict[str, Array]):
    """The outputs of one call by name, plus what the server said about it."""

    model_name: str
    model_version: str | None
    request_id: str | None
    headers: dict[str, str]

    def __init__(self, outputs: Mapping[str, Array], *, model_name: str = "", model_version: str | None = None,
                 request_id: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(outputs)
        self.model_name = model_name
        self.model_version = model_version
        self.request_id = request_id
        self.headers = headers or {}

    @property
    def output(self) -> Array:
        """The only output (``KeyError`` naming them when there are several)."""
        if len(self) != 1:
            raise KeyError(f"the model has {len(self)} outputs {list(self)}; pick one by name")
        return next(iter(self.values()))


@dataclass(slots=True)
class Encoded:
    tensors: list[Tensor]
    frame_index: Any = None  # the DataFrame's index when the input was one
    is_frame: bool = False
    rows: int = 0
    columns: list[str] = field(default_factory=list)


def _is_frame(data: Any) -> bool:
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(data, pandas.DataFrame)


def _cast(name: str, values: Any, datatype: str | None) -> Tensor:
    if datatype == "BYTES" or (datatype is None and _textual(values)):
        array = np.asarray(values, dtype=object)
        flat = array.reshape(-1)
        for i, v in enumerate(flat):
            if not isinstance(v, bytes | str):
                flat[i] = str(v)
        return Tensor(name, "BYTES", array)
    try:
        array = np.asarray(values, dtype=(NUMPY.get(datatype) or numpy_dtype(datatype)) if datatype else None)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"input {name!r}: cannot make {datatype or 'a numeric'} tensor of it: {exc}",
                           details={"input": name}) from None
    if array.dtype == object:
        raise InvalidInput(f"input {name!r}: ragged or mixed data; give equal-length rows of numbers or strings",
                           details={"input": name})
    try:
        return Tensor(name, datatype or v2_datatype(array.dtype), array)
    except ValueError as exc:
        raise InvalidInput(f"input {name!r}: {exc}", details={"input": name}) from None


def _textual(values: Any) -> bool:
    kind = getattr(getattr(values, "dtype", None), "kind", None)
    if kind is not None:
        return bool(kind in "OSU")
    probe = values
    while isinstance(probe, list | tuple) and probe:
        probe = probe[0]
    return isinstance(probe, str | bytes)


def _declared(model: ModelInfo | None, name: str) -> str | None:
    if model is None:
        return None
    for spec in model.inputs:
        if spec.name == name:
            return spec.datatype or None
    return None


def encode_inputs(data: Any, model: ModelInfo | None) -> Encoded:
    """Named tensors for ``data`` (see the module docstring); ``InvalidInput`` naming what is wrong."""
    if type(data) is np.ndarray and data.ndim and model is not None and len(model.inputs) == 1:
        # The common case, kept short: one array for a one-input model of a numeric datatype.
        spec = model.inputs[0]
        dtype = NUMPY.get(spec.datatype)
        if dtype is not None and dtype.kind in "biuf" and data.dtype.kind in "biuf":
            return Encoded([Tensor(spec.name, spec.datatype, data.astype(dtype, copy=False))],
                           rows=int(data.shape[0]))
    if _is_frame(data):
        return _encode_frame(data, model)
    if isinstance(data, Mapping):
        if not data:
            raise InvalidInput("no inputs: the dict is empty")
        known = {s.name for s in model.inputs} if model and model.inputs else None
        tensors = []
        for key, values in data.items():
            name = str(key)
            if known is not None and name not in known:
                raise InvalidInput(f"unknown input {name!r}; the model's inputs are {sorted(known)}",
                                   details={"input": name})
            tensors.append(_cast(name, values, _declared(model, name)))
        return Encoded(tensors, rows=_rows(tensors))
    if model is not None and len(model.inputs) > 1:
        names = [s.name for s in model.inputs]
        raise InvalidInput(f"the model has {len(names)} inputs {names}: pass a dict of them (or a DataFrame "
                           "with those columns)", details={"inputs": names})
    name = model.inputs[0].name if model and model.inputs else "input-0"
    tensor = _cast(name, data, _declared(model, name))
    if tensor.array.ndim == 0:
        raise InvalidInput(f"input {name!r}: a scalar is not a batch; pass a list of rows")
    return Encoded([tensor], rows=_rows([tensor]))


def _rows(tensors: list[Tensor]) -> int:
    return int(tensors[0].array.shape[0]) if tensors and tensors[0].array.ndim else 0


def _encode_frame(frame: Any, model: ModelInfo | None) -> Encoded:
    columns = [str(c) for c in frame.columns]
    inputs = model.inputs if model else ()
    by_column = len(inputs) > 1 or (len(inputs) == 1 and columns == [inputs[0].name])
    if by_column:
        missing = [s.name for s in inputs if s.name not in columns]
        if missing:
            raise InvalidInput(f"the DataFrame lacks the model's inputs {missing}; its columns are {columns}",
                               details={"missing": missing})
        tensors = []
        for spec in inputs:
            values = frame[spec.name].to_numpy()
            if len(spec.shape) == 2:
                values = values.reshape(-1, 1)  # a column input declared [-1, 1]
            tensors.append(_cast(spec.name, values, spec.datatype or None))
    else:
        name = inputs[0].name if inputs else "input-0"
        tensors = [_cast(name, frame.to_numpy(), _declared(model, name))]
    return Encoded(tensors, frame_index=frame.index, is_frame=True, rows=len(frame), columns=columns)


def frame_of(prediction: Prediction, encoded: Encoded) -> Any:
    """The prediction as a DataFrame on the input's index (only called when pandas is in use)."""
    import pandas

    columns: dict[str, Any] = {}
    for name, array in prediction.items():
        if array.ndim <= 1:
            columns[name] = array.reshape(-1)
        elif array.ndim == 2 and array.shape[1] == 1:
            columns[name] = array[:, 0]
        else:
            flat = array.reshape(array.shape[0], -1)
            for j in range(flat.shape[1]):
                columns[f"{name}[{j}]"] = flat[:, j]
    index = encoded.frame_index if encoded.frame_index is not None and all(
        len(v) == len(encoded.frame_index) for v in columns.values()) else None
    frame = pandas.DataFrame(columns, index=index)
    frame.attrs.update(model_name=prediction.model_name, model_version=prediction.model_version,
                       request_id=prediction.request_id)
    return frame


def decode_array(data: Any, datatype: str, shape: list[int], name: str) -> Array:
    """An output's JSON ``data`` as an array of its declared shape."""
    try:
        array = np.asarray(data, dtype=NUMPY.get(datatype) or numpy_dtype(datatype))
        return array.reshape(shape)
    except (ValueError, TypeError) as exc:
        raise RemoteError(f"output {name!r}: the server sent data that is not {datatype} of shape {shape}: {exc}",
                          details={"output": name}) from None
