"""The software environment a model was saved in, and warnings when the serving one differs.

``capture_environment`` records Python, platform, numpy, the flavor's framework and pinned
requirements (the framework plus its direct dependencies) at packaging time. Loading code calls
``warn_on_skew``, which compares the record with this process through the pure
``compare_environment``: a major or minor version difference of a relevant package (or of Python)
is worth a warning, since pickled models often break across them; patch differences are not.
"""

from __future__ import annotations

import platform
import re
import warnings
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Any

from modelpier.registry.domain import Flavor

# Distributions whose version matters for each flavor, framework first.
FRAMEWORK_PACKAGES: dict[Flavor, tuple[str, ...]] = {
    Flavor.SKLEARN: ("scikit-learn", "joblib"),
    Flavor.XGBOOST: ("xgboost",),
    Flavor.LIGHTGBM: ("lightgbm",),
    Flavor.ONNX: ("onnxruntime", "onnx"),
    Flavor.TORCH: ("torch",),
    Flavor.MLFLOW: ("mlflow", "mlflow-skinny"),
    Flavor.PYTHON: (),
}
_ALWAYS = ("numpy",)
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_VERSION = re.compile(r"^(\d+)(?:\.(\d+))?")
_EXTRA = re.compile(r"\bextra\s*==")
# MLflow folders are served natively when mlflow is absent, so its absence is no skew.
OPTIONAL_PACKAGES: dict[Flavor, tuple[str, ...]] = {Flavor.MLFLOW: ("mlflow", "mlflow-skinny")}


class EnvironmentSkewWarning(UserWarning):
    """The serving environment differs from the one a model was saved in."""


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _direct_requirements(name: str) -> list[str]:
    """Names of the installed direct dependencies of ``name`` (extras left out)."""
    try:
        requires = metadata.requires(name) or []
    except metadata.PackageNotFoundError:
        return []
    names = []
    for requirement in requires:
        if _EXTRA.search(requirement):
            continue
        match = _NAME.match(requirement)
        if match and _installed(match.group(1)) is not None:
            names.append(match.group(1))
    return names


def capture_environment(flavor: Flavor | str) -> dict[str, Any]:
    """The environment of this process as relevant to models of ``flavor``."""
    return current_environment(flavor)


def current_environment(flavor: Flavor | str, packages: Iterable[str] = ()) -> dict[str, Any]:
    """Like ``capture_environment``; ``packages`` adds versions of further distributions."""
    flavor = Flavor(flavor)
    relevant = [*FRAMEWORK_PACKAGES[flavor], *_ALWAYS, *packages]
    versions = {name: v for name in dict.fromkeys(relevant) if (v := _installed(name)) is not None}
    framework = next((n for n in FRAMEWORK_PACKAGES[flavor] if n in versions), None)
    pinned = dict(versions)
    for name in FRAMEWORK_PACKAGES[flavor]:
        if name in versions:
            for dep in _direct_requirements(name):
                version = _installed(dep)
                if version is not None:
                    pinned.setdefault(dep, version)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": versions.get("numpy"),
        "modelpier": _installed("modelpier") or "unknown",
        "flavor": flavor.value,
        "framework": {"name": framework, "version": versions[framework]} if framework else None,
        "packages": versions,
        "requirements": sorted(f"{name}=={version}" for name, version in pinned.items()),
    }


def recorded_packages(environment: Mapping[str, Any]) -> dict[str, str]:
    """The relevant package versions of a record: its ``packages``, else its framework pins."""
    packages = environment.get("packages")
    if isinstance(packages, Mapping):
        return {str(k): str(v) for k, v in packages.items() if v is not None}
    known = {_normalise(n) for names in FRAMEWORK_PACKAGES.values() for n in names} | set(_ALWAYS)
    found: dict[str, str] = {}
    for line in environment.get("requirements") or ():
        name, sep, version = str(line).partition("==")
        if sep and _normalise(name) in known:
            found[name.strip()] = version.split(";")[0].strip()
    return found


def _major_minor(version: str) -> tuple[str, ...]:
    match = _VERSION.match(version)
    return (match.group(1), match.group(2) or "0") if match else (version,)


def compare_environment(
    recorded: Mapping[str, Any], current: Mapping[str, Any], *, optional: Iterable[str] = ()
) -> list[str]:
    """Human warnings for differences that can change a model's behaviour; empty when none.

    Packages named in ``optional`` may be missing from ``current`` without a warning.
    """
    may_miss = {_normalise(n) for n in optional}
    found: list[str] = []
    saved_py, now_py = recorded.get("python"), current.get("python")
    if saved_py and now_py and _major_minor(str(saved_py)) != _major_minor(str(now_py)):
        found.append(f"Python: the model was saved with {saved_py}, this environment has {now_py}")
    now = {_normalise(k): v for k, v in recorded_packages(current).items()}
    for name, saved in sorted(recorded_packages(recorded).items()):
        running = now.get(_normalise(name))
        if running is None:
            if _normalise(name) in may_miss:
                continue
            found.append(f"{name}: the model was saved with {saved}, which is not installed here")
        elif _major_minor(saved) != _major_minor(running):
            found.append(f"{name}: the model was saved with {saved}, this environment has {running}")
    return found


def warn_on_skew(recorded: Mapping[str, Any] | None, flavor: Flavor | str) -> list[str]:
    """Emit one ``EnvironmentSkewWarning`` per difference; returns the messages."""
    if not recorded:
        return []
    flavor = Flavor(flavor)
    current = current_environment(flavor, recorded_packages(recorded))
    messages = compare_environment(recorded, current, optional=OPTIONAL_PACKAGES.get(flavor, ()))
    for message in messages:
        warnings.warn(message, EnvironmentSkewWarning, stacklevel=2)
    return messages
