"""The routing table: which ready replicas serve each deployment, and with what traffic weights.

The reconciler builds it after every pass and publishes it; the control plane serves it at
``GET /api/v1/routing`` in the wire form below, and the gateway (its own process) polls it, so the
data plane never imports the control plane. Values are immutable: a new pass publishes a new table,
readers never see one half-updated.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True, slots=True)
class ReplicaEndpoint:
    replica_id: str
    url: str  # base URL of the replica's model server, e.g. http://127.0.0.1:30001
    revision: int  # the newest revision whose replica template this replica matches
    model_version: str | None = None  # e.g. "iris:3"
    grpc_url: str | None = None  # host:port of the replica's V2 gRPC service, when it has one


@dataclass(frozen=True, slots=True)
class PredictorRoute:
    name: str
    weight: int  # share of traffic in percent, from the desired revision (0 for a retiring predictor)
    replicas: tuple[ReplicaEndpoint, ...] = ()
    scales_to_zero: bool = False  # autoscaling.minReplicas == 0: no replica means "asleep", not "down"


@dataclass(frozen=True, slots=True)
class HeaderRoute:
    """``spec.routes[i]``: when every header matches exactly, ``predictor`` serves."""

    headers: tuple[tuple[str, str], ...]  # (lower-cased name, value)
    predictor: str


@dataclass(frozen=True, slots=True)
class TrafficPolicy:
    """The parts of the spec the gateway applies per request, copied from the desired revision."""

    routes: tuple[HeaderRoute, ...] = ()
    sticky_header: str | None = None  # lower-cased
    shadow: str | None = None  # the shadow predictor's name
    shadow_percent: int = 0
    shadow_log: bool = False
    cache_ttl_s: float | None = None  # None: no prediction cache
    cache_max_entries: int = 0
    max_in_flight: int | None = None  # None: unlimited
    max_body_bytes: int = 64 * 1024 * 1024
    log_sample_rate: float | None = None  # None: no prediction log
    log_sink: str = "jsonl"


@dataclass(frozen=True, slots=True)
class DeploymentRoute:
    project: str
    deployment: str
    revision: int  # the desired revision
    predictors: tuple[PredictorRoute, ...] = ()
    timeout_s: float = 30.0  # per-request timeout at the gateway (spec.timeouts.requestSeconds)
    auth_mode: str = "public"  # spec.auth.mode: "token" makes the gateway check callers before forwarding
    policy: TrafficPolicy = TrafficPolicy()

    @property
    def ready_replicas(self) -> int:
        return sum(len(p.replicas) for p in self.predictors)


def route_key(project: str, deployment: str) -> str:
    return f"{project}/{deployment}"


@dataclass(frozen=True, slots=True)
class RoutingTable:
    """Deployments by ``project/deployment``; a deployment absent here is unknown (404).

    ``auth_epoch`` changes whenever a token is revoked or a membership shrinks: gateways drop the
    token checks they cached, so a revoked token stops working as soon as the table arrives.
    """

    deployments: Mapping[str, DeploymentRoute] = field(default_factory=lambda: MappingProxyType({}))
    auth_epoch: int = 0

    @classmethod
    def of(cls, routes: list[DeploymentRoute], *, auth_epoch: int = 0) -> RoutingTable:
        return cls(MappingProxyType({route_key(r.project, r.deployment): r for r in routes}), auth_epoch)

    def get(self, project: str, deployment: str) -> DeploymentRoute | None:
        return self.deployments.get(route_key(project, deployment))


class RoutingTableCell:
    """Holds the latest table; the reconciler ``set``s it, readers ``get`` it.

    Swapping one reference is atomic under the event loop, so no lock is needed. ``set`` keeps the
    old object when the new table is equal, so a reader can cache work per table identity (the
    routing route caches the encoded body and ETag). ``published`` is False until the first ``set``:
    before the reconciler's first pass the empty table means "not known yet", not "no deployments".
    """

    def __init__(self, table: RoutingTable | None = None) -> None:
        self._table = table or RoutingTable()
        self.published = table is not None

    def get(self) -> RoutingTable:
        return self._table

    def set(self, table: RoutingTable) -> None:
        if not self.published or table != self._table:
            self._table = table
        self.published = True


# -- the wire form, shared by the control plane's ``GET /api/v1/routing`` and the gateway ------------
_DEFAULT_POLICY = TrafficPolicy()


def _policy_to_wire(policy: TrafficPolicy) -> dict[str, Any]:
    return {"routes": [{"headers": [list(h) for h in r.headers], "predictor": r.predictor} for r in policy.routes],
            "stickyHeader": policy.sticky_header, "shadow": policy.shadow, "shadowPercent": policy.shadow_percent,
            "shadowLog": policy.shadow_log, "cacheTtlS": policy.cache_ttl_s,
            "cacheMaxEntries": policy.cache_max_entries, "maxInFlight": policy.max_in_flight,
            "maxBodyBytes": policy.max_body_bytes, "logSampleRate": policy.log_sample_rate, "logSink": policy.log_sink}


def _optional(value: Any, kind: type) -> Any:
    return None if value is None else kind(value)


def _policy_from_wire(w: Mapping[str, Any]) -> TrafficPolicy:
    return TrafficPolicy(
        routes=tuple(HeaderRoute(tuple((str(k), str(v)) for k, v in r["headers"]), str(r["predictor"]))
                     for r in w["routes"]),
        sticky_header=_optional(w["stickyHeader"], str), shadow=_optional(w["shadow"], str),
        shadow_percent=int(w["shadowPercent"]), shadow_log=bool(w["shadowLog"]),
        cache_ttl_s=_optional(w["cacheTtlS"], float), cache_max_entries=int(w["cacheMaxEntries"]),
        max_in_flight=_optional(w["maxInFlight"], int), max_body_bytes=int(w["maxBodyBytes"]),
        log_sample_rate=_optional(w["logSampleRate"], float), log_sink=str(w["logSink"]))


def table_to_wire(table: RoutingTable) -> dict[str, Any]:
    """A JSON-ready dict; deployments sorted so equal tables encode to equal bytes (and ETags).

    Fields at their defaults are left out, so tables that do not use them encode as before (same ETags).
    """
    return {"authEpoch": table.auth_epoch, "deployments": [
        {"project": d.project, "deployment": d.deployment, "revision": d.revision, "timeoutS": d.timeout_s,
         "predictors": [{"name": p.name, "weight": p.weight, "replicas": [
             {"replicaId": r.replica_id, "url": r.url, "revision": r.revision, "modelVersion": r.model_version,
              **({"grpc": r.grpc_url} if r.grpc_url else {})}
             for r in p.replicas], **({"scalesToZero": True} if p.scales_to_zero else {})} for p in d.predictors],
         **({"authMode": d.auth_mode} if d.auth_mode != "public" else {}),
         **({"policy": _policy_to_wire(d.policy)} if d.policy != _DEFAULT_POLICY else {})}
        for _, d in sorted(table.deployments.items())]}


def table_from_wire(body: Mapping[str, Any]) -> RoutingTable:
    """The inverse of ``table_to_wire``; ``KeyError``/``TypeError``/``ValueError`` on a malformed body."""
    return RoutingTable.of([
        DeploymentRoute(str(d["project"]), str(d["deployment"]), int(d["revision"]), tuple(
            PredictorRoute(str(p["name"]), int(p["weight"]), tuple(
                ReplicaEndpoint(str(r["replicaId"]), str(r["url"]), int(r["revision"]),
                                None if r.get("modelVersion") is None else str(r["modelVersion"]),
                                None if r.get("grpc") is None else str(r["grpc"]))
                for r in p["replicas"]), scales_to_zero=bool(p.get("scalesToZero", False)))
            for p in d["predictors"]), timeout_s=float(d["timeoutS"]),
            auth_mode=str(d.get("authMode", "public")),
            policy=_policy_from_wire(d["policy"]) if "policy" in d else _DEFAULT_POLICY)
        for d in body["deployments"]], auth_epoch=int(body.get("authEpoch", 0)))


def encode_table(table: RoutingTable) -> tuple[bytes, str]:
    """The table's JSON bytes and its ETag: a hash of the content, so it stays valid across control-plane
    restarts (a counter would restart at 1 and could name a different table)."""
    body = json.dumps(table_to_wire(table), separators=(",", ":"), sort_keys=True).encode()
    return body, '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
