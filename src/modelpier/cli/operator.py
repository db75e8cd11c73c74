"""``pier operator``: run the Kubernetes operator for ModelDeployment custom resources.

Options map to ``RenderOptions`` (what every rendered object looks like) and to where the
operator watches; each can also be set by a ``PIER_OPERATOR_*`` variable, which is how the
platform install (``deploy/kubernetes``) configures it from a ConfigMap. Needs the
``modelpier[kubernetes]`` extra.
"""

from __future__ import annotations

import logging

import typer

from modelpier.backends.kubernetes.options import DEFAULT_IMAGE, DEFAULT_KUBERNETES_VERSION, DEFAULT_REGISTRY_URL
from modelpier.cli.context import get_context
from modelpier.cli.render import routing_kind


def _env(name: str) -> str:
    return f"PIER_OPERATOR_{name}"


def operator(
    ctx: typer.Context,
    namespace: list[str] = typer.Option([], "--namespace", "-n", envvar=_env("NAMESPACES"),
                                        help="Namespace to watch (repeatable; default: every namespace)."),
    image: str = typer.Option(DEFAULT_IMAGE, envvar=_env("IMAGE"), help="The modelpier image replicas run."),
    registry_url: str = typer.Option(DEFAULT_REGISTRY_URL, "--registry-url", envvar=_env("REGISTRY_URL"),
                                     help="Control plane the pods pull models from."),
    routing: str = typer.Option("gateway-api", envvar=_env("ROUTING"),
                                help="Routing object: gateway-api (HTTPRoute) or istio (VirtualService)."),
    gateway: str = typer.Option("modelpier-system/modelpier", envvar=_env("GATEWAY"),
                                help="NAMESPACE/NAME of the Gateway (or Istio Gateway) routes attach to."),
    hostname: list[str] = typer.Option([], "--hostname", envvar=_env("HOSTNAMES"),
                                       help="Host name routes answer (repeatable; default: any)."),
    public_url: str = typer.Option(None, "--public-url", envvar=_env("PUBLIC_URL"),
                                   help="Base URL of the Gateway, for status.url (e.g. https://models.example.com)."),
    kubernetes_version: str = typer.Option(DEFAULT_KUBERNETES_VERSION, "--kubernetes-version",
                                           envvar=_env("KUBERNETES_VERSION"),
                                           help="Version of the cluster (1.23 or newer)."),
    status_interval_s: float = typer.Option(15.0, "--status-interval-s", min=1, envvar=_env("STATUS_INTERVAL_S"),
                                            help="Seconds between re-reconciles (status refresh, drift repair)."),
    kubeconfig: str = typer.Option(None, "--kubeconfig", envvar="KUBECONFIG",
                                   help="Kubeconfig file (default: in-cluster service account, else ~/.kube/config)."),
    health_port: int = typer.Option(8080, "--health-port", envvar=_env("HEALTH_PORT"),
                                    help="Port of the liveness endpoint /healthz (0: none)."),
) -> None:
    """Run the operator: reconcile ModelDeployment resources into Deployments, Services, HPAs and routes."""
    from modelpier.backends.kubernetes.operator import OperatorConfig, run_operator
    from modelpier.backends.kubernetes.options import RenderOptions

    settings = get_context(ctx).settings
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    gateway_namespace, _, gateway_name = gateway.rpartition("/")
    options = RenderOptions(
        image=image, registry_url=registry_url, routing=routing_kind(routing), gateway_name=gateway_name,
        gateway_namespace=gateway_namespace or None, istio_gateway=gateway, hostnames=tuple(hostname),
        public_url=public_url, kubernetes_version=kubernetes_version, log_level=settings.log_level)
    run_operator(OperatorConfig(
        render=options, namespaces=tuple(namespace), status_interval_s=status_interval_s, kubeconfig=kubeconfig,
        liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz" if health_port else None))
