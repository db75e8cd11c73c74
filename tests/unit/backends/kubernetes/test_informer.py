"""The LIST+WATCH cache: versions only move forward, deletions stay deleted, a 410 relists."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from modelpier.backends.kubernetes.backend import pier_error
from modelpier.backends.kubernetes.informer import Informer
from modelpier.backends.kubernetes.kubeapi import KubeApiError, resource_of
from modelpier.errors import (
    Conflict,
    Forbidden,
    InvalidSpec,
    NotFound,
    RemoteError,
    RemoteUnreachable,
    Unauthenticated,
)


def pod(name: str, version: int, uid: str | None = None) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "uid": uid or f"uid-{name}",
                         "resourceVersion": str(version)}}


class FakeApi:
    """LISTs answer ``lists`` in turn; each WATCH streams the events queued for it, then ends."""

    def __init__(self, lists: list[dict[str, Any]], watches: list[list[dict[str, Any]]]) -> None:
        self.lists, self.watches = lists, watches
        self.list_error: Exception | None = None
        self.watch_versions: list[str] = []
        self.done = asyncio.Event()

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        if self.list_error is not None:
            raise self.list_error
        return self.lists.pop(0)

    async def watch(self, path: str, *, resource_version: str, timeout_s: int,
                    params: Mapping[str, Any] | None = None) -> AsyncIterator[dict[str, Any]]:
        self.watch_versions.append(resource_version)
        if not self.watches:
            self.done.set()
            await asyncio.Event().wait()  # a quiet watch
        for event in self.watches.pop(0):
            yield event


def listing(version: int, *items: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": str(version)}, "items": list(items)}


async def drain(informer: Informer, api: FakeApi) -> None:
    informer.start()
    await asyncio.wait_for(api.done.wait(), 5)
    await informer.stop()


def test_the_watch_follows_the_list_and_updates_the_cache() -> None:
    async def scenario() -> None:
        api = FakeApi([listing(10, pod("a", 5))], [[
            {"type": "ADDED", "object": pod("b", 11)},
            {"type": "MODIFIED", "object": pod("a", 12)},
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "13"}}},
            {"type": "DELETED", "object": pod("b", 14)},
        ]])
        informer = Informer(api, "/api/v1/pods", "pods")  # type: ignore[arg-type]  # a fake API
        await drain(informer, api)
        assert informer.synced.is_set()
        assert list(informer.objects) == [("ns", "a")]
        assert informer.objects[("ns", "a")]["metadata"]["resourceVersion"] == "12"
        assert api.watch_versions == ["10", "14"]  # renewed from the last version seen (bookmarks too)

    asyncio.run(scenario())


def test_an_older_copy_never_replaces_a_newer_one_and_a_deleted_object_stays_deleted() -> None:
    informer = Informer(FakeApi([], []), "/p", "pods")  # type: ignore[arg-type]
    informer.put(pod("a", 20))
    informer.put(pod("a", 15))  # a write's answer that arrived after the watch's newer event
    assert informer.objects[("ns", "a")]["metadata"]["resourceVersion"] == "20"
    informer.remove(pod("a", 21))  # the watch's DELETED event
    informer.put(pod("a", 20))  # the delete call's late answer
    assert informer.objects == {}


def test_a_relist_keeps_writes_newer_than_its_snapshot_and_410_relists() -> None:
    async def scenario() -> None:
        api = FakeApi([listing(10, pod("a", 5)), listing(30, pod("a", 5))], [
            [{"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}}]])
        informer = Informer(api, "/p", "pods")  # type: ignore[arg-type]
        informer.put(pod("new", 31))  # written while the second LIST was in flight
        await drain(informer, api)
        assert set(informer.objects) == {("ns", "a"), ("ns", "new")}
        assert informer.relists == 2
        assert api.watch_versions == ["10", "30"]

    asyncio.run(scenario())


def test_an_optional_kind_the_cluster_does_not_serve_is_an_empty_synced_cache() -> None:
    async def scenario() -> None:
        api = FakeApi([], [])
        api.list_error = KubeApiError(404, "NotFound", "the server could not find the requested resource")
        informer = Informer(api, "/apis/modelpier.io/v1alpha1/modeldeployments", "modeldeployments",  # type: ignore[arg-type]
                            optional=True)
        informer.start()
        await asyncio.wait_for(informer.synced.wait(), 5)
        assert informer.objects == {}
        assert not informer.available
        await informer.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize(("status", "error"), [
    (0, RemoteUnreachable), (401, Unauthenticated), (403, Forbidden), (404, NotFound), (409, Conflict),
    (422, InvalidSpec), (500, RemoteError)])
def test_api_errors_map_onto_the_error_tree(status: int, error: type[Exception]) -> None:
    assert type(pier_error(KubeApiError(status, "Reason", "no"))) is error


@pytest.mark.parametrize(("path", "resource"), [
    ("/api/v1/pods", "pods"), ("/api/v1/namespaces/ns/pods/p/log", "pods/log"), ("/api/v1/namespaces/ns", "namespaces"),
    ("/apis/modelpier.io/v1alpha1/namespaces/ns/modeldeployments/a/status", "modeldeployments/status")])
def test_requests_are_counted_by_resource(path: str, resource: str) -> None:
    assert resource_of(path) == resource
