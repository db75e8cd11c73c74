"""Registry transfer benchmark: push and pull a 1 GiB artifact between two stores over loopback.

Starts a real `pier server` (the remote store) pinned to core 0 and runs `pier models push` /
`pier models pull` (the local stores) pinned to core 1, samples both processes' RSS with psutil,
and reports MB/s (wall time of the whole CLI command, start-up included) and RSS growth: the peak
while moving the big artifact minus the peak while moving a 1 MiB one with the same command.
Medians of several rounds.

    .venv/bin/python benchmarks/registry.py [--size-mib 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.procs import free_port, pier_env, wait_until  # noqa: E402


class RssSampler:
    """Peak RSS of a process (and its children) sampled every 20 ms on a thread."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
            return sum(p.memory_info().rss for p in procs)
        except psutil.Error:
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def taskset(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") else []


def make_artifact(folder: Path, size: int) -> None:
    folder.mkdir(parents=True)
    with (folder / "weights.bin").open("wb") as f:
        written = 0
        while written < size:
            n = min(16 * 1024 * 1024, size - written)
            f.write(os.urandom(n))  # random bytes: nothing in the path can compress or dedupe them
            written += n


def timed_cli(args: list[str], home: Path) -> tuple[float, int]:
    """Run a pier command pinned to core 1; return (seconds, peak RSS)."""
    start = time.perf_counter()
    proc = subprocess.Popen([*taskset(1), str(BIN / "pier"), *args], env=pier_env(home),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with RssSampler(proc.pid) as sampler:
        _, err = proc.communicate()
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"pier {' '.join(args)} failed: {err.decode()}")
    return elapsed, sampler.peak


def register(home: Path, name: str, folder: Path) -> None:
    from modelpier.registry.domain import Flavor, NewVersion
    from modelpier.registry.factory import build_registry
    from modelpier.settings import load_settings

    registry = build_registry(load_settings(home=home))
    try:
        registry.register(NewVersion(model=name, flavor=Flavor.PYTHON, files=registry.store_files(folder)))
    finally:
        registry.close()
    shutil.rmtree(folder)


def transfer(url: str, server: RssSampler, verb: str, name: str, home: Path) -> tuple[float, int, int]:
    """(seconds, client peak RSS, server peak RSS) of one push or pull."""
    sampler = RssSampler(server.proc.pid)
    with sampler:
        seconds, client_peak = timed_cli(["models", verb, f"{name}:1", "--remote", url, "-o", "json"], home)
    return seconds, client_peak, sampler.peak


def run(size_mib: int, rounds: int) -> list[dict[str, float]]:
    """Each round moves a 1 MiB artifact first with the same commands: RSS growth is the peak
    with the big artifact minus the peak with the small one, so interpreter and imports cancel out."""
    size = size_mib * 1024 * 1024
    results = []
    with tempfile.TemporaryDirectory(prefix="pier-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        for r in range(rounds):
            local, remote_home, puller = tmp / f"local{r}", tmp / f"remote{r}", tmp / f"pull{r}"
            make_artifact(tmp / "small", 1024 * 1024)
            register(local, "small", tmp / "small")
            make_artifact(tmp / "big", size)
            register(local, "big", tmp / "big")
            port = free_port()
            remote_home.mkdir()
            server = subprocess.Popen(
                [*taskset(0), str(BIN / "pier"), "server", "--port", str(port)], env=pier_env(remote_home),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            url = f"http://127.0.0.1:{port}"
            try:
                wait_until(lambda u=url: _up(u), what="pier server")
                srv = RssSampler(server.pid)
                _, push_small, srv_small_push = transfer(url, srv, "push", "small", local)
                push_s, push_big, srv_big_push = transfer(url, srv, "push", "big", local)
                _, pull_small, srv_small_pull = transfer(url, srv, "pull", "small", puller)
                pull_s, pull_big, srv_big_pull = transfer(url, srv, "pull", "big", puller)
            finally:
                server.terminate()
                server.wait()
            mb = size / 1e6
            results.append({
                "push_mb_s": mb / push_s, "pull_mb_s": mb / pull_s,
                "push_client_rss_mb": (push_big - push_small) / 1e6,
                "push_server_rss_mb": (srv_big_push - srv_small_push) / 1e6,
                "pull_client_rss_mb": (pull_big - pull_small) / 1e6,
                "pull_server_rss_mb": (srv_big_pull - srv_small_pull) / 1e6,
            })
            print(f"round {r + 1}: " + ", ".join(f"{k}={v:.1f}" for k, v in results[-1].items()), flush=True)
            for folder in (local, remote_home, puller):
                shutil.rmtree(folder, ignore_errors=True)
    return results


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024, help="artifact size in MiB (default 1024)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the table shows medians (default 3)")
    args = parser.parse_args()
    results = run(args.size_mib, args.rounds)
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print()
    print(f"| direction | MB/s | client RSS growth (MB) | server RSS growth (MB) |  ({args.size_mib} MiB, "
          f"median of {args.rounds})")
    print("|---|---:|---:|---:|")
    print(f"| push | {med['push_mb_s']:.0f} | {med['push_client_rss_mb']:.0f} | {med['push_server_rss_mb']:.0f} |")
    print(f"| pull | {med['pull_mb_s']:.0f} | {med['pull_client_rss_mb']:.0f} | {med['pull_server_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
