"""Kubernetes Events on ModelDeployment CRs, so ``kubectl describe md`` and ``kubectl get events`` show problems.

``EventRecorder.record`` posts a ``core/v1`` Event about an object; the same reason and message
about the same object again only bumps ``count`` and ``lastTimestamp`` of the first (as kubelet and
the controllers do), so a retried failure does not flood the namespace. Recording never raises:
an event that cannot be written is logged, and the work that caused it carries on.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Final, Literal

from modelpier._lib.clock import Clock, SystemClock
from modelpier._lib.ids import new_id
from modelpier.backends.kubernetes.kubeapi import KubeApi, KubeApiError

log = logging.getLogger("modelpier.kubernetes.events")
Manifest = dict[str, Any]
_REMEMBERED: Final = 4096  # events whose count we bump instead of posting again (the oldest are forgotten)


def _time(clock: Clock) -> str:
    return clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    def __init__(self, api: KubeApi, *, component: str = "modelpier-control", clock: Clock | None = None) -> None:
        self._api, self._component = api, component
        self._clock = clock or SystemClock()
        self._posted: OrderedDict[tuple[str, str, str, str], tuple[str, int]] = OrderedDict()  # -> (name, count)

    async def record(self, involved: Manifest, type: Literal["Normal", "Warning"], reason: str,
                     message: str) -> None:
        """An Event about ``involved`` (an object with apiVersion, kind and metadata)."""
        meta = involved.get("metadata") or {}
        namespace, uid = meta.get("namespace", "default"), meta.get("uid", "")
        key = (namespace, uid, reason, message)
        path = f"/api/v1/namespaces/{namespace}/events"
        now = _time(self._clock)
        try:
            if key in self._posted:
                name, count = self._posted[key]
                self._posted.move_to_end(key)
                try:
                    await self._api.merge_patch(f"{path}/{name}", {"count": count + 1, "lastTimestamp": now})
                    self._posted[key] = (name, count + 1)
                    return
                except KubeApiError as exc:
                    if exc.status != 404:  # expired (events live an hour): post a new one
                        raise
            name = f"{meta.get('name', 'object')}.{new_id()[:16]}"
            await self._api.create(path, {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": {"apiVersion": involved.get("apiVersion"), "kind": involved.get("kind"),
                                   "name": meta.get("name"), "namespace": namespace, "uid": uid,
                                   "resourceVersion": meta.get("resourceVersion")},
                "type": type, "reason": reason, "message": message[:1024], "count": 1,
                "firstTimestamp": now, "lastTimestamp": now, "source": {"component": self._component},
                "reportingComponent": self._component, "reportingInstance": self._component})
            self._posted[key] = (name, 1)
            while len(self._posted) > _REMEMBERED:
                self._posted.popitem(last=False)
        except KubeApiError as exc:
            log.warning("could not record event %s on %s/%s: %s", reason, namespace, meta.get("name"), exc)
