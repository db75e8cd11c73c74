"""Helpers for tests that run the platform (``pier up``) and models in a throwaway ``PIER_HOME``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.procs import ADMIN_HEADERS, BIN, free_port, pier_env, wait_until

# Loads fine when saved (the SDK loads a model to check it), fails inside the model server.
BROKEN_MODEL = '''
import sys


class Broken:
    def load(self, path):
        if "server" in sys.argv[0]:
            raise RuntimeError("this model cannot load: weights are corrupt")

    def predict(self, inputs):
        return inputs
'''

V2_BODY = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}


def save_models(home: Path) -> None:
    """iris:1 and iris:2 (different sklearn models) and broken:1 (raises on load)."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import modelpier
    from modelpier.settings import load_settings

    settings = load_settings(home=home)
    x, y = load_iris(return_X_y=True)
    x = x.astype("float32")
    for c in (1.0, 0.5):
        modelpier.save_model("iris", LogisticRegression(C=c, max_iter=300).fit(x, y), input_example=x[:2],
                             settings=settings)
    folder = home / "broken-src"
    folder.mkdir()
    (folder / "model.py").write_text(BROKEN_MODEL)
    (folder / "python-model.json").write_text(json.dumps({"class": "Broken"}))
    modelpier.save_model("broken", folder, flavor="python", settings=settings)


def replica_env(low: int) -> dict[str, str]:
    return {"PIER_PLATFORM__REPLICA_PORT_MIN": str(low), "PIER_PLATFORM__REPLICA_PORT_MAX": str(low + 199),
            "PIER_PLATFORM__RECONCILE_INTERVAL_S": "0.2", "PIER_PLATFORM__STOP_GRACE_S": "10",
            "PIER_CONTROL__ALIAS_POLL_SECONDS": "0.5",
            # The gateway's gRPC port: a free one, not 8701, so platforms of parallel test runs do not collide.
            "PIER_GATEWAY__GRPC_PORT": str(free_port()),
            "PIER_LOG_LEVEL": "info"}


@dataclass
class Platform:
    home: Path
    api: str
    gateway: str
    proc: subprocess.Popen[bytes]
    env: dict[str, str]

    def deployment(self, name: str, **spec: Any) -> str:
        return f"{self.api}/api/v1/projects/default/deployments/{name}"

    def apply(self, name: str, predictors: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
        document = {"apiVersion": "modelpier.io/v1alpha1", "kind": "ModelDeployment",
                    "metadata": {"name": name}, "spec": {"predictors": predictors, **spec}}
        response = httpx.put(self.deployment(name), json=document, timeout=30, headers=ADMIN_HEADERS)
        assert response.status_code in (200, 201), response.text
        return dict(response.json())

    def status(self, name: str) -> dict[str, Any]:
        return dict(httpx.get(self.deployment(name) + "/status", timeout=10, headers=ADMIN_HEADERS).json())

    def events(self, name: str) -> list[dict[str, Any]]:
        return list(httpx.get(self.deployment(name) + "/events", timeout=10, headers=ADMIN_HEADERS).json())

    def condition(self, name: str, kind: str) -> dict[str, Any]:
        return next(c for c in self.status(name)["conditions"] if c["type"] == kind)

    def wait_ready(self, name: str, replicas: int, *, revision: int | None = None, timeout: float = 60) -> None:
        def ready() -> bool:
            s = self.status(name)
            return (s.get("readyReplicas") == replicas and s.get("observedRevision") is not None
                    and (revision is None or s.get("observedRevision") == revision)
                    and s.get("observedRevision") == s.get("desiredRevision")
                    and any(c["type"] == "Ready" and c["status"] == "True" for c in s["conditions"]))
        wait_until(ready, timeout=timeout, what=f"{name} ready with {replicas} replicas")

    def gateway_pid(self) -> int:
        return int(json.loads((self.home / "gateway.json").read_text())["pid"])

    def replica_pids(self, name: str | None = None) -> dict[str, int]:
        state = json.loads((self.home / "replicas" / "state.json").read_text())
        return {r["replica_id"]: r["pid"] for r in state["replicas"] if name in (None, r["spec"]["deployment"])}

    def infer(self, name: str, client: httpx.Client | None = None) -> httpx.Response:
        post = client.post if client else httpx.post
        return post(f"{self.gateway}/default/{name}/v2/models/iris/infer", json=V2_BODY, timeout=10)


@contextmanager
def run_platform(home: Path, env: dict[str, str], *, api_port: int | None = None,
                 gw_port: int | None = None) -> Iterator[Platform]:
    """``pier up`` until the context exits (SIGTERM); the gateway and replicas it started keep running
    (``pier_down`` stops them). Pass the ports of an earlier run to restart the same platform."""
    api_port, gw_port = api_port or free_port(), gw_port or free_port()
    log = (home / "up.log").open("ab")
    proc = subprocess.Popen([str(BIN / "pier"), "up", "--no-example", "--port", str(api_port),
                             "--gateway-port", str(gw_port)], env=pier_env(home, **env), stdout=log,
                            stderr=subprocess.STDOUT)
    platform = Platform(home, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{gw_port}", proc, env)

    def up() -> bool:
        try:
            return (httpx.get(f"{platform.api}/healthz", timeout=1).status_code == 200
                    and httpx.get(f"{platform.gateway}/healthz", timeout=1).status_code == 200)
        except httpx.TransportError:
            return proc.poll() is not None
    try:
        wait_until(up, timeout=60, what="pier up")
        assert proc.poll() is None, (home / "up.log").read_text()
        yield platform
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def pier_down(home: Path, env: dict[str, str]) -> None:
    """``pier down``, then SIGKILL by recorded pid whatever survived it (so a failing ``pier down``
    cannot leak processes into the next test run; the assertion still fails the test)."""
    from tests.support.procs import run_pier

    result = run_pier(["down", "--grace-s", "10"], home, timeout=120, **env)
    pids = [json.loads(path.read_text())["pid"] for path in (home / "gateway.json", home / "platform.json")
            if path.exists()]
    state = home / "replicas" / "state.json"
    if state.exists():
        pids += [r["pid"] for r in json.loads(state.read_text())["replicas"]]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not pids, f"pier down left records of pids {pids}"


@dataclass
class Load:
    """A background loop of predictions through the gateway, until stopped (bounded by ``limit``)."""

    platform: Platform
    name: str
    limit: int = 20_000
    failures: list[str] = field(default_factory=list)
    versions: Counter[str] = field(default_factory=Counter)
    revisions: Counter[str] = field(default_factory=Counter)
    count: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        with httpx.Client() as client:
            while not self._stop.is_set() and self.count < self.limit:
                self.count += 1
                try:
                    r = self.platform.infer(self.name, client)
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                if r.status_code != 200:
                    self.failures.append(f"{r.status_code}: {r.text}")
                    continue
                self.versions[r.json()["model_version"]] += 1
                self.revisions[r.headers["x-pier-revision"]] += 1

    def __enter__(self) -> Load:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        wait_until(lambda: self.count >= 20 or not self._thread or not self._thread.is_alive(), what="load")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)


# Loads and answers, but slowly: requests stay in flight long enough to fill a limit or outlive a gateway.
SLOW_MODEL = '''
import time


class Slow:
    def load(self, path):
        pass

    def predict(self, inputs):
        time.sleep(0.4)
        return inputs
'''
# Loads, then fails every prediction: a shadow that never answers well.
FAILING_MODEL = '''
class Failing:
    def load(self, path):
        pass

    def predict(self, inputs):
        raise RuntimeError("this model always fails")
'''


def save_python_model(home: Path, name: str, source: str, cls: str) -> None:
    """Save ``source`` (defining class ``cls``) as a python-flavor model ``name`` in ``home``'s registry."""
    import modelpier
    from modelpier.settings import load_settings

    folder = home / f"{name}-src"
    folder.mkdir()
    (folder / "model.py").write_text(source)
    (folder / "python-model.json").write_text(json.dumps({"class": cls}))
    modelpier.save_model(name, folder, flavor="python", settings=load_settings(home=home))
