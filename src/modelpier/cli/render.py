"""``pier render -f spec.yaml``: print the Kubernetes objects a ModelDeployment becomes.

For GitOps (Argo CD, Flux) and review: the same pure ``render`` the operator applies, without
owner references (there is no custom resource to own them). ``--custom-resource`` prints the
``ModelDeployment`` CR instead, for clusters that run the operator. Needs no cluster and no
Kubernetes client library.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from modelpier.backends.kubernetes.crd import to_custom_resource
from modelpier.backends.kubernetes.options import (
    DEFAULT_IMAGE,
    DEFAULT_KUBERNETES_VERSION,
    DEFAULT_REGISTRY_URL,
    ROUTING_KINDS,
    RenderOptions,
    RoutingKind,
)
from modelpier.backends.kubernetes.render import namespace_of, render, to_yaml
from modelpier.cli.deploy_support import read_document
from modelpier.errors import InvalidInput


def routing_kind(value: str) -> RoutingKind:
    for kind in ROUTING_KINDS:
        if value == kind:
            return kind
    raise InvalidInput(f"--routing {value!r}: choose one of {', '.join(ROUTING_KINDS)}")


def render_cmd(
    file: Path = typer.Option(..., "--file", "-f", help="ModelDeployment file (YAML or JSON; '-' for stdin)."),
    kubernetes_version: str = typer.Option(DEFAULT_KUBERNETES_VERSION, "--kubernetes-version",
                                           help="Oldest Kubernetes version the objects must suit (1.23 or newer)."),
    routing: str = typer.Option("gateway-api", "--routing",
                                help="Routing object: gateway-api (HTTPRoute) or istio (VirtualService)."),
    namespace: str = typer.Option(None, "--namespace", "-n",
                                  help="Namespace of every object (default: metadata.project, else 'default')."),
    image: str = typer.Option(DEFAULT_IMAGE, "--image", help="The modelpier image (model server, model pull)."),
    registry_url: str = typer.Option(DEFAULT_REGISTRY_URL, "--registry-url",
                                     help="Control plane the pods pull models from."),
    registry_token_secret: str = typer.Option(
        "modelpier-registry-token", "--registry-token-secret",
        help="Secret (in the deployment's namespace) whose `token` key model pods pull with; optional."),
    gateway: str = typer.Option("modelpier-system/modelpier", "--gateway",
                                help="NAMESPACE/NAME of the Gateway (Gateway API) or Istio Gateway to attach to."),
    hostname: list[str] = typer.Option([], "--hostname", help="Host name the route answers (repeatable; "
                                                               "default: every host of the Gateway)."),
    custom_resource: bool = typer.Option(False, "--custom-resource",
                                         help="Print the ModelDeployment custom resource instead, for the operator."),
) -> None:
    """Print the Kubernetes manifests of a ModelDeployment (for kubectl apply, Argo CD or Flux)."""
    document = read_document(file)
    gateway_namespace, _, gateway_name = gateway.rpartition("/")
    options = RenderOptions(
        image=image, registry_url=registry_url, registry_token_secret=registry_token_secret, namespace=namespace,
        routing=routing_kind(routing),
        gateway_name=gateway_name, gateway_namespace=gateway_namespace or None, istio_gateway=gateway,
        hostnames=tuple(hostname), kubernetes_version=kubernetes_version, managed_by="pier-render")
    if custom_resource:
        objects = [to_custom_resource(document, namespace_of(document, options))]
    else:
        objects = render(document, options)
    sys.stdout.write(to_yaml(objects))
