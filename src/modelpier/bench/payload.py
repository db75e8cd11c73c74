"""Request bodies for ``pier bench``: a JSON file, or a V2 request built from a model's input example."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelpier.errors import InvalidInput

DEFAULT_INPUT = "input-0"  # the name the registry gives a lone, unnamed example (runtimes.tensors)
_KIND_TO_V2 = {"b": "BOOL", "i": "INT64", "u": "UINT64", "f": "FP64", "U": "BYTES", "S": "BYTES", "O": "BYTES"}


def read_body(path: Path) -> bytes:
    """The file's bytes, checked to be one JSON document (``InvalidInput`` naming the file otherwise)."""
    if not path.is_file():
        raise InvalidInput(f"--data {path}: no such file")
    raw = path.read_bytes()
    try:
        json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"--data {path} is not JSON: {exc}") from None
    return raw


def v2_request(example: Any, inputs: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """An Open Inference Protocol V2 request for a stored input example.

    ``example`` is what the registry stores: rows for one unnamed input, or ``{name: rows}``.
    ``inputs`` are the signature's ``(name, datatype)`` pairs: they name a lone input and give each its
    datatype (FP32 rather than the FP64 JSON numbers would suggest); without them both are inferred.
    """
    if example is None:
        raise InvalidInput("there is no input example")
    datatypes = dict(inputs)
    # A lone example is the signature's only input (its runtime name, e.g. an ONNX graph's), else input-0.
    lone = inputs[0][0] if len(inputs) == 1 else DEFAULT_INPUT
    named: Mapping[str, Any] = example if isinstance(example, Mapping) else {lone: example}
    tensors = []
    for name, value in named.items():
        array = np.asarray(value)
        if array.ndim == 0:
            array = array.reshape(1)
        datatype = datatypes.get(str(name)) or _KIND_TO_V2.get(array.dtype.kind)
        if datatype is None:
            raise InvalidInput(f"input example {name!r} holds {array.dtype} values, which V2 cannot carry")
        tensors.append({"name": str(name), "shape": list(array.shape), "datatype": datatype,
                        "data": array.reshape(-1).tolist()})
    return {"inputs": tensors}
