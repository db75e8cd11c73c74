"""What the sync and async clients share: their options, where a call goes, and how it is encoded.

No I/O here: ``sync.py`` and ``aio.py`` do the sending (with ``retry.py``'s decisions) and hand the
answers back to ``ClientCore`` to decode. A target is a **gateway** (deployments under
``{url}/{project}/{name}/``; the model behind a deployment is found once with ``GET .../v1/models``)
or one **server** (``pier serve``: the name is the model's). ``kind="auto"`` asks the URL once:
a model server answers ``GET /v2`` with its metadata, a gateway does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from modelpier._lib.ids import fast_id
from modelpier.errors import InvalidInput, NotFound
from modelpier.sdk.client import wire
from modelpier.sdk.client.retry import RetryPolicy
from modelpier.sdk.client.tensors import Encoded, ModelInfo, Prediction, encode_inputs, frame_of
from modelpier.settings import ServeSettings, Settings, load_settings

Kind = Literal["auto", "gateway", "server"]
Protocol = Literal["v2", "kserve-v1", "seldon"]
PROTOCOLS = ("v2", "kserve-v1", "seldon")
DEFAULT_PROJECT = "default"
TIMEOUT_HEADER = "x-pier-timeout-ms"
# A model server's gRPC port when only its HTTP URL is known: ``pier serve``'s default (serve.grpc_port).
SERVER_GRPC_PORT = ServeSettings().grpc_port
# Extra seconds the client waits past the deadline it sent, so the server's own 504 (with its
# message) arrives before the client gives up on its own.
DEADLINE_GRACE_S = 0.5
_KEPT_HEADERS = ("x-pier-predictor", "x-pier-model-version", "x-pier-revision", "x-pier-replica", "x-pier-cache")


@dataclass(frozen=True, slots=True)
class Options:
    url: str
    kind: Kind
    project: str
    token: str | None
    token_explicit: bool
    grpc_url: str | None
    timeout_s: float
    retry: RetryPolicy
    binary_threshold: int
    max_connections: int
    gateway_grpc_port: int


def resolve_options(url: str | None, *, token: str | None, project: str | None, grpc_url: str | None,
                    timeout: float | None, retries: int | None, kind: Kind, settings: Settings | None,
                    max_connections: int) -> Options:
    """Explicit arguments first, then settings (PIER_CLIENT__*, the token of `pier login`), then defaults."""
    s = settings or load_settings()
    if url is None:
        url = s.client.url
        if url is None:
            url = f"http://{s.gateway.host}:{s.gateway.port}"
            kind = "gateway" if kind == "auto" else kind
            grpc_url = grpc_url or s.client.grpc_url or f"{s.gateway.host}:{s.gateway.grpc_port}"
    if not url.startswith(("http://", "https://")):
        raise InvalidInput(f"client URL {url!r}: expected http://host:port or https://...")
    if kind not in ("auto", "gateway", "server"):
        raise InvalidInput(f"kind {kind!r}: expected auto, gateway or server")
    stored = s.token.get_secret_value() if s.token else None
    return Options(
        url=url.rstrip("/"), kind=kind, project=project or s.project or DEFAULT_PROJECT,
        token=token if token is not None else stored, token_explicit=token is not None,
        grpc_url=grpc_url or s.client.grpc_url, timeout_s=timeout if timeout is not None else s.client.timeout_s,
        retry=RetryPolicy(retries=s.client.retries if retries is None else retries),
        binary_threshold=s.client.binary_threshold_bytes, max_connections=max_connections,
        gateway_grpc_port=s.gateway.grpc_port)


@dataclass(frozen=True, slots=True)
class Route:
    """Where calls for one name go: ``base`` is the URL before ``/v2/...`` (or ``/api/...``)."""

    base: str
    model: str
    gateway: bool
    deployment: str  # "project/name" through a gateway; "" for a server


@dataclass(slots=True)
class Call:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    request_id: str


@dataclass(slots=True)
class Plan:
    """One prediction being made: its route, its encoded inputs and how to read the answer."""

    route: Route
    encoded: Encoded
    protocol: Protocol
    model: ModelInfo | None
    call: Call
    frame: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def deadline_ms(remaining_s: float) -> str:
    return str(max(1, math.ceil(remaining_s * 1000)))


class ClientCore:
    """Options, caches (kind of the URL, model per deployment, metadata per model) and encoding."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.kind: Kind = options.kind
        self._models: dict[tuple[str, str], str] = {}
        self._metadata: dict[str, ModelInfo] = {}
        self._base_headers: dict[str, str] = {"user-agent": "modelpier-client"}

    # -- routing -----------------------------------------------------------------------------------
    def set_kind_from_probe(self, status: int, body: bytes) -> None:
        """``GET {url}/v2``: a model server answers 200 with its extensions; a gateway does not."""
        is_server = False
        if status == 200:
            try:
                doc = wire.loads(body, "GET /v2")
                is_server = isinstance(doc, dict) and "extensions" in doc
            except Exception:  # anything but a V2 server metadata body means "not a server"
                is_server = False
        self.kind = "server" if is_server else "gateway"

    def headers(self, route: Route, request_id: str) -> dict[str, str]:
        headers = dict(self._base_headers)
        headers["x-request-id"] = request_id
        token = self.options.token
        if token and (route.gateway or self.options.token_explicit):
            # A stored token goes only to a gateway; to any other URL only when the caller passed it.
            headers["authorization"] = f"Bearer {token}"
        return headers

    def base(self, name: str, project: str | None) -> tuple[str, bool, str]:
        if self.kind == "server":
            return self.options.url, False, ""
        owner = project or self.options.project
        return f"{self.options.url}/{owner}/{name}", True, f"{owner}/{name}"

    def cached_model(self, base: str, name: str) -> str | None:
        return self._models.get((base, name))

    def model_from_listing(self, base: str, name: str, body: bytes) -> str:
        """The one model a deployment serves, from its ``GET /v1/models`` listing."""
        doc = wire.loads(body, "the model listing")
        models = doc.get("models") if isinstance(doc, dict) else None
        if not isinstance(models, list) or not models:
            raise NotFound(f"deployment {name!r} lists no models at {base}/v1/models")
        if len(models) > 1:
            raise InvalidInput(f"deployment {name!r} serves several models {models}; pass model=NAME",
                               details={"models": models})
        model = str(models[0])
        self._models[(base, name)] = model
        return model

    def forget(self, route: Route, name: str) -> None:
        """Drop what was learnt about ``name`` (its model may have changed)."""
        self._models.pop((route.base, name), None)
        self._metadata.pop(f"{route.base}/v2/models/{route.model}", None)

    def cached_metadata(self, url: str) -> ModelInfo | None:
        return self._metadata.get(url)

    def remember_metadata(self, url: str, body: bytes) -> ModelInfo:
        info = ModelInfo.from_wire(wire.loads(body, "the model metadata"))
        self._metadata[url] = info
        return info

    def grpc_target(self) -> str:
        """``host:port`` of the gRPC service: as configured, else the HTTP URL's host on the usual port."""
        if self.options.grpc_url:
            return self.options.grpc_url.removeprefix("grpc://")
        host = urlsplit(self.options.url).hostname or "127.0.0.1"
        port = SERVER_GRPC_PORT if self.kind == "server" else self.options.gateway_grpc_port
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def grpc_metadata(self, route: Route, request_id: str, headers: dict[str, str] | None) -> list[tuple[str, str]]:
        """Metadata of a gRPC call: only what is needed (each entry costs the channel CPU); the
        request id is in the message, and through a gateway in metadata too (its logs read it)."""
        metadata = [("x-request-id", request_id), ("x-pier-deployment", route.deployment)] if route.gateway else []
        token = self.options.token
        if token and (route.gateway or self.options.token_explicit):
            metadata.append(("authorization", f"Bearer {token}"))
        metadata.extend((k.lower(), v) for k, v in (headers or {}).items())
        return metadata

    # -- encoding ------------------------------------------------------------------------------------
    def plan(self, route: Route, data: Any, model: ModelInfo | None, *, protocol: Protocol, binary: bool | None,
             outputs: list[str] | None, parameters: dict[str, Any] | None, headers: dict[str, str] | None,
             version: str | None, respond_async: bool = False) -> Plan:
        if protocol not in PROTOCOLS:
            raise InvalidInput(f"protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
        encoded = encode_inputs(data, model)
        request_id = fast_id()
        sent = self.headers(route, request_id)
        if headers:
            sent.update({k.lower(): v for k, v in headers.items()})
        if respond_async:
            sent["prefer"] = "respond-async"
        if protocol == "v2":
            use_binary = binary if binary is not None else wire.numeric_bytes(encoded.tensors) >= \
                self.options.binary_threshold
            body, header_length = wire.v2_request(encoded.tensors, binary=use_binary, outputs=outputs,
                                                  parameters=parameters)
            if header_length is not None:
                sent[wire.HEADER_LENGTH] = str(header_length)
                sent["content-type"] = "application/octet-stream"
            else:
                sent["content-type"] = "application/json"
            versioned = f"/versions/{version}" if version else ""
            url = f"{route.base}/v2/models/{route.model}{versioned}/infer"
        elif protocol == "kserve-v1":
            body, url = wire.kserve_v1_request(encoded.tensors), f"{route.base}/v1/models/{route.model}:predict"
            sent["content-type"] = "application/json"
        else:
            body, url = wire.seldon_request(encoded.tensors), f"{route.base}/api/v1.0/predictions?model={route.model}"
            sent["content-type"] = "application/json"
        return Plan(route, encoded, protocol, model, Call("POST", url, sent, body, request_id),
                    frame=encoded.is_frame)

    def answer(self, plan: Plan, body: bytes, headers: Any) -> Any:
        """The prediction from a 200 answer: ``Prediction`` (or a DataFrame for a DataFrame input)."""
        doc: dict[str, Any] = {}
        if plan.protocol == "v2":
            length = headers.get(wire.HEADER_LENGTH)
            outputs, doc = wire.v2_response(body, int(length) if length is not None else None)
        elif plan.protocol == "kserve-v1":
            outputs = wire.kserve_v1_response(body, plan.model)
        else:
            outputs = wire.seldon_response(body)
        kept = {k: v for k in _KEPT_HEADERS if (v := headers.get(k)) is not None}
        prediction = Prediction(
            outputs, model_name=str(doc.get("model_name") or plan.route.model),
            model_version=kept.get("x-pier-model-version") or doc.get("model_version"),
            request_id=headers.get("x-request-id") or plan.call.request_id, headers=kept)
        return frame_of(prediction, plan.encoded) if plan.frame else prediction
