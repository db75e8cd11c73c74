"""A replica given two cores: two worker processes on one port, or two one-process replicas?

    .venv/bin/python benchmarks/platform/cores.py [--rounds 3] [--duration 8]

``pier up`` (not pinned: the point is to use both cores) with, for iris and the 200-tree forest, three
deployments: ``one`` (the defaults: one replica, one process), ``workers`` (``resources.cpu: "2"``: one
replica running two server processes that share its port with SO_REUSEPORT, the default for that
spec) and ``replicas`` (``replicas: 2``, one process each: the gateway balances between them per
request). ``wrk -t1 -c64`` through the gateway, unpinned too (the machine has two cores: the load
generator competes with the platform alike for every variant); rounds interleaved, medians.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import body_for, free_port, lua_script, stop_pier_up, train, wait_ready

BIN = Path(sys.executable).parent
VARIANTS = {"one": "{}", "workers": "{resources: {cpu: '2'}}", "replicas": "{replicas: 2}"}


def deploy(env: dict[str, str], api: str, work: Path, name: str, *, model: str, extra: str) -> None:
    spec = work / f"{name}.yaml"
    fields = extra[1:-1]  # the mapping's entries, without its outer braces
    spec.write_text(f"apiVersion: modelpier.io/v1alpha1\nkind: ModelDeployment\nmetadata: {{name: {name}}}\n"
                    f"spec: {{predictors: [{{model: '{model}:1'{', ' + fields if fields else ''}}}]}}\n")
    done = subprocess.run([str(BIN / "pier"), "deploy", "-f", str(spec), "--wait", "--remote", api], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pier deploy {name} failed: {done.stdout}\n{done.stderr}")


def wrk_unpinned(url: str, script: Path, connections: int, duration: float) -> float:
    import re

    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="pier-bench-cores-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIER_")}
    env.update(PIER_HOME=str(home), PIER_USER="bench", PIER_LOG_LEVEL="warning",
               PIER_PLATFORM__REPLICA_PORT_MIN="39000", PIER_PLATFORM__REPLICA_PORT_MAX="39199")
    models = train(home)
    os.environ.update(env)
    import modelpier
    from modelpier.settings import load_settings

    settings = load_settings(home=home)
    for name, model in models.items():
        n = 4 if name == "iris" else 64
        modelpier.save_model(name, model, input_example=[[0.1 * (i + 1) for i in range(n)]] * 2, settings=settings)
    api_port, gw_port = free_port(), free_port()
    api, gateway = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{gw_port}"
    up = subprocess.Popen([str(BIN / "pier"), "up", "--no-example", "--port", str(api_port), "--gateway-port",
                           str(gw_port)], env=env, stdout=(home / "up.log").open("ab"), stderr=subprocess.STDOUT)
    results: dict[tuple[str, str], list[float]] = {}
    try:
        wait_ready(f"{gateway}/healthz", timeout_s=60)
        urls = {}
        for model in ("iris", "forest"):
            script = lua_script(home, model, body_for(model))
            for variant, extra in VARIANTS.items():
                name = f"{model}-{variant}"
                deploy(env, api, home, name, model=model, extra=extra)
                urls[(model, variant)] = (f"{gateway}/default/{name}/v2/models/{model}/infer", script)
        for (model, _), (url, _) in urls.items():
            wait_ready(url, body_for(model))
        for i in range(args.rounds):
            for (model, variant), (url, script) in urls.items():
                wrk_unpinned(url, script, 64, 2)  # warm-up
                rps = wrk_unpinned(url, script, 64, args.duration)
                results.setdefault((model, variant), []).append(rps)
                print(f"round {i + 1} {model:6} {variant:8} {rps:8.0f} req/s", flush=True)
        print(f"\nmedians of {args.rounds} rounds of {args.duration:g} s at 64 connections; load average at the end "
              f"{os.getloadavg()[0]:.2f}\n")
        print("| model | one process (cpu 1) | 2 workers, 1 replica (cpu 2) | 2 replicas x 1 process |")
        print("|---|---|---|---|")
        for model in ("iris", "forest"):
            cells = [f"{statistics.median(results[(model, v)]):,.0f}" for v in VARIANTS]
            print(f"| {model} | " + " | ".join(cells) + " |")
    finally:
        stop_pier_up(up, env)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
