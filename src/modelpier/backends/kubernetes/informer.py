"""``Informer``: a LIST+WATCH-fed cache of one kind of object, as client-go's informers keep one.

One LIST, then one long WATCH from its resourceVersion, renewed from the last version seen (with
bookmarks, so a quiet watch still advances); a ``410 Gone`` or a broken stream relists after a short
backoff. Readers never call the API: they read ``objects``. A writer that got an object back from
the API server (apply, delete) puts it in with ``put`` at once, so a read right after a write sees
it before the watch delivers the event; versions only move forward (an older copy never replaces a
newer one) and a deleted object is never resurrected by a late write answer.

Guarantee: after ``synced`` is set, ``objects`` holds every object the API server held at some
recent version, plus the writes made through ``put`` since.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

from modelpier.backends.kubernetes.kubeapi import KubeApi, KubeApiError, Manifest

log = logging.getLogger("modelpier.backends.kubernetes")

Key = tuple[str, str]  # namespace, name


def _version(obj: Manifest) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:  # opaque by contract; every API server we know counts etcd revisions
        return 0


def key_of(obj: Manifest) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace", "")), str(meta.get("name", "")))


class Informer:
    def __init__(self, api: KubeApi, path: str, resource: str, *, params: Mapping[str, str] | None = None,
                 watch_timeout_s: int = 300, on_change: Callable[[], None] | None = None,
                 optional: bool = False) -> None:
        """``optional``: a kind the cluster may not serve (a CRD): a 404 or 403 leaves the cache empty and is
        retried every minute, instead of being an error."""
        self._api, self._path, self._resource = api, path, resource
        self._params = dict(params or {})
        self._timeout = watch_timeout_s
        self._on_change = on_change or (lambda: None)
        self._optional = optional
        self.objects: dict[Key, Manifest] = {}
        self._gone: set[str] = set()  # uids deleted: a late write answer must not bring them back
        self.synced = asyncio.Event()
        self.available = True  # False: an optional kind the cluster does not serve (or we may not read)
        self.relists = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"informer {self._resource}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def put(self, obj: Manifest) -> None:
        """An object as a write's answer returned it."""
        uid = (obj.get("metadata") or {}).get("uid")
        if uid in self._gone:
            return
        key = key_of(obj)
        current = self.objects.get(key)
        if current is None or _version(obj) >= _version(current):
            self.objects[key] = obj
            self._on_change()

    def remove(self, obj: Manifest) -> None:
        """An object the API server deleted (the watch's DELETED event)."""
        uid = (obj.get("metadata") or {}).get("uid")
        if uid:
            self._gone.add(uid)
        current = self.objects.get(key_of(obj))
        if current is not None and (current.get("metadata") or {}).get("uid") == uid:
            del self.objects[key_of(obj)]
        self._on_change()

    def _replace(self, items: list[Manifest], version: int) -> None:
        # Writes answered after the LIST's snapshot are newer than it: keep them (the watch confirms them).
        newer = {k: o for k, o in self.objects.items() if _version(o) > version}
        self.objects = {key_of(o): o for o in items}
        self.objects.update(newer)
        live = {(o.get("metadata") or {}).get("uid") for o in self.objects.values()}
        self._gone = {u for u in self._gone if u not in live}
        self._on_change()

    async def _run(self) -> None:
        version: str | None = None
        backoff = 0.5
        while True:
            try:
                if version is None:
                    listed = await self._api.request("GET", self._path, params=self._params)
                    version = str(listed["metadata"]["resourceVersion"])
                    self.relists += 1
                    self._replace(list(listed.get("items") or []), int(version or 0))
                    self.available = True
                    self.synced.set()
                async for event in self._api.watch(self._path, resource_version=version, timeout_s=self._timeout,
                                                   params=self._params):
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        log.info("watch of %s ended: %s; relisting", self._resource, obj.get("message"))
                        version = None  # 410 Gone: our version was compacted away
                        break
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                    if kind in ("ADDED", "MODIFIED"):
                        self.put(obj)
                    elif kind == "DELETED":
                        self.remove(obj)
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except KubeApiError as exc:
                if exc.status in (403, 404) and self._optional:
                    if self.available:
                        log.info("not caching %s: %s (retried every minute)", self._resource, exc.message)
                    self.available, version = False, None
                    self.objects = {}
                    self.synced.set()
                    await asyncio.sleep(60)
                    continue
                if exc.status == 410:  # our version was compacted away: start again from a list
                    version = None
                log.warning("watching %s failed: %s; retrying in %gs", self._resource, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            except Exception:
                log.exception("watch of %s failed; relisting in %gs", self._resource, backoff)
                version = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
