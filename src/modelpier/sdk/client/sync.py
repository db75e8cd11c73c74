"""``modelpier.Client``: call deployments (through a gateway) or a model server, from any thread.

One pooled ``httpx.Client`` (keep-alive connections shared by every thread; httpx's pool is
thread-safe) and, on first use, one gRPC channel. Each call: find the route (cached), the model's
metadata (cached), encode (``core.py``), send with the deadline in ``x-pier-timeout-ms`` and retry
only what ``retry.py`` allows, decode. Errors are modelpier errors (``failures.py``).
"""

from __future__ import annotations

import math
import random
import threading
import time
from typing import Any

import httpx

from modelpier._lib.ids import fast_id
from modelpier.errors import InvalidInput, NotFound, PierError
from modelpier.sdk.client import http1
from modelpier.sdk.client.core import (
    DEADLINE_GRACE_S,
    TIMEOUT_HEADER,
    Call,
    ClientCore,
    Kind,
    Protocol,
    Route,
    deadline_ms,
    resolve_options,
)
from modelpier.sdk.client.failures import grpc_error, http_error, lost, retry_after_s, timed_out, unreachable
from modelpier.sdk.client.http1 import Answer
from modelpier.sdk.client.jobs import Job, job_state
from modelpier.sdk.client.retry import Failure, decide_retry
from modelpier.sdk.client.tensors import ModelInfo, Prediction, encode_inputs, frame_of
from modelpier.settings import Settings

NOT_CONNECTED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def refused(status: int, headers: dict[str, str]) -> bool:
    """A 503/429 with Retry-After: refused before any work (full queue, maxInFlight, loading)."""
    return status in (503, 429) and "retry-after" in headers


class Client:
    """Predictions from Python. ``url=None``: the local gateway (settings ``client.url``, else
    ``gateway.host``/``gateway.port``); a ``pier serve`` URL works too (``kind="auto"``
    tells them apart). ``token``: default the one ``pier login`` stored (sent only to gateways
    unless passed explicitly). ``timeout``: the default deadline of a call, in seconds."""

    def __init__(self, url: str | None = None, *, token: str | None = None, project: str | None = None,
                 grpc_url: str | None = None, timeout: float | None = None, retries: int | None = None,
                 kind: Kind = "auto", max_connections: int = 128, verify: bool = True,
                 settings: Settings | None = None) -> None:
        options = resolve_options(url, token=token, project=project, grpc_url=grpc_url, timeout=timeout,
                                  retries=retries, kind=kind, settings=settings, max_connections=max_connections)
        self._core = ClientCore(options)
        self._http = httpx.Client(
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            verify=verify, timeout=options.timeout_s)
        self._pool = http1.SyncPool()
        self._grpc: Any = None
        self._g: Any = None  # the grpc module of the client, imported on first use (grpcio is heavy)
        self._resolved: dict[tuple[str, str | None, str | None], tuple[Route, ModelInfo]] = {}
        self._lock = threading.Lock()
        self._random = random.Random()  # noqa: S311 -- jitter, not a secret

    @property
    def url(self) -> str:
        return self._core.options.url

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.close()
        self._http.close()
        if self._grpc is not None:
            self._grpc.close()

    # -- public calls ---------------------------------------------------------------------------
    def predict(self, name: str, data: Any, *, model: str | None = None, project: str | None = None,
                protocol: Protocol = "v2", binary: bool | None = None, grpc: bool = False,
                timeout: float | None = None, outputs: list[str] | None = None,
                parameters: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
                version: str | None = None) -> Any:
        """Predict ``data`` with deployment (or, on a model server, model) ``name``.

        Returns a ``Prediction`` (outputs by name as numpy arrays), or a DataFrame for a DataFrame.
        """
        deadline = time.monotonic() + (timeout if timeout is not None else self._core.options.timeout_s)
        resolved = self._resolved.get((name, project, model))
        if resolved is None:  # first call for this name: find the route and the model's metadata once
            route = self._route(name, project, model, deadline)
            resolved = self._resolved[(name, project, model)] = (route, self._info(route, deadline))
        route, info = resolved
        if grpc:
            if protocol != "v2":
                raise InvalidInput(f"gRPC speaks V2 only; protocol={protocol!r} is HTTP")
            return self._grpc_predict(route, info, data, deadline, outputs=outputs, parameters=parameters,
                                            headers=headers, version=version)
        plan = self._core.plan(route, data, info, protocol=protocol, binary=binary, outputs=outputs,
                               parameters=parameters, headers=headers, version=version)
        try:
            answer = self._send(plan.call, deadline)
        except NotFound:
            # The deployment may now serve another model: find it afresh on the next call.
            self._resolved.pop((name, project, model), None)
            self._core.forget(route, name)
            raise
        return self._core.answer(plan, answer.body, answer.headers)

    def submit(self, name: str, data: Any, *, model: str | None = None, project: str | None = None,
               binary: bool | None = None, timeout: float | None = None, outputs: list[str] | None = None,
               parameters: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Job:
        """Queue a prediction as a gateway job (``Prefer: respond-async``); poll the returned ``Job``."""
        deadline = time.monotonic() + (timeout if timeout is not None else self._core.options.timeout_s)
        route = self._route(name, project, model, deadline)
        if not route.gateway:
            raise InvalidInput(f"{self.url} is a model server: async jobs are a gateway's (submit through one)")
        info = self._info(route, deadline)
        plan = self._core.plan(route, data, info, protocol="v2", binary=binary, outputs=outputs,
                               parameters=parameters, headers=headers, version=None, respond_async=True)
        answer = self._send(plan.call, deadline)
        if answer.status != 202:
            raise InvalidInput(f"the gateway answered {answer.status}, not 202 Accepted, to an async submit")
        return Job(self._core, plan, job_state(answer.body), self._fetch)

    def metadata(self, name: str, *, model: str | None = None, project: str | None = None,
                 timeout: float | None = None) -> ModelInfo:
        """The V2 metadata of the model behind ``name``: inputs, outputs, versions."""
        deadline = time.monotonic() + (timeout if timeout is not None else self._core.options.timeout_s)
        return self._info(self._route(name, project, model, deadline), deadline)

    # -- routing ----------------------------------------------------------------------------------
    def _route(self, name: str, project: str | None, model: str | None, deadline: float) -> Route:
        core = self._core
        if core.kind == "auto":
            self._probe(deadline)
        base, gateway, deployment = core.base(name, project)
        if not gateway:
            return Route(base, model or name, False, "")
        found = model or core.cached_model(base, name)
        if found is None:
            found = core.model_from_listing(base, name, self._get(f"{base}/v1/models", deadline, gateway=True))
        return Route(base, found, True, deployment)

    def _probe(self, deadline: float) -> None:
        url = f"{self._core.options.url}/v2"
        request_id = fast_id()
        call = Call("GET", url, {"x-request-id": request_id}, None, request_id)
        answer = self._send(call, deadline, accept_errors=True)
        self._core.set_kind_from_probe(answer.status, answer.body)

    def _info(self, route: Route, deadline: float) -> ModelInfo:
        url = f"{route.base}/v2/models/{route.model}"
        info = self._core.cached_metadata(url)
        if info is None:
            info = self._core.remember_metadata(url, self._get(url, deadline, gateway=route.gateway))
        return info

    def _get(self, url: str, deadline: float, *, gateway: bool) -> bytes:
        request_id = fast_id()
        call = Call("GET", url, self._core.headers(Route(url, "", gateway, ""), request_id), None, request_id)
        return self._send(call, deadline).body

    def _fetch(self, url: str) -> bytes:
        return self._get(url, time.monotonic() + self._core.options.timeout_s, gateway=True)

    # -- sending ------------------------------------------------------------------------------------
    def _exchange(self, call: Call, timeout_s: float) -> Answer:
        if http1.fast(call.url):
            return self._pool.request(call.method, call.url, call.headers, call.body, timeout_s)
        try:  # https: httpx (TLS, proxies)
            r = self._http.request(call.method, call.url, headers=call.headers, content=call.body,
                                        timeout=httpx.Timeout(timeout_s))
        except NOT_CONNECTED as exc:
            raise http1.NotConnected(f"{type(exc).__name__}: {exc}") from None
        except httpx.TimeoutException:
            raise http1.TimedOut(f"no answer within {timeout_s:.3g}s") from None
        except httpx.TransportError as exc:
            raise http1.Lost(f"{type(exc).__name__}: {exc}") from None
        return Answer(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content)

    def _send(self, call: Call, deadline: float, *, accept_errors: bool = False) -> Answer:
        attempt = 0
        policy = self._core.options.retry
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise timed_out(call.url, self._core.options.timeout_s, call.request_id)
            call.headers[TIMEOUT_HEADER] = deadline_ms(remaining)
            retry_after: str | None = None
            error: PierError
            try:
                answer = self._exchange(call, remaining + DEADLINE_GRACE_S)
            except http1.NotConnected as exc:
                failure, error = Failure.NOT_CONNECTED, unreachable(call.url, exc, call.request_id)
            except http1.TimedOut:
                raise timed_out(call.url, remaining, call.request_id) from None
            except http1.Lost as exc:
                raise lost(call.url, exc, call.request_id) from None
            else:
                status = answer.status
                if status < 300 or accept_errors:
                    return answer
                retry_after = answer.headers.get("retry-after")
                failure = Failure.REFUSED if refused(status, answer.headers) else Failure.OTHER
                error = http_error(status, answer.body, answer.headers.get("x-request-id") or call.request_id,
                                   retry_after, call.url)
            wait = decide_retry(policy, failure, attempt, remaining_s=deadline - time.monotonic(),
                                jitter=self._random.random(), retry_after_s=retry_after_s(retry_after))
            if wait is None:
                raise error
            time.sleep(wait)
            attempt += 1

    # -- gRPC -----------------------------------------------------------------------------------------
    def _transport(self) -> Any:
        with self._lock:
            if self._grpc is None:
                from modelpier.sdk.client import grpc

                self._g = grpc
                self._grpc = grpc.GrpcTransport(self._core.grpc_target())
            return self._grpc

    def _grpc_predict(self, route: Route, info: ModelInfo, data: Any, deadline: float, *, outputs: list[str] | None,
                      parameters: dict[str, Any] | None, headers: dict[str, str] | None, version: str | None) -> Any:
        transport = self._grpc or self._transport()
        g = self._g
        encoded = encode_inputs(data, info)
        request_id = fast_id()
        metadata = self._core.grpc_metadata(route, request_id, headers)
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise timed_out(self._core.grpc_target(), self._core.options.timeout_s, request_id)
            request = g.infer_request(route.model, version, encoded.tensors, outputs=outputs, request_id=request_id,
                                      parameters=parameters, timeout_us=math.ceil(remaining * 1e6))
            try:
                body, trailing = transport.infer(request, metadata, remaining + DEADLINE_GRACE_S,
                                                 trailing=route.gateway)
                break
            except g.RpcError as exc:
                failure, retry_after = g.failure_kind(exc)
                code, message = g.describe(exc)
                error = grpc_error(code, message, request_id, retry_after)
            wait = decide_retry(self._core.options.retry, failure, attempt, remaining_s=deadline - time.monotonic(),
                                jitter=self._random.random(), retry_after_s=retry_after_s(retry_after))
            if wait is None:
                raise error
            time.sleep(wait)
            attempt += 1
        out, model_name, model_version = g.infer_response(body)
        prediction = Prediction(out, model_name=model_name or route.model,
                                model_version=trailing.get("x-pier-model-version") or model_version or None,
                                request_id=trailing.get("x-request-id") or request_id,
                                headers={k: v for k, v in trailing.items() if k.startswith("x-pier-")}
                                if trailing else {})
        return frame_of(prediction, encoded) if encoded.is_frame else prediction
