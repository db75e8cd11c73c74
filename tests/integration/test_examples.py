"""The examples in examples/ and the README's commands run as documented."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.procs import BIN, free_port, http_ok, pier_env, run_pier, wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_example_runs(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")], env=pier_env(tmp_path),
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert "registered forest:1" in r.stdout
    assert "('input-0', 'FP64', [-1, 4])" in r.stdout
    assert "predictions match" in r.stdout
    listed = json.loads(run_pier(["models", "list", "-o", "json"], tmp_path, check=True).stdout)
    assert [m["name"] for m in listed] == ["forest"]


def test_pier_up_registers_the_example_and_prints_where_to_look(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "up.log"
    with out.open("w") as log:
        proc = subprocess.Popen([str(BIN / "pier"), "up", "--port", str(port)], env=pier_env(tmp_path),
                                stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is not None or f"{url}/docs" in out.read_text(), timeout=120,
                   what="pier up to print its URLs")
        assert proc.poll() is None, out.read_text()

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/api/v1/models/iris/versions/production", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, what="iris:production on the control plane")
        version = httpx.get(f"{url}/api/v1/models/iris/versions/production").json()
        assert version["flavor"] == "sklearn"
        assert version["signature"]["inputs"][0]["shape"] == [-1, 4]
        assert re.search(r"curl .*/api/v1/models", out.read_text())
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    # A second start finds the example instead of registering a duplicate.
    with out.open("w") as log:
        proc = subprocess.Popen([str(BIN / "pier"), "up", "--port", str(port)], env=pier_env(tmp_path),
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: proc.poll() is not None or f"{url}/docs" in out.read_text(), timeout=120,
                   what="the second pier up")
        wait_until(http_ok(f"{url}/healthz"), what="health")
        assert len(httpx.get(f"{url}/api/v1/models/iris/versions").json()) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=20)
