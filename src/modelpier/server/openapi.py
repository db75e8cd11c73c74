"""The server's OpenAPI document and Swagger UI, served offline from vendored assets.

The pydantic models below exist for documentation only: the hot path decodes by hand
(``codecs/``). FastAPI's generator turns stub routes carrying these models into the OpenAPI
document; the stubs are never mounted. Swagger UI's bundle and CSS are vendored from the
``swagger-ui-dist`` npm package under ``static/swagger/`` (Apache-2.0, see its LICENSE), so
``/docs`` works without internet access.
"""

from __future__ import annotations

from enum import Enum
from importlib import resources
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from modelpier import __version__
from modelpier.server.codecs.v2_json import dumps

STATIC_PREFIX = "/docs/static"
_ASSETS = {
    "swagger-ui-bundle.js": b"application/javascript; charset=utf-8",
    "swagger-ui.css": b"text/css; charset=utf-8",
    "LICENSE": b"text/plain; charset=utf-8",
}
Datatype = Literal["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
                   "FP16", "FP32", "FP64", "BYTES"]


class RequestInput(BaseModel):
    name: str = Field(examples=["input-0"])
    shape: list[int] = Field(examples=[[1, 4]])
    datatype: Datatype = Field(examples=["FP64"])
    parameters: dict[str, Any] | None = Field(None, description="binary_data_size: bytes of this tensor in "
                                              "the binary part (binary tensor data extension)")
    data: list[Any] | None = Field(None, examples=[[5.1, 3.5, 1.4, 0.2]],
                                   description="Row-major values, flat or nested.")


class RequestOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = Field(None, description="binary_data: true to get it as raw bytes")


class InferenceRequest(BaseModel):
    id: str | None = Field(None, description="Echoed in the response.")
    parameters: dict[str, Any] | None = Field(
        None, description="Passed back in the response; binary_data_output: true for raw outputs.")
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = Field(None, description="Outputs to return (default: all).")


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: Datatype
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class V2Error(BaseModel):
    error: str


class Ready(BaseModel):
    ready: bool


class Live(BaseModel):
    live: bool


class V1Request(BaseModel):
    instances: list[Any] = Field(examples=[[[5.1, 3.5, 1.4, 0.2]]])


class V1Response(BaseModel):
    predictions: list[Any]


class V1Status(BaseModel):
    name: str
    ready: bool


class SeldonTensor(BaseModel):
    shape: list[int]
    values: list[Any]


class SeldonData(BaseModel):
    names: list[str] | None = None
    ndarray: list[Any] | None = None
    tensor: SeldonTensor | None = None


class SeldonMessage(BaseModel):
    data: SeldonData | None = None
    jsonData: dict[str, Any] | None = None  # noqa: N815  # Seldon's field name
    meta: dict[str, Any] | None = None


class SeldonStatus(BaseModel):
    code: int
    info: str
    reason: str
    status: Literal["FAILURE"]


class SeldonError(BaseModel):
    status: SeldonStatus


_V2_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": V2Error, "description": "Malformed request or input not matching the signature"},
    404: {"model": V2Error, "description": "Unknown model or version"},
    413: {"model": V2Error, "description": "Body larger than the server's limit"},
    500: {"model": V2Error, "description": "The model failed; the message carries an error id"},
    503: {"model": V2Error, "description": "Not ready, or the model's queue is full (see Retry-After)"},
    504: {"model": V2Error, "description": "The request timed out"},
}


def _stub_routes() -> APIRouter:
    router = APIRouter()
    v2: list[str | Enum] = ["Open Inference Protocol V2"]
    v1_tag: list[str | Enum] = ["KServe V1"]
    seldon_tag: list[str | Enum] = ["Seldon Core v1"]
    ops: list[str | Enum] = ["Operations"]

    def stub(*args: Any, **kwargs: Any) -> Any:  # never called: the router is only documented
        raise NotImplementedError

    def infer(name: str, body: InferenceRequest) -> InferenceResponse:
        raise NotImplementedError

    def infer_version(name: str, version: str, body: InferenceRequest) -> InferenceResponse:
        raise NotImplementedError

    def v1(name: str, body: V1Request) -> V1Response:
        raise NotImplementedError

    def seldon(body: SeldonMessage, model: str | None = None) -> SeldonMessage:
        raise NotImplementedError

    def by_name(name: str) -> Any:
        raise NotImplementedError

    def by_version(name: str, version: str) -> Any:
        raise NotImplementedError

    router.add_api_route("/v2/health/live", stub, methods=["GET"], response_model=Live, tags=v2,
                         summary="Server liveness")
    router.add_api_route("/v2/health/ready", stub, methods=["GET"], response_model=Ready, tags=v2,
                         summary="Server readiness: 200 once every model is loaded, else 503")
    router.add_api_route("/v2", stub, methods=["GET"], response_model=ServerMetadata, tags=v2,
                         summary="Server metadata")
    for path, fn in (("/v2/models/{name}", by_name), ("/v2/models/{name}/versions/{version}", by_version)):
        router.add_api_route(path, fn, methods=["GET"], response_model=ModelMetadata, tags=v2,
                             summary="Model metadata (signature)", responses=_V2_ERRORS)
        router.add_api_route(path + "/ready", fn, methods=["GET"], response_model=Ready, tags=v2,
                             summary="Model readiness", responses=_V2_ERRORS)
    router.add_api_route("/v2/models/{name}/infer", infer, methods=["POST"], response_model=InferenceResponse,
                         tags=v2, summary="Inference (JSON, or binary tensor data with "
                         "Inference-Header-Content-Length)", responses=_V2_ERRORS)
    router.add_api_route("/v2/models/{name}/versions/{version}/infer", infer_version, methods=["POST"],
                         response_model=InferenceResponse, tags=v2, summary="Inference on a version",
                         responses=_V2_ERRORS)
    router.add_api_route("/v1/models/{name}", by_name, methods=["GET"], response_model=V1Status,
                         tags=v1_tag, summary="Model status")
    router.add_api_route("/v1/models/{name}:predict", v1, methods=["POST"], response_model=V1Response,
                         tags=v1_tag, summary="Predict on instances (first output)")
    for path in ("/api/v1.0/predictions", "/api/v0.1/predictions"):
        router.add_api_route(path, seldon, methods=["POST"], response_model=SeldonMessage,
                             tags=seldon_tag, summary="Seldon prediction (the only model, or ?model=)",
                             responses={400: {"model": SeldonError}, 404: {"model": SeldonError}})
    extensions: list[str | Enum] = ["V2 extensions"]
    for path, fn in (("/v2/models/{name}/stats", by_name), ("/v2/models/{name}/versions/{version}/stats", by_version),
                     ("/v2/models/stats", stub)):
        router.add_api_route(path, fn, methods=["GET"], tags=extensions, responses=_V2_ERRORS,
                             summary="Statistics extension: inference and execution counts, durations")
    router.add_api_route("/v2/repository/index", stub, methods=["POST"], tags=extensions,
                         summary="Model repository extension (pier serve --repository-api): models and their state")
    for verb in ("load", "unload"):
        router.add_api_route(f"/v2/repository/models/{{name}}/{verb}", by_name, methods=["POST"], tags=extensions,
                             summary=f"Model repository extension (--repository-api): {verb} a model",
                             responses=_V2_ERRORS)
    router.add_api_route("/metrics", stub, methods=["GET"], tags=ops,
                         summary="Prometheus metrics (text exposition format)")
    return router


def build_openapi() -> dict[str, Any]:
    return get_openapi(
        title="modelpier model server",
        version=__version__,
        description="Open Inference Protocol V2 (REST; gRPC on the gRPC port), KServe V1 and Seldon Core v1.",
        routes=_stub_routes().routes,
    )


class DocsAssets:
    """The OpenAPI JSON, the Swagger page and the vendored static files, built on first use."""

    def __init__(self) -> None:
        self._openapi: bytes | None = None
        self._html: bytes | None = None
        self._static: dict[str, bytes] = {}

    def openapi_json(self) -> bytes:
        if self._openapi is None:
            # "." is where the document was fetched from: behind the gateway /{project}/{deployment}/, so
            # Swagger UI's "Try it out" calls the deployment, not the gateway's root.
            self._openapi = dumps({**build_openapi(), "servers": [{"url": "."}]})
        return self._openapi

    def swagger_html(self) -> bytes:
        if self._html is None:
            # Relative URLs: the page is /docs on the replica and /{project}/{deployment}/docs through the
            # gateway, which forwards only what is under that prefix.
            page = get_swagger_ui_html(
                openapi_url="openapi.json", title="modelpier model server - Swagger UI",
                swagger_js_url=f"{STATIC_PREFIX.lstrip('/')}/swagger-ui-bundle.js",
                swagger_css_url=f"{STATIC_PREFIX.lstrip('/')}/swagger-ui.css",
                swagger_favicon_url="data:,")
            self._html = bytes(page.body)
        return self._html

    def static(self, name: str) -> tuple[bytes, bytes] | None:
        content_type = _ASSETS.get(name)
        if content_type is None:
            return None
        if name not in self._static:
            files = resources.files("modelpier.server") / "static" / "swagger" / name
            self._static[name] = files.read_bytes()
        return self._static[name], content_type
