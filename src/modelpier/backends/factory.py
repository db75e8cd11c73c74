"""``build_backend(settings)``: the backend ``platform.backend`` names, for ``pier server``.

``local`` supervises child processes on loopback (``backends/local/``); ``kubernetes`` runs replicas
as pods (``backends/kubernetes/backend.py``, imported only when chosen, so the core runs without the
Kubernetes client); ``none`` is no backend: the control plane keeps desired state and runs nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

from modelpier.backends.base import Backend
from modelpier.errors import InvalidSpec
from modelpier.settings import Settings

BACKENDS = ("local", "kubernetes", "none")
KUBERNETES_MODULE = "modelpier.backends.kubernetes.backend"


def build_backend(settings: Settings) -> Backend | None:
    """The backend of ``settings.platform.backend``; None for ``none``. ``InvalidSpec`` when the
    Kubernetes backend cannot be loaded (the ``kubernetes`` extra, or a build without it)."""
    name = settings.platform.backend
    if name == "local":
        from modelpier.backends.local.supervisor import LocalBackend

        return LocalBackend(settings)
    if name == "kubernetes":
        # By name: the class may be absent from a build (and from a type check) without breaking the others.
        try:
            module = importlib.import_module(KUBERNETES_MODULE)
        except ImportError as exc:
            fix = ("this build of modelpier has no Kubernetes backend" if exc.name == KUBERNETES_MODULE
                   else "install modelpier[kubernetes]")
            raise InvalidSpec(f"platform.backend is kubernetes, but the Kubernetes backend cannot be loaded ({exc}): "
                              f"{fix}, or pick another (--backend local)",
                              details={"setting": "platform.backend"}) from exc
        backend: Backend = module.KubernetesBackend(settings)
        return backend
    if name == "none":
        return None
    raise InvalidSpec(f"platform.backend must be one of {', '.join(BACKENDS)}, not {name!r}",
                      details={"setting": "platform.backend"})


KUBERNETES_PARTS_MODULE = "modelpier.backends.kubernetes.platform"


def build_backend_parts(settings: Settings, backend: Backend | None) -> Any:
    """What ``backend`` adds to the control plane beside the reconciler (``control/platform.py::BackendParts``):
    for the Kubernetes backend, its Lease (the leadership gate) and the ModelDeployment synchroniser
    (``backends/kubernetes/platform.py``); None for the others, which need nothing more."""
    if backend is None or type(backend).__module__ != KUBERNETES_MODULE:
        return None
    module = importlib.import_module(KUBERNETES_PARTS_MODULE)
    return module.KubernetesParts(settings, backend)
