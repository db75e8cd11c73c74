"""The deployed path against MLServer: ``pier up`` + a deployment per model, requests through the gateway.

    .venv/bin/python benchmarks/platform/run.py [--rounds 5] [--duration 10]

What it does: trains LogisticRegression on iris and RandomForestClassifier(200 trees) on 64 features,
pushes both to the registry of a throwaway ``PIER_HOME``, starts ``pier up --no-example`` pinned to
core 0 (``taskset -c 0``: the control plane, the gateway and every replica it starts inherit the pin)
and deploys each model with a spec that names only the model: the defaults a user gets. MLServer
1.7.1 (its own virtualenv, ``benchmarks/.venvs/mlserver``, installed on first use as RECIPES.md
says) runs on the same core with ``parallel_workers: 0``: iris without and with adaptive batching,
the forest with it (``max_batch_size`` 64, ``max_batch_time`` 2 ms). ``wrk -t1`` runs on core 1.

Every server gets the same V2 JSON body, one row, asking for ``predict`` only. Each round measures,
in turn, the gateway path and the replica direct for both models, then starts each MLServer, loads it
and stops it (interleaved, so drift on a shared machine hits all alike); the tables show medians.
While the gateway path is loaded at the highest concurrency, the CPU time of every platform process
is read from ``/proc`` before and after: the share of the control plane (API, reconciler, traffic
intake: the ``pier up`` process) and of the gateway and replicas.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import body_for, cpu_seconds, descendants, free_port, lua_script, stop_pier_up, train, wait_ready, wrk

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
MODELS = ("iris", "forest")


@dataclass(frozen=True)
class Cell:
    system: str  # "modelpier (gateway)", "modelpier (replica direct)", "MLServer", "MLServer (batching)"
    model: str
    connections: int


def ensure_mlserver(venv: Path) -> Path:
    exe = venv / "bin" / "mlserver"
    if exe.exists():
        return exe
    import sklearn

    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "mlserver==1.7.1", "mlserver-sklearn==1.7.1",
                    "uvloop==0.21.0", f"scikit-learn=={sklearn.__version__}"], check=True)
    return exe


def start_mlserver(exe: Path, work: Path, model: str, batching: bool) -> tuple[subprocess.Popen[bytes], str]:
    folder = work / f"mlserver-{model}-{'b' if batching else 'nb'}"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / model).mkdir(parents=True)
    shutil.copy(work / f"{model}.joblib", folder / model / "model.joblib")
    port = free_port()
    (folder / "settings.json").write_text(json.dumps({
        "http_port": port, "grpc_port": free_port(), "metrics_port": free_port(), "parallel_workers": 0,
        "host": "127.0.0.1"}))
    settings: dict[str, object] = {"name": model, "implementation": "mlserver_sklearn.SKLearnModel",
                                   "parameters": {"uri": "./model.joblib"}}
    if batching:
        settings.update({"max_batch_size": 64, "max_batch_time": 0.002})
    (folder / model / "model-settings.json").write_text(json.dumps(settings))
    log = (work / "mlserver.log").open("ab")
    proc = subprocess.Popen(["taskset", "-c", "0", str(exe), "start", str(folder)], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v2/models/{model}/infer"
    try:
        wait_ready(url, body_for(model))
    except RuntimeError:
        stop(proc)
        raise
    return proc, url


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def deploy(env: dict[str, str], api: str, work: Path, model: str) -> None:
    spec = work / f"{model}.yaml"
    spec.write_text(f"apiVersion: modelpier.io/v1alpha1\nkind: ModelDeployment\nmetadata: {{name: {model}}}\n"
                    f"spec: {{predictors: [{{model: '{model}:1'}}]}}\n")
    done = subprocess.run([str(BIN / "pier"), "deploy", "-f", str(spec), "--wait", "--remote", api], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pier deploy {model} failed: {done.stdout}\n{done.stderr}")


def replica_urls(home: Path) -> dict[str, str]:
    """The replica of each deployment, direct (from the local backend's state file)."""
    state = json.loads((home / "replicas" / "state.json").read_text())
    return {r["spec"]["deployment"]: f"http://127.0.0.1:{r['port']}/v2/models/{r['spec']['deployment']}/infer"
            for r in state["replicas"]}


def platform_cpu(up_pid: int, home: Path) -> dict[str, float]:
    """CPU seconds so far of the platform's processes, by part."""
    gateway_pid = json.loads((home / "gateway.json").read_text())["pid"]
    parts = {"control plane": cpu_seconds(up_pid), "gateway": 0.0, "replicas": 0.0}
    for pid in descendants(up_pid)[1:]:
        part = "gateway" if pid in descendants(gateway_pid) else "replicas"
        parts[part] += cpu_seconds(pid)
    return parts


def main() -> None:  # noqa: PLR0912, PLR0915  # one linear script: setup, rounds, report
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=10, help="seconds of load per cell")
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--mlserver-venv", type=Path, default=HERE.parent / ".venvs" / "mlserver")
    parser.add_argument("--no-mlserver", action="store_true", help="only the platform (gateway and direct)")
    parser.add_argument("--py-spy", type=Path, default=None,
                        help="a py-spy binary: after the rounds, profile the gateway and the replicas under load")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")
    concurrency = [int(c) for c in args.concurrency.split(",")]
    mlserver = None if args.no_mlserver else ensure_mlserver(args.mlserver_venv)
    home = Path(tempfile.mkdtemp(prefix="pier-bench-platform-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIER_")}
    env.update(PIER_HOME=str(home), PIER_USER="bench", PIER_LOG_LEVEL="warning",
               PIER_PLATFORM__REPLICA_PORT_MIN="37000", PIER_PLATFORM__REPLICA_PORT_MAX="37199")
    models = train(home)
    os.environ.update(env)
    import modelpier
    from modelpier.settings import load_settings

    settings = load_settings(home=home)
    for name, model in models.items():
        n_features = 4 if name == "iris" else 64
        example = [[0.1 * (i + 1) for i in range(n_features)]] * 2
        modelpier.save_model(name, model, input_example=example, settings=settings)
    scripts = {m: lua_script(home, m, body_for(m)) for m in MODELS}
    api_port, gw_port = free_port(), free_port()
    api, gateway = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{gw_port}"
    up_log = (home / "up.log").open("ab")
    up = subprocess.Popen(["taskset", "-c", "0", str(BIN / "pier"), "up", "--no-example", "--port", str(api_port),
                           "--gateway-port", str(gw_port)], env=env, stdout=up_log, stderr=subprocess.STDOUT)
    results: dict[Cell, list[dict[str, float]]] = {}
    shares: list[dict[str, float]] = []
    try:
        wait_ready(f"{gateway}/healthz", timeout_s=60)
        for m in MODELS:
            deploy(env, api, home, m)
        urls = {m: f"{gateway}/default/{m}/v2/models/{m}/infer" for m in MODELS}
        for m in MODELS:
            wait_ready(urls[m], body_for(m))
        direct = replica_urls(home)

        def measure(cell: Cell, url: str, round_no: int) -> None:
            account = cell.system == "modelpier (gateway)" and cell.connections == max(concurrency)
            before = platform_cpu(up.pid, home) if account else {}
            r = wrk(url, scripts[cell.model], cell.connections, args.duration)
            if account:
                after = platform_cpu(up.pid, home)
                used = {k: after[k] - before[k] for k in after}
                total = sum(used.values()) or 1.0
                shares.append({k: v / total for k, v in used.items()} | {"total_s": total})
            results.setdefault(cell, []).append(r)
            print(f"round {round_no} {cell.model:6} {cell.system:27} c={cell.connections:<3} {r['rps']:8.0f} req/s "
                  f"p50 {r['p50']:7.2f} ms p99 {r['p99']:7.2f} ms non-2xx {r['errors']:.0f}", flush=True)

        for round_no in range(1, args.rounds + 1):
            for m in MODELS:
                wrk(urls[m], scripts[m], 8, 2)  # warm-up, not recorded
                for c in concurrency:
                    measure(Cell("modelpier (gateway)", m, c), urls[m], round_no)
                for c in concurrency:
                    measure(Cell("modelpier (replica direct)", m, c), direct[m], round_no)
            if mlserver is None:
                continue
            for m, batching in (("iris", False), ("iris", True), ("forest", True)):
                proc, url = start_mlserver(mlserver, home, m, batching)
                try:
                    wrk(url, scripts[m], 8, 2)
                    for c in concurrency:
                        measure(Cell("MLServer (batching)" if batching else "MLServer", m, c), url, round_no)
                finally:
                    stop(proc)
        print(report(results, shares, concurrency, args))
        if args.py_spy is not None:
            for m in MODELS:
                print(profile(args.py_spy, home, url=urls[m], script=scripts[m], model=m, connections=max(concurrency)))
    finally:
        stop_pier_up(up, env)
        up_log.close()
        shutil.rmtree(home, ignore_errors=True)


# Where a sample's time goes: the innermost frame of ours or of a library we call, by file path.
_PARTS = (
    ("gateway/http1.py", "gateway: HTTP server (http1)"), ("gateway/upstream.py", "gateway: forwarding (upstream)"),
    ("gateway/", "gateway: routing, dispatch, stats"), ("server/batching/", "replica: batcher"),
    ("server/execution.py", "replica: executor"), ("server/codecs/", "replica: codecs"),
    ("server/", "replica: data plane, HTTP app"), ("runtimes/", "replica: runtime"),
    ("sklearn/", "model (scikit-learn)"), ("numpy/", "model (numpy)"), ("uvicorn/", "replica: uvicorn"),
    ("httpx/", "control traffic (httpx)"),
    # The innermost Python frame is the loop's entry point: uvloop's C code (sockets, callbacks) runs.
    ("asyncio/runners.py", "event loop: uvloop C, system calls"), ("asyncio/", "asyncio (Python)"),
)


def profile(py_spy: Path, home: Path, *, url: str, script: Path, model: str, connections: int) -> str:
    """py-spy samples of the gateway and of the model's replica under load, grouped by part."""
    gateway_pid = json.loads((home / "gateway.json").read_text())["pid"]
    state = json.loads((home / "replicas" / "state.json").read_text())
    replica_pid = next(r["pid"] for r in state["replicas"] if r["spec"]["deployment"] == model)
    load = subprocess.Popen(["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", "-d14s", "-s", str(script), url],
                            stdout=subprocess.DEVNULL)
    time.sleep(2)
    lines = [f"\npy-spy, {model} at c={connections} through the gateway (share of each process's samples):"]
    spies = {name: subprocess.Popen([str(py_spy), "record", "-p", str(pid), "-d", "10", "-r", "250", "-f", "raw",
                                     "--nonblocking", "-o", str(home / f"{name}.raw")],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for name, pid in (("gateway", gateway_pid), ("replica", replica_pid))}
    for spy in spies.values():
        spy.wait()
    load.wait()
    for name in spies:
        counts: dict[str, int] = {}
        total = 0
        for raw in (home / f"{name}.raw").read_text().splitlines():
            stack, _, n = raw.rpartition(" ")
            if not n.isdigit():
                continue
            total += int(n)
            part = "threads without a Python frame"
            for frame in reversed(stack.split(";")):
                found = next((label for key, label in _PARTS if key in frame), None)
                if found is not None:
                    part = found
                    break
            counts[part] = counts.get(part, 0) + int(n)
        top = sorted(counts.items(), key=lambda kv: -kv[1])
        shown = [f"{label} {n / max(total, 1):.0%}" for label, n in top if n / max(total, 1) >= 0.01]
        lines.append(f"- {name}: " + "; ".join(shown))
    return "\n".join(lines)


def report(results: dict[Cell, list[dict[str, float]]], shares: list[dict[str, float]], concurrency: list[int],
           args: argparse.Namespace) -> str:
    def med(cell: Cell, field: str) -> float:
        return statistics.median(r[field] for r in results[cell])

    systems = ["modelpier (gateway)", "modelpier (replica direct)", "MLServer", "MLServer (batching)"]
    lines = [f"\nmedians of {args.rounds} rounds of {args.duration:g} s; load average at the end "
             f"{os.getloadavg()[0]:.2f}", "",
             "| model | server | " + " | ".join(f"c={c} req/s (p50 / p99 ms)" for c in concurrency) + " |",
             "|---|---|" + "---|" * len(concurrency)]
    for m in MODELS:
        for s in systems:
            if Cell(s, m, concurrency[0]) not in results:
                continue
            cells = []
            for c in concurrency:
                cell = Cell(s, m, c)
                errors = med(cell, "errors")
                cells.append(f"{med(cell, 'rps'):,.0f} ({med(cell, 'p50'):.2f} / {med(cell, 'p99'):.2f})"
                             + (f" {errors:.0f} non-2xx" if errors else ""))
            lines.append(f"| {m} | {s} | " + " | ".join(cells) + " |")
    lines += ["", "| ratio of medians | " + " | ".join(f"c={c}" for c in concurrency) + " |",
              "|---|" + "---|" * len(concurrency)]

    def ratio(label: str, model: str, theirs: list[str], ours: str = "modelpier (gateway)") -> None:
        cells = []
        for c in concurrency:
            bases = [med(Cell(t, model, c), "rps") for t in theirs if Cell(t, model, c) in results]
            cells.append(f"{med(Cell(ours, model, c), 'rps') / max(bases):.2f}" if bases else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    ratio("iris: gateway / MLServer (best of unbatched, batched)", "iris", ["MLServer", "MLServer (batching)"])
    ratio("forest: gateway / MLServer (batching)", "forest", ["MLServer (batching)"])
    ratio("iris: gateway / replica direct", "iris", ["modelpier (replica direct)"])
    ratio("forest: gateway / replica direct", "forest", ["modelpier (replica direct)"])
    if shares:
        lines += ["", f"CPU of the platform's processes while the gateway path is loaded at c={max(concurrency)} "
                      "(medians over the cells):", "",
                  "| control plane | gateway | replicas | CPU seconds per cell |", "|---|---|---|---|"]
        lines.append(" | ".join([""] + [f"{statistics.median(s[k] for s in shares):.1%}"
                                        for k in ("control plane", "gateway", "replicas")]
                                + [f"{statistics.median(s['total_s'] for s in shares):.1f} |"]).strip())
    return "\n".join(lines)


if __name__ == "__main__":
    t0 = time.monotonic()
    main()
    print(f"\n(run took {time.monotonic() - t0:.0f} s)")
