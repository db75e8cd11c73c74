"""Try-it: send a V2 request to a deployment through the gateway and show the answer and latency.

The form is pre-filled from the input example of the model version the chosen predictor runs
(``dashboard.tryit``). With htmx the answer replaces the result panel only; without JavaScript the
form posts normally and the whole page comes back with the result.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelpier.control.api import calls as deployment_calls
from modelpier.control.api.wire import DeploymentBody
from modelpier.dashboard.invoke import Invocation, invoke
from modelpier.dashboard.links import docs_url, endpoint_url
from modelpier.dashboard.pages.models import SHARED_CATALOG
from modelpier.dashboard.session import Session
from modelpier.dashboard.status import model_name_of
from modelpier.dashboard.tryit import example_request, format_request, infer_path, parse_request
from modelpier.dashboard.web import Dashboard, is_htmx, text_field
from modelpier.errors import InvalidInput, NotFound, PierError, ServiceUnavailable, http_status
from modelpier.registry.wire import VersionBody
from modelpier.sdk.control_api import AsyncControlClient
from modelpier.sdk.control_api import models as model_calls
from modelpier.spec.deployment import PredictorSpec


async def _version(api: AsyncControlClient, project: str, reference: str) -> VersionBody | None:
    """The version a predictor runs: from the deployment's project, else the shared catalog."""
    name, _, selector = reference.partition(":")
    for where in dict.fromkeys((project, SHARED_CATALOG)):
        try:
            return await api.send(model_calls.get_version(where, name, selector or "latest"))
        except NotFound:
            continue
    return None


def _predictor(d: DeploymentBody, wanted: str) -> PredictorSpec:
    for p in d.spec.predictors:
        if p.name == wanted:
            return p
    if wanted:
        raise NotFound(f"deployment {d.metadata.project}/{d.metadata.name} has no predictor {wanted!r}")
    return d.spec.predictors[0]


def tryit_routes(dash: Dashboard) -> list[BaseRoute]:
    def call_base(d: DeploymentBody) -> str:
        # From this process the internal gateway URL is the reliable one; the reported URL may be public.
        if dash.gateway_url:
            return f"{dash.gateway_url}/{d.metadata.project}/{d.metadata.name}"
        if d.status.url:
            return d.status.url.rstrip("/")
        raise ServiceUnavailable("this control plane knows no gateway to send the request through; "
                                 "run the platform with `pier up`, or wait until the deployment reports its URL")

    async def form_context(api: AsyncControlClient, project: str, name: str, wanted: str) -> dict[str, Any]:
        d = await api.send(deployment_calls.get_deployment(project, name))
        predictor = _predictor(d, wanted)
        reference = d.resolved.get(predictor.name) or predictor.model
        version = await _version(api, project, reference) if reference else None
        body = example_request(version.signature if version else None, version.input_example if version else None)
        endpoint = endpoint_url(d.status.url, dash.gateway_url, project, name)
        return {"d": d, "predictor": predictor, "reference": reference, "version": version,
                "model_name": model_name_of(reference) if reference else predictor.name,
                "body": format_request(body), "endpoint": endpoint, "docs": docs_url(endpoint),
                "has_example": version is not None and version.input_example is not None}

    async def page(request: Request, session: Session) -> Response:
        project, name = request.path_params["project"], request.path_params["name"]
        async with dash.api(session) as api:
            context = await form_context(api, project, name, request.query_params.get("predictor", ""))
        return dash.render(request, "tryit.html", session=session, title=f"Try {project}/{name}",
                           nav="deployments", result=None, problem="", **context)

    async def send(request: Request, session: Session, form: FormData) -> Response:
        project, name = request.path_params["project"], request.path_params["name"]
        model, text = text_field(form, "model"), text_field(form, "body")
        result: Invocation | None = None
        problem, status = "", 200
        async with dash.api(session) as api:
            d = await api.send(deployment_calls.get_deployment(project, name))
            try:
                if not model:
                    raise InvalidInput("name the model to call (the V2 model name, e.g. iris)")
                parse_request(text)
                token = session.token if d.spec.auth.mode == "token" else None
                result = await invoke(call_base(d) + infer_path(model), text.encode(), token=token,
                                      timeout_s=dash.try_timeout_s)
            except PierError as exc:
                problem, status = exc.message, http_status(exc)
            if is_htmx(request):
                return dash.render(request, "_tryit_result.html", session=session, result=result, problem=problem)
            context = await form_context(api, project, name, text_field(form, "predictor"))
        context.update(body=text, model_name=model)
        return dash.render(request, "tryit.html", session=session, status=status, title=f"Try {project}/{name}",
                           nav="deployments", result=result, problem=problem, **context)

    one = "/projects/{project}/deployments/{name}/try"
    return [Route(one, dash.page(page), methods=["GET"]), Route(one, dash.action(send), methods=["POST"])]
