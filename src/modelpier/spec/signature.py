"""Tensor signatures in the Open Inference Protocol (V2) vocabulary.

A signature lists a model's named inputs and outputs with a V2 datatype (``FP32``, ``INT64``,
``BYTES``...) and a shape where ``-1`` marks a variable dimension (usually the batch). The registry
stores it, runtimes describe themselves with it, the model server validates requests against it.
"""

from __future__ import annotations

import struct
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

V2Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]

_NUMPY_TO_V2: dict[str, V2Datatype] = {
    "bool": "BOOL", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
    "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
    "float16": "FP16", "float32": "FP32", "float64": "FP64",
}
_V2_TO_NUMPY: dict[str, str] = {v: k for k, v in _NUMPY_TO_V2.items()}


def v2_datatype(dtype: Any) -> V2Datatype:
    """The V2 datatype name for a numpy dtype; strings and objects are ``BYTES``."""
    dt = np.dtype(dtype)
    if dt.kind in ("U", "S", "O"):
        return "BYTES"
    try:
        return _NUMPY_TO_V2[dt.name]
    except KeyError:
        raise ValueError(f"numpy dtype {dt} has no Open Inference Protocol datatype") from None


BYTES_LENGTH = struct.Struct("<I")  # the binary tensor extension's length prefix of one BYTES element


def pack_bytes_elements(array: np.ndarray[Any, Any]) -> bytes:
    """A BYTES tensor in the V2 binary tensor extension's layout: each element as its 4-byte
    little-endian length, then its bytes (``str`` elements as UTF-8). Clients and servers write it."""
    parts = []
    for value in array.reshape(-1):
        data = value if isinstance(value, bytes) else str(value).encode("utf-8")
        parts.append(BYTES_LENGTH.pack(len(data)))
        parts.append(data)
    return b"".join(parts)


def numpy_dtype(datatype: str) -> np.dtype[Any]:
    """The numpy dtype for a V2 datatype name; ``BYTES`` maps to ``object``."""
    if datatype == "BYTES":
        return np.dtype(object)
    try:
        return np.dtype(_V2_TO_NUMPY[datatype])
    except KeyError:
        raise ValueError(f"unknown datatype {datatype!r}; expected one of {sorted(_V2_TO_NUMPY)} or BYTES") \
            from None


class TensorSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=256)
    datatype: V2Datatype
    shape: tuple[int, ...] = Field(description="Dimensions; -1 marks a variable one (usually the batch).")

    @field_validator("shape")
    @classmethod
    def _dims(cls, shape: tuple[int, ...]) -> tuple[int, ...]:
        for dim in shape:
            if dim < -1 or dim == 0:
                raise ValueError(f"shape {list(shape)}: each dimension is a positive size or -1 (variable)")
        return shape

    def accepts_shape(self, shape: tuple[int, ...]) -> bool:
        if len(shape) != len(self.shape):
            return False
        return all(want in (-1, got) for want, got in zip(self.shape, shape, strict=True))


class Signature(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()

    @field_validator("inputs", "outputs")
    @classmethod
    def _unique(cls, tensors: tuple[TensorSpec, ...]) -> tuple[TensorSpec, ...]:
        names = [t.name for t in tensors]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"tensor names must be unique, repeated: {dupes}")
        return tensors

    def input(self, name: str) -> TensorSpec | None:
        return next((t for t in self.inputs if t.name == name), None)
