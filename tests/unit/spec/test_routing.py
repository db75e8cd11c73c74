"""The routing table's wire form: round trip, stable bytes, content-based ETag."""

from __future__ import annotations

from modelpier.spec.routing import (
    DeploymentRoute,
    HeaderRoute,
    PredictorRoute,
    ReplicaEndpoint,
    RoutingTable,
    RoutingTableCell,
    TrafficPolicy,
    encode_table,
    table_from_wire,
    table_to_wire,
)

TABLE = RoutingTable.of([
    DeploymentRoute("default", "iris", 3, (
        PredictorRoute("main", 90, (ReplicaEndpoint("main-a", "http://127.0.0.1:30001", 3, "iris:2"),)),
        PredictorRoute("canary", 10, (
            ReplicaEndpoint("canary-b", "http://127.0.0.1:30002", 2, None, "127.0.0.1:30003"),))),
        timeout_s=12.5),
    DeploymentRoute("other", "empty", 1),
    DeploymentRoute("acme", "fraud", 7, (
        PredictorRoute("main", 100, (), scales_to_zero=True), PredictorRoute("shadow", 0)),
        auth_mode="token", policy=TrafficPolicy(
            routes=(HeaderRoute((("x-segment", "beta"),), "shadow"),), sticky_header="x-user", shadow="shadow",
            shadow_percent=50, shadow_log=True, cache_ttl_s=5.0, cache_max_entries=10, max_in_flight=3,
            max_body_bytes=1000, log_sample_rate=0.5, log_sink="sqlite")),
], auth_epoch=4)


def test_wire_round_trip_keeps_every_field() -> None:
    assert table_from_wire(table_to_wire(TABLE)) == TABLE


def test_equal_tables_encode_to_the_same_bytes_and_etag_whatever_the_order() -> None:
    reordered = RoutingTable.of(list(reversed(list(TABLE.deployments.values()))), auth_epoch=TABLE.auth_epoch)
    assert encode_table(reordered) == encode_table(TABLE)
    changed = RoutingTable.of([DeploymentRoute("default", "iris", 4)])
    assert encode_table(changed)[1] != encode_table(TABLE)[1]
    revoked = RoutingTable(TABLE.deployments, auth_epoch=TABLE.auth_epoch + 1)
    assert encode_table(revoked)[1] != encode_table(TABLE)[1]


def test_cell_is_unpublished_until_set_and_keeps_the_object_of_an_equal_table() -> None:
    cell = RoutingTableCell()
    assert not cell.published
    cell.set(TABLE)
    assert cell.published
    assert cell.get() is TABLE
    cell.set(table_from_wire(table_to_wire(TABLE)))
    assert cell.get() is TABLE
