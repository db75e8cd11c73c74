"""Package a trained model as a flavor's artifact folder, with signature, example and environment.

``package_model`` is pure-ish: it writes files into a folder the caller owns and touches no
registry. It recognises the flavor from the object's class tree (XGBoost and LightGBM before
scikit-learn, since their wrappers subclass sklearn's base), saves the files through the flavor's
runtime module, loads them back through ``load_runtime`` (so a package that cannot be served is
refused now rather than at deploy time) and describes the outputs from a prediction on the
input example. ``modelpier.save_model`` builds on it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelpier.errors import InvalidArtifact, InvalidInput
from modelpier.registry.domain import Flavor
from modelpier.registry.lock import with_lock
from modelpier.runtimes.environment import capture_environment
from modelpier.runtimes.loader import (
    canonical_name,
    guess_flavor,
    inspect_folder,
    load_runtime,
    parse_flavor,
)
from modelpier.runtimes.locking import lock_saving_environment
from modelpier.sdk.signature_inference import (
    describe_inputs,
    example_inputs,
    infer_outputs,
    parse_signature,
    stored_example,
)
from modelpier.spec.signature import Signature

_TABULAR = (Flavor.SKLEARN, Flavor.XGBOOST, Flavor.LIGHTGBM)
_OBJECT_FLAVORS = "sklearn, xgboost, lightgbm, torch (nn.Module/ScriptModule), onnx (ModelProto), python"
_MAX_PARAM = 500


@dataclass(frozen=True)
class PackagedModel:
    """A flavor's files in ``directory`` and what the registry records about them."""

    flavor: Flavor
    directory: Path
    signature: Signature | None
    input_example: Any
    environment: dict[str, Any]
    params: dict[str, str]


def _class_tree(obj: Any) -> set[str]:
    """Top-level package names of the classes an object's type derives from."""
    return {cls.__module__.split(".")[0] for cls in type(obj).__mro__}


def _is_python_model(obj: Any) -> bool:
    return callable(getattr(obj, "load", None)) and callable(getattr(obj, "predict", None))


def detect_flavor(obj: Any) -> Flavor:
    """The flavor of a model object or path; ``InvalidArtifact`` for anything else."""
    if isinstance(obj, str | os.PathLike):
        return guess_flavor(Path(obj))
    tree = _class_tree(obj)
    # Wrappers of XGBoost and LightGBM derive from sklearn's base: check them first.
    for package, flavor in (("xgboost", Flavor.XGBOOST), ("lightgbm", Flavor.LIGHTGBM),
                            ("torch", Flavor.TORCH), ("onnx", Flavor.ONNX)):
        if package in tree:
            return flavor
    if "sklearn" in tree and callable(getattr(obj, "fit", None)) and callable(getattr(obj, "predict", None)):
        return Flavor.SKLEARN
    if _is_python_model(obj):
        return Flavor.PYTHON
    raise InvalidArtifact(
        f"cannot package a {type(obj).__module__}.{type(obj).__qualname__}: supported objects are "
        f"{_OBJECT_FLAVORS}, or a path to a model file or folder",
        details={"type": f"{type(obj).__module__}.{type(obj).__qualname__}"},
    )


def _describe(obj: Any, flavor: Flavor) -> str:
    if isinstance(obj, str | os.PathLike):
        return f"{flavor.value} model file {obj}"
    return f"{flavor.value} {type(obj).__name__}"


def _resolve_flavor(obj: Any, requested: Flavor | str | None) -> Flavor:
    detected = detect_flavor(obj)
    if requested is None:
        return detected
    wanted = parse_flavor(requested)
    if wanted is detected:
        return wanted
    # Allowed overrides: a sklearn-API wrapper pickled as sklearn; any load/predict class as python.
    if wanted is Flavor.SKLEARN and "sklearn" in _class_tree(obj) and detected in _TABULAR:
        return wanted
    if wanted is Flavor.PYTHON and not isinstance(obj, str | os.PathLike) and _is_python_model(obj):
        return wanted
    raise InvalidArtifact(
        f"object is a {_describe(obj, detected)}, not a {wanted.value} model",
        details={"detected": detected.value, "requested": wanted.value},
    )


def _prepare_dest(dest: Path) -> Path:
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise InvalidInput(f"package destination {dest} is not empty")
    return dest


def _copy_path(source: Path, dest: Path) -> None:
    if source.is_dir():
        flavor, file = inspect_folder(source)
        if file is None:
            shutil.copytree(source, dest, dirs_exist_ok=True)
            return
    else:
        flavor, file = guess_flavor(source), source
    shutil.copyfile(file, dest / canonical_name(flavor, file))


def _save_object(obj: Any, flavor: Flavor, dest: Path, example: dict[str, Any] | None) -> None:
    if flavor is Flavor.SKLEARN:
        from modelpier.runtimes import sklearn

        sklearn.save(obj, dest)
    elif flavor is Flavor.XGBOOST:
        from modelpier.runtimes import xgboost

        xgboost.save(obj, dest)
    elif flavor is Flavor.LIGHTGBM:
        from modelpier.runtimes import lightgbm

        lightgbm.save(obj, dest)
    elif flavor is Flavor.ONNX:
        from modelpier.runtimes import onnx

        onnx.save(obj, dest)
    elif flavor is Flavor.TORCH:
        from modelpier.runtimes import torch

        torch.save(obj, dest, example)
    else:
        from modelpier.runtimes import python

        python.save(obj, dest)


def model_params(obj: Any) -> dict[str, str]:
    """Hyper-parameters worth recording: an estimator's shallow ``get_params()``, as strings."""
    get_params = getattr(obj, "get_params", None)
    raw: Any = None
    if callable(get_params):
        try:
            raw = get_params(deep=False)
        except TypeError:
            raw = None
    elif isinstance(getattr(obj, "params", None), dict):  # a LightGBM Booster
        raw = obj.params
    if not isinstance(raw, dict):
        return {}
    return {str(k): str(v)[:_MAX_PARAM] for k, v in raw.items()}


def package_model(
    model_or_path: Any,
    dest: Path,
    *,
    flavor: Flavor | str | None = None,
    signature: Signature | dict[str, Any] | None = None,
    input_example: Any = None,
) -> PackagedModel:
    """Write ``model_or_path`` as a flavor's artifact folder into ``dest`` (empty or new).

    ``signature`` overrides inference (validated; ``InvalidSpec`` names the bad field); else it is
    inferred from ``input_example``: inputs from the example's arrays, outputs from running the
    packaged model on it; without an example, what the model describes of itself, if anything.
    """
    resolved = _resolve_flavor(model_or_path, flavor)
    user_signature = parse_signature(signature)
    dest = _prepare_dest(dest)
    if resolved is Flavor.MLFLOW:
        shutil.copytree(Path(model_or_path), dest, dirs_exist_ok=True)
        from modelpier.sdk.mlflow_import import read_mlflow_model

        imported = read_mlflow_model(dest)
        return PackagedModel(
            flavor=Flavor.MLFLOW,
            directory=dest,
            signature=user_signature or imported.signature,
            input_example=imported.input_example if input_example is None else
            stored_example(example_inputs(input_example)),
            environment=imported.environment,
            params=imported.params,
        )
    inputs = example_inputs(input_example, tabular=resolved in _TABULAR)
    if resolved is Flavor.TORCH and inputs is not None:
        # Torch modules are float32 unless built otherwise; float64 examples come from numpy defaults.
        inputs = {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in inputs.items()}
    if isinstance(model_or_path, str | os.PathLike):
        _copy_path(Path(model_or_path), dest)
        params: dict[str, str] = {}
    else:
        _save_object(model_or_path, resolved, dest, inputs)
        params = model_params(model_or_path)
    return PackagedModel(
        flavor=resolved,
        directory=dest,
        signature=_signature(resolved, dest, user_signature, inputs),
        input_example=stored_example(inputs),
        environment=with_lock(capture_environment(resolved), lock_saving_environment(resolved)),
        params=params,
    )


def _signature(
    flavor: Flavor, dest: Path, given: Signature | None, inputs: dict[str, Any] | None
) -> Signature | None:
    """Load the package back (it must be servable) and settle its signature."""
    if given is not None:
        runtime = load_runtime(flavor, dest, given)
        if inputs is not None:
            infer_outputs(runtime, inputs)  # the example must fit the given signature
        return given
    if flavor is Flavor.ONNX or inputs is None:
        runtime = load_runtime(flavor, dest)
        if inputs is not None:
            infer_outputs(runtime, inputs)  # the graph is the signature; the example must fit it
        described = runtime.signature
        return described if described.inputs or described.outputs else None
    runtime = load_runtime(flavor, dest, describe_inputs(inputs))
    return infer_outputs(runtime, inputs)
