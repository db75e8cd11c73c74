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


@dataclass(frozen=True, slots=True)
class PredictorRoute:
    name: str
    weight: int  # share of traffic in percent, from the desired revision (0 for a retiring predictor)
    replicas: tuple[ReplicaEndpoint, ...] = ()


@dataclass(frozen=True, slots=True)
class DeploymentRoute:
    project: str
    deployment: str
    revision: int  # the desired revision
    predictors: tuple[PredictorRoute, ...] = ()
    timeout_s: float = 30.0  # per-request timeout at the gateway (spec.timeouts.requestSeconds)
    auth_mode: str = "public"  # spec.auth.mode: "token" makes the gateway check callers before forwarding

    @property
    def ready_replicas(self) -> int:
        return sum(len(p.replicas) for p in self.predictors)


def route_key(project: str, deployment: str) -> str:
    return f"{project}/{deployment}"


@dataclass(frozen=True, slots=True)
class RoutingTable:
    """Deployments by ``project/deployment``; a deployment absent here is unknown (404)."""

    deployments: Mapping[str, DeploymentRoute] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(cls, routes: list[DeploymentRoute]) -> RoutingTable:
        return cls(MappingProxyType({route_key(r.project, r.deployment): r for r in routes}))

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
def table_to_wire(table: RoutingTable) -> dict[str, Any]:
    """A JSON-ready dict; deployments sorted so equal tables encode to equal bytes (and ETags)."""
    return {"deployments": [
        {"project": d.project, "deployment": d.deployment, "revision": d.revision, "timeoutS": d.timeout_s,
         "predictors": [{"name": p.name, "weight": p.weight, "replicas": [
             {"replicaId": r.replica_id, "url": r.url, "revision": r.revision, "modelVersion": r.model_version}
             for r in p.replicas]} for p in d.predictors],
         # Only when not the default, so tables of public deployments encode as before (same ETags).
         **({"authMode": d.auth_mode} if d.auth_mode != "public" else {})}
        for _, d in sorted(table.deployments.items())]}


def table_from_wire(body: Mapping[str, Any]) -> RoutingTable:
    """The inverse of ``table_to_wire``; ``KeyError``/``TypeError``/``ValueError`` on a malformed body."""
    return RoutingTable.of([
        DeploymentRoute(str(d["project"]), str(d["deployment"]), int(d["revision"]), tuple(
            PredictorRoute(str(p["name"]), int(p["weight"]), tuple(
                ReplicaEndpoint(str(r["replicaId"]), str(r["url"]), int(r["revision"]),
                                None if r.get("modelVersion") is None else str(r["modelVersion"]))
                for r in p["replicas"])) for p in d["predictors"]), timeout_s=float(d["timeoutS"]),
            auth_mode=str(d.get("authMode", "public")))
        for d in body["deployments"]])


def encode_table(table: RoutingTable) -> tuple[bytes, str]:
    """The table's JSON bytes and its ETag: a hash of the content, so it stays valid across control-plane
    restarts (a counter would restart at 1 and could name a different table)."""
    body = json.dumps(table_to_wire(table), separators=(",", ":"), sort_keys=True).encode()
    return body, '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
