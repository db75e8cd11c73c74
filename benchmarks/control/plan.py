"""Benchmark: one reconcile plan over 1,000 deployments of 2 ready replicas each (target < 1 s).

Run: .venv/bin/python benchmarks/control/plan.py. Prints the median of a few passes, steady state
(nothing to do) and mid-rollout (every deployment has a new revision).
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime

from modelpier.backends.base import ReplicaObservation
from modelpier.control.deployments.state import Revision
from modelpier.control.reconciler.plan import DeploymentTarget, plan, templates_of
from modelpier.control.reconciler.status import build_routing_table
from modelpier.spec.deployment import ModelDeploymentSpec
from modelpier.spec.revision import RevisionKind

N = 1000
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def revision(i: int, number: int, model: str) -> Revision:
    spec = ModelDeploymentSpec.model_validate({"predictors": [{"name": "main", "model": model, "replicas": 2}]})
    return Revision("default", f"d{i}", number, spec, {"main": model}, NOW, "bench", RevisionKind.APPLIED, "applied")


def main() -> None:
    v1 = [revision(i, 1, "iris:1") for i in range(N)]
    v2 = [revision(i, 2, "iris:2") for i in range(N)]
    observed = []
    for i, rev in enumerate(v1):
        template = templates_of(rev)["main"]
        assert template is not None
        observed += [ReplicaObservation(f"d{i}-{k}", template, "ready", f"http://127.0.0.1:{i}", 10 + k, 0.0, 0.0)
                     for k in range(2)]
    steady = [DeploymentTarget(rev, rev) for rev in v1]
    rolling = [DeploymentTarget(new, old) for new, old in zip(v2, v1, strict=True)]
    for name, targets in (("steady", steady), ("rolling", rolling)):
        timings = []
        for _ in range(5):
            start = time.perf_counter()
            result = plan(targets, observed, 100.0)
            build_routing_table(targets, observed)
            timings.append(time.perf_counter() - start)
        print(f"plan + routing table, {N} deployments, {name}: median {statistics.median(timings) * 1000:.0f} ms, "
              f"{len(result.actions)} actions")


if __name__ == "__main__":
    main()
