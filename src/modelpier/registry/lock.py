"""A version's locked environment: the exact pins it needs, with hashes where known, and its Python.

The lock is what an isolated replica's virtualenv (``backends/local`` via ``uv``) and an OCI image's
environment layer are built from. It lives on the version (``ModelVersion.lock``, stored as
``environment["lock"]``) and is taken from the saving environment (``save_model``), from MLflow's
``requirements.txt``/``python_env.yaml`` on import, or from a file the user gives. A lock is data:
``digest`` names it (same pins, same Python major.minor → same digest, whatever their order), so
environments built from it are cached and shared by that digest.

Pure: parsing and rendering only, no I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from modelpier.errors import InvalidInput

LOCK_KEY = "lock"  # the key of ``ModelVersion.environment`` that holds the lock

_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
_HASH = re.compile(r"^(sha256|sha384|sha512):[0-9a-f]{32,128}$")
_PYTHON = re.compile(r"^\d+\.\d+(\.\d+)?")
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*===?\s*([^\s;,\\]+)\s*(;[^\\]*)?$")


class LockSource(StrEnum):
    SAVED = "saved"  # the environment ``save_model`` ran in
    MLFLOW = "mlflow"  # an MLflow model's requirements.txt / python_env.yaml
    USER = "user"  # a requirements file given with --requirements


def normalise_name(name: str) -> str:
    """PEP 503's normal form: ``Scikit_Learn`` and ``scikit-learn`` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True, slots=True)
class LockedPackage:
    """One exact pin: ``name==version``, with the archive hashes allowed (``sha256:<hex>``)."""

    name: str  # normalised (PEP 503)
    version: str
    hashes: tuple[str, ...] = ()

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True, slots=True)
class EnvironmentLock:
    """Exact pins plus the Python version they were resolved for.

    ``packages`` is sorted by name and names are unique, so two locks with the same content are
    equal and share a ``digest``.
    """

    python: str  # "3.11.2"; environments are built for its major.minor
    packages: tuple[LockedPackage, ...]
    source: LockSource = LockSource.USER

    @classmethod
    def of(cls, python: str, packages: Iterable[LockedPackage], source: LockSource | str = LockSource.USER
           ) -> EnvironmentLock:
        """A checked lock: valid names and Python, one pin per package, sorted."""
        if not _PYTHON.match(python):
            raise InvalidInput(f"lock: python version {python!r} is not like 3.11 or 3.11.4")
        by_name: dict[str, LockedPackage] = {}
        for package in packages:
            if not _NAME.match(package.name) or not package.version:
                raise InvalidInput(f"lock: {package.name!r}=={package.version!r} is not an exact pin")
            for h in package.hashes:
                if not _HASH.match(h):
                    raise InvalidInput(f"lock: hash {h!r} of {package.name} is not like sha256:<hex>")
            name = normalise_name(package.name)
            seen = by_name.get(name)
            if seen is not None and seen.version != package.version:
                raise InvalidInput(f"lock: {name} is pinned twice, to {seen.version} and {package.version}")
            by_name[name] = LockedPackage(name, package.version, tuple(sorted(set(package.hashes))))
        return cls(python=python, packages=tuple(by_name[n] for n in sorted(by_name)), source=LockSource(source))

    @property
    def python_minor(self) -> str:
        """``3.11`` of ``3.11.2``: what a virtualenv is built for."""
        return ".".join(self.python.split(".")[:2])

    @property
    def pins(self) -> tuple[str, ...]:
        return tuple(p.pin for p in self.packages)

    @property
    def hashed(self) -> bool:
        """Every package carries hashes: the lock can be installed with ``--require-hashes``."""
        return bool(self.packages) and all(p.hashes for p in self.packages)

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` over the Python major.minor and the pins (hashes included, source not)."""
        canonical = json.dumps({"python": self.python_minor,
                                "packages": [[p.name, p.version, list(p.hashes)] for p in self.packages]},
                               separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

    def version_of(self, name: str) -> str | None:
        wanted = normalise_name(name)
        return next((p.version for p in self.packages if p.name == wanted), None)

    def requirements_txt(self) -> str:
        """The lock as a pip/uv requirements file (``--hash`` options where known)."""
        lines = []
        for p in self.packages:
            lines.append(" ".join([p.pin, *(f"--hash={h}" for h in p.hashes)]))
        return "\n".join(lines) + ("\n" if lines else "")

    def to_json(self) -> dict[str, Any]:
        return {"python": self.python, "source": self.source.value, "digest": self.digest,
                "packages": [{"name": p.name, "version": p.version, "hashes": list(p.hashes)}
                             for p in self.packages]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EnvironmentLock:
        """The lock of a stored record (``digest`` is recomputed, never trusted)."""
        try:
            packages = [LockedPackage(str(p["name"]), str(p["version"]), tuple(str(h) for h in p.get("hashes") or ()))
                        for p in data.get("packages") or ()]
            return cls.of(str(data["python"]), packages, str(data.get("source") or LockSource.USER.value))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            if isinstance(exc, InvalidInput):
                raise
            raise InvalidInput(f"lock: malformed record ({exc!s})") from None


def parse_requirements(text: str, *, python: str, source: LockSource | str = LockSource.USER) -> EnvironmentLock:
    """A lock from a requirements file of exact pins (``pip freeze``, ``uv pip compile
    --generate-hashes``, MLflow's ``requirements.txt``).

    Every requirement must be ``name==version`` (extras and environment markers are accepted;
    markers are kept out of the lock); ``--hash=`` options attach to their pin, across ``\\``
    continuation lines. Anything else (ranges, URLs, ``-e``) is refused with the line named, since
    a lock that does not pin cannot be reproduced.
    """
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.split(" #")[0].strip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            logical.append(line)
    if pending.strip():
        logical.append(pending.strip())
    packages = []
    for line in logical:
        words = line.split()
        hashes = [w.split("=", 1)[1] for w in words if w.startswith("--hash=")]
        requirement = " ".join(w for w in words if not w.startswith("--hash="))
        if not requirement:
            continue
        if requirement.startswith("-"):
            if requirement.startswith(("--index-url", "--extra-index-url", "--find-links", "-i ", "-f ")):
                continue  # where to find packages is the installer's business, not the lock's
            raise InvalidInput(f"lock: {requirement!r} is not supported in a lock; list exact pins (name==version)")
        match = _PIN.match(requirement)
        if match is None:
            raise InvalidInput(f"lock: {requirement!r} is not an exact pin (name==version); "
                               "resolve it first, e.g. with `uv pip compile --generate-hashes`")
        packages.append(LockedPackage(match.group(1), match.group(3), tuple(hashes)))
    return EnvironmentLock.of(python, packages, source)


def lock_of(environment: Mapping[str, Any]) -> EnvironmentLock | None:
    """The lock recorded in a version's ``environment``, if any."""
    record = environment.get(LOCK_KEY)
    return EnvironmentLock.from_json(record) if isinstance(record, Mapping) else None


def with_lock(environment: Mapping[str, Any], lock: EnvironmentLock) -> dict[str, Any]:
    """``environment`` with ``lock`` recorded (replacing any earlier one)."""
    return {**environment, LOCK_KEY: lock.to_json()}
