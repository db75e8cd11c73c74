"""Read an MLflow model folder's ``MLmodel`` file without MLflow: flavors, metadata, and the
signature converted to V2 tensors.

MLflow writes ``signature.inputs``/``outputs`` as JSON strings, either column-based
(``[{"type": "double", "name": "x"}, ...]``) or tensor-based
(``[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}]``). Input columns
become one ``[-1]`` input per column, named for it; output columns sharing one type become one
``predict`` tensor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from modelpier.errors import InvalidArtifact
from modelpier.spec.signature import Signature, TensorSpec, V2Datatype, v2_datatype

MLMODEL = "MLmodel"

_COLUMN_TYPES: dict[str, V2Datatype] = {
    "boolean": "BOOL", "integer": "INT32", "long": "INT64", "float": "FP32", "double": "FP64",
    "string": "BYTES", "binary": "BYTES", "datetime": "BYTES",
}


@dataclass(frozen=True)
class MLmodel:
    """The parts of an ``MLmodel`` file modelpier uses."""

    folder: Path
    flavors: dict[str, dict[str, Any]]
    signature: Signature | None
    columns: tuple[str, ...] = ()  # input column names of a column-based signature, in order
    metadata: dict[str, Any] = field(default_factory=dict)
    input_example: str | None = None  # file name of the saved input example
    mlflow_version: str | None = None


def read_mlmodel(folder: Path) -> MLmodel:
    file = folder / MLMODEL
    if not file.is_file():
        raise InvalidArtifact(f"no {MLMODEL} file in {folder}: not an MLflow model folder")
    try:
        body = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise InvalidArtifact(f"{file} is not valid YAML: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidArtifact(f"{file} must be a YAML mapping, got {type(body).__name__}")
    flavors = body.get("flavors")
    if not isinstance(flavors, dict) or not flavors:
        raise InvalidArtifact(f"{file} has no 'flavors' mapping")
    signature: Signature | None = None
    columns: tuple[str, ...] = ()
    if isinstance(body.get("signature"), dict):
        signature, columns = convert_signature(body["signature"])
    example = body.get("saved_input_example_info")
    metadata = body.get("metadata")
    return MLmodel(
        folder=folder,
        flavors={str(k): v if isinstance(v, dict) else {} for k, v in flavors.items()},
        signature=signature,
        columns=columns,
        metadata=metadata if isinstance(metadata, dict) else {},
        input_example=str(example.get("artifact_path")) if isinstance(example, dict) else None,
        mlflow_version=str(body["mlflow_version"]) if "mlflow_version" in body else None,
    )


def convert_signature(signature: dict[str, Any]) -> tuple[Signature, tuple[str, ...]]:
    """An MLflow signature as V2 tensors, plus the input column names when column-based."""
    inputs, columns = _convert(signature.get("inputs"), "inputs", "input-0", "input")
    outputs, _ = _convert(signature.get("outputs"), "outputs", "predict", "output")
    try:
        return Signature(inputs=inputs, outputs=outputs), columns
    except ValueError as exc:
        raise InvalidArtifact(f"MLmodel signature does not convert to V2 tensors: {exc}") from None


def _convert(
    raw: Any, where: str, single: str, prefix: str
) -> tuple[tuple[TensorSpec, ...], tuple[str, ...]]:
    if raw is None:
        return (), ()
    try:
        entries = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        raise InvalidArtifact(f"MLmodel signature.{where} is not JSON: {exc}") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InvalidArtifact(f"MLmodel signature.{where} must be a JSON list of objects")
    if not entries:
        return (), ()
    if all(e.get("type") == "tensor" for e in entries):
        specs = tuple(
            _tensor(e, e.get("name") or (single if len(entries) == 1 else f"{prefix}-{i}"), where)
            for i, e in enumerate(entries)
        )
        return specs, ()
    types = [_column_type(e, where) for e in entries]
    names = tuple(str(e.get("name") or f"{prefix}-{i}") for i, e in enumerate(entries))
    if where == "outputs" and len(set(types)) == 1:
        shape = (-1,) if len(entries) == 1 else (-1, len(entries))
        return (TensorSpec(name=single, datatype=types[0], shape=shape),), names
    # Inputs: one per column, as MLServer's and KServe's MLflow runtimes take them. (The server also
    # accepts one [rows, columns] tensor when every column has the same datatype.)
    return tuple(TensorSpec(name=n, datatype=t, shape=(-1,)) for n, t in zip(names, types, strict=True)), names


def _column_type(entry: dict[str, Any], where: str) -> V2Datatype:
    kind = entry.get("type")
    if kind not in _COLUMN_TYPES:
        raise InvalidArtifact(
            f"MLmodel signature.{where}: column {entry.get('name', '?')!r} has type {kind!r}; "
            f"supported: {sorted(_COLUMN_TYPES)} or tensor"
        )
    return _COLUMN_TYPES[str(kind)]


def _tensor(entry: dict[str, Any], name: str, where: str) -> TensorSpec:
    spec = entry.get("tensor-spec")
    if not isinstance(spec, dict) or "dtype" not in spec:
        raise InvalidArtifact(f"MLmodel signature.{where}: tensor {name!r} lacks a tensor-spec with a dtype")
    try:
        datatype = v2_datatype(np.dtype(spec["dtype"]))
        shape = tuple(-1 if d is None or int(d) <= 0 else int(d) for d in spec.get("shape") or (-1,))
    except (TypeError, ValueError) as exc:
        raise InvalidArtifact(f"MLmodel signature.{where}: tensor {name!r}: {exc}") from None
    return TensorSpec(name=name, datatype=datatype, shape=shape)
