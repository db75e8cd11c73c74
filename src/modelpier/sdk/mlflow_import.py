"""Read an MLflow model folder into what the registry records, without importing MLflow.

``read_mlflow_model`` parses ``MLmodel`` (flavors, signature, metadata), the saved input example
(``{"columns", "data"}`` split orient, ``{"dataframe_split": ...}`` or ``{"inputs": ...}``) and
``requirements.txt``. ``runs:/`` and ``models:/`` URIs need MLflow to download; plain paths and
``file://`` URIs do not. ``modelpier.import_mlflow`` builds on it.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import re
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml

from modelpier.errors import InvalidArtifact, InvalidInput
from modelpier.registry.domain import Flavor
from modelpier.registry.lock import EnvironmentLock, LockSource, normalise_name, parse_requirements, with_lock
from modelpier.runtimes.mlmodel import MLmodel, read_mlmodel
from modelpier.sdk.packaging import PackagedModel
from modelpier.sdk.signature_inference import MAX_EXAMPLE_ROWS

_FRAMEWORK_KEYS = {  # MLflow flavor -> (distribution, version key in its flavor block)
    "sklearn": ("scikit-learn", "sklearn_version"),
    "xgboost": ("xgboost", "xgb_version"),
    "lightgbm": ("lightgbm", "lgb_version"),
    "onnx": ("onnx", "onnx_version"),
    "pytorch": ("torch", "pytorch_version"),
}

# ``name==1.2`` (group 2: the version), or a name with a range/marker/nothing (no group 2).
_PIN_OR_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*(?:==\s*([^\s;,]+)\s*$)?")


def resolve_mlflow_uri(uri: str | Path) -> Path:
    """A local folder for a path, ``file://`` URI, or (with MLflow installed) ``runs:/``/``models:/``."""
    if isinstance(uri, Path):
        return uri
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme in ("runs", "models"):
        if importlib.util.find_spec("mlflow") is None:
            raise InvalidInput(
                f"{uri}: {parsed.scheme}:/ URIs need mlflow to resolve: pip install 'modelpier[mlflow]' "
                "(or pass the model's local folder)"
            )
        import mlflow.artifacts

        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter is a Windows drive
        raise InvalidInput(f"{uri}: unsupported URI scheme {parsed.scheme!r}; use a path, file://, runs:/ or models:/")
    return Path(uri)


def read_mlflow_model(path: str | Path) -> PackagedModel:
    """What an MLflow model folder says about itself; ``directory`` is the folder read."""
    folder = resolve_mlflow_uri(path)
    mlmodel = read_mlmodel(folder)
    return PackagedModel(
        flavor=Flavor.MLFLOW,
        directory=folder,
        signature=mlmodel.signature,
        input_example=read_input_example(mlmodel),
        environment=mlflow_environment(mlmodel),
        params={str(k): v if isinstance(v, str) else json.dumps(v) for k, v in mlmodel.metadata.items()},
    )


def read_input_example(mlmodel: MLmodel) -> Any:
    """The saved example, shaped for the converted signature, at most ``MAX_EXAMPLE_ROWS`` rows."""
    file = mlmodel.folder / (mlmodel.input_example or "input_example.json")
    if not file.is_file():
        return None
    try:
        body = json.loads(file.read_text())
    except ValueError as exc:
        raise InvalidArtifact(f"{file} is not JSON: {exc}") from None
    if isinstance(body, dict) and isinstance(body.get("dataframe_split"), dict):
        body = body["dataframe_split"]
    if isinstance(body, dict) and "data" in body:
        rows = body["data"][:MAX_EXAMPLE_ROWS] if isinstance(body["data"], list) else body["data"]
        columns = body.get("columns") or list(mlmodel.columns)
        inputs = mlmodel.signature.inputs if mlmodel.signature else ()
        if len(inputs) > 1 and columns and isinstance(rows, list):
            return {str(c): [row[i] for row in rows] for i, c in enumerate(columns)}
        return rows
    if isinstance(body, dict) and "inputs" in body:
        inputs = body["inputs"]
        if isinstance(inputs, dict):
            return {k: v[:MAX_EXAMPLE_ROWS] if isinstance(v, list) else v for k, v in inputs.items()}
        return inputs[:MAX_EXAMPLE_ROWS] if isinstance(inputs, list) else inputs
    if isinstance(body, list):
        return body[:MAX_EXAMPLE_ROWS]
    raise InvalidArtifact(f"{file}: expected a split-orient frame, {{'inputs': ...}} or a list")


def _requirements(folder: Path) -> list[str]:
    file = folder / "requirements.txt"
    if not file.is_file():
        return []
    lines = (line.split("#")[0].strip() for line in file.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("-")]


def _python_version(mlmodel: MLmodel) -> str | None:
    env_file = mlmodel.folder / "python_env.yaml"
    if env_file.is_file():
        try:
            env = yaml.safe_load(env_file.read_text())
        except yaml.YAMLError:
            env = None
        if isinstance(env, dict) and env.get("python"):
            return str(env["python"])
    version = mlmodel.flavors.get("python_function", {}).get("python_version")
    return str(version) if version else None


def mlflow_environment(mlmodel: MLmodel) -> dict[str, Any]:
    """The environment MLflow recorded: requirements, Python, framework and MLflow versions."""
    framework = None
    for name, (dist, key) in _FRAMEWORK_KEYS.items():
        if name in mlmodel.flavors and mlmodel.flavors[name].get(key):
            framework = {"name": dist, "version": str(mlmodel.flavors[name][key])}
            break
    python = _python_version(mlmodel)
    requirements = _requirements(mlmodel.folder)
    environment = {
        "flavor": Flavor.MLFLOW.value,
        "python": python,
        "mlflow": mlmodel.mlflow_version,
        "mlflow_flavors": sorted(mlmodel.flavors),
        "framework": framework,
        "requirements": requirements,
    }
    return with_lock(environment, lock_mlflow_requirements(requirements, python or platform.python_version()))


def lock_mlflow_requirements(requirements: list[str], python: str) -> EnvironmentLock:
    """The lock of an MLflow model's ``requirements.txt`` lines.

    MLflow pins what it inferred (``scikit-learn==1.5.2``); a line it could not pin (a range, a bare
    name) is pinned to the version installed here, or left out when none is, since an unpinned
    requirement cannot be reproduced. ``mlflow`` becomes ``mlflow-skinny`` at the same version: the
    model needs MLflow's loader, not its tracking server and UI.
    """
    lines = []
    for line in requirements:
        match = _PIN_OR_NAME.match(line)
        if match is None:
            continue
        name, pinned = match.group(1), match.group(2)
        if normalise_name(name) == "mlflow":
            name = "mlflow-skinny"
        if pinned:
            lines.append(f"{name}=={pinned}")
            continue
        try:
            lines.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return parse_requirements("\n".join(lines), python=python, source=LockSource.MLFLOW)
