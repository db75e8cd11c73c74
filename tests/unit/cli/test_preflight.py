"""``pier up``'s port checks: which ports, and the one line a busy one gives (pure parts and real sockets)."""

from __future__ import annotations

import socket

import pytest

from modelpier.cli.preflight import WantedPort, busy_message, check_ports, plan_port_checks
from modelpier.errors import Conflict
from modelpier.settings import Settings


def settings(gateway: int = 8700, grpc: int = 8701) -> Settings:
    return Settings(gateway={"port": gateway, "grpc_port": grpc})  # type: ignore[arg-type]


def test_every_port_is_checked_but_any_port_off_and_our_own_gateways() -> None:
    assert [(w.port, w.flag) for w in plan_port_checks(settings(), "127.0.0.1", 8600, None)] == [
        (8600, "--port"), (8700, "--gateway-port"), (8701, "--gateway-grpc-port")]
    assert [w.port for w in plan_port_checks(settings(0, 0), "127.0.0.1", 0, None)] == []
    ours = ("python", "-m", "modelpier.cli", "gateway", "--port", "8700", "--grpc-port", "8701")
    assert [w.port for w in plan_port_checks(settings(), "127.0.0.1", 8600, ours)] == [8600]


def test_the_message_names_the_port_its_holder_and_the_flag() -> None:
    wanted = WantedPort("127.0.0.1", 8700, "the gateway", "--gateway-port", "gateway.port")
    message = busy_message(wanted, "pid 7 (python3 -m http.server 8700)")
    assert message == ("port 8700 (the gateway) is already in use by pid 7 (python3 -m http.server 8700): stop it, "
                       "or pick another port with --gateway-port (setting gateway.port; 0 picks a free one)")
    assert "by another process" in busy_message(wanted, None)
    assert "\n" not in message


def test_a_held_port_is_refused_with_a_conflict() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(Conflict, match=rf"port {port} \(the API\) is already in use by pid \d+ .*--port"):
            check_ports([WantedPort("127.0.0.1", port, "the API", "--port", "control.port")])


def test_one_port_wanted_twice_is_refused() -> None:
    same = [WantedPort("127.0.0.1", 9, "the API", "--port", "control.port"),
            WantedPort("127.0.0.1", 9, "the gateway", "--gateway-port", "gateway.port")]
    with pytest.raises(Conflict, match="wanted by both the API and the gateway"):
        check_ports(same, free=lambda host, port: True)
