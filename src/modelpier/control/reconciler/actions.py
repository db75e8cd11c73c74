"""What the planner decides: typed actions, and the policy state it carries from pass to pass.

Actions are plain data, executed by the loop's actuator against the backend and the store. The
policy state (crash counts, backoff deadlines, when a rollout started) is data too, returned by the
planner with its actions, so the loop keeps it and a restart resumes from a fresh, safe default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from modelpier.backends.base import ReplicaSpec
from modelpier.control.deployments.state import EventType

# The cause an automatic rollback revision (RevisionKind.AUTO_ROLLBACK) records, for people.
ROLLBACK_CAUSE = "automatic rollback"


@dataclass(frozen=True, slots=True)
class StartReplica:
    project: str
    deployment: str
    predictor: str
    revision: int
    spec: ReplicaSpec


@dataclass(frozen=True, slots=True)
class StopReplica:
    project: str
    deployment: str
    replica_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class RestartReplica:
    project: str
    deployment: str
    replica_id: str
    attempt: int  # consecutive crashes so far; the backoff that was waited grew with it
    cause: str = ""  # why, when not a crash: "unresponsive: ..." for a liveness restart


@dataclass(frozen=True, slots=True)
class MarkRolledOut:
    project: str
    deployment: str
    revision: int


@dataclass(frozen=True, slots=True)
class RollBack:
    project: str
    deployment: str
    to: int  # the revision whose spec becomes the newest revision again
    failed: int
    reason: str


@dataclass(frozen=True, slots=True)
class Purge:
    project: str
    deployment: str


@dataclass(frozen=True, slots=True)
class RecordEvent:
    project: str
    deployment: str
    type: EventType
    reason: str
    message: str
    revision: int | None = None


Action = StartReplica | StopReplica | RestartReplica | MarkRolledOut | RollBack | Purge | RecordEvent


@dataclass(frozen=True, slots=True)
class PlanPolicy:
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    degraded_after: int = 3  # consecutive crashes of one replica before Degraded
    rollback_after_start_failures: int = 3  # crashes of a new revision's replica before it was ever ready
    stable_after_s: float = 10.0  # ready this long resets a replica's crash count
    log_lines: int = 10  # log lines quoted in a Degraded condition or rollback reason
    liveness_failures: int = 10  # consecutive failed probes of a live, once-ready replica before a restart
    liveness_period_s: float = 1.0  # ...which must also span liveness_failures x this many seconds

    def unresponsive(self, failed_probes: int, unready_since: float | None, now: float) -> bool:
        """Has a live replica that was ready failed its probes long enough to be restarted?"""
        return (unready_since is not None and failed_probes >= self.liveness_failures
                and now - unready_since >= self.liveness_failures * self.liveness_period_s)

    def backoff(self, failures: int) -> float:
        return float(min(self.backoff_initial_s * 2 ** max(failures - 1, 0), self.backoff_max_s))


@dataclass(frozen=True, slots=True)
class CrashRecord:
    failures: int  # consecutive crashes of the slot
    counted_pid: int | None  # the exited process already counted, so a crash counts once
    next_attempt_at: float  # epoch seconds: restart not before
    exit_code: int | None
    last_log: tuple[str, ...]
    ever_ready: bool


@dataclass(frozen=True, slots=True)
class DeploymentState:
    """Policy state of one deployment, kept by the loop between passes."""

    rollout_revision: int | None = None
    rollout_started_at: float | None = None
    crashes: Mapping[str, CrashRecord] = field(default_factory=lambda: MappingProxyType({}))
    announced_ready: frozenset[str] = frozenset()  # "replica@pid" already reported ready
    start_blocked_until: float = 0.0  # set by the actuator after a failed start (no port...)
    start_error: str | None = None


@dataclass(frozen=True, slots=True)
class DeploymentPlan:
    actions: list[Action]
    state: DeploymentState
