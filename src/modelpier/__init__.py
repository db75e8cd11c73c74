"""modelpier: take a trained model to a production endpoint.

The public Python API is what ``__all__`` lists; everything else is internal and may change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "Client",
    "Flavor",
    "ModelVersion",
    "Signature",
    "TensorSpec",
    "__version__",
    "import_mlflow",
    "load_model",
    "save_model",
]

if TYPE_CHECKING:
    from modelpier.registry.domain import Flavor, ModelVersion
    from modelpier.sdk.api import import_mlflow, load_model, save_model
    from modelpier.sdk.client import AsyncClient, Client
    from modelpier.spec.signature import Signature, TensorSpec

_LAZY = {
    "AsyncClient": "modelpier.sdk.client",
    "Client": "modelpier.sdk.client",
    "Flavor": "modelpier.registry.domain",
    "ModelVersion": "modelpier.registry.domain",
    "Signature": "modelpier.spec.signature",
    "TensorSpec": "modelpier.spec.signature",
    "import_mlflow": "modelpier.sdk.api",
    "load_model": "modelpier.sdk.api",
    "save_model": "modelpier.sdk.api",
}


def __getattr__(name: str) -> Any:
    # Lazy so that `import modelpier` (and every `pier` command) stays fast: the SDK pulls in
    # SQLAlchemy and the runtimes only when used.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modelpier' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
