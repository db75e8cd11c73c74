"""The local backend: replicas are ``pier serve`` child processes on free loopback ports.

Each replica gets two ports from the replica range: HTTP (V2 REST, KServe V1, Seldon) and V2 gRPC,
both recorded so the routing table can send either protocol to it (``grpc_url``).

Each replica has a slot id (``main-3fa9c2d1``), a log file under
``$PIER_HOME/replicas/<project>/<deployment>/<id>.log``, and a line in the state file. ``observe``
checks each process and probes ``/v2/health/ready`` with a timeout, counting consecutive failed
probes (the planner's liveness input); ``stop`` drains in the background: the replica keeps
serving for the deregistration delay (gateways poll the routing table, which no longer lists it),
then SIGTERM, then SIGKILL to the process group after the grace period. ``restart`` kills a hung
process before starting the slot again. Children live in their own
session and outlive the control plane; at start-up the backend adopts the ones still running the
command it recorded, and forgets the rest.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import httpx

from modelpier._lib.clock import Clock, SystemClock
from modelpier._lib.ids import new_id
from modelpier.backends.base import ReplicaObservation, ReplicaPhase, ReplicaSpec
from modelpier.backends.local import process, records
from modelpier.backends.local.isolation import WarmEnvironments
from modelpier.backends.local.ports import PortAllocator
from modelpier.errors import InvalidSpec, NotFound
from modelpier.settings import Settings
from modelpier.spec.deployment import ModelDeploymentSpec

log = logging.getLogger("modelpier.backends.local")

_LOG_TAIL = 20  # lines kept with an exited replica's observation


@dataclass(slots=True)
class _Replica:
    replica_id: str
    spec: ReplicaSpec
    port: int
    pid: int
    argv: tuple[str, ...]
    started_at: float
    log_path: Path
    grpc_port: int | None = None  # None: started without gRPC (adopted from an older state file)
    child: bool = False  # started by this process (reaped with waitpid); adopted ones are not
    restarts: int = 0
    ready_since: float | None = None
    ever_ready: bool = False
    failed_probes: int = 0
    unready_since: float | None = None
    exit_code: int | None = None
    exited: bool = False
    last_log: tuple[str, ...] = ()
    stopping: bool = False
    adopted: bool = False
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ports(self) -> set[int]:
        return {self.port} if self.grpc_port is None else {self.port, self.grpc_port}

    @property
    def grpc_url(self) -> str | None:
        return None if self.grpc_port is None else f"127.0.0.1:{self.grpc_port}"


def child_env(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """The replica's environment: the control plane's own, with its settings made explicit, so the
    child reads the same registry whatever its working directory or config file."""
    env = dict(base)
    env["PIER_HOME"] = str(settings.home)
    env["PIER_DATABASE_URL"] = settings.resolved_database_url
    env["PIER_BLOB_URL"] = settings.resolved_blob_url
    env["PIER_REGISTRY__CACHE_DIR"] = str(settings.resolved_cache_dir)
    env["PIER_REGISTRY__ENVIRONMENTS_DIR"] = str(settings.resolved_environments_dir)
    if settings.s3_endpoint_url:
        env["PIER_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    return env


def refuse_local(spec: ModelDeploymentSpec) -> None:
    """What the local backend cannot run: a predictor that names an ``image`` (model-in-image) runs only on
    Kubernetes, so it is refused rather than served from something other than the image it names."""
    for i, predictor in enumerate(spec.predictors):
        if predictor.image is not None:
            raise InvalidSpec(
                f"spec.predictors.{i}.image: predictor {predictor.name!r} names image {predictor.image!r}, which "
                f"only the Kubernetes backend runs; the local backend serves `model` from the registry: remove "
                f"`image` to deploy here",
                details={"field": f"spec.predictors.{i}.image", "predictor": predictor.name})


def serve_argv(spec: ReplicaSpec, port: int, *, grace_s: float, grpc_port: int | None = None,
               python: str = sys.executable) -> tuple[str, ...]:
    """``pier serve`` as ``python -m modelpier.server`` (the same command): an absolute, stable argv
    that adoption can compare with ``/proc/<pid>/cmdline``. ``grpc_port`` None: HTTP only. What the
    spec decides is always a flag, so ``serve.*`` settings (the config file in PIER_HOME, which the
    replica reads too) tune a replica but never contradict its spec."""
    batching = ("--batching", "--max-batch-size", str(spec.max_batch_size), "--max-latency-ms",
                f"{spec.max_latency_ms:g}") if spec.batching else ("--no-batching",)
    grpc = ("--no-grpc",) if grpc_port is None else ("--grpc", "--grpc-port", str(grpc_port))
    outputs = ("--outputs", ",".join(spec.outputs))  # "": every output, whatever serve.outputs says
    isolated = ("--isolated",) if spec.isolated else ("--no-isolated",)
    return (python, "-m", "modelpier.server", spec.model, "--host", "127.0.0.1", "--http-port", str(port),
            *grpc, "--workers", str(spec.workers), *batching, *outputs, "--max-body-bytes", str(spec.max_body_bytes),
            "--shutdown-grace-s", f"{grace_s:g}", *isolated)


class LocalBackend:
    """Supervises replica processes on this machine (implements ``backends.base.Backend``)."""

    def __init__(self, settings: Settings, *, clock: Clock | None = None, env: Mapping[str, str] | None = None,
                 id_factory: Callable[[], str] = lambda: new_id(4),
                 client: httpx.AsyncClient | None = None) -> None:
        cfg = settings.platform
        self._root = settings.home / "replicas"
        self._state_path = self._root / "state.json"
        self._clock = clock or SystemClock()
        self._env = child_env(settings, os.environ if env is None else env)
        self._ids = id_factory
        self._ports = PortAllocator(cfg.replica_port_min, cfg.replica_port_max)
        self._probe_timeout = cfg.probe_timeout_s
        self._grace = cfg.stop_grace_s
        self._deregistration_delay = cfg.deregistration_delay_s
        # Probes must not queue behind each other or behind proxied traffic: a client of our own.
        self._client = client or httpx.AsyncClient(timeout=cfg.probe_timeout_s, trust_env=False)
        self._replicas: dict[str, _Replica] = {}
        self._isolation = WarmEnvironments(settings)
        self._adopt()

    # -- adoption and the state file --------------------------------------------------------------
    def _adopt(self) -> None:
        for rec in records.load(self._state_path):
            argv = process.cmdline(rec.pid)
            if not process.pid_alive(rec.pid) or (argv is not None and tuple(argv) != rec.argv):
                log.info("forgetting replica %s: pid %d is gone or runs something else", rec.replica_id, rec.pid)
                continue
            self._replicas[rec.replica_id] = _Replica(
                rec.replica_id, rec.spec, rec.port, rec.pid, rec.argv, rec.started_at,
                self._log_path(rec.spec, rec.replica_id), grpc_port=rec.grpc_port, restarts=rec.restarts,
                adopted=True)
            log.info("adopted replica %s (pid %d, port %d, gRPC port %s)", rec.replica_id, rec.pid, rec.port,
                     rec.grpc_port)
        self._save()

    def _save(self) -> None:
        records.save(self._state_path, [
            records.ReplicaRecord(r.replica_id, r.spec, r.pid, r.port, r.argv, r.started_at, r.restarts,
                                  grpc_port=r.grpc_port)
            for r in self._replicas.values() if not r.exited])

    def _log_path(self, spec: ReplicaSpec, replica_id: str) -> Path:
        return self._root / spec.project / spec.deployment / f"{replica_id}.log"

    # -- the Backend protocol ---------------------------------------------------------------------
    def refuse(self, spec: ModelDeploymentSpec) -> None:
        refuse_local(spec)

    async def start(self, spec: ReplicaSpec) -> str:
        replica_id = f"{spec.predictor}-{self._ids()}"
        port, grpc_port = self._allocate_pair(self._ports_in_use())
        replica = self._spawn(replica_id, spec, port, grpc_port, restarts=0)
        self._replicas[replica_id] = replica
        self._save()
        return replica_id

    async def restart(self, replica_id: str) -> None:
        old = self._get(replica_id)
        if not old.exited and self._alive(old):
            # Hung (the planner's liveness check): it is not routed to, nothing to drain.
            log.warning("killing unresponsive replica %s (pid %d) to restart it", replica_id, old.pid)
            await self._kill(old)
        # The same ports when they are still free: connections pooled to them stay useful.
        port, grpc_port = self._allocate_pair(self._ports_in_use() - old.ports, prefer=(old.port, old.grpc_port))
        self._replicas[replica_id] = self._spawn(replica_id, old.spec, port, grpc_port, restarts=old.restarts + 1)
        self._save()

    async def stop(self, replica_id: str, reason: str) -> None:
        replica = self._get(replica_id)
        if replica.stopping:
            return
        replica.stopping = True
        log.info("stopping replica %s (pid %d): %s", replica_id, replica.pid, reason)
        task = asyncio.create_task(self._terminate(replica), name=f"stop {replica_id}")
        replica.tasks.add(task)
        task.add_done_callback(replica.tasks.discard)

    async def observe(self) -> list[ReplicaObservation]:
        replicas = list(self._replicas.values())
        phases = await asyncio.gather(*(self._phase(r) for r in replicas))
        return [ReplicaObservation(
            replica_id=r.replica_id, spec=r.spec, phase=phase, url=None if r.exited else r.url,
            grpc_url=None if r.exited else r.grpc_url, pid=r.pid, started_at=r.started_at,
            ready_since=r.ready_since, exit_code=r.exit_code,
            last_log=r.last_log, restarts=r.restarts, adopted=r.adopted, failed_probes=r.failed_probes,
            unready_since=r.unready_since)
            for r, phase in zip(replicas, phases, strict=True)]

    def logs(self, project: str, deployment: str, *, predictor: str | None = None, tail: int = 100) -> list[str]:
        lines: list[str] = []
        for r in sorted(self._replicas.values(), key=lambda r: r.replica_id):
            if (r.spec.project, r.spec.deployment) == (project, deployment) and predictor in (None, r.spec.predictor):
                lines += [f"[{r.replica_id}] {line}" for line in process.tail(r.log_path, tail)]
        return lines

    async def close(self) -> None:
        """Finish the drains already begun (bounded by the grace period); replicas keep running."""
        pending = [t for r in self._replicas.values() for t in r.tasks]
        if pending:
            await asyncio.wait(pending, timeout=self._grace + 5)
        await self._client.aclose()

    # -- internals --------------------------------------------------------------------------------
    def _get(self, replica_id: str) -> _Replica:
        try:
            return self._replicas[replica_id]
        except KeyError:
            raise NotFound(f"no replica {replica_id}") from None

    def _ports_in_use(self) -> set[int]:
        return {port for r in self._replicas.values() if not r.exited for port in r.ports}

    def _allocate_pair(self, in_use: set[int], prefer: tuple[int | None, int | None] = (None, None)
                       ) -> tuple[int, int]:
        """An HTTP port and a gRPC port, distinct and free."""
        port = self._ports.allocate(in_use, prefer=prefer[0])
        return port, self._ports.allocate(in_use | {port}, prefer=prefer[1])

    def _spawn(self, replica_id: str, spec: ReplicaSpec, port: int, grpc_port: int, *, restarts: int) -> _Replica:
        env = self._env
        warm = self._isolation.find(spec) if spec.isolated else None
        if warm is not None:
            # Its environment is built: start the server in it directly (one interpreter start, not two).
            python, env = warm[0], warm[1](self._env)
            argv = serve_argv(replace(spec, isolated=False), port, grace_s=self._grace, grpc_port=grpc_port,
                              python=python)
        else:
            argv = serve_argv(spec, port, grace_s=self._grace, grpc_port=grpc_port)
        path = self._log_path(spec, replica_id)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        header = (f"--- {stamp} starting replica {replica_id} of {spec.project}/{spec.deployment} "
                  f"predictor {spec.predictor} revision {spec.revision} ({spec.model}) on port {port} "
                  f"(gRPC {grpc_port})"
                  + (f", restart {restarts}" if restarts else "") + " ---")
        # PIER_PROJECT: the replica resolves its model in its deployment's project (then the shared
        # default catalog), as the control plane did; model names are unique per project only.
        pid = process.spawn(argv, {**env, "PIER_PROJECT": spec.project}, path, header)
        log.info("started replica %s (pid %d, port %d, gRPC port %d, %s)", replica_id, pid, port, grpc_port,
                 spec.model)
        return _Replica(replica_id, spec, port, pid, argv, self._clock.now().timestamp(), path, grpc_port=grpc_port,
                        child=True, restarts=restarts)

    async def _phase(self, r: _Replica) -> ReplicaPhase:
        if r.stopping:
            return "stopping"
        if not r.exited and not self._alive(r):
            r.exited = True
            r.ready_since = None
            r.last_log = tuple(process.tail(r.log_path, _LOG_TAIL))
            log.warning("replica %s (pid %d) exited with code %s", r.replica_id, r.pid, r.exit_code)
            self._save()
        if r.exited:
            return "exited"
        if await self._probe(r):
            if r.ready_since is None:
                r.ready_since = self._clock.now().timestamp()
            r.ever_ready = True
            r.failed_probes, r.unready_since = 0, None
            return "ready"
        r.ready_since = None
        if not r.ever_ready:
            return "starting"
        if r.unready_since is None:
            r.unready_since = self._clock.now().timestamp()
        r.failed_probes += 1
        return "unready"

    def _alive(self, r: _Replica) -> bool:
        if r.child:
            try:
                alive, code = process.reap(r.pid)
            except ChildProcessError:
                r.child = False
            else:
                if not alive:
                    r.child, r.exit_code = False, code
                return alive
        return not r.exited and process.pid_alive(r.pid)

    async def _probe(self, r: _Replica) -> bool:
        try:
            response = await self._client.get(f"{r.url}/v2/health/ready", timeout=self._probe_timeout)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def _terminate(self, r: _Replica) -> None:
        try:
            if not r.exited and self._alive(r) and self._deregistration_delay > 0:
                await asyncio.sleep(self._deregistration_delay)  # gateways stop routing to it first
            if not r.exited and self._alive(r):
                process.send(r.pid, signal.SIGTERM)
                for _ in range(int(self._grace / 0.05)):  # a pid has no awaitable exit: poll it
                    if not self._alive(r):
                        break
                    await asyncio.sleep(0.05)
                if self._alive(r):
                    log.warning("replica %s did not drain within %gs: SIGKILL", r.replica_id, self._grace)
            await self._kill(r)
        finally:
            self._replicas.pop(r.replica_id, None)
            self._save()

    async def _kill(self, r: _Replica) -> None:
        # The group: workers of a multi-worker replica go with their supervisor.
        process.send(r.pid, signal.SIGKILL, group=True)
        for _ in range(100):  # SIGKILL cannot be ignored: the pid goes (and is reaped) at once
            if not self._alive(r):
                break
            await asyncio.sleep(0.02)
