"""A real Kubernetes v1.28 control plane for tests, and a test playing its node.

``KUBEBUILDER_ASSETS`` names a folder with ``etcd``, ``kube-apiserver`` and
``kube-controller-manager``, as controller-runtime's envtest reads it; without it the tests that
need a cluster skip, saying so (a fresh clone), while ``make test`` sets it from ``../shared/k8s``.
``../shared/k8s/test-cluster.sh start DIR`` starts etcd, the API server and the controller manager
on free loopback ports (about 10 s: one cluster per session) and writes ``DIR/kubeconfig``.

There is no scheduler or kubelet: ``PlayedNode`` does what they would do to a pod — bind it to a
``Node`` and write its status (``podIP`` on a loopback address, phase, container states, the
``Ready`` condition) — so a test decides exactly what the backend observes.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.procs import wait_until
from tests.support.watchdog import Watchdog

ROOT = Path(__file__).resolve().parents[2]
NODE = "played-node"


def cluster_script() -> Path | None:
    """``test-cluster.sh``: ``$PIER_TEST_CLUSTER_SCRIPT``, else ``shared/k8s`` beside the checkout (a
    worktree sits one level deeper)."""
    given = os.environ.get("PIER_TEST_CLUSTER_SCRIPT")
    candidates = [Path(given)] if given else [p / "shared" / "k8s" / "test-cluster.sh" for p in ROOT.parents[:3]]
    return next((p for p in candidates if p.is_file()), None)


def unavailable() -> str | None:
    """Why a control plane cannot start here, or ``None``."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if not assets:
        return ("KUBEBUILDER_ASSETS is not set (a folder with etcd, kube-apiserver and kube-controller-manager, "
                "as envtest reads it; `make test` sets it from ../shared/k8s)")
    missing = [b for b in ("etcd", "kube-apiserver", "kube-controller-manager") if not (Path(assets) / b).exists()]
    if missing:
        return f"KUBEBUILDER_ASSETS={assets} has no {', '.join(missing)}"
    if cluster_script() is None:
        return "test-cluster.sh (../shared/k8s) not found; set PIER_TEST_CLUSTER_SCRIPT"
    return None


@dataclass(frozen=True)
class ControlPlane:
    dir: Path
    kubeconfig: Path

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60,
                token: str | None = None) -> subprocess.CompletedProcess[str]:
        """``kubectl ARGS`` as cluster-admin, or with a bearer ``token`` (a service account's)."""
        auth = (["--token", token, "--server", self.server, "--certificate-authority", str(self.ca)] if token
                else ["--kubeconfig", str(self.kubeconfig)])
        done = subprocess.run(["kubectl", *auth, *args], input=stdin, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(self, obj: dict[str, Any]) -> None:
        self.kubectl("apply", "--server-side", "--field-manager", "tests", "-f", "-", stdin=json.dumps(obj))

    @property
    def server(self) -> str:
        """``https://127.0.0.1:PORT`` of the API server."""
        return "https://" + self.kubeconfig.read_text().split("server: https://", 1)[1].split()[0]

    @property
    def ca(self) -> Path:
        return self.dir / "pki" / "ca.crt"

    def new_namespace(self, prefix: str = "t") -> str:
        """A new namespace, returned once its ``default`` service account exists: the controller manager
        makes it a moment after the namespace, and until then the API server refuses every pod in it."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.kubectl("create", "namespace", name)
        wait_until(lambda: self.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
                   timeout=30, what=f"the default service account of namespace {name}")
        return name


@dataclass(frozen=True)
class Script:
    """``test-cluster.sh`` driven for one cluster folder, with names of the cluster's own.

    ``stop`` tears down "the node" by its names (bridge, containerd mounts under
    ``/run/test-containerd-NODE``) even where none was started; with the script's defaults (bridge
    ``ktest0``, the hostname) one session's ``stop`` would cut another session's real node off its
    bridge. A control plane gets random names; a real node passes its own (under the node lock)."""

    folder: Path
    bridge: str
    node: str

    @classmethod
    def control_plane_only(cls, folder: Path) -> Script:
        tag = uuid.uuid4().hex[:8]
        return cls(folder, bridge=f"kcp{tag}", node=f"no-node-{tag}")

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "TEST_NODE_BRIDGE": self.bridge, "TEST_NODE_NAME": self.node}

    def run(self, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        script = cluster_script()
        assert script is not None
        return subprocess.run(["bash", str(script), command, str(self.folder)], capture_output=True, text=True,
                              timeout=timeout, check=False, env=self.env)

    def must(self, command: str, timeout: float) -> None:
        """``command``, or an ``AssertionError`` with the script's output and the tail of each log."""
        try:
            done = self.run(command, timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"test-cluster.sh {command} took over {timeout:.0f} s\n{logs(self.folder)}") from None
        if done.returncode != 0:
            raise AssertionError(f"test-cluster.sh {command} failed:\n{done.stdout}{done.stderr}\n{logs(self.folder)}")

    @contextmanager
    def running(self, timeout: float = 180, hold: tuple[int, ...] = ()) -> Iterator[None]:
        """``start``, then ``stop`` when the block ends, fails or its start fails halfway (processes
        already started), and also when this test process dies (a watchdog runs ``stop``, keeping the
        file descriptors ``hold`` (a lock) open until it is done)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        guard = self._stop_on_death(hold)
        try:
            self.must("start", timeout)
            yield
        finally:
            self.run("stop", 180)
            guard.release()

    def _stop_on_death(self, hold: tuple[int, ...]) -> Watchdog:
        """A process in its own session that runs ``test-cluster.sh stop`` once the write end of its
        stdin closes without "done" (this process died: SIGKILL, pytest-timeout's ``os._exit``)."""
        script = cluster_script()
        assert script is not None
        waiter = ('IFS= read -r -d "" said; [ "$said" = done ] || exec timeout 180 bash "$0" stop "$1" '
                  '>/dev/null 2>&1')
        proc = subprocess.Popen(["bash", "-c", waiter, str(script), str(self.folder)], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.env,
                                start_new_session=True, pass_fds=hold)
        return Watchdog(proc)


def logs(folder: Path, lines: int = 15) -> str:
    """The tail of each component's log (control plane and node): what a failing start prints."""
    out = []
    for log in sorted([*folder.glob("logs/*.log"), *folder.glob("node/logs/*.log")]):
        out.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:]))
    return "\n".join(out)


@contextmanager
def control_plane(workdir: Path) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager until the block ends (``unavailable()`` first)."""
    with Script.control_plane_only(workdir).running():
        yield ControlPlane(workdir, workdir / "kubeconfig")


_SHARED = pytest.StashKey["ControlPlane | str"]()


def shared_control_plane(request: pytest.FixtureRequest) -> ControlPlane:
    """The control plane of this pytest process (an xdist worker: the files it runs share it; a
    start costs ~10 s), started by the first fixture that asks and stopped when the run ends.
    Check ``unavailable()`` first; a failed start fails every later asker at once."""
    config = request.config
    if _SHARED not in config.stash:
        folder = request.getfixturevalue("tmp_path_factory").mktemp("kube")
        stack = ExitStack()
        try:
            config.stash[_SHARED] = stack.enter_context(control_plane(folder))
        except BaseException as exc:
            config.stash[_SHARED] = f"the session's control plane did not start: {exc}"
            raise
        config.add_cleanup(stack.close)
    found = config.stash[_SHARED]
    if isinstance(found, str):
        raise AssertionError(found)
    return found


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PlayedNode:
    """The scheduler and kubelet of a cluster without a node: binds pods and writes their status."""

    def __init__(self, cluster: ControlPlane, name: str = NODE) -> None:
        self.cluster, self.name = cluster, name
        if cluster.kubectl("get", "node", name, check=False).returncode != 0:
            cluster.kubectl("create", "-f", "-", stdin=json.dumps(
                {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}))

    def bind(self, namespace: str, pod: str) -> None:
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": self.name}}
        self.cluster.kubectl("create", "--raw", f"/api/v1/namespaces/{namespace}/pods/{pod}/binding", "-f", "-",
                             stdin=json.dumps(binding))

    def _status(self, namespace: str, pod: str, status: dict[str, Any]) -> None:
        self.cluster.kubectl("-n", namespace, "patch", "pod", pod, "--subresource=status", "--type=merge",
                             "-p", json.dumps({"status": status}))

    def run(self, namespace: str, pod: str, ip: str, *, ready: bool) -> None:
        """The pod runs at ``ip``; its server passes its readiness probe when ``ready``."""
        flag = "True" if ready else "False"
        self._status(namespace, pod, {
            "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "startTime": _now(),
            "conditions": [{"type": "Ready", "status": flag, "lastTransitionTime": _now()},
                           {"type": "ContainersReady", "status": flag, "lastTransitionTime": _now()}],
            "containerStatuses": [{"name": "server", "image": "x", "imageID": "", "ready": ready, "restartCount": 0,
                                   "started": True, "state": {"running": {"startedAt": _now()}}}]})

    def fail(self, namespace: str, pod: str, exit_code: int, *, container: str = "server") -> None:
        """The container ``container`` ended with ``exit_code``: the pod failed (restartPolicy Never)."""
        ended = {"terminated": {"exitCode": exit_code, "reason": "Error", "startedAt": _now(), "finishedAt": _now()}}
        key = "initContainerStatuses" if container != "server" else "containerStatuses"
        self._status(namespace, pod, {
            "phase": "Failed", "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": _now()}],
            key: [{"name": container, "image": "x", "imageID": "", "ready": False, "restartCount": 0,
                   "state": ended}]})

    def wait(self, namespace: str, pod: str, reason: str, message: str) -> None:
        """A container waits (``ErrImagePull``...)."""
        self._status(namespace, pod, {"phase": "Pending", "containerStatuses": [
            {"name": "server", "image": "x", "imageID": "", "ready": False, "restartCount": 0,
             "state": {"waiting": {"reason": reason, "message": message}}}]})

    def finish_deletion(self, namespace: str, pod: str) -> None:
        """What the kubelet does once a deleted pod's containers are gone: the final delete."""
        self.cluster.kubectl("-n", namespace, "delete", "pod", pod, "--grace-period=0", "--force", "--wait=false",
                             check=False)


def token_kubeconfig(cluster: ControlPlane, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as service account ``account`` of ``namespace`` (a bound token)."""
    token = cluster.kubectl("-n", namespace, "create", "token", account, "--duration=1h").stdout.strip()
    server = cluster.kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").stdout
    ca = cluster.kubectl("config", "view", "--raw", "--minify",
                         "-o", "jsonpath={.clusters[0].cluster.certificate-authority-data}").stdout
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": account}}]}))
    return path
