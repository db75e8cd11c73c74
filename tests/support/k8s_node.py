"""A real Kubernetes v1.28 cluster with a real node, and the host services its pods use.

``../shared/k8s/test-cluster.sh`` (see its README) starts etcd, kube-apiserver and
kube-controller-manager on loopback (``start``) and a real node (``node``: containerd, runc, the
CNI bridge (``BRIDGE``) on 10.199.0.0/24, kubelet, kube-scheduler and a local OCI registry). The
binaries come from ``KUBEBUILDER_ASSETS`` as envtest reads them; without it, or without root (the
node needs it), ``unavailable()`` says why and the tests skip.

The node's bridge, pod network and containerd state directory are machine-wide, so one node runs
on the machine at a time: ``start_cluster`` holds an exclusive lock for as long as the cluster runs.
Starting and stopping (names of the node's own, a watchdog that stops it should the test process
die) is ``tests/support/k8s.py``'s ``Script``, the same as for a control plane alone.
Pods reach the host at ``BRIDGE_ADDRESS``; ``host_postgres`` and ``host_s3`` listen where they can
(all interfaces), PostgreSQL admitting loopback and the pod network only.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support import k8s
from tests.support.platform_image import cache_root
from tests.support.procs import free_port, http_ok, wait_until
from tests.support.watchdog import watch

BRIDGE = "kpier-e2e0"
BRIDGE_ADDRESS = "10.199.0.1"  # the node's pods reach the host here (README of ../shared/k8s)
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")


NODE_TESTS_VARIABLE = "PIER_TEST_K8S_NODE"


def unavailable() -> str | None:
    """Why a cluster with a node cannot start here, or ``None``."""
    why = k8s.unavailable()
    if why is not None:
        return why
    if os.environ.get(NODE_TESTS_VARIABLE) != "1":
        # Asked for: the real node, its image and its e2e take ~7 min and one machine-wide lock; `make test`
        # and `make test-k8s-node` set the variable where ../shared/k8s is, a bare `pytest` does not.
        return f"the real-node tests run with {NODE_TESTS_VARIABLE}=1 (make test, make test-k8s-node)"
    if os.geteuid() != 0:
        return "a real node (kubelet, containerd, CNI bridge) needs root"
    if not POSTGRES_BIN.is_dir():
        return "PostgreSQL 15 is not installed (scripts/install-system-deps.sh installs it)"
    return None


@dataclass(frozen=True)
class Cluster(k8s.ControlPlane):
    registry: str  # HOST:PORT of the node's OCI registry (plain HTTP)
    locked_at: float = 0.0  # time.monotonic() when the node lock was taken: start-up time counts from here

    def logs(self) -> str:
        """The tail of each component's log: what a failing test prints."""
        return k8s.logs(self.dir)


@contextmanager
def node_lock(timeout: float = 600) -> Iterator[int]:
    """The machine's one node: wait for whoever holds it (another session), then hold it; yields
    the locked file descriptor (a watchdog that stops the node keeps it open until it is done)."""
    path = cache_root() / "k8s-node.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"another session held {path} for {timeout:.0f} s") from None
                time.sleep(1)
        try:
            yield handle.fileno()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def start_cluster(folder: Path, *, lock_timeout: float = 600) -> Iterator[Cluster]:
    """Cluster and node in ``folder``; everything stopped (pods deleted, sysctls restored) on exit,
    on failure, and by a watchdog should this process die. Waits up to ``lock_timeout`` seconds for
    another session's node."""
    # The node's own bridge (the script's default ``ktest0`` is what older control-plane fixtures
    # deleted on `stop`); the node keeps the hostname, which the API server uses to reach the kubelet.
    script = k8s.Script(folder, bridge=BRIDGE, node=os.environ.get("TEST_NODE_NAME") or os.uname().nodename)
    with node_lock(lock_timeout) as lock:
        locked_at = time.monotonic()
        with script.running(hold=(lock,)):
            script.must("node", 600)
            cluster = Cluster(dir=folder, kubeconfig=folder / "kubeconfig",
                              registry=(folder / "registry").read_text().strip(), locked_at=locked_at)
            with _kube_proxy(cluster), _api_for_pods(cluster):
                yield cluster


@contextmanager
def _api_for_pods(cluster: Cluster) -> Iterator[None]:
    """The API server for pods (an in-cluster control plane): it listens on loopback only and its
    ``kubernetes`` Service has no endpoints (``--endpoint-reconciler-type=none``), so forward the
    bridge address to it (socat) and give the Service that endpoint; kube-proxy does the rest. The
    bridge is made here (the CNI plugin adopts it), so the forwarder can bind before the first pod."""
    port = int(cluster.server.rsplit(":", 1)[1])
    if not Path(f"/sys/class/net/{BRIDGE}").exists():
        for argv in (["ip", "link", "add", BRIDGE, "type", "bridge"],
                     ["ip", "addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", BRIDGE], ["ip", "link", "set", BRIDGE, "up"]):
            subprocess.run(argv, check=True, capture_output=True, timeout=30)
    proc = subprocess.Popen(["socat", f"TCP-LISTEN:{port},bind={BRIDGE_ADDRESS},fork,reuseaddr",
                             f"TCP:127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    guard = watch(proc.pid)
    slice_ = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": {"name": "kubernetes-for-pods", "namespace": "default",
                           "labels": {"kubernetes.io/service-name": "kubernetes"}},
              "addressType": "IPv4", "endpoints": [{"addresses": [BRIDGE_ADDRESS], "conditions": {"ready": True}}],
              "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}
    try:
        cluster.kubectl("apply", "-f", "-", stdin=json.dumps(slice_))
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        guard.release()


@contextmanager
def _kube_proxy(cluster: Cluster) -> Iterator[None]:
    """kube-proxy (iptables mode) so ClusterIP Services route to pods; its rules removed on exit."""
    binary = Path(os.environ["KUBEBUILDER_ASSETS"]) / "kube-proxy"
    if not binary.exists():
        script = k8s.cluster_script()
        assert script is not None
        subprocess.run(["bash", "-c", f'xz -dc "{script.parent}/kube-proxy.xz" > "{binary}.tmp" && chmod +x '
                                      f'"{binary}.tmp" && mv "{binary}.tmp" "{binary}"'], check=True, timeout=60)
    node = os.environ.get("TEST_NODE_NAME") or os.uname().nodename
    log = cluster.dir / "logs" / "kube-proxy.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(binary), f"--kubeconfig={cluster.kubeconfig}", f"--hostname-override={node}",
                                 "--cluster-cidr=10.199.0.0/24", "--proxy-mode=iptables",
                                 f"--metrics-bind-address=127.0.0.1:{free_port()}",
                                 f"--healthz-bind-address=127.0.0.1:{free_port()}"], stdout=out, stderr=out)
    guard = watch(proc.pid)
    try:
        wait_until(lambda: proc.poll() is not None or "Caches are synced for service config" in log.read_text(),
                   timeout=30, what="kube-proxy")
        if proc.poll() is not None:
            raise AssertionError(f"kube-proxy exited:\n{log.read_text()[-2000:]}")
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        guard.release()
        subprocess.run([str(binary), "--cleanup"], capture_output=True, timeout=60, check=False)


@dataclass(frozen=True)
class Postgres:
    port: int
    password: str

    def url(self, host: str) -> str:
        return f"postgresql+psycopg://modelpier:{self.password}@{host}:{self.port}/modelpier"


def _as_postgres(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c", command], capture_output=True, text=True,
                          timeout=120, check=False)


@contextmanager
def host_postgres(password: str = "pier-e2e-password") -> Iterator[Postgres]:  # noqa: S107  # a throwaway server
    """PostgreSQL 15 in a fresh folder on all interfaces: trust on loopback, a password from the pod
    network, nothing else (pg_hba rejects what no line matches). Database and role ``modelpier``."""
    import psycopg

    folder = Path(tempfile.mkdtemp(prefix="pier-k8s-pg-"))  # the postgres user must reach it
    shutil.chown(folder, "postgres", "postgres")
    port, data = free_port(), folder / "data"
    guard = None
    try:
        done = _as_postgres(f"{POSTGRES_BIN}/initdb -D {data} -A trust -U postgres")
        if done.returncode != 0:
            raise AssertionError(f"initdb failed:\n{done.stdout}{done.stderr}")
        (data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n"
                                          "host all all 10.199.0.0/24 scram-sha-256\n")
        options = (f"-p {port} -k {folder} -c listen_addresses='*' -c max_connections=200 -c fsync=off "
                   f"-c synchronous_commit=off -c full_page_writes=off")
        done = _as_postgres(f'{POSTGRES_BIN}/pg_ctl -D {data} -o "{options}" -l {folder}/log -w start')
        if done.returncode != 0:
            raise AssertionError(f"PostgreSQL did not start:\n{done.stdout}{done.stderr}")
        guard = watch(int((data / "postmaster.pid").read_text().split()[0]), sig=signal.SIGINT)
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE ROLE modelpier LOGIN PASSWORD '{password}'")
            conn.execute("CREATE DATABASE modelpier OWNER modelpier")
        yield Postgres(port=port, password=password)
    finally:
        _as_postgres(f"{POSTGRES_BIN}/pg_ctl -D {data} -m fast -w stop")
        if guard is not None:
            guard.release()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def host_s3(folder: Path, bucket: str) -> Iterator[int]:
    """moto's S3 server on all interfaces (pods reach it at the bridge address) with ``bucket``;
    yields its port."""
    moto = str(Path(sys.executable).parent / "moto_server")
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "moto.log").open("wb") as log:
        proc = subprocess.Popen([moto, "-H", "0.0.0.0", "-p", str(port)],  # noqa: S104  # pods reach it via the bridge
                                stdout=log, stderr=subprocess.STDOUT)
    guard = watch(proc.pid)
    try:
        wait_until(lambda: proc.poll() is not None or http_ok(f"http://127.0.0.1:{port}/moto-api/")(),
                   timeout=60, what="moto_server")
        if proc.poll() is not None:
            raise AssertionError(f"moto_server exited:\n{(folder / 'moto.log').read_text()}")
        httpx.put(f"http://127.0.0.1:{port}/{bucket}", timeout=10).raise_for_status()
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        guard.release()
