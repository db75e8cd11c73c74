"""Lock the environment a model is saved in: the exact installed versions of what its flavor needs.

``lock_saving_environment(flavor)`` walks the installed distributions' metadata from the flavor's
framework (and numpy, and any ``extra`` names) through their requirements, transitively, evaluating
environment markers for this interpreter and leaving optional extras out. The result is an
``EnvironmentLock`` of ``name==version`` pins for this Python: what an isolated replica installs.
Hashes are not known for installed distributions (pip keeps none), so saved locks carry none; a
user's ``uv pip compile --generate-hashes`` file does.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from importlib import metadata

from packaging.requirements import InvalidRequirement, Requirement

from modelpier.registry.domain import Flavor
from modelpier.registry.lock import EnvironmentLock, LockedPackage, LockSource, normalise_name
from modelpier.runtimes.environment import FRAMEWORK_PACKAGES

# What every flavor's model needs besides its framework: tensors go in and out as numpy arrays.
_ALWAYS = ("numpy",)
# MLflow folders are served natively or through pyfunc: the framework inside decides, not mlflow.
_SKIP_ROOTS = {Flavor.MLFLOW: ("mlflow", "mlflow-skinny")}


def _dependencies(name: str, extras: frozenset[str]) -> list[tuple[str, frozenset[str]]]:
    """``name``'s requirements that apply here (markers true for no extra or one of ``extras``), each
    with the extras it asks for."""
    try:
        requires = metadata.requires(name) or []
    except metadata.PackageNotFoundError:
        return []
    found = []
    for line in requires:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        marker = requirement.marker
        if marker is not None and not any(marker.evaluate({"extra": e}) for e in ("", *extras)):
            continue
        found.append((requirement.name, frozenset(requirement.extras)))
    return found


def installed_closure(roots: Iterable[str | tuple[str, frozenset[str]]]) -> dict[str, str]:
    """``{normalised name: installed version}`` of ``roots`` and everything they require, transitively
    (a root may carry the extras it asks for, e.g. ``("uvicorn", frozenset({"standard"}))``).

    Roots that are not installed are left out (a flavor's framework may be absent)."""
    found: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    pending = [r if isinstance(r, tuple) else (r, frozenset[str]()) for r in roots]
    while pending:
        raw, extras = pending.pop()
        name = normalise_name(raw)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        found[name] = version
        pending.extend(_dependencies(name, extras))
    return found


def lock_saving_environment(flavor: Flavor | str, extra: Iterable[str] = ()) -> EnvironmentLock:
    """The lock of this process's environment for models of ``flavor`` (plus ``extra`` packages)."""
    flavor = Flavor(flavor)
    skip = _SKIP_ROOTS.get(flavor, ())
    roots = [n for n in (*FRAMEWORK_PACKAGES[flavor], *_ALWAYS, *extra) if n not in skip]
    pins = installed_closure(roots)
    return EnvironmentLock.of(platform.python_version(),
                              (LockedPackage(n, v) for n, v in pins.items()), LockSource.SAVED)
