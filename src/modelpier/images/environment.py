"""The environment layer's content: what to install, and installing it for the base's Python.

``locked_requirements`` is the one place that reads a version's pins: its lock
(``ModelVersion.lock``: the exact pins of the saving environment, of MLflow's ``requirements.txt``
or of a user's file), else, for versions stored before locks, the ``requirements`` pins of its
environment record. Hashes of a lock are not passed on: modelpier's own dependencies are installed
in the same run, and pip's hash checking is all or nothing. ``install`` runs pip
for the image's platform (manylinux x86_64, the base's Python version, wheels only) into a
``--target`` folder, never running the base's interpreter, so building needs no container. The
modelpier layer's package files come from the installed ``modelpier`` itself.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Final

from modelpier.errors import InvalidArtifact, InvalidInput
from modelpier.registry.domain import ModelVersion

_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;#]+)\s*(;.*)?$")
_EXTRA = re.compile(r"\bextra\s*==")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
# glibc of every base modelpier supports (Debian bookworm has 2.36); pip takes the newest that fits.
PLATFORMS: Final = ("manylinux2014_x86_64", *(f"manylinux_2_{n}_x86_64" for n in range(17, 37)))
# Whole test suites of numpy, scipy, scikit-learn... are a third of their size and never imported.
STRIPPED_DIRS: Final = ("tests", "__pycache__")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_requirements(version: ModelVersion) -> tuple[str, ...]:
    """The exact pins a version's image installs, sorted. Unpinned lines are refused: an image must
    not depend on what an index serves on the day it is built."""
    lock = version.lock
    if lock is not None:
        return tuple(sorted(lock.pins, key=normalise))
    lines = [str(line).strip() for line in version.environment.get("requirements") or () if str(line).strip()]
    loose = [line for line in lines if not _PIN.match(line)]
    if loose:
        raise InvalidArtifact(f"model {version.ref} records requirements without an exact pin ({', '.join(loose)}); "
                              f"an image needs name==version for each",
                              details={"requirements": loose})
    return tuple(sorted(lines, key=normalise))


def declared_requirements() -> dict[str, list[str]]:
    """modelpier's requirements by extra (``""``: the core): from ``pyproject.toml`` when modelpier
    runs from a source checkout (the installed metadata of an editable install goes stale), else
    from the installed distribution's metadata."""
    import modelpier

    pyproject = Path(modelpier.__file__).resolve().parents[2] / "pyproject.toml"
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text()).get("project", {})
        if project.get("name") == "modelpier":
            return {"": list(project.get("dependencies", [])), **project.get("optional-dependencies", {})}
    by_extra: dict[str, list[str]] = {}
    for requirement in metadata.requires("modelpier") or []:
        spec, _, marker = requirement.partition(";")
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
        by_extra.setdefault(extra.group(1) if extra else "", []).append(spec.strip() if extra else requirement.strip())
    return by_extra


def modelpier_requirements(extras: Iterable[str] = ()) -> tuple[str, ...]:
    """modelpier's own dependencies as it declares them (ranges), plus those of ``extras``
    (``modelpier[a,b]`` inside an extra is expanded)."""
    declared = declared_requirements()
    unknown = sorted(set(extras) - set(declared) - {""})
    if unknown:
        known = ", ".join(sorted(k for k in declared if k))
        raise InvalidInput(f"modelpier has no extra {unknown[0]!r}; it has {known}")
    found: dict[str, None] = {}
    pending, seen = ["", *extras], set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in declared.get(extra, []):
            own = re.match(r"^modelpier\[([^\]]*)\]", requirement.strip())
            if own:
                pending.extend(e.strip() for e in own.group(1).split(","))
            else:
                found[requirement.strip()] = None
    return tuple(sorted(found, key=normalise))


def host_constraints(pinned: Iterable[str]) -> tuple[str, ...]:
    """``name==version`` of every distribution installed here, except modelpier and those the
    model pins itself: what the image gets where the model says nothing (reproducible, and the
    versions modelpier is tested with)."""
    skip = {"modelpier"} | {normalise(m.group(1)) for line in pinned if (m := _PIN.match(line))}
    out = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and normalise(name) not in skip:
            out[normalise(name)] = f"{normalise(name)}=={dist.version}"
    return tuple(out[k] for k in sorted(out))


def environment_key(requirements: Iterable[str], constraints: Iterable[str], python_version: str) -> str:
    """The cache key of an environment layer: everything that decides its content."""
    body = {"requirements": list(requirements), "constraints": list(constraints), "python": python_version,
            "platforms": list(PLATFORMS), "stripped": list(STRIPPED_DIRS), "format": 3}
    return "sha256:" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def install(requirements: Iterable[str], constraints: Iterable[str], python_version: str, target: Path,
            work: Path) -> None:
    """pip-install wheels for the image's platform into ``target`` (a site-packages folder)."""
    work.mkdir(parents=True, exist_ok=True)
    req_file, con_file = work / "requirements.txt", work / "constraints.txt"
    req_file.write_text("".join(f"{r}\n" for r in requirements))
    con_file.write_text("".join(f"{c}\n" for c in constraints))
    argv = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
            "--no-warn-script-location", "--target", str(target), "--only-binary=:all:", "--implementation", "cp",
            "--python-version", python_version, *(a for p in PLATFORMS for a in ("--platform", p)),
            "-r", str(req_file), "-c", str(con_file)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)  # our own argv
    if done.returncode != 0:
        raise InvalidArtifact("installing the environment for the image failed; pip said:\n"
                              + (done.stderr.strip() or done.stdout.strip())[-3000:])
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts with this machine's interpreter
    strip(target)


def strip(site_packages: Path) -> None:
    """Leave out test suites and the byte code pip left. Shared libraries are kept as they are:
    binutils' ``strip`` breaks the libraries auditwheel patched (numpy's OpenBLAS then fails to
    load: "ELF load command address/offset not page-aligned")."""
    for name in STRIPPED_DIRS:
        for found in sorted(site_packages.rglob(name), reverse=True):
            if found.is_dir() and not found.is_symlink():
                shutil.rmtree(found, ignore_errors=True)


def compile_bytecode(folder: Path, python_version: str, installed_at: str) -> None:
    """Byte-compile ``folder`` with hash-based ``.pyc`` (no timestamps: reproducible, and valid on a
    read-only root file system), when this interpreter is the base's version; else leave it to the
    image's Python at run time. ``installed_at`` is the folder's path in the image: tracebacks name
    it, and the byte code must not depend on where the builder staged it."""
    if python_version != f"{sys.version_info.major}.{sys.version_info.minor}":
        return
    argv = [sys.executable, "-m", "compileall", "-q", "-j", "1", "--invalidation-mode", "unchecked-hash",
            "-s", str(folder), "-p", installed_at, str(folder)]
    # A file that does not compile (a Python 2 leftover in some wheel) is left as source.
    subprocess.run(argv, capture_output=True, check=False)


def modelpier_source() -> tuple[Path, str]:
    """The installed ``modelpier`` package folder and a digest of its source files (the modelpier
    layer's cache key: the layer is rebuilt only when modelpier's code changes)."""
    import modelpier

    source = Path(modelpier.__file__).parent
    sha = hashlib.sha256(metadata.version("modelpier").encode() + "\n".join(modelpier_requirements()).encode())
    for file in sorted(source.rglob("*")):
        if file.is_file() and "__pycache__" not in file.parts and file.suffix != ".pyc":
            sha.update(f"\0{file.relative_to(source).as_posix()}\0{file.stat().st_mode & 0o111}\0".encode())
            sha.update(file.read_bytes())
    return source, "sha256:" + sha.hexdigest()


def stage_modelpier(source: Path, python_version: str, staging: Path, installed_at: str) -> None:
    """Copy the package into ``staging`` (as site-packages holds it) with its dist-info, compiled."""
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging / "modelpier", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    version = metadata.version("modelpier")
    info = staging / f"modelpier-{version}.dist-info"
    info.mkdir()
    requires = "".join(f"Requires-Dist: {r}\n" for r in modelpier_requirements())
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: modelpier\nVersion: {version}\n{requires}")
    (info / "entry_points.txt").write_text("[console_scripts]\npier = modelpier.cli.main:main\n")
    (info / "INSTALLER").write_text("pier-build-image\n")
    compile_bytecode(staging, python_version, installed_at)


def check_python(version: ModelVersion, python_version: str) -> str | None:
    """A warning when the model was saved with another Python minor version than the base has."""
    lock = version.lock
    saved = lock.python if lock is not None else str(version.environment.get("python") or "")
    if saved and ".".join(saved.split(".")[:2]) != python_version:
        return (f"model {version.ref} was saved with Python {saved}; the base image has {python_version}: "
                f"its pins must have wheels for {python_version}")
    return None
