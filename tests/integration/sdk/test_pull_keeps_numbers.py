"""`pier models pull iris:2` into an empty home keeps the number 2: listed, shown and served as version 2
(a Kubernetes pod's init container pulls exactly this way before `pier serve iris`)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.procs import BIN, control_plane, free_port, http_ok, pier_env, run_pier, wait_until
from tests.support.watchdog import watch

pytestmark = pytest.mark.slow

ROW = [5.1, 3.5, 1.4, 0.2]


def _save_irises(home: Path, *strengths: float) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import modelpier
    from modelpier.settings import load_settings

    settings = load_settings(home=home)
    x, y = load_iris(return_X_y=True)
    x = x.astype("float32")
    for c in strengths:  # one version each, with different content
        modelpier.save_model("iris", LogisticRegression(C=c, max_iter=300).fit(x, y), input_example=x[:2],
                             settings=settings)


def _pier_json(args: list[str], home: Path) -> Any:
    return json.loads(run_pier([*args, "-o", "json"], home, check=True).stdout)


def test_a_pulled_version_keeps_its_number_in_the_store_and_when_served(tmp_path: Path) -> None:
    producer, puller = tmp_path / "producer", tmp_path / "puller"
    _save_irises(producer, 1.0, 0.5)
    with control_plane(tmp_path / "server") as url:
        for ref in ("iris:1", "iris:2"):
            run_pier(["models", "push", ref, "--remote", url], producer, check=True)
        remote = _pier_json(["models", "get", "iris:2", "--remote", url], producer)
        pulled = _pier_json(["models", "pull", "iris:2", "--remote", url], puller)
    assert (pulled["version"], pulled["digest"]) == (2, remote["digest"])
    assert (pulled["metrics"], pulled["signature"]) == (remote["metrics"], remote["signature"])
    [model] = _pier_json(["models", "list"], puller)
    assert (model["name"], model["latest_version"], model["version_count"]) == ("iris", 2, 1)
    shown = _pier_json(["models", "get", "iris"], puller)
    assert (shown["version"], shown["digest"]) == (2, remote["digest"])

    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([str(BIN / "pier"), "serve", "iris", "--host", "127.0.0.1", "--http-port", str(port),
                             "--no-grpc", "--workers", "1"], env=pier_env(puller), stdout=log, stderr=subprocess.STDOUT)
    guard = watch(proc.pid)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: proc.poll() is not None or http_ok(f"{base}/v2/health/ready")(), timeout=60,
                   what="pier serve iris")
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": ROW}]}
        answer = httpx.post(f"{base}/v2/models/iris/infer", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == "2"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        guard.release()
        log.close()


def test_pulling_a_number_the_home_holds_with_other_content_is_refused_naming_both_digests(tmp_path: Path) -> None:
    producer, puller = tmp_path / "producer", tmp_path / "puller"
    _save_irises(producer, 1.0, 0.5)
    _save_irises(puller, 0.1)  # a local iris:1 with other content than the server's
    with control_plane(tmp_path / "server") as url:
        for ref in ("iris:1", "iris:2"):
            run_pier(["models", "push", ref, "--remote", url], producer, check=True)
        theirs = _pier_json(["models", "get", "iris:1", "--remote", url], producer)
        refused = run_pier(["models", "pull", "iris:1", "--remote", url], puller)
        assert run_pier(["models", "pull", "iris:2", "--remote", url], puller).returncode == 0  # a free number
    ours = _pier_json(["models", "get", "iris:1"], puller)
    assert refused.returncode == 5, refused.stderr  # a conflict
    assert "Traceback" not in refused.stderr
    assert theirs["digest"] in refused.stderr, refused.stderr
    assert ours["digest"] in refused.stderr, refused.stderr
    listed = _pier_json(["models", "get", "iris", "--versions"], puller)
    assert [v["version"] for v in listed] == [1, 2]
