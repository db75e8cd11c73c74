"""Fixtures for the model-server tests: small models trained here, and real ``pier serve`` processes.

Servers start on free loopback ports and are waited for by polling ``/v2/health/ready`` (or the
process's exit); they are stopped with SIGTERM by the PID we started. The ``gated`` python model
makes timing deterministic: a request whose value is 200+k blocks until the test creates the file
``gate-k`` in the model's folder, and loading blocks while ``load-gate-path`` names a missing file.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import httpx
import pytest

from tests.support.procs import BIN, free_port, pier_env, wait_until
from tests.support.watchdog import watch

GATED_MODEL = '''
import time
from pathlib import Path

import numpy as np


class Gated:
    def load(self, path):
        self.folder = Path(path)
        marker = self.folder / "load-gate-path"
        if marker.exists():
            gate = Path(marker.read_text())
            while not gate.exists():
                time.sleep(0.02)

    def predict(self, inputs):
        x = np.asarray(inputs["x"], dtype=float)
        if (x == -1).any():
            raise RuntimeError("the model hit a bug")
        for value in x.ravel():
            if value >= 200:
                gate = self.folder / f"gate-{int(value) - 200}"
                while not gate.exists():
                    time.sleep(0.01)
        return {"y": x * 2}
'''


def write_gated_model(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.py").write_text(GATED_MODEL)
    (folder / "python-model.json").write_text(json.dumps({"class": "Gated"}))
    return folder


@pytest.fixture(scope="session")
def iris_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    path = tmp_path_factory.mktemp("models") / "iris.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), path)
    return path


@cache
def serve_command() -> list[str]:
    """``pier serve`` once the CLI registers it; ``python -m modelpier.server`` (same options) until then."""
    probe = subprocess.run([str(BIN / "pier"), "serve", "--help"], capture_output=True, text=True, check=False)
    if probe.returncode == 0 and "--http-port" in probe.stdout:
        return [str(BIN / "pier"), "serve"]
    return [sys.executable, "-m", "modelpier.server"]


@dataclass
class Served:
    url: str
    grpc: str
    proc: subprocess.Popen[bytes]
    log: Path

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample on /metrics (0 when absent)."""
        want = ",".join(f'{k}="{v}"' for k, v in labels.items())
        for line in httpx.get(f"{self.url}/metrics").text.splitlines():
            if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(f"{name} ")):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@contextmanager
def start_server(models: list[str], home: Path, *args: str, wait_ready: bool = True,
                 env: dict[str, str] | None = None, ready_timeout: float = 60) -> Iterator[Served]:
    http, grpc = free_port(), free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = home / f"serve-{http}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*serve_command(), *models, "--http-port", str(http), "--grpc-port", str(grpc), *args],
            env=pier_env(home, **(env or {})), stdout=out, stderr=subprocess.STDOUT)
    served = Served(url=f"http://127.0.0.1:{http}", grpc=f"127.0.0.1:{grpc}", proc=proc, log=log)
    guard = watch(proc.pid)  # stopped even when the test run is interrupted
    try:
        wait_until(lambda: proc.poll() is not None or _answers(f"{served.url}/v2/health/live"),
                   timeout=60, what="the server to listen")
        if wait_ready:
            wait_until(lambda: proc.poll() is not None or _answers(f"{served.url}/v2/health/ready"),
                       timeout=ready_timeout, what="the server to be ready")
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}:\n{log.read_text()}")
        yield served
    finally:
        served.stop()
        guard.release()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def eventually(condition: Callable[[], bool], what: str) -> None:
    wait_until(condition, timeout=30, what=what)
