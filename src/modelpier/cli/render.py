"""``pier render -f spec.yaml``: print the ModelDeployment custom resource a file stands for.

For GitOps (Argo CD, Flux) and review: the CR is what a repository holds and the cluster's control
plane reconciles, with every field of the spec (it goes through the same apply as ``pier
deploy``). The namespace is the project (``--namespace``, else ``metadata.namespace`` or
``metadata.project``, else ``default``). Kubernetes manifests (Deployments, Services, routes) are
no longer printed: they were a second implementation that dropped half the spec; the control plane
makes its pods itself. Needs no cluster and no Kubernetes client library.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from modelpier.backends.kubernetes.crd import DEFAULT_NAMESPACE, to_custom_resource, to_yaml
from modelpier.cli.deploy_support import read_document
from modelpier.errors import InvalidInput


def render_cmd(
    file: Path = typer.Option(..., "--file", "-f", help="ModelDeployment file (YAML or JSON; '-' for stdin)."),
    namespace: str = typer.Option(None, "--namespace", "-n",
                                  help="Namespace (= project) of the resource (default: metadata.namespace or "
                                       "metadata.project, else 'default')."),
    custom_resource: bool = typer.Option(True, "--custom-resource", hidden=True,
                                         help="Accepted for old scripts: the custom resource is all it prints."),
) -> None:
    """Print the ModelDeployment custom resource of a file (for kubectl apply, Argo CD or Flux)."""
    del custom_resource
    document = read_document(file)
    named = document.metadata.project
    if namespace is not None and named is not None and namespace != named:
        raise InvalidInput(f"--namespace {namespace!r} does not match metadata.namespace/project {named!r} in the file")
    sys.stdout.write(to_yaml([to_custom_resource(document, namespace or named or DEFAULT_NAMESPACE)]))
