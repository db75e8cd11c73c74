"""Benchmark: the gateway path vs the replica direct, on the iris model; and cache-hit throughput.

Run: .venv/bin/python benchmarks/gateway/run.py [--rounds 5] [--duration 8] [--model iris|noop]
(needs ``wrk``: ``scripts/install-system-deps.sh`` installs it.)

One replica (``python -m modelpier.server MODEL --no-batching``) and two gateways (``python -m
modelpier.cli gateway``), all pinned to core 0 with ``taskset -c 0``; ``wrk`` on core 1 (the machine
has 2 cores; the gateway and the replica share one, so every microsecond the gateway spends is taken
from the replica: the ratio is the honest cost of the hop). The first gateway runs as shipped
(``gateway.batch_scheduling`` on: SCHED_BATCH), the second with it off (the default CPU policy), so
one run shows what the policy is worth. The gateways get their routing table from a stub control
plane in this process, which answers ``GET /api/v1/routing`` from a fixed table (two deployments on
the same replica: ``plain``, and ``cached`` with ``cache`` on), so no reconciler runs during the
measurement. Each round measures, interleaved so noise hits all alike, at 8 and 64 connections: the
replica direct, through each gateway, and through the gateway with every request a cache hit (the
same body each time). The report is the median of the rounds.
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
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from modelpier.spec.routing import (
    DeploymentRoute,
    PredictorRoute,
    ReplicaEndpoint,
    RoutingTable,
    TrafficPolicy,
    encode_table,
)

PY = sys.executable
NOOP = '''
class Noop:
    def load(self, path):
        pass

    def predict(self, inputs):
        return inputs
'''
BODY = json.dumps({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                               "data": [5.1, 3.5, 1.4, 0.2]}]})
CONNECTIONS = (8, 64)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stub_control(table: RoutingTable) -> ThreadingHTTPServer:
    body, etag = encode_table(table)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("if-none-match") == etag:
                self.send_response(304)
                self.send_header("etag", etag)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("etag", etag)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # traffic reports: read and drop
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def wait_ok(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            r = httpx.post(url, content=BODY, headers={"content-type": "application/json"}, timeout=1)
            if r.status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer {url}")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, script: Path, connections: int, duration: int) -> dict[str, float]:
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-s", str(script),
                          "--latency", url], capture_output=True, text=True, check=True).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for pct in ("50", "99"):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        result[f"p{pct}_ms"] = float(value) * _UNITS[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = float(errors.group(1)) if errors else 0.0
    return result


def save_model(kind: str, home: Path) -> None:
    import modelpier
    from modelpier.settings import load_settings

    settings = load_settings(home=home)
    if kind == "noop":
        folder = home / "noop-src"
        folder.mkdir()
        (folder / "model.py").write_text(NOOP)
        (folder / "python-model.json").write_text(json.dumps({"class": "Noop"}))
        modelpier.save_model("bench", folder, flavor="python", settings=settings)
        return
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    modelpier.save_model("bench", LogisticRegression(max_iter=1000).fit(x, y), settings=settings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--model", choices=("iris", "noop"), default="iris")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: run scripts/install-system-deps.sh")
    home = Path(tempfile.mkdtemp(prefix="pier-bench-gw-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIER_")}
    env.update(PIER_HOME=str(home), PIER_USER="bench", PIER_LOG_LEVEL="warning")
    save_model(args.model, home)
    script = home / "post.lua"
    script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(BODY)}\n'
                      'wrk.headers["Content-Type"] = "application/json"\n')
    replica_port, gateway_port, normal_port = free_port(), free_port(), free_port()
    replica_url = f"http://127.0.0.1:{replica_port}"
    predictors = (PredictorRoute("main", 100, (ReplicaEndpoint("main-0", replica_url, 1, "bench:1"),)),)
    control = stub_control(RoutingTable.of([
        DeploymentRoute("default", "plain", 1, predictors),
        DeploymentRoute("default", "cached", 1, predictors,
                        policy=TrafficPolicy(cache_ttl_s=3600, cache_max_entries=1000))]))
    procs = [
        subprocess.Popen(["taskset", "-c", "0", PY, "-m", "modelpier.server", "bench", "--http-port",
                          str(replica_port), "--no-grpc", "--no-batching", "--log-level", "warning"], env=env),
        *(subprocess.Popen(["taskset", "-c", "0", PY, "-m", "modelpier.cli", "gateway", "--control",
                            f"http://127.0.0.1:{control.server_address[1]}", "--port", str(port),
                            "--grpc-port", "0"], env={**env, "PIER_GATEWAY__BATCH_SCHEDULING": batch})
          for port, batch in ((gateway_port, "true"), (normal_port, "false"))),
    ]
    gateway = f"http://127.0.0.1:{gateway_port}"
    urls = {"direct": f"{replica_url}/v2/models/bench/infer",
            "gateway": f"{gateway}/default/plain/v2/models/bench/infer",
            "gw normal": f"http://127.0.0.1:{normal_port}/default/plain/v2/models/bench/infer",
            "cache hit": f"{gateway}/default/cached/v2/models/bench/infer"}
    try:
        wait_ok(urls["direct"], procs[0], "the replica")
        wait_ok(urls["gateway"], procs[1], "the gateway")
        wait_ok(urls["gw normal"], procs[2], "the second gateway")
        wait_ok(urls["cache hit"], procs[1], "the gateway")
        results: dict[tuple[str, int], list[dict[str, float]]] = {}
        for i in range(args.rounds):
            for connections in CONNECTIONS:
                for name, url in urls.items():
                    r = wrk(url, script, connections, args.duration)
                    results.setdefault((name, connections), []).append(r)
                    print(f"round {i + 1} {name:9s} c={connections:<2d} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:.3f} "
                          f"ms  p99 {r['p99_ms']:.3f} ms  non-2xx {r['errors']:.0f}", flush=True)

        def med(name: str, c: int, key: str) -> float:
            return statistics.median(r[key] for r in results[(name, c)])

        print(f"\n{args.model}: medians of {args.rounds} rounds of {args.duration} s")
        print("| connections | direct req/s | gateway req/s | gateway / direct | added p50 (ms) | p50 direct / "
              "gateway (ms) | p99 direct / gateway (ms) | without SCHED_BATCH: gateway / direct | cache-hit req/s "
              "| cache-hit / direct |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for c in CONNECTIONS:
            d = {k: med("direct", c, k) for k in ("rps", "p50_ms", "p99_ms")}
            g = {k: med("gateway", c, k) for k in ("rps", "p50_ms", "p99_ms")}
            n = med("gw normal", c, "rps")
            h = med("cache hit", c, "rps")
            print(f"| {c} | {d['rps']:.0f} | {g['rps']:.0f} | {g['rps'] / d['rps']:.2f} | "
                  f"{g['p50_ms'] - d['p50_ms']:.2f} | {d['p50_ms']:.2f} / {g['p50_ms']:.2f} | "
                  f"{d['p99_ms']:.2f} / {g['p99_ms']:.2f} | {n / d['rps']:.2f} | {h:.0f} | {h / d['rps']:.2f} |")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        control.shutdown()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
