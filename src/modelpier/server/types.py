"""Transport-neutral inference messages: what every codec decodes to and encodes from.

Plain slotted classes rather than pydantic models: they are built once per request on the hot
path, and their tensors are already numpy arrays (validation against the model's signature
happens in ``validation.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]
Parameters = dict[str, Any]


@dataclass(slots=True)
class RequestedOutput:
    name: str
    parameters: Parameters | None = None


@dataclass(slots=True)
class InferenceRequest:
    """Decoded inputs by name (first dimension is the batch), plus the protocol's extras."""

    inputs: dict[str, Array]
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[RequestedOutput] | None = None  # None: every output of the model
    # Per-input parameters (V2 allows them); kept so they can be passed through, rarely used.
    input_parameters: dict[str, Parameters] | None = None


@dataclass(slots=True)
class OutputTensor:
    name: str
    datatype: str
    data: Array
    parameters: Parameters | None = None


@dataclass(slots=True)
class InferenceResponse:
    model_name: str
    model_version: str | None
    outputs: list[OutputTensor]
    id: str | None = None
    parameters: Parameters | None = None


@dataclass(frozen=True, slots=True)
class TensorMetadata:
    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    name: str
    versions: tuple[str, ...]
    platform: str
    inputs: tuple[TensorMetadata, ...]
    outputs: tuple[TensorMetadata, ...]
    parameters: Parameters = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ServerMetadata:
    name: str
    version: str
    extensions: tuple[str, ...]
