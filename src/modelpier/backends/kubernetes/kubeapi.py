"""``KubeApi``: a small async client of the Kubernetes REST API (httpx), for watches, leases, events and pods.

The CR synchroniser, the lease elector and the backend's pods (``backend.py``, ``informer.py``) need
what the official client does not offer in async: a LIST+WATCH stream on the event loop, updates
checked against ``resourceVersion``, graceful deletes and container logs; one client serves them all,
counting its requests by method and resource (``requests``). Credentials
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
                                       timeout=httpx.Timeout(timeout_s, read=None), trust_env=False)
        self._timeout = timeout_s
        self._verify = _ssl_context(cfg)
        self._sync: httpx.Client | None = None  # made on first use, for callers on another thread (logs)
        # By method (WATCH for a watch) and resource ("GET pods", "PATCH modeldeployments/status"), for metrics
        # and tests: a watch is one request however long it streams.
        self.requests: Counter[str] = Counter()

    @classmethod
    def connect(cls, kubeconfig: str | None = None) -> KubeApi:
        return cls(load_configuration(kubeconfig))

    async def close(self) -> None:
        await self._http.aclose()
        if self._sync is not None:
            self._sync.close()

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        # The official client's own view of its credentials: a bearer token under whatever key this client
        # version keeps it ("BearerToken" in v37, for kubeconfig tokens and the in-cluster service account
        # alike); asking refreshes a rotating token (in-cluster, exec plugins) when due.
        for auth in self._cfg.auth_settings().values():
            if auth.get("in") == "header" and auth.get("value"):
                headers[str(auth["key"]).title()] = str(auth["value"])
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def request(self, method: str, path: str, *, params: Mapping[str, str | int | bool] | None = None,
                      body: Any = None, content_type: str = "application/json") -> Manifest:
        """The decoded answer; ``KubeApiError`` for any status of 400 and above."""
        self.requests[f"{method} {resource_of(path)}"] += 1
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

    async def delete(self, path: str, *, grace_s: int | None = None, uid: str | None = None) -> Manifest | None:
        """Delete; absent already is fine. ``grace_s``: the termination grace (a pod's own when None); ``uid``:
        only that object, never a newer one of the same name (gone already when it does not match). The
        object as the API server left it (a pod draining, with ``deletionTimestamp``), or None when gone."""
        options: Manifest = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        if grace_s is not None:
            options["gracePeriodSeconds"] = grace_s
        if uid is not None:
            options["preconditions"] = {"uid": uid}
        try:
            left = await self.request("DELETE", path, body=options if len(options) > 3 else None)
        except KubeApiError as exc:
            if exc.status in (404, 409):
                return None
            raise
        return left if left.get("kind") not in (None, "Status") else None

    async def text(self, path: str, params: Mapping[str, str | int | bool] | None = None) -> str:
        """A text answer (a container's log)."""
        self.requests[f"GET {resource_of(path)}"] += 1
        try:
            response = await self._http.get(path, params=_params(params), headers=self._headers(),
                                            timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise KubeApiError(0, "Unreachable", f"GET {path}: {exc!r}") from None
        if response.status_code >= 400:
            raise _error(response.status_code, response.text)
        return response.text

    def text_sync(self, path: str, params: Mapping[str, str | int | bool] | None = None) -> str:
        """``text`` for a synchronous caller on another thread (an API route reading replica logs)."""
        if self._sync is None:
            self._sync = httpx.Client(base_url=self._cfg.host, verify=self._verify, timeout=self._timeout,
                                      trust_env=False)
        self.requests[f"GET {resource_of(path)}"] += 1
        try:
            response = self._sync.get(path, params=_params(params), headers=self._headers())
        except httpx.HTTPError as exc:
            raise KubeApiError(0, "Unreachable", f"GET {path}: {exc!r}") from None
        if response.status_code >= 400:
            raise _error(response.status_code, response.text)
        return response.text

    async def watch(self, path: str, *, resource_version: str, timeout_s: int = 300,
                    params: Mapping[str, str | int | bool] | None = None) -> AsyncIterator[Manifest]:
        """The watch events (``{"type", "object"}``) after ``resource_version``, until the server ends the
        stream (after about ``timeout_s``). An ``ERROR`` event (410 Gone: too old) is yielded as is.
        ``params``: more of the query, such as a ``labelSelector``."""
        self.requests[f"WATCH {resource_of(path)}"] += 1
        params = {**(_params(params) or {}), "watch": "true", "resourceVersion": resource_version,
                  "allowWatchBookmarks": "true", "timeoutSeconds": str(timeout_s)}
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


def resource_of(path: str) -> str:
    """``/api/v1/namespaces/ns/pods/p/log`` → ``pods/log``; ``/apis/g/v/namespaces/ns/things`` → ``things``."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if len(rest) > 2 and rest[0] == "namespaces":
        rest = rest[2:]
    return rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "") if rest else "/"


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
