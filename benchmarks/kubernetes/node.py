"""The platform on a real Kubernetes node: ``pier deploy --wait`` to the first prediction through a gateway
pod, and a gateway pod's throughput against the local ``pier up`` gateway on the same machine.

    sudo -E .venv/bin/python benchmarks/kubernetes/node.py [--rounds 3] [--duration 6]

Needs root and ``../shared/k8s`` (what ``make test-k8s-node`` needs); ``KUBEBUILDER_ASSETS`` defaults
to ``~/.cache/modelpier/k8s-assets``. What it does:

1. Starts the cluster and installs the platform exactly as ``tests/integration/kubernetes/
   test_platform_e2e.py`` does (``tests/support/k8s_platform.py``: etcd, kube-apiserver, controller
   manager, scheduler, kubelet with containerd, kube-proxy, the node's OCI registry; PostgreSQL and
   S3 on the host; the platform image built without Docker; ``deploy/kubernetes/overlays/e2e``). The
   node is machine-wide: this waits (up to ``--lock-timeout``) for whoever holds it, e.g. an e2e run.
   Start-up is timed from taking the lock: cluster, host services, image, install (rollouts).
2. Pushes iris (LogisticRegression) to the control plane pod and runs ``pier deploy -f iris.yaml
   --wait`` with ``PIER_REMOTE`` set to the control plane pod's IP, the spec naming only the model
   (one replica, the default resources: 1 CPU, Guaranteed QoS). Reports deploy -> ready (the command
   returns) and ready -> the first 200 from a gateway pod (polling a V2 infer every 50 ms).
3. Starts two ``pier up --no-example`` with the same model and deploys it the same way (timed too,
   for reference): one pinned to core 0 (``taskset``, as ``benchmarks/platform/run.py``), one
   unpinned, as the pods are. Then, in interleaved rounds (which path goes first rotates per round),
   ``wrk -t1`` on core 1 at c=8 and c=64 with the V2 JSON body of one row
   (``benchmarks/platform/common.py``) against: one gateway pod by its IP, the model pod by its IP,
   and each local platform's gateway and replica. Medians are reported.
   The pods are NOT pinned: kubelet places them in cgroups with CFS quotas (the model pod 1 CPU, a
   gateway pod a limit of 2 CPUs) on both cores, so they share core 1 with wrk, as the unpinned
   local platform does; the pinned one shares core 0 with whatever else the machine runs.
4. Stops everything (local platform, cluster, host services), also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks" / "platform"))
from common import body_for, free_port, lua_script, stop_pier_up, wait_ready, wrk  # noqa: E402
from tests.support.k8s_node import unavailable  # noqa: E402
from tests.support.k8s_platform import Platform, start_platform  # noqa: E402
from tests.support.procs import ADMIN_TOKEN  # noqa: E402

BIN = Path(sys.executable).parent
SPEC = ("apiVersion: modelpier.io/v1alpha1\nkind: ModelDeployment\nmetadata: {name: iris}\n"
        "spec: {predictors: [{model: 'iris:1'}]}\n")
PATH = "/default/iris/v2/models/iris/infer"
# (label, taskset CPU list or None) of the two local platforms: pinned as benchmarks/platform runs it, and
# unpinned as the pods are.
LOCALS = (("core 0", "0"), ("unpinned", None))
SYSTEMS = ("gateway pod", "model pod direct",
           *(f"local {part}, {label}" for label, _ in LOCALS for part in ("gateway", "replica direct")))


def first_200(url: str, body: str, timeout_s: float = 300) -> float:
    """Seconds until a POST of ``body`` to ``url`` answers 200, polling every 50 ms."""
    started = time.monotonic()
    with httpx.Client(timeout=2) as client:
        while time.monotonic() - started < timeout_s:
            try:
                if client.post(url, content=body, headers={"content-type": "application/json"}).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer 200 within {timeout_s:g} s")


def save_iris(home: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import modelpier
    from modelpier.settings import load_settings

    x, y = load_iris(return_X_y=True)
    modelpier.save_model("iris", LogisticRegression(max_iter=1000).fit(x, y), input_example=x[:2].tolist(),
                         settings=load_settings(home=home))


def deploy_on_kubernetes(platform: Platform, body: str) -> dict[str, float]:
    """iris pushed and deployed through the control plane pod; the timings of step 2."""
    platform.cluster.kubectl("-n", "default", "create", "secret", "generic", "modelpier-registry-token",
                             f"--from-literal=token={ADMIN_TOKEN}")
    save_iris(platform.home)
    platform.pier("models", "push", "iris:1", "--remote", platform.control_url)
    spec = platform.home / "iris.yaml"
    spec.write_text(SPEC)
    gateway = platform.gateway_urls()[0]
    wall, started = time.time(), time.monotonic()
    platform.pier("deploy", "-f", str(spec), "--wait", timeout=600)
    ready = time.monotonic() - started
    first = first_200(gateway + PATH, body)
    timings = {"deploy -> ready": ready, "ready -> first prediction": first,
               "deploy -> first prediction": ready + first}
    # Where the pod's part went, from its conditions (whole seconds, as the API server records them).
    pod = platform.model_pods("iris")[0]
    marks = {"pod created": pod["metadata"]["creationTimestamp"]}
    marks |= {f"pod {c['type']}": c["lastTransitionTime"] for c in pod["status"].get("conditions", [])}
    for label, stamp in marks.items():
        at = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC).timestamp()
        timings[label] = at - wall
    return timings


@contextmanager
def local_platform(work: Path, body: str, label: str, cpus: str | None, ports: int
                   ) -> Iterator[tuple[dict[str, str], dict[str, float]]]:
    """``pier up`` (under ``taskset -c CPUS`` when given: its replicas inherit it) serving iris; yields
    its gateway and replica URLs and its deploy timings. ``ports``: the first of 200 replica ports."""
    home = work / f"local-{label.replace(' ', '-')}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIER_")}
    env.update(PIER_HOME=str(home), PIER_USER="bench", PIER_LOG_LEVEL="warning",
               PIER_PLATFORM__REPLICA_PORT_MIN=str(ports), PIER_PLATFORM__REPLICA_PORT_MAX=str(ports + 199))
    save_iris(home)
    api_port, gw_port = free_port(), free_port()
    api, gateway = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{gw_port}"
    pin = ["taskset", "-c", cpus] if cpus else []
    with (home / "up.log").open("ab") as log:
        up = subprocess.Popen([*pin, str(BIN / "pier"), "up", "--no-example", "--port", str(api_port),
                               "--gateway-port", str(gw_port),
                               "--gateway-grpc-port", "0"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(f"{gateway}/healthz", timeout_s=60)
        (home / "iris.yaml").write_text(SPEC)
        started = time.monotonic()
        done = subprocess.run([str(BIN / "pier"), "deploy", "-f", str(home / "iris.yaml"), "--wait", "--remote", api],
                              env=env, capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"local pier deploy failed: {done.stdout}\n{done.stderr}")
        ready = time.monotonic() - started
        first = first_200(gateway + PATH, body)
        state = json.loads((home / "replicas" / "state.json").read_text())
        replica = next(r for r in state["replicas"] if r["spec"]["deployment"] == "iris")
        yield ({f"local gateway, {label}": gateway + PATH,
                f"local replica direct, {label}": f"http://127.0.0.1:{replica['port']}/v2/models/iris/infer"},
               {"deploy -> ready": ready, "ready -> first prediction": first,
                "deploy -> first prediction": ready + first})
    finally:
        stop_pier_up(up, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of load (default 3)")
    parser.add_argument("--duration", type=float, default=6, help="seconds of load per cell (default 6)")
    parser.add_argument("--concurrency", default="8,64", help="wrk connections, comma-separated (default 8,64)")
    parser.add_argument("--lock-timeout", type=float, default=3600,
                        help="seconds to wait for another session's node (default 3600)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill PID` unwinds like Ctrl-C: all stopped
    os.environ.setdefault("KUBEBUILDER_ASSETS", str(Path.home() / ".cache" / "modelpier" / "k8s-assets"))
    os.environ.setdefault("PIER_TEST_K8S_NODE", "1")
    reason = unavailable()
    if reason:
        sys.exit(f"no real node here: {reason}")
    concurrency = [int(c) for c in args.concurrency.split(",")]
    body = body_for("iris")
    work = Path(tempfile.mkdtemp(prefix="pier-bench-k8s-"))
    script = lua_script(work, "iris", body)
    print(f"load average at the start {os.getloadavg()[0]:.2f}; waiting for the node lock", flush=True)
    waited = time.monotonic()
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)  # runs last: after every process stopped
        platform = stack.enter_context(start_platform(work / "k8s", lock_timeout=args.lock_timeout))
        lock_wait = platform.cluster.locked_at - waited
        print(f"platform up {platform.seconds} s (image {platform.image.seconds}); "
              f"waited {lock_wait:.0f} s for the node lock", flush=True)
        k8s_deploy = deploy_on_kubernetes(platform, body)
        print(f"kubernetes: { {k: round(v, 2) for k, v in k8s_deploy.items()} }", flush=True)
        gateway_pod = platform.gateway_urls()[0]
        model_pod = platform.model_pods("iris")[0]["status"]["podIP"]
        urls = {"gateway pod": gateway_pod + PATH, "model pod direct": f"http://{model_pod}:8080/v2/models/iris/infer"}
        local_deploy = {}
        for i, (label, cpus) in enumerate(LOCALS):
            local, local_deploy[label] = stack.enter_context(local_platform(work, body, label, cpus, 37200 + 200 * i))
            print(f"local, {label}: { {k: round(v, 2) for k, v in local_deploy[label].items()} }", flush=True)
            urls.update(local)
        results: dict[tuple[str, int], list[dict[str, float]]] = {}
        for round_no in range(1, args.rounds + 1):
            shift = 2 * (round_no - 1) % len(SYSTEMS)  # each pair of paths goes first in some round
            order = SYSTEMS[shift:] + SYSTEMS[:shift]
            for system in order:
                wrk(urls[system], script, 8, 2)  # warm-up, not recorded
                for c in concurrency:
                    r = wrk(urls[system], script, c, args.duration)
                    results.setdefault((system, c), []).append(r)
                    print(f"round {round_no} {system:32} c={c:<3} {r['rps']:8.0f} req/s p50 {r['p50']:7.2f} ms "
                          f"p99 {r['p99']:7.2f} ms non-2xx {r['errors']:.0f}", flush=True)
        print(report(platform, k8s_deploy=k8s_deploy, local_deploy=local_deploy, lock_wait=lock_wait,
                     results=results, concurrency=concurrency, args=args))


def report(platform: Platform, *, k8s_deploy: dict[str, float], local_deploy: dict[str, dict[str, float]],
           lock_wait: float,
           results: dict[tuple[str, int], list[dict[str, float]]], concurrency: list[int],
           args: argparse.Namespace) -> str:
    def med(system: str, c: int, field: str) -> float:
        return statistics.median(r[field] for r in results[(system, c)])

    seconds = platform.seconds
    lines = ["", f"platform up in {seconds['total']:.0f} s from taking the node lock (waited {lock_wait:.0f} s): "
                 + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items() if k != "total")
                 + f"; image {platform.image.seconds}", "",
             "| iris, one replica | deploy -> ready (`pier deploy --wait` returns) | ready -> first prediction "
             "| deploy -> first prediction |", "|---|---|---|---|"]
    rows = [("Kubernetes (pods, through a gateway pod)", k8s_deploy)]
    rows += [(f"local `pier up`, {label} (processes, for reference)", t) for label, t in local_deploy.items()]
    for label, t in rows:
        lines.append(f"| {label} | {t['deploy -> ready']:.1f} s | {t['ready -> first prediction']:.2f} s "
                     f"| {t['deploy -> first prediction']:.1f} s |")
    pod = {k: v for k, v in k8s_deploy.items() if k.startswith("pod ")}
    lines += ["", "the model pod, seconds after `pier deploy` started (API server timestamps, whole seconds): "
              + ", ".join(f"{k.removeprefix('pod ')} {v:.0f}" for k, v in sorted(pod.items(), key=lambda kv: kv[1]))]
    lines += ["", f"medians of {args.rounds} interleaved rounds of {args.duration:g} s; wrk -t1 on core 1; "
                  f"load average at the end {os.getloadavg()[0]:.2f}", "",
              "| path | " + " | ".join(f"c={c} req/s (p50 / p99 ms)" for c in concurrency) + " |",
              "|---|" + "---|" * len(concurrency)]
    for system in SYSTEMS:
        cells = []
        for c in concurrency:
            errors = med(system, c, "errors")
            cells.append(f"{med(system, c, 'rps'):,.0f} ({med(system, c, 'p50'):.2f} / {med(system, c, 'p99'):.2f})"
                         + (f" {errors:.0f} non-2xx" if errors else ""))
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    lines += ["", "| ratio of medians | " + " | ".join(f"c={c}" for c in concurrency) + " |",
              "|---|" + "---|" * len(concurrency)]
    pairs = [(f"gateway pod / local gateway, {label}", "gateway pod", f"local gateway, {label}") for label, _ in LOCALS]
    pairs.append(("gateway pod / model pod direct", "gateway pod", "model pod direct"))
    pairs += [(f"local gateway / local replica direct, {label}", f"local gateway, {label}",
               f"local replica direct, {label}") for label, _ in LOCALS]
    for label, ours, theirs in pairs:
        lines.append(f"| {label} | " + " | ".join(f"{med(ours, c, 'rps') / med(theirs, c, 'rps'):.2f}"
                                                  for c in concurrency) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    t0 = time.monotonic()
    main()
    print(f"\n(run took {time.monotonic() - t0:.0f} s)")
