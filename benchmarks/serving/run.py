"""Serving benchmark: modelpier vs Seldon's MLServer vs a bare ASGI ceiling, under wrk.

    .venv/bin/python benchmarks/serving/run.py            # full run: 3 rounds x 10 s per cell
    .venv/bin/python benchmarks/serving/run.py --rounds 1 --duration 3   # a quick look

What it does: trains two models (LogisticRegression on iris; RandomForestClassifier with 200 trees
on 64 features) and saves them with joblib; installs MLServer with mlserver-sklearn into its own
virtualenv (``benchmarks/serving/.venvs/mlserver``, same scikit-learn version as ours; uvloop 0.21
pinned because MLServer 1.7.1 cannot load models with newer ones); then, for each round, starts each
server in turn pinned to core 0 (``taskset -c 0``), loads it from wrk pinned to core 1 with the same
V2 JSON body at each concurrency, stops it, and moves on: systems are interleaved so drift on a
shared machine hits all of them alike. Medians over rounds go into a markdown table.

Settings: MLServer gets its best single-core setting, ``parallel_workers: 0``, and adaptive
batching (``max_batch_size`` 64, ``max_batch_time`` 2 ms) in the batched rows; on iris it is run
both ways. modelpier runs with its defaults (adaptive batching on). Both compute only ``predict``:
MLServer's sklearn runtime returns it alone by default, and modelpier is told the same with
``--model-option NAME:outputs=predict`` (its default also computes ``predict_proba``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORK = HERE / ".work"
PY = Path(sys.executable)


@dataclass(frozen=True)
class System:
    key: str  # row label
    model: str  # iris | forest
    kind: str  # modelpier | mlserver | bare
    batching: bool = True


SYSTEMS = [
    System("bare ASGI (ceiling)", "iris", "bare"),
    System("modelpier", "iris", "modelpier"),
    System("MLServer", "iris", "mlserver", batching=False),
    System("MLServer (batching)", "iris", "mlserver"),
    System("modelpier", "forest", "modelpier"),
    System("MLServer (batching)", "forest", "mlserver"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def body_for(model: str) -> str:
    if model == "iris":
        shape, data = [1, 4], [5.1, 3.5, 1.4, 0.2]
    else:
        shape, data = [1, 64], [round(0.1 * ((i * 7) % 13) - 0.6, 3) for i in range(64)]
    return json.dumps({"inputs": [{"name": "input-0", "shape": shape, "datatype": "FP64", "data": data}]})


def train(work: Path) -> None:
    import joblib
    from sklearn.datasets import load_iris, make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=1000).fit(x, y), work / "iris.joblib")
    xf, yf = make_classification(n_samples=2000, n_features=64, random_state=0)
    joblib.dump(RandomForestClassifier(n_estimators=200, random_state=0).fit(xf, yf), work / "forest.joblib")


def ensure_mlserver(venv: Path) -> Path:
    exe = venv / "bin" / "mlserver"
    if exe.exists():
        return exe
    import sklearn

    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "mlserver", "mlserver-sklearn", "uvloop==0.21.0",
                    f"scikit-learn=={sklearn.__version__}"], check=True)
    return exe


def mlserver_folder(model: str, batching: bool, http: int, grpc: int) -> Path:
    folder = WORK / f"mlserver-{model}-{'b' if batching else 'nb'}"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / model).mkdir(parents=True)
    shutil.copy(WORK / f"{model}.joblib", folder / model / "model.joblib")
    settings = {"http_port": http, "grpc_port": grpc, "metrics_port": free_port(), "parallel_workers": 0,
                "host": "127.0.0.1"}
    (folder / "settings.json").write_text(json.dumps(settings))
    model_settings: dict[str, object] = {"name": model, "implementation": "mlserver_sklearn.SKLearnModel",
                                         "parameters": {"uri": "./model.joblib"}}
    if batching:
        model_settings.update({"max_batch_size": 64, "max_batch_time": 0.002})
    (folder / model / "model-settings.json").write_text(json.dumps(model_settings))
    return folder


def start(system: System, mlserver: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    pin = ["taskset", "-c", "0"]
    if system.kind == "bare":
        cmd = [*pin, str(PY), "-m", "uvicorn", "bare_app:app", "--port", str(port), "--loop", "uvloop",
               "--http", "httptools", "--no-access-log", "--log-level", "warning", "--app-dir", str(HERE)]
    elif system.kind == "modelpier":
        cmd = [*pin, str(PY), "-m", "modelpier.server", f"{system.model}={WORK / (system.model + '.joblib')}",
               "--http-port", str(port), "--no-grpc", "--log-level", "warning",
               "--model-option", f"{system.model}:outputs=predict"]
        if not system.batching:
            cmd.append("--no-batching")
    else:
        folder = mlserver_folder(system.model, system.batching, port, free_port())
        cmd = [*pin, str(mlserver), "start", str(folder)]
    log = open(WORK / f"{system.kind}.log", "ab")  # noqa: SIM115  # closed with the process
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v2/models/{system.model}/ready" if system.kind != "bare" \
        else f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{system.key} exited with {proc.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310  # loopback only
                if response.status == 200:
                    return proc, port
        except OSError:
            time.sleep(0.2)
    stop(proc)
    raise RuntimeError(f"{system.key} did not become ready in 120 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def load(port: int, model: str, concurrency: int, duration: int) -> dict[str, float]:
    script = WORK / f"post-{model}.lua"
    body = body_for(model).replace("'", "\\'")
    script.write_text(f"wrk.method = \"POST\"\nwrk.body = '{body}'\n"
                      "wrk.headers[\"Content-Type\"] = \"application/json\"\n")
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{concurrency}", f"-d{duration}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}/v2/models/{model}/infer"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "p50": p50, "p99": p99, "errors": float(bad.group(1)) if bad else 0.0}


def table(results: dict[tuple[str, str, int], list[dict[str, float]]], concurrency: list[int]) -> str:
    def med(key: tuple[str, str, int], field: str) -> float:
        return statistics.median(r[field] for r in results[key])

    lines = ["| model | server | " + " | ".join(f"c={c} req/s (p50 / p99 ms)" for c in concurrency) + " |",
             "|---|---|" + "---|" * len(concurrency)]
    for system in SYSTEMS:
        cells = []
        for c in concurrency:
            key = (system.model, system.key, c)
            if key not in results:
                cells.append("-")
                continue
            errors = med(key, "errors")
            cells.append(f"{med(key, 'rps'):,.0f} ({med(key, 'p50'):.2f} / {med(key, 'p99'):.2f})"
                         + (f" {errors:.0f} errors" if errors else ""))
        lines.append(f"| {system.model} | {system.key} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("| ratio (medians) | " + " | ".join(f"c={c}" for c in concurrency) + " |")
    lines.append("|---|" + "---|" * len(concurrency))
    ratios = [("iris: modelpier / MLServer (best of unbatched, batched)", "iris", "modelpier", None),
              ("iris: modelpier share of bare ceiling", "iris", "modelpier", "bare ASGI (ceiling)"),
              ("forest: modelpier / MLServer (batching)", "forest", "modelpier", "MLServer (batching)")]
    for label, model, ours, theirs in ratios:
        cells = []
        for c in concurrency:
            mine = (model, ours, c)
            if mine not in results:
                cells.append("-")
                continue
            if theirs is None:
                options = [(model, k, c) for k in ("MLServer", "MLServer (batching)") if (model, k, c) in results]
                base = max((med(k, "rps") for k in options), default=float("nan"))
            else:
                base = med((model, theirs, c), "rps") if (model, theirs, c) in results else float("nan")
            value = med(mine, "rps") / base
            cells.append(f"{value:.0%}" if theirs == "bare ASGI (ceiling)" else f"{value:.2f}x")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per cell")
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--only", default="", help="comma-separated kinds to run (bare,modelpier,mlserver)")
    parser.add_argument("--mlserver-venv", type=Path, default=HERE / ".venvs" / "mlserver")
    parser.add_argument("--out", type=Path, default=WORK / "results.md")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")
    WORK.mkdir(exist_ok=True)
    train(WORK)
    kinds = set(args.only.split(",")) if args.only else {"bare", "modelpier", "mlserver"}
    systems = [s for s in SYSTEMS if s.kind in kinds]
    mlserver = ensure_mlserver(args.mlserver_venv) if "mlserver" in kinds else Path("mlserver")
    concurrency = [int(c) for c in args.concurrency.split(",")]
    results: dict[tuple[str, str, int], list[dict[str, float]]] = {}
    for round_no in range(1, args.rounds + 1):
        for system in systems:
            proc, port = start(system, mlserver)
            try:
                load(port, system.model, 8, 2)  # warm-up, not recorded
                for c in concurrency:
                    cell = load(port, system.model, c, args.duration)
                    results.setdefault((system.model, system.key, c), []).append(cell)
                    print(f"round {round_no} {system.model:6} {system.key:22} c={c:<3} {cell['rps']:9.0f} req/s "
                          f"p50 {cell['p50']:7.2f} ms p99 {cell['p99']:7.2f} ms errors {cell['errors']:.0f}",
                          flush=True)
            finally:
                stop(proc)
    report = table(results, concurrency)
    args.out.write_text(report + "\n")
    print()
    print(report)


if __name__ == "__main__":
    main()
