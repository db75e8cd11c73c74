"""``KubernetesCluster``: the ``ClusterApi`` over the official client's dynamic API (I/O only).

Objects are written with server-side apply under one field manager and ``force`` (the operator
owns these objects; a hand edit of a field it manages is reverted, as with any controller).
A kind the cluster does not serve (no Gateway API or Istio CRDs) is a ``ServiceUnavailable``
that says what to install. Connects with a kubeconfig file when given, else the in-cluster service account, else the
default kubeconfig (``~/.kube/config`` or ``KUBECONFIG``).
"""

from __future__ import annotations

from typing import Any

from kubernetes import client, config, dynamic
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

from modelpier.backends.kubernetes.names import LABEL_DEPLOYMENT, MANAGED_BY
from modelpier.backends.kubernetes.reconcile import MANAGED_KINDS, ObjectKey
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
            hint = {"HTTPRoute": "install the Gateway API CRDs, or run the operator with --routing istio",
                    "VirtualService": "install Istio, or run the operator with --routing gateway-api"}
            raise ServiceUnavailable(f"the cluster does not serve {api_version} {kind}: "
                                     f"{hint.get(kind, 'install its CRD')}") from None

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

    def get(self, key: ObjectKey) -> Manifest | None:
        try:
            found = self._resource(key.api_version, key.kind).get(name=key.name, namespace=key.namespace)
        except (NotFoundError, ResourceNotFoundError):
            return None
        return dict(found.to_dict())

    def list_owned(self, namespace: str, deployment: str) -> list[ObjectKey]:
        selector = f"{LABEL_DEPLOYMENT}={deployment},app.kubernetes.io/managed-by={self.managed_by}"
        keys = []
        for api_version, kind in MANAGED_KINDS:
            try:
                listed = self._resource(api_version, kind).get(namespace=namespace, label_selector=selector)
            except (NotFoundError, ResourceNotFoundError):
                continue  # the cluster does not serve this API (no Istio, no Gateway API)
            keys += [ObjectKey(api_version, kind, namespace, item.metadata.name) for item in listed.items]
        return keys

    def delete(self, key: ObjectKey) -> None:
        try:
            self._resource(key.api_version, key.kind).delete(name=key.name, namespace=key.namespace)
        except (NotFoundError, ResourceNotFoundError):
            return
