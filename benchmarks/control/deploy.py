"""Benchmark: time from ``pier deploy -f spec.yaml --wait`` to the first successful prediction
through the gateway, for the iris model (target < 3 s) and for a python model with a 1 GiB weights
file (target < 10 s per GiB: the blob is local and streamed).

Run: .venv/bin/python benchmarks/control/deploy.py [--rounds 3] [--case iris|big|all]

A throwaway ``PIER_HOME`` gets iris:1 (scikit-learn) and big:1 (1 GiB of random bytes read at load),
then a real ``pier up --no-example``. Each round deploys a fresh deployment (so a new replica process
starts), times ``--wait`` returning and the first 200 through the gateway, then deletes it. Before
each big round the version's cache folder is removed, so every round pays the cold start
(materialize = copy + verify the blob) as a first deploy would. The materialize step is also timed
on its own, next to a plain copy of the same blob, to show where the time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
GIB = 1024**3

BIG_MODEL = '''
import os

import numpy as np


class Big:
    def load(self, path):
        weights = os.path.join(path, "weights.bin")
        self.size = 0
        with open(weights, "rb", buffering=0) as f:  # read every byte, as loading real weights would
            buf = bytearray(16 * 1024 * 1024)
            while n := f.readinto(buf):
                self.size += n

    def predict(self, inputs):
        return {name: np.asarray(value) for name, value in inputs.items()}
'''

IRIS_BODY = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
BIG_BODY = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIER_")}
    env.update(PIER_HOME=str(home), PIER_USER="bench", PIER_LOG_LEVEL="warning",
               PIER_PLATFORM__REPLICA_PORT_MIN="36000", PIER_PLATFORM__REPLICA_PORT_MAX="36199")
    return env


def save_models(home: Path, big: bool) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import modelpier
    from modelpier.settings import load_settings

    settings = load_settings(home=home)
    x, y = load_iris(return_X_y=True)
    x = x.astype("float32")
    modelpier.save_model("iris", LogisticRegression(max_iter=300).fit(x, y), input_example=x[:2], settings=settings)
    if big:
        folder = home / "big-src"
        folder.mkdir()
        (folder / "model.py").write_text(BIG_MODEL)
        (folder / "python-model.json").write_text(json.dumps({"class": "Big"}))
        with (folder / "weights.bin").open("wb") as f:
            for _ in range(64):
                f.write(os.urandom(16 * 1024 * 1024))
        modelpier.save_model("big", folder, flavor="python", settings=settings)
        shutil.rmtree(folder)


def materialize_breakdown(home: Path) -> dict[str, float]:
    """Cold ``materialize`` of big:1 vs a plain copy of its blob (both from the page cache)."""
    from modelpier.registry.factory import build_registry
    from modelpier.settings import load_settings

    registry = build_registry(load_settings(home=home))
    try:
        version = registry.resolve("big:1")
        shutil.rmtree(registry.cache_dir / "big", ignore_errors=True)
        start = time.perf_counter()
        registry.materialize(version)
        materialize = time.perf_counter() - start
        blob = max((p for p in (home / "blobs").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
        start = time.perf_counter()
        shutil.copyfile(blob, home / "copy.bin")
        copy = time.perf_counter() - start
        (home / "copy.bin").unlink()
        return {"materialize_s": materialize, "plain_copy_s": copy}
    finally:
        registry.close()


def deploy_once(home: Path, env: dict[str, str], *, api: str, gateway: str, name: str, model: str,
                body: dict[str, object]) -> tuple[float, float]:
    spec = home / f"{name}.yaml"
    spec.write_text(f"apiVersion: modelpier.io/v1alpha1\nkind: ModelDeployment\nmetadata: {{name: {name}}}\n"
                    f"spec: {{predictors: [{{name: main, model: '{model}', replicas: 1}}]}}\n")
    served = model.split(":", maxsplit=1)[0]
    start = time.perf_counter()
    done = subprocess.run([str(BIN / "pier"), "deploy", "-f", str(spec), "--wait", "--remote", api],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    waited = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"pier deploy failed: {done.stdout}\n{done.stderr}")
    with httpx.Client(timeout=10) as client:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            r = client.post(f"{gateway}/default/{name}/v2/models/{served}/infer", json=body)
            if r.status_code == 200:
                break
            time.sleep(0.01)
        else:
            raise RuntimeError(f"no prediction from {name}: {r.status_code} {r.text}")
    first = time.perf_counter() - start
    # Through the CLI, as the deploy went: it carries the platform's credentials (the API refuses anonymous
    # writes); the deployment is gone once the gateway no longer knows it.
    deleted = subprocess.run([str(BIN / "pier"), "delete", "deployment", name, "--remote", api], env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    if deleted.returncode != 0:
        raise RuntimeError(f"pier delete failed: {deleted.stdout}\n{deleted.stderr}")
    deadline = time.monotonic() + 60
    while httpx.post(f"{gateway}/default/{name}/v2/models/{served}/infer", json=body, timeout=10).status_code != 404:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} not deleted")
        time.sleep(0.05)
    return waited, first


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--case", choices=["iris", "big", "all"], default="all")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="pier-bench-deploy-"))
    env = env_for(home)
    big = args.case in ("big", "all")
    save_models(home, big)
    api_port, gw_port = free_port(), free_port()
    api, gateway = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{gw_port}"
    log = (home / "up.log").open("ab")
    up = subprocess.Popen([str(BIN / "pier"), "up", "--no-example", "--port", str(api_port), "--gateway-port",
                           str(gw_port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{gateway}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or up.poll() is not None:
                raise RuntimeError((home / "up.log").read_text())
            time.sleep(0.05)
        cases = [("iris", "iris:1", IRIS_BODY)] * (args.case in ("iris", "all"))
        cases += [("big", "big:1", BIG_BODY)] * big
        results: dict[str, dict[str, list[float]]] = {c: {"wait": [], "first": []} for c, _, _ in cases}
        for i in range(args.rounds):
            for case, model, body in cases:  # interleaved, so noise hits both alike
                if case == "big":
                    shutil.rmtree(home / "cache" / "big", ignore_errors=True)
                waited, first = deploy_once(home, env, api=api, gateway=gateway, name=f"{case}-{i}", model=model,
                                            body=body)
                results[case]["wait"].append(waited)
                results[case]["first"].append(first)
                print(f"round {i + 1} {case}: --wait returned after {waited:.2f}s, first prediction at {first:.2f}s",
                      flush=True)
        for case, r in results.items():
            print(f"{case}: median --wait {statistics.median(r['wait']):.2f}s, median deploy-to-first-prediction "
                  f"{statistics.median(r['first']):.2f}s over {args.rounds} rounds")
        if big:
            parts = [materialize_breakdown(home) for _ in range(args.rounds)]
            print("big:1 cold materialize {:.2f}s vs plain copy of the blob {:.2f}s (medians)".format(
                statistics.median(p["materialize_s"] for p in parts),
                statistics.median(p["plain_copy_s"] for p in parts)))
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=60)
        subprocess.run([str(BIN / "pier"), "down", "--grace-s", "10"], env=env, capture_output=True, timeout=120,
                       check=False)
        log.close()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
