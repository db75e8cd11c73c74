"""The reconcile planner, driven step by step over fakes with an injected clock.

``Sim`` plays the loop: plan, apply the actions to the fake backend and store, and lets the test
move replicas (ready, crash, finish draining). Every step also re-plans on the applied state and
asserts nothing more is planned: the planner's idempotence guarantee.
"""

from __future__ import annotations

from typing import Any

import pytest

from modelpier.control.reconciler.actions import (
    ROLLBACK_CAUSE,
    Action,
    DeploymentState,
    MarkRolledOut,
    PlanPolicy,
    Purge,
    RecordEvent,
    RestartReplica,
    RollBack,
    StartReplica,
    StopReplica,
)
from modelpier.control.reconciler.plan import DeploymentTarget, plan, plan_deployment
from modelpier.control.reconciler.status import build_routing_table, derive_status
from modelpier.spec.deployment import ModelDeploymentSpec
from modelpier.spec.revision import RevisionKind
from tests.unit.control.fakes import FakeBackend, FakeClock, FakeStore

POLICY = PlanPolicy(backoff_initial_s=1, backoff_max_s=8, degraded_after=3, rollback_after_start_failures=3)


def spec(replicas: int = 1, model: str = "iris:1", surge: int = 1, unavailable: int = 0,
         timeout: float = 60, **predictor: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({
        "predictors": [{"name": "main", "model": model, "replicas": replicas, **predictor}],
        "rollout": {"maxSurge": surge, "maxUnavailable": unavailable, "readyTimeoutSeconds": timeout}})


class Sim:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.store = FakeStore(self.clock)
        self.backend = FakeBackend(self.clock)
        self.states: dict[tuple[str, str], DeploymentState] = {}

    def apply(self, s: ModelDeploymentSpec, name: str = "iris") -> int:
        _, revision, _ = self.store.apply("default", name, s, resolved={"main": s.predictors[0].model or ""},
                                          created_by="t", kind=RevisionKind.APPLIED, cause="applied")
        return revision.number

    def targets(self) -> list[DeploymentTarget]:
        out = []
        for record in self.store.list_deployments():
            desired = self.store.revision(record.project, record.name, record.latest_revision)
            serving = (self.store.revision(record.project, record.name, record.serving_revision)
                       if record.serving_revision else None)
            out.append(DeploymentTarget(desired, serving, record.deleting))
        return out

    def plan(self) -> list[Action]:
        result = plan(self.targets(), list(self.backend.replicas.values()), self.clock.t, self.states,
                      policy=POLICY)
        self.states = dict(result.states)
        return result.actions

    def step(self) -> list[Action]:
        """Plan, apply, and check that planning again on the applied state does nothing."""
        actions = self.plan()
        for action in actions:
            self._apply(action)
        again = self.plan()
        assert again == [], f"not idempotent: {again}"
        return actions

    def _apply(self, a: Action) -> None:
        if isinstance(a, StartReplica):
            self.backend.start_now(a.spec)
        elif isinstance(a, StopReplica):
            self.backend.stop_now(a.replica_id)
        elif isinstance(a, RestartReplica):
            self.backend.restart_now(a.replica_id)
        elif isinstance(a, MarkRolledOut):
            record = self.store.get(a.project, a.deployment)
            self.store.set_status(a.project, a.deployment, record.status, serving_revision=a.revision)
        elif isinstance(a, RollBack):
            prev = self.store.revision(a.project, a.deployment, a.to)
            self.store.apply(a.project, a.deployment, prev.spec, resolved=prev.resolved, created_by="reconciler",
                             kind=RevisionKind.AUTO_ROLLBACK, cause=f"{ROLLBACK_CAUSE}: {a.reason}")
        elif isinstance(a, Purge):
            self.store.purge(a.project, a.deployment)
        elif isinstance(a, RecordEvent):
            self.store.add_event(a.project, a.deployment, a.type, a.reason, a.message, revision=a.revision)

    def live(self, phase: str | None = None) -> list[str]:
        return sorted(k for k, r in self.backend.replicas.items()
                      if r.phase != "stopping" and (phase is None or r.phase == phase))

    def models(self) -> list[str]:
        return sorted(r.spec.model for r in self.backend.replicas.values() if r.phase != "stopping")

    def serving(self) -> int | None:
        return self.store.get("default", "iris").serving_revision

    def settle(self, limit: int = 50) -> None:
        """Run passes, making starting replicas ready and finishing drains, until nothing happens."""
        for _ in range(limit):
            self.backend.make_ready()
            self.backend.finish_stops()
            if not self.step():
                return
        raise AssertionError("did not settle")

    def status(self) -> Any:
        target = self.targets()[0]
        return derive_status(target, list(self.backend.replicas.values()), self.states[target.key],
                             url="http://gw/default/iris", now=self.clock.now(), policy=POLICY)


def kinds(actions: list[Action]) -> list[str]:
    return [type(a).__name__ if not isinstance(a, RecordEvent) else a.reason for a in actions]


@pytest.mark.parametrize("replicas", [1, 2, 5])
def test_fresh_deploy_starts_replicas_then_marks_rolled_out(replicas: int) -> None:
    sim = Sim()
    sim.apply(spec(replicas))
    assert kinds(sim.step()) == ["StartReplica"] * replicas
    assert sim.status().condition("Ready").reason == "ReplicasStarting"
    assert sim.step() == []  # still starting: nothing to do
    sim.backend.make_ready()
    assert kinds(sim.step()) == ["ReplicaReady"] * replicas + ["MarkRolledOut", "RolloutComplete"]
    assert sim.serving() == 1
    status = sim.status()
    assert (status.ready_replicas, status.desired_replicas) == (replicas, replicas)
    assert [c.status for c in status.conditions] == ["True", "False", "False"]
    assert status.predictors[0].model_version == "iris:1"
    assert sim.step() == []


@pytest.mark.parametrize(("before", "after"), [(1, 3), (3, 1), (2, 0)])
def test_scaling_starts_or_stops_without_restarting_the_rest(before: int, after: int) -> None:
    sim = Sim()
    sim.apply(spec(before))
    sim.settle()
    kept = set(sim.live())
    sim.apply(spec(after))
    actions = sim.step()
    if after > before:
        assert kinds(actions) == ["StartReplica"] * (after - before)
    else:
        assert kinds(actions) == ["StopReplica"] * (before - after)
    sim.settle()
    assert len(sim.live("ready")) == after
    assert sim.serving() == 2
    assert (kept & set(sim.live())) == (kept if after > before else kept & set(sim.live()))


@pytest.mark.parametrize(("replicas", "surge", "unavailable"),
                         [(1, 1, 0), (2, 1, 0), (3, 1, 0), (3, 2, 0), (2, 0, 1), (3, 1, 1), (4, 0, 2)])
def test_rolling_update_respects_surge_and_unavailability(replicas: int, surge: int, unavailable: int) -> None:
    sim = Sim()
    sim.apply(spec(replicas, surge=surge, unavailable=unavailable))
    sim.settle()
    sim.apply(spec(replicas, model="iris:2", surge=surge, unavailable=unavailable))
    for _ in range(40):
        sim.step()
        ready = len(sim.live("ready"))
        assert ready >= replicas - unavailable, "too many replicas unavailable"
        assert len(sim.live()) <= replicas + surge, "surged past maxSurge"
        if sim.serving() == 2:
            break
        sim.backend.make_ready()
        sim.backend.finish_stops()
    else:
        raise AssertionError("the rollout never finished")
    sim.settle()
    assert sim.models() == ["iris:2"] * replicas
    assert "RolloutComplete" in sim.store.reasons("default", "iris")


def test_rolling_update_waits_for_ready_before_stopping_old() -> None:
    sim = Sim()
    sim.apply(spec(1))
    sim.settle()
    old = sim.live()
    sim.apply(spec(1, model="iris:2"))
    assert kinds(sim.step()) == ["StartReplica"]
    assert sim.step() == []  # the new one is starting; the old one keeps serving
    assert set(old) <= set(sim.live("ready"))
    sim.backend.make_ready()
    actions = sim.step()
    assert kinds(actions) == ["ReplicaReady", "StopReplica"]
    assert isinstance(actions[1], StopReplica)
    assert actions[1].replica_id == old[0]
    sim.backend.finish_stops()
    assert kinds(sim.step()) == ["MarkRolledOut", "RolloutComplete"]


def test_routing_table_leaves_stopping_and_unready_replicas_out() -> None:
    sim = Sim()
    sim.apply(spec(2))
    sim.settle()
    first, second = sim.live()
    sim.backend.crash(second)
    table = build_routing_table(sim.targets(), list(sim.backend.replicas.values()), exclude={first})
    route = table.get("default", "iris")
    assert route is not None
    assert route.ready_replicas == 0
    table = build_routing_table(sim.targets(), list(sim.backend.replicas.values()))
    route = table.get("default", "iris")
    assert route is not None
    assert [r.replica_id for r in route.predictors[0].replicas] == [first]
    assert route.predictors[0].replicas[0].revision == 1
    assert table.get("default", "nope") is None


@pytest.mark.parametrize("crashes", [1, 2, 3, 5])
def test_crashed_replica_restarts_with_exponential_backoff(crashes: int) -> None:
    sim = Sim()
    sim.apply(spec(1))
    sim.settle()
    (replica,) = sim.live()
    for n in range(1, crashes + 1):
        sim.backend.crash(replica)
        assert kinds(sim.step()) == ["ReplicaCrashed"]
        delay = min(2 ** (n - 1), 8)
        sim.clock.advance(delay - 0.01)
        assert sim.step() == [], "restarted before the backoff elapsed"
        sim.clock.advance(0.01)
        actions = sim.step()
        assert actions == [RestartReplica("default", "iris", replica, n)]
    sim.backend.make_ready()
    sim.step()
    assert sim.live("ready") == [replica]


def test_repeated_crashes_report_degraded_with_log_lines_and_recover_when_stable() -> None:
    sim = Sim()
    sim.apply(spec(1))
    sim.settle()
    (replica,) = sim.live()
    for n in range(3):
        sim.backend.crash(replica, code=137, log=("loading model", f"MemoryError #{n}"))
        sim.step()
        sim.clock.advance(10)
        sim.step()
    status = sim.status()
    degraded = status.condition("Degraded")
    assert degraded is not None
    assert degraded.status == "True"
    assert degraded.reason == "CrashLoop"
    assert "crashed 3 times" in degraded.message
    assert "MemoryError #2" in degraded.message
    assert "137" in degraded.message
    sim.backend.make_ready()
    sim.step()
    sim.clock.advance(POLICY.stable_after_s)
    sim.step()
    assert sim.status().condition("Degraded").status == "False"


def test_revision_that_never_gets_ready_is_rolled_back_at_the_timeout() -> None:
    sim = Sim()
    sim.apply(spec(2, timeout=30))
    sim.settle()
    v1 = sim.live()
    sim.apply(spec(2, model="iris:2", timeout=30))
    sim.step()
    sim.clock.advance(29)
    assert sim.step() == []
    sim.clock.advance(1)
    actions = sim.step()
    # The rollback revision (3) is a copy of 1: its replicas are already there and ready, so the same
    # pass stops the new revision's replica.
    assert kinds(actions) == ["RollBack", "StopReplica"]
    assert isinstance(actions[0], RollBack)
    assert actions[0].to == 1
    assert actions[0].failed == 2
    assert "never became ready within 30s" in actions[0].reason
    sim.backend.finish_stops()
    assert kinds(sim.step()) == ["MarkRolledOut", "RolloutComplete"]
    assert sim.serving() == 3
    assert sim.live() == v1
    progressing = sim.status().condition("Progressing")
    assert progressing is not None
    assert progressing.reason == "RolledBack"
    assert "revision 2 never became ready" in progressing.message


def test_revision_whose_replica_crash_loops_on_start_is_rolled_back_early() -> None:
    sim = Sim()
    sim.apply(spec(1))
    sim.settle()
    sim.apply(spec(1, model="broken:1"))
    sim.step()
    (new,) = [k for k, r in sim.backend.replicas.items() if r.spec.model == "broken:1"]
    for _ in range(3):
        sim.backend.crash(new, log=("InvalidArtifact: Broken.load() failed: RuntimeError: nope",))
        actions = sim.step()
        sim.clock.advance(5)
        actions += sim.step()
    rollbacks = [a for a in actions if isinstance(a, RollBack)]
    assert len(rollbacks) == 1
    assert "crashed 3 times while starting" in rollbacks[0].reason
    assert "RuntimeError: nope" in rollbacks[0].reason
    sim.settle()
    assert sim.models() == ["iris:1"]


def test_first_revision_is_never_rolled_back() -> None:
    sim = Sim()
    sim.apply(spec(1, timeout=5))
    sim.step()
    sim.clock.advance(100)
    assert sim.step() == []
    assert sim.status().condition("Ready").status == "False"


def test_delete_stops_every_replica_then_purges() -> None:
    sim = Sim()
    sim.apply(spec(3))
    sim.settle()
    sim.store.request_delete("default", "iris")
    assert kinds(sim.step()) == ["StopReplica"] * 3
    assert sim.step() == []  # draining
    sim.backend.finish_stops()
    assert kinds(sim.step()) == ["Purge"]
    assert sim.store.list_deployments() == []
    assert sim.plan() == []


def test_replicas_of_unknown_deployments_are_stopped() -> None:
    sim = Sim()
    sim.apply(spec(1))
    sim.settle()
    sim.store.purge("default", "iris")
    actions = sim.step()
    assert kinds(actions) == ["StopReplica"]


def test_a_blocked_start_waits_for_its_deadline() -> None:
    sim = Sim()
    sim.apply(spec(1))
    sim.plan()
    sim.states[("default", "iris")] = DeploymentState(start_blocked_until=sim.clock.t + 5, start_error="no port")
    assert sim.plan() == []
    sim.clock.advance(5)
    assert kinds(sim.plan()) == ["StartReplica"]


def test_adopted_ready_replicas_are_not_announced_again() -> None:
    sim = Sim()
    sim.apply(spec(1))
    sim.step()
    (replica,) = sim.live()
    from dataclasses import replace

    sim.backend.replicas[replica] = replace(sim.backend.replicas[replica], phase="ready", ready_since=0.0,
                                            adopted=True)
    assert kinds(sim.step()) == ["MarkRolledOut", "RolloutComplete"]


def test_plan_deployment_alone_is_pure() -> None:
    sim = Sim()
    sim.apply(spec(2))
    (target,) = sim.targets()
    first = plan_deployment(target.desired, None, [], 5.0, policy=POLICY)
    second = plan_deployment(target.desired, None, [], 5.0, policy=POLICY)
    assert first == second
    assert kinds(first.actions) == ["StartReplica", "StartReplica"]
    assert first.state.rollout_revision == 1
    assert first.state.rollout_started_at == 5.0


def hang(sim: Sim, replica: str, failed_probes: int, since: float) -> None:
    """The backend's view of a live replica that stopped answering its readiness probe."""
    from dataclasses import replace

    sim.backend.replicas[replica] = replace(sim.backend.replicas[replica], phase="unready", ready_since=None,
                                            failed_probes=failed_probes, unready_since=since)


@pytest.mark.parametrize(("failed_probes", "unready_for", "restarted"), [
    (9, 60.0, False),  # not enough probes, however long
    (10, 9.9, False),  # enough probes, but a burst of quick passes: not long enough
    (10, 10.0, True),
    (40, 40.0, True),
])
def test_live_but_unresponsive_replica_is_restarted_after_n_failed_probes(
        failed_probes: int, unready_for: float, restarted: bool) -> None:
    assert (POLICY.liveness_failures, POLICY.liveness_period_s) == (10, 1.0)
    sim = Sim()
    sim.apply(spec(1))
    sim.settle()
    (replica,) = sim.live()
    pid = sim.backend.replicas[replica].pid
    hang(sim, replica, failed_probes, since=sim.clock.t)
    sim.clock.advance(unready_for)
    actions = sim.step()
    if not restarted:
        assert actions == []
        return
    assert kinds(actions) == ["ReplicaUnresponsive", "RestartReplica"]
    restart = actions[1]
    assert isinstance(restart, RestartReplica)
    assert (restart.replica_id, restart.attempt) == (replica, 1)
    assert f"failed {failed_probes} readiness probes" in restart.cause
    assert sim.backend.replicas[replica].pid != pid  # same slot, new process
    assert sim.backend.replicas[replica].phase == "starting"


def test_a_replica_that_keeps_hanging_reports_degraded_and_recovers_when_stable() -> None:
    sim = Sim()
    sim.apply(spec(1))
    sim.settle()
    (replica,) = sim.live()
    for n in range(1, 4):
        sim.backend.make_ready()
        hang(sim, replica, 10, since=sim.clock.t)
        sim.clock.advance(10)
        actions = sim.step()
        assert [a.attempt for a in actions if isinstance(a, RestartReplica)] == [n]
    degraded = sim.status().condition("Degraded")
    assert degraded.status == "True"
    assert "unresponsive" in degraded.message
    sim.backend.make_ready()
    sim.step()
    sim.clock.advance(POLICY.stable_after_s)
    sim.step()
    assert sim.status().condition("Degraded").status == "False"


def test_liveness_leaves_starting_replicas_and_stops_hung_ones_of_an_old_revision() -> None:
    sim = Sim()
    sim.apply(spec(1))
    sim.step()
    (replica,) = sim.live()
    sim.clock.advance(600)  # loading for ten minutes: the rollout's readyTimeout decides, not liveness
    assert "RestartReplica" not in kinds(sim.plan())
    sim.settle()
    sim.apply(spec(1, model="iris:2"))
    hang(sim, replica, 10, since=sim.clock.t - 10)
    actions = sim.step()
    assert "RestartReplica" not in kinds(actions)
    assert StopReplica("default", "iris", replica, "replaced by revision 2") in actions


def test_default_outputs_are_part_of_the_replica_template() -> None:
    from datetime import UTC, datetime

    from modelpier.control.deployments.state import Revision
    from modelpier.control.reconciler.plan import replica_template

    def template(s: ModelDeploymentSpec) -> Any:
        revision = Revision("default", "iris", 1, s, {"main": "iris:1"}, datetime.now(UTC), "t", RevisionKind.APPLIED,
                            "applied")
        return replica_template(revision, s.predictors[0])

    plain, narrowed = template(spec()), template(spec(outputs=["predict"]))
    assert (plain.outputs, narrowed.outputs) == ((), ("predict",))
    assert plain.template != narrowed.template  # a changed default restarts the replicas


def test_the_body_limit_reaches_the_replicas_and_rolls_them_only_when_set() -> None:
    import hashlib
    from datetime import UTC, datetime

    from modelpier.control.deployments.state import Revision
    from modelpier.control.reconciler.plan import replica_template

    def template(limits: dict[str, Any] | None = None) -> Any:
        s = ModelDeploymentSpec.model_validate({"predictors": [{"name": "main", "model": "iris:1"}],
                                                **({"limits": limits} if limits else {})})
        revision = Revision("default", "iris", 1, s, {"main": "iris:1"}, datetime.now(UTC), "t", RevisionKind.APPLIED,
                            "applied")
        return replica_template(revision, s.predictors[0])

    default, raised, tiny = template(), template({"maxBodyBytes": 100 * 2**20}), template({"maxBodyBytes": 10})
    assert default.max_body_bytes == 64 * 2**20  # the gateway's default, not the server's 16 MiB
    # The default keeps the key replicas had before the limit was carried: an upgrade restarts nothing.
    assert default.template == hashlib.blake2b(b"main|iris:1|w1|b64:5.0", digest_size=5).hexdigest()
    assert template({"maxBodyBytes": 64 * 2**20}).template == default.template
    assert raised.max_body_bytes == 100 * 2**20
    assert raised.template != default.template  # a changed limit restarts the replicas
    assert tiny.max_body_bytes == 1024  # the server's least; the gateway refuses more than 10 bytes anyway
