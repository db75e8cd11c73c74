"""``RenderOptions``: everything rendering needs besides the spec, as one frozen value.

The operator builds it from ``pier operator``'s options, ``pier render`` from its flags; tests
construct it directly. Defaults match the platform install in ``deploy/kubernetes`` (namespace
``modelpier-system``, Services ``modelpier-control`` and the ``modelpier`` Gateway).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from modelpier import __version__
from modelpier.backends.kubernetes.names import MANAGED_BY
from modelpier.errors import InvalidSpec

RoutingKind = Literal["gateway-api", "istio"]
ROUTING_KINDS: Final[tuple[RoutingKind, ...]] = ("gateway-api", "istio")

DEFAULT_IMAGE: Final = f"ghcr.io/modelpier/modelpier:{__version__}"
DEFAULT_REGISTRY_URL: Final = "http://modelpier-control.modelpier-system.svc:8600"
DEFAULT_KUBERNETES_VERSION: Final = "1.30"
MIN_KUBERNETES_VERSION: Final = (1, 23)  # autoscaling/v2 is GA from 1.23
HTTP_PORT: Final = 8080
GRPC_PORT: Final = 8081
MODEL_HOME: Final = "/var/lib/modelpier"


@dataclass(frozen=True, slots=True)
class OwnerRef:
    """The custom resource that owns every rendered object (deleting it deletes them)."""

    name: str
    uid: str
    api_version: str = "modelpier.io/v1alpha1"
    kind: str = "ModelDeployment"


@dataclass(frozen=True, slots=True)
class RenderOptions:
    image: str = DEFAULT_IMAGE  # the modelpier image: init container (pull) and model server
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    registry_url: str = DEFAULT_REGISTRY_URL  # where the init container pulls models from
    # Secret (in the deployment's namespace) whose `token` key the init container sends as PIER_TOKEN;
    # optional, so a registry without authentication needs none.
    registry_token_secret: str = "modelpier-registry-token"  # noqa: S105  # the name of a Secret, not a secret
    namespace: str | None = None  # None: metadata.project, else "default"
    routing: RoutingKind = "gateway-api"
    gateway_name: str = "modelpier"  # Gateway API: the parent Gateway of every HTTPRoute
    gateway_namespace: str | None = "modelpier-system"  # None: the route's own namespace
    istio_gateway: str = "modelpier-system/modelpier"  # Istio: the Gateway every VirtualService binds
    hostnames: tuple[str, ...] = ()  # route hostnames; () matches any host of the Gateway
    public_url: str | None = None  # base URL of the Gateway for status.url, e.g. https://models.example.com
    owner: OwnerRef | None = None  # set by the operator; `pier render` leaves it out for GitOps
    managed_by: str = MANAGED_BY
    log_level: str = "info"
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION  # the oldest cluster version the output must suit
    hpa_metric: str = "modelpier_requests_in_flight"  # per-pod metric the HPA reads (prometheus-adapter)


def parse_kubernetes_version(text: str) -> tuple[int, int]:
    """``"1.30"``, ``"v1.30.2"`` → ``(1, 30)``; ``InvalidSpec`` below 1.23 or when unreadable."""
    parts = text.strip().removeprefix("v").split(".")
    try:
        version = (int(parts[0]), int(parts[1]))
    except (IndexError, ValueError):
        raise InvalidSpec(f"Kubernetes version {text!r} is not like 1.30") from None
    if version < MIN_KUBERNETES_VERSION:
        raise InvalidSpec(f"Kubernetes {text} is too old: modelpier needs 1.23 or newer (autoscaling/v2)")
    return version
