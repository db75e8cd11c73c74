"""``KubernetesCluster``: server-side apply over the official client's dynamic API (I/O only).

What ``pier deploy --backend kubernetes`` writes its ModelDeployment CR with: server-side apply under
one field manager and ``force`` (the CLI's copy of the document wins over an older one).
A kind the cluster does not serve (no CRD installed) is a ``ServiceUnavailable``. Connects
with a kubeconfig file when given, else the in-cluster service account, else the default
kubeconfig (``~/.kube/config`` or ``KUBECONFIG``).
"""

from __future__ import annotations

from typing import Any

from kubernetes import client, config, dynamic
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from modelpier.backends.kubernetes.names import MANAGED_BY
from modelpier.errors import ServiceUnavailable

Manifest = dict[str, Any]
FIELD_MANAGER = MANAGED_BY


def api_client(kubeconfig: str | None = None) -> Any:
    """An authenticated ``kubernetes.client.ApiClient``."""
    if kubeconfig is not None:
        return config.new_client_from_config(config_file=kubeconfig)
    try:
        config.load_incluster_config()
    except config.ConfigException:
        return config.new_client_from_config()
    return client.ApiClient()


class KubernetesCluster:
    def __init__(self, api: Any, *, field_manager: str = FIELD_MANAGER, managed_by: str = MANAGED_BY) -> None:
        self.dynamic = dynamic.DynamicClient(api)
        self.field_manager, self.managed_by = field_manager, managed_by

    def _resource(self, api_version: str, kind: str) -> Any:
        return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def _served(self, api_version: str, kind: str) -> Any:
        try:
            return self._resource(api_version, kind)
        except ResourceNotFoundError:
            raise ServiceUnavailable(f"the cluster does not serve {api_version} {kind}: install its CRD") from None

    def apply(self, obj: Manifest) -> None:
        meta = obj["metadata"]
        self._served(obj["apiVersion"], obj["kind"]).server_side_apply(
            body=obj, name=meta["name"], namespace=meta.get("namespace"), field_manager=self.field_manager,
            force_conflicts=True)

    def apply_returning(self, obj: Manifest) -> Manifest:
        meta = obj["metadata"]
        result = self.dynamic.server_side_apply(
            self._served(obj["apiVersion"], obj["kind"]), body=obj, name=meta["name"],
            namespace=meta.get("namespace"), field_manager=self.field_manager, force_conflicts=True)
        return dict(result.to_dict())
