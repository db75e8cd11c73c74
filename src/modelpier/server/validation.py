"""Check decoded inputs against a model's signature before they reach the batcher.

``InputValidator`` is built once per model at load time, so checking a request costs a dict lookup,
a dtype comparison and a few integer comparisons per input. Every rejection is an ``InvalidInput``
naming the input, what the signature expects and what was sent. A model with one input accepts a
lone tensor under any name (MLServer and KServe clients often send ``input-0`` or ``input_1``); a model
whose inputs are columns of one datatype takes them one per input (``[rows]`` or ``[rows, 1]``) or as
one ``[rows, columns]`` tensor.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from modelpier.errors import InvalidInput
from modelpier.server.types import Array
from modelpier.spec.signature import Signature, TensorSpec, numpy_dtype, v2_datatype


def shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _datatype_of(array: Array) -> str:
    try:
        return v2_datatype(array.dtype)
    except ValueError:
        return str(array.dtype)


class _InputCheck:
    __slots__ = ("datatype", "dtype", "name", "ndim", "shape")

    def __init__(self, spec: TensorSpec) -> None:
        self.name = spec.name
        self.datatype = spec.datatype
        self.dtype = numpy_dtype(spec.datatype)
        self.shape = spec.shape
        self.ndim = len(spec.shape)

    def expectation(self) -> str:
        return f"{self.datatype} {shape_text(self.shape)}"

    def check(self, array: Array, sent_name: str) -> Array:
        if array.dtype != self.dtype:
            array = self._cast(array, sent_name)
        shape = array.shape
        if len(shape) != self.ndim or any(w not in (-1, g) for w, g in zip(self.shape, shape, strict=True)):
            raise InvalidInput(
                f"input {sent_name!r}: expected shape {shape_text(self.shape)}, got {shape_text(shape)}",
                details={"input": sent_name, "expected_shape": list(self.shape), "shape": list(shape)},
            )
        return array

    def _cast(self, array: Array, name: str) -> Array:
        if self.dtype.kind == "O":
            if array.dtype.kind in "OSU":
                return array.astype(object)
        elif array.dtype.kind not in "OSUV" and np.can_cast(array.dtype, self.dtype, casting="same_kind"):
            # same_kind admits int -> float and float64 -> float32, refuses float -> int.
            return array.astype(self.dtype)
        raise InvalidInput(
            f"input {name!r}: expected datatype {self.datatype} (or one that converts to it without loss "
            f"of kind), got {_datatype_of(array)}",
            details={"input": name, "expected_datatype": self.datatype, "datatype": _datatype_of(array)},
        )


class InputValidator:
    """Validates and normalises one model's inputs; ``check`` returns them under the signature's names."""

    def __init__(self, signature: Signature) -> None:
        self._checks = {spec.name: _InputCheck(spec) for spec in signature.inputs}
        self._single = next(iter(self._checks.values())) if len(self._checks) == 1 else None
        self._names = list(self._checks)
        # Column inputs (one [-1] input per column, an MLflow column signature) of one datatype also
        # come as a single [rows, columns] tensor, in the signature's column order.
        checks = list(self._checks.values())
        self._columns = len(checks) > 1 and all(c.ndim == 1 for c in checks) \
            and len({c.datatype for c in checks}) == 1

    def check(self, inputs: dict[str, Array]) -> tuple[dict[str, Array], int]:
        """The checked inputs and their batch size (the shared first dimension)."""
        if not self._checks:  # a signature with no inputs recorded: trust the runtime
            return inputs, _rows(inputs)
        if self._single is not None and len(inputs) == 1:
            sent, array = next(iter(inputs.items()))
            single = self._single
            array = single.check(array, sent)
            return {single.name: array}, (array.shape[0] if array.ndim else 1)
        if self._columns and len(inputs) == 1 and next(iter(inputs)) not in self._checks:
            inputs = self._split_columns(*next(iter(inputs.items())))
        elif self._columns:
            inputs = {k: v.reshape(-1) if v.ndim == 2 and v.shape[1] == 1 else v for k, v in inputs.items()}
        missing = [n for n in self._names if n not in inputs]
        if missing:
            want = ", ".join(f"{n!r} ({self._checks[n].expectation()})" for n in missing)
            raise InvalidInput(
                f"missing input {want}; got {sorted(inputs) or 'no inputs'}",
                details={"missing": missing, "expected_inputs": self._names, "inputs": sorted(inputs)},
            )
        unknown = sorted(set(inputs) - set(self._checks))
        if unknown:
            raise InvalidInput(
                f"unknown input {unknown[0]!r}; the model takes {self._names}",
                details={"unknown": unknown, "expected_inputs": self._names},
            )
        checked = {name: self._checks[name].check(inputs[name], name) for name in self._names}
        return checked, _rows(checked)

    def _split_columns(self, sent: str, array: Array) -> dict[str, Array]:
        if array.ndim != 2 or array.shape[1] != len(self._names):
            raise InvalidInput(
                f"input {sent!r}: the model takes columns {self._names}: send one input per column, or one "
                f"tensor of shape [rows, {len(self._names)}]; got {shape_text(array.shape)}",
                details={"input": sent, "expected_inputs": self._names, "shape": list(array.shape)})
        return {name: array[:, i] for i, name in enumerate(self._names)}


def _rows(inputs: dict[str, Array]) -> int:
    rows = -1
    for name, array in inputs.items():
        n = array.shape[0] if array.ndim else 1
        if rows == -1:
            rows = n
        elif n != rows:
            raise InvalidInput(
                f"input {name!r}: first (batch) dimension is {n} but other inputs have {rows}; "
                "all inputs must have the same number of rows",
                details={"input": name, "rows": n, "expected_rows": rows},
            )
    return max(rows, 0)
