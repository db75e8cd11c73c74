"""The deployment's routing object: Gateway API ``HTTPRoute`` (default) or Istio ``VirtualService``.

Both express the gateway's rules from the spec, in the same order: header routes first (each to
one predictor), then the weighted split of the serving predictors (canary, A/B); the shadow
predictor receives a mirrored copy of requests on every rule (``shadow.percent`` of them). The
public path is the built-in gateway's, ``/{project}/{deployment}/…``, rewritten to ``/…`` for the
model server, so clients use the same URLs whichever front door serves them.
"""

from __future__ import annotations

from typing import Any

from modelpier.backends.kubernetes.names import object_name, service_name
from modelpier.backends.kubernetes.options import HTTP_PORT, RenderOptions
from modelpier.backends.kubernetes.quantities import gateway_duration, istio_duration
from modelpier.spec.deployment import ModelDeploymentSpec, PredictorSpec

Manifest = dict[str, Any]


def public_path(project: str, deployment: str) -> str:
    return f"/{project}/{deployment}"


def serving_predictors(spec: ModelDeploymentSpec) -> list[PredictorSpec]:
    """The predictors in the weighted split: all but the shadow."""
    shadow = spec.shadow.predictor if spec.shadow is not None else None
    return [p for p in spec.predictors if p.name != shadow]


# -- Gateway API -------------------------------------------------------------------------------


def _backend_ref(deployment: str, predictor: str, weight: int | None = None) -> Manifest:
    ref: Manifest = {"name": service_name(deployment, predictor), "port": HTTP_PORT}
    if weight is not None:
        ref["weight"] = weight
    return ref


def _http_filters(spec: ModelDeploymentSpec, deployment: str, target: str | None) -> list[Manifest]:
    filters: list[Manifest] = [{"type": "URLRewrite", "urlRewrite": {
        "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}]
    if spec.shadow is not None and spec.shadow.percent > 0 and spec.shadow.predictor != target:
        mirror: Manifest = {"backendRef": _backend_ref(deployment, spec.shadow.predictor)}
        if spec.shadow.percent < 100:
            mirror["percent"] = spec.shadow.percent  # Gateway API >= 1.3; absent means every request
        filters.append({"type": "RequestMirror", "requestMirror": mirror})
    return filters


def render_http_route(spec: ModelDeploymentSpec, project: str, deployment: str, options: RenderOptions) -> Manifest:
    def path() -> Manifest:  # a fresh mapping per rule: callers may edit one rule's objects
        return {"type": "PathPrefix", "value": public_path(project, deployment)}

    def timeouts() -> Manifest:
        return {"request": gateway_duration(spec.timeouts.request_seconds)}

    rules: list[Manifest] = []
    for route in spec.routes:
        headers = [{"type": "Exact", "name": k, "value": v} for k, v in sorted(route.match.headers.items())]
        rules.append({"matches": [{"path": path(), "headers": headers}],
                      "filters": _http_filters(spec, deployment, route.predictor),
                      "backendRefs": [_backend_ref(deployment, route.predictor)], "timeouts": timeouts()})
    rules.append({"matches": [{"path": path()}], "filters": _http_filters(spec, deployment, None),
                  "backendRefs": [_backend_ref(deployment, p.name, p.weight) for p in serving_predictors(spec)],
                  "timeouts": timeouts()})
    parent: Manifest = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": options.gateway_name}
    if options.gateway_namespace is not None:
        parent["namespace"] = options.gateway_namespace
    route_spec: Manifest = {"parentRefs": [parent], "rules": rules}
    if options.hostnames:
        route_spec["hostnames"] = list(options.hostnames)
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": object_name(deployment)}, "spec": route_spec}


# -- Istio -------------------------------------------------------------------------------------


def _destination(deployment: str, predictor: str, namespace: str) -> Manifest:
    host = f"{service_name(deployment, predictor)}.{namespace}.svc.cluster.local"
    return {"host": host, "port": {"number": HTTP_PORT}}


def _istio_rule(spec: ModelDeploymentSpec, match: Manifest, route: list[Manifest], *, deployment: str,
                namespace: str, target: str | None) -> Manifest:
    rule: Manifest = {"match": [match], "rewrite": {"uri": "/"}, "route": route,
                      "timeout": istio_duration(spec.timeouts.request_seconds)}
    if spec.shadow is not None and spec.shadow.percent > 0 and spec.shadow.predictor != target:
        rule["mirror"] = _destination(deployment, spec.shadow.predictor, namespace)
        rule["mirrorPercentage"] = {"value": float(spec.shadow.percent)}
    return rule


def render_virtual_service(spec: ModelDeploymentSpec, project: str, deployment: str, namespace: str,
                           options: RenderOptions) -> Manifest:
    # A trailing slash keeps /acme/iris from matching /acme/iris2; the rewrite then yields /v2/...
    prefix = f"{public_path(project, deployment)}/"
    http: list[Manifest] = []
    for route in spec.routes:
        headers = {k: {"exact": v} for k, v in sorted(route.match.headers.items())}
        match = {"uri": {"prefix": prefix}, "headers": headers}
        http.append(_istio_rule(spec, match, [{"destination": _destination(deployment, route.predictor, namespace)}],
                                deployment=deployment, namespace=namespace, target=route.predictor))
    weighted = [{"destination": _destination(deployment, p.name, namespace), "weight": p.weight}
                for p in serving_predictors(spec)]
    http.append(_istio_rule(spec, {"uri": {"prefix": prefix}}, weighted, deployment=deployment, namespace=namespace,
                            target=None))
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": object_name(deployment)},
            "spec": {"hosts": list(options.hostnames) or ["*"], "gateways": [options.istio_gateway], "http": http}}
