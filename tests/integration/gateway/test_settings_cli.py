"""The gateway's settings section as `pier config show` prints it: from PIER_GATEWAY__*, password masked."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.procs import run_pier


def test_defaults_keep_everything_on_this_machine(tmp_path: Path) -> None:
    shown = json.loads(run_pier(["config", "show", "-o", "json"], tmp_path, check=True).stdout)
    assert shown["gateway"] == {"host": "127.0.0.1", "port": 8700, "grpc_port": 8701, "poll_interval_s": 0.5,
                                "redis_url": None, "cache_max_bytes": 256 * 1024 * 1024, "job_concurrency": 4,
                                "job_lease_s": 30.0, "job_retention_s": 604_800.0, "batch_scheduling": True,
                                "metrics_token": None, "token_stale_limit_s": 300.0}


def test_the_redis_password_is_masked(tmp_path: Path) -> None:
    for url, shown_as in [("redis://:hunter2@cache.internal:6380/1", "redis://:***@cache.internal:6380/1"),
                          ("rediss://app:hunter2@cache.internal:6380/0", "rediss://app:***@cache.internal:6380/0"),
                          ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0")]:
        result = run_pier(["config", "show", "-o", "json"], tmp_path, check=True, PIER_GATEWAY__REDIS_URL=url,
                          PIER_GATEWAY__JOB_CONCURRENCY="8")
        assert "hunter2" not in result.stdout
        gateway = json.loads(result.stdout)["gateway"]
        assert (gateway["redis_url"], gateway["job_concurrency"]) == (shown_as, 8)
        table = run_pier(["config", "show"], tmp_path, check=True, PIER_GATEWAY__REDIS_URL=url, COLUMNS="200")
        assert "hunter2" not in table.stdout
        assert "PIER_GATEWAY__REDIS_URL" in table.stdout


def test_a_bad_value_names_the_setting(tmp_path: Path) -> None:
    result = run_pier(["config", "show"], tmp_path, PIER_GATEWAY__JOB_CONCURRENCY="0")
    assert result.returncode == 3
    assert "gateway.job_concurrency" in result.stderr
