"""``KubeApi``: a small async client of the Kubernetes REST API (httpx), for watches, leases and events.

The CR synchroniser and the lease elector need what the official client does not offer in async:
a LIST+WATCH stream on the event loop, and updates checked against ``resourceVersion``. Credentials
come from the official client's loaders (kubeconfig with certificates, tokens or exec plugins, or
the in-cluster service account, whose token file is re-read as it rotates), so this module owns only
the requests. Every failure is a ``KubeApiError`` carrying the API server's status code and reason.
"""

from __future__ import annotations

import json
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

import httpx
from kubernetes import client, config

Manifest = dict[str, Any]
APPLY_PATCH: Final = "application/apply-patch+yaml"  # JSON is YAML: server-side apply takes a JSON body
MERGE_PATCH: Final = "application/merge-patch+json"


class KubeApiError(Exception):
    """The API server refused a request (``status`` is the HTTP code; 0 when it was not reached)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"Kubernetes API {status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message


def _ssl_context(cfg: Any) -> ssl.SSLContext | bool:
    if not cfg.verify_ssl:
        return False
    context = ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.ssl_ca_cert else ssl.create_default_context()
    if cfg.cert_file:
        context.load_cert_chain(cfg.cert_file, cfg.key_file)
    return context


def load_configuration(kubeconfig: str | None = None) -> Any:
    """The official client's ``Configuration``: ``kubeconfig`` if given, else in-cluster, else the default file."""
    cfg = client.Configuration()
    if kubeconfig is not None:
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        return cfg
    try:
        config.load_incluster_config(client_configuration=cfg)
    except config.ConfigException:
        config.load_kube_config(client_configuration=cfg)
    return cfg


class KubeApi:
    """Requests against one API server; ``path`` arguments start at ``/api`` or ``/apis``."""

    def __init__(self, cfg: Any, *, timeout_s: float = 30.0) -> None:
        self._cfg = cfg
        self._http = httpx.AsyncClient(base_url=cfg.host, verify=_ssl_context(cfg),
                                       timeout=httpx.Timeout(timeout_s, read=None))
        self._timeout = timeout_s
        self.requests: Counter[str] = Counter()  # by method (WATCH for a watch), for metrics and tests

    @classmethod
    def connect(cls, kubeconfig: str | None = None) -> KubeApi:
        return cls(load_configuration(kubeconfig))

    async def close(self) -> None:
        await self._http.aclose()

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        token = self._cfg.get_api_key_with_prefix("authorization")  # re-reads a rotated in-cluster token
        if token:
            headers["Authorization"] = token
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def request(self, method: str, path: str, *, params: Mapping[str, str | int | bool] | None = None,
                      body: Any = None, content_type: str = "application/json") -> Manifest:
        """The decoded answer; ``KubeApiError`` for any status of 400 and above."""
        self.requests[method] += 1
        try:
            response = await self._http.request(
                method, path, params=_params(params), headers=self._headers(content_type if body is not None
                                                                            else None),
                content=None if body is None else json.dumps(body), timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise KubeApiError(0, "Unreachable", f"{method} {path}: {exc!r}") from None
        if response.status_code >= 400:
            raise _error(response.status_code, response.text)
        return dict(response.json()) if response.content else {}

    async def get(self, path: str, params: Mapping[str, str | int | bool] | None = None) -> Manifest | None:
        """The object, or ``None`` when it does not exist."""
        try:
            return await self.request("GET", path, params=params)
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def create(self, path: str, body: Manifest) -> Manifest:
        return await self.request("POST", path, body=body)

    async def replace(self, path: str, body: Manifest) -> Manifest:
        """PUT: 409 ``Conflict`` when ``body``'s ``metadata.resourceVersion`` is no longer the stored one."""
        return await self.request("PUT", path, body=body)

    async def apply(self, path: str, body: Manifest, *, field_manager: str, force: bool = True) -> Manifest:
        """Server-side apply of ``body`` as ``field_manager``."""
        return await self.request("PATCH", path, body=body, content_type=APPLY_PATCH,
                                  params={"fieldManager": field_manager, "force": force})

    async def merge_patch(self, path: str, body: Manifest) -> Manifest:
        return await self.request("PATCH", path, body=body, content_type=MERGE_PATCH)

    async def delete(self, path: str) -> None:
        """Delete; absent already is fine."""
        try:
            await self.request("DELETE", path)
        except KubeApiError as exc:
            if exc.status != 404:
                raise

    async def watch(self, path: str, *, resource_version: str, timeout_s: int = 300) -> AsyncIterator[Manifest]:
        """The watch events (``{"type", "object"}``) after ``resource_version``, until the server ends the
        stream (after about ``timeout_s``). An ``ERROR`` event (410 Gone: too old) is yielded as is."""
        self.requests["WATCH"] += 1
        params = {"watch": "true", "resourceVersion": resource_version, "allowWatchBookmarks": "true",
                  "timeoutSeconds": str(timeout_s)}
        try:
            async with self._http.stream("GET", path, params=params, headers=self._headers(),
                                         timeout=httpx.Timeout(self._timeout, read=timeout_s + 30)) as response:
                if response.status_code >= 400:
                    raise _error(response.status_code, (await response.aread()).decode(errors="replace"))
                async for line in response.aiter_lines():
                    if line.strip():
                        yield dict(json.loads(line))
        except httpx.HTTPError as exc:
            raise KubeApiError(0, "Unreachable", f"watch {path}: {exc!r}") from None


def _params(params: Mapping[str, str | int | bool] | None) -> dict[str, str] | None:
    if params is None:
        return None
    return {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in params.items()}


def _error(status: int, text: str) -> KubeApiError:
    try:
        body = json.loads(text)
    except ValueError:
        return KubeApiError(status, "", text[:500])
    if not isinstance(body, dict):
        return KubeApiError(status, "", text[:500])
    return KubeApiError(status, str(body.get("reason") or ""), str(body.get("message") or text[:500]))
