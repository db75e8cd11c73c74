"""Client benchmark: modelpier.Client / AsyncClient vs tritonclient (HTTP and gRPC) on one ``pier serve``.

    .venv/bin/python benchmarks/client/run.py                        # 3 rounds x 3 s per cell
    .venv/bin/python benchmarks/client/run.py --rounds 1 --duration 1  # a quick look

What it does: trains a LogisticRegression on iris and serves it with ``pier serve`` (defaults:
adaptive batching on) pinned to core 0 (``taskset -c 0``). Each cell (a client, a transport, a
number of concurrent callers) runs in its own process pinned to core 1, so its CPU time is the
client's alone: callers send one-row V2 requests back to back (closed loop) for a warm-up, then
for ``--duration`` seconds while the process counts answers and its own CPU time (every thread,
gRPC's included). Rounds interleave every cell, so drift on a shared machine hits all alike; the
table has the median of the rounds.

Clients as their authors intend them: one ``modelpier.Client`` shared by every thread (it is
thread-safe); one ``tritonclient`` client per thread (its clients are documented as not
thread-safe); for asyncio, one client shared by every task (``tritonclient.http.aio`` and
``tritonclient.grpc.aio``). Each transport with its default encoding: tritonclient sends binary
tensors over HTTP; modelpier sends JSON for small inputs. Every call decodes the ``predict`` output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "benchmarks" / ".work" / "client"
ROW = np.array([[5.1, 3.5, 1.4, 0.2]])
THREADED = ("modelpier-http", "triton-http", "modelpier-grpc", "triton-grpc")
ASYNC = ("modelpier-aio-http", "triton-aio-http", "modelpier-aio-grpc", "triton-aio-grpc")


# -- one cell, in its own process --------------------------------------------------------------------
def _caller(kind: str, url: str, grpc_url: str, shared: Any) -> Any:
    """A function that makes one call (and decodes ``predict``), for one thread."""
    if kind.startswith("modelpier"):
        grpc = kind.endswith("grpc")
        return lambda: shared.predict("iris", ROW, grpc=grpc)["predict"]
    if kind == "triton-http":
        import tritonclient.http as th

        client = th.InferenceServerClient(url.removeprefix("http://"))
        tensor = th.InferInput("input-0", [1, 4], "FP64")
        tensor.set_data_from_numpy(ROW)
        return lambda: client.infer("iris", [tensor]).as_numpy("predict")
    import tritonclient.grpc as tg

    client = tg.InferenceServerClient(grpc_url)
    tensor = tg.InferInput("input-0", [1, 4], "FP64")
    tensor.set_data_from_numpy(ROW)
    return lambda: client.infer("iris", [tensor]).as_numpy("predict")


def run_threads(kind: str, concurrency: int, url: str, grpc_url: str, *, warmup: float,
                duration: float) -> dict[str, float]:
    import modelpier

    shared = modelpier.Client(url, grpc_url=grpc_url, kind="server") if kind.startswith("modelpier") else None
    counts = [0] * concurrency
    stop = threading.Event()
    failures: list[str] = []

    def work(i: int) -> None:
        try:
            call = _caller(kind, url, grpc_url, shared)
            while not stop.is_set():
                call()
                counts[i] += 1
        except Exception as exc:  # reported, and the cell fails
            failures.append(f"{type(exc).__name__}: {exc}")
            stop.set()

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    return _measure(lambda: sum(counts), stop, warmup, duration, failures)


async def _async_cell(kind: str, concurrency: int, url: str, grpc_url: str, *, warmup: float,
                      duration: float) -> dict[str, float]:
    counts = [0] * concurrency
    stop = asyncio.Event()
    if kind.startswith("modelpier"):
        import modelpier

        client: Any = modelpier.AsyncClient(url, grpc_url=grpc_url, kind="server")
        grpc = kind.endswith("grpc")

        async def call() -> Any:
            return (await client.predict("iris", ROW, grpc=grpc))["predict"]
    elif kind == "triton-aio-http":
        import tritonclient.http.aio as tha

        client = tha.InferenceServerClient(url.removeprefix("http://"), conn_limit=max(100, concurrency))
        tensor = tha.InferInput("input-0", [1, 4], "FP64")
        tensor.set_data_from_numpy(ROW)

        async def call() -> Any:
            return (await client.infer("iris", [tensor])).as_numpy("predict")
    else:
        import tritonclient.grpc.aio as tga

        client = tga.InferenceServerClient(grpc_url)
        tensor = tga.InferInput("input-0", [1, 4], "FP64")
        tensor.set_data_from_numpy(ROW)

        async def call() -> Any:
            return (await client.infer("iris", [tensor])).as_numpy("predict")

    async def work(i: int) -> None:
        while not stop.is_set():
            await call()
            counts[i] += 1

    tasks = [asyncio.create_task(work(i)) for i in range(concurrency)]
    await asyncio.sleep(warmup)
    first, cpu0, t0 = sum(counts), time.process_time(), time.perf_counter()
    await asyncio.sleep(duration)
    last, cpu1, t1 = sum(counts), time.process_time(), time.perf_counter()
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    failed = [t.exception() for t in tasks if not t.cancelled() and t.exception() is not None]
    closing = client.aclose() if hasattr(client, "aclose") else client.close()
    if asyncio.iscoroutine(closing):
        await closing
    if failed:
        raise SystemExit(f"{kind}: {failed[0]!r}")
    return {"requests": last - first, "seconds": t1 - t0, "cpu_s": cpu1 - cpu0}


def _measure(total: Any, stop: threading.Event, warmup: float, duration: float,
             failures: list[str]) -> dict[str, float]:
    time.sleep(warmup)
    first, cpu0, t0 = total(), time.process_time(), time.perf_counter()
    time.sleep(duration)
    last, cpu1, t1 = total(), time.process_time(), time.perf_counter()
    stop.set()
    if failures:
        raise SystemExit(failures[0])
    return {"requests": last - first, "seconds": t1 - t0, "cpu_s": cpu1 - cpu0}


def cell_main(args: argparse.Namespace) -> None:
    if args.kind in THREADED:
        result = run_threads(args.kind, args.concurrency, args.url, args.grpc_url, warmup=args.warmup,
                             duration=args.duration)
    else:
        result = asyncio.run(_async_cell(args.kind, args.concurrency, args.url, args.grpc_url, warmup=args.warmup,
                                         duration=args.duration))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # do not wait for tritonclient's and gRPC's background threads


# -- the driver -----------------------------------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _model() -> Path:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "iris.joblib"
    x, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), path)
    return path


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("pier serve exited")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("pier serve did not get ready")


def driver(args: argparse.Namespace) -> None:
    taskset = shutil.which("taskset")
    http, grpc = _free_port(), _free_port()
    pier = str(Path(sys.executable).parent / "pier")
    server_cmd = [pier, "serve", f"iris={_model()}", "--http-port", str(http), "--grpc-port", str(grpc),
                  "--log-level", "warning"]
    env = {**os.environ, "PIER_HOME": str(WORK / "home")}
    log = (WORK / "serve.log").open("wb")
    server = subprocess.Popen(([taskset, "-c", "0"] if taskset else []) + server_cmd, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    url, grpc_url = f"http://127.0.0.1:{http}", f"127.0.0.1:{grpc}"
    kinds = [k for k in (*THREADED, *ASYNC) if not args.only or k in args.only]
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    try:
        _wait_ready(url, server)
        for r in range(args.rounds):
            for concurrency in args.concurrency:
                for kind in kinds:
                    cmd = [sys.executable, __file__, "--cell", kind, "--concurrency-one", str(concurrency),
                           "--url", url, "--grpc-url", grpc_url, "--warmup", str(args.warmup),
                           "--duration", str(args.duration)]
                    done = subprocess.run(([taskset, "-c", "1"] if taskset else []) + cmd, capture_output=True,
                                          text=True, timeout=120, check=False)
                    if done.returncode != 0:
                        raise SystemExit(f"{kind} x{concurrency} failed:\n{done.stderr[-2000:]}")
                    cell = json.loads(done.stdout.strip().splitlines()[-1])
                    results.setdefault((kind, concurrency), []).append(cell)
                    rps = cell["requests"] / cell["seconds"]
                    print(f"round {r + 1} {kind:20s} x{concurrency:<3d} {rps:8.0f} req/s "
                          f"{cell['cpu_s'] / max(cell['requests'], 1) * 1e6:7.0f} us CPU/req", flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        log.close()
    print(table(results, kinds, args))
    (WORK / "results.json").write_text(json.dumps(
        {f"{k}@{c}": v for (k, c), v in results.items()}, indent=1))


def table(results: dict[tuple[str, int], list[dict[str, float]]], kinds: list[str], args: argparse.Namespace) -> str:
    load = os.getloadavg()
    lines = [f"Medians of {args.rounds} rounds x {args.duration:g} s per cell; load average at the end "
             f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}.", "",
             "| client | " + " | ".join(f"{c} caller{'s' if c > 1 else ''}: req/s, CPU µs/req"
                                        for c in args.concurrency) + " |",
             "|---|" + "---|" * len(args.concurrency)]
    for kind in kinds:
        cells = []
        for c in args.concurrency:
            runs = results.get((kind, c), [])
            rps = statistics.median(r["requests"] / r["seconds"] for r in runs) if runs else 0.0
            cpu = statistics.median(r["cpu_s"] / max(r["requests"], 1) * 1e6 for r in runs) if runs else 0.0
            cells.append(f"{rps:,.0f}, {cpu:,.0f}")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--only", nargs="*", help="run only these clients")
    parser.add_argument("--cell", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency-one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--grpc-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cell:
        args.kind, args.concurrency = args.cell, args.concurrency_one
        cell_main(args)
    else:
        driver(args)


if __name__ == "__main__":
    main()
