"""Routing decisions of the gateway: which predictor, then which replica. Pure functions.

Randomness is passed in (a float in [0, 1)), so weighted splits are deterministic in tests.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from modelpier.spec.routing import DeploymentRoute, PredictorRoute, ReplicaEndpoint


def match_predictor(route: DeploymentRoute, rand: float) -> PredictorRoute | None:
    """A predictor with ready replicas, chosen by weight; None when no predictor has any.

    Predictors without ready replicas drop out and the others share their traffic in proportion:
    a canary that is down does not fail its share of requests. When every predictor that has
    replicas weighs 0 (a retiring predictor during a rollout), the first of them serves.
    """
    candidates = [p for p in route.predictors if p.replicas]
    if not candidates:
        return None
    if len(candidates) == 1:
        return candidates[0]
    total = sum(p.weight for p in candidates)
    if total <= 0:
        return candidates[0]
    point = rand * total
    for p in candidates:
        if point < p.weight:
            return p
        point -= p.weight
    return next(p for p in reversed(candidates) if p.weight > 0)  # rand rounding at the top end


def pick_replica(replicas: Sequence[ReplicaEndpoint], outstanding: Mapping[str, int], rand: float,
                 exclude: Collection[str] = ()) -> ReplicaEndpoint | None:
    """The replica with the fewest outstanding requests; ties broken by ``rand`` so idle replicas
    share the load. ``exclude`` names replicas that already failed this request."""
    candidates = [r for r in replicas if r.replica_id not in exclude]
    if not candidates:
        return None
    least = min(outstanding.get(r.replica_id, 0) for r in candidates)
    best = [r for r in candidates if outstanding.get(r.replica_id, 0) == least]
    return best[min(int(rand * len(best)), len(best) - 1)]
