"""Tensor helpers shared by the runtimes: check inputs (pick, cast, shape) and describe outputs.

Runtimes build one ``InputCheck`` per model input at load time, so a prediction only compares a
dtype and a few integers before handing the array to the framework. Every rejection is an
``InvalidInput`` that names the input, the expected shape and what was sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from modelpier.errors import InvalidInput
from modelpier.spec.signature import Signature, TensorSpec, V2Datatype, numpy_dtype, v2_datatype

Array = np.ndarray[Any, Any]

DEFAULT_INPUT = "input-0"


def shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


class InputCheck:
    """The precomputed expectations for one input tensor."""

    __slots__ = ("_exact", "_ndim", "_rest", "datatype", "dtype", "name", "shape")

    def __init__(self, spec: TensorSpec) -> None:
        self.name = spec.name
        self.datatype = spec.datatype
        self.dtype = numpy_dtype(spec.datatype)
        self.shape = spec.shape
        self._ndim = len(spec.shape)
        # The batch dimension is never checked: the server concatenates requests along it.
        self._rest = spec.shape[1:]
        self._exact = -1 not in self._rest  # then one tuple comparison checks the shape

    def coerce(self, value: Any, sent_name: str | None = None) -> Array:
        """The value as an array of this input's dtype and shape, or ``InvalidInput``."""
        array: Array = value if isinstance(value, np.ndarray) else np.asarray(value)
        if array.dtype != self.dtype:
            array = self._cast(array, sent_name or self.name)
        shape = array.shape
        if len(shape) != self._ndim or (
            shape[1:] != self._rest
            if self._exact
            else any(want not in (-1, got) for want, got in zip(self._rest, shape[1:], strict=True))
        ):
            raise self.shape_error(shape, sent_name)
        return array

    def shape_error(self, got: Sequence[int], sent_name: str | None = None) -> InvalidInput:
        name = sent_name or self.name
        hint = ""
        if len(self.shape) == 2 and self.shape[1] != -1 and len(got) == 2:
            hint = f" ({self.shape[1]} features per row, got {got[1]})"
        return InvalidInput(
            f"input {name!r}: expected shape {shape_text(self.shape)}, got {shape_text(got)}{hint}",
            details={"input": name, "expected_shape": list(self.shape), "shape": list(got)},
        )

    def _cast(self, array: Array, name: str) -> Array:
        if self.dtype.kind == "O":
            return array.astype(object)
        if array.dtype.kind in "USV":
            raise self._dtype_error(array, name)
        if array.dtype.kind == "O":
            # JSON-decoded payloads may arrive as object arrays of plain numbers.
            try:
                return array.astype(self.dtype)
            except (TypeError, ValueError):
                raise self._dtype_error(array, name) from None
        if not np.can_cast(array.dtype, self.dtype, casting="same_kind"):
            raise self._dtype_error(array, name)
        return array.astype(self.dtype)

    def _dtype_error(self, array: Array, name: str) -> InvalidInput:
        got = "non-numeric values" if array.dtype.kind in "USVO" else f"{array.dtype} values"
        return InvalidInput(
            f"input {name!r}: expected {self.datatype} values of shape {shape_text(self.shape)}, got {got}",
            details={"input": name, "expected_datatype": self.datatype, "dtype": str(array.dtype)},
        )


def pick_single(inputs: Mapping[str, Any], check: InputCheck) -> Array:
    """The one input of a single-input model: any name when exactly one is sent, else by name."""
    if len(inputs) == 1:
        name, value = next(iter(inputs.items()))
        return check.coerce(value, name)
    if check.name in inputs:
        return check.coerce(inputs[check.name])
    raise InvalidInput(
        f"model takes one input {check.name!r} of shape {shape_text(check.shape)}; "
        f"got {sorted(inputs) or 'no inputs'}",
        details={"expected_inputs": [check.name], "inputs": sorted(inputs)},
    )


def pick_named(inputs: Mapping[str, Any], checks: Sequence[InputCheck]) -> list[Array]:
    """The inputs of a model, in its order; a lone tensor is accepted for a lone input."""
    if len(checks) == 1:
        return [pick_single(inputs, checks[0])]
    expected = [c.name for c in checks]
    missing = [n for n in expected if n not in inputs]
    unknown = sorted(set(inputs) - set(expected))
    if missing or unknown:
        raise InvalidInput(
            f"model takes inputs {expected}; missing {missing}, unknown {unknown}",
            details={"expected_inputs": expected, "inputs": sorted(inputs)},
        )
    return [c.coerce(inputs[c.name]) for c in checks]


def input_checks(signature: Signature) -> tuple[InputCheck, ...]:
    return tuple(InputCheck(spec) for spec in signature.inputs)


def tabular_input(n_features: int | None, datatype: V2Datatype = "FP64") -> TensorSpec:
    """The default input of a tabular model: ``input-0`` of shape ``[-1, n_features]``."""
    return TensorSpec(name=DEFAULT_INPUT, datatype=datatype, shape=(-1, n_features or -1))


def describe(name: str, array: Array) -> TensorSpec:
    """A tensor spec for an example array, its first (batch) dimension variable."""
    shape = (-1, *array.shape[1:]) if array.ndim else (-1,)
    return TensorSpec(name=name, datatype=v2_datatype(array.dtype), shape=shape)


def describe_all(arrays: Mapping[str, Array]) -> tuple[TensorSpec, ...]:
    return tuple(describe(name, array) for name, array in arrays.items())


class TabularInput:
    """The input of a tabular model: one 2-D tensor, or one column per input stacked in order.

    MLflow column signatures give one input per column; tabular frameworks want one matrix.
    """

    __slots__ = ("_checks", "_single", "name", "shape")

    def __init__(self, signature: Signature) -> None:
        self._checks = input_checks(signature)
        if not self._checks:
            self._checks = (InputCheck(tabular_input(None)),)
        self._single = self._checks[0] if len(self._checks) == 1 else None
        self.name = self._checks[0].name if self._single else "+".join(c.name for c in self._checks)
        self.shape = self._single.shape if self._single else (-1, len(self._checks))

    def rejected(self, exc: Exception) -> InvalidInput:
        """The error for a framework that refused the (already checked) input."""
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return InvalidInput(
            f"input {self.name!r} (expected shape {shape_text(self.shape)}): the model rejected it: {reason}",
            details={"input": self.name, "expected_shape": list(self.shape)},
        )

    def take(self, inputs: Mapping[str, Any]) -> Array:
        if self._single is not None:
            return pick_single(inputs, self._single)
        if len(inputs) == 1:
            (sent, value), = inputs.items()
            matrix = np.asarray(value)
            if sent not in {c.name for c in self._checks} and matrix.ndim == 2 \
                    and matrix.shape[1] == len(self._checks):
                return matrix  # the columns as one [rows, columns] tensor, in signature order
        columns = pick_named(inputs, self._checks)
        return np.column_stack(columns)
