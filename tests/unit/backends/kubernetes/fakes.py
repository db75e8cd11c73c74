"""An in-memory ``ClusterApi``: objects by key, server-side apply as replace-and-bump-generation."""

from __future__ import annotations

import copy
from typing import Any

from modelpier.backends.kubernetes.reconcile import MANAGED_KINDS, ObjectKey


class FakeCluster:
    def __init__(self, *, serves_istio: bool = True) -> None:
        self.objects: dict[ObjectKey, dict[str, Any]] = {}
        self.applies: list[ObjectKey] = []
        self.deletes: list[ObjectKey] = []
        self.kinds = {k for k in MANAGED_KINDS if serves_istio or k[1] != "VirtualService"}

    def apply(self, obj: dict[str, Any]) -> None:
        key = ObjectKey.of(obj)
        if (key.api_version, key.kind) not in self.kinds:
            raise LookupError(f"the cluster does not serve {key.api_version} {key.kind}")
        self.applies.append(key)
        old = self.objects.get(key)
        stored = copy.deepcopy(obj)
        generation = 1 if old is None else old["metadata"]["generation"] + (old.get("spec") != obj.get("spec"))
        stored["metadata"]["generation"] = generation
        stored["status"] = old.get("status", {}) if old else {}
        self.objects[key] = stored

    def get(self, key: ObjectKey) -> dict[str, Any] | None:
        found = self.objects.get(key)
        return copy.deepcopy(found) if found is not None else None

    def list_owned(self, namespace: str, deployment: str) -> list[ObjectKey]:
        return [key for key, obj in self.objects.items()
                if key.namespace == namespace and (key.api_version, key.kind) in self.kinds
                and obj["metadata"].get("labels", {}).get("modelpier.io/deployment") == deployment
                and obj["metadata"]["labels"].get("app.kubernetes.io/managed-by") == "modelpier-operator"]

    def delete(self, key: ObjectKey) -> None:
        self.deletes.append(key)
        self.objects.pop(key, None)

    # -- what the Deployment controller would do --------------------------------------------------
    def roll_out(self, namespace: str, name: str, *, ready: int | None = None, stalled: bool = False) -> None:
        obj = self.objects[ObjectKey("apps/v1", "Deployment", namespace, name)]
        desired = obj["spec"].get("replicas", 1)
        ready = desired if ready is None else ready
        conditions = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                       "message": "ReplicaSet has timed out progressing."}] if stalled else []
        obj["status"] = {"observedGeneration": obj["metadata"]["generation"], "replicas": desired,
                         "readyReplicas": ready, "updatedReplicas": ready, "conditions": conditions}


def custom_resource(spec: dict[str, Any], *, name: str = "iris", namespace: str = "acme", generation: int = 1,
                    status: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "modelpier.io/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "generation": generation},
        "spec": spec}
    if status is not None:
        body["status"] = status
    return body
