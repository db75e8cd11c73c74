"""``KubernetesParts``: what a control plane over the Kubernetes backend runs beside the reconciler.

The composition root (``control/platform.py::build_platform``) asks ``backends/factory.py`` for a
backend's extra parts, and gets these for a ``KubernetesBackend``:

* ``leadership``: a ``LeaseLeadership`` over the Lease ``modelpier-control`` in this pod's namespace
  (outside a cluster: ``kubernetes.namespace``, else ``default``), so two control-plane replicas never
  act at once; it gates the reconciler, the canary driver, the alias follower, the blob collector and
  the CR synchroniser alike (one campaign per process);
* ``bind(control)``: the CR synchroniser (``crsync.py``) over the control plane's deployments
  (``control/deployments/custom_resources.py::DeploymentPort``), made once the API's service exists;
* ``wake()``: after each write through the API (``NotifyingStore``'s callback), the synchroniser mirrors
  it into the CR at once;
* ``run()``: the synchroniser during each term of leadership, until cancelled.

Pods are owned by their CR through the backend's own informer of CRs (``backend.py::_owner``), which
works whether or not this process leads.
"""

from __future__ import annotations

import logging

from modelpier._lib.leadership import while_leading
from modelpier.backends.kubernetes.backend import KubernetesBackend, _connect
from modelpier.backends.kubernetes.crplan import ControlPlane
from modelpier.backends.kubernetes.crsync import CustomResourceSync
from modelpier.backends.kubernetes.kubeapi import KubeApi
from modelpier.backends.kubernetes.lease import LeaderElector, LeaseLeadership, candidate_identity, own_namespace
from modelpier.settings import Settings

log = logging.getLogger("modelpier.kubernetes.platform")

LEASE_NAME = "modelpier-control"  # deploy/kubernetes/base/rbac-control-plane.yaml grants this name alone


class KubernetesParts:
    """The Lease, the CR synchroniser and their lifecycle, for ``build_platform``. ``api``: a client
    already made (tests); by default one from ``settings.kubernetes``' credentials."""

    def __init__(self, settings: Settings, backend: KubernetesBackend | None = None, *,
                 api: KubeApi | None = None) -> None:
        k8s = settings.kubernetes
        self._api = api or _connect(str(k8s.kubeconfig) if k8s.kubeconfig else None)
        self._namespaces = (k8s.namespace,) if k8s.namespace else ()
        self.lease_namespace = own_namespace(default=k8s.namespace or "default")
        self.elector = LeaderElector(self._api, namespace=self.lease_namespace, name=LEASE_NAME,
                                     identity=candidate_identity())
        self.leadership = LeaseLeadership(self.elector)
        self.sync: CustomResourceSync | None = None

    def bind(self, control: ControlPlane) -> None:
        """Synchronise ModelDeployment resources with ``control`` (the API's deployments)."""
        self.sync = CustomResourceSync(self._api, control, namespaces=self._namespaces)

    def wake(self) -> None:
        """A write went through the API: mirror it soon. Safe from any thread."""
        if self.sync is not None:
            self.sync.trigger()

    async def run(self) -> None:
        """The CR synchroniser during each term of leadership, until cancelled."""
        if self.sync is None:
            return
        await while_leading(self.leadership, self.sync.run)

    async def close(self) -> None:
        await self._api.close()
