"""``KubeApi``: the few Kubernetes API calls the backend makes, async, over one pooled httpx client.

Why not the official client: it is synchronous (a watch would hold a thread, each write another),
and the backend needs five calls — server-side apply, delete, list, watch and a container's log —
which are plain HTTP. Credentials still come from the official client's loaders (kubeconfig with
its exec plugins and certificates, or the in-cluster service account whose token it refreshes), so
what works for kubectl works here. Every request is counted by verb and resource in ``requests``
(public: the control plane's metrics and the tests read it; a watch is one request however long it
streams). Answers that are errors become errors of the one tree (``api_error``).
"""

from __future__ import annotations

import json
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
from kubernetes import client, config

from modelpier.errors import (
    Conflict,
    Forbidden,
    InvalidSpec,
    NotFound,
    PierError,
    RemoteError,
    RemoteUnreachable,
    ServiceUnavailable,
    Unauthenticated,
)

Manifest = dict[str, Any]
FIELD_MANAGER = "modelpier"


def load_configuration(kubeconfig: str | None) -> Any:
    """The official client's ``Configuration``: ``kubeconfig`` when given, else in-cluster, else the default
    kubeconfig (``KUBECONFIG`` or ``~/.kube/config``)."""
    cfg = client.Configuration()
    try:
        if kubeconfig is not None:
            config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
            return cfg
        try:
            config.load_incluster_config(client_configuration=cfg)
        except config.ConfigException:
            config.load_kube_config(client_configuration=cfg)
    except (config.ConfigException, OSError) as exc:
        raise ServiceUnavailable(f"no usable Kubernetes credentials ({exc}): set kubernetes.kubeconfig "
                                 "(PIER_KUBERNETES__KUBECONFIG) or run in a cluster") from None
    return cfg


def _ssl_context(cfg: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.ssl_ca_cert else ssl.create_default_context()
    if cfg.cert_file:
        context.load_cert_chain(cfg.cert_file, cfg.key_file)
    if not cfg.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def api_error(status: int, message: str) -> PierError:
    """The error for an API server's refusal (pure)."""
    if status == 401:
        return Unauthenticated(f"the Kubernetes API server rejected the control plane's credentials: {message}")
    if status == 403:
        return Forbidden(f"the Kubernetes API server forbids it: {message}")
    if status == 404:
        return NotFound(message)
    if status == 409:
        return Conflict(message)
    if status == 422:
        return InvalidSpec(f"the Kubernetes API server rejected the object: {message}")
    return RemoteError(f"the Kubernetes API server answered {status}: {message}", status=502)


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    return str(body.get("message") or response.reason_phrase) if isinstance(body, dict) else response.text[:500]


class KubeApi:
    """One cluster's API; ``aclose`` releases it. ``configuration`` is the official client's."""

    def __init__(self, configuration: Any, *, timeout_s: float = 30.0) -> None:
        self._cfg = configuration
        self._base = str(configuration.host).rstrip("/")
        context = _ssl_context(configuration)
        self._timeout = timeout_s
        self._async = httpx.AsyncClient(verify=context, timeout=timeout_s, trust_env=False)
        self._sync = httpx.Client(verify=context, timeout=timeout_s, trust_env=False)  # logs(): a sync method
        self.requests: Counter[str] = Counter()

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        # The official client's own view of its credentials (a bearer token, under whatever key this
        # client version keeps it); asking refreshes a rotating token (in-cluster, exec plugins) when due.
        for auth in self._cfg.auth_settings().values():
            if auth.get("in") == "header" and auth.get("value"):
                headers[str(auth["key"]).title()] = str(auth["value"])
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def _call(self, verb: str, resource: str, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                    body: Any = None, content_type: str = "application/json") -> httpx.Response:
        self.requests[f"{verb} {resource}"] += 1
        try:
            response = await self._async.request(
                method, self._base + path, params=params, headers=self._headers(content_type if body else None),
                content=None if body is None else json.dumps(body).encode())
        except httpx.HTTPError as exc:
            raise RemoteUnreachable(f"cannot reach the Kubernetes API server {self._base}: {exc}") from None
        if response.status_code >= 400:
            raise api_error(response.status_code, _message(response))
        return response

    async def apply(self, path: str, obj: Manifest, resource: str) -> Manifest:
        """Server-side apply ``obj`` at ``path`` (the object's URL) under our field manager, forcing conflicts
        (these objects are ours); the object as stored."""
        response = await self._call("APPLY", resource, "PATCH", path, body=obj,
                                    params={"fieldManager": FIELD_MANAGER, "force": "true"},
                                    content_type="application/apply-patch+yaml")
        return dict(response.json())

    async def merge_patch(self, path: str, patch: Manifest, resource: str) -> Manifest:
        """A JSON merge patch (RFC 7386): for a field no apply of ours owns, such as a late ownerReference."""
        response = await self._call("PATCH", resource, "PATCH", path, body=patch,
                                    content_type="application/merge-patch+json")
        return dict(response.json())

    async def delete(self, path: str, resource: str, *, grace_s: int, uid: str | None = None) -> Manifest | None:
        """Delete gracefully; the object as the API server left it (with ``deletionTimestamp``), None when gone."""
        body: Manifest = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": grace_s,
                          "propagationPolicy": "Background"}
        if uid is not None:
            body["preconditions"] = {"uid": uid}  # never a newer object of the same name
        try:
            response = await self._call("DELETE", resource, "DELETE", path, body=body)
        except (NotFound, Conflict):
            return None
        found = response.json()
        return dict(found) if isinstance(found, dict) and found.get("kind") not in (None, "Status") else None

    async def get(self, path: str, resource: str, params: Mapping[str, Any] | None = None) -> Manifest:
        return dict((await self._call("GET", resource, "GET", path, params=params)).json())

    async def list(self, path: str, resource: str, params: Mapping[str, Any]) -> Manifest:
        return dict((await self._call("LIST", resource, "GET", path, params=params)).json())

    async def watch(self, path: str, resource: str, params: Mapping[str, Any], timeout_s: int
                    ) -> AsyncIterator[Manifest]:
        """The events of one watch request (``{"type", "object"}``), until the server ends it."""
        self.requests[f"WATCH {resource}"] += 1
        query = {**params, "watch": "true", "allowWatchBookmarks": "true", "timeoutSeconds": str(timeout_s)}
        timeout = httpx.Timeout(self._timeout, read=timeout_s + 30)
        try:
            async with self._async.stream("GET", self._base + path, params=query, headers=self._headers(),
                                          timeout=timeout) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise api_error(response.status_code, _message(response))
                async for line in response.aiter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.HTTPError as exc:
            raise RemoteUnreachable(f"the watch of {resource} on {self._base} broke: {exc}") from None

    async def text(self, path: str, resource: str, params: Mapping[str, Any]) -> str:
        return (await self._call("GET", resource, "GET", path, params=params)).text

    def text_sync(self, path: str, resource: str, params: Mapping[str, Any]) -> str:
        """A text answer from a synchronous caller (a thread of the API server)."""
        self.requests[f"GET {resource}"] += 1
        try:
            response = self._sync.get(self._base + path, params=params, headers=self._headers())
        except httpx.HTTPError as exc:
            raise RemoteUnreachable(f"cannot reach the Kubernetes API server {self._base}: {exc}") from None
        if response.status_code >= 400:
            raise api_error(response.status_code, _message(response))
        return response.text

    async def aclose(self) -> None:
        await self._async.aclose()
        self._sync.close()
