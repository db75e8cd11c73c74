"""Start-up of an isolated replica (``pier serve --isolated``) on a warm environment cache vs a plain one.

    .venv/bin/python benchmarks/serving/isolated_startup.py            # 7 interleaved rounds
    .venv/bin/python benchmarks/serving/isolated_startup.py --rounds 3

What it does: saves an iris LogisticRegression in a throwaway PIER_HOME (its lock: this venv's
scikit-learn and what it needs), builds its environment once with uv (timed: the cold build), then
for each round starts ``python -m modelpier.server iris`` without and with ``--isolated`` (order
alternating), timing spawn to the first 200 of ``/v2/health/ready``, and stops it. The difference of
the medians is the extra start-up of isolation on a warm cache: resolving the version and its lock,
finding the environment, and exec-ing the server in it (the environment's own imports included); a
third kind starts the environment's Python directly, as the local backend does for a replica whose
environment is already built.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from modelpier.backends.local.environments import EnvironmentCache, serve_env
from modelpier.cli.isolation import plan_for
from modelpier.settings import load_settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_to_ready(env: dict[str, str], *extra: str, python: str = sys.executable) -> float:
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen([python, "-m", "modelpier.server", "iris", "--no-grpc", "--http-port", str(port),
                             "--log-level", "warning", *extra], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the server exited with {proc.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pier-iso-bench-") as tmp:
        env = {**os.environ, "PIER_HOME": tmp, "PIER_REGISTRY__ENVIRONMENTS_DIR": f"{tmp}/envs"}
        save = ("from sklearn.datasets import load_iris; from sklearn.linear_model import LogisticRegression; "
                "import modelpier; x, y = load_iris(return_X_y=True); "
                "modelpier.save_model('iris', LogisticRegression(max_iter=500).fit(x, y), input_example=x[:2])")
        subprocess.run([sys.executable, "-c", save], env=env, check=True)
        cold = start_to_ready(env, "--isolated")
        # What the local backend starts for a replica whose environment is built: its Python, directly.
        settings = load_settings(home=Path(tmp), registry={"environments_dir": Path(tmp, "envs")})
        plan = plan_for(settings, ["iris"])
        direct_python = str(EnvironmentCache(settings.resolved_environments_dir).python(plan))
        direct_env = serve_env(env, settings.resolved_environments_dir, plan)
        runs: dict[str, list[float]] = {"plain": [], "isolated": [], "direct": []}
        for i in range(args.rounds):
            order = ["plain", "isolated", "direct"]
            for kind in order if i % 2 == 0 else reversed(order):
                if kind == "direct":
                    runs[kind].append(start_to_ready(direct_env, python=direct_python))
                else:
                    runs[kind].append(start_to_ready(env, *(("--isolated",) if kind == "isolated" else ())))
        plain, isolated, direct = runs["plain"], runs["isolated"], runs["direct"]
        size = sum(f.stat().st_size for f in Path(tmp, "envs").rglob("*") if f.is_file())
    p, q, d = statistics.median(plain), statistics.median(isolated), statistics.median(direct)
    print(f"| cold: build the environment with uv, then start | {cold:.2f} s |")
    print(f"| plain replica, spawn to ready (median of {args.rounds}) | {p:.2f} s |")
    print(f"| `pier serve --isolated`, warm cache (resolve, exec into the environment) | {q:.2f} s ({q - p:+.2f} s) |")
    print(f"| isolated replica as the local backend starts it on a warm cache | {d:.2f} s ({d - p:+.2f} s) |")
    print(f"| environment size on disk | {size / 2**20:.0f} MiB |")


if __name__ == "__main__":
    main()
