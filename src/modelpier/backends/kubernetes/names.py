"""The ModelDeployment resource's API names, and the names and labels of the objects the backend creates.

Object names derive from the deployment and replica names (DNS-1123 labels already), shortened
with a stable hash when they would not fit in 63 characters (``pods.py`` names its pods so).
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

_MAX_NAME: Final = 63
_HASH_CHARS: Final = 8


def object_name(*parts: str) -> str:
    """``iris-main``; past 63 characters, a prefix plus a hash of the full name (stable, unique)."""
    full = "-".join(parts)
    if len(full) <= _MAX_NAME:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:_HASH_CHARS]
    return f"{full[:_MAX_NAME - _HASH_CHARS - 1].rstrip('-')}-{digest}"
