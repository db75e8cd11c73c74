"""In-memory fakes of the reconciler's seams: a ``DeploymentStore`` and a ``Backend``.

The store follows the Protocol's documented behaviour (revisions only on change, NotFound,
Conflict while deleting); the backend replays actions as state changes that tests drive by hand
(``make_ready``, ``crash``, ``finish_stops``), so no process or clock is real.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from modelpier.backends.base import ReplicaObservation, ReplicaSpec
from modelpier.control.deployments.state import DeploymentRecord, Event, EventType, Revision
from modelpier.errors import Conflict, NotFound, ServiceUnavailable
from modelpier.spec.deployment import ModelDeploymentSpec, ModelDeploymentStatus
from modelpier.spec.revision import RevisionKind

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.t = start

    def now(self) -> datetime:
        return EPOCH + timedelta(seconds=self.t)

    def monotonic(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FakeStore:
    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.projects: set[str] = {"default"}
        self.records: dict[tuple[str, str], DeploymentRecord] = {}
        self.revs: dict[tuple[str, str], list[Revision]] = {}
        self.event_log: dict[tuple[str, str], list[Event]] = {}

    def ensure_project(self, name: str) -> None:
        self.projects.add(name)

    def list_projects(self) -> list[str]:
        return sorted(self.projects)

    def delete_project(self, name: str) -> None:
        if name not in self.projects:
            raise NotFound(f"project {name}")
        if any(p == name for p, _ in self.records):
            raise Conflict(f"project {name} has deployments")
        self.projects.discard(name)

    def apply(self, project: str, name: str, spec: ModelDeploymentSpec, *, resolved: dict[str, str],
              created_by: str, kind: RevisionKind, cause: str) -> tuple[DeploymentRecord, Revision, bool]:
        if project not in self.projects:
            raise NotFound(f"project {project}")
        key = (project, name)
        now = self.clock.now()
        existing = self.records.get(key)
        if existing is not None and existing.deleting:
            raise Conflict(f"{project}/{name} is being deleted")
        revisions = self.revs.setdefault(key, [])
        if revisions and revisions[-1].spec == spec and revisions[-1].resolved == resolved:
            assert existing is not None
            return existing, revisions[-1], False
        revision = Revision(project, name, len(revisions) + 1, spec, dict(resolved), now, created_by, kind, cause)
        revisions.append(revision)
        record = DeploymentRecord(project, name, revision.number,
                                  existing.serving_revision if existing else None,
                                  existing.status if existing else ModelDeploymentStatus(), False,
                                  existing.created_at if existing else now, now)
        self.records[key] = record
        return record, revision, True  # a new revision was made (same meaning as the SQL store)

    def get(self, project: str, name: str) -> DeploymentRecord:
        try:
            return self.records[(project, name)]
        except KeyError:
            raise NotFound(f"deployment {project}/{name}") from None

    def list_deployments(self, project: str | None = None) -> list[DeploymentRecord]:
        return [r for (p, _), r in sorted(self.records.items()) if project in (None, p)]

    def request_delete(self, project: str, name: str) -> None:
        self.records[(project, name)] = replace(self.get(project, name), deleting=True)

    def revisions(self, project: str, name: str) -> list[Revision]:
        self.get(project, name)
        return list(self.revs[(project, name)])

    def revision(self, project: str, name: str, number: int) -> Revision:
        for revision in self.revisions(project, name):
            if revision.number == number:
                return revision
        raise NotFound(f"revision {number} of {project}/{name}")

    def events(self, project: str, name: str, *, limit: int = 100) -> list[Event]:
        return self.event_log.get((project, name), [])[-limit:]

    def set_status(self, project: str, name: str, status: ModelDeploymentStatus, *,
                   serving_revision: int | None) -> None:
        self.records[(project, name)] = replace(self.get(project, name), status=status,
                                                serving_revision=serving_revision)

    def add_event(self, project: str, name: str, type: EventType, reason: str, message: str, *,
                  revision: int | None = None) -> None:
        self.event_log.setdefault((project, name), []).append(
            Event(project, name, self.clock.now(), type, reason, message, revision))

    def purge(self, project: str, name: str) -> None:
        self.get(project, name)
        del self.records[(project, name)]
        self.revs.pop((project, name), None)
        self.event_log.pop((project, name), None)

    def close(self) -> None:
        pass

    def reasons(self, project: str, name: str) -> list[str]:
        return [e.reason for e in self.event_log.get((project, name), [])]


class FakeBackend:
    """Replicas as observations; tests move them between phases."""

    def __init__(self, clock: FakeClock | None = None, *, ports: int = 1000) -> None:
        self.clock = clock or FakeClock()
        self.replicas: dict[str, ReplicaObservation] = {}
        self._ids = itertools.count(1)
        self._pids = itertools.count(100)
        self.ports_left = ports
        self.observe_error: Exception | None = None

    def refuse(self, spec: ModelDeploymentSpec) -> None:
        """Runs anything."""

    async def observe(self) -> list[ReplicaObservation]:
        if self.observe_error is not None:
            raise self.observe_error
        return list(self.replicas.values())

    async def start(self, spec: ReplicaSpec) -> str:
        return self.start_now(spec)

    async def restart(self, replica_id: str) -> None:
        self.restart_now(replica_id)

    async def stop(self, replica_id: str, reason: str) -> None:
        self.stop_now(replica_id)

    def start_now(self, spec: ReplicaSpec) -> str:
        if self.ports_left <= 0:
            raise ServiceUnavailable("no free port in 30000-30000 for a replica")
        self.ports_left -= 1
        replica_id = f"{spec.predictor}-{next(self._ids)}"
        self.replicas[replica_id] = ReplicaObservation(
            replica_id, spec, "starting", f"http://127.0.0.1:{30000 + len(self.replicas)}", next(self._pids),
            self.clock.t)
        return replica_id

    def restart_now(self, replica_id: str) -> None:
        r = self.replicas[replica_id]
        self.replicas[replica_id] = replace(r, phase="starting", pid=next(self._pids), started_at=self.clock.t,
                                            ready_since=None, exit_code=None, last_log=(), restarts=r.restarts + 1,
                                            failed_probes=0, unready_since=None)

    def stop_now(self, replica_id: str) -> None:
        self.replicas[replica_id] = replace(self.replicas[replica_id], phase="stopping")

    def logs(self, project: str, deployment: str, *, predictor: str | None = None, tail: int = 100) -> list[str]:
        return []

    async def close(self) -> None:
        pass

    # -- test controls ----------------------------------------------------------------------------
    def make_ready(self, *ids: str) -> None:
        for replica_id in ids or list(self.replicas):
            r = self.replicas[replica_id]
            if r.phase == "starting":
                self.replicas[replica_id] = replace(r, phase="ready", ready_since=self.clock.t)

    def crash(self, replica_id: str, code: int = 1, log: tuple[str, ...] = ("Traceback", "boom")) -> None:
        self.replicas[replica_id] = replace(self.replicas[replica_id], phase="exited", exit_code=code,
                                            last_log=log)

    def finish_stops(self) -> None:
        self.replicas = {k: r for k, r in self.replicas.items() if r.phase != "stopping"}
