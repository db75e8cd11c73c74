"""Routing decisions of the gateway: which predictor, which replica, whether to mirror. Pure functions.

Randomness is passed in (a float in [0, 1)), so weighted splits are deterministic in tests. Order of
precedence for a request: a header route that matches (``spec.routes``, first match wins), else the
sticky key (``spec.sticky.header``: the value is hashed to the point the weights are read at, so the
same caller lands on the same predictor while the weights stay the same), else a random point.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence

from modelpier.spec.routing import DeploymentRoute, PredictorRoute, ReplicaEndpoint

HeaderLookup = Callable[[str], str | None]  # lower-cased header name → value


def _serves(p: PredictorRoute) -> bool:
    """Can take a request now, or after a cold start (scaled to zero)."""
    return bool(p.replicas) or p.scales_to_zero


def match_predictor(route: DeploymentRoute, rand: float) -> PredictorRoute | None:
    """A predictor that can serve, chosen by weight; None when no predictor can.

    Predictors without ready replicas drop out and the others share their traffic in proportion:
    a canary that is down does not fail its share of requests. A predictor scaled to zero stays in
    (its requests wait for the cold start). The shadow predictor only receives copies. When every
    predictor that can serve weighs 0 (a retiring predictor during a rollout), the first serves.
    """
    shadow = route.policy.shadow
    candidates = [p for p in route.predictors if _serves(p) and p.name != shadow]
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


def sticky_point(value: str) -> float:
    """A stable point in [0, 1) for a sticky key: the same caller reads the weights at the same place."""
    digest = hashlib.blake2b(value.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def choose_predictor(route: DeploymentRoute, header: HeaderLookup, rand: float) -> tuple[PredictorRoute | None, str]:
    """The predictor for one request and why (``route`` / ``sticky`` / ``weight``).

    A matching header route always wins, even when its predictor has no ready replica (the caller
    asked for that predictor; answering from another would hide the outage).
    """
    policy = route.policy
    for candidate in policy.routes:
        if all(header(name) == value for name, value in candidate.headers):
            chosen = next((p for p in route.predictors if p.name == candidate.predictor), None)
            if chosen is not None:
                return chosen, "route"
    if policy.sticky_header is not None:
        key = header(policy.sticky_header)
        if key:
            return match_predictor(route, sticky_point(key)), "sticky"
    return match_predictor(route, rand), "weight"


def mirror_to(route: DeploymentRoute, primary: PredictorRoute, rand: float) -> PredictorRoute | None:
    """The shadow predictor this request is copied to, if any: ``shadow.percent`` of requests, when
    the shadow has a ready replica and did not serve the request itself."""
    policy = route.policy
    if policy.shadow is None or policy.shadow == primary.name or rand * 100 >= policy.shadow_percent:
        return None
    return next((p for p in route.predictors if p.name == policy.shadow and p.replicas), None)


def pick_replica(replicas: Sequence[ReplicaEndpoint], outstanding: Mapping[str, int], rand: float,
                 exclude: Collection[str] = ()) -> ReplicaEndpoint | None:
    """The replica with the fewest outstanding requests; ties broken by ``rand`` so idle replicas
    share the load. ``exclude`` names replicas that already failed this request or are ejected."""
    candidates = [r for r in replicas if r.replica_id not in exclude]
    if not candidates:
        return None
    least = min(outstanding.get(r.replica_id, 0) for r in candidates)
    best = [r for r in candidates if outstanding.get(r.replica_id, 0) == least]
    return best[min(int(rand * len(best)), len(best) - 1)]
