"""The ONNX runtime: ``model.onnx`` run by onnxruntime on the CPU execution provider.

The signature comes from the graph: input and output names, element types, and shapes with
symbolic or unknown dimensions as -1. Non-tensor outputs (such as skl2onnx's ZipMap dictionaries)
cannot travel as V2 tensors and are left out. Option ``intra_op_num_threads`` sizes the pool.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modelpier.errors import InvalidArtifact, InvalidInput
from modelpier.runtimes.tensors import Array, input_checks, pick_named, shape_text
from modelpier.spec.signature import Signature, TensorSpec, V2Datatype

FILENAME = "model.onnx"

_ONNX_TYPES: dict[str, V2Datatype] = {
    "tensor(bool)": "BOOL", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64", "tensor(int8)": "INT8",
    "tensor(int16)": "INT16", "tensor(int32)": "INT32", "tensor(int64)": "INT64",
    "tensor(float16)": "FP16", "tensor(float)": "FP32", "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


def save(model: Any, dest: Path) -> None:
    """Write ``model.onnx`` from an ``onnx.ModelProto`` or a path to an ``.onnx`` file."""
    target = dest / FILENAME
    if isinstance(model, str | Path):
        source = Path(model)
        if not source.is_file():
            raise InvalidArtifact(f"{source} is not an ONNX file")
        shutil.copyfile(source, target)
        return
    import onnx

    if not isinstance(model, onnx.ModelProto):
        raise InvalidArtifact(f"{type(model).__name__} is not an onnx.ModelProto")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise InvalidArtifact(f"the ONNX model does not validate: {exc}") from None
    onnx.save_model(model, str(target))


def _spec(arg: Any) -> TensorSpec | None:
    datatype = _ONNX_TYPES.get(arg.type)
    if datatype is None:
        return None
    dims = tuple(d if isinstance(d, int) and d > 0 else -1 for d in (arg.shape or ()))
    return TensorSpec(name=arg.name, datatype=datatype, shape=dims)


def describe_session(session: Any) -> Signature:
    inputs = [_spec(a) for a in session.get_inputs()]
    outputs = [_spec(a) for a in session.get_outputs()]
    return Signature(
        inputs=tuple(s for s in inputs if s is not None), outputs=tuple(s for s in outputs if s is not None)
    )


class OnnxRuntime:
    """Predicts with an onnxruntime ``InferenceSession``."""

    flavor: ClassVar[str] = "onnx"

    def __init__(self, session: Any, signature: Signature | None = None) -> None:
        import onnxruntime

        ort_state = onnxruntime.capi.onnxruntime_pybind11_state
        self._session = session
        graph = describe_session(session)
        if len(graph.inputs) != len(session.get_inputs()):
            raise InvalidArtifact("the ONNX model takes a non-tensor input, which modelpier cannot feed")
        # Checks follow the graph: its names are what the session must be fed.
        self._checks = input_checks(graph)
        self._names: Sequence[str] = [c.name for c in self._checks]
        self._outputs = [o.name for o in graph.outputs]
        self._signature = signature if signature is not None and signature.inputs else graph
        self._errors = (ValueError, ort_state.InvalidArgument, ort_state.Fail)

    @classmethod
    def load(
        cls, path: Path, signature: Signature | None = None, options: Mapping[str, Any] | None = None
    ) -> OnnxRuntime:
        file = path / FILENAME
        if not file.is_file():
            raise InvalidArtifact(f"no {FILENAME} in {path}: not an ONNX model folder")
        import onnxruntime

        session_options = onnxruntime.SessionOptions()
        threads = (options or {}).get("intra_op_num_threads")
        if threads:
            session_options.intra_op_num_threads = int(threads)
        try:
            session = onnxruntime.InferenceSession(
                str(file), sess_options=session_options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own pybind classes, none a common base
            raise InvalidArtifact(f"cannot load {file} with onnxruntime: {exc}") from None
        return cls(session, signature)

    @property
    def signature(self) -> Signature:
        return self._signature

    @property
    def native(self) -> Any:
        return self._session

    def predict(self, inputs: dict[str, Array], outputs: frozenset[str] | None = None) -> dict[str, Array]:
        arrays = pick_named(inputs, self._checks)
        feed = dict(zip(self._names, arrays, strict=True))
        # onnxruntime evaluates only the nodes the named outputs need.
        fetch = self._outputs if outputs is None else [n for n in self._outputs if n in outputs] or self._outputs
        try:
            results = self._session.run(fetch, feed)
        except self._errors as exc:
            names = ", ".join(f"{c.name!r} of shape {shape_text(c.shape)}" for c in self._checks)
            raise InvalidInput(f"the model rejected the inputs (expected {names}): {exc}") from None
        return {name: np.asarray(value) for name, value in zip(fetch, results, strict=True)}
