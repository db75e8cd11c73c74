"""Send a try-it request through the gateway and time it. The dashboard's only call to the data plane.

The request goes from the control-plane process to the gateway (not from the browser), so it needs
no CORS and the page shows the same answer ``curl`` would get, with the round trip as measured
here. The user's token is sent only to deployments in ``auth.mode: token``: a public deployment's
replica would receive the header, and an API token has no business in a replica's request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from modelpier.dashboard.tryit import pretty_response

_SHOWN_HEADERS = ("x-pier-predictor", "x-pier-revision", "x-pier-replica", "x-request-id", "content-type")


@dataclass(frozen=True, slots=True)
class Invocation:
    url: str
    status: int | None  # None: no answer at all (``failure`` says why)
    latency_ms: float
    body: str
    headers: dict[str, str]
    failure: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


async def invoke(url: str, body: bytes, *, token: str | None, timeout_s: float,
                 transport: httpx.AsyncBaseTransport | None = None) -> Invocation:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    started = time.perf_counter()
    try:
        async with httpx.AsyncClient(timeout=timeout_s, transport=transport, trust_env=False) as client:
            response = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        elapsed = (time.perf_counter() - started) * 1000
        return Invocation(url, None, elapsed, "", {}, failure=f"no answer from the gateway at {url}: "
                                                              f"{type(exc).__name__}: {exc}")
    elapsed = (time.perf_counter() - started) * 1000
    shown = {k: response.headers[k] for k in _SHOWN_HEADERS if k in response.headers}
    return Invocation(url, response.status_code, elapsed, pretty_response(response.content), shown)
