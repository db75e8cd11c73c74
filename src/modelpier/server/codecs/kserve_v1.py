"""KServe V1 (TensorFlow-Serving style): ``{"instances": [...]}`` in, ``{"predictions": [...]}`` out.

Instances are rows. A model with one input takes the rows as its tensor; a model with several
inputs takes each row as an object keyed by input name. ``predictions`` is the model's first
output (for sklearn, ``predict``), as V1 clients expect one list; the full set is on V2.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelpier.errors import InvalidInput
from modelpier.server.codecs.limits import DEFAULT_MAX_ELEMENTS, ElementBudget, check_decoded
from modelpier.server.codecs.tensors import to_list_data
from modelpier.server.codecs.v2_json import dumps, loads
from modelpier.server.types import Array, InferenceRequest, InferenceResponse


def _array(rows: Any, name: str, budget: ElementBudget) -> Array:
    # No declared shape here: the array is as large as the instances sent (the body limit bounds them).
    try:
        array = np.array(rows)
    except (ValueError, TypeError, OverflowError):
        raise InvalidInput(f"input {name!r}: instances are ragged or of mixed types; every row needs the same "
                           "shape", details={"input": name}) from None
    check_decoded(name, array.shape, budget)
    if array.dtype.kind == "U":
        array = array.astype(object)
    return array


def decode_request(body: bytes, input_names: list[str], max_elements: int = DEFAULT_MAX_ELEMENTS
                   ) -> InferenceRequest:
    """The instances as one tensor per input; together at most ``max_elements`` elements."""
    doc = loads(body)
    budget = ElementBudget(max_elements)
    rows = doc.get("instances", doc.get("inputs")) if type(doc) is dict else None
    if type(rows) is not list or not rows:
        raise InvalidInput('the request body must be {"instances": [row, ...]} with at least one row')
    if len(input_names) > 1:
        if not all(type(r) is dict for r in rows):
            raise InvalidInput(f"this model takes inputs {input_names}: each instance must be an object "
                               "with one value per input")
        inputs = {n: _array([r.get(n) for r in rows], n, budget) for n in input_names if n in rows[0]}
        return InferenceRequest(inputs=inputs)
    name = input_names[0] if input_names else "input-0"
    return InferenceRequest(inputs={name: _array(rows, name, budget)})


def encode_response(response: InferenceResponse) -> bytes:
    if not response.outputs:
        return dumps({"predictions": []})
    data = response.outputs[0].data
    predictions = to_list_data(data).reshape(data.shape) if data.dtype.kind in "biuf" else data.tolist()
    return dumps({"predictions": predictions})


def encode_error(message: str) -> bytes:
    return dumps({"error": message})


def encode_model_status(name: str, ready: bool) -> bytes:
    return dumps({"name": name, "ready": ready})
