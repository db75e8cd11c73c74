"""``ControlClient``: the control plane's ``/api/v1`` from synchronous code (the CLI, push and pull).

Sends the ``Call`` objects the endpoint modules build, over one pooled ``httpx.Client``; what a
request carries, when it is retried and how its answer is read are ``transport.py``'s, shared with
``AsyncControlClient``. ``download`` is the one hot path outside httpx (see its docstring).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from typing import Self, TypeVar
from urllib.parse import urlsplit

import httpx

from modelpier._lib.ids import fast_id
from modelpier.errors import RemoteUnreachable
from modelpier.sdk.control_api.call import Call
from modelpier.sdk.control_api.transport import (
    API_PREFIX,
    DEFAULT_TIMEOUT,
    REQUEST_ID_HEADER,
    Exchange,
    Options,
    error_of,
    normalize,
)

T = TypeVar("T")


class ControlClient:
    def __init__(self, base_url: str, *, token: str | None = None, timeout: httpx.Timeout = DEFAULT_TIMEOUT,
                 retries: int = 2, trust_env: bool = True, hint: str = "",
                 transport: httpx.BaseTransport | None = None) -> None:
        self.options = Options(normalize(base_url), token, timeout, retries, trust_env, hint)
        self._http = httpx.Client(transport=transport, **self.options.client_kwargs())
        self._random = random.Random()  # noqa: S311 -- backoff jitter, not a secret

    @property
    def base_url(self) -> str:
        return self.options.base_url

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, call: Call[T]) -> T:
        exchange = Exchange(self.options, call, self._http, self._random)
        while True:
            try:
                outcome: httpx.Response | httpx.TransportError = self._http.send(exchange.request)
            except httpx.TransportError as exc:
                outcome = exc
            wait = exchange.settle(outcome)
            if wait is None:
                return exchange.result
            time.sleep(wait)

    def download(self, path: str, *, chunk_size: int) -> Iterator[bytes]:
        """Stream ``GET path``'s body (a blob) in ``chunk_size`` pieces; the caller verifies the digest.

        Through the standard library's ``http.client`` rather than httpx: it fills each chunk with
        C-level reads of the size asked for, where httpx parses 64 KiB pieces in Python and joins
        them; on one core that was the difference between ~175 and 200+ MB/s (docs/benchmarks.md).
        Only this hot path does so.
        """
        url = urlsplit(f"{self.base_url}{API_PREFIX}{path}")
        connection_class = HTTPSConnection if url.scheme == "https" else HTTPConnection
        connection = connection_class(url.hostname or "localhost", url.port, timeout=self.options.timeout.read)
        request_id = fast_id()
        headers = {**self.options.auth_headers(), REQUEST_ID_HEADER: request_id}  # no Accept-Encoding: raw bytes
        try:
            connection.request("GET", url.path, headers=headers)
            response = connection.getresponse()
            if response.status >= 400:
                raise error_of(response.status, response.read(), request_id)
            while chunk := response.read(chunk_size):
                yield chunk
        except (OSError, HTTPException) as exc:
            raise RemoteUnreachable(f"download of {path} from {self.base_url} broke off: {exc}",
                                    details={"url": self.base_url, "request_id": request_id}) from exc
        finally:
            connection.close()
