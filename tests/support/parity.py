"""The parity table's machinery: the spec's field paths, the rows' table, and one platform per backend.

``field_paths()`` walks ``ModelDeploymentSpec`` and lists every leaf field by its wire path
(``predictors[].autoscaling.minReplicas``), so a test can demand a row for each. ``render_table``
writes the rows as the markdown table ``docs/kubernetes.md`` shows between its parity markers.

``run_platform(backend, ...)`` runs the same two processes whichever the backend: ``pier server
--backend local|kubernetes`` (the one composition root, ``build_platform``) and ``pier gateway
--control`` in front of it. On Kubernetes the cluster is a real API server without a node:
``PlayedKubelet`` is the node. It binds each replica pod, runs the pod's own containers' commands as
local processes (the init container's ``pier models pull`` into a folder that is the pod's
``PIER_HOME``, then the server container's ``pier serve`` on the pod's IP, a loopback address of its
own), writes the pod's status as a kubelet would (Running, Ready once ``/v2/health/ready`` answers,
Failed with the exit code when the server ends) and finishes deletions once the server has stopped.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel

from tests.support.k8s import ControlPlane, PlayedNode
from tests.support.procs import ADMIN_HEADERS, ADMIN_TOKEN, BIN, free_port, pier_env, wait_until
from tests.support.watchdog import watch

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "kubernetes.md"
BEGIN, END = "<!-- parity:begin -->", "<!-- parity:end -->"
BACKENDS = ("local", "kubernetes")
Backend = Literal["local", "kubernetes"]

V2_BODY = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}


# -- the spec's fields -----------------------------------------------------------------------------

def _models_in(annotation: Any) -> tuple[list[type[BaseModel]], bool]:
    """The pydantic models inside a field's type (through ``X | None``, ``list[X]``), and whether it is a list."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation], False
    if origin in (typing.Union, types.UnionType):
        found = [_models_in(a) for a in typing.get_args(annotation)]
        return [m for models, _ in found for m in models], any(is_list for _, is_list in found)
    if origin is list:
        models, _ = _models_in(typing.get_args(annotation)[0])
        return models, True
    return [], False


def field_paths(model: type[BaseModel] | None = None, prefix: str = "") -> list[str]:
    """Every leaf field of ``model`` (default: ``ModelDeploymentSpec``) by its wire path: camelCase, a
    list's items as ``name[]``, a mapping or a list of plain values as one leaf."""
    if model is None:
        from modelpier.spec.deployment import ModelDeploymentSpec

        model = ModelDeploymentSpec
    paths: list[str] = []
    for name, info in model.model_fields.items():
        wire = info.alias or name
        models, is_list = _models_in(info.annotation)
        path = f"{prefix}{wire}{'[]' if is_list and models else ''}"
        if models:
            for sub in models:
                paths += field_paths(sub, f"{path}.")
        else:
            paths.append(path)
    return paths


# -- the rows and their table ----------------------------------------------------------------------

Kind = Literal["works", "refused", "gap"]


@dataclass(frozen=True)
class Outcome:
    """What one backend does with a row's feature: it ``works`` (the scenario asserts the behaviour), is
    ``refused`` at apply (422 naming ``field``), or is a ``gap`` (accepted but not honoured: the scenario
    asserts today's behaviour, so closing the gap fails the row until it is updated)."""

    kind: Kind
    note: str = ""
    field: str = ""  # refused: the field path the 422 names (spec.predictors.0.image)

    def cell(self) -> str:
        mark = {"works": "✅ works", "refused": "⛔ refused (422)", "gap": "⚠️ gap"}[self.kind]
        return f"{mark}: {self.note}" if self.note else mark


def works(note: str = "") -> Outcome:
    return Outcome("works", note)


def refused(field_path: str, note: str = "") -> Outcome:
    return Outcome("refused", note or f"names `{field_path}`", field_path)


def gap(note: str) -> Outcome:
    return Outcome("gap", note)


@dataclass(frozen=True)
class Row:
    """One feature: the spec fields it covers, the outcome per backend, and how the scenario tests it.
    ``spec`` is the deployment applied (predictors and the rest of the spec); ``check`` runs once the
    deployment is ready, on every backend where the outcome is not ``refused``."""

    feature: str
    fields: tuple[str, ...]
    how: str
    spec: dict[str, Any]
    check: Callable[[Platform, str], None]
    local: Outcome = field(default_factory=works)
    kubernetes: Outcome = field(default_factory=works)
    ready_replicas: int | None = 1  # waited for after the apply; None: the check waits itself
    refused_spec: dict[str, Any] | None = None  # applied where refused, when ``spec`` names what only one has
    timeout: float = 120

    def outcome(self, backend: str) -> Outcome:
        return self.local if backend == "local" else self.kubernetes

    @property
    def id(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.feature.lower()).strip("-")


def render_table(rows: list[Row]) -> str:
    lines = ["| feature | spec fields | local | kubernetes | how it is tested |", "|---|---|---|---|---|"]
    for row in rows:
        fields = ", ".join(f"`{f}`" for f in row.fields)
        lines.append(f"| {row.feature} | {fields} | {row.local.cell()} | {row.kubernetes.cell()} | {row.how} |")
    return "\n".join(lines)


def doc_section(rows: list[Row]) -> str:
    return (f"{BEGIN}\n<!-- generated from the rows of tests/integration/test_parity.py; rewrite with "
            f"PIER_REWRITE_PARITY=1 pytest tests/integration/test_parity.py -k docs -->\n"
            f"## Parity: local and Kubernetes\n\n"
            f"Every field of a `ModelDeployment` spec, on both backends. Each row is a scenario that "
            f"`tests/integration/test_parity.py` runs on each: `pier server --backend local` or "
            f"`--backend kubernetes` with `pier gateway` in front, on Kubernetes against a real API server "
            f"whose node the test plays (pods run real model servers). A field a backend cannot honour is "
            f"refused when applied (422 naming the field); a *gap* is accepted but not honoured, and its "
            f"row asserts exactly that until it is closed. A test fails when a spec field has no row.\n\n"
            f"{render_table(rows)}\n{END}")


def with_section(document: str, section: str) -> str:
    """``document`` with its parity section replaced by ``section`` (appended when it has none)."""
    if BEGIN in document and END in document:
        head, rest = document.split(BEGIN, 1)
        return head + section + rest.split(END, 1)[1]
    return document.rstrip("\n") + ("\n\n" if document.strip() else "") + section + "\n"


# -- one platform: pier server + pier gateway ------------------------------------------------------

@dataclass
class Platform:
    backend: Backend
    home: Path
    api: str
    gateway: str
    kubelet: PlayedKubelet | None = None

    def url(self, name: str) -> str:
        return f"{self.api}/api/v1/projects/default/deployments/{name}"

    def put(self, name: str, spec: dict[str, Any]) -> httpx.Response:
        document = {"apiVersion": "modelpier.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": name},
                    "spec": spec}
        return httpx.put(self.url(name), json=document, headers=ADMIN_HEADERS, timeout=30)

    def apply(self, name: str, spec: dict[str, Any]) -> None:
        answer = self.put(name, spec)
        assert answer.status_code in (200, 201), answer.text

    def status(self, name: str) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url(name)}/status", headers=ADMIN_HEADERS, timeout=10).json())

    def events(self, name: str) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.url(name)}/events", headers=ADMIN_HEADERS, timeout=10).json())

    def wait_ready(self, name: str, replicas: int, *, timeout: float = 120) -> None:
        def ready() -> bool:
            s = self.status(name)
            return (s.get("readyReplicas") == replicas and s.get("observedRevision") is not None
                    and s.get("observedRevision") == s.get("desiredRevision")
                    and any(c["type"] == "Ready" and c["status"] == "True" for c in s.get("conditions", [])))
        wait_until(ready, timeout=timeout, what=f"{name} ready with {replicas} replicas on {self.backend}")

    def endpoint(self, name: str, model: str = "iris") -> str:
        return f"{self.gateway}/default/{name}/v2/models/{model}/infer"

    def infer(self, name: str, *, model: str = "iris", body: Any = None, headers: dict[str, str] | None = None,
              timeout: float = 30, client: httpx.Client | None = None) -> httpx.Response:
        post = client.post if client is not None else httpx.post
        return post(self.endpoint(name, model), json=V2_BODY if body is None else body, headers=headers or {},
                    timeout=timeout)

    def wait_served(self, name: str, *, model: str = "iris", headers: dict[str, str] | None = None) -> None:
        """Until the gateway's routing table has the deployment (it polls the control plane)."""
        wait_until(lambda: self.infer(name, model=model, headers=headers).status_code == 200, timeout=30,
                   what=f"a prediction of {name} through the gateway ({self.backend})")

    def delete(self, name: str) -> None:
        httpx.delete(self.url(name), headers=ADMIN_HEADERS, timeout=30)

    def server_argvs(self, name: str) -> list[list[str]]:
        """The command line of each live model-server process of deployment ``name``: the local backend's
        children (their /proc cmdline), or what the played kubelet ran for the deployment's pods."""
        if self.kubelet is not None:
            return self.kubelet.argvs(name)
        state = json.loads((self.home / "replicas" / "state.json").read_text())
        argvs = []
        for replica in state["replicas"]:
            if replica["spec"]["deployment"] == name:
                try:
                    raw = Path(f"/proc/{replica['pid']}/cmdline").read_bytes()
                except OSError:
                    continue
                argvs.append([a.decode() for a in raw.split(b"\0") if a])
        return argvs


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def _process(argv: list[str], env: dict[str, str], log_path: Path, health: str, what: str) -> Iterator[None]:
    log = log_path.open("w")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    guard = watch(proc.pid)  # stopped even when the run is interrupted
    try:
        wait_until(lambda: proc.poll() is not None or _ok(health), timeout=180, what=what)  # a loaded machine
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited early:\n{log_path.read_text()}")
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        guard.release()
        log.close()


@contextmanager
def run_platform(backend: Backend, home: Path, env: dict[str, str], *, kube: ControlPlane | None = None,
                 namespace: str | None = None, images: dict[str, Image] | None = None) -> Iterator[Platform]:
    """``pier server --backend BACKEND`` and ``pier gateway`` in front of it, on free loopback ports.
    Kubernetes: replicas are pods in ``namespace`` of ``kube``, run by a ``PlayedKubelet`` (``images``:
    the command each model-in-image image runs)."""
    api_port, gw_port = free_port(), free_port()
    api = f"http://127.0.0.1:{api_port}"
    env = {**env, "PIER_GATEWAY__PORT": str(gw_port)}  # the endpoint the control plane writes into status.url
    if backend == "kubernetes":
        assert kube is not None
        assert namespace is not None
        env.update({"PIER_KUBERNETES__KUBECONFIG": str(kube.kubeconfig), "PIER_KUBERNETES__NAMESPACE": namespace,
                    "PIER_KUBERNETES__IMAGE": "registry.test/modelpier:parity",
                    "PIER_KUBERNETES__REGISTRY_URL": api, "PIER_KUBERNETES__READY_PROBE_PERIOD_S": "1",
                    "PIER_KUBERNETES__EXTRA_DRAIN_S": "0"})
    with ExitStack() as stack:
        stack.enter_context(_process(
            [str(BIN / "pier"), "server", "--host", "127.0.0.1", "--port", str(api_port), "--backend", backend],
            pier_env(home, **env), home / "server.log", f"{api}/healthz", f"pier server --backend {backend}"))
        kubelet = None
        if backend == "kubernetes":
            assert kube is not None
            assert namespace is not None
            kubelet = stack.enter_context(played_kubelet(kube, namespace, home / "pods", images or {}))
        gateway = f"http://127.0.0.1:{gw_port}"
        stack.enter_context(_process(
            [str(BIN / "pier"), "gateway", "--control", api, "--host", "127.0.0.1", "--port", str(gw_port),
             "--grpc-port", "0"], pier_env(home, **env), home / "gateway.log", f"{gateway}/healthz", "pier gateway"))
        yield Platform(backend, home, api, gateway, kubelet)


# -- the node, played ------------------------------------------------------------------------------

POD_NET = "127.88.0."  # pods' IPs: loopback addresses of their own, so every pod listens on port 8080


def free_pod_ips(count: int = 60) -> list[str] | str:
    """Addresses of the played pod network whose port 8080 and 8081 are free, or why there are none."""
    ips = []
    for n in range(10, 10 + count):
        ip = f"{POD_NET}{n}"
        try:
            for port in (8080, 8081):
                with socket.socket() as s:
                    s.bind((ip, port))
        except OSError as exc:
            if n == 10:
                return f"cannot listen on {ip}:8080/8081 ({exc}): a server on 0.0.0.0:8080?"
            continue
        ips.append(ip)
    return ips


@dataclass(frozen=True)
class Image:
    """What the played node runs for a model-in-image image: its entrypoint (``pier serve MODEL``) over
    a model home holding the model (what ``pier build image`` bakes into the image)."""

    entrypoint: list[str]
    home: Path


@dataclass
class _Pod:
    name: str
    ip: str
    deployment: str
    home: Path
    argv: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    ended: bool = False
    deleting: bool = False


class PlayedKubelet:
    """The node's kubelet, played by the test: see the module docstring. One thread lists the namespace's
    pods every 0.2 s; each new pod gets a thread of its own that runs its containers."""

    def __init__(self, kube: ControlPlane, namespace: str, root: Path, images: dict[str, Image]) -> None:
        self.kube, self.namespace, self.root, self.images = kube, namespace, root, images
        self.node = PlayedNode(kube)
        ips = free_pod_ips()
        if isinstance(ips, str):
            raise RuntimeError(ips)
        self._free = ips
        self._pods: dict[str, _Pod] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.errors: list[str] = []  # what a pod's thread could not do
        self.hiccups: list[str] = []  # failed passes of the pod list, retried
        self._loop = threading.Thread(target=self._run, name="played kubelet", daemon=True)

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._loop.start()

    def close(self) -> None:
        self._stop.set()
        self._loop.join(timeout=10)
        with self._lock:
            pods = list(self._pods.values())
        for pod in pods:
            self._kill(pod)
        for thread in self._threads:
            thread.join(timeout=10)

    def argvs(self, deployment: str) -> list[list[str]]:
        with self._lock:
            return [list(p.argv) for p in self._pods.values()
                    if p.deployment == deployment and p.proc is not None and p.proc.poll() is None]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._pass()
            except Exception as exc:  # a kubectl hiccup on a loaded machine: the next pass retries
                self.hiccups.append(repr(exc))
            self._stop.wait(0.2)

    def _pass(self) -> None:
        items = self.kube.get("pods", "-n", self.namespace)["items"]
        seen = set()
        for pod in items:
            meta = pod["metadata"]
            name = meta["name"]
            seen.add(name)
            with self._lock:
                known = self._pods.get(name)
            if meta.get("deletionTimestamp"):
                if known is None:
                    self.node.finish_deletion(self.namespace, name)
                elif not known.deleting:
                    known.deleting = True
                    self._spawn(self._delete, known)
            elif known is None and not pod["spec"].get("nodeName"):
                with self._lock:
                    ip = self._free.pop(0)
                    known = self._pods[name] = _Pod(name, ip, meta["labels"].get("modelpier.io/deployment", ""),
                                                    self.root / name)
                self._spawn(self._start, known, pod)
        with self._lock:
            gone = [p for n, p in self._pods.items() if n not in seen and (p.ended or p.deleting)]
            for pod in gone:
                if pod.proc is None or pod.proc.poll() is not None:
                    del self._pods[pod.name]
                    self._free.append(pod.ip)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=self._guarded, args=(target, *args), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _guarded(self, target: Callable[..., None], *args: Any) -> None:
        try:
            target(*args)
        except Exception as exc:
            self.errors.append(f"{target.__name__}: {exc!r}")

    def _env(self, pod: _Pod, container: dict[str, Any]) -> dict[str, str]:
        env = pier_env(pod.home)
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = var["value"]
            elif var["name"] == "PIER_TOKEN":  # the registry token Secret's key: the platform admin's here
                env["PIER_TOKEN"] = ADMIN_TOKEN
        env["PIER_HOME"] = str(pod.home)  # the pod's emptyDir mounted at its model home
        return env

    def _report(self, pod: _Pod, write: Callable[[], None]) -> None:
        """Write a pod's status, unless the pod went meanwhile (deleted: there is nothing to report to)."""
        try:
            write()
        except AssertionError as exc:
            if not (pod.deleting or "NotFound" in str(exc)):
                raise

    def _start(self, pod: _Pod, manifest: dict[str, Any]) -> None:
        pod.home.mkdir(parents=True, exist_ok=True)
        bound = True

        def bind() -> None:
            nonlocal bound
            bound = False
            self.node.bind(self.namespace, pod.name)
            bound = True

        self._report(pod, bind)  # a pod deleted before the node bound it is gone, as for a real scheduler
        if not bound:
            return
        for init in manifest["spec"].get("initContainers", []):
            done = subprocess.run([str(BIN / init["command"][0]), *init["args"]], env=self._env(pod, init),
                                  capture_output=True, text=True, timeout=120, check=False)
            if done.returncode != 0:
                (pod.home / f"{init['name']}.log").write_text(done.stdout + done.stderr)
                pod.ended = True
                self._report(pod, partial(self.node.fail, self.namespace, pod.name, done.returncode,
                                                  container=init["name"]))
                return
        server = manifest["spec"]["containers"][0]
        env = self._env(pod, server)
        if "command" in server:
            command = [str(BIN / server["command"][0])]
        else:  # model-in-image: the image's entrypoint over the model it holds
            image = self.images[server["image"]]
            command, env["PIER_HOME"] = list(image.entrypoint), str(image.home)
        args = [pod.ip if a == "0.0.0.0" else a for a in server.get("args", [])]  # noqa: S104  # the pod's IP
        pod.argv = [*command, *args]
        log = (pod.home / "server.log").open("w")
        pod.proc = subprocess.Popen(pod.argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        guard = watch(pod.proc.pid)
        try:
            self._report(pod, partial(self.node.run, self.namespace, pod.name, pod.ip, ready=False))
            ready = False
            while pod.proc.poll() is None and not self._stop.is_set():
                probe = _ok(f"http://{pod.ip}:8080/v2/health/ready")
                if probe != ready and not pod.deleting:
                    ready = probe
                    self._report(pod, partial(self.node.run, self.namespace, pod.name, pod.ip, ready=probe))
                time.sleep(0.5)
            code = pod.proc.wait()
            pod.ended = True
            if not pod.deleting and not self._stop.is_set():
                self._report(pod, partial(self.node.fail, self.namespace, pod.name, code))
        finally:
            guard.release()
            log.close()

    def _delete(self, pod: _Pod) -> None:
        """SIGTERM, wait for the server to drain and end, then the final delete."""
        wait_until(lambda: pod.proc is not None or pod.ended, timeout=120, what=f"pod {pod.name} started")
        self._kill(pod, grace_s=30)
        self.node.finish_deletion(self.namespace, pod.name)

    @staticmethod
    def _kill(pod: _Pod, grace_s: float = 10) -> None:
        proc = pod.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def played_kubelet(kube: ControlPlane, namespace: str, root: Path, images: dict[str, Image]
                   ) -> Iterator[PlayedKubelet]:
    kubelet = PlayedKubelet(kube, namespace, root, images)
    kubelet.start()
    try:
        yield kubelet
    finally:
        kubelet.close()
        shutil.rmtree(root, ignore_errors=True)


