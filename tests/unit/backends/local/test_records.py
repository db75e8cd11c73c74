"""The local backend's state file and replica command: the gRPC port is recorded, old files still load."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from modelpier.backends.base import ReplicaSpec
from modelpier.backends.local import records
from modelpier.backends.local.supervisor import serve_argv

SPEC = ReplicaSpec(project="default", deployment="iris", predictor="main", revision=1, template="t1", model="iris:1")


def test_grpc_port_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    rec = records.ReplicaRecord("main-1", SPEC, 123, 30000, ("python",), 1.0, 0, grpc_port=30001)
    records.save(path, [rec])
    assert records.load(path) == [rec]
    assert json.loads(path.read_text())["replicas"][0]["grpc_port"] == 30001


def test_a_state_file_from_before_grpc_loads_without_a_grpc_port(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    old = {"replica_id": "main-1", "spec": {"project": "default", "deployment": "iris", "predictor": "main",
                                            "revision": 1, "template": "t1", "model": "iris:1"},
           "pid": 123, "port": 30000, "argv": ["python", "-m", "modelpier.server"], "started_at": 1.0, "restarts": 2}
    path.write_text(json.dumps({"format": 1, "replicas": [old]}))
    [loaded] = records.load(path)
    assert loaded.grpc_port is None
    assert (loaded.port, loaded.restarts, loaded.argv) == (30000, 2, ("python", "-m", "modelpier.server"))


def test_serve_argv_asks_for_grpc_on_its_port_or_none() -> None:
    with_grpc = serve_argv(SPEC, 30000, grace_s=5, grpc_port=30001, python="py")
    assert with_grpc[:4] == ("py", "-m", "modelpier.server", "iris:1")
    assert with_grpc[with_grpc.index("--grpc-port") + 1] == "30001"
    assert "--no-grpc" not in with_grpc
    assert "--grpc" in with_grpc  # not left to serve.grpc
    assert "--no-grpc" in serve_argv(SPEC, 30000, grace_s=5, python="py")


def test_default_outputs_reach_the_server_and_round_trip(tmp_path: Path) -> None:
    spec = replace(SPEC, outputs=("predict",))
    argv = serve_argv(spec, 30000, grace_s=5, python="py")
    assert argv[argv.index("--outputs") + 1] == "predict"
    every = serve_argv(SPEC, 30000, grace_s=5, python="py")
    assert every[every.index("--outputs") + 1] == ""  # every output, not serve.outputs
    assert "--no-isolated" in every
    path = tmp_path / "state.json"
    rec = records.ReplicaRecord("main-1", spec, 123, 30000, argv, 1.0, 0)
    records.save(path, [rec])
    assert records.load(path) == [rec]


def test_the_deployments_body_limit_reaches_the_server() -> None:
    default = serve_argv(SPEC, 30000, grace_s=5, python="py")
    assert default[default.index("--max-body-bytes") + 1] == str(64 * 2**20)  # not serve.max_body_bytes
    raised = serve_argv(replace(SPEC, max_body_bytes=100 * 2**20), 30000, grace_s=5, python="py")
    assert raised[raised.index("--max-body-bytes") + 1] == str(100 * 2**20)
