"""The local backend against real ``pier serve`` replicas of a real sklearn model."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
import pytest
from tests.support.procs import free_port

from modelpier.backends.base import ReplicaObservation, ReplicaSpec
from modelpier.backends.local.ports import PortAllocator
from modelpier.backends.local.supervisor import LocalBackend
from modelpier.errors import ServiceUnavailable
from modelpier.settings import Settings, load_settings


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import modelpier

    home = tmp_path_factory.mktemp("backend")
    low = free_port()
    settings = load_settings(home=home, platform={"replica_port_min": low, "replica_port_max": low + 50,
                                                   "stop_grace_s": 5})
    x, y = load_iris(return_X_y=True)
    modelpier.save_model("iris", LogisticRegression(max_iter=300).fit(x, y), input_example=x[:2],
                         settings=settings)
    return settings


SPEC = ReplicaSpec(project="default", deployment="iris", predictor="main", revision=1, template="t1", model="iris:1")


async def until(backend: LocalBackend, replica_id: str, phase: str, polls: int = 600) -> ReplicaObservation:
    """Poll ``observe`` every 0.1 s until the replica is in ``phase`` (or gone)."""
    for _ in range(polls):
        found = {r.replica_id: r for r in await backend.observe()}.get(replica_id)
        if (found is None and phase == "gone") or (found is not None and found.phase == phase):
            return found  # type: ignore[return-value]  # None only when waiting for "gone"
        await asyncio.sleep(0.1)
    raise AssertionError(f"replica {replica_id} never became {phase}")


def test_start_ready_logs_crash_restart_and_stop(settings: Settings) -> None:
    async def scenario() -> int | None:
        backend = LocalBackend(settings)
        replica_id = await backend.start(SPEC)
        ready = await until(backend, replica_id, "ready")
        assert ready.url is not None
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{ready.url}/v2/health/ready")).status_code == 200
        log_file = settings.home / "replicas" / "default" / "iris" / f"{replica_id}.log"
        assert log_file.exists()
        lines = backend.logs("default", "iris")
        assert any(f"starting replica {replica_id}" in line for line in lines)
        assert all(line.startswith(f"[{replica_id}]") for line in lines)

        assert ready.pid is not None
        os.kill(ready.pid, signal.SIGKILL)
        crashed = await until(backend, replica_id, "exited")
        assert crashed.exit_code == -signal.SIGKILL
        assert crashed.url is None
        assert crashed.last_log

        await backend.restart(replica_id)
        again = await until(backend, replica_id, "ready")
        assert again.pid != ready.pid
        assert again.restarts == 1

        await backend.stop(replica_id, "test")
        assert (await backend.observe())[0].phase == "stopping"
        await until(backend, replica_id, "gone", polls=150)
        await backend.close()
        return again.pid

    stopped = asyncio.run(scenario())
    assert not Path(f"/proc/{stopped}").exists()


def test_a_new_backend_adopts_live_replicas_and_forgets_dead_ones(settings: Settings) -> None:
    async def scenario() -> None:
        first = LocalBackend(settings)
        keep = await first.start(SPEC)
        dead = await first.start(SPEC)
        await until(first, keep, "ready")
        observed = {r.replica_id: r for r in await first.observe()}
        await first.close()  # the control plane exits: replicas keep running
        pid = observed[dead].pid
        assert pid is not None
        os.killpg(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)

        second = LocalBackend(settings)
        adopted = {r.replica_id: r for r in await second.observe()}
        assert set(adopted) == {keep}
        assert adopted[keep].adopted
        assert adopted[keep].pid == observed[keep].pid
        assert adopted[keep].phase == "ready"
        await second.stop(keep, "test over")
        await until(second, keep, "gone", polls=150)
        await second.close()

    asyncio.run(scenario())


def test_port_exhaustion_is_a_clear_error() -> None:
    port = free_port()
    allocator = PortAllocator(port, port)
    with pytest.raises(ServiceUnavailable, match=f"no free port in the replica port range {port}-{port}"):
        allocator.allocate({port})


def test_state_file_is_written_atomically_and_lists_live_replicas(settings: Settings, tmp_path: Path) -> None:
    from modelpier.backends.local import records

    path = tmp_path / "state.json"
    rec = records.ReplicaRecord("main-1", SPEC, 123, 30000, ("python", "-m", "modelpier.server"), 1.0, 0)
    records.save(path, [rec])
    assert records.load(path) == [rec]
    path.write_text("{not json")
    assert records.load(path) == []
    assert list(tmp_path.iterdir()) == [path]
