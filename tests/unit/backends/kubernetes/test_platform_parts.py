"""``KubernetesParts``: the Lease and the CR synchroniser ``build_platform`` wires beside the reconciler."""

from __future__ import annotations

import asyncio
from pathlib import Path

from modelpier.backends.factory import build_backend_parts
from modelpier.backends.kubernetes.backend import KubernetesBackend
from modelpier.backends.kubernetes.lease import LeaseLeadership
from modelpier.backends.kubernetes.platform import LEASE_NAME, KubernetesParts
from modelpier.backends.local.supervisor import LocalBackend
from modelpier.control.platform import build_platform
from modelpier.settings import Settings
from tests.unit.backends.kubernetes.test_backend import FakeApi


def test_only_the_kubernetes_backend_brings_parts(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert build_backend_parts(settings, None) is None
    local = LocalBackend(settings)
    assert build_backend_parts(settings, local) is None
    asyncio.run(local.close())


def test_the_lease_gates_the_platform_and_the_synchroniser_is_bound_to_its_deployments(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, kubernetes={"namespace": "models"})
    api = FakeApi()
    parts = KubernetesParts(settings, api=api)  # type: ignore[arg-type]  # a fake API
    # Outside a cluster the Lease lives in the namespace of the pods (else `default`), by its RBAC-granted name.
    assert (parts.lease_namespace, parts.elector.name) == ("models", LEASE_NAME)
    assert parts.sync is None
    backend = KubernetesBackend(settings, api=api)  # type: ignore[arg-type]
    platform = build_platform(settings, backend, backend_parts=parts, announce_admin_token=lambda _t: None)
    assert isinstance(parts.leadership, LeaseLeadership)
    assert platform.parts is parts
    assert parts.sync is not None
    assert parts.sync.namespaces == ("models",)
    parts.wake()  # after an API write: safe before the synchroniser runs (it looks at every key on start)
    platform.store.close()
