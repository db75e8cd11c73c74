"""What the sync and async clients share: options, building a request, when to retry, reading an answer.

No I/O here: ``sync.py`` and ``aio.py`` send. Every request carries the bearer token and an
``x-request-id``. Retried, with backoff (``sdk.client.retry``'s policy): only idempotent calls
(``GET``, ``HEAD``, ``PUT``, ``DELETE`` with a replayable body) whose connection was never
established, or that the server refused before any work (503 with ``Retry-After``). An error answer
becomes the error tree's class named by the platform's envelope ``{"error": {code, message,
details}}``, its details carrying the request id; an answer that does not parse is a
``RemoteError``, never a bare ``ValueError``.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx

from modelpier._lib.ids import fast_id
from modelpier.errors import PierError, RemoteError, RemoteUnreachable, from_envelope
from modelpier.sdk.client.failures import retry_after_s
from modelpier.sdk.client.retry import Failure, RetryPolicy, decide_retry
from modelpier.sdk.control_api.call import Call

T = TypeVar("T")

API_PREFIX = "/api/v1"
REQUEST_ID_HEADER = "x-request-id"
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
NOT_CONNECTED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True, slots=True)
class Options:
    """``base_url``: the control plane's root (``/api/v1`` is added); ``retries``: extra attempts of an
    idempotent call that did not reach the server; ``hint``: appended to "cannot reach" messages."""

    base_url: str
    token: str | None = None
    timeout: httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)
    retries: int = 2
    trust_env: bool = True
    hint: str = ""

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(retries=self.retries)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def client_kwargs(self) -> dict[str, Any]:
        """Arguments of ``httpx.Client`` and ``httpx.AsyncClient`` alike."""
        return {"base_url": self.base_url + API_PREFIX, "headers": self.auth_headers(), "timeout": self.timeout,
                "trust_env": self.trust_env}


def normalize(base_url: str) -> str:
    return base_url.rstrip("/")


def build_request(http: httpx.Client | httpx.AsyncClient, call: Call[Any], request_id: str) -> httpx.Request:
    timeout: Any = httpx.USE_CLIENT_DEFAULT
    if call.timeout_s is not None:
        timeout = httpx.Timeout(call.timeout_s, connect=min(call.timeout_s, 10.0))
    return http.build_request(call.method, call.path, params=call.params, json=call.json, content=call.content,
                              headers={REQUEST_ID_HEADER: request_id, **call.headers}, timeout=timeout)


def retry_wait(options: Options, call: Call[Any], failure: Failure, attempt: int, *, remaining_s: float,
               jitter: float, retry_after: str | None = None) -> float | None:
    """Seconds to wait before sending ``call`` again, or None to give up now."""
    replayable = call.content is None or isinstance(call.content, bytes)
    if call.method not in IDEMPOTENT or not replayable:
        return None
    return decide_retry(options.policy, failure, attempt, remaining_s=remaining_s, jitter=jitter,
                        retry_after_s=retry_after_s(retry_after))


def refused(response: httpx.Response) -> bool:
    """Refused before any work: the server says when to come back."""
    return response.status_code == 503 and "retry-after" in response.headers


def deadline_s(options: Options, call: Call[Any]) -> float:
    """How long all attempts of ``call`` may take together."""
    return call.timeout_s if call.timeout_s is not None else (options.timeout.read or 60.0)


class Exchange(Generic[T]):
    """The attempts of one call: what to send, and after each outcome, how long to wait before the
    next attempt (None: done, ``result`` holds the answer). Raises the error that ends the call."""

    def __init__(self, options: Options, call: Call[T], http: httpx.Client | httpx.AsyncClient,
                 jitter: random.Random) -> None:
        self.options, self.call, self._jitter = options, call, jitter
        self.request_id = fast_id()
        self.request = build_request(http, call, self.request_id)
        self._deadline = time.monotonic() + deadline_s(options, call)
        self._attempt = 0
        self._result: tuple[T] | None = None

    @property
    def result(self) -> T:
        assert self._result is not None, "result read before the call finished"
        return self._result[0]

    def settle(self, outcome: httpx.Response | httpx.TransportError) -> float | None:
        if isinstance(outcome, httpx.Response):
            wait = self._wait(Failure.REFUSED, outcome.headers.get("retry-after")) if refused(outcome) else None
            if wait is None:
                self._result = (finish(self.call, outcome, self.request_id),)
            return wait
        wait = self._wait(Failure.NOT_CONNECTED, None) if isinstance(outcome, NOT_CONNECTED) else None
        if wait is not None:
            return wait
        raise unreachable(self.options, self.call, outcome, self.request_id) from outcome

    def _wait(self, failure: Failure, retry_after: str | None) -> float | None:
        wait = retry_wait(self.options, self.call, failure, self._attempt,
                          remaining_s=self._deadline - time.monotonic(), jitter=self._jitter.random(),
                          retry_after=retry_after)
        self._attempt += 1
        return wait


def finish(call: Call[T], response: httpx.Response, request_id: str) -> T:
    """The decoded answer, or the error it names."""
    if response.status_code >= 400 and response.status_code not in call.accept:
        raise error_of(response.status_code, response.content, response.headers.get(REQUEST_ID_HEADER) or request_id)
    try:
        return call.decode(response)
    except (ValueError, KeyError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        raise RemoteError(f"{call.method} {API_PREFIX}{call.path}: the control plane's answer does not parse: {exc}",
                          status=response.status_code, details={"request_id": request_id}) from exc


def error_of(status: int, body: bytes, request_id: str) -> PierError:
    """The error tree's class the envelope names, with the server's message and the request id."""
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        doc = None
    error = from_envelope(status, doc)
    error.details = {**error.details, "request_id": request_id}
    return error


def unreachable(options: Options, call: Call[Any], exc: Exception, request_id: str) -> RemoteUnreachable:
    connected = not isinstance(exc, NOT_CONNECTED)
    where = f"{call.method} {API_PREFIX}{call.path}"
    what = (f"the connection to the modelpier control plane at {options.base_url} failed during {where}" if connected
            else f"cannot reach the modelpier control plane at {options.base_url} ({where})")
    hint = f"; {options.hint}" if options.hint and not connected else ""
    return RemoteUnreachable(f"{what}: {exc or type(exc).__name__}{hint}",
                             details={"url": options.base_url, "request_id": request_id})

