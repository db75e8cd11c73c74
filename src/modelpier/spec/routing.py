"""The routing table: which ready replicas serve each deployment, and with what traffic weights.

The reconciler builds it after every pass and publishes it; the gateway only reads it (through a
callable passed in at composition), so the data plane never imports the control plane. Values are
immutable: a new pass publishes a new table, readers never see one half-updated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


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
    """Holds the latest table; the reconciler ``set``s it, the gateway's source is ``get``.

    In one process (``pier up``) this is the whole transport: swapping one reference is atomic
    under the event loop, so no lock is needed.
    """

    def __init__(self, table: RoutingTable | None = None) -> None:
        self._table = table or RoutingTable()

    def get(self) -> RoutingTable:
        return self._table

    def set(self, table: RoutingTable) -> None:
        self._table = table
