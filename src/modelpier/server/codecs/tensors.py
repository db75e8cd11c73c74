"""Shared tensor decoding: V2 datatype names to numpy dtypes and list data to arrays, with errors
that name the input and say what was expected."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelpier.errors import InvalidInput
from modelpier.server.codecs.limits import check_value_count
from modelpier.server.types import Array

DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64), "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16), "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
DATATYPES = ", ".join(DTYPES)


def dtype_of(datatype: Any, name: str) -> np.dtype[Any]:
    dtype = DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise InvalidInput(f"input {name!r}: unknown datatype {datatype!r}; expected one of {DATATYPES}",
                           details={"input": name, "datatype": str(datatype)})
    return dtype


def from_list(data: Any, datatype: str, dtype: np.dtype[Any], shape: tuple[int, ...], *, count: int,
              name: str) -> Array:
    """An array of ``shape`` (``count`` elements, already checked against the request's budget) from
    (possibly nested) list data, or ``InvalidInput``."""
    if type(data) is not list:
        raise InvalidInput(f"input {name!r}: 'data' must be a list of {datatype} values, got "
                           f"{type(data).__name__}", details={"input": name})
    if data and type(data[0]) is not list:  # flat, the usual form: refuse a wrong length before converting
        check_value_count(name, shape, count, len(data))
    try:
        if dtype.kind == "f" and dtype.itemsize < 8:  # a value beyond FP16/FP32 is refused, not made inf
            with np.errstate(over="raise"):
                array = np.array(data, dtype=dtype)
        else:
            array = np.array(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError, FloatingPointError):
        raise InvalidInput(f"input {name!r}: 'data' is not a list of {datatype} values",
                           details={"input": name, "datatype": datatype}) from None
    check_value_count(name, shape, count, int(array.size))
    return array.reshape(shape)


def to_list_data(array: Array) -> Any:
    """Flat data for JSON: the array itself when orjson can write it natively, else a list."""
    if array.dtype.kind in "biuf":
        return np.ascontiguousarray(array).reshape(-1)
    flat = array.reshape(-1).tolist()
    if array.dtype.kind in "OS":
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in flat]
    return flat
