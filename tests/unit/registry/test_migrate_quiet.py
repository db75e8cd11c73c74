"""A first migration says nothing at INFO: Alembic's step lines are debug output (issue 14)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from modelpier.registry.sql.migrate import current_revision, head_revision, upgrade_to_head


def test_a_first_migration_logs_no_alembic_lines_at_info(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    with caplog.at_level(logging.INFO):
        upgrade_to_head(url)
    assert current_revision(url) == head_revision()
    assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == []
    assert logging.getLogger("alembic").level == logging.NOTSET  # put back as it was


def test_with_debug_logging_the_steps_show(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        upgrade_to_head(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert any("Running upgrade" in r.getMessage() for r in caplog.records if r.name.startswith("alembic"))
