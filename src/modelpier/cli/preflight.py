"""``pier up``'s checks before it creates anything (the database, the admin token, the gateway).

A port another process holds would otherwise surface late and badly: a traceback from the API server
after the "shown once" admin token was printed, or a gateway that dies at start while another
process answers its health check, restarted every few seconds forever. So each port is tried first,
and the first busy one fails ``pier up`` with one line: the port, the process holding it when it can be
seen, and the flag that picks another. Ports held by this platform's own running gateway are not
checked: the next ``pier up`` adopts or replaces that gateway (``gateway/process.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from modelpier._lib import ports
from modelpier.errors import Conflict
from modelpier.gateway.process import GATEWAY_FILE, PLATFORM_FILE, argv_option, load_record, running
from modelpier.settings import Settings


@dataclass(frozen=True, slots=True)
class WantedPort:
    host: str
    port: int
    what: str  # "the API"
    flag: str  # the `pier up` option that picks another
    setting: str  # the setting behind its default


def plan_port_checks(settings: Settings, host: str, port: int, gateway_argv: Sequence[str] | None) -> list[WantedPort]:
    """The ports ``pier up`` will listen on that must be free now; port 0 (any free port), gRPC off (0) and
    the ports of our own running gateway (``gateway_argv``) need no check."""
    cfg = settings.gateway
    ours = {argv_option(gateway_argv, "--port"), argv_option(gateway_argv, "--grpc-port")} if gateway_argv else set()
    wanted = [WantedPort(host, port, "the API", "--port", "control.port"),
              WantedPort(cfg.host, cfg.port, "the gateway", "--gateway-port", "gateway.port"),
              WantedPort(cfg.host, cfg.grpc_port, "the gateway's gRPC service", "--gateway-grpc-port",
                         "gateway.grpc_port")]
    return [w for w in wanted if w.port != 0 and str(w.port) not in ours]


def busy_message(wanted: WantedPort, holder: str | None) -> str:
    """One line: which port, held by whom, and how to pick another."""
    by = f" by {holder}" if holder else " by another process"
    return (f"port {wanted.port} ({wanted.what}) is already in use{by}: stop it, or pick another port with "
            f"{wanted.flag} (setting {wanted.setting}; 0 picks a free one)")


def check_ports(wanted: Sequence[WantedPort], *, free: Callable[[str, int], bool] = ports.port_free,
                holder: Callable[[int], str | None] = ports.holder) -> None:
    """``Conflict`` naming the first busy port; also when one port is wanted twice."""
    seen: dict[int, WantedPort] = {}
    for w in wanted:
        if w.port in seen:
            raise Conflict(f"port {w.port} is wanted by both {seen[w.port].what} and {w.what}: pick another with "
                           f"{w.flag}", details={"port": w.port})
        seen[w.port] = w
        if not free(w.host, w.port):
            raise Conflict(busy_message(w, holder(w.port)), details={"port": w.port, "flag": w.flag})


def check_platform(settings: Settings, host: str, port: int) -> None:
    """Before ``pier up`` creates anything: not running already, and every port it needs is free."""
    home = settings.home
    platform = load_record(home / PLATFORM_FILE)
    if platform is not None and running(platform.pid, platform.argv):
        raise Conflict(f"pier up is already running (pid {platform.pid}, API on {platform.url}); `pier down` stops "
                       "it", details={"pid": platform.pid})
    gateway = load_record(home / GATEWAY_FILE)
    ours = gateway.argv if gateway is not None and running(gateway.pid, gateway.argv) else None
    check_ports(plan_port_checks(settings, host, port, ours))
