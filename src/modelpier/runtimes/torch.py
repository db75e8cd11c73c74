"""The PyTorch runtime: a TorchScript module in ``model.pt``, run under ``torch.inference_mode()``
on CUDA when available, else the CPU.

TorchScript records no dtypes or shapes, so the signature comes from the registry (inferred from
the input example at packaging). Without one, inputs are fed in order, floats as float32, and the
signature is reported empty (unknown). Outputs are named by the signature, else ``output-0``...
(a dict output keeps its keys).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modelpier.errors import InvalidArtifact, InvalidInput
from modelpier.runtimes.tensors import Array, input_checks, pick_named, shape_text
from modelpier.spec.signature import Signature

FILENAME = "model.pt"


@contextmanager
def quiet_jit() -> Iterator[None]:
    """Silence torch's TorchScript deprecation notices: TorchScript is modelpier's storage format
    for torch models, so the notice is not something a modelpier user can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\.\w+` is deprecated", DeprecationWarning)
        yield


def save(model: Any, dest: Path, example: Any = None) -> None:
    """Write ``model.pt``: a ScriptModule as is; an ``nn.Module`` scripted, else traced on ``example``."""
    import torch

    with quiet_jit():
        if not isinstance(model, torch.jit.ScriptModule):
            model = _to_script(torch, model, example)
        torch.jit.save(model, str(dest / FILENAME))


def _to_script(torch: Any, model: Any, example: Any) -> Any:
    if not isinstance(model, torch.nn.Module):
        raise InvalidArtifact(f"{type(model).__name__} is not a torch.nn.Module")
    try:
        return torch.jit.script(model)
    except Exception as script_error:  # scripting fails in many ways on dynamic Python
        if example is None:
            raise InvalidArtifact(
                f"cannot save {type(model).__name__}: torch.jit.script failed ({script_error}) and "
                "there is no input example to trace it with; pass input_example= or a ScriptModule"
            ) from None
        args = tuple(torch.as_tensor(a) for a in (example.values() if isinstance(example, dict) else [example]))
        try:
            return torch.jit.trace(model.eval(), args)
        except Exception as trace_error:  # as above, for tracing
            raise InvalidArtifact(
                f"cannot save {type(model).__name__} as TorchScript: scripting failed ({script_error}) "
                f"and tracing failed ({trace_error})"
            ) from None


class TorchRuntime:
    """Predicts with a TorchScript module."""

    flavor: ClassVar[str] = "torch"

    def __init__(self, module: Any, signature: Signature | None = None, device: str = "cpu") -> None:
        import torch

        self._torch = torch
        self._module = module.eval()
        self._device = torch.device(device)
        self._signature = signature or Signature()
        self._checks = input_checks(self._signature)
        self._output_names = [o.name for o in self._signature.outputs]
        self._errors = (RuntimeError, ValueError, TypeError)

    @classmethod
    def load(
        cls, path: Path, signature: Signature | None = None, options: Mapping[str, Any] | None = None
    ) -> TorchRuntime:
        file = path / FILENAME
        if not file.is_file():
            raise InvalidArtifact(f"no {FILENAME} in {path}: not a TorchScript model folder")
        import torch

        device = str((options or {}).get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
        jit: Any = torch.jit  # torch.jit.load is not annotated
        try:
            with quiet_jit():
                module = jit.load(str(file), map_location=device)
        except (RuntimeError, ValueError) as exc:
            raise InvalidArtifact(f"cannot load {file} as TorchScript: {exc}") from None
        return cls(module, signature, device)

    @property
    def signature(self) -> Signature:
        return self._signature

    @property
    def native(self) -> Any:
        return self._module

    def predict(self, inputs: dict[str, Array], outputs: frozenset[str] | None = None) -> dict[str, Array]:
        arrays = pick_named(inputs, self._checks) if self._checks else [_default_cast(a) for a in inputs.values()]
        torch = self._torch
        tensors = [torch.from_numpy(_writable(a)).to(self._device) for a in arrays]
        try:
            with torch.inference_mode():
                result = self._module(*tensors)
        except self._errors as exc:
            expected = ", ".join(f"{c.name!r} of shape {shape_text(c.shape)}" for c in self._checks)
            raise InvalidInput(
                f"the model rejected the inputs{f' (expected {expected})' if expected else ''}: "
                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from None
        return self._name_outputs(result)

    def _name_outputs(self, result: Any) -> dict[str, Array]:
        if isinstance(result, dict):
            return {str(k): _to_numpy(v) for k, v in result.items()}
        values = list(result) if isinstance(result, list | tuple) else [result]
        names = self._output_names if len(self._output_names) == len(values) else [
            f"output-{i}" for i in range(len(values))
        ]
        return {name: _to_numpy(v) for name, v in zip(names, values, strict=True)}


def _default_cast(value: Any) -> Array:
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise InvalidInput(f"torch models take numeric tensors, got {array.dtype} values")
    # JSON numbers decode as float64; torch modules are float32 unless told otherwise.
    return array.astype(np.float32) if array.dtype == np.float64 else array


def _writable(array: Array) -> Array:
    """A contiguous array torch may share; decoded request buffers are read-only, and torch warns
    (and a module's in-place ops would fail) on those, so they are copied."""
    if array.flags.writeable and array.flags.c_contiguous:
        return array
    return np.array(array, order="C", copy=True)


def _to_numpy(value: Any) -> Array:
    return np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)
