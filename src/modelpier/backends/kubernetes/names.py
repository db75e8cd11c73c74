"""Names, labels and annotations of everything the operator creates.

Object names derive from the deployment and predictor names (DNS-1123 labels already), shortened
with a stable hash when the pair would not fit in 63 characters. Labels follow the Kubernetes
recommended ``app.kubernetes.io/*`` set; the selector labels are ``modelpier.io/*`` because a
Deployment's selector is immutable and must not change when a version label does.
"""

from __future__ import annotations

import hashlib
from typing import Final

GROUP: Final = "modelpier.io"
VERSION: Final = "v1alpha1"
KIND: Final = "ModelDeployment"
PLURAL: Final = "modeldeployments"
SINGULAR: Final = "modeldeployment"
SHORT_NAMES: Final = ("md",)
API_VERSION: Final = f"{GROUP}/{VERSION}"

MANAGED_BY: Final = "modelpier-operator"
LABEL_DEPLOYMENT: Final = "modelpier.io/deployment"
LABEL_PREDICTOR: Final = "modelpier.io/predictor"
LABEL_PROJECT: Final = "modelpier.io/project"
ANNOTATION_MODEL: Final = "modelpier.io/model"
ANNOTATION_BUNDLE: Final = "modelpier.io/bundle"

_MAX_NAME: Final = 63
_HASH_CHARS: Final = 8


def object_name(*parts: str) -> str:
    """``iris-main``; past 63 characters, a prefix plus a hash of the full name (stable, unique)."""
    full = "-".join(parts)
    if len(full) <= _MAX_NAME:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:_HASH_CHARS]
    return f"{full[:_MAX_NAME - _HASH_CHARS - 1].rstrip('-')}-{digest}"


def service_name(deployment: str, predictor: str) -> str:
    """A Service name must also start with a letter (DNS-1035); deployment names may start with a digit."""
    name = object_name(deployment, predictor)
    return name if name[0].isalpha() else object_name("md", deployment, predictor)


def selector_labels(deployment: str, predictor: str) -> dict[str, str]:
    return {LABEL_DEPLOYMENT: deployment, LABEL_PREDICTOR: predictor}


def instance_labels(project: str, deployment: str, component: str, managed_by: str) -> dict[str, str]:
    """The labels on every object of one ModelDeployment (``component``: predictor or routing)."""
    return {
        "app.kubernetes.io/name": "modelpier",
        "app.kubernetes.io/instance": deployment,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "modelpier",
        "app.kubernetes.io/managed-by": managed_by,
        LABEL_DEPLOYMENT: deployment,
        LABEL_PROJECT: project,
    }
