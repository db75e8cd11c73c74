"""Benchmark: N deployments applied at once on the Kubernetes backend (issue 16): time until every pod
is created and every deployment serves, and the API requests it takes (one LIST + WATCH, not polling).

Run (a control plane is started and stopped here, ~10 s; see ../shared/k8s/README.md):

    KUBEBUILDER_ASSETS=~/.cache/modelpier/k8s-assets PIER_TEST_CLUSTER_SCRIPT=../shared/k8s/test-cluster.sh \\
        .venv/bin/python benchmarks/kubernetes/scale.py [--deployments 200] [--rounds 1]

Real: kube-apiserver + kube-controller-manager v1.28 (``test-cluster.sh`` through the tests' helper, on
loopback, with its own bridge and node names so it touches no other cluster), the SQL deployment
store (SQLite in a throwaway home), and the unchanged ``Reconciler`` over ``KubernetesBackend``
with the composition root's plan policy; the namespace enforces PodSecurity ``restricted``, so
admission checks every pod. Simulated: the node, alone. No scheduler or kubelet runs; a child
process (its own API client, LIST + WATCH of the namespace's pods) binds each new pod to a ``Node``
it keeps Ready and writes the pod's status (Running, Ready, a loopback pod IP), at once. The
backend takes readiness from the pod's Ready condition (the kubelet's probe), so no server listens
at those IPs and nothing is sent to them.

Each round: a fresh namespace and store; one warm-up pass over the empty store (the backend's
informers LIST and start their WATCH); then N one-replica deployments applied to the store in one
go; then reconcile passes every ``platform.reconcile_interval_s`` (0.5 s), as ``Reconciler.run``
spaces them, driven here one by one so each is timed, until every deployment is serving (its status
reports revision 1 rolled out with its replica ready). Then a few later passes over the serving
deployments, timed, with the requests they make (none expected: observing reads the watch's cache).
API requests are the backend client's own counts, by verb and resource (``GET pods`` is the LIST).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from queue import Empty
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support import k8s  # noqa: E402

from modelpier._lib.clock import SystemClock  # noqa: E402
from modelpier.backends.kubernetes.backend import KubernetesBackend  # noqa: E402
from modelpier.backends.kubernetes.crd import custom_resource_definition  # noqa: E402
from modelpier.backends.kubernetes.kubeapi import KubeApi, KubeApiError  # noqa: E402
from modelpier.control.platform import plan_policy  # noqa: E402
from modelpier.control.reconciler.loop import Reconciler  # noqa: E402
from modelpier.control.store.store import SqlDeploymentStore  # noqa: E402
from modelpier.settings import Settings, load_settings  # noqa: E402
from modelpier.spec.deployment import ModelDeploymentSpec, ModelDeploymentStatus  # noqa: E402
from modelpier.spec.revision import RevisionKind  # noqa: E402
from modelpier.spec.routing import RoutingTable  # noqa: E402

NODE = "bench-node"
STEADY_PASSES = 5
NODE_WORKERS = 16  # pods the played node binds and reports at a time (a scheduler and kubelet work in parallel)
HEARTBEAT_S = 10.0  # the node's status heartbeat: the node lifecycle controller wants one within 40 s


# -- the played node (a child process) --------------------------------------------------------------

def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod_ip(i: int) -> str:
    """The i-th pod's address: 127.0.0.2, 127.0.0.3 ... (all of 127/8 is loopback: never routed off this machine)."""
    j = i + 2
    return f"127.{j >> 16 & 255}.{j >> 8 & 255}.{j & 255}"


def play_node(kubeconfig: str, namespace: str, expected: int, events: Any) -> None:
    """Child process entry: see the module docstring. Reports to ``events`` (a queue) as
    ``(what, monotonic time, detail)``; ends when the parent stops it or dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it, after a Ctrl-C too
    asyncio.run(_play(kubeconfig, namespace, expected, events))


async def _play(kubeconfig: str, namespace: str, expected: int, events: Any) -> None:
    api = KubeApi.connect(kubeconfig)
    parent = os.getppid()
    try:
        await api.create("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}})
    except KubeApiError as exc:
        if exc.status != 409:
            raise
    heartbeat = asyncio.create_task(_heartbeat(api, parent))
    workers = asyncio.Semaphore(NODE_WORKERS)
    seen: set[str] = set()
    done = {"bound": 0, "ready": 0}
    tasks: set[asyncio.Task[None]] = set()

    async def run_pod(name: str, ip: str) -> None:
        path = f"/api/v1/namespaces/{namespace}/pods/{name}"
        async with workers:
            try:
                await api.create(f"{path}/binding", {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                                                     "target": {"apiVersion": "v1", "kind": "Node", "name": NODE}})
                done["bound"] += 1
                if done["bound"] == expected:
                    events.put(("all_bound", time.monotonic(), None))
                await api.merge_patch(f"{path}/status", {"status": {
                    "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "127.0.0.1",
                    "startTime": _now(),
                    "conditions": [{"type": t, "status": "True", "lastTransitionTime": _now()}
                                   for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
                    "containerStatuses": [{"name": "server", "image": "x", "imageID": "", "ready": True,
                                           "restartCount": 0, "started": True,
                                           "state": {"running": {"startedAt": _now()}}}]}})
            except KubeApiError as exc:
                events.put(("error", time.monotonic(), f"pod {name}: {exc}"))
                return
            done["ready"] += 1
            if done["ready"] == expected:
                events.put(("all_ready", time.monotonic(), dict(api.requests)))

    def consider(pod: dict[str, Any]) -> None:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        name = meta.get("name", "")
        if name in seen or spec.get("nodeName") or meta.get("deletionTimestamp"):
            return
        seen.add(name)
        task = asyncio.create_task(run_pod(name, pod_ip(len(seen) - 1)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    path = f"/api/v1/namespaces/{namespace}/pods"
    try:
        listed = await api.request("GET", path)
        version = str(listed["metadata"]["resourceVersion"])
        for pod in listed.get("items") or []:
            consider(pod)
        events.put(("watching", time.monotonic(), None))
        while True:  # a watch ends after its timeout: renew it from the last version seen
            async for event in api.watch(path, resource_version=version, timeout_s=300):
                obj = event.get("object") or {}
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if event.get("type") in ("ADDED", "MODIFIED"):
                    consider(obj)
    finally:
        heartbeat.cancel()
        await api.close()


async def _heartbeat(api: KubeApi, parent: int) -> None:
    """Keep the Node Ready (its status heartbeat), as a kubelet does; exit if the parent died."""
    while True:
        if os.getppid() != parent:
            os._exit(0)
        with contextlib.suppress(KubeApiError):  # the next beat retries; one miss is far inside the 40 s grace
            await api.merge_patch(f"/api/v1/nodes/{NODE}/status", {"status": {"conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "played by the benchmark",
                 "lastHeartbeatTime": _now(), "lastTransitionTime": _now()}]}})
        for _ in range(int(HEARTBEAT_S)):
            await asyncio.sleep(1)
            if os.getppid() != parent:
                os._exit(0)


class PlayedNode:
    """The child process and what it reported."""

    def __init__(self, kubeconfig: Path, namespace: str, expected: int) -> None:
        ctx = mp.get_context("spawn")
        self.events: Any = ctx.Queue()
        self.proc = ctx.Process(target=play_node, args=(str(kubeconfig), namespace, expected, self.events),
                                name="played node", daemon=True)
        self.seen: dict[str, tuple[float, Any]] = {}
        self.errors: list[str] = []

    def start(self, timeout: float = 60) -> None:
        self.proc.start()
        deadline = time.monotonic() + timeout
        while "watching" not in self.seen:
            if time.monotonic() > deadline or not self.proc.is_alive():
                raise RuntimeError(f"the played node did not start watching pods: {self.errors}")
            self.poll(wait=0.2)

    def poll(self, wait: float = 0.0) -> None:
        try:
            while True:
                what, at, detail = self.events.get(timeout=wait) if wait else self.events.get_nowait()
                wait = 0.0
                if what == "error":
                    self.errors.append(str(detail))
                else:
                    self.seen[what] = (at, detail)
        except Empty:
            pass

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


# -- one round -------------------------------------------------------------------------------------

@dataclass
class Round:
    apply_s: float = 0.0  # the N applies to the store
    created_s: float = 0.0  # t0 (first pass starts) -> the last pod's apply returned
    node_bound_s: float = 0.0
    node_ready_s: float = 0.0  # t0 -> the played node wrote the last pod's Ready status
    serving_s: float = 0.0  # t0 -> the pass that saw every deployment serving ended
    passes: int = 0
    pass_s: list[float] = field(default_factory=list)
    warm: Counter[str] = field(default_factory=Counter)  # the warm-up pass's requests (LIST + WATCH)
    rollout: Counter[str] = field(default_factory=Counter)  # requests from t0 until serving
    steady_s: list[float] = field(default_factory=list)
    steady_requests: int = 0
    node_requests: dict[str, int] = field(default_factory=dict)


def spec() -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({"predictors": [
        {"name": "main", "model": "iris:1", "replicas": 1, "resources": {"cpu": "100m", "memory": "256Mi"}}]})


def serving(status: ModelDeploymentStatus) -> bool:
    return status.observed_revision == 1 and status.desired_replicas == 1 and status.ready_replicas == 1


class Run:
    """One round's parts: the store, the backend, the reconciler over them, and what its passes saw."""

    def __init__(self, store: SqlDeploymentStore, backend: KubernetesBackend, settings: Settings) -> None:
        self.store, self.backend = store, backend
        self.interval = settings.platform.reconcile_interval_s
        self.serving_at: dict[tuple[str, str], float] = {}  # the first status of each deployment saying so
        self.table = RoutingTable()
        self.reconciler = Reconciler(store, backend, SystemClock(), endpoint_base="http://gateway.bench",
                                     publish=self._publish, policy=plan_policy(settings), interval_s=self.interval,
                                     on_status=self._on_status)

    def _publish(self, table: RoutingTable) -> None:
        self.table = table

    def _on_status(self, key: tuple[str, str], status: ModelDeploymentStatus) -> None:
        if key not in self.serving_at and serving(status):
            self.serving_at[key] = time.monotonic()

    def apply_all(self, n: int) -> None:
        self.store.ensure_project("default")
        for i in range(n):
            self.store.apply("default", f"d{i:04d}", spec(), resolved={"main": "iris:1"}, created_by="bench",
                             kind=RevisionKind.APPLIED, cause="applied")

    async def until_serving(self, n: int, node: PlayedNode, out: Round, limit_s: float) -> None:
        """Passes every ``interval`` from now until every deployment serves; fills ``out``'s times."""
        t0 = time.monotonic()
        while len(self.serving_at) < n:
            if time.monotonic() - t0 > limit_s:
                raise RuntimeError(f"{len(self.serving_at)} of {n} deployments serving after {limit_s:.0f} s; "
                                   f"node: {sorted(node.seen)}, errors: {node.errors[:5]}, "
                                   f"reconciler failures: {dict(self.reconciler.failures)}")
            begun = time.monotonic()
            await self.reconciler.reconcile_once()
            out.pass_s.append(time.monotonic() - begun)
            out.passes += 1
            if not out.created_s and self.backend.api_requests["PATCH pods"] - out.warm["PATCH pods"] >= n:
                out.created_s = time.monotonic() - t0
            node.poll()
            if len(self.serving_at) < n:
                await asyncio.sleep(self.interval)
        out.serving_s = time.monotonic() - t0
        out.rollout = Counter(self.backend.api_requests) - out.warm
        node.poll(wait=0.0 if "all_ready" in node.seen else 1.0)
        out.node_bound_s = node.seen["all_bound"][0] - t0 if "all_bound" in node.seen else math.nan
        out.node_ready_s = node.seen["all_ready"][0] - t0 if "all_ready" in node.seen else math.nan
        out.node_requests = dict(node.seen["all_ready"][1]) if "all_ready" in node.seen else {}

    def check(self, n: int) -> None:
        """The store and the routing table agree: every deployment serves revision 1 on its one pod."""
        records = self.store.list_deployments()
        if len(records) != n or any(r.serving_revision != 1 or r.status.ready_replicas != 1 for r in records):
            raise RuntimeError("the store does not show every deployment serving")
        routes = list(self.table.deployments.values())
        if len(routes) != n or any(len(p.replicas) != 1 for r in routes for p in r.predictors):
            raise RuntimeError("the routing table does not route to every deployment's pod")
        if self.reconciler.failures:
            raise RuntimeError(f"reconciler failures: {dict(self.reconciler.failures)}")

    async def steady(self, out: Round) -> None:
        before = sum(self.backend.api_requests.values())
        for _ in range(STEADY_PASSES):
            await asyncio.sleep(self.interval)
            begun = time.monotonic()
            await self.reconciler.reconcile_once()
            out.steady_s.append(time.monotonic() - begun)
        out.steady_requests = sum(self.backend.api_requests.values()) - before


async def one_round(cluster: k8s.ControlPlane, n: int, home: Path, limit_s: float) -> Round:
    out = Round()
    namespace = cluster.new_namespace("bench")
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    settings = load_settings(home=home, kubernetes={
        "kubeconfig": str(cluster.kubeconfig), "namespace": namespace, "image": "registry.test/modelpier:1",
        "registry_url": "http://127.0.0.1:8600"})
    store = SqlDeploymentStore.open(settings.resolved_database_url)
    node = PlayedNode(cluster.kubeconfig, namespace, n)
    backend: KubernetesBackend | None = None
    try:
        node.start()
        backend = KubernetesBackend(settings)
        run = Run(store, backend, settings)
        await run.reconciler.reconcile_once()  # warm-up over an empty store: the informers list and watch
        out.warm = Counter(backend.api_requests)
        start = time.monotonic()
        await asyncio.to_thread(run.apply_all, n)
        out.apply_s = time.monotonic() - start
        await run.until_serving(n, node, out, limit_s)
        run.check(n)
        await run.steady(out)
        return out
    finally:
        if backend is not None:
            await backend.close()
        node.stop()
        store.close()
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


# -- report ----------------------------------------------------------------------------------------

def report(n: int, rounds: list[Round]) -> None:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    for i, r in enumerate(rounds, 1):
        print(f"round {i}: applied {n} in {r.apply_s:.2f} s; all pods created {r.created_s:.2f} s, node bound all "
              f"{r.node_bound_s:.2f} s, node reported all Ready {r.node_ready_s:.2f} s, every deployment serving "
              f"{r.serving_s:.2f} s after the first pass began ({r.passes} passes; first {r.pass_s[0]:.2f} s, "
              f"later median {med(r.pass_s[1:] or [0.0]) * 1000:.0f} ms); steady pass median "
              f"{med(r.steady_s) * 1000:.1f} ms, {r.steady_requests} requests in {STEADY_PASSES} passes", flush=True)
    last = rounds[-1]
    print(f"\nAPI requests of the backend ({n} deployments; warm-up = informers starting over an empty store):")
    print("| verb resource | warm-up | rollout | per deployment |\n|---|---:|---:|---:|")
    for key in sorted(set(last.warm) | set(last.rollout)):
        print(f"| {key} | {last.warm[key]} | {last.rollout[key]} | {last.rollout[key] / n:.3f} |")
    total = sum(last.rollout.values())
    print(f"| total | {sum(last.warm.values())} | {total} | {total / n:.3f} |")
    if last.node_requests:
        print(f"played node's own requests (not the backend's): {last.node_requests}")
    print(f"\nmedians over {len(rounds)} round(s), {n} deployments x 1 replica:")
    print("| measure | value |\n|---|---:|")
    rows = [("N applies to the store (SQLite)", f"{med([r.apply_s for r in rounds]):.2f} s"),
            ("all pods created (first pass)", f"{med([r.created_s for r in rounds]):.2f} s"),
            ("node reported every pod Ready", f"{med([r.node_ready_s for r in rounds]):.2f} s"),
            ("every deployment serving", f"{med([r.serving_s for r in rounds]):.2f} s"),
            ("API requests per deployment during the rollout",
             f"{med([sum(r.rollout.values()) / n for r in rounds]):.3f}"),
            ("later pass over the serving deployments",
             f"{med([s for r in rounds for s in r.steady_s]) * 1000:.1f} ms"),
            ("API requests per later pass", f"{med([r.steady_requests / STEADY_PASSES for r in rounds]):g}")]
    for name, value in rows:
        print(f"| {name} | {value} |")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


async def bench(args: argparse.Namespace, cluster: k8s.ControlPlane, work: Path) -> list[Round]:
    cluster.apply(custom_resource_definition())  # as the platform install does: the backend also watches CRs
    cluster.kubectl("wait", "--for=condition=Established", "crd/modeldeployments.modelpier.io", "--timeout=60s")
    limit_s = args.timeout or 120 + args.deployments * 0.5
    return [await one_round(cluster, args.deployments, work / f"round-{i}", limit_s) for i in range(args.rounds)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Apply N one-replica deployments at once to the reconciler over the Kubernetes backend, "
                    "against a real kube-apiserver + controller manager; the node is the only simulated piece (a child "
                    "process binds each pod and writes its Ready status with a loopback IP; no kubelet, no model "
                    "servers). Print the time until "
                    "every pod is created and every deployment serves, the backend's API requests by verb and "
                    "resource (total and per deployment), and the time and requests of later steady passes. "
                    "Needs KUBEBUILDER_ASSETS (etcd, kube-apiserver, kube-controller-manager) and test-cluster.sh "
                    "(PIER_TEST_CLUSTER_SCRIPT, or ../shared/k8s).")
    parser.add_argument("--deployments", type=int, default=200, help="deployments applied at once (default 200)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds, each in a fresh namespace and store on the same cluster (default 1)")
    parser.add_argument("--timeout", type=float, default=0.0,
                        help="seconds a round may take to serve everything (default 120 + 0.5 per deployment)")
    args = parser.parse_args()
    if args.deployments < 1 or args.rounds < 1:
        parser.error("--deployments and --rounds must be at least 1")
    why = k8s.unavailable()
    if why is not None:
        parser.exit(2, f"no Kubernetes control plane: {why}\n")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill stops the cluster as Ctrl-C does
    work = Path(tempfile.mkdtemp(prefix="pier-bench-k8s-"))
    try:
        started = time.monotonic()
        with k8s.control_plane(work / "kube") as cluster:
            print(f"control plane up in {time.monotonic() - started:.1f} s; load average "
                  f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
            rounds = asyncio.run(bench(args, cluster, work))
        report(args.deployments, rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
