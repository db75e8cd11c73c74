"""``apply_deployment``: create or update a ModelDeployment CR with the user's kubeconfig.

What ``pier deploy --backend kubernetes`` calls: the document becomes a CR in its project's
namespace (``metadata.project``, else ``default``) and is written with server-side apply; the
operator in the cluster does the rest. Needs the ``kubernetes`` extra and the installed CRD.
"""

from __future__ import annotations

from typing import Any

from modelpier.backends.kubernetes.cluster import KubernetesCluster, api_client
from modelpier.backends.kubernetes.crd import to_custom_resource
from modelpier.backends.kubernetes.render import DEFAULT_NAMESPACE
from modelpier.spec.deployment import ModelDeployment

FIELD_MANAGER = "pier-cli"


def apply_deployment(document: ModelDeployment, kubeconfig: str | None = None, *,
                     namespace: str | None = None) -> dict[str, Any]:
    """Apply ``document`` as a CR; the object as the API server stored it."""
    target = namespace or document.metadata.project or DEFAULT_NAMESPACE
    cluster = KubernetesCluster(api_client(kubeconfig), field_manager=FIELD_MANAGER)
    return cluster.apply_returning(to_custom_resource(document, target))
