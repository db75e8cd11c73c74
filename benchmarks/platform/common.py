"""What the platform benchmarks share: ports, wrk runs on core 1, the two models, CPU time of processes."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def body_for(model: str, outputs: tuple[str, ...] = ("predict",)) -> str:
    """The V2 body every server gets: one row, asking for ``outputs`` only."""
    if model == "iris":
        shape, data = [1, 4], [5.1, 3.5, 1.4, 0.2]
    else:
        shape, data = [1, 64], [round(0.1 * ((i * 7) % 13) - 0.6, 3) for i in range(64)]
    doc: dict[str, object] = {"inputs": [{"name": "input-0", "shape": shape, "datatype": "FP64", "data": data}]}
    if outputs:
        doc["outputs"] = [{"name": o} for o in outputs]
    return json.dumps(doc)


def lua_script(folder: Path, name: str, body: str) -> Path:
    script = folder / f"post-{name}.lua"
    script.write_text(f"wrk.method = \"POST\"\nwrk.body = '{body}'\n"
                      "wrk.headers[\"Content-Type\"] = \"application/json\"\n")
    return script


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def wrk(url: str, script: Path, connections: int, duration: float) -> dict[str, float]:
    """One wrk run from core 1: req/s, p50 and p99 in ms, non-2xx count."""
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", "-s", str(script),
         url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"rps": rps, "p50": p50, "p99": p99, "errors": float(bad.group(1)) if bad else 0.0,
            "socket_errors": 1.0 if errors else 0.0}


def wait_ready(url: str, body: str | None = None, timeout_s: float = 120.0) -> None:
    """Until ``url`` answers 200 (a POST of ``body`` when given)."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            data = body.encode() if body is not None else None
            req = urllib.request.Request(url, data=data,  # noqa: S310  # loopback http only
                                         headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=2) as response:  # noqa: S310  # loopback only
                if response.status == 200:
                    return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout_s:g}s: {last}")


def train(work: Path) -> dict[str, object]:
    """The two benchmark models, also written as joblib files for MLServer."""
    import joblib
    from sklearn.datasets import load_iris, make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    iris = LogisticRegression(max_iter=1000).fit(x, y)
    xf, yf = make_classification(n_samples=2000, n_features=64, random_state=0)
    forest = RandomForestClassifier(n_estimators=200, random_state=0).fit(xf, yf)
    joblib.dump(iris, work / "iris.joblib")
    joblib.dump(forest, work / "forest.joblib")
    return {"iris": iris, "forest": forest}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (its threads included), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (from each process's parent pid in /proc/PID/stat)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def stop_pier_up(up: subprocess.Popen[bytes], env: dict[str, str]) -> None:
    """Stop a ``pier up`` the benchmark started (SIGTERM, then kill), then ``pier down`` for whatever it left."""
    up.send_signal(signal.SIGTERM)
    try:
        up.wait(timeout=60)
    except subprocess.TimeoutExpired:
        up.kill()
        up.wait()
    subprocess.run([str(Path(sys.executable).parent / "pier"), "down", "--grace-s", "10"], env=env,
                   capture_output=True, timeout=120, check=False)
