"""Pick and build the runtime for a flavor; recognise plain model files and folders.

``load_runtime`` imports the flavor's runtime module only when asked, and checks the framework is
installed first, so ``import modelpier.runtimes.loader`` stays free of sklearn, torch and friends.
``guess_flavor`` and ``prepare_plain_path`` serve ``pier serve ./model.joblib``: runtimes always
load from a folder holding canonical file names, so a lone file is presented as such a folder.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from modelpier.errors import InvalidArtifact, InvalidSpec
from modelpier.registry.domain import Flavor
from modelpier.runtimes.base import ModelRuntime
from modelpier.spec.signature import Signature


class _Entry(NamedTuple):
    module: str
    cls: str
    requires: tuple[str, ...]  # importable module names the runtime needs
    extra: str | None  # the pip extra that installs them


_RUNTIMES: dict[Flavor, _Entry] = {
    Flavor.SKLEARN: _Entry("sklearn", "SklearnRuntime", ("sklearn", "joblib"), "sklearn"),
    Flavor.XGBOOST: _Entry("xgboost", "XGBoostRuntime", ("xgboost",), "xgboost"),
    Flavor.LIGHTGBM: _Entry("lightgbm", "LightGBMRuntime", ("lightgbm",), "lightgbm"),
    Flavor.ONNX: _Entry("onnx", "OnnxRuntime", ("onnxruntime",), "onnx"),
    Flavor.TORCH: _Entry("torch", "TorchRuntime", ("torch",), "torch"),
    # The MLflow runtime checks the native framework it falls back to itself.
    Flavor.MLFLOW: _Entry("mlflow", "MlflowRuntime", (), None),
    Flavor.PYTHON: _Entry("python", "PythonRuntime", (), None),
}

# The file each flavor's runtime reads from its folder.
CANONICAL_FILES: dict[Flavor, str] = {
    Flavor.SKLEARN: "model.joblib",
    Flavor.XGBOOST: "model.ubj",
    Flavor.LIGHTGBM: "model.txt",
    Flavor.ONNX: "model.onnx",
    Flavor.TORCH: "model.pt",
}
MLMODEL_FILE = "MLmodel"
PYTHON_MODEL_FILE = "python-model.json"

_SUFFIXES: dict[str, Flavor] = {
    ".joblib": Flavor.SKLEARN,
    ".pkl": Flavor.SKLEARN,
    ".pickle": Flavor.SKLEARN,
    ".onnx": Flavor.ONNX,
    ".pt": Flavor.TORCH,
    ".pth": Flavor.TORCH,
    ".ubj": Flavor.XGBOOST,
    ".xgb": Flavor.XGBOOST,
}
SUPPORTED_KINDS = (
    ".joblib/.pkl (scikit-learn), .ubj/.xgb (XGBoost), .txt (LightGBM booster), .onnx, "
    ".pt/.pth (TorchScript), a folder with an MLmodel file (MLflow) or python-model.json (python)"
)


def parse_flavor(flavor: Flavor | str) -> Flavor:
    try:
        return Flavor(flavor)
    except ValueError:
        raise InvalidSpec(
            f"unknown flavor {flavor!r}; expected one of {[f.value for f in Flavor]}",
            details={"flavor": str(flavor), "flavors": [f.value for f in Flavor]},
        ) from None


def require_framework(flavor: Flavor) -> None:
    """Raise ``InvalidArtifact`` naming the extra to install when a flavor's framework is missing."""
    entry = _RUNTIMES[flavor]
    missing = [m for m in entry.requires if importlib.util.find_spec(m) is None]
    if missing:
        hint = f"pip install 'modelpier[{entry.extra}]'" if entry.extra else f"pip install {missing[0]}"
        raise InvalidArtifact(
            f"serving a {flavor.value} model needs {', '.join(missing)}, which is not installed: {hint}",
            details={"flavor": flavor.value, "missing": missing},
        )


def load_runtime(
    flavor: Flavor | str,
    path: Path,
    signature: Signature | None = None,
    *,
    options: Mapping[str, Any] | None = None,
) -> ModelRuntime:
    """Build the runtime for ``flavor`` from the folder ``path``.

    ``signature`` (the registry's record) fixes the input names, dtypes and shapes; without one the
    runtime describes the model itself. ``options`` are runtime settings such as ONNX's
    ``intra_op_num_threads``; a runtime ignores the ones it does not know.
    """
    parsed = parse_flavor(flavor)
    require_framework(parsed)
    entry = _RUNTIMES[parsed]
    module = importlib.import_module(f"modelpier.runtimes.{entry.module}")
    runtime: ModelRuntime = getattr(module, entry.cls).load(Path(path), signature, options or {})
    return runtime


def guess_flavor(path: Path) -> Flavor:
    """The flavor of a plain file or folder, from its name, header or contents."""
    path = Path(path)
    if path.is_dir():
        return inspect_folder(path)[0]
    if path.is_file():
        flavor = _guess_file(path)
        if flavor is not None:
            return flavor
    elif not path.exists():
        raise InvalidArtifact(f"{path} does not exist", details={"path": str(path)})
    raise _unknown(path)


def prepare_plain_path(path: Path, cache_dir: Path | None = None) -> tuple[Flavor, Path]:
    """The flavor and a folder a runtime can load, for a plain file or folder.

    A folder in a flavor's layout is returned as is. A lone file (or a folder holding one model file
    under another name) is linked, or copied where links are not allowed, as the canonical file
    name into a new folder under ``cache_dir`` (a temporary folder by default).
    """
    path = Path(path)
    if path.is_dir():
        flavor, file = inspect_folder(path)
        if file is None:
            return flavor, path
    else:
        flavor, file = guess_flavor(path), path
    folder = Path(tempfile.mkdtemp(prefix="modelpier-plain-", dir=cache_dir))
    target = folder / canonical_name(flavor, file)
    try:
        target.symlink_to(file.resolve())
    except OSError:
        shutil.copy2(file, target)
    return flavor, folder


def canonical_name(flavor: Flavor, file: Path) -> str:
    """The file name a runtime expects; XGBoost keeps the suffix, its loader reads format from it."""
    if flavor is Flavor.XGBOOST:
        return "model" + file.suffix
    return CANONICAL_FILES[flavor]


def _guess_file(file: Path) -> Flavor | None:
    flavor = _SUFFIXES.get(file.suffix.lower())
    if flavor is not None:
        return flavor
    if file.suffix.lower() in (".txt", ".lgb") and _is_lightgbm_text(file):
        return Flavor.LIGHTGBM
    return None


def _is_lightgbm_text(file: Path) -> bool:
    with file.open("rb") as fh:
        return fh.readline().strip() == b"tree"


def inspect_folder(folder: Path) -> tuple[Flavor, Path | None]:
    """A folder's flavor and, when its model file is not under the canonical name, that file
    (``None`` when the folder is already in the flavor's layout)."""
    if (folder / MLMODEL_FILE).is_file():
        return Flavor.MLFLOW, None
    if (folder / PYTHON_MODEL_FILE).is_file():
        return Flavor.PYTHON, None
    for flavor, name in CANONICAL_FILES.items():
        file = folder / name
        if file.is_file() and (flavor is not Flavor.LIGHTGBM or _is_lightgbm_text(file)):
            return flavor, None
    if (folder / "model.xgb").is_file():
        return Flavor.XGBOOST, None
    found = {f: _guess_file(f) for f in sorted(folder.iterdir()) if f.is_file()}
    models = {f: flavor for f, flavor in found.items() if flavor is not None}
    if len(models) == 1:
        file, flavor = next(iter(models.items()))
        return flavor, file
    if len(models) > 1:
        raise InvalidArtifact(
            f"{folder} holds several model files ({', '.join(f.name for f in models)}); "
            "point at one of them",
            details={"path": str(folder)},
        )
    raise _unknown(folder)


def _unknown(path: Path) -> InvalidArtifact:
    return InvalidArtifact(
        f"cannot tell which kind of model {path} is; supported: {SUPPORTED_KINDS}",
        details={"path": str(path)},
    )
