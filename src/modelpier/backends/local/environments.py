"""Isolated environments: a virtualenv per version lock, built with ``uv``, cached and shared.

``plan_environment(lock, serving)`` (pure) decides what goes into the environment: the lock's pins,
plus the model server's own dependencies at the versions running here for the packages the lock does
not pin (the lock wins: it is what the model needs). The plan's ``key`` (a digest of both) names the
folder ``$PIER_HOME/envs/<key>``; every replica and ``pier serve --isolated`` needing the same plan
shares it. ``EnvironmentCache.ensure`` builds a missing one under an exclusive file lock in a staging
folder (``uv venv --relocatable`` then ``uv pip install``) and renames it into place with a completion
marker, so concurrent builders wait for one build and nobody sees a half-built environment.

modelpier itself is not installed into the environment: the server runs from this installation's
package folder, put on ``PYTHONPATH`` through a folder holding only a link to it (``serve_env``), so no
network, wheel build or copy is needed and this process's site-packages stay out of the environment.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

import modelpier
from modelpier._lib.ids import new_id
from modelpier.errors import InvalidSpec
from modelpier.registry.lock import EnvironmentLock, normalise_name
from modelpier.runtimes.locking import installed_closure

log = logging.getLogger("modelpier.backends.local")

_READY = ".pier-ready"
ISOLATED_ENV_VAR = "PIER_ISOLATED_ENV"  # set in an isolated server: the key of the environment it runs in


@dataclass(frozen=True, slots=True)
class EnvironmentPlan:
    key: str  # 16 hex characters: the cache folder's name
    python: str  # major.minor the virtualenv is built for
    requirements: str  # a requirements file for ``uv pip install``
    lock_digest: str


def plan_environment(lock: EnvironmentLock, serving: Mapping[str, str]) -> EnvironmentPlan:
    """The environment of ``lock``, with ``serving`` (name -> version) for what the lock leaves out."""
    pinned = {p.name for p in lock.packages}
    extra = {normalise_name(n): v for n, v in serving.items() if normalise_name(n) not in pinned}
    lines = lock.requirements_txt() + "".join(f"{n}=={v}\n" for n, v in sorted(extra.items()))
    key = hashlib.sha256(f"{lock.digest}\n{sorted(extra.items())}".encode()).hexdigest()[:16]
    return EnvironmentPlan(key=key, python=lock.python_minor, requirements=lines, lock_digest=lock.digest)


def serving_requirements() -> dict[str, str]:
    """The model server's own dependencies, transitively, at the versions installed here."""
    # packaging is read here too: an editable install's metadata predates it as a dependency.
    roots: list[tuple[str, frozenset[str]]] = [("packaging", frozenset())]
    for line in metadata.requires("modelpier") or []:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            roots.append((requirement.name, frozenset(requirement.extras)))
    closure = installed_closure(roots)
    closure.pop("modelpier", None)
    return closure


def uv_binary() -> str:
    """The ``uv`` executable: next to this interpreter (the ``uv`` PyPI package), else on PATH."""
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file():
        return str(beside)
    found = shutil.which("uv")
    if found is None:
        raise InvalidSpec("isolated serving needs uv: pip install 'modelpier[isolation]'")
    return found


class EnvironmentCache:
    """Virtualenvs under ``root`` by plan key; safe for concurrent processes (file lock + rename)."""

    def __init__(self, root: Path, *, uv: str | None = None, timeout_s: float = 900.0) -> None:
        self.root = root
        self._uv = uv
        self._timeout_s = timeout_s

    def path(self, plan: EnvironmentPlan) -> Path:
        return self.root / plan.key

    def python(self, plan: EnvironmentPlan) -> Path:
        return self.path(plan) / "bin" / "python"

    def is_built(self, plan: EnvironmentPlan) -> bool:
        return (self.path(plan) / _READY).is_file()

    def ensure(self, plan: EnvironmentPlan) -> Path:
        """The environment's folder, built first when missing (blocks while another process builds it)."""
        target = self.path(plan)
        if (target / _READY).is_file():
            return target
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / f"{plan.key}.lock").open("w") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)  # one builder per key; the others wait, then find it built
            if (target / _READY).is_file():
                return target
            self._build(plan, target)
        return target

    def _build(self, plan: EnvironmentPlan, target: Path) -> None:
        uv = self._uv or uv_binary()
        staging = self.root / f".staging-{plan.key}-{new_id(4)}"
        started = time.monotonic()
        log.info("building environment %s (python %s, lock %s)", plan.key, plan.python, plan.lock_digest[:19])
        try:
            here = f"{sys.version_info[0]}.{sys.version_info[1]}"
            python = sys.executable if plan.python == here else plan.python
            self._run([uv, "venv", "--relocatable", "--python", python, str(staging)], plan)
            requirements = staging / "pier-requirements.txt"
            requirements.write_text(plan.requirements)
            # --compile-bytecode: replicas start from .pyc files instead of compiling every module of the
            # environment on each start (with PYTHONDONTWRITEBYTECODE they would never be written).
            self._run([uv, "pip", "install", "--compile-bytecode", "--python", str(staging / "bin" / "python"),
                       "-r", str(requirements)], plan)
            (staging / _READY).write_text(plan.lock_digest + "\n")
            if target.exists():  # a leftover without its marker (a crash mid-rename): replace it
                shutil.rmtree(target)
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("environment %s built in %.1fs", plan.key, time.monotonic() - started)

    def _run(self, argv: list[str], plan: EnvironmentPlan) -> None:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self._timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise InvalidSpec(f"building environment {plan.key} took longer than {self._timeout_s:g}s") from None
        if done.returncode != 0:
            raise InvalidSpec(f"cannot build the environment of lock {plan.lock_digest[:19]}…: "
                              f"{_uv_reason(done.stderr)}", details={"environment": plan.key})


def _uv_reason(stderr: str) -> str:
    """uv's explanation, without colour codes and hints: it names the package that cannot be installed."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", stderr)
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("hint:")]
    return " ".join(lines[-6:]) or "uv failed"


def modelpier_path_entry(cache_root: Path) -> Path:
    """A folder holding only a link to this installation's ``modelpier`` package: the ``PYTHONPATH``
    entry that lets an environment run this very modelpier without installing it."""
    package = Path(modelpier.__file__).resolve().parent
    entry = cache_root / "_modelpier" / hashlib.sha256(str(package).encode()).hexdigest()[:12]
    link = entry / "modelpier"
    if not link.exists():
        entry.mkdir(parents=True, exist_ok=True)
        temporary = entry / f".modelpier-{new_id(4)}"
        temporary.symlink_to(package, target_is_directory=True)
        os.replace(temporary, link)  # atomic: concurrent creators all end with the same link
    return entry


def serve_env(base: Mapping[str, str], cache_root: Path, plan: EnvironmentPlan) -> dict[str, str]:
    """The environment variables of a server process run in ``plan``'s environment."""
    env = dict(base)
    env["PYTHONPATH"] = str(modelpier_path_entry(cache_root))
    env[ISOLATED_ENV_VAR] = plan.key
    env.pop("PYTHONHOME", None)
    return env
