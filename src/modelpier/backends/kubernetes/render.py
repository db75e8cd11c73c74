"""``render(deployment, options)``: a ``ModelDeployment`` as the Kubernetes objects that serve it.

A pure function (no clock, no randomness, no I/O): the same input gives equal output, and
``to_yaml`` prints it byte-identically (sorted keys, objects in a fixed order: per predictor in
spec order Deployment, Service, HPA, PDB; then the route). The operator applies the result with
server-side apply; ``pier render`` prints it for GitOps (Argo CD, Flux).
"""

from __future__ import annotations

from typing import Any

import yaml

from modelpier.backends.kubernetes.names import instance_labels
from modelpier.backends.kubernetes.options import RenderOptions, parse_kubernetes_version
from modelpier.backends.kubernetes.routing import render_http_route, render_virtual_service
from modelpier.backends.kubernetes.workloads import render_predictor
from modelpier.spec.deployment import ModelDeployment

Manifest = dict[str, Any]
DEFAULT_NAMESPACE = "default"


def namespace_of(deployment: ModelDeployment, options: RenderOptions) -> str:
    """The namespace is the project: ``options.namespace``, else ``metadata.project``, else ``default``."""
    return options.namespace or deployment.metadata.project or DEFAULT_NAMESPACE


def _finish(obj: Manifest, namespace: str, labels: dict[str, str], options: RenderOptions) -> Manifest:
    metadata: Manifest = {**obj["metadata"], "namespace": namespace, "labels": dict(labels)}
    if options.owner is not None:
        metadata["ownerReferences"] = [{
            "apiVersion": options.owner.api_version, "kind": options.owner.kind, "name": options.owner.name,
            "uid": options.owner.uid, "controller": True, "blockOwnerDeletion": True}]
    return {**obj, "metadata": metadata}


def render(deployment: ModelDeployment, options: RenderOptions) -> list[Manifest]:
    """Every object of the deployment, namespaced, labelled and (with ``options.owner``) owned."""
    parse_kubernetes_version(options.kubernetes_version)  # fails early on a version we cannot target
    name, spec = deployment.metadata.name, deployment.spec
    namespace = namespace_of(deployment, options)
    project = deployment.metadata.project or namespace
    objects: list[Manifest] = []
    for predictor in spec.predictors:
        labels = instance_labels(project, name, "predictor", options.managed_by)
        labels["modelpier.io/predictor"] = predictor.name
        for obj in render_predictor(predictor, spec, name, labels, options):
            objects.append(_finish(obj, namespace, labels, options))
    route_labels = instance_labels(project, name, "routing", options.managed_by)
    route = (render_http_route(spec, project, name, options) if options.routing == "gateway-api"
             else render_virtual_service(spec, project, name, namespace, options))
    objects.append(_finish(route, namespace, route_labels, options))
    return objects


class _PlainDumper(yaml.SafeDumper):
    """Never writes anchors (``&id001``/``*id001``) for repeated values: manifests are read by people."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(objects: list[Manifest]) -> str:
    """A multi-document YAML stream, keys sorted: byte-identical for equal objects."""
    return "".join("---\n" + yaml.dump(obj, Dumper=_PlainDumper, sort_keys=True, default_flow_style=False)
                   for obj in objects)
