"""``apply_deployment``: create or update a ModelDeployment CR with the user's kubeconfig.

What ``pier deploy --backend kubernetes`` calls: the document becomes a CR in its project's
namespace (``metadata.namespace``/``metadata.project``, else ``default``) and is written
with server-side apply; the control plane in the cluster applies it like ``pier deploy``
(crsync.py). Needs the ``kubernetes`` extra and the installed CRD.
Failures of the client become errors of the one tree, each saying what to do about it.
"""

from __future__ import annotations

from typing import Any

import urllib3
from kubernetes import config
from kubernetes.client.exceptions import ApiException

from modelpier.backends.kubernetes.cluster import KubernetesCluster, api_client
from modelpier.backends.kubernetes.crd import DEFAULT_NAMESPACE, to_custom_resource
from modelpier.errors import (
    Forbidden,
    InvalidInput,
    InvalidSpec,
    PierError,
    RemoteError,
    RemoteUnreachable,
    ServiceUnavailable,
    Unauthenticated,
)
from modelpier.spec.deployment import ModelDeployment

FIELD_MANAGER = "pier-cli"


def apply_deployment(document: ModelDeployment, kubeconfig: str | None = None, *,
                     namespace: str | None = None) -> dict[str, Any]:
    """Apply ``document`` as a CR; the object as the API server stored it."""
    target = namespace or document.metadata.project or DEFAULT_NAMESPACE
    try:
        cluster = KubernetesCluster(api_client(kubeconfig), field_manager=FIELD_MANAGER)
        return cluster.apply_returning(to_custom_resource(document, target))
    except config.ConfigException as exc:
        raise InvalidInput(f"no usable kubeconfig ({exc}); pass --kubeconfig FILE or set KUBECONFIG") from None
    except urllib3.exceptions.HTTPError as exc:
        raise RemoteUnreachable(f"cannot reach the Kubernetes API server: {exc}") from None
    except ApiException as exc:
        raise api_error(exc.status or 0, str(exc.reason or ""), target) from None


def api_error(status: int, reason: str, namespace: str) -> PierError:
    """The error for an API server's answer (pure, so each mapping is unit-tested)."""
    if status == 401:
        return Unauthenticated(f"the Kubernetes API server rejected the credentials: {reason}")
    if status == 403:
        return Forbidden(f"not allowed to write modeldeployments in namespace {namespace}: {reason}")
    if status == 404:
        return ServiceUnavailable(f"the cluster does not serve modeldeployments.modelpier.io ({reason}); "
                                  "install the CRD: kubectl apply -k deploy/kubernetes/base")
    if status == 422:
        return InvalidSpec(f"the Kubernetes API server rejected the ModelDeployment: {reason}")
    return RemoteError(f"the Kubernetes API server answered {status}: {reason}", status=status or 502)
