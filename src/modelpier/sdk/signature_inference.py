"""Signatures from input examples, user-supplied signature validation, and example storage.

An input example (numpy array, list of rows, pandas DataFrame, tensor, or a dict of those) becomes
named input arrays: ``input-0`` for a lone tensor, the dict's keys otherwise. Inputs are described
from them with a variable batch dimension; outputs by running the packaged runtime on them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import ValidationError

from modelpier.errors import InvalidInput, InvalidSpec
from modelpier.runtimes.base import ModelRuntime
from modelpier.runtimes.tensors import DEFAULT_INPUT, Array, describe, describe_all
from modelpier.spec.signature import Signature

MAX_EXAMPLE_ROWS = 5


def parse_signature(signature: Signature | Mapping[str, Any] | None) -> Signature | None:
    """A user's signature, validated; errors name the offending field."""
    if signature is None or isinstance(signature, Signature):
        return signature
    if not isinstance(signature, Mapping):
        raise InvalidSpec(f"signature must be a Signature or a dict, not {type(signature).__name__}")
    try:
        return Signature.model_validate(dict(signature))
    except ValidationError as exc:
        problems = [
            f"signature.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        ]
        raise InvalidSpec("; ".join(problems), details={"errors": problems}) from None


def _as_array(value: Any, where: str) -> Array:
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        value = value.detach().cpu().numpy()
    elif hasattr(value, "to_numpy"):  # a pandas DataFrame or Series
        value = value.to_numpy()
    try:
        array = np.asarray(value)
    except ValueError as exc:  # ragged lists
        raise InvalidInput(f"input example{where} is not a rectangular array: {exc}") from None
    return array


def example_inputs(example: Any, *, tabular: bool = False) -> dict[str, Array] | None:
    """The example as named input arrays; ``tabular`` makes a lone 1-D example one row."""
    if example is None:
        return None
    if isinstance(example, Mapping):
        if not example:
            raise InvalidInput("input example is an empty dict")
        return {str(k): _as_array(v, f" {str(k)!r}") for k, v in example.items()}
    array = _as_array(example, "")
    if tabular and array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim == 0:
        raise InvalidInput("input example is a scalar; give at least one row")
    return {DEFAULT_INPUT: array}


def describe_inputs(inputs: Mapping[str, Array]) -> Signature:
    return Signature(inputs=tuple(describe(name, array) for name, array in inputs.items()))


def infer_outputs(runtime: ModelRuntime, inputs: Mapping[str, Array]) -> Signature:
    """The runtime's inputs with outputs described from a prediction on the example."""
    try:
        outputs = runtime.predict(dict(inputs))
    except InvalidInput as exc:
        raise InvalidInput(f"the model rejected its input example: {exc.message}", details=exc.details) \
            from None
    return Signature(inputs=runtime.signature.inputs, outputs=describe_all(outputs))


def _jsonable(array: Array) -> Any:
    if array.dtype.kind == "S" or (array.dtype.kind == "O" and any(isinstance(v, bytes) for v in array.flat)):
        array = np.vectorize(
            lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else v, otypes=[object]
        )(array)
    value = array.tolist()
    return _no_nan(value)


def _no_nan(value: Any) -> Any:
    """JSON has no NaN or infinity; store them as null."""
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def stored_example(inputs: Mapping[str, Array] | None) -> Any:
    """The example to store: JSON-friendly lists, at most ``MAX_EXAMPLE_ROWS`` rows per input."""
    if inputs is None:
        return None
    trimmed = {name: _jsonable(array[:MAX_EXAMPLE_ROWS]) for name, array in inputs.items()}
    if list(trimmed) == [DEFAULT_INPUT]:
        return trimmed[DEFAULT_INPUT]
    return trimmed
